"""``head-pruning``: duplicate-head pruning and zero-shot accuracy against the fraction of heads pruned.

One run: compare every head on a prompt set (``heads`` scores: per-head outputs or attention
patterns, euclidean / cosine / random), cluster the heads of each layer and keep the medoids with
a per-layer budget (``balanced``, ``imbalanced``, ``importance`` from the gradient head importance,
or ``random`` heads), apply the intervention (``mask``, ``zero``, ``merge``, ``duplicate``,
``remove``) and measure multiple-choice accuracy on local tasks (our evaluator or lm-eval).
The sweep varies fraction x budget x metric x representation; the report plots accuracy against
the fraction pruned, one line per method. The chain itself is :mod:`excise.head_pruning`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from excise.experiments.registry import ExperimentConfig, ReportFigure, register_experiment_type
from excise.head_pruning import check_head_request, evaluate_pruned, load_prompts, prune_heads_once


class HeadPruningConfig(ExperimentConfig):
    """Duplicate-head pruning at one fraction, budget, metric and representation; accuracy after."""

    type: Literal["head-pruning"] = "head-pruning"
    model: str = "tiny-llama"
    data: str = Field("utility", description="prompts the heads are compared on (built-in set or file)")
    n_prompts: int | None = Field(64, ge=1, description="first N prompts of data (None: all)")
    max_length: int | None = Field(128, ge=2, description="tokens per prompt (None: the model's context)")
    batch_size: int = Field(8, ge=1)
    metric: Literal["euclidean", "cosine", "random"] = "cosine"
    representation: Literal["output", "pattern"] = "output"
    budget: Literal["balanced", "imbalanced", "importance", "random"] = "balanced"
    fraction: float = Field(0.25, ge=0.0, lt=1.0)
    group_metric: Literal["euclidean", "cosine"] | None = Field(
        None,
        description="choose the kept head of a cluster on this distance instead (the thesis's group_metric)",
    )
    intervention: Literal["mask", "zero", "merge", "duplicate", "remove"] = "mask"
    tasks: list[str] = Field(default_factory=lambda: ["smollm2-commonsense"])
    evaluator: Literal["excise", "lm-eval"] = "excise"
    limit: int | None = Field(None, ge=1, description="documents per task (None: all)")


_MODELS: dict[str, tuple[Any, Any, dict[str, Any]]] = {}


def _model(name: str) -> tuple[Any, Any]:
    """The model, loaded once per process; its original weights are restored for every run."""
    from excise.models import load_model

    if name not in _MODELS:
        m, t = load_model(name)
        _MODELS[name] = (m, t, {k: v.clone() for k, v in m.state_dict().items()})
        return m, t
    m, t, state = _MODELS[name]
    if set(m.state_dict()) != set(state) or any(v.shape != state[k].shape for k, v in m.state_dict().items()):
        del _MODELS[name]  # physically pruned: load again
        return _model(name)
    m.load_state_dict(state)
    return m, t


def run_head_pruning(cfg: HeadPruningConfig, ctx: Any) -> dict[str, Any]:
    from excise.evaluation.lmeval import require_lmeval, resolve_tasks
    from excise.selection_heads import write_pruning_log

    resolve_tasks(cfg.tasks)
    if cfg.evaluator == "lm-eval":
        require_lmeval()
    model, tok = _model(cfg.model)
    check_head_request(model, cfg.budget, cfg.fraction, cfg.intervention)
    batches = load_prompts(cfg.data, tok, model, cfg.n_prompts, cfg.batch_size, cfg.max_length)
    _, sel = prune_heads_once(
        model, tok, batches, metric=cfg.metric, budget=cfg.budget, fraction=cfg.fraction,
        representation=cfg.representation, intervention=cfg.intervention, group_metric=cfg.group_metric,
        seed=cfg.seed,
    )  # fmt: skip
    write_pruning_log(sel, ctx.artifacts_dir)
    acc = evaluate_pruned(model, tok, sel, cfg.intervention, cfg.tasks, cfg.evaluator, cfg.limit)
    out: dict[str, Any] = {
        "heads_pruned": sel.count(),
        "heads_total": sel.numel(),
        "fraction_pruned": sel.fraction(),
        "method": f"{cfg.metric}/{cfg.budget}/{cfg.representation}",
    }
    for task, r in acc.items():
        out[f"acc/{task}"] = r["acc"]
        out[f"acc_norm/{task}"] = r["acc_norm"]
    out["acc"] = sum(r["acc"] for r in acc.values()) / len(acc)
    (ctx.artifacts_dir / "accuracy.json").write_text(json.dumps(acc, indent=2))
    ctx.logger.info("pruned %d/%d heads: acc %.4f", sel.count(), sel.numel(), out["acc"])
    return out


def plot_head_pruning(table: Any, out_dir: Path) -> list[ReportFigure]:
    """Mean task accuracy against the fraction of heads pruned, one line per method."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method, grp in table.groupby("method"):
        g = grp.sort_values("fraction_pruned")
        ax.plot(g["fraction_pruned"], g["acc"], marker="o", label=str(method))
    ax.set_xlabel("fraction of heads pruned")
    ax.set_ylabel("accuracy (mean over tasks)")
    ax.set_title("head duplication pruning")
    ax.legend(fontsize=7)
    path = out_dir / "head_pruning_accuracy.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [ReportFigure(path, "Accuracy vs heads pruned", "One line per metric/budget/representation.")]


register_experiment_type("head-pruning", HeadPruningConfig, run_head_pruning, plot_head_pruning)
