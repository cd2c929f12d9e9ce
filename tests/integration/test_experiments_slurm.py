"""The SLURM path without a cluster: the sbatch file submitit writes, the debug executor, requeue on pre-emption."""

from __future__ import annotations

import os
import re
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from excise.experiments import ExecutorConfig, load_document, run_sweep
from excise.experiments.runs import RunSpec, classify, read_status

FAKE_SBATCH = '''#!{python}
"""Fake sbatch: keep a copy of the submission file, print a job id, optionally run the array here."""
import os, re, shutil, subprocess, sys
from pathlib import Path
rec = Path(os.environ["FAKE_SLURM_DIR"])
n = len(list(rec.glob("sbatch_*.sh")))
job_id = 4242 + n
copy = rec / f"sbatch_{{n}}.sh"
shutil.copy(sys.argv[-1], copy)
if os.environ.get("FAKE_SLURM_EXECUTE") == "1":
    subprocess.Popen([sys.executable, str(rec / "bin" / "fake_runner.py"), str(copy), str(job_id)],
                     start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(f"Submitted batch job {{job_id}}")
'''

FAKE_SRUN = '''#!{python}
"""Fake srun: drop srun options, expand %A/%a/%j/%t in --output/--error, run the command."""
import os, subprocess, sys
args = sys.argv[1:]
out = err = os.devnull
while args and args[0].startswith("--"):
    opt = args.pop(0)
    if opt in ("--output", "--error"):
        val = args.pop(0)
        for k, v in (("%A", os.environ.get("SLURM_ARRAY_JOB_ID", "")), ("%a", os.environ.get("SLURM_ARRAY_TASK_ID", "")),
                     ("%j", os.environ.get("SLURM_JOB_ID", "")), ("%t", "0")):
            val = val.replace(k, v)
        if opt == "--output":
            out = val
        else:
            err = val
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
with open(out, "a") as o, open(err, "a") as e:
    sys.exit(subprocess.call(args, stdout=o, stderr=e))
'''

FAKE_RUNNER = '''
"""Run each task of a fake array job one after another, with the SLURM variables a task would see."""
import os, re, subprocess, sys
script, job_id = sys.argv[1], sys.argv[2]
text = open(script).read()
m = re.search(r"#SBATCH --array=0-(\\d+)", text)
tasks = range(int(m.group(1)) + 1) if m else [None]
for i in tasks:
    env = dict(os.environ, SLURM_JOB_ID=job_id, SLURM_NTASKS="1", SLURM_PROCID="0", SLURM_LOCALID="0",
               SLURM_NODEID="0", SLURM_JOB_NUM_NODES="1")
    if i is not None:
        env.update(SLURM_ARRAY_JOB_ID=job_id, SLURM_ARRAY_TASK_ID=str(i), SLURM_JOB_ID=f"{{job_id}}{{i}}")
    subprocess.call(["bash", script], env=env)
'''


def install_fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, execute: bool) -> Path:
    """Put fake ``sbatch`` and ``srun`` first on PATH; returns the folder where submissions are recorded."""
    rec = tmp_path / "fake_slurm"
    bin_dir = rec / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN), ("fake_runner.py", FAKE_RUNNER)):
        f = bin_dir / name
        f.write_text(text.format(python=sys.executable))
        f.chmod(f.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(rec))
    monkeypatch.setenv("FAKE_SLURM_EXECUTE", "1" if execute else "0")
    return rec


SLURM_SETS = [
    "executor.kind=slurm",
    "executor.slurm.partition=gpu-test",
    "executor.slurm.time_min=30",
    "executor.slurm.gpus_per_node=1",
    "executor.slurm.cpus_per_task=4",
    "executor.slurm.mem_gb=16",
    "executor.slurm.array_parallelism=2",
    "executor.slurm.account=interp",
    "executor.slurm.setup=['module load cuda']",
    "executor.slurm.max_requeues=5",
]


def test_sbatch_submission_file_is_a_job_array_with_the_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = install_fake_slurm(tmp_path, monkeypatch, execute=False)
    doc = load_document("quadratic", [f"marker_dir={tmp_path / 'm'}", *SLURM_SETS])
    out = tmp_path / "sw"
    lines: list[str] = []
    res = run_sweep(doc, out, mode="points", echo=lines.append)
    # a warm-up job first (builds the shared artifacts), then one array that waits for it
    assert res.submitted_jobs == ["4242", "4243_0", "4243_1"]
    assert res.states == {"pending": 3}  # submitted, nothing ran yet
    subs = sorted(rec.glob("sbatch_*.sh"))
    assert len(subs) == 2
    warm, text = subs[0].read_text(), subs[1].read_text()
    assert "--array" not in warm and "--dependency" not in warm and "#SBATCH --partition=gpu-test" in warm
    expected = [
        "#SBATCH --array=0-1%2",
        "#SBATCH --dependency=afterany:4242",
        "#SBATCH --partition=gpu-test",
        "#SBATCH --time=30",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=16GB",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --job-name=excise",
        "#SBATCH --account=interp",
        "#SBATCH --signal=USR2@120",
        "#SBATCH --open-mode=append",
        "module load cuda",
        "export SUBMITIT_EXECUTOR=slurm",
    ]
    for line in expected:
        assert line in text, line
    assert re.search(
        r"srun --unbuffered --output \S*/sw/slurm/%A_%a/%A_%a_%t_log.out .*"
        + re.escape(sys.executable)
        + r" -u -m submitit.core._submit \S*/sw/slurm/%j",
        text,
    )
    for rid in (p.name for p in (out / "runs").iterdir()):
        assert (out / "runs" / rid / "submission.json").is_file()
    assert any("submitted 3 job(s)" in x for x in lines)
    # the pickled task of each array element is our checkpointable SweepTask
    import pickle

    pkl = sorted((out / "slurm").glob("*/*_submitted.pkl"))
    assert len(pkl) == 3
    delayed = pickle.loads(pkl[-1].read_bytes())
    assert type(delayed.function).__name__ == "SweepTask" and hasattr(delayed.function, "checkpoint")
    assert delayed._timeout_countdown == 5


