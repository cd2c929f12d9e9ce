"""Benchmark of weight scoring: Wanda and SNIP against plain passes, user-written peers and the research loop.

Method (see ``benchmarks/harness.py``): a fixed thread count (``--threads``, default 1), every
measurement in a fresh process (time after a one-batch warm-up, and that process's own peak RSS),
the compared methods interleaved, ``--repeats`` rounds (default 3), medians with min-max spread,
load average printed before and after each comparison.

Comparisons, on a random Llama (``--size``, default the 51.8M-parameter ``cpu-50m``), ``--samples``
samples of ``--seq`` tokens whose first ``--prompt-frac`` (default half) is prompt, batch 8:

1. ``main``: plain forward / wanda; plain forward+backward / snip (scored positions only) / snip with
   logits at every position (the old path) / snip with ``micro_batch=1`` (the memory option) / the
   per-sample loop a user would write (one ordinary backward per sample) / ``torch.func``
   vmap(grad) over the batch. Also checks that the two snip paths give bitwise-equal scores.
2. ``research``: snip against the original research code's loop (for each decoder layer, for each
   sample, a full forward+backward with only that layer's weights requiring grad), both on the same
   ``--ref-samples`` samples, every layer timed, on the 8-layer model and a 22-layer one.

Usage: python benchmarks/scoring.py [--threads 1] [--repeats 3] [--only main|research] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H  # noqa: E402

SIZES: dict[str, dict[str, int]] = {
    # 51.8M parameters: 2 x 24000 x 512 embeddings/head + 8 layers x 3.4M
    "cpu-50m": dict(
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=8,
        vocab_size=24000,
    ),
    # the 1B configuration's depth (22 layers), narrow enough for CPU
    "cpu-deep22": dict(
        hidden_size=256,
        intermediate_size=768,
        num_hidden_layers=22,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=24000,
    ),
    # about 1.1B parameters (TinyLlama-like shape), for a GPU
    "gpu-1b": dict(
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        vocab_size=32000,
    ),
    # smoke runs (--quick)
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=1000,
    ),
}

MAIN = [
    "forward",
    "wanda",
    "fwd_bwd",
    "snip",
    "snip_all_logits",
    "snip_micro1",
    "per_sample_loop",
    "vmap_grad",
]
LABELS = {
    "forward": "plain forward",
    "wanda": "wanda",
    "fwd_bwd": "plain forward+backward (all weight gradients)",
    "snip": "**snip** (logits at the loss positions only)",
    "snip_all_logits": "snip, logits at every position (the previous path)",
    "snip_micro1": "snip, `micro_batch=1` (memory option)",
    "per_sample_loop": "per-sample loop a user would write (one backward per sample)",
    "vmap_grad": "`torch.func` vmap(grad) over each batch",
    "research_loop": "research loop (per layer, per sample, one forward+backward)",
}


# ----------------------------------------------------------------------------------------- worker side


def _build(size: str, seq: int, device: str, dtype: Any) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(**SIZES[size], max_position_embeddings=max(seq, 128), tie_word_embeddings=False)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa", dtype=dtype)
    return model.to(device).eval()


def _batches(
    vocab: int, samples: int, seq: int, batch_size: int, prompt_frac: float, device: str
) -> list[Any]:
    """Random token ids; the first ``prompt_frac`` of each sample is prompt (not in the loss), no padding."""
    import torch

    from excise.data import IGNORE, Batch

    g = torch.Generator().manual_seed(1)
    out = []
    for s in range(0, samples, batch_size):
        b = min(batch_size, samples - s)
        ids = torch.randint(3, vocab, (b, seq), generator=g)
        labels = ids.clone()
        labels[:, : int(seq * prompt_frac)] = IGNORE
        out.append(Batch(ids.to(device), torch.ones_like(ids).to(device), labels.to(device)))
    return out


def plain_forward(model: Any, batches: list[Any]) -> None:
    import torch

    with torch.no_grad():
        for b in batches:
            model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False)


def plain_forward_backward(model: Any, batches: list[Any]) -> None:
    """An ordinary training-style pass: weight gradients of every parameter, the same per-sample loss."""
    from excise.scoring import sample_losses

    for p in model.parameters():
        p.requires_grad_(True)
    for b in batches:
        out = model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False)
        sample_losses(out.logits, b).sum().backward()
        del out
    model.zero_grad(set_to_none=True)


def per_sample_loop(model: Any, mods: dict[str, Any], batches: list[Any]) -> dict[str, Any]:
    """What a user would write: one sample at a time, an ordinary backward, acc += |W * grad|."""
    import torch

    from excise.data import Batch
    from excise.scoring import sample_losses

    acc = {
        n: torch.zeros(m.weight.shape, dtype=torch.float32, device=m.weight.device) for n, m in mods.items()
    }
    for p in model.parameters():
        p.requires_grad_(True)
    for b in batches:
        for i in range(len(b)):
            one = Batch(b.input_ids[i : i + 1], b.attention_mask[i : i + 1], b.labels[i : i + 1])
            model.zero_grad(set_to_none=True)
            out = model(input_ids=one.input_ids, attention_mask=one.attention_mask, use_cache=False)
            sample_losses(out.logits, one).sum().backward()
            del out
            for n, m in mods.items():
                acc[n] += (m.weight.detach().float() * m.weight.grad.float()).abs()
    model.zero_grad(set_to_none=True)
    return acc


def vmap_grad(model: Any, mods: dict[str, Any], batches: list[Any]) -> dict[str, Any]:
    """``torch.func``: per-sample gradients of the scored weights by vmap(grad(loss of one sample))."""
    import torch
    from torch.func import functional_call, grad, vmap

    from excise.data import Batch
    from excise.scoring import sample_losses

    keys = [f"{n}.weight" for n in mods]
    params = {k: v.detach() for k, v in model.named_parameters()}
    scored = {k: params[k] for k in keys}
    rest = {k: v for k, v in params.items() if k not in scored}

    def loss_one(sc: dict[str, Any], ids: Any, labels: Any) -> Any:
        out = functional_call(model, {**rest, **sc}, (ids[None],), {"use_cache": False})
        one = Batch(ids[None], torch.ones_like(ids[None]), labels[None])
        return sample_losses(out.logits, one).sum()

    per_sample = vmap(grad(loss_one), in_dims=(None, 0, 0))
    acc = {k: torch.zeros(v.shape, dtype=torch.float32, device=v.device) for k, v in scored.items()}
    for b in batches:  # the benchmark's batches have no padding, so no attention mask is needed
        g = per_sample(scored, b.input_ids, b.labels)
        for k in keys:
            acc[k] += (scored[k].float() * g[k].float()).abs().sum(0)
        del g
    return acc


def research_loop(model: Any, batches: list[Any]) -> dict[str, Any]:
    """The original research code's loop, every decoder layer: for each layer, for each sample, a full
    forward+backward with only that layer's weights requiring grad; acc += |W * grad|."""
    import torch

    from excise.data import Batch
    from excise.scoring import sample_losses

    samples = [(b, i) for b in batches for i in range(len(b))]
    for p in model.parameters():
        p.requires_grad_(False)
    acc: dict[str, Any] = {}
    for li, layer in enumerate(model.model.layers):
        lin = {f"{li}.{n}": m for n, m in layer.named_modules() if isinstance(m, torch.nn.Linear)}
        for n, m in lin.items():
            acc[n] = torch.zeros_like(m.weight, dtype=torch.float32)
            m.weight.requires_grad_(True)
        for b, i in samples:
            one = Batch(b.input_ids[i : i + 1], b.attention_mask[i : i + 1], b.labels[i : i + 1])
            out = model(input_ids=one.input_ids, attention_mask=one.attention_mask, use_cache=False)
            sample_losses(out.logits, one).sum().backward()
            del out
            for n, m in lin.items():
                acc[n] += (m.weight.detach().float() * m.weight.grad.float()).abs()
                m.weight.grad = None
        for m in lin.values():
            m.weight.requires_grad_(False)
    for p in model.parameters():
        p.requires_grad_(True)
    return acc


