"""Job backends: utils/run.sh (local), utils/slurm.sh (against a fake sbatch), egs/TEMPLATE/cmd.sh."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "utils" / "run.sh"
SLURM = ROOT / "utils" / "slurm.sh"
CMD_SH = ROOT / "egs" / "TEMPLATE" / "cmd.sh"
END = re.compile(r"^# ended \(exit code (\d+)\) at .* elapsed \d+s$")


def run(script: Path, *args: str, cwd: Path, env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


# --- utils/run.sh --------------------------------------------------------------------------------

def test_run_substitutes_job_in_logs_and_args(tmp_path):
    p = run(RUN, "JOB=1:3", "log/out.JOB.log", "echo", "job", "JOB", "of", "x.JOB.y", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    for j in (1, 2, 3):
        out = lines(tmp_path / "log" / f"out.{j}.log")
        assert out[0] == f"# echo job {j} of x.{j}.y"
        assert out[1].startswith("# started at ")
        assert out[2] == f"job {j} of x.{j}.y"
        assert END.match(out[3]) and END.match(out[3]).group(1) == "0"
        assert len(out) == 4


def test_run_respects_max_jobs(tmp_path):
    # Each job waits (up to 10 s) until two jobs have started, so the run only succeeds if
    # two ran at once; the recorded [start, end] intervals must never overlap more than 2 deep.
    job = ("touch started.JOB; n=0; "
           "while [ $(ls started.* | wc -l) -lt 2 ]; do sleep 0.05; n=$((n+1)); [ $n -lt 200 ] || exit 9; done; "
           "date +%s%N > start.JOB; sleep 0.2; date +%s%N > end.JOB")
    p = run(RUN, "--max_jobs", "2", "JOB=1:5", "log/c.JOB.log", "bash", "-c", job, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    spans = [(int((tmp_path / f"start.{j}").read_text()), int((tmp_path / f"end.{j}").read_text()))
             for j in range(1, 6)]
    overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert overlap <= 2


def test_run_failure_summary(tmp_path):
    job = "for i in 1 2 3 4 5; do echo line$i-JOB; done; [ JOB != 2 ] || exit 7"
    p = run(RUN, "JOB=1:3", "log/f.JOB.log", "bash", "-c", job, cwd=tmp_path)
    assert p.returncode == 1
    err = p.stderr.splitlines()
    assert err == [
        "run.sh: job 2 failed (exit 7); see log/f.2.log",
        "    line3-2",
        "    line4-2",
        "    line5-2",
        "run.sh: 1 of 3 jobs failed",
    ]
    assert END.match(lines(tmp_path / "log" / "f.2.log")[-1]).group(1) == "7"
    assert END.match(lines(tmp_path / "log" / "f.3.log")[-1]).group(1) == "0"


def test_run_single_job(tmp_path):
    p = run(RUN, "--mem", "4G", "--gpu", "1", "--time", "1:00:00", "--num_threads", "3", "one.log",
            "bash", "-c", 'echo "threads=$OMP_NUM_THREADS"; printf "no newline"', cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = lines(tmp_path / "one.log")
    assert out[2:4] == ["threads=3", "no newline"]
    assert END.match(out[4])

    p = run(RUN, "sub/two.log", "bash", "-c", "echo oops; exit 3", cwd=tmp_path)
    assert p.returncode == 1
    assert p.stderr.splitlines()[0] == "run.sh: job failed (exit 3); see sub/two.log"
    assert "    oops" in p.stderr.splitlines()
    assert p.stderr.splitlines()[-1] == "run.sh: 1 of 1 jobs failed"


def test_run_rejects_bad_usage(tmp_path):
    p = run(RUN, "--foo", "3", "x.log", "true", cwd=tmp_path)
    assert p.returncode == 1
    assert "unknown option --foo" in p.stderr and "--max_jobs" in p.stderr
    p = run(RUN, "--HOME", "x", "x.log", "true", cwd=tmp_path)   # an existing variable is no option
    assert p.returncode == 1 and "unknown option --HOME" in p.stderr
    p = run(RUN, "JOB=1:2", "same.log", "true", cwd=tmp_path)
    assert p.returncode == 1 and "must contain JOB" in p.stderr
    p = run(RUN, "JOB=1:2", "--mem", "4G", "x.JOB.log", "true", cwd=tmp_path)
    assert p.returncode == 1 and "options go before" in p.stderr
    p = run(RUN, "x.log", cwd=tmp_path)
    assert p.returncode == 1 and "usage:" in p.stderr
    p = run(RUN, "--num_nodes", "2", "x.log", "true", cwd=tmp_path)
    assert p.returncode == 1 and "cluster backend" in p.stderr
    p = run(RUN, "--max_jobs", "0", "x.log", "true", cwd=tmp_path)
    assert p.returncode == 1 and "--max_jobs" in p.stderr
    assert not (tmp_path / "x.log").exists()


def test_run_sigterm_stops_jobs(tmp_path):
    proc = subprocess.Popen(["bash", str(RUN), "JOB=1:2", "log/s.JOB.log", "sleep", "30"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    logs = [tmp_path / "log" / f"s.{j}.log" for j in (1, 2)]
    deadline = time.time() + 10
    while not all(p.is_file() and len(lines(p)) >= 2 for p in logs) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 143
    assert "got SIGTERM" in err
    for p in logs:
        assert END.match(lines(p)[-1]).group(1) == "143"


# --- utils/slurm.sh with a fake sbatch --------------------------------------------------------------

FAKE_SBATCH = r"""#!/usr/bin/env bash
# Records its arguments, then runs the batch script here the way SLURM would: once per array
# task (SLURM_ARRAY_TASK_ID set), output appended to --output with %a / %% expanded.
{ printf '%s\n' "$@"; echo ---; } >> "$FAKE_DIR/sbatch.calls"
if [[ -n ${FAKE_SBATCH_FAIL:-} ]]; then echo "sbatch: error: invalid partition specified" >&2; exit 1; fi
array="" output="" script="" wait=0
for a in "$@"; do
    case $a in
        --array=*) array=${a#--array=} ;;
        --output=*) output=${a#--output=} ;;
        --wait) wait=1 ;;
        -*) ;;
        *) script=$a ;;
    esac
