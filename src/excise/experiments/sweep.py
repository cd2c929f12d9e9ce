"""Sweeps: expand a grid or an explicit list of points over any config field, then run what is missing.

A named experiment document (YAML) holds a base ``experiment`` config, named ``sweeps`` (each a
``grid`` of key -> values, a list of ``points``, or both: every point crossed with the grid), the
``executor`` and optional ``tracking`` sinks. Keys may be dotted (``eval.n_harmful``).

Running a sweep is idempotent: run ids are hashes of resolved configs, finished runs are skipped,
interrupted ones are redone, failed ones are retried only with ``retry_failed``.
"""

from __future__ import annotations

import copy
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from excise.config import BaseConfig, apply_overrides, parse_value, set_dotted, validate
from excise.errors import ExciseError
from excise.experiments.executors import (  # the executor options live with the executors
    ExecutorConfig,
    SlurmOptions,  # noqa: F401 - re-exported: excise.experiments.sweep.SlurmOptions
    make_executor,
)
from excise.experiments.registry import (
    ExperimentConfig,
    get_experiment_type,
    parse_experiment_config,
    resolve_named,
)
from excise.experiments.runs import (
    RunSpec,
    RunState,
    classify,
    config_dict,
    run_id_for,
    runs_root,
    write_config,
)
from excise.utils import atomic_write_json, atomic_write_text, check_plain_name, storage_error

Echo = Callable[[str], None]


# ---------------------------------------------------------------- document schema


class WandbOptions(BaseConfig):
    """Weights & Biases sink (``mode: offline`` needs no account)."""

    enabled: bool = False
    project: str = "excise"
    entity: str | None = None
    mode: Literal["offline", "online", "disabled"] = "offline"
    dir: str | None = None


class MlflowOptions(BaseConfig):
    """MLflow sink (default: a file store ``mlruns/`` inside the sweep folder)."""

    enabled: bool = False
    tracking_uri: str | None = None
    experiment: str | None = None


class TrackingConfig(BaseConfig):
    """Optional tracking sinks; they never change a run's id or result."""

    wandb: WandbOptions = WandbOptions()
    mlflow: MlflowOptions = MlflowOptions()


class SweepMode(BaseConfig):
    """One way to sweep: a grid (cartesian product), explicit points, or points crossed with a grid."""

    description: str = ""
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    points: list[dict[str, Any]] = Field(default_factory=list)


class ExperimentDocument(BaseConfig):
    """A named experiment: base config, named sweeps, executor and tracking settings."""

    name: str
    description: str = ""
    experiment: dict[str, Any]
    sweeps: dict[str, SweepMode] = Field(default_factory=dict)
    default_sweep: str | None = None
    executor: ExecutorConfig = ExecutorConfig()
    tracking: TrackingConfig = TrackingConfig()


#: Files that mark a folder as a sweep folder (anything else non-empty is refused as ``--out``).
SWEEP_MARKERS = ("sweep.yaml", "runs")

_DOC_SECTIONS = ("sweeps", "executor", "tracking", "default_sweep", "description", "name")


def load_document(name_or_path: str, overrides: list[str] | None = None) -> ExperimentDocument:
    """Load a named experiment or YAML file, apply ``--set`` overrides, validate everything.

    A file may be a full document (with an ``experiment:`` section) or a bare experiment config
    (with ``type:``). Override keys address the experiment config (``p=0.05``, ``eval.n=8``), except
    those starting with ``executor.``, ``tracking.`` or ``sweeps.`` (or ``experiment.``).
    """
    name, raw = resolve_named(name_or_path)
    if "experiment" not in raw and "type" in raw:
        raw = {"name": name, "experiment": raw}
    raw.setdefault("name", name)
    doc_over, exp_over = [], []
    for item in overrides or []:
        key = item.partition("=")[0].strip()
        head = key.split(".")[0]
        if head == "experiment":
            exp_over.append(item[len("experiment.") :])
        elif head in _DOC_SECTIONS:
            doc_over.append(item)
        else:
            exp_over.append(item)
    raw = apply_overrides(raw, doc_over)
    if not isinstance(raw.get("experiment"), dict):
        raise ExciseError(f"invalid experiment document '{name}': missing the 'experiment' section")
    raw["experiment"] = apply_overrides(raw["experiment"], exp_over)
    doc = validate(ExperimentDocument, raw, what=f"experiment document '{name}'")
    check_plain_name(doc.name, "experiment name")
    for mode in doc.sweeps:
        check_plain_name(mode, f"sweep mode of '{doc.name}'")
    parse_experiment_config(doc.experiment, what="experiment config")
    for mode, sweep in doc.sweeps.items():
        for key, values in sweep.grid.items():
            if not isinstance(values, list) or not values:
                raise ExciseError(f"sweep '{mode}' of '{name}': grid key '{key}' needs a non-empty list")
    return doc


