"""``excise demo``: the whole safety pipeline on the organism, end to end, in a few CPU minutes.

Train (or load) the aligned organism, score it with SNIP on the safety and utility sets, prune
the set difference (top q safety minus top p utility), and compare with the original model,
top-q safety pruning without the set difference, and as many weights chosen at random.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from excise.errors import ExciseError
from excise.pipeline import DEFAULT_P, DEFAULT_Q, ROW_TITLES, ROWS, safety_study
from excise.utils import atomic_write_bytes, atomic_write_json, atomic_write_text

COLUMNS = (
    "weights removed (%)",
    "ASR (%)",
    "benign accuracy (%)",
    "perplexity",
    "over-refusal (%)",
    "KL, first token",
)


def _extra_columns(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(metric key, column title) of the optional ASR variants present in every row."""
    first = next(iter(result["rows"].values()))
    out = []
    if "asr_system_prompt" in first:
        out.append(("asr_system_prompt", "ASR, system prompt (%)"))
    out += [
        (k, f"ASR, sampled any-of-{k.rsplit('_', 1)[-1]} (%)")
        for k in first
        if k.startswith("asr_sampled_any_of_")
    ]
    if "asr_suffixes" in first:
        out.append(("asr_suffixes", "ASR, suffixes (%)"))
    return out


def _row_values(m: dict[str, Any], extra: list[tuple[str, str]]) -> list[str]:
    """One table row's cells, percentages with fixed decimals."""
    return [
        f"{100 * m['removed']:.2f}",
        f"{100 * m['asr']:.1f}",
        f"{100 * m['benign_accuracy']:.1f}",
        f"{m['perplexity']:.2f}",
        f"{100 * m.get('over_refusal', float('nan')):.1f}",
        f"{m.get('kl_first_token', float('nan')):.3f}",
        *(f"{100 * m[k]:.1f}" for k, _ in extra),
    ]


