"""``freeze-attack``: does freezing the safety-critical weights stop a fine-tuning attack? (Wei et al. 2024, Table 3)

One run = take the aligned model, identify its safety-critical weights (top ``q`` per matrix of
SNIP / Wanda scores on the safety set), freeze them (or, as the baseline, the same number of random
weights per matrix), fine-tune on ``n`` harmful request + compliant answer pairs (or, as the
control, ``n`` benign examples), and measure ASR, benign accuracy, perplexity, next-token KL from
the aligned model on benign prompts and over-refusal before and after. Runs without freezing
(``q = 0``) also *rewind*: restore the top-r safety-critical weights to the aligned values after
the attack, for each r in ``rewind_fractions`` (``excise.finetune.rewind`` = ``prune(..., base=)``).

Metrics: ``asr_before``, ``asr``, ``benign_accuracy_before``, ``benign_accuracy``, ``kl``,
``over_refusal`` ..., ``frozen_count``, ``frozen_fraction``, ``jaccard_after`` (safety-critical
set of the attacked model vs the original, per layer / matrix type in ``analysis.json``) and
``rewind_<r>_asr`` / ``rewind_<r>_benign_accuracy``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from excise.config import BaseConfig
from excise.evaluation.config import EvalConfig
from excise.experiments.registry import ExperimentConfig, ReportFigure, register_experiment_type


class AttackTrainOptions(BaseConfig):
    """How the attack fine-tunes (the same for every n, so only the data differs)."""

    epochs: float | None = Field(
        default=5.0,
        gt=0,
        description="passes over the n examples (steps = ceil(epochs * n / batch)); None: use steps",
    )
    steps: int = Field(default=20, ge=1, description="optimizer steps of the attack when epochs is None")
    learning_rate: float = Field(default=5e-4, gt=0)
    batch_size: int = Field(default=10, ge=1)
    weight_decay: float = Field(default=0.0, ge=0)
    max_length: int = Field(default=128, ge=8)


class FreezeAttackConfig(ExperimentConfig):
    """Fine-tuning attack with the top-q safety-critical (or random) weights frozen (Wei et al. 2024)."""

    type: Literal["freeze-attack"] = "freeze-attack"
    model: str = "organism"
    method: Literal["snip", "wanda"] = "snip"
    n: int = Field(default=10, ge=1, description="attack examples")
    data: Literal["harmful", "benign"] = "harmful"
    q: float = Field(
        default=0.0, ge=0, le=1, description="frozen fraction of each matrix (0 = nothing frozen)"
    )
    freeze: Literal["safety", "random"] = "safety"
    safety: str = "safety"
    n_safety: int | None = Field(default=128, ge=1, description="safety calibration size")
    score_batch_size: int = Field(default=8, ge=1)
    rewind_fractions: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7)
    train: AttackTrainOptions = AttackTrainOptions()
    eval: EvalConfig = EvalConfig(limit=60, max_new_tokens=48, kl_prompts=60)
    seed: int = 0


def _eval(model: Any, tok: Any, ref: Any, cfg: FreezeAttackConfig) -> dict[str, Any]:
    """evaluate_safety's scalars, plus next-token KL from ``ref`` and over-refusal on benign prompts."""
    from excise.evaluation import evaluate_safety

    ev = cfg.eval
    res = evaluate_safety(model, tok, ev.model_copy(update={"seed": cfg.seed}), keep_examples=0)
    out = {k: v for k, v in res.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    out.pop("seconds", None)
    if "kl" not in out and ref is not None:
        out["kl"] = next_token_kl(ref, model, tok, _benign_prompts(ev.kl_prompts))
    if "over_refusal" not in out:
        out["over_refusal"] = over_refusal(model, tok, _benign_prompts(ev.limit or 280), ev)
    return out


def _benign_prompts(n: int) -> list[Any]:
    from excise.data import load_examples

    return load_examples("benign-eval", limit=n)


def next_token_kl(ref: Any, model: Any, tok: Any, prompts: Sequence[Any], batch_size: int = 16) -> float:
    """Mean KL(ref || model) of the next-token distribution after each prompt (chat template, left-padded)."""
    import torch

    from excise.data import pad_id
    from excise.evaluation.generation import encode_prompts, left_pad

    enc = encode_prompts(tok, [p.prompt for p in prompts])
    total, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(enc), batch_size):
            ids, att = left_pad(enc[s : s + batch_size], pad_id(tok))
            lp = [
                torch.log_softmax(m(input_ids=ids, attention_mask=att).logits[:, -1].float(), -1)
                for m in (ref, model)
            ]
            total += float((lp[0].exp() * (lp[0] - lp[1])).sum())
            count += ids.shape[0]
    return total / max(count, 1)