# ---------------------------------------------------------------- planning


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    set_dotted(data, key, value, what="sweep key")


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


@dataclass
class PlannedRun:
    """One point of a sweep: its resolved config, run id and the overrides that produced it."""

    run_id: str
    config: ExperimentConfig
    point: dict[str, Any]

    @property
    def label(self) -> str:
        """The sweep point as text, e.g. ``p=0.05,q=0.01``."""
        return ",".join(f"{k}={_fmt(v)}" for k, v in self.point.items()) or "base"


def parse_grid_options(items: list[str] | None) -> dict[str, list[Any]]:
    """``key=v1,v2,v3`` (or a YAML list ``key=[v1, v2]``) -> {key: [values]}."""
    grid: dict[str, list[Any]] = {}
    for item in items or []:
        if "=" not in item:
            raise ExciseError(f"grid option '{item}' must look like key=v1,v2,v3")
        key, _, raw = item.partition("=")
        value = parse_value(raw)
        if not isinstance(value, list):
            value = [parse_value(x.strip()) for x in raw.split(",") if x.strip()]
        if not value:
            raise ExciseError(f"grid option '{item}' has no values")
        grid[key.strip()] = value
    return grid


BASE_MODE = "base"


def plan_runs(
    doc: ExperimentDocument, mode: str | None = None, extra_grid: Mapping[str, list[Any]] | None = None
) -> tuple[str, list[PlannedRun]]:
    """Expand a sweep mode (``base``: the base config alone) into validated, de-duplicated runs."""
    if mode is None:
        mode = (
            doc.default_sweep if doc.default_sweep else (next(iter(doc.sweeps)) if doc.sweeps else BASE_MODE)
        )
    if mode != BASE_MODE and mode not in doc.sweeps:
        known = ", ".join([*doc.sweeps, BASE_MODE])
        raise ExciseError(f"experiment '{doc.name}' has no sweep mode '{mode}'; modes: {known}")
    sweep = doc.sweeps[mode] if mode != BASE_MODE else SweepMode()
    grid = {**sweep.grid, **dict(extra_grid or {})}
    points = sweep.points or [{}]
    keys = list(grid)
    combos = list(itertools.product(*(grid[k] for k in keys))) if keys else [()]
    seen: dict[str, PlannedRun] = {}
    for i, point in enumerate(points):
        for combo in combos:
            over = {**point, **dict(zip(keys, combo, strict=True))}
            data = copy.deepcopy(doc.experiment)
            for k, v in over.items():
                _set_dotted(data, k, v)
            what = f"sweep point {i + 1} ({', '.join(f'{k}={_fmt(v)}' for k, v in over.items())})"
            cfg = parse_experiment_config(data, what=what)
            rid = run_id_for(cfg)
            if rid not in seen:
                seen[rid] = PlannedRun(rid, cfg, over)
    return mode, list(seen.values())


def run_specs(
    sweep_dir: Path, doc: ExperimentDocument, planned: list[PlannedRun], retry_failed: bool = False
) -> list[RunSpec]:
    """What workers need for each planned run."""
    specs = []
    for pr in planned:
        etype = get_experiment_type(pr.config.type)
        specs.append(
            RunSpec(
                run_dir=str(runs_root(sweep_dir) / pr.run_id),
                run_id=pr.run_id,
                type_name=etype.name,
                type_module=etype.module,
                config=config_dict(pr.config),
                retry_failed=retry_failed,
                tracking=doc.tracking.model_dump(mode="json") if _tracking_enabled(doc.tracking) else {},
                sweep_name=doc.name,
                label=pr.label,
            )
        )
    return specs


