#!/usr/bin/env bash
# Run a command on a SLURM cluster, once or as a job array; same CLI and logs as utils/run.sh.
#
#   utils/slurm.sh [options] LOG CMD ARGS...             one job
#   utils/slurm.sh [options] JOB=1:N LOG CMD ARGS...     a job array of N tasks, JOB -> task id
#
# It writes a batch script next to the log (LOG.sh; for an array the log path still contains
# JOB, e.g. exp/log/decode.JOB.log.sh), removes old logs, submits the script with
# `sbatch --parsable --wait` and waits. Each task runs CMD ARGS (JOB replaced by its task id) in
# the submit directory, with the same log format as utils/run.sh: header lines, the output, and
# `# ended (exit code N) at ... elapsed Ns`. SLURM's own messages (time limit, out of memory)
# land in the same log. Afterwards every task's log is checked; failed tasks are summarised on
# stderr exactly as utils/run.sh does (a task without an end line is reported with its
# `sacct` state when sacct is available), and slurm.sh exits 1; otherwise 0. SIGINT/SIGTERM
# cancel the job (scancel). The environment is exported to the jobs (sbatch's default), so the
# venv on PATH carries over; stdin is /dev/null.
#
# The batch script can be resubmitted by hand (`sbatch exp/log/decode.JOB.log.sh`): the
# options are also written into it as #SBATCH lines.
#
# Options (command line over config file over SLURM's defaults):
#   --config FILE    defaults (default: conf/slurm.conf when it exists); see
#                    egs/TEMPLATE/conf/slurm.conf for the keys
#   --max_jobs K     tasks of an array at once:      --array=1-N%K (default: no limit)
#   --mem 4G         memory per node:                --mem=4G
#   --gpu N          GPUs per node:                  --gres=gpu:N (and the gpu_partition)
#   --num_threads N  CPUs per task:                  --cpus-per-task=N, OMP/MKL_NUM_THREADS=N
#   --num_nodes N    nodes (one task per node; start the processes with srun inside the
#                    command, e.g. srun torchrun ...): --nodes=N --ntasks-per-node=1
#   --time T         time limit:                     --time=T
# shellcheck disable=SC2016,SC2034,SC2154  # batch-script text in single quotes; jobs_* variables come from run.sh
set -euo pipefail

slurm_utils=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$slurm_utils/run.sh"   # the jobs_* helpers

config=""
max_jobs=""
mem=""
gpu=0
num_threads=0
num_nodes=1
time=""
help_message="usage: $jobs_prog [options] [JOB=1:N] LOG CMD ARGS...
Runs CMD as a SLURM job (an array of N tasks with JOB replaced by the task id in LOG, CMD and
ARGS), output in LOG; the batch script is written to LOG.sh.
  --config FILE    sbatch defaults (default: conf/slurm.conf if it exists)
  --max_jobs K     --array=1-N%K            --mem M       --mem=M
  --gpu N          --gres=gpu:N             --num_threads N  --cpus-per-task=N
  --num_nodes N    --nodes=N --ntasks-per-node=1           --time T      --time=T
Exit 0 when every task succeeded; else 1, with a summary of the failed tasks on stderr."

jobs_check_options "config max_jobs mem gpu num_threads num_nodes time" "$@"
. "$slurm_utils/parse_options.sh"
jobs_parse_positionals "$@"
jobs_check_values

# --- config file -------------------------------------------------------------------------------
conf_partition=""
conf_gpu_partition=""
conf_account=""
conf_qos=""
conf_time=""
conf_mem=""
conf_cpus_per_task=""
conf_sbatch_opts=""
conf_log_wait=30

