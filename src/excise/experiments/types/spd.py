"""Stochastic parameter decomposition as an experiment type of the one engine.

The config is an SPD config (``excise.spd.SPDConfig``: target, decomposition, loss, train, eval)
with ``type: spd``; the named experiments ``spd-<name>`` (YAML in ``experiments/configs``) sweep
seeds and the importance-minimality coefficient. Each run trains and evaluates one decomposition
into the engine's run folder (checkpoints, history, plots under ``artifacts/``) and returns the
scalar metrics (MMCS, alive counts, reconstruction losses, timing) as a flat mapping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from excise.experiments.registry import (
    ExperimentConfig,
    ReportFigure,
    register_experiment_type,
    scalar_metrics,
)
from excise.spd.config import DecompositionConfig, EvalConfig, LossConfig, TrainConfig
from excise.spd.config import Target as TargetConfig


class SPDExperimentConfig(ExperimentConfig):
    """One SPD run: the fields of ``excise.spd.SPDConfig`` plus ``type: spd``."""

    type: Literal["spd"] = "spd"
    name: str
    target: TargetConfig
    decomposition: DecompositionConfig
    loss: LossConfig = LossConfig.model_validate({})
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()


def to_spd_config(cfg: SPDExperimentConfig) -> Any:
    """The plain SPD config of an experiment config (``type`` dropped)."""
    from excise.config import validate
    from excise.spd.config import SPDConfig

    data = {k: v for k, v in cfg.to_dict().items() if k != "type"}
    return validate(SPDConfig, data, what="SPD config")


def run_spd(cfg: SPDExperimentConfig, ctx: Any) -> dict[str, Any]:
    """Train and evaluate one decomposition; artifacts go to the run's ``artifacts`` folder."""
    from excise.spd.registry import run_experiment

    spd_cfg = to_spd_config(cfg)
    ctx.logger.info("SPD %s: seed %d, %d steps", spd_cfg.name, spd_cfg.seed, spd_cfg.train.steps)
    res = run_experiment(spd_cfg, out_dir=ctx.artifacts_dir, bookkeeping=False, show_progress=False)
    return scalar_metrics(res.metrics)


def plot_spd(table: Any, out_dir: Path) -> list[ReportFigure]:
    """The headline metrics across the sweep's runs (one point per run, by seed or coefficient)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs: list[ReportFigure] = []
    prefixes = ("tms.mmcs", "alive.", "faithfulness", "reconstruction.")
    cols = [
        c
        for c in table.columns
        if str(c).startswith(prefixes) and str(table[c].dtype).startswith(("float", "int"))
    ]
    if not cols or len(table) == 0:
        return figs
    x = next((c for c in ("seed", "loss.importance_minimality") if c in table.columns), None)
    for col in cols:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        xs = table[x] if x else range(len(table))
        ax.plot(xs, table[col], "o")
        ax.set_xlabel(x or "run")
        ax.set_ylabel(col)
        ax.set_title(f"{col} per run")
        path = out_dir / f"spd_{col.replace('.', '_')}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        figs.append(ReportFigure(path, f"SPD: {col} per run"))
    return figs


register_experiment_type("spd", SPDExperimentConfig, run_spd, plot_spd)