def _tracking_enabled(t: TrackingConfig) -> bool:
    return t.wandb.enabled or t.mlflow.enabled


def prepare_sweep_dir(sweep_dir: Path, doc: ExperimentDocument, mode: str, planned: list[PlannedRun]) -> None:
    """Create the folder: sweep.yaml, and for each run its folder with config.yaml and meta.json."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    old_text = None
    try:
        old_text = (sweep_dir / "sweep.yaml").read_text(encoding="utf-8")
        old = yaml.safe_load(old_text) or {}
        modes = [m for m in old.get("modes", []) if isinstance(m, str)]
    except (OSError, ValueError, yaml.YAMLError, AttributeError, TypeError):  # missing, not UTF-8, odd
        modes = []
    record = {
        "name": doc.name,
        "mode": mode,
        "modes": sorted({*modes, mode}),
        "document": doc.model_dump(mode="json"),
        "runs": [pr.run_id for pr in planned],
    }
    text = yaml.safe_dump(record, sort_keys=False)
    if text != old_text:
        atomic_write_text(sweep_dir / "sweep.yaml", text)
    for pr in planned:
        run_dir = runs_root(sweep_dir) / pr.run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        if not (run_dir / "status.json").exists():  # a started run's files are its owner's to write
            write_config(run_dir, config_dict(pr.config))
        etype = get_experiment_type(pr.config.type)
        meta = {
            "run_id": pr.run_id,
            "type": etype.name,
            "module": etype.module,
            "label": pr.label,
            "point": pr.point,
            "sweep": doc.name,
        }
        meta_path = run_dir / "meta.json"
        try:
            if json.loads(meta_path.read_text(encoding="utf-8")) == meta:
                continue
        except (OSError, ValueError):  # missing or unreadable: rewrite it
            pass
        atomic_write_json(meta_path, meta)


# ---------------------------------------------------------------- inspection


def sweep_runs(sweep_dir: Path) -> list[RunState]:
    """Classify every run folder of a sweep (no lock is taken)."""
    root = runs_root(Path(sweep_dir))
    if not root.is_dir():
        raise ExciseError(f"{sweep_dir} is not a sweep folder (no runs/ inside); run 'excise sweep' first")
    return [classify(d) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]


ACTIONS = {
    "done": "skip (done)",
    "failed": "skip (failed; --retry-failed to rerun)",
    "running": "skip (running elsewhere)",
    "pending": "run",
    "stale": "rerun (interrupted)",
    "corrupt": "rerun (corrupt record)",
}


def action_for(state: RunState, retry_failed: bool) -> str:
    """What a sweep would do with a run in this state."""
    if state.state == "failed" and retry_failed:
        return "retry (failed)"
    return ACTIONS[state.state]


def dry_run_lines(sweep_dir: Path, planned: list[PlannedRun], retry_failed: bool) -> list[str]:
    """Human-readable plan: what would run and what is already done."""
    lines = []
    counts: Counter[str] = Counter()
    width = max((len(p.label) for p in planned), default=4)
    for pr in planned:
        run_dir = runs_root(sweep_dir) / pr.run_id
        st = classify(run_dir) if run_dir.is_dir() else RunState(pr.run_id, "pending", None)
        act = action_for(st, retry_failed)
        counts[act.split(" ")[0]] += 1
        extra = f"  [{st.problem}]" if st.problem else ""
        lines.append(f"  {pr.run_id}  {pr.label:<{width}}  {st.state:<8} -> {act}{extra}")
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    return [f"{len(planned)} runs in {sweep_dir}: {summary}", *lines]


# ---------------------------------------------------------------- running


@dataclass
class SweepResult:
    """What a sweep invocation did and what the folder holds afterwards."""

    sweep_dir: Path
    mode: str
    planned: int
    outcomes: Counter[str] = field(default_factory=Counter)
    states: Counter[str] = field(default_factory=Counter)
    submitted_jobs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every planned run is done."""
        return self.states.get("failed", 0) == 0 and self.states.get("done", 0) == self.planned