def method_fn(name: str, model: Any, mods: dict[str, Any]) -> Callable[[list[Any]], Any]:
    from excise.scoring.snip import snip_scores
    from excise.scoring.wanda import wanda_scores

    return {
        "forward": lambda bs: plain_forward(model, bs),
        "wanda": lambda bs: wanda_scores(model, mods, bs),
        "fwd_bwd": lambda bs: plain_forward_backward(model, bs),
        "snip": lambda bs: snip_scores(model, mods, bs),
        "snip_all_logits": lambda bs: snip_scores(model, mods, bs, logits="all"),
        "snip_micro1": lambda bs: snip_scores(model, mods, bs, micro_batch=1),
        "per_sample_loop": lambda bs: per_sample_loop(model, mods, bs),
        "vmap_grad": lambda bs: vmap_grad(model, mods, bs),
        "research_loop": lambda bs: research_loop(model, bs),
    }[name]


def worker(spec: dict[str, Any]) -> None:
    """One measurement in this fresh process: build, warm up on one batch, time the method on all batches."""
    import torch

    from excise.data import Batch
    from excise.models.adapters import linear_layers

    torch.set_num_threads(spec["threads"])
    device = spec["device"]
    dtype = torch.bfloat16 if spec["dtype"] == "bfloat16" else torch.float32
    model = _build(spec["size"], spec["seq"], device, dtype)
    mods = linear_layers(model)
    batches = _batches(
        model.config.vocab_size, spec["samples"], spec["seq"], spec["batch_size"], spec["prompt_frac"], device
    )
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    res: dict[str, Any] = {
        "params": sum(p.numel() for p in model.parameters()),
        "scored": sum(m.weight.numel() for m in mods.values()),
        "layers": model.config.num_hidden_layers,
        "threads": torch.get_num_threads(),
    }
    if spec["method"] == "check_bitwise":
        from excise.scoring.snip import snip_scores

        a = snip_scores(model, mods, batches)
        b = snip_scores(model, mods, batches, logits="all")
        res["bitwise_equal"] = all(torch.equal(a[k], b[k]) for k in a)
        res["max_abs_diff"] = max(float((a[k] - b[k]).abs().max()) for k in a)
        res["seconds"] = 0.0
        H.emit(res)
        return
    fn = method_fn(spec["method"], model, mods)
    rss0, _ = H.rss_bytes()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    b0 = batches[0]
    fn([Batch(b0.input_ids[:1], b0.attention_mask[:1], b0.labels[:1])])  # warm-up on one sample
    gc.collect()
    sync()
    t = time.perf_counter()
    out = fn(batches)
    sync()
    res["seconds"] = time.perf_counter() - t
    del out
    _, hwm = H.rss_bytes()
    res["rss_before"] = rss0
    res["peak_rss"] = hwm
    if device.startswith("cuda"):
        res["gpu_peak_above_weights"] = torch.cuda.max_memory_allocated() - base
    res["weights_bytes"] = sum(p.numel() * p.element_size() for p in model.parameters())
    H.emit(res)


