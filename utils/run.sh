#!/usr/bin/env bash
# Run a command on this machine, once or as an array of jobs, each job logging to its own file.
#
#   utils/run.sh [options] LOG CMD ARGS...             one job
#   utils/run.sh [options] JOB=1:N LOG CMD ARGS...     N jobs; "JOB" in LOG, CMD and ARGS -> 1..N
#
# Every occurrence of the literal range name (JOB above; any NAME=A:B or NAME=A works) in LOG,
# CMD and ARGS becomes the job number. CMD and ARGS are run as given (no shell: a pipeline needs
# `bash -c '... | ...'`), with stdin from /dev/null and stdout+stderr in the job's log, which reads
#
#   # CMD ARGS...                      (the command, shell-quoted)
#   # started at <date> on <host>
#   ...output...
#   # ended (exit code N) at <date> elapsed Ns
#
# At most --max_jobs jobs run at once; run.sh waits for all of them. If any failed it prints, on
# stderr, one line per failed job plus that job's last 3 output lines, and a count:
#
#   run.sh: job 2 failed (exit 7); see exp/log/decode.2.log
#       <last output lines>
#   run.sh: 1 of 4 jobs failed
#
# and exits 1 (0 when all succeeded). SIGTERM/SIGINT stop the running jobs (their logs get the
# end line with the exit code) before run.sh exits.
#
# Options (the same for every backend, see utils/slurm.sh and egs/TEMPLATE/cmd.sh):
#   --max_jobs N     jobs at once (default: the number of CPUs)
#   --num_threads N  exported as OMP_NUM_THREADS/MKL_NUM_THREADS for the jobs (0: leave unset)
#   --mem 4G, --gpu N, --time T    resource requests: accepted and ignored on this machine
#   --num_nodes N    must be 1 here (several nodes need a cluster backend)
#
# utils/slurm.sh sources this file for its helper functions (the jobs_* functions below); run
# directly, it is the local backend.
# shellcheck disable=SC2034,SC2329  # option variables are read by parse_options.sh; traps call jobs_on_signal
set -euo pipefail

jobs_prog=$(basename "$0")
jobs_utils=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

jobs_die() {
    echo "$jobs_prog: $*" >&2
    exit 1
}

# jobs_shell_quote ARGS...: the arguments as one line a shell would split back into them.
jobs_shell_quote() {
    local out="" a q
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9_./:=,+@%^-]+$ ]]; then
            out+="$a "
        elif [[ $a == *[[:cntrl:]]* ]]; then
            printf -v q '%q' "$a"
            out+="$q "
        else
            q=${a//\'/\'\\\'\'}
            out+="'$q' "
        fi
    done
    printf '%s' "${out% }"
}

# jobs_run_logged LOG CMD ARGS...: run CMD into LOG between a header and an end line; returns
# CMD's exit code. SIGTERM/SIGINT are passed on to CMD, and the end line is still written.
# (Also copied into the batch scripts utils/slurm.sh generates, so it must stand alone.)
jobs_run_logged() {
    local log=$1 child="" stop=0 rc=0 start
    shift
    trap 'stop=1; [[ -z $child ]] || kill -TERM "$child" 2>/dev/null || true' TERM INT
    mkdir -p -- "$(dirname -- "$log")" || return 1
    start=$(date +%s)
    {
        printf '# %s\n' "$(jobs_shell_quote "$@")"
        printf '# started at %s on %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "${HOSTNAME:-$(uname -n)}"
    } > "$log" || return 1
    "$@" >> "$log" 2>&1 < /dev/null &
    child=$!
    [[ $stop == 0 ]] || kill -TERM "$child" 2>/dev/null || true
    while :; do
        rc=0
        wait "$child" || rc=$?
        # A trapped signal interrupts wait; keep waiting until CMD itself has ended.
        kill -0 "$child" 2>/dev/null || break
    done
    if [[ -s $log && -n $(tail -c 1 -- "$log") ]]; then
        echo >> "$log"
    fi
    printf '# ended (exit code %d) at %s elapsed %ds\n' "$rc" "$(date '+%Y-%m-%d %H:%M:%S')" \
        "$(($(date +%s) - start))" >> "$log"
    trap - TERM INT
    return "$rc"
}