# slurm_read_config FILE: key=value lines ('#' starts a comment; values may be quoted).
slurm_read_config() {
    local file=$1 n=0 line key val
    [[ -f $file ]] || jobs_die "config file $file not found"
    while IFS= read -r line || [[ -n $line ]]; do
        n=$((n + 1))
        [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
        if [[ ! $line =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=[[:space:]]*(.*)$ ]]; then
            jobs_die "$file:$n: expected key=value, got: $line"
        fi
        key=${BASH_REMATCH[1]}
        val=${BASH_REMATCH[2]}
        [[ $val =~ ^(.*[^[:space:]])?[[:space:]]+\#.*$ ]] && val=${BASH_REMATCH[1]}
        val=${val%"${val##*[![:space:]]}"}
        if [[ $val =~ ^\"(.*)\"$ || $val =~ ^\'(.*)\'$ ]]; then
            val=${BASH_REMATCH[1]}
        fi
        case $key in
            partition|gpu_partition|account|qos|time|mem|cpus_per_task|sbatch_opts|log_wait)
                printf -v "conf_$key" '%s' "$val" ;;
            *)
                jobs_die "$file:$n: unknown key '$key' (keys: partition gpu_partition account qos time mem cpus_per_task sbatch_opts log_wait)" ;;
        esac
    done < "$file"
    [[ -z $conf_cpus_per_task || $conf_cpus_per_task =~ ^[1-9][0-9]*$ ]] || jobs_die "$file: cpus_per_task must be a positive integer"
    [[ $conf_log_wait =~ ^[0-9]+$ ]] || jobs_die "$file: log_wait must be a number of seconds"
}

if [[ -z $config && -f conf/slurm.conf ]]; then
    config=conf/slurm.conf
fi
[[ -z $config ]] || slurm_read_config "$config"
command -v sbatch >/dev/null 2>&1 || jobs_die "sbatch is not on PATH (is this a SLURM cluster? cmd_backend=local runs jobs here)"

# --- sbatch options ------------------------------------------------------------------------------
abs() { if [[ $1 == /* ]]; then printf '%s' "$1"; else printf '%s' "$PWD/$1"; fi; }

job_name=$(basename -- "$jobs_template")
job_name=${job_name%.log}
if [[ -n $jobs_var ]]; then
    job_name=${job_name//".$jobs_var"/}
    job_name=${job_name//"$jobs_var"/}
fi
job_name=${job_name//[^A-Za-z0-9_.-]/_}
[[ -n $job_name ]] || job_name=legonn

# --output: the log itself; a literal % is %% for SLURM, the task id is %a.
output=$(abs "$jobs_template")
output=${output//%/%%}
[[ -z $jobs_var ]] || output=${output//"$jobs_var"/%a}

opts=(--job-name="$job_name")
partition=$conf_partition
if [[ $gpu -gt 0 && -n $conf_gpu_partition ]]; then
    partition=$conf_gpu_partition
fi
[[ -z $partition ]] || opts+=(--partition="$partition")
[[ -z $conf_account ]] || opts+=(--account="$conf_account")
[[ -z $conf_qos ]] || opts+=(--qos="$conf_qos")
[[ -z ${time:-$conf_time} ]] || opts+=(--time="${time:-$conf_time}")
[[ -z ${mem:-$conf_mem} ]] || opts+=(--mem="${mem:-$conf_mem}")
if [[ $num_threads -gt 0 ]]; then
    opts+=(--cpus-per-task="$num_threads")
elif [[ -n $conf_cpus_per_task ]]; then
    opts+=(--cpus-per-task="$conf_cpus_per_task")
fi
[[ $gpu -eq 0 ]] || opts+=(--gres="gpu:$gpu")
[[ $num_nodes -eq 1 ]] || opts+=(--nodes="$num_nodes" --ntasks-per-node=1)
if [[ -n $jobs_var ]]; then
    opts+=(--array="$jobs_first-$jobs_last${max_jobs:+%$max_jobs}")
fi
opts+=(--output="$output" --open-mode=append)
read -r -a extra <<<"$conf_sbatch_opts"
opts+=("${extra[@]}")

# --- the batch script ----------------------------------------------------------------------------
script="$jobs_template.sh"
mkdir -p -- "$(dirname -- "$script")"
logs=()
for ((j = jobs_first; j <= jobs_last; j++)); do
    if [[ -n $jobs_var ]]; then log=${jobs_template//"$jobs_var"/$j}; else log=$jobs_template; fi
    mkdir -p -- "$(dirname -- "$log")"
    rm -f -- "$log"   # a stale log must not pass for this run's result
    logs+=("$log")
done

{
    echo '#!/usr/bin/env bash'
    printf '# Generated by utils/slurm.sh at %s; resubmit with: sbatch %s\n' \
        "$(date '+%Y-%m-%d %H:%M:%S')" "$(jobs_shell_quote "$(abs "$script")")"
    for o in "${opts[@]}"; do
        printf '#SBATCH %s\n' "$o"
    done
    echo 'set -uo pipefail'
    printf 'cd %s || exit 1\n' "$(jobs_shell_quote "$PWD")"
    printf 'log=%s\n' "$(jobs_shell_quote "$jobs_template")"
    printf 'args=(%s)\n' "$(jobs_shell_quote "${jobs_cmd[@]}")"
    if [[ -n $jobs_var ]]; then
        echo 'task=${SLURM_ARRAY_TASK_ID:?not a SLURM array task}'
        printf 'log=${log//%s/$task}\n' "$jobs_var"
        printf 'args=("${args[@]//%s/$task}")\n' "$jobs_var"
    fi
    if [[ $num_threads -gt 0 ]]; then
        printf 'export OMP_NUM_THREADS=%d MKL_NUM_THREADS=%d\n' "$num_threads" "$num_threads"
    fi
    declare -f jobs_shell_quote jobs_run_logged
    echo 'jobs_run_logged "$log" "${args[@]}"'
} > "$script"

# --- submit and wait -----------------------------------------------------------------------------
idfile=$(mktemp)
trap 'rm -f "$idfile"' EXIT
slurm_job_id() { head -n 1 "$idfile" 2>/dev/null | cut -d';' -f1; }
slurm_on_signal() {
    trap - TERM INT
    local id
    id=$(slurm_job_id)
    echo "$jobs_prog: got SIG$1; cancelling SLURM job ${id:-(not submitted yet)}" >&2
    [[ -z $id ]] || scancel "$id" || true
    kill -TERM "$sbatch_pid" 2>/dev/null || true
    exit "$2"
}
sbatch --parsable --wait "${opts[@]}" "$script" > "$idfile" &
sbatch_pid=$!
trap 'slurm_on_signal TERM 143' TERM
trap 'slurm_on_signal INT 130' INT
sbatch_rc=0
wait "$sbatch_pid" || sbatch_rc=$?
trap - TERM INT
job_id=$(slurm_job_id)
if [[ -z $job_id ]]; then
    jobs_die "sbatch failed (exit $sbatch_rc); nothing was submitted (batch script: $script)"
fi

# Logs live on a shared file system that may lag behind the compute nodes: wait up to
# log_wait seconds for every log's end line.
deadline=$((SECONDS + conf_log_wait))
while :; do
    missing=0
    for log in "${logs[@]}"; do
        [[ -n $(jobs_log_exit "$log") ]] || missing=$((missing + 1))
    done
    [[ $missing -gt 0 && $SECONDS -lt $deadline ]] || break
    sleep 1
done

# SLURM's view of tasks that left no end line (killed, never started, node failure).
declare -A states=()
if [[ $missing -gt 0 ]] && command -v sacct >/dev/null 2>&1; then
    while IFS='|' read -r id state _; do
        [[ -n $id ]] || continue
        if [[ $id == *_* ]]; then states[${id##*_}]=$state; else states[1]=$state; fi
    done < <(sacct -n -P -X -j "$job_id" -o JobID,State 2>/dev/null || true)
fi

failed=0
total=${#logs[@]}
for ((i = 0; i < total; i++)); do
    j=$((jobs_first + i))
    log=${logs[i]}
    if [[ -n $jobs_var ]]; then label="job $j"; else label="job"; fi
    code=$(jobs_log_exit "$log")
    [[ $code != 0 ]] || continue
    failed=$((failed + 1))
    if [[ -n $code ]]; then
        detail="exit $code"
    elif [[ -n ${states[$j]:-} ]]; then
        detail="exit ?, SLURM state ${states[$j]}"
    else
        detail="exit ?, no end line in the log"
    fi
    jobs_report_failure "$label" "$log" "$detail"
done
if [[ $failed -gt 0 ]]; then
    echo "$jobs_prog: $failed of $total jobs failed (SLURM job $job_id)" >&2
    exit 1
fi
if [[ $sbatch_rc -ne 0 ]]; then
    echo "$jobs_prog: warning: sbatch --wait exited $sbatch_rc although every log reports success (SLURM job $job_id)" >&2
fi
exit 0