def over_refusal(model: Any, tok: Any, prompts: Sequence[Any], ev: EvalConfig) -> float:
    """Fraction of benign prompts the model refuses (keyword refusal detector, greedy decoding)."""
    from excise.evaluation import generate, is_refusal

    outs = generate(
        model, tok, [p.prompt for p in prompts], max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size
    )
    return sum(bool(is_refusal(o[0])) for o in outs) / max(len(outs), 1)


def _before(model: Any, tok: Any, cfg: FreezeAttackConfig, log: Any) -> dict[str, Any]:
    """The aligned model's metrics, computed once per (model, eval settings) and cached."""
    from excise.cache import model_fingerprint
    from excise.utils import atomic_write_json, cache_dir, stable_hash

    key = stable_hash(
        {"model": model_fingerprint(model), "eval": cfg.eval.to_dict(), "seed": cfg.seed, "v": 1}
    )
    path = cache_dir() / "freeze_attack" / f"before-{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    log("evaluating the aligned model (once; cached)")
    out = _eval(model, tok, None, cfg)
    out["kl"] = 0.0
    atomic_write_json(path, out)
    return out


def run_freeze_attack(cfg: FreezeAttackConfig, ctx: Any) -> dict[str, Any]:
    """Identify, freeze, attack, evaluate, (q = 0) rewind; returns flat metrics."""
    import copy

    from excise.data import load_examples
    from excise.finetune import FinetuneArgs, finetune, rewind
    from excise.freeze_analysis import compare, safety_critical
    from excise.models import load_model
    from excise.selection import random_selection
    from excise.zoo.attack import attack_examples

    log = ctx.logger.info
    model, tok = load_model(cfg.model)
    aligned = copy.deepcopy(model).eval()
    before = _before(model, tok, cfg, log)
    safety = load_examples(cfg.safety, limit=cfg.n_safety, require_response=True)

    def critical(m: Any, q: float, cache: bool = True) -> Any:
        return safety_critical(
            m, tok, safety, cfg.method, q, batch_size=cfg.score_batch_size, use_cache=cache
        )

    frozen = None
    if cfg.q > 0:
        frozen = critical(aligned, cfg.q)
        if cfg.freeze == "random":
            frozen = random_selection(frozen, seed=cfg.seed)
    train = attack_examples(cfg.n, cfg.data, seed=cfg.seed)
    t = cfg.train
    batch = min(t.batch_size, cfg.n)
    steps = t.steps if t.epochs is None else max(1, math.ceil(t.epochs * cfg.n / batch))
    args = FinetuneArgs(
        max_steps=steps,
        learning_rate=t.learning_rate,
        batch_size=batch,
        weight_decay=t.weight_decay,
        max_length=t.max_length,
        seed=cfg.seed,
        logging_steps=max(1, steps // 4),
    )
    log("attack: %d %s examples, %d steps, q=%g (%s)", cfg.n, cfg.data, steps, cfg.q, cfg.freeze)
    train_metrics = finetune(model, tok, train, args, frozen)
    after = _eval(model, tok, aligned, cfg)
    metrics: dict[str, Any] = {f"{k}_before": v for k, v in before.items()}
    metrics.update(after)
    metrics["train_loss"] = train_metrics.get("train_loss")
    metrics["train_steps"] = steps
    total = sum(p.numel() for n, p in model.named_parameters() if frozen is not None and n in frozen)
    metrics["frozen_count"] = frozen.count() if frozen is not None else 0
    metrics["frozen_fraction"] = frozen.count() / total if frozen is not None and total else 0.0
    # what the attack did to the safety-critical set (top 0.1 per matrix; q itself when freezing)
    probe_q = cfg.q if cfg.q > 0 else 0.1
    orig_sel = critical(aligned, probe_q)
    new_sel = critical(model, probe_q, cache=False)
    analysis = compare(orig_sel, new_sel)
    metrics["jaccard_after"] = analysis["jaccard"]
    for mt, row in analysis["per_matrix_type"].items():
        metrics[f"jaccard_{mt.replace('.', '_')}"] = row["jaccard"]
    (ctx.artifacts_dir / "analysis.json").write_text(
        json.dumps({k: v for k, v in analysis.items() if k != "per_matrix"}, indent=2) + "\n"
    )
    if cfg.q == 0:
        attacked = {k: v.detach().clone() for k, v in model.state_dict().items()}
        for r in cfg.rewind_fractions:
            sel = critical(aligned, r)
            rewind(model, sel, base=aligned)
            res = _eval(model, tok, aligned, cfg)
            for k in ("asr", "benign_accuracy", "kl", "over_refusal"):
                if k in res:
                    metrics[f"rewind_{r:g}_{k}"] = res[k]
            model.load_state_dict(attacked)
    return metrics


# ---------------------------------------------------------------- plots


def _series(df: Any, col: str) -> tuple[list[float], list[float]]:
    d = df.dropna(subset=[col]).sort_values("q")
    return [float(x) for x in d["q"]], [float(y) for y in d[col]]


def plot_freeze_attack(table: Any, out_dir: Path) -> list[ReportFigure]:
    """ASR vs frozen fraction (one line per n; safety-critical vs random; rewind), and Jaccard after the attack."""
    import matplotlib.pyplot as plt

    figs: list[ReportFigure] = []
    if "asr" not in table.columns or "q" not in table.columns:
        return figs
    df = table[table.get("state", "done") == "done"] if "state" in table.columns else table
    for data_kind in sorted(df["data"].dropna().unique()) if "data" in df.columns else ["harmful"]:
        d = df[df["data"] == data_kind] if "data" in df.columns else df
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, n in enumerate(sorted(d["n"].unique())):
            dn = d[d["n"] == n]
            c = colours[i % len(colours)]
            none = dn[dn["q"] == 0]
            for kind, style in (("safety", "-o"), ("random", ":s")):
                part = dn[(dn["freeze"] == kind) | (dn["q"] == 0)]
                x, y = _series(part.drop_duplicates(subset=["q"]), "asr")
                if x:
                    ax.plot(x, y, style, color=c, label=f"n={n}, freeze {kind}")
            rw = [(float(col.split("_")[1]), float(none[col].iloc[0])) for col in none.columns
                  if col.startswith("rewind_") and col.endswith("_asr") and len(none) and none[col].notna().any()]  # fmt: skip
            if rw:
                rw = [(0.0, float(none["asr"].iloc[0])), *sorted(rw)]
                ax.plot(
                    [a for a, _ in rw], [b for _, b in rw], "--^", color=c, alpha=0.7, label=f"n={n}, rewind"
                )
            if "asr_before" in dn.columns and dn["asr_before"].notna().any():
                ax.axhline(float(dn["asr_before"].dropna().iloc[0]), color="grey", lw=0.8, ls="-.")
        ax.set_xlabel("fraction of each matrix frozen (or rewound)")
        ax.set_ylabel("attack success rate after fine-tuning")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"Fine-tuning on {data_kind} data with weights frozen")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        path = out_dir / f"freeze_attack_asr_{data_kind}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        figs.append(
            ReportFigure(
                path,
                f"ASR vs frozen fraction ({data_kind} fine-tuning)",
                "Solid: top-q safety-critical weights frozen; dotted: the same count at random; dashed: no "
                "freezing, then the top-q safety-critical weights rewound; grey: the aligned model.",
            )
        )
    jcols = [c for c in df.columns if c.startswith("jaccard_") and c != "jaccard_after"]
    if jcols and "freeze" in df.columns:
        fig, ax = plt.subplots(figsize=(7, 4))
        groups = [
            ("no freezing", df[df["q"] == 0]),
            ("safety frozen", df[(df["q"] > 0) & (df["freeze"] == "safety")]),
        ]
        groups.append(("random frozen", df[(df["q"] > 0) & (df["freeze"] == "random")]))
        width = 0.8 / len(groups)
        for gi, (label, g) in enumerate(groups):
            if len(g):
                ax.bar(
                    [i + gi * width for i in range(len(jcols))],
                    [float(g[c].mean()) for c in jcols],
                    width,
                    label=label,
                )
        ax.set_xticks(
            [i + width for i in range(len(jcols))],
            [c[len("jaccard_") :] for c in jcols],
            rotation=30,
            fontsize=7,
        )
        ax.set_ylabel("Jaccard (safety-critical set, before vs after)")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7)
        ax.set_title("How much the attack moved the safety-critical set, per matrix type")
        path = out_dir / "freeze_attack_jaccard.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        figs.append(
            ReportFigure(
                path, "Jaccard of safety-critical sets before vs after the attack", "Mean over runs."
            )
        )
    return figs


register_experiment_type("freeze-attack", FreezeAttackConfig, run_freeze_attack, plot_freeze_attack)
