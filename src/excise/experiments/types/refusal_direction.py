"""``refusal-direction``: the refusal direction (Arditi et al. 2024) as an experiment type.

One run = score the harmful and harmless prompts with the ``refusal-direction`` method (through
:func:`excise.scoring.score`, so a sweep computes the candidates once), take the method's own choice
(``layer: null``: the largest refusal drop among the candidates within the KL filter) or the best
candidate of a forced ``layer`` (within the filter if any position passes it, else the largest drop
of that layer), remove the direction from every residual-stream writer and evaluate
(:func:`excise.evaluation.evaluate_safety`, KL from the unedited model). ``intervention: ablate``
uses forward hooks, ``orthogonalize`` edits the weights (W <- W - r r^T W); both are undone after the
evaluation (the weights, a tied output head and its config flag are restored). ``random: true``
removes a random unit direction of the residual stream instead (seeded by ``seed``).

Metrics: those of the evaluation (``asr``, ``refusal_rate``, ``benign_accuracy``, ``perplexity``,
``over_refusal``, ``kl_first_token``, ``kl_mean``, ...), ``chosen_layer`` / ``chosen_position`` (the
candidate's layer and prompt position, -1 = the last prompt token), ``candidate_refusal`` (refusal
log-odds on the harmful prompts with the candidate ablated, at the last prompt token),
``baseline_refusal`` (the same without ablation), ``candidate_drop``, ``candidate_kl`` (KL on the
harmless prompts at the last prompt token) and ``kl_ok`` (within ``kl_threshold``); with
``include_original``, the unedited model's metrics as ``original.*``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from excise.errors import ExciseError
from excise.experiments.registry import ReportFigure, register_experiment_type, scalar_metrics
from excise.experiments.types.safety_ranks import (
    RankStudyConfig,
    eval_scalars,
    evaluate,
    finish_result,
    load_study_model,
    study_judge,
    study_threads,
    write_results,
)

#: kl_threshold handed to the method when a layer is forced: every candidate is selectable there
#: (the type then applies the configured threshold itself); one cached score serves every layer.
FORCED_KL = 1e12


class RefusalDirectionExperimentConfig(RankStudyConfig):
    """The refusal direction (Arditi et al. 2024): ablate or orthogonalise it, measure ASR and utility.

    The candidate settings (``positions``, ``max_layer_fraction``, ``kl_threshold``,
    ``refusal_tokens``) are those of the scoring method ``refusal-direction``.
    """

    type: Literal["refusal-direction"] = "refusal-direction"
    harmful: str = Field(default="safety", description="harmful prompts with responses (name or file)")
    harmless: str = Field(default="utility", description="harmless prompts with responses (name or file)")
    n_harmful: int | None = Field(default=128, ge=1, description="harmful prompts used (None = all)")
    n_harmless: int | None = Field(default=128, ge=1, description="harmless prompts used (None = all)")
    positions: int = Field(default=5, ge=1, description="candidate positions: the last N prompt tokens")
    max_layer_fraction: float = Field(
        default=0.8, gt=0, le=1, description="candidate layers l < max_layer_fraction * n_layers"
    )
    kl_threshold: float = Field(default=0.1, ge=0, description="largest KL on harmless prompts allowed")
    refusal_tokens: tuple[str, ...] | None = Field(
        default=None, description="tokens of the refusal score (None: first token of each harmful response)"
    )
    layer: int | None = Field(
        default=None, ge=0, description="None: the method's choice; an int: that layer's best candidate"
    )
    position: int | None = Field(
        default=None, le=-1, description="with layer: force this prompt position too (-1 = last token)"
    )
    intervention: Literal["ablate", "orthogonalize"] = Field(
        default="ablate", description="'ablate': forward hooks; 'orthogonalize': weight edit, undone after"
    )
    random: bool = Field(default=False, description="a random unit direction instead (seeded by seed)")

    @model_validator(mode="after")
    def _consistent(self) -> RefusalDirectionExperimentConfig:
        if self.random and (self.layer is not None or self.position is not None):
            raise ValueError("random: true takes no layer or position (the direction is random)")
        if self.position is not None:
            if self.layer is None:
                raise ValueError("position needs a layer (the method picks both when layer is null)")
            if self.position < -self.positions:
                raise ValueError(f"position {self.position} is outside the last positions={self.positions}")
        return self


# ---------------------------------------------------------------- the study


def _harmless_source(cfg: RefusalDirectionExperimentConfig) -> str:
    """The harmless set the method reads: the set itself, or its first n_harmless examples in a
    content-addressed file of the cache (the same file, hence the same cached scores, for every run)."""
    from excise.data.loading import load_examples
    from excise.utils import cache_dir, stable_hash

    examples = load_examples(cfg.harmless, require_response=True)  # an empty or missing set fails here
    if cfg.n_harmless is None or cfg.n_harmless >= len(examples):
        return cfg.harmless
    rows = [{"prompt": e.prompt, "response": e.response} for e in examples[: cfg.n_harmless]]
    path = cache_dir() / "experiments" / "refusal-direction" / f"harmless-{stable_hash(rows)}.jsonl"
    if not path.is_file():
        from excise.data import write_jsonl

        path.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(path, rows)
    return str(path)


def _pick(scores: Any, cfg: RefusalDirectionExperimentConfig) -> dict[str, Any]:
    """The chosen candidate: its unit direction, layer, position and selection figures."""
    import torch

    P = cfg.positions
    meta = scores.meta
    drop = scores["refusal_direction"]
    kl = scores.companions["filter"]["kl"]
    after = scores.companions["filter"]["refusal"]
    cands = scores.companions["direction"]["candidates"]
    if cfg.layer is None:
        layer, p = int(meta["layer"]), int(meta["position"]) + P
    else:
        layer = cfg.layer
        d, k = drop[layer], kl[layer]
        finite = torch.isfinite(d)
        ok = finite & (k <= cfg.kl_threshold)
        if cfg.position is not None:
            p = cfg.position + P
        elif bool(finite.any()):
            pool = ok if bool(ok.any()) else finite
            p = int(torch.where(pool, d, torch.tensor(float("-inf"))).argmax())
        else:
            raise ExciseError(
                f"every candidate of layer {layer} is zero (the harmful and harmless means agree)"
            )
    r = cands[layer, p].double()
    norm = float(r.norm())
    if not math.isfinite(norm) or norm == 0.0:
        raise ExciseError(f"the candidate at layer {layer}, position {p - P} is zero; force another one")
    cand_kl = float(kl[layer, p])
    return {
        "direction": (r / norm).float(),
        "chosen_layer": layer,
        "chosen_position": p - P,
        "candidate_refusal": float(after[layer, p]),
        "baseline_refusal": float(meta["baseline_refusal"]),
        "candidate_drop": float(drop[layer, p]),
        "candidate_kl": cand_kl,
        "kl_ok": bool(cand_kl <= cfg.kl_threshold),
        "direction_norm": norm,
        "candidate_layers": int(meta["candidate_layers"]),
        "n_layers": int(meta["n_layers"]),
    }


def _random_direction(model: Any, seed: int) -> Any:
    """A random unit vector of the residual stream's width (Gaussian, seeded)."""
    import torch

    emb = model.get_input_embeddings()
    d = int(emb.weight.shape[1])
    g = torch.Generator().manual_seed(int(seed))
    r = torch.randn(d, generator=g, dtype=torch.float64)
    return (r / r.norm()).float()