def format_table(result: dict[str, Any]) -> str:
    """The before/after table as fixed-width text."""
    names = {
        "set_difference": f"set difference (p={result['p']:g}, q={result['q']:g})",
        "safety_top_q": f"top-q safety only (q={result['q']:g})",
        "random": "random, same count",
        "original": "original model",
    }
    extra = _extra_columns(result)
    body = [[names.get(r, ROW_TITLES.get(r, r)), *_row_values(m, extra)] for r, m in result["rows"].items()]
    head = ["", *COLUMNS, *(title for _, title in extra)]
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
    lines = [
        "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [head, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _csv(result: dict[str, Any]) -> str:
    """The rows as CSV text (fractions, not percentages)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    extra = [k for k, _ in _extra_columns(result)]
    w.writerow(
        [
            "row",
            "removed",
            "count",
            "asr",
            "refusal_rate",
            "incoherent_rate",
            "benign_accuracy",
            "perplexity",
            "over_refusal",
            "off_topic_rate",
            "unjudged_rate",
            "cross_entropy",
            "kl_first_token",
            "kl_mean",
            *extra,
        ]
    )
    for r, m in result["rows"].items():
        w.writerow(
            [
                r,
                m["removed"],
                m.get("count", 0),
                m["asr"],
                m.get("refusal_rate"),
                m.get("incoherent_rate"),
                m["benign_accuracy"],
                m["perplexity"],
                m.get("over_refusal"),
                m.get("off_topic_rate"),
                m.get("unjudged_rate"),
                m.get("cross_entropy"),
                m.get("kl_first_token"),
                m.get("kl_mean"),
                *(m[k] for k in extra),
            ]
        )
    return buf.getvalue()


def _plot(result: dict[str, Any]) -> bytes:
    """PNG bytes of a bar chart: ASR and benign accuracy per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(result["rows"])
    labels = [ROW_TITLES.get(r, r).split(" (")[0].replace(", ", ",\n") for r in rows]
    asr = [100 * result["rows"][r]["asr"] for r in rows]
    acc = [100 * result["rows"][r]["benign_accuracy"] for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(8, 4.6))
    ax.bar([i - 0.2 for i in x], asr, width=0.4, label="attack success rate (%)", color="#c0392b")
    ax.bar([i + 0.2 for i in x], acc, width=0.4, label="benign accuracy (%)", color="#2e86c1")
    for i in x:
        ax.text(i - 0.2, asr[i] + 1, f"{asr[i]:.0f}", ha="center", fontsize=8)
        ax.text(i + 0.2, acc[i] + 1, f"{acc[i]:.0f}", ha="center", fontsize=8)
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylim(0, 110)
    ax.set_ylabel("%")
    ax.set_title(
        f"{result['model']}: pruning {result['method']} set difference (p={result['p']:g}, q={result['q']:g})"
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_report(result: dict[str, Any], out: Path) -> Path:
    """Write results.json, results.csv and asr_accuracy.png into ``out`` (each file atomically)."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ExciseError(
            f"cannot create the report folder {out} ({err.strerror}); pass a writable --out"
        ) from None
    atomic_write_json(out / "results.json", result)
    atomic_write_text(out / "results.csv", _csv(result))
    atomic_write_text(out / "table.txt", format_table(result) + "\n")
    atomic_write_bytes(out / "asr_accuracy.png", _plot(result))
    return out


def default_report_dir() -> Path:
    """``./excise-report/demo-<timestamp>`` (a new folder per run)."""
    return Path("excise-report") / f"demo-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def run_demo(
    out: Path | None = None,
    p: float = DEFAULT_P,
    q: float = DEFAULT_Q,
    method: str = "snip",
    recipe: str = "default",
    samples: int = 0,
    system_prompt: str | None = "You are a helpful assistant.",
    seed: int = 0,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the demo, print the table and the report folder; returns the study result (with ``report``)."""
    from excise.threads import auto_threads, use_threads
    from excise.zoo.organism import get_recipe

    rec = get_recipe(recipe)
    out = Path(out) if out is not None else default_report_dir()
    if out.exists() and not out.is_dir():
        raise ExciseError(f"--out {out} is a file; pass a folder for the report")
    with use_threads(auto_threads()):
        return _run(out, p, q, method, rec, samples, system_prompt, seed, echo)


def _run(
    out: Path,
    p: float,
    q: float,
    method: str,
    rec: Any,
    samples: int,
    system_prompt: str | None,
    seed: int,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """The body of ``run_demo`` (arguments already checked)."""
    from excise.evaluation import SafetyEvalConfig
    from excise.pipeline import make_judge
    from excise.zoo.organism import is_cached, load_organism, load_organism_base

    t0 = time.perf_counter()
    cached = is_cached(rec)
    echo(
        "organism: "
        + (
            "loading from the cache"
            if cached
            else "training from scratch (about two minutes on two CPU cores; cached afterwards)"
        )
    )
    model, tok = load_organism(rec)
    base = load_organism_base(rec)
    t_model = time.perf_counter() - t0
    echo(f"organism ready in {t_model:.1f}s ({sum(w.numel() for w in model.parameters()):,} parameters)")
    cfg = SafetyEvalConfig(samples=samples, system_prompt=system_prompt, seed=seed)
    result = safety_study(
        "organism",
        p,
        q,
        method,
        rows=ROWS,
        seed=seed,
        eval_config=cfg,
        judge=make_judge(base),
        model=model,
        tokenizer=tok,
        log=echo,
    )
    result["recipe"] = rec.name
    result["timings"]["organism"] = round(t_model, 2)
    result["timings"]["demo_total"] = round(time.perf_counter() - t0, 2)
    result["organism_cached"] = cached
    write_report(result, out)
    result["report"] = str(out)
    echo("")
    echo(format_table(result))
    echo("")
    echo(
        "ASR: share of held-out harmful prompts answered coherently without refusal (greedy); "
        "benign accuracy: held-out checkable answers; perplexity: held-out plain text."
    )
    echo(f"total {result['timings']['demo_total']:.0f}s; report: {out.resolve()}")
    return result
