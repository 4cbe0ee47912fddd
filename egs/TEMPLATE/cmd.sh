# Job backends: where a recipe's jobs run. Sourced after option parsing, so that
# `--cmd_backend slurm` on a recipe's command line picks the backend:
#
#   cmd_backend=${cmd_backend:-local}          # declared before utils/parse_options.sh
#   . utils/parse_options.sh
#   . "$root/egs/TEMPLATE/cmd.sh"
#
#   cmd_backend=local   (default) utils/run.sh: jobs run on this machine, at most --max_jobs
#                       (default: the number of CPUs) at once
#   cmd_backend=slurm   utils/slurm.sh: every call is one sbatch job (a job array for JOB=1:N)
#                       with the defaults in $slurm_conf (default: the recipe's
#                       conf/slurm.conf, else egs/TEMPLATE/conf/slurm.conf)
#
# It sets three command prefixes (strings, used unquoted), each taking the same CLI:
#
#   $cmd        light jobs: data preparation, features, vocabularies, scoring
#   $train_cmd  training
#   $decode_cmd decoding
#
#   $prefix [--max_jobs K] [--mem 4G] [--gpu N] [--num_threads N] [--num_nodes N] [--time T] \
#           [JOB=1:N] LOG CMD ARGS...
#
# e.g.  $cmd --mem 2G exp/logs/vocab.log legonn vocab ...
#       $decode_cmd --num_threads 2 JOB=1:$nj exp/x/decode/log/decode.JOB.log \
#           legonn decode ... --data_dir data/test/split$nj/JOB
#
# Resource options are requests: the local backend accepts and ignores --mem/--gpu/--time
# (--num_threads sets OMP_NUM_THREADS), so one recipe line serves every backend. Each job's
# output goes to LOG; on failure the prefix prints which jobs failed with the end of their
# logs and returns 1. A value already set (e.g. `--train_cmd "utils/run.sh --max_jobs 1"`) is
# kept.
#
# Multi-GPU / multi-node training (--ngpu N, --num_nodes M) is ONE job of the backend, inside
# which torchrun starts the processes:
#
#   one machine, N GPUs (both backends):
#     $train_cmd --gpu $ngpu exp/$name/train.log \
#         torchrun --standalone --nproc_per_node $ngpu -m legonn train --config $conf --exp_dir exp/$name
#
#   SLURM, M nodes x N GPUs: slurm.sh asks for --nodes=M --ntasks-per-node=1 --gres=gpu:N; srun
#   starts one torchrun per node, which meet at the first node of the allocation. $SLURM_* and
#   the head node are only known inside the job, hence `bash -c` with single quotes:
#     launch="srun torchrun --nnodes $num_nodes --nproc_per_node $ngpu --rdzv_backend c10d"
#     launch+=' --rdzv_id $SLURM_JOB_ID --rdzv_endpoint $(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1):29500'
#     $train_cmd --gpu $ngpu --num_nodes $num_nodes exp/$name/train.log \
#         bash -c "$launch -m legonn train --config $conf --exp_dir exp/$name"
#   which, inside the job, runs
#     srun torchrun --nnodes $num_nodes --nproc_per_node $ngpu --rdzv_backend c10d \
#         --rdzv_id $SLURM_JOB_ID --rdzv_endpoint $head:29500 -m legonn train ...
#   (the local backend refuses --num_nodes > 1.)

cmd_backend=${cmd_backend:-local}
_legonn_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

case $cmd_backend in
    local)
        cmd=${cmd:-"$_legonn_root/utils/run.sh"}
        train_cmd=${train_cmd:-"$_legonn_root/utils/run.sh"}
        decode_cmd=${decode_cmd:-"$_legonn_root/utils/run.sh"}
        ;;
    slurm)
        if [[ -z ${slurm_conf:-} ]]; then
            if [[ -f conf/slurm.conf ]]; then
                slurm_conf=$PWD/conf/slurm.conf
            else
                slurm_conf=$_legonn_root/egs/TEMPLATE/conf/slurm.conf
            fi
        fi
        if [[ ! -f $slurm_conf ]]; then
            echo "cmd.sh: slurm config $slurm_conf not found" >&2
            return 1
        fi
        if ! command -v sbatch >/dev/null 2>&1; then
            echo "cmd.sh: cmd_backend=slurm but sbatch is not on PATH (not a SLURM login node?)" >&2
            return 1
        fi
        cmd=${cmd:-"$_legonn_root/utils/slurm.sh --config $slurm_conf"}
        train_cmd=${train_cmd:-"$_legonn_root/utils/slurm.sh --config $slurm_conf"}
        decode_cmd=${decode_cmd:-"$_legonn_root/utils/slurm.sh --config $slurm_conf"}
        ;;
    *)
        echo "cmd.sh: unknown cmd_backend '$cmd_backend' (local or slurm)" >&2
        return 1
        ;;
esac
unset _legonn_root