@contextlib.contextmanager
def orthogonalized(model: Any, direction: Any) -> Iterator[list[str]]:
    """:func:`excise.interventions.lowrank.orthogonalize` inside the block; afterwards (also on error)
    every residual writer's weight and bias is bit-identical to before, and a head that was tied to the
    embedding is tied again (with ``tie_word_embeddings`` as it was)."""
    import torch

    from excise.interventions.lowrank import orthogonalize
    from excise.models.adapters import residual_writers
    from excise.scoring.base import weight_of

    saved: list[tuple[Any, Any]] = []
    for mod in residual_writers(model).values():
        for t in (weight_of(mod), getattr(mod, "bias", None)):
            if isinstance(t, torch.Tensor):
                saved.append((t, t.detach().to("cpu", copy=True)))
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    head_weight = getattr(head, "weight", None)
    configs = [getattr(model, "config", None)]
    text_cfg = getattr(configs[0], "get_text_config", None)
    if callable(text_cfg):
        configs.append(text_cfg())
    ties = [
        (c, c.tie_word_embeddings) for c in configs if c is not None and hasattr(c, "tie_word_embeddings")
    ]
    try:
        yield orthogonalize(model, direction)
    finally:
        if head is not None and head_weight is not None and head.weight is not head_weight:
            head.weight = head_weight
        for c, tie in ties:
            c.tie_word_embeddings = tie
        with torch.no_grad():
            for t, old in saved:
                t.copy_(old)