# ----------------------------------------------------------------------------------------- parent side


def _child(args: argparse.Namespace, size: str, method: str, samples: int) -> dict[str, Any]:
    spec = {
        "size": size,
        "method": method,
        "samples": samples,
        "seq": args.seq,
        "batch_size": args.batch_size,
        "prompt_frac": args.prompt_frac,
        "threads": args.threads,
        "device": args.device,
        "dtype": args.dtype,
    }
    return H.run_child([__file__, "--worker", json.dumps(spec)], args.threads)


def main_comparison(args: argparse.Namespace, say: Callable[[str], None]) -> list[str]:
    size = args.size
    say(f"main comparison, {size}: {H.load_average()} before")
    chk = _child(args, size, "check_bitwise", args.samples)
    lb = H.load_average()
    names = [m for m in MAIN if m in args.methods]
    res = H.interleaved(names, args.repeats, lambda m: _child(args, size, m, args.samples), say)
    la = H.load_average()
    say(f"main comparison done: {la} after")
    sec = {m: [r["seconds"] for r in rs] for m, rs in res.items()}
    first = next(iter(res.values()))[0]
    lines = [
        f"### {size} Llama: {first['params'] / 1e6:.1f}M parameters ({first['scored'] / 1e6:.1f}M scored), "
        f"{first['layers']} layers; {args.samples} samples x {args.seq} tokens, {args.prompt_frac:.0%} prompt, "
        f"batch {args.batch_size}; {args.device}, {args.dtype}, **{first['threads']} thread(s)**",
        "",
        f"Load: {lb} before, {la} after. {args.repeats} interleaved rounds, each figure in a fresh process.",
        "",
        "| method | seconds, median (min-max) | ratio to its baseline, median of per-round ratios | "
        "peak RSS MiB (above the loaded model) |",
        "|---|---:|---:|---:|",
    ]
    for m in names:
        base = "forward" if m in ("forward", "wanda") else "fwd_bwd"
        ratio = (
            "1.00"
            if m == base
            else H.ratio_spread(sec[m], sec[base]) + (" forward" if base == "forward" else " fwd+bwd")
        )
        peaks = [r["peak_rss"] for r in res[m]]
        above = [r["peak_rss"] - r["rss_before"] for r in res[m]]
        lines.append(
            f"| {LABELS[m]} | {H.fmt_spread(sec[m])} | {ratio} | "
            f"{H.mib(statistics_median(peaks))} (+{H.mib(statistics_median(above))}) |"
        )

    def vs(a: str, b: str) -> str:
        return H.ratio_spread(sec[a], sec[b]) if a in sec and b in sec else "not measured"

    lines += [
        "",
        f"SNIP at the loss positions vs at every position, same data: scores bitwise equal: "
        f"**{'yes' if chk['bitwise_equal'] else 'NO'}** (largest difference {chk['max_abs_diff']:.3g}). "
        f"snip / per-sample loop: {vs('snip', 'per_sample_loop')}; snip / vmap(grad): {vs('snip', 'vmap_grad')}; "
        f"snip / snip with all logits: {vs('snip', 'snip_all_logits')}.",
    ]
    return lines