# jobs_log_exit LOG: the exit code from LOG's end line; nothing if there is none (yet).
jobs_log_exit() {
    local last
    [[ -f $1 ]] || return 0
    last=$(tail -n 1 -- "$1" 2>/dev/null || true)
    if [[ $last =~ ^\#\ ended\ \(exit\ code\ ([0-9]+)\) ]]; then
        echo "${BASH_REMATCH[1]}"
    fi
    return 0
}

# jobs_report_failure LABEL LOG DETAIL: the summary line for one failed job and its last 3
# output lines (the end line left out), indented.
jobs_report_failure() {
    local label=$1 log=$2 detail=$3
    echo "$jobs_prog: $label failed ($detail); see $log" >&2
    [[ -f $log ]] || return 0
    if [[ -n $(jobs_log_exit "$log") ]]; then
        tail -n 4 -- "$log" | sed '$d'
    else
        tail -n 3 -- "$log"
    fi | sed 's/^/    /' >&2
}

# jobs_check_options "NAME ..." ARGS...: reject any leading --option not in the list (before
# parse_options.sh, which would accept any variable that happens to exist, e.g. --HOME).
jobs_check_options() {
    local allowed=" $1 " opt name known=""
    shift
    for name in $allowed; do known+=" --$name"; done
    while [[ $# -gt 0 ]]; do
        case $1 in
            --help|-h) return 0 ;;
            --*=*) opt=${1%%=*}; shift ;;
            --*) opt=$1; shift; [[ $# -eq 0 ]] || shift ;;
            *) return 0 ;;
        esac
        name=${opt#--}
        name=${name//-/_}
        if [[ $allowed != *" $name "* ]]; then
            jobs_die "unknown option $opt (options:$known; see $jobs_prog --help)"
        fi
    done
}

# jobs_parse_positionals [NAME=A:B] LOG CMD ARGS...: sets jobs_var (empty for a single job),
# jobs_first, jobs_last, jobs_template (the log path) and the jobs_cmd array.
jobs_parse_positionals() {
    jobs_var=""
    jobs_first=1
    jobs_last=1
    if [[ $# -gt 0 && $1 =~ ^([A-Za-z_][A-Za-z0-9_]*)=([0-9]+)(:([0-9]+))?$ ]]; then
        jobs_var=${BASH_REMATCH[1]}
        jobs_first=$((10#${BASH_REMATCH[2]}))
        jobs_last=$((10#${BASH_REMATCH[4]:-${BASH_REMATCH[2]}}))
        shift
        [[ $jobs_first -le $jobs_last ]] || jobs_die "empty job range $jobs_var=$jobs_first:$jobs_last"
    fi
    [[ $# -ge 2 ]] || jobs_die "usage: $jobs_prog [options] [JOB=1:N] LOG CMD ARGS... (see $jobs_prog --help)"
    jobs_template=$1
    shift
    jobs_cmd=("$@")
    [[ $jobs_template != -* ]] || jobs_die "options go before the job range and log file, got $jobs_template as the log file"
    if [[ $jobs_last -gt $jobs_first && $jobs_template != *"$jobs_var"* ]]; then
        jobs_die "the log file $jobs_template must contain $jobs_var when running several jobs"
    fi
}

# jobs_check_values: the resource options every backend takes must be well formed.
jobs_check_values() {
    [[ -z $max_jobs || $max_jobs =~ ^[1-9][0-9]*$ ]] || jobs_die "--max_jobs must be a positive integer, got '$max_jobs'"
    [[ $gpu =~ ^[0-9]+$ ]] || jobs_die "--gpu must be a number of GPUs, got '$gpu'"
    [[ $num_threads =~ ^[0-9]+$ ]] || jobs_die "--num_threads must be a number, got '$num_threads'"
    [[ $num_nodes =~ ^[1-9][0-9]*$ ]] || jobs_die "--num_nodes must be a positive integer, got '$num_nodes'"
    [[ -z $mem || $mem =~ ^[0-9]+[KMGTkmgt]?$ ]] || jobs_die "--mem must look like 4G or 500M, got '$mem'"
}

# jobs_ncpu: CPUs available to this process (nproc alone would follow OMP_NUM_THREADS).
jobs_ncpu() {
    env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1
}

if [[ ${BASH_SOURCE[0]} != "$0" ]]; then
    return 0   # sourced for the functions
fi

# ---------------------------------------------------------------------------------------------
max_jobs=$(jobs_ncpu)
num_threads=0
mem=""
gpu=0
time=""
num_nodes=1
help_message="usage: $jobs_prog [options] [JOB=1:N] LOG CMD ARGS...
Runs CMD on this machine (N jobs with JOB replaced by 1..N in LOG, CMD and ARGS), output in LOG.
  --max_jobs N     jobs at once (default: number of CPUs, here $max_jobs)
  --num_threads N  OMP_NUM_THREADS/MKL_NUM_THREADS for the jobs (0: unset)
  --mem M, --gpu N, --time T   accepted and ignored here (resource requests for cluster backends)
  --num_nodes N    must be 1 on this machine
Exit 0 when every job succeeded; else 1, with a summary of the failed jobs on stderr."

jobs_check_options "max_jobs num_threads mem gpu time num_nodes" "$@"
. "$jobs_utils/parse_options.sh"
jobs_parse_positionals "$@"
[[ -n $max_jobs ]] || max_jobs=$(jobs_ncpu)
jobs_check_values
[[ $num_nodes -eq 1 ]] || jobs_die "--num_nodes $num_nodes needs a cluster backend (cmd_backend=slurm); this one runs on one machine"
if [[ $num_threads -gt 0 ]]; then
    export OMP_NUM_THREADS=$num_threads MKL_NUM_THREADS=$num_threads
fi

jobs_pids=()
jobs_on_signal() {
    trap - TERM INT
    echo "$jobs_prog: got SIG$1; stopping the running jobs" >&2
    [[ ${#jobs_pids[@]} -eq 0 ]] || kill -TERM "${jobs_pids[@]}" 2>/dev/null || true
    wait || true
    exit "$2"
}
trap 'jobs_on_signal TERM 143' TERM
trap 'jobs_on_signal INT 130' INT

running=0
for ((j = jobs_first; j <= jobs_last; j++)); do
    while [[ $running -ge $max_jobs ]]; do
        wait -n || true
        running=$((running - 1))
    done
    if [[ -n $jobs_var ]]; then
        log=${jobs_template//"$jobs_var"/$j}
        args=("${jobs_cmd[@]//"$jobs_var"/$j}")
    else
        log=$jobs_template
        args=("${jobs_cmd[@]}")
    fi
    jobs_run_logged "$log" "${args[@]}" &
    jobs_pids+=($!)
    running=$((running + 1))
done
wait || true

failed=0
total=$((jobs_last - jobs_first + 1))
for ((j = jobs_first; j <= jobs_last; j++)); do
    if [[ -n $jobs_var ]]; then
        log=${jobs_template//"$jobs_var"/$j}
        label="job $j"
    else
        log=$jobs_template
        label="job"
    fi
    code=$(jobs_log_exit "$log")
    [[ $code != 0 ]] || continue
    failed=$((failed + 1))
    if [[ -n $code ]]; then
        jobs_report_failure "$label" "$log" "exit $code"
    else
        jobs_report_failure "$label" "$log" "exit ?, no end line in the log"
    fi
done
if [[ $failed -gt 0 ]]; then
    echo "$jobs_prog: $failed of $total jobs failed" >&2
    exit 1
fi
exit 0