done
[[ $wait == 1 ]] || { echo "fake sbatch only does --wait" >&2; exit 2; }
echo "4242;fakecluster"
rc=0
task() {
    local out=${output//%%/$'\x01'}
    out=${out//%a/$1}
    out=${out//$'\x01'/%}
    [[ " ${FAKE_SBATCH_SKIP:-} " != *" $1 "* ]] || return 0     # e.g. cancelled before it started
    local r=0
    if [[ -n $array ]]; then
        SLURM_JOB_ID=4242 SLURM_ARRAY_TASK_ID=$1 bash "$script" >> "$out" 2>&1 || r=$?
    else
        SLURM_JOB_ID=4242 bash "$script" >> "$out" 2>&1 || r=$?
    fi
    [[ $r -le $rc ]] || rc=$r
}
if [[ -n $array ]]; then
    range=${array%%\%*}
    for ((t = ${range%-*}; t <= ${range#*-}; t++)); do task $t; done
else
    task 1
fi
exit $rc
"""

FAKE_SACCT = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >> "$FAKE_DIR/sacct.calls"
printf '%s\n' "4242_1|COMPLETED|0:0" "4242_2|TIMEOUT|0:15" "4242_3|COMPLETED|0:0"
"""

CONF = """# test cluster
partition=cpu
gpu_partition = "gpu"   # used with --gpu
time=2:00:00
mem=2G
cpus_per_task=1
account=proj
sbatch_opts=--constraint=avx2 --exclude=node13
log_wait=0
"""


def fake_slurm(tmp_path: Path) -> dict:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("sacct", FAKE_SACCT)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "slurm.conf").write_text(CONF)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_DIR": str(bin_dir)}


def sbatch_calls(tmp_path: Path) -> list[list[str]]:
    text = (tmp_path / "fakebin" / "sbatch.calls").read_text()
    return [c.strip("\n").split("\n") for c in text.split("---\n") if c.strip()]


def test_slurm_array_options_and_logs(tmp_path):
    env = fake_slurm(tmp_path)
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "x.2.log").write_text("stale\n# ended (exit code 0) at then elapsed 0s\n")
    p = run(SLURM, "--mem", "4G", "--gpu", "1", "--num_threads", "3", "--max_jobs", "2", "JOB=1:3",
            "log/x.JOB.log", "bash", "-c", 'echo "task JOB threads=$OMP_NUM_THREADS"', cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    (call,) = sbatch_calls(tmp_path)
    script = tmp_path / "log" / "x.JOB.log.sh"
    assert call[:2] == ["--parsable", "--wait"] and call[-1] == "log/x.JOB.log.sh"
    opts = call[2:-1]
    assert opts == [
        "--job-name=x", "--partition=gpu", "--account=proj", "--time=2:00:00", "--mem=4G",
        "--cpus-per-task=3", "--gres=gpu:1", "--array=1-3%2",
        f"--output={tmp_path}/log/x.%a.log", "--open-mode=append", "--constraint=avx2", "--exclude=node13",
    ]
    text = script.read_text()
    assert [f"#SBATCH {o}" for o in opts] == [ln for ln in text.splitlines() if ln.startswith("#SBATCH")]
    for j in (1, 2, 3):
        out = lines(tmp_path / "log" / f"x.{j}.log")
        assert out[0] == f"# bash -c 'echo \"task {j} threads=$OMP_NUM_THREADS\"'"
        assert out[2] == f"task {j} threads=3"
        assert END.match(out[3]).group(1) == "0"


def test_slurm_defaults_single_job_and_nodes(tmp_path):
    env = fake_slurm(tmp_path)
    p = run(SLURM, "--num_nodes", "2", "--time", "30:00", "exp/train.log", "echo", "hi", cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    (call,) = sbatch_calls(tmp_path)
    assert call[2:-1] == [
        "--job-name=train", "--partition=cpu", "--account=proj", "--time=30:00", "--mem=2G",
        "--cpus-per-task=1", "--nodes=2", "--ntasks-per-node=1",
        f"--output={tmp_path}/exp/train.log", "--open-mode=append", "--constraint=avx2", "--exclude=node13",
    ]
    assert call[-1] == "exp/train.log.sh" and (tmp_path / "exp" / "train.log.sh").is_file()
    assert lines(tmp_path / "exp" / "train.log")[2] == "hi"


def test_slurm_failures_summarised(tmp_path):
    env = fake_slurm(tmp_path)
    # Task 2 never runs (so only SLURM knows why: TIMEOUT); its stale log must not count.
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "d.2.log").write_text("# ended (exit code 0) at then elapsed 0s\n")
    env["FAKE_SBATCH_SKIP"] = "2"
    job = "echo a-JOB; echo b-JOB; echo c-JOB; [ JOB != 3 ] || exit 5"
    p = run(SLURM, "--config", "conf/slurm.conf", "JOB=1:3", "log/d.JOB.log", "bash", "-c", job, cwd=tmp_path, env=env)
    assert p.returncode == 1
    err = p.stderr.splitlines()
    assert err[0] == "slurm.sh: job 2 failed (exit ?, SLURM state TIMEOUT); see log/d.2.log"
    assert err[1] == "slurm.sh: job 3 failed (exit 5); see log/d.3.log"
    assert err[2:5] == ["    a-3", "    b-3", "    c-3"]
    assert err[5] == "slurm.sh: 2 of 3 jobs failed (SLURM job 4242)"
    assert "4242" in (tmp_path / "fakebin" / "sacct.calls").read_text()


def test_slurm_submission_errors(tmp_path):
    env = fake_slurm(tmp_path)
    p = run(SLURM, "x.log", "true", cwd=tmp_path, env={**env, "FAKE_SBATCH_FAIL": "1"})
    assert p.returncode == 1
    assert "invalid partition" in p.stderr and "slurm.sh: sbatch failed (exit 1); nothing was submitted" in p.stderr
    (tmp_path / "bad.conf").write_text("partition=cpu\nmemory=4G\n")
    p = run(SLURM, "--config", "bad.conf", "x.log", "true", cwd=tmp_path, env=env)
    assert p.returncode == 1 and "bad.conf:2: unknown key 'memory'" in p.stderr
    p = run(SLURM, "--queue", "q", "x.log", "true", cwd=tmp_path, env=env)
    assert p.returncode == 1 and "unknown option --queue" in p.stderr


# --- egs/TEMPLATE/cmd.sh ---------------------------------------------------------------------------

def source_cmd(tmp_path: Path, backend: str, env: dict | None = None) -> subprocess.CompletedProcess:
    script = (f'set -euo pipefail; cmd_backend={backend}; . {CMD_SH}; '
              'echo "$cmd"; echo "$train_cmd"; echo "$decode_cmd"')
    return subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)


def test_cmd_sh_backends(tmp_path):
    p = source_cmd(tmp_path, "local")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [str(RUN)] * 3

    env = fake_slurm(tmp_path)   # also writes conf/slurm.conf, which cmd.sh prefers
    p = source_cmd(tmp_path, "slurm", env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [f"{SLURM} --config {tmp_path}/conf/slurm.conf"] * 3

    p = source_cmd(tmp_path, "pbs")
    assert p.returncode != 0 and "unknown cmd_backend 'pbs'" in p.stderr

    # The prefix is used unquoted, as recipes do.
    p = subprocess.run(["bash", "-c", f'cmd_backend=local; . {CMD_SH}; $cmd JOB=1:2 l.JOB.log echo JOB'],
                       cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and lines(tmp_path / "l.2.log")[2] == "2"


# --- egs/TEMPLATE/legonn.sh dispatching through a backend ----------------------------------------

FAKE_LEGONN = r"""#!/usr/bin/env bash
# Records each call (and whether it runs inside a SLURM job), then does the minimum a stage needs.
echo "$* | job=${SLURM_JOB_ID:-none} threads=${OMP_NUM_THREADS:-unset}" >> "$FAKE_DIR/legonn.calls"
if [[ $1 == train ]]; then  # later stages look for the experiment's config.yaml
    while [[ $# -gt 0 && $1 != --exp_dir ]]; do shift; done
    mkdir -p "$2" && touch "$2/config.yaml"
fi
"""


def test_stage_script_sends_training_and_decoding_to_the_slurm_backend(tmp_path):
    root = tmp_path / "tree"
    (root / "egs" / "x").mkdir(parents=True)
    os.symlink(ROOT / "utils", root / "utils")
    os.symlink(ROOT / "egs" / "TEMPLATE", root / "egs" / "TEMPLATE")
    recipe = root / "egs" / "x" / "asr1"
    recipe.mkdir()
    (recipe / "run.sh").write_text(
        'set -euo pipefail\ncd "$(dirname "$0")"\nexperiments="m:conf/a.yaml,conf/b.yaml"\n'
        'decodes="m@test"\n. ../../TEMPLATE/legonn.sh "$@"\n')
    env = fake_slurm(recipe)
    fake = Path(env["FAKE_DIR"]) / "legonn"
    fake.write_text(FAKE_LEGONN)
    fake.chmod(0o755)
    p = subprocess.run(["bash", "run.sh", "--cmd_backend", "slurm", "--stage", "4", "--stop_stage", "7",
                        "--num_threads", "3"], cwd=recipe, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    calls = (Path(env["FAKE_DIR"]) / "legonn.calls").read_text().splitlines()
    train, average, export, decode = calls
    # training and decoding ran inside (fake) SLURM jobs with the thread request; both configs passed
    assert train.startswith("train --config conf/a.yaml conf/b.yaml --exp_dir exp/m") and "job=4242 threads=3" in train
    assert decode.startswith("decode --exp_dir exp/m") and "job=4242" in decode
    # light stages run on the submitting machine
    assert average.startswith("average --exp_dir exp/m") and "job=none" in average
    assert export.startswith("export --exp_dir exp/m") and "job=none" in export
    assert (recipe / "exp" / "logs" / "stage4_train.m.job.log").is_file()
    submitted = sbatch_calls(recipe)
    assert [c[2] for c in submitted] == ["--job-name=stage4_train.m.job", "--job-name=stage7_decode.m_test.job"]
    assert all("--cpus-per-task=3" in c for c in submitted)