def research_comparison(args: argparse.Namespace, say: Callable[[str], None]) -> list[str]:
    lines = [
        f"### SNIP against the research loop, every layer timed, {args.ref_samples} samples x {args.seq} "
        f"tokens ({args.prompt_frac:.0%} prompt), {args.threads} thread(s)",
        "",
        "| model | layers | research loop s | per pass s | snip s | snip faster by | 1-min load before / after |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for size in args.research_sizes:
        lb = H.load_average()
        say(f"research comparison, {size}: {lb} before")
        res = H.interleaved(
            ["research_loop", "snip"],
            args.repeats,
            lambda m, s=size: _child(args, s, m, args.ref_samples),
            say,
        )
        la = H.load_average()
        r, s = [x["seconds"] for x in res["research_loop"]], [x["seconds"] for x in res["snip"]]
        n_layers = res["snip"][0]["layers"]
        passes = n_layers * args.ref_samples
        lines.append(
            f"| {size} ({res['snip'][0]['params'] / 1e6:.1f}M) | {n_layers} | {H.fmt_spread(r)} | "
            f"{H.fmt_spread([x / passes for x in r], 3)} | {H.fmt_spread(s)} | {H.ratio_spread(r, s)} | "
            f"{_load1(lb)} / {_load1(la)} |"
        )
        say(lines[-1])
    return lines


def _load1(phrase: str) -> str:
    """The 1-minute figure of a ``load_average()`` phrase."""
    return phrase.split()[2]


def statistics_median(xs: list[float]) -> float:
    import statistics

    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", default="cpu-50m", choices=list(SIZES))
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--prompt-frac", type=float, default=0.5)
    ap.add_argument("--ref-samples", type=int, default=4, help="samples of the research-loop comparison")
    ap.add_argument("--research-sizes", nargs="+", default=["cpu-50m", "cpu-deep22"])
    ap.add_argument("--only", choices=["main", "research"], default=None)
    ap.add_argument("--methods", nargs="+", default=MAIN, choices=MAIN, help="methods of the main comparison")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--quick", action="store_true", help="a tiny model, for a smoke run")
    args = ap.parse_args()
    if args.worker is not None:
        worker(json.loads(args.worker))
        return
    if args.quick:
        args.size, args.research_sizes, args.samples, args.seq, args.ref_samples = "tiny", ["tiny"], 4, 32, 2

    import torch

    def say(s: str) -> None:
        print(s, file=sys.stderr, flush=True)

    head = (
        f"`python benchmarks/scoring.py {' '.join(sys.argv[1:])}` on {platform.machine()}, "
        f"{H.load_average().split(' on ')[1]}, torch {torch.__version__}, {args.threads} thread(s); "
        f"CUDA available: {torch.cuda.is_available()}"
    )
    parts = [head, ""]
    if args.only in (None, "main"):
        parts += main_comparison(args, say) + [""]
    if args.only in (None, "research"):
        parts += research_comparison(args, say) + [""]
    print("\n".join(parts))


if __name__ == "__main__":
    main()