def refusal_direction_study(
    cfg: RefusalDirectionExperimentConfig,
    *,
    model: Any | None = None,
    tokenizer: Any | None = None,
    judge: Any | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """One direction removed and evaluated: flat metrics (see the module docstring) plus ``examples``."""
    from excise.data.loading import load_examples
    from excise.evaluation import build_kl_reference
    from excise.interventions.lowrank import ablate_direction
    from excise.models.adapters import decoder_layers, residual_writers
    from excise.scoring import score

    say = log or (lambda _msg: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if model is None or tokenizer is None:
        model, tokenizer = load_study_model(cfg)
    model.eval()
    timings["load"] = time.perf_counter() - t0
    # every input is checked before the first forward pass
    residual_writers(model)  # an unsupported family fails here
    n_layers = len(decoder_layers(model))
    n_cand = max(1, math.ceil(cfg.max_layer_fraction * n_layers - 1e-9))
    if cfg.layer is not None and cfg.layer >= n_cand:
        raise ExciseError(
            f"layer {cfg.layer} is not a candidate: the candidates are layers 0..{n_cand - 1} "
            f"(l < max_layer_fraction={cfg.max_layer_fraction:g} x {n_layers} layers); raise max_layer_fraction"
        )
    picked: dict[str, Any] = {}
    harmful, harmless = None, None
    if cfg.random:
        picked = {"direction": _random_direction(model, cfg.seed)}
    else:
        harmful = load_examples(cfg.harmful, limit=cfg.n_harmful, require_response=True)
        harmless = _harmless_source(cfg)
    if judge is None:
        judge = study_judge(cfg)
    ev = cfg.eval.model_copy(update={"seed": cfg.seed})

    if harmful is not None:
        t = time.perf_counter()
        say("scoring the refusal-direction candidates ...")
        scores = score(
            model,
            tokenizer,
            harmful,
            "refusal-direction",
            batch_size=cfg.batch_size,
            use_cache=cfg.use_cache,
            harmless=harmless,
            positions=cfg.positions,
            max_layer_fraction=cfg.max_layer_fraction,
            kl_threshold=cfg.kl_threshold if cfg.layer is None else FORCED_KL,
            refusal_tokens=list(cfg.refusal_tokens) if cfg.refusal_tokens else None,
        )
        picked = _pick(scores, cfg)
        timings["score"] = time.perf_counter() - t

    t = time.perf_counter()
    kl_ref = build_kl_reference(model, tokenizer, ev)  # the unedited model's answers
    original = None
    if cfg.include_original:
        say("evaluating the unedited model ...")
        original = evaluate(model, tokenizer, ev, judge, kl_ref)
    r = picked["direction"]
    what = (
        "a random direction"
        if cfg.random
        else f"layer {picked['chosen_layer']}, position {picked['chosen_position']}"
    )
    say(
        f"evaluating with the direction ({what}) {'ablated' if cfg.intervention == 'ablate' else 'orthogonalised'} ..."
    )
    edit = ablate_direction(model, r) if cfg.intervention == "ablate" else orthogonalized(model, r)
    with edit:
        edited = evaluate(model, tokenizer, ev, judge, kl_ref)
    timings["evaluate"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0

    out: dict[str, Any] = eval_scalars(edited)
    out.update({k: v for k, v in picked.items() if k != "direction"})
    if cfg.random:
        out.update(chosen_layer=None, chosen_position=None, n_layers=n_layers, candidate_layers=n_cand)
    out["direction"] = [float(x) for x in r]
    return finish_result(out, original, edited, timings)


def run_refusal_direction(cfg: RefusalDirectionExperimentConfig, ctx: Any) -> dict[str, Any]:
    """Score, pick, remove the direction reversibly, evaluate; writes results.json, returns flat metrics."""
    ctx.logger.info(
        "refusal direction: model=%s layer=%s intervention=%s%s",
        cfg.model,
        "auto" if cfg.layer is None else cfg.layer,
        cfg.intervention,
        " (random)" if cfg.random else "",
    )
    with study_threads(cfg):
        result = refusal_direction_study(cfg, log=ctx.logger.info)
    write_results(ctx.artifacts_dir, "results.json", result)
    return scalar_metrics({k: v for k, v in result.items() if k not in ("examples", "direction")})


# ---------------------------------------------------------------- plots


def plot_refusal_direction(table: Any, out_dir: Path) -> list[ReportFigure]:
    """ASR, benign accuracy and KL against the layer (a line per intervention; the method's own choice
    starred; random directions as dashed levels)."""
    import matplotlib.pyplot as plt

    df = table[table["state"] == "done"] if "state" in table.columns else table
    if "chosen_layer" not in df.columns or not len(df):
        return []
    panels = [
        (c, lab)
        for c, lab in (
            ("asr", "attack success rate"),
            ("benign_accuracy", "benign accuracy"),
            ("kl_first_token", "KL from the unedited model, first token"),
        )
        if c in df.columns and df[c].notna().any()
    ]
    if not panels:
        return []
    rnd = df["random"].fillna(False).astype(bool) if "random" in df.columns else df["chosen_layer"].isna()
    auto = df["layer"].isna() if "layer" in df.columns else df["chosen_layer"].notna()
    kinds = sorted(df["intervention"].dropna().unique()) if "intervention" in df.columns else ["ablate"]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), squeeze=False)
    for ax, (col, label) in zip(axes[0], panels, strict=True):
        for i, kind in enumerate(kinds):
            c = colours[i % len(colours)]
            mine = df["intervention"] == kind if "intervention" in df.columns else df.index == df.index
            forced = df[mine & ~rnd & ~auto].dropna(subset=["chosen_layer", col]).sort_values("chosen_layer")
            if len(forced):
                ax.plot(
                    forced["chosen_layer"].astype(float),
                    forced[col],
                    "-o",
                    color=c,
                    label=f"{kind}, layer forced",
                )
            own = df[mine & ~rnd & auto].dropna(subset=["chosen_layer", col])
            if len(own):
                ax.plot(
                    own["chosen_layer"].astype(float),
                    own[col],
                    "*",
                    ms=15 - 5 * min(i, 1),  # a later kind's star sits inside the first one's
                    color=c,
                    label=f"{kind}, method's choice",
                )
            r = df[mine & rnd][col].dropna()
            if len(r):
                ax.axhline(
                    float(r.mean()), color=c, ls="--", lw=1, label=f"{kind}, random direction ({len(r)})"
                )
        orig = f"original.{col}"
        if orig in df.columns and df[orig].notna().any():
            ax.axhline(float(df[orig].dropna().iloc[0]), color="grey", lw=0.8, ls="-.", label="unedited")
        ax.set_xlabel("layer of the direction")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        layers = df["chosen_layer"].dropna()
        if len(layers):
            ax.set_xticks(sorted({int(x) for x in layers}))
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Refusal direction: ASR, benign accuracy and KL by layer")
    fig.tight_layout()
    path = out_dir / "refusal_direction_by_layer.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [
        ReportFigure(
            path,
            "ASR, benign accuracy and KL against the layer of the direction",
            "Each point removes one candidate direction from every residual writer; the star is the "
            "method's own choice (largest refusal drop within the KL filter), dashed lines random directions.",
        )
    ]


register_experiment_type(
    "refusal-direction", RefusalDirectionExperimentConfig, run_refusal_direction, plot_refusal_direction
)
