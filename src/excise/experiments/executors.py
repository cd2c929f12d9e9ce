"""Executors: in this process, a local pool of spawned worker processes, or SLURM through submitit.

Every executor calls :func:`excise.experiments.runs.execute_run`, which claims a run atomically, so
executors may overlap (two sweeps on one folder, a resubmitted job array) without running a run twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from excise.config import BaseConfig
from excise.errors import ExciseError, StorageError
from excise.experiments.runs import (
    RunSpec,
    classify,
    execute_run,
    install_sigterm_as_interrupt,
    mark_failed,
    release_active_runs,
)
from excise.threads import auto_threads, child_env
from excise.utils import atomic_write_json, storage_error

# A worker's answer that means "the disk refused a write", followed by the one-line message.
STORAGE_PREFIX = "storage-error:"

Echo = Callable[[str], None]


# ---------------------------------------------------------------- options (``executor:`` of a document)


class SlurmOptions(BaseConfig):
    """SLURM job settings (passed to submitit); ``cluster`` local/debug runs the same path without SLURM."""

    partition: str | None = None
    time_min: int = Field(default=240, ge=1)
    gpus_per_node: int = Field(default=1, ge=0)
    cpus_per_task: int = Field(default=8, ge=1)
    mem_gb: float | None = Field(default=32, gt=0)
    array_parallelism: int = Field(default=64, ge=1)
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    job_name: str = "excise"
    setup: list[str] = Field(default_factory=list)
    additional: dict[str, str | int | bool] = Field(default_factory=dict)
    max_requeues: int = Field(default=3, ge=0)
    signal_delay_s: int = Field(default=120, ge=1)
    python: str | None = None
    cluster: Literal["slurm", "local", "debug"] = "slurm"
    wait: bool = False


class ExecutorConfig(BaseConfig):
    """Where runs execute: in this process, a local pool of spawned processes, or SLURM.

    ``warmup``: run one run before the others start, so that what they share (a trained model,
    cached scores) is computed once instead of by every worker at the same time.
    """

    kind: Literal["inprocess", "local", "slurm"] = "local"
    workers: int | None = Field(default=None, ge=1)
    gpus: list[str] | None = None
    max_crash_retries: int = Field(default=1, ge=0)
    max_runs_per_worker: int | None = Field(default=1, ge=1)
    warmup: bool = True
    slurm: SlurmOptions = SlurmOptions()


class Executor:
    """Base: ``run`` executes specs and returns outcome counts; asynchronous ones ``submit`` instead."""

    asynchronous = False

    def describe(self) -> str:
        """One line saying where runs execute."""
        raise NotImplementedError

    def run(self, specs: list[RunSpec], say: Echo) -> Counter[str]:
        """Execute the runs (each claimed atomically); returns outcome counts."""
        raise NotImplementedError

    def submit(self, specs: list[RunSpec], say: Echo) -> list[str]:
        """Submit the runs and return at once (asynchronous executors); returns job ids."""
        raise NotImplementedError


def _bar(total: int, desc: str) -> Any:
    from tqdm.auto import tqdm

    disable = not sys.stderr.isatty() or os.environ.get("EXCISE_NO_PROGRESS") == "1"
    return tqdm(total=total, desc=desc, disable=disable, unit="run")


def _event(say: Echo, bar: Any, spec: RunSpec, outcome: str, detail: str = "") -> None:
    msg = f"{outcome:<14} {spec.run_id}  {spec.label}{('  ' + detail) if detail else ''}"
    if bar is not None and not bar.disable:
        bar.write(msg)
    else:
        say(msg)


def _duration(spec: RunSpec) -> str:
    st = classify(Path(spec.run_dir)).status
    d = (st or {}).get("duration_s")
    return f"({d:.1f} s)" if isinstance(d, (int, float)) else ""


class InProcessExecutor(Executor):
    """Runs one run after another in this process (tests, debugging)."""

    def describe(self) -> str:
        return "in-process"

    def run(self, specs: list[RunSpec], say: Echo) -> Counter[str]:
        counts: Counter[str] = Counter()
        bar = _bar(len(specs), "runs")
        try:
            for spec in specs:
                out = execute_run(spec)
                counts[out] += 1
                _event(say, bar, spec, out, _duration(spec) if out in ("done", "failed") else "")
                bar.update(1)
        finally:
            bar.close()
        return counts


# ---------------------------------------------------------------- local pool


def visible_gpus() -> list[str]:
    """GPU ids this process may use: CUDA_VISIBLE_DEVICES if set, else what torch counts (no CUDA init)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001
        return []


