"""``feature-purity``: keep the purest / least pure / random features of a CLIP embedding and measure
zero-shot accuracy and the silhouette of the image features, over a sweep of the number kept.

One run: score the projections (``purity``; lower = purer), embed the evaluation images and the
template-averaged class prompts once, then for each kept count k evaluate

- ``full``: every feature; ``min``: the k purest; ``max``: the k least pure;
- ``random``: ``random_draws`` seeded random k-subsets, reported as mean with std / min / max,

all from the cached embeddings (one batched masked matmul per k, no model pass). The masking is the
research code's (image features only, not renormalised) unless ``sides="both"`` (then renormalised).
Also the per-feature ablation importance (top-1 drop when one feature alone is removed, all features
at once from the embeddings) and its Spearman correlation with the purity score.

Writes ``<data>_accuracy_vs_kept.csv`` and ``<data>_silhouette_vs_kept.csv`` (header exactly
``kept,model,full,min,max,random``, accuracy as a fraction; ``legacy_columns`` writes the research
code's header ``sam,Model,Full Features,Min Sparse Features,Max Sparse Features``),
``<data>_random_spread.csv``, ``<data>_feature_ablation.csv`` and plots.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from excise.errors import ExciseError
from excise.experiments.registry import ExperimentConfig, ReportFigure, register_experiment_type

if TYPE_CHECKING:
    import torch

STRATEGIES = ("full", "min", "max", "random")
HEADER = ("kept", "model", "full", "min", "max", "random")
LEGACY_HEADER = ("sam", "Model", "Full Features", "Min Sparse Features", "Max Sparse Features")


class FeaturePurityConfig(ExperimentConfig):
    """Keep the purest / least pure / random CLIP embedding features; zero-shot accuracy and silhouette."""

    type: Literal["feature-purity"] = "feature-purity"
    model: str = Field("digits-clip", description="built-in CLIP name, HF CLIP folder")
    data: str = Field(
        "digits", description="built-in image set (digits, shapes) or a folder root/<class>/<images>"
    )
    kept: list[int] = Field(default_factory=lambda: [8, 16, 24, 32], min_length=1)
    strategies: tuple[Literal["full", "min", "max", "random"], ...] = STRATEGIES
    random_draws: int = Field(10, ge=1)
    sides: Literal["image", "both"] = Field("image", description="image: the research code's masking")
    renormalise: bool = Field(False, description="renormalise masked embeddings (with sides=both)")
    projections: list[str] | None = None
    orientation: Literal["auto", "out_in", "in_out"] = "auto"
    measure: Literal["l1", "l2", "linf"] = "l1"
    silhouette_sample: int | None = Field(
        2000, ge=10, description="points scored by the silhouette (None: all)"
    )
    ablation: bool = True
    templates: list[str] | None = Field(
        None, description="prompt templates for an image folder ('{}' = class)"
    )
    legacy_columns: bool = False
    device: str = "cpu"

    @field_validator("kept", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        if isinstance(v, int | str) and not isinstance(v, bool):
            return [int(x) for x in str(v).split(",")] if isinstance(v, str) else [v]
        return v


# ------------------------------------------------------------------------------------- validation


def _builtin_dims() -> dict[str, int]:
    from excise.zoo.clip import RECIPES

    return {name: r.projection_dim for name, r in RECIPES.items()}


def check_inputs(cfg: FeaturePurityConfig) -> int:
    """Every check that needs no model weights; returns the embedding dimension."""
    from excise.models.clip import check_clip_source

    kind = check_clip_source(cfg.model)
    if kind == "open_clip":
        raise ExciseError(
            f"{cfg.model} is an open_clip state dict: its purity can be scored, but the sweep evaluates the "
            "model, which needs an HF CLIP folder or a built-in model"
        )
    if kind == "builtin":
        dim = _builtin_dims()[cfg.model]
        names = None
    else:
        dim, names = _folder_projection_info(Path(cfg.model).expanduser())
    bad = [k for k in cfg.kept if k < 1 or k > dim]
    if bad:
        raise ExciseError(f"kept counts must be between 1 and the feature dimension {dim}; got {bad}")
    if cfg.projections and names is not None:
        _check_projection_names(cfg, names)
    if cfg.renormalise and cfg.sides == "image":
        pass  # allowed: renormalising the image side alone changes no cosine metric
    _check_data(cfg)
    return dim


def _folder_projection_info(path: Path) -> tuple[int, dict[str, tuple[int, ...]] | None]:
    cfg = json.loads((path / "config.json").read_text())
    dim = cfg.get("projection_dim")
    names: dict[str, tuple[int, ...]] | None = None
    st = path / "model.safetensors"
    if st.is_file():
        from safetensors import safe_open

        with safe_open(str(st), framework="pt") as f:
            names = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    if not isinstance(dim, int):
        raise ExciseError(f"{path}/config.json has no projection_dim; it is not a CLIP config")
    return dim, names


def _check_projection_names(cfg: FeaturePurityConfig, names: dict[str, tuple[int, ...]]) -> None:
    alias = {"image": "visual_projection.weight", "text": "text_projection.weight"}
    shapes = {}
    for p in cfg.projections or []:
        key = alias.get(p, p)
        key = key if key in names else f"{key}.weight" if f"{key}.weight" in names else key
        if key not in names or len(names[key]) != 2:
            listed = ["image", "text"] + [n for n, s in names.items() if len(s) == 2 and "projection" in n]
            raise ExciseError(f"no projection '{p}' in {cfg.model}; projections there: {', '.join(listed)}")
        s = names[key]
        shapes[key] = s[0] if cfg.orientation in ("auto", "out_in") else s[1]
    if len(set(shapes.values())) > 1:
        desc = ", ".join(f"{n}: {s}" for n, s in shapes.items())
        raise ExciseError(f"the projections write embeddings of different sizes ({desc}); a pair must match")


def _check_data(cfg: FeaturePurityConfig) -> None:
    from excise.data.images import class_folders
    from excise.zoo.clip import BUILTIN_SETS

    if cfg.data in BUILTIN_SETS:
        return
    p = Path(cfg.data).expanduser()
    if not p.exists():
        raise ExciseError(
            f"unknown image set '{cfg.data}': not a built-in ({', '.join(BUILTIN_SETS)}) and no such folder"
        )
    class_folders(p)


def load_image_set(cfg: FeaturePurityConfig, model: Any) -> Any:
    from excise.data.images import load_image_folder
    from excise.zoo.clip import BUILTIN_SETS, eval_set

    if cfg.data in BUILTIN_SETS:
        data = eval_set(cfg.data)
        if cfg.templates:
            data.templates = list(cfg.templates)
        return data
    vc = model.config.vision_config
    return load_image_folder(cfg.data, vc.image_size, vc.num_channels, templates=cfg.templates)


# ----------------------------------------------------------------------------------------- sweep


def random_masks(dim: int, k: int, draws: int, seed: int) -> torch.Tensor:
    """(draws, dim) boolean masks of k random features each, from a generator seeded by (seed, k)."""
    import torch

    g = torch.Generator().manual_seed(seed * 1_000_003 + k)
    masks = torch.zeros(draws, dim, dtype=torch.bool)
    for d in range(draws):
        masks[d, torch.randperm(dim, generator=g)[:k]] = True
    return masks


def strategy_masks(
    score: torch.Tensor, k: int, strategies: Sequence[str], draws: int, seed: int
) -> dict[str, torch.Tensor]:
    """Strategy -> (M, dim) masks: full (all), min (k lowest scores), max (k highest), random (draws)."""
    import torch

    from excise.core import Scores
    from excise.selection import top

    dim = score.numel()
    s = Scores({"embedding": score}, unit="feature")
    out: dict[str, torch.Tensor] = {}
    for st in strategies:
        if st == "full":
            out[st] = torch.ones(1, dim, dtype=torch.bool)
        elif st == "min":
            out[st] = top(s, count=k, largest=False)["embedding"][None]
        elif st == "max":
            out[st] = top(s, count=k, largest=True)["embedding"][None]
        else:
            out[st] = random_masks(dim, k, draws, seed)
    return out


def masked_metrics(
    image: torch.Tensor,
    classes: torch.Tensor,
    labels: torch.Tensor,
    masks: torch.Tensor,
    sides: str,
    renormalise: bool,
) -> list[dict[str, float]]:
    """Zero-shot metrics for each of the (M, D) masks, in one batched computation."""
    import torch

    from excise.evaluation.classification import balanced_accuracy
    from excise.interventions.features import mask_embeddings

    img, cls = mask_embeddings(image, classes, masks, sides=sides, renormalise=renormalise)
    logits = torch.einsum("mnd,mcd->mnc", img, cls)
    pred = logits.argmax(-1)
    k = min(5, classes.shape[0])
    top5 = logits.topk(k, dim=-1).indices
    out = []
    for i in range(masks.shape[0]):
        out.append(
            {
                "top1": float((pred[i] == labels).float().mean()),
                "top5": float((top5[i] == labels[:, None]).any(1).float().mean()),
                "balanced": balanced_accuracy(pred[i], labels, classes.shape[0]),
            }
        )
    return out


def ablation_importance(
    image: torch.Tensor,
    classes: torch.Tensor,
    labels: torch.Tensor,
    sides: str = "image",
    renormalise: bool = False,
) -> torch.Tensor:
    """Top-1 drop when each one feature alone is removed: full top-1 minus top-1 without feature j."""
    import torch

    dim = image.shape[1]
    full = masked_metrics(image, classes, labels, torch.ones(1, dim, dtype=torch.bool), sides, renormalise)[
        0
    ]["top1"]
    drops = []
    for start in range(0, dim, 64):  # chunks bound the (M, N, D) tensor
        masks = ~torch.eye(dim, dtype=torch.bool)[start : start + 64]
        drops += [full - m["top1"] for m in masked_metrics(image, classes, labels, masks, sides, renormalise)]
    return torch.tensor(drops)


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    from scipy.stats import spearmanr

    r = spearmanr(a.numpy(), b.numpy()).statistic
    return float(r) if r == r else float("nan")


def purity_study(cfg: FeaturePurityConfig, out_dir: Path | None = None, logger: Any = None) -> dict[str, Any]:
    """Run the sweep; write the CSVs and plots into ``out_dir``; return the flat metrics."""
    from excise.evaluation.classification import class_embeddings, image_embeddings, silhouette_cosine
    from excise.interventions.features import mask_embeddings
    from excise.models.clip import load_clip
    from excise.scoring import score

    check_inputs(cfg)
    model, tok = load_clip(cfg.model, device=cfg.device)
    data = load_image_set(cfg, model)
    scores = score(
        model,
        tok,
        None,
        method="purity",
        projections=cfg.projections,
        orientation=cfg.orientation,
        measure=cfg.measure,
    )
    s = scores["embedding"]
    dim = s.numel()
    bad = [k for k in cfg.kept if k > dim]
    if bad:
        raise ExciseError(f"kept counts must be between 1 and the feature dimension {dim}; got {bad}")
    img = image_embeddings(model, data.images)
    cls = class_embeddings(model, tok, data.classes, data.templates)
    rows: list[dict[str, Any]] = []
    for k in cfg.kept:
        for st, masks in strategy_masks(s, k, cfg.strategies, cfg.random_draws, cfg.seed).items():
            mets = masked_metrics(img, cls, data.labels, masks, cfg.sides, cfg.renormalise)
            sils = []
            for m in masks:
                mi, _ = mask_embeddings(img, cls, m, sides=cfg.sides, renormalise=cfg.renormalise)
                sils.append(silhouette_cosine(mi, data.labels, cfg.silhouette_sample, cfg.seed))
            for i, (met, sil) in enumerate(zip(mets, sils, strict=True)):
                rows.append({"kept": k, "strategy": st, "draw": i, **met, "silhouette": sil})
    metrics: dict[str, Any] = {"features": dim, "images": len(data), "classes": len(data.classes)}
    metrics.update({f"purity.{k}": v for k, v in scores.meta["summary"].items()})
    table = summarise(rows)
    for (k, st), agg in table.items():
        for name, v in agg.items():
            metrics[f"{name}.{st}.{k}"] = v
    ablation = None
    if cfg.ablation:
        ablation = ablation_importance(img, cls, data.labels, cfg.sides, cfg.renormalise)
        metrics["ablation.spearman_vs_score"] = spearman(ablation, s)
        metrics["ablation.max_drop"] = float(ablation.max())
    if out_dir is not None:
        write_outputs(out_dir, cfg, table, rows, s, ablation, scores.companions["purity"]["embedding"])
        if cfg.model in _builtin_dims():  # purity during training, logged per epoch with the model
            import shutil

            from excise.zoo.clip import clip_dir

            for name in ("purity_training.png", "clip.json"):
                if (clip_dir(cfg.model) / name).is_file():
                    shutil.copyfile(clip_dir(cfg.model) / name, out_dir / f"{cfg.model}_{name}")
    if logger is not None:
        logger.info(
            "feature purity on %s: %s", data.name, {k: v for k, v in metrics.items() if k.startswith("top1.")}
        )
    return metrics


def summarise(rows: list[dict[str, Any]]) -> dict[tuple[int, str], dict[str, float]]:
    """(kept, strategy) -> mean of each metric, and for random also std / min / max over the draws."""
    import torch

    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["kept"], r["strategy"]), []).append(r)
    out: dict[tuple[int, str], dict[str, float]] = {}
    for key, rs in groups.items():
        agg: dict[str, float] = {}
        for name in ("top1", "top5", "balanced", "silhouette"):
            vals = torch.tensor([r[name] for r in rs], dtype=torch.float64)
            agg[name] = float(vals.mean())
            if key[1] == "random":
                agg[f"{name}_std"] = float(vals.std(unbiased=True)) if len(vals) > 1 else 0.0
                agg[f"{name}_min"] = float(vals.min())
                agg[f"{name}_max"] = float(vals.max())
                agg["draws"] = float(len(vals))
        out[key] = agg
    return out


# ------------------------------------------------------------------------------------- outputs


def _data_name(cfg: FeaturePurityConfig) -> str:
    return cfg.data if "/" not in cfg.data and "\\" not in cfg.data else Path(cfg.data).name


def _fmt(v: Any) -> str:
    return (
        ""
        if v is None or (isinstance(v, float) and math.isnan(v))
        else f"{v:.6f}"
        if isinstance(v, float)
        else str(v)
    )


def write_csvs(
    out_dir: Path, data: str, model: str, table: dict[tuple[int, str], dict[str, float]], legacy: bool = False
) -> list[Path]:
    """``<data>_accuracy_vs_kept.csv`` (top-1) and ``<data>_silhouette_vs_kept.csv``; returns the paths."""
    from excise.utils import atomic_write_text

    paths = []
    kept = sorted({k for k, _ in table})
    for metric, fname in (("top1", "accuracy"), ("silhouette", "silhouette")):
        lines = []
        for k in kept:
            vals = [table.get((k, st), {}).get(metric) for st in STRATEGIES]
            row = [str(k), model, *(_fmt(v) for v in vals)]
            lines.append(row[:5] if legacy else row)
        header = LEGACY_HEADER if legacy else HEADER
        text = ",".join(header) + "\n" + "".join(",".join(_csv_cell(c) for c in r) + "\n" for r in lines)
        p = out_dir / f"{data}_{fname}_vs_kept.csv"
        atomic_write_text(p, text)
        paths.append(p)
    return paths


def _csv_cell(c: str) -> str:
    return f'"{c}"' if any(ch in c for ch in ',"\n') else c


def write_outputs(
    out_dir: Path,
    cfg: FeaturePurityConfig,
    table: dict[tuple[int, str], dict[str, float]],
    rows: list[dict[str, Any]],
    score: torch.Tensor,
    ablation: torch.Tensor | None,
    purity: torch.Tensor,
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    data = _data_name(cfg)
    paths = write_csvs(out_dir, data, cfg.model, table, cfg.legacy_columns)
    with open(out_dir / f"{data}_random_spread.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kept", "metric", "mean", "std", "min", "max", "draws"])
        for (k, st), agg in sorted(table.items()):
            if st == "random":
                for m in ("top1", "top5", "balanced", "silhouette"):
                    w.writerow(
                        [
                            k,
                            m,
                            *(_fmt(agg[x]) for x in (m, f"{m}_std", f"{m}_min", f"{m}_max")),
                            int(agg["draws"]),
                        ]
                    )
    with open(out_dir / f"{data}_all_metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kept", "strategy", "draw", "top1", "top5", "balanced", "silhouette"])
        for r in rows:
            w.writerow(
                [
                    r["kept"],
                    r["strategy"],
                    r["draw"],
                    *(_fmt(r[m]) for m in ("top1", "top5", "balanced", "silhouette")),
                ]
            )
    with open(out_dir / f"{data}_feature_scores.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["feature", "score", "purity", "ablation_drop"])
        for j in range(score.numel()):
            w.writerow(
                [
                    j,
                    _fmt(float(score[j])),
                    _fmt(float(purity[j])),
                    _fmt(float(ablation[j])) if ablation is not None else "",
                ]
            )
    paths += [f.path for f in plot_sweep(out_dir, data, cfg.model, table)]
    if ablation is not None:
        paths.append(plot_ablation(out_dir / f"{data}_ablation_vs_purity.png", score, ablation, cfg.model))
    return paths


def plot_sweep(
    out_dir: Path, data: str, model: str, table: dict[tuple[int, str], dict[str, float]]
) -> list[ReportFigure]:
    """Accuracy and silhouette against kept features (random band: min..max over draws) and the min-max gap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept = sorted({k for k, _ in table})
    figs = []
    for metric, label in (("top1", "zero-shot top-1"), ("silhouette", "silhouette (cosine)")):
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for st, style in (("full", "k--"), ("min", "b-o"), ("max", "r-s"), ("random", "g-^")):
            ys = [table.get((k, st), {}).get(metric) for k in kept]
            if all(y is None for y in ys):
                continue
            ax.plot(kept, [math.nan if y is None else y for y in ys], style, label=st, ms=4)
            if st == "random":
                lo = [table[(k, st)][f"{metric}_min"] for k in kept]
                hi = [table[(k, st)][f"{metric}_max"] for k in kept]
                ax.fill_between(kept, lo, hi, color="g", alpha=0.15, label="random min..max")
        ax.set_xlabel("features kept")
        ax.set_ylabel(label)
        ax.set_title(f"{model} on {data}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        name = "accuracy" if metric == "top1" else "silhouette"
        path = out_dir / f"{data}_{name}_vs_kept.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        figs.append(ReportFigure(path, f"{label} vs features kept ({model}, {data})"))
    if all((k, "min") in table and (k, "max") in table for k in kept):
        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        ax.plot(kept, [table[(k, "min")]["top1"] - table[(k, "max")]["top1"] for k in kept], "m-o", ms=4)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("features kept")
        ax.set_ylabel("top-1: min - max")
        ax.set_title(f"purest minus least pure ({model}, {data})")
        fig.tight_layout()
        path = out_dir / f"{data}_min_max_gap.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        figs.append(ReportFigure(path, f"min - max gap ({model}, {data})"))
    return figs


def plot_ablation(path: Path, score: torch.Tensor, drop: torch.Tensor, model: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(score.numpy(), drop.numpy(), s=12)
    ax.set_xlabel("purity score (sum |cos|; lower = purer)")
    ax.set_ylabel("top-1 drop when the feature is removed")
    ax.set_title(f"{model}: ablation importance vs purity (rho = {spearman(drop, score):.2f})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# -------------------------------------------------------------------------------- engine hooks


def run_feature_purity(cfg: FeaturePurityConfig, ctx: Any) -> dict[str, Any]:
    from excise.threads import auto_threads, use_threads

    with use_threads(auto_threads()):
        return purity_study(cfg, ctx.artifacts_dir, ctx.logger)


def table_from_metrics(df: Any) -> dict[tuple[str, str, str], dict[tuple[int, str], dict[str, float]]]:
    """(model, data, legacy) -> the summarised table, rebuilt from a report's metric columns."""
    out: dict[tuple[str, str, str], dict[tuple[int, str], dict[str, float]]] = {}
    for _, row in df.iterrows():
        key = (
            str(row.get("model", "?")),
            _data_name(FeaturePurityConfig(data=str(row.get("data", "?")))),
            "",
        )
        t = out.setdefault(key, {})
        for col, v in row.items():
            parts = str(col).split(".")
            if len(parts) == 3 and parts[1] in STRATEGIES and parts[2].isdigit() and v == v:
                t.setdefault((int(parts[2]), parts[1]), {})[parts[0]] = float(v)
    return out


def plot_feature_purity(df: Any, out_dir: Path) -> list[ReportFigure]:
    """Per (model, data): the CSVs and plots of the sweep, from every run's metrics."""
    figs = []
    for (model, data, _), table in table_from_metrics(df).items():
        if not table:
            continue
        safe = f"{Path(model).name}_{data}"
        sub = out_dir / safe
        sub.mkdir(parents=True, exist_ok=True)
        write_csvs(sub, data, model, table)
        figs += plot_sweep(sub, data, model, table)
    return figs


register_experiment_type("feature-purity", FeaturePurityConfig, run_feature_purity, plot_feature_purity)