def check_tracking_available(t: TrackingConfig) -> None:
    """Fail early, before any run starts, if an enabled sink is not installed."""
    import importlib.util

    for enabled, mod in ((t.wandb.enabled, "wandb"), (t.mlflow.enabled, "mlflow")):
        if enabled and importlib.util.find_spec(mod) is None:
            raise ExciseError(
                f"tracking.{mod}.enabled is true but '{mod}' is not installed; "
                f"pip install 'excise[tracking]' (or {mod}), or disable it"
            )


def run_sweep(
    doc: ExperimentDocument,
    sweep_dir: str | Path,
    mode: str | None = None,
    extra_grid: Mapping[str, list[Any]] | None = None,
    executor: ExecutorConfig | None = None,
    retry_failed: bool = False,
    dry_run: bool = False,
    echo: Echo | None = None,
    poll_s: float = 2.0,
) -> SweepResult:
    """Run every missing point of a sweep; returns counts of outcomes and final states."""
    say = echo or (lambda s: None)
    sweep_dir = Path(sweep_dir)
    check_plain_name(doc.name, "experiment name")  # also for documents built in code, not loaded
    mode_name, planned = plan_runs(doc, mode, extra_grid)
    exe_cfg = executor or doc.executor
    result = SweepResult(sweep_dir, mode_name, len(planned))
    if dry_run:
        for line in dry_run_lines(sweep_dir, planned, retry_failed):
            say(line)
        ex = make_executor(exe_cfg, sweep_dir)
        say(f"executor: {ex.describe()}")
        return result
    check_tracking_available(doc.tracking)
    try:
        return _run_prepared(doc, sweep_dir, mode_name, planned, exe_cfg, retry_failed, say, poll_s, result)
    except OSError as err:  # the sweep folder's disk refuses writes (full, read-only)
        raise storage_error(err, sweep_dir) from None


def _run_prepared(
    doc: ExperimentDocument,
    sweep_dir: Path,
    mode_name: str,
    planned: list[PlannedRun],
    exe_cfg: ExecutorConfig,
    retry_failed: bool,
    say: Echo,
    poll_s: float,
    result: SweepResult,
) -> SweepResult:
    prepare_sweep_dir(sweep_dir, doc, mode_name, planned)
    specs = run_specs(sweep_dir, doc, planned, retry_failed)
    ex = make_executor(exe_cfg, sweep_dir)
    say(f"sweep {doc.name}/{mode_name}: {len(planned)} runs in {sweep_dir} ({ex.describe()})")
    todo = _runnable(specs, retry_failed)
    if ex.asynchronous:
        todo = [s for s in todo if classify(Path(s.run_dir)).state != "running"]
        before = [s for s in todo if (Path(s.run_dir) / "submission.json").exists()]
        if before:
            say(
                f"{len(before)} of these runs were submitted before and have not finished; whichever job "
                "starts first runs each of them, the others exit at once"
            )
        if todo:
            result.submitted_jobs = ex.submit(todo, say)
        result.states = Counter(classify(Path(s.run_dir)).state for s in specs)
        return result
    tries: Counter[str] = Counter()
    waiting_for: set[str] = set()
    while True:
        todo = [s for s in todo if tries[s.run_id] < _MAX_ROUNDS]
        if todo:
            result.outcomes.update(ex.run(todo, say))
            tries.update(s.run_id for s in todo)
        states = {s.run_id: classify(Path(s.run_dir)).state for s in specs}
        unfinished = [s for s in specs if states[s.run_id] not in ("done", "failed")]
        # a run left pending/stale (its other owner died meanwhile) is taken over; busy ones are awaited
        todo = [s for s in unfinished if states[s.run_id] != "running" and tries[s.run_id] < _MAX_ROUNDS]
        busy = {s.run_id for s in unfinished if states[s.run_id] == "running"}
        if todo:
            continue
        if not busy:
            break
        if busy != waiting_for:
            say(f"waiting for {len(busy)} run(s) held by other processes ...")
            waiting_for = busy
        time.sleep(poll_s)
    result.states = Counter(classify(Path(s.run_dir)).state for s in specs)
    return result


_MAX_ROUNDS = 3


def _runnable(specs: list[RunSpec], retry_failed: bool) -> list[RunSpec]:
    out = []
    for s in specs:
        st = classify(Path(s.run_dir)).state
        if st == "done" or (st == "failed" and not retry_failed):
            continue
        out.append(s)
    return out