@contextlib.contextmanager
def _output_to(path: Path) -> Any:
    """Send this process's stdout and stderr (file descriptors 1 and 2) to ``path`` for a while."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with open(path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _worker_main(conn: Any, gpu: str | None, threads: int | None) -> None:
    """A spawned worker: pin its GPU, then execute the runs it is sent until told to stop."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    elif "CUDA_VISIBLE_DEVICES" not in os.environ:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    if threads:  # before torch loads in this process (excise.threads: the one policy)
        for var, value in child_env(threads).items():
            os.environ.setdefault(var, value)
    os.environ.setdefault("EXCISE_NO_PROGRESS", "1")
    install_sigterm_as_interrupt()
    try:
        while True:
            spec = conn.recv()
            if spec is None:
                break
            try:
                with _output_to(Path(spec["run_dir"]) / "run.log"):
                    outcome = execute_run(spec)
            except OSError as err:  # e.g. run.log cannot be opened on a read-only disk
                outcome = STORAGE_PREFIX + str(storage_error(err, spec["run_dir"]))
            except StorageError as err:
                outcome = STORAGE_PREFIX + str(err)
            conn.send(outcome)
            if outcome.startswith(STORAGE_PREFIX):
                break  # the disk refuses writes: the parent stops the sweep
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        pass  # interrupted, or the parent is gone: runs already finished are on disk
    finally:
        # no run is held any more: a SIGTERM from now on (the parent stopping the pool while this
        # process shuts down) just ends it, instead of raising into the interpreter's shutdown
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        conn.close()


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "unknown exit"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class _Slot:
    """One worker process of the pool, the GPU it sees and the run it is executing."""

    def __init__(self, index: int, gpu: str | None) -> None:
        self.index = index
        self.gpu = gpu
        self.proc: Any = None
        self.conn: Any = None
        self.spec: RunSpec | None = None
        self.runs = 0

    def start(self, ctx: Any, threads: int | None) -> None:
        """Spawn the worker process and its pipe."""
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_worker_main, args=(child, self.gpu, threads), name=f"excise-worker-{self.index}"
        )
        self.proc.start()
        child.close()
        self.conn = parent
        self.runs = 0

    def stop(self) -> None:
        """Ask the worker to exit (kill it if it does not)."""
        if self.proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(1)
        self.conn.close()
        self.proc = None