def test_submitit_debug_executor_runs_the_same_path(tmp_path: Path) -> None:
    doc = load_document("quadratic", [f"marker_dir={tmp_path / 'm'}"])
    exe = ExecutorConfig(kind="slurm", slurm={"cluster": "debug", "wait": True, "gpus_per_node": 0})  # type: ignore[arg-type]
    res = run_sweep(doc, tmp_path / "sw", mode="points", executor=exe)
    assert res.states == {"done": 3} and res.outcomes == {"done": 3}


def test_preemption_hands_the_run_back_and_the_requeued_job_finishes_it(tmp_path: Path) -> None:
    """What submitit does on USR2: call ``checkpoint`` mid-run, requeue the returned submission."""
    import cloudpickle

    from excise.experiments.executors import SweepTask
    from excise.experiments.sweep import plan_runs, prepare_sweep_dir, run_specs

    doc = load_document("quadratic", [f"marker_dir={tmp_path / 'm'}", "sleep_s=1.0", "sleep_attempts=1"])
    mode, planned = plan_runs(doc, "base")
    prepare_sweep_dir(tmp_path / "sw", doc, mode, planned)
    spec: RunSpec = run_specs(tmp_path / "sw", doc, planned)[0]
    task = SweepTask()
    outcome: list[str] = []
    th = threading.Thread(target=lambda: outcome.append(task(spec.to_dict())))
    th.start()
    run_dir = Path(spec.run_dir)
    deadline = time.time() + 20
    while (
        read_status(run_dir).state != "running" or not list((tmp_path / "m").glob("*.txt"))
    ) and time.time() < deadline:
        time.sleep(0.02)
    delayed = task.checkpoint(spec.to_dict())  # the signal handler's call
    chk = read_status(run_dir)
    st = chk.status
    assert st is not None and st["state"] == "pending" and "pre-empted" in st["note"], (chk.problem, delayed)
    assert not (run_dir / "lock").exists()
    th.join()
    assert outcome == ["interrupted"]  # the pre-empted attempt must not record a result
    assert classify(run_dir).state == "pending"
    requeued = cloudpickle.loads(cloudpickle.dumps(delayed))  # what the requeued job loads
    assert requeued.result() == "done"
    st = read_status(run_dir).status
    assert st is not None and st["state"] == "done" and st["attempt"] == 2
    assert any("pre-empted" in (h.get("note") or "") for h in st["history"])


def test_slurm_executor_outside_a_cluster_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from excise.errors import ExciseError

    monkeypatch.setenv("PATH", str(tmp_path))  # no srun anywhere
    doc = load_document("quadratic", [f"marker_dir={tmp_path / 'm'}", "executor.kind=slurm"])
    with pytest.raises(ExciseError, match="SLURM"):
        run_sweep(doc, tmp_path / "sw", mode="points")


@pytest.mark.slow
def test_fake_cluster_executes_the_job_array_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fake sbatch runs each array task with SLURM's variables through submitit's real job entry point."""
    install_fake_slurm(tmp_path, monkeypatch, execute=True)
    monkeypatch.setenv("EXCISE_NO_PROGRESS", "1")
    doc = load_document("quadratic", [f"marker_dir={tmp_path / 'm'}", *SLURM_SETS])
    out = tmp_path / "sw"
    res = run_sweep(doc, out, mode="points")
    assert len(res.submitted_jobs) == 3
    run_dirs = sorted((out / "runs").iterdir())
    deadline = time.time() + 150
    while not all(classify(d).state == "done" for d in run_dirs):
        assert time.time() < deadline, [classify(d).state for d in run_dirs]
        time.sleep(0.2)
    job_ids = sorted((read_status(d).status or {}).get("slurm_job_id") for d in run_dirs)
    assert job_ids == ["4242", "4243_0", "4243_1"]
    # resubmitting a finished sweep submits nothing
    again = run_sweep(doc, out, mode="points")
    assert again.submitted_jobs == [] and again.states == {"done": 3}
    markers = [len(f.read_text().splitlines()) for f in (tmp_path / "m").glob("*.txt")]
    assert markers == [1, 1, 1]