class LocalExecutor(Executor):
    """A pool of spawned worker processes: one per GPU (each sees only its GPU), else ``workers`` on CPU.

    A worker executes ``max_runs_per_worker`` runs and is replaced (default 1: a fresh process per
    run, so nothing leaks between runs; None keeps workers for the whole sweep). A worker that dies
    mid-run (kill -9, OOM killer) is replaced and its run retried ``max_crash_retries`` times.
    """

    def __init__(
        self,
        workers: int | None = None,
        gpus: list[str] | None = None,
        max_crash_retries: int = 1,
        max_runs_per_worker: int | None = 1,
        warmup: bool = True,
    ) -> None:
        self.gpus = list(gpus) if gpus is not None else visible_gpus()
        self.workers = workers or (len(self.gpus) if self.gpus else 1)
        self.max_crash_retries = max_crash_retries
        self.max_runs_per_worker = max_runs_per_worker
        self.warmup = warmup

    def describe(self) -> str:
        where = f"GPUs {','.join(self.gpus)}" if self.gpus else "CPU"
        return f"local pool of {self.workers} spawned worker(s) on {where}"

    def run(self, specs: list[RunSpec], say: Echo) -> Counter[str]:
        import multiprocessing as mp
        from multiprocessing.connection import wait

        ctx = mp.get_context("spawn")
        threads = None if self.gpus else auto_threads(workers=self.workers)
        queue = deque(specs)
        slots = [
            _Slot(i, self.gpus[i % len(self.gpus)] if self.gpus else None)
            for i in range(min(self.workers, max(1, len(specs))))
        ]
        crashes: Counter[str] = Counter()
        counts: Counter[str] = Counter()
        bar = _bar(len(specs), "runs")
        warming = self.warmup and len(slots) > 1 and len(specs) > 1
        if warming:
            say("warm-up: one run first, so that shared artifacts are built once")
        try:
            while queue or any(s.spec is not None for s in slots):
                for slot in slots:
                    if warming and any(s.spec is not None for s in slots):
                        break
                    if slot.spec is None and queue:
                        if slot.proc is None or not slot.proc.is_alive():
                            slot.start(ctx, threads)
                        slot.spec = queue.popleft()
                        slot.conn.send(slot.spec.to_dict())
                busy = [s for s in slots if s.spec is not None]
                ready = wait([s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout=1.0)
                for slot in busy:
                    spec = slot.spec
                    assert spec is not None
                    outcome: str | None = None
                    if slot.conn in ready:
                        try:
                            outcome = slot.conn.recv()
                        except (EOFError, OSError):
                            outcome = None
                    elif slot.proc.sentinel not in ready:
                        continue
                    if outcome is None:  # the worker died mid-run
                        slot.proc.join(5)
                        code = slot.proc.exitcode
                        slot.conn.close()
                        slot.proc = None
                        slot.spec = None
                        outcome = self._crashed(spec, code, crashes, queue, say, bar)
                        if outcome is None:
                            continue
                    elif outcome.startswith(STORAGE_PREFIX):  # stop at once, say it once
                        slot.spec = None
                        raise StorageError(outcome[len(STORAGE_PREFIX) :])
                    else:
                        slot.spec = None
                        slot.runs += 1
                        if self.max_runs_per_worker and slot.runs >= self.max_runs_per_worker:
                            slot.stop()
                    counts[outcome] += 1
                    warming = False
                    _event(say, bar, spec, outcome, _duration(spec) if outcome in ("done", "failed") else "")
                    bar.update(1)
        except BaseException:
            self._terminate(slots)
            raise
        finally:
            for slot in slots:
                if slot.proc is not None and slot.spec is None:
                    slot.stop()
            bar.close()
        return counts

    def _crashed(
        self,
        spec: RunSpec,
        code: int | None,
        crashes: Counter[str],
        queue: deque[RunSpec],
        say: Echo,
        bar: Any,
    ) -> str | None:
        state = classify(Path(spec.run_dir)).state
        if state in ("done", "failed"):  # died after recording its result
            return state
        crashes[spec.run_id] += 1
        why = _describe_exit(code)
        if crashes[spec.run_id] <= self.max_crash_retries:
            _event(say, bar, spec, "crashed", f"worker {why}; retrying")
            queue.append(spec)
            return None
        msg = f"worker process {why} {crashes[spec.run_id]} time(s) (out of memory?)"
        mark_failed(Path(spec.run_dir), spec, msg)
        _event(say, bar, spec, "failed", msg)
        return "failed"

    @staticmethod
    def _terminate(slots: list[_Slot]) -> None:
        # only workers holding a run; idle ones (and one that reported a full disk) are asked to
        # stop by the caller's ``finally``
        procs = [s.proc for s in slots if s.proc is not None and s.spec is not None]
        for p in procs:
            with contextlib.suppress(Exception):
                p.terminate()  # SIGTERM -> KeyboardInterrupt in the worker: its run is handed back
        deadline = time.monotonic() + 10
        for p in procs:
            p.join(max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(1)


# ---------------------------------------------------------------- SLURM via submitit


def _submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise ExciseError("the SLURM executor needs submitit: pip install 'excise[slurm]'") from None
    return submitit


def _checkpointable_base() -> type:
    try:
        from submitit.helpers import Checkpointable

        return Checkpointable
    except ImportError:
        return object


class SweepTask(_checkpointable_base()):  # type: ignore[misc]
    """The callable a SLURM job runs: execute one run; on pre-emption hand it back and requeue."""

    def __call__(self, spec: dict[str, Any]) -> str:
        return execute_run(spec)

    def checkpoint(self, spec: dict[str, Any]) -> Any:
        """Called by submitit on pre-emption or timeout: release the run (pending) and requeue."""
        release_active_runs("pre-empted or timed out; requeued")
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, spec)


class SlurmExecutor(Executor):
    """Job arrays through submitit (``cluster='local'``/``'debug'`` runs the same path without SLURM)."""

    def __init__(self, opts: SlurmOptions, sweep_dir: Path, warmup: bool = True) -> None:
        self.opts = opts
        self.folder = Path(sweep_dir) / "slurm"
        self.asynchronous = not opts.wait
        self.warmup = warmup

    def describe(self) -> str:
        o = self.opts
        parts = [
            f"partition={o.partition or 'default'}",
            f"time={o.time_min}min",
            f"gpus={o.gpus_per_node}",
            f"cpus={o.cpus_per_task}",
            f"mem={o.mem_gb}GB" if o.mem_gb else "mem=default",
            f"array%{o.array_parallelism}",
            f"requeues={o.max_requeues}",
        ]
        where = "SLURM" if o.cluster == "slurm" else f"submitit {o.cluster} executor"
        return f"{where} job array ({', '.join(parts)})"

    def make_submitit_executor(self) -> Any:
        """The configured submitit AutoExecutor (parameters checked by submitit itself)."""
        submitit = _submitit()
        o = self.opts
        kwargs: dict[str, Any] = {
            "slurm_max_num_timeout": o.max_requeues,
            "local_max_num_timeout": o.max_requeues,
        }
        if o.python:
            kwargs["slurm_python"] = o.python
            kwargs["local_python"] = o.python
        try:
            ex = submitit.AutoExecutor(folder=self.folder / "%j", cluster=o.cluster, **kwargs)
        except RuntimeError as err:
            raise ExciseError(
                f"cannot use SLURM here ({err}); run on a SLURM login node, or use --executor local"
            ) from None
        params: dict[str, Any] = {
            "name": o.job_name,
            "timeout_min": o.time_min,
            "gpus_per_node": o.gpus_per_node,
            "cpus_per_task": o.cpus_per_task,
            "nodes": 1,
            "tasks_per_node": 1,
            "slurm_array_parallelism": o.array_parallelism,
            "slurm_signal_delay_s": o.signal_delay_s,
        }
        if o.mem_gb:
            params["mem_gb"] = o.mem_gb
        for key in ("partition", "account", "qos", "constraint"):
            if getattr(o, key):
                params[f"slurm_{key}"] = getattr(o, key)
        if o.setup:
            params["slurm_setup"] = list(o.setup)
        if o.additional:
            params["slurm_additional_parameters"] = dict(o.additional)
        try:
            ex.update_parameters(**params)
        except (ValueError, NameError, AssertionError) as err:
            raise ExciseError(f"invalid SLURM options: {err}") from None
        return ex

    def _submit_jobs(self, specs: list[RunSpec], say: Echo) -> list[Any]:
        ex = self.make_submitit_executor()
        task = SweepTask()
        try:
            if self.warmup and len(specs) > 1 and self.opts.cluster == "slurm":
                # one job first; the array waits for it (afterany), so shared artifacts are built once
                first = ex.submit(task, specs[0].to_dict())
                extra = {**self.opts.additional, "dependency": f"afterany:{first.job_id}"}
                ex.update_parameters(slurm_additional_parameters=extra)
                jobs = [first, *ex.map_array(task, [s.to_dict() for s in specs[1:]])]
            else:
                jobs = ex.map_array(task, [s.to_dict() for s in specs])
        except Exception as err:  # noqa: BLE001 - sbatch failures come back as several types
            raise ExciseError(f"job submission failed: {err}") from None
        now = time.time()
        for spec, job in zip(specs, jobs, strict=True):
            atomic_write_json(
                Path(spec.run_dir) / "submission.json",
                {"job_id": str(job.job_id), "submitted_at": now, "cluster": self.opts.cluster},
            )
        with open(self.folder / "jobs.jsonl", "a") as f:
            for spec, job in zip(specs, jobs, strict=True):
                f.write(
                    json.dumps({"run_id": spec.run_id, "job_id": str(job.job_id), "submitted_at": now}) + "\n"
                )
        first = jobs[0].job_id if jobs else "-"
        say(f"submitted {len(jobs)} job(s) ({first} ...); logs in {self.folder}")
        return jobs

    def submit(self, specs: list[RunSpec], say: Echo) -> list[str]:
        self.folder.mkdir(parents=True, exist_ok=True)
        jobs = self._submit_jobs(specs, say)
        say("the sweep runs on the cluster; watch it with: excise status " + str(self.folder.parent))
        return [str(j.job_id) for j in jobs]

    def run(self, specs: list[RunSpec], say: Echo) -> Counter[str]:
        self.folder.mkdir(parents=True, exist_ok=True)
        jobs = self._submit_jobs(specs, say)
        counts: Counter[str] = Counter()
        for spec, job in zip(specs, jobs, strict=True):
            try:
                out = str(job.result())
            except Exception as err:  # noqa: BLE001 - a crashed job; the run folder says what is left
                out = classify(Path(spec.run_dir)).state
                say(f"job {job.job_id} ended without a result ({type(err).__name__}); run is {out}")
            counts[out] += 1
            say(f"{out:<14} {spec.run_id}  {spec.label}")
        return counts


def make_executor(cfg: ExecutorConfig, sweep_dir: Path) -> Executor:
    """Build the executor a config asks for."""
    if cfg.kind == "inprocess":
        return InProcessExecutor()
    if cfg.kind == "local":
        return LocalExecutor(
            cfg.workers, cfg.gpus, cfg.max_crash_retries, cfg.max_runs_per_worker, cfg.warmup
        )
    return SlurmExecutor(cfg.slurm, sweep_dir, cfg.warmup)
