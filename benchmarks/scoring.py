"""Benchmark of weight scoring: Wanda and SNIP against plain passes and the research loop.

Prints, from one run on a random Llama-family model (about 50M parameters on CPU; and, when CUDA
is available, about 1B parameters in bf16 with float32 accumulation):

- one plain forward over the calibration tokens, Wanda, and their ratio (target <= 1.3x);
- one plain forward+backward (ordinary weight gradients), SNIP, and their ratio (target <= 2x);
- SNIP against the original research code's loop (one sample at a time, one decoder layer at a
  time: the model is re-run once per layer per sample), timed on a subset and extrapolated
  (target >= 10x);
- SNIP's peak memory next to its budget: weights + float32 scores + one batch of activations +
  one layer's block of per-sample gradients.

Usage: python benchmarks/scoring.py [--samples 128 --seq 256] [--quick] [--readme benchmarks/README.md]
"""

from __future__ import annotations

import argparse
import gc
import platform
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from excise.data import IGNORE, Batch
from excise.models.adapters import linear_layers
from excise.scoring import sample_losses
from excise.scoring import snip as snip_mod
from excise.scoring.snip import snip_scores
from excise.scoring.wanda import wanda_scores

SIZES = {
    # about 52M parameters: 2 x 24000 x 512 embeddings/head + 8 layers x 3.4M
    "cpu-50m": dict(
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=8,
        vocab_size=24000,
    ),
    # about 1.1B parameters (TinyLlama-like shape)
    "gpu-1b": dict(
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        vocab_size=32000,
    ),
    # for --quick smoke runs
    "tiny": dict(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=1000,
    ),
}


def build(size: str, seq: int, device: str, dtype: torch.dtype) -> torch.nn.Module:
    cfg = LlamaConfig(**SIZES[size], max_position_embeddings=max(seq, 128), tie_word_embeddings=False)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa", dtype=dtype)
    return model.to(device).eval()


def make_batches(vocab: int, samples: int, seq: int, batch_size: int, device: str) -> list[Batch]:
    """Random token ids; the first quarter of each sample is a prompt (not in the loss), no padding."""
    g = torch.Generator().manual_seed(1)
    out = []
    for s in range(0, samples, batch_size):
        b = min(batch_size, samples - s)
        ids = torch.randint(3, vocab, (b, seq), generator=g)
        labels = ids.clone()
        labels[:, : seq // 4] = IGNORE
        out.append(Batch(ids.to(device), torch.ones_like(ids).to(device), labels.to(device)))
    return out


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str) -> tuple[float, Any]:
    gc.collect()
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t, out


def plain_forward(model: torch.nn.Module, batches: list[Batch]) -> None:
    with torch.no_grad():
        for b in batches:
            model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False)


def plain_forward_backward(model: torch.nn.Module, batches: list[Batch]) -> None:
    """Ordinary training-style pass: weight gradients of every parameter, the same per-sample loss."""
    for p in model.parameters():
        p.requires_grad_(True)
    for b in batches:
        out = model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False)
        sample_losses(out.logits, b).sum().backward()
        del out
    model.zero_grad(set_to_none=True)


def research_loop(
    model: torch.nn.Module, batches: list[Batch], n_samples: int, n_layers: int
) -> tuple[float, int]:
    """Original-code style: for each decoder layer, for each sample, a full forward+backward with only
    that layer's weights requiring grad; accumulate |W * grad|. Returns (seconds, iterations)."""
    layers = model.model.layers
    samples = [(b, i) for b in batches for i in range(len(b))][:n_samples]
    for p in model.parameters():
        p.requires_grad_(False)
    its = 0
    t0 = time.perf_counter()
    for layer in list(layers)[:n_layers]:
        lin = {n: m for n, m in layer.named_modules() if isinstance(m, torch.nn.Linear)}
        acc = {n: torch.zeros_like(m.weight, dtype=torch.float32) for n, m in lin.items()}
        for m in lin.values():
            m.weight.requires_grad_(True)
        for b, i in samples:
            one = Batch(b.input_ids[i : i + 1], b.attention_mask[i : i + 1], b.labels[i : i + 1])
            out = model(input_ids=one.input_ids, attention_mask=one.attention_mask, use_cache=False)
            sample_losses(out.logits, one).sum().backward()
            for n, m in lin.items():
                acc[n] += (m.weight.detach().float() * m.weight.grad.float()).abs()
                m.weight.grad = None
            its += 1
        for m in lin.values():
            m.weight.requires_grad_(False)
    t = time.perf_counter() - t0
    for p in model.parameters():
        p.requires_grad_(True)
    return t, its


def _rss() -> tuple[int, int]:
    text = Path("/proc/self/status").read_text()
    vals = [int(re.search(rf"{k}:\s+(\d+)", text).group(1)) * 1024 for k in ("VmRSS", "VmHWM")]  # type: ignore[union-attr]
    return vals[0], vals[1]


def peak_delta(fn: Callable[[], Any], device: str) -> int:
    """Peak memory above the level before ``fn`` (CUDA: allocator peak; CPU: RSS high-water mark)."""
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out = fn()
        peak = torch.cuda.max_memory_allocated() - base
        del out
        return peak
    Path("/proc/self/clear_refs").write_text("5")  # reset the RSS high-water mark (Linux)
    base, _ = _rss()
    out = fn()
    _, hwm = _rss()
    del out
    return hwm - base


def training_step_without_grads(model: torch.nn.Module, batch: Batch) -> None:
    """One ordinary forward+backward whose weight gradients are dropped as soon as they are made:
    its peak is the memory of one batch of activations (saved tensors plus backward transients)."""
    handles = [
        p.register_post_accumulate_grad_hook(lambda q: setattr(q, "grad", None)) for p in model.parameters()
    ]
    try:
        for p in model.parameters():
            p.requires_grad_(True)
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
        sample_losses(out.logits, batch).sum().backward()
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def bench(
    size: str,
    device: str,
    dtype: torch.dtype,
    samples: int,
    seq: int,
    batch_size: int,
    ref_samples: int,
    ref_layers: int,
) -> dict[str, Any]:
    model = build(size, seq, device, dtype)
    n_params = sum(p.numel() for p in model.parameters())
    mods = linear_layers(model)
    n_scored = sum(m.weight.numel() for m in mods.values())
    batches = make_batches(model.config.vocab_size, samples, seq, batch_size, device)
    # warm-up (allocator, kernels) on one batch
    plain_forward(model, batches[:1])
    wanda_scores(model, mods, batches[:1])
    snip_scores(model, mods, batches[:1])

    r: dict[str, Any] = {
        "size": size,
        "device": device,
        "dtype": str(dtype).replace("torch.", ""),
        "params": n_params,
        "scored": n_scored,
        "samples": samples,
        "seq": seq,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
    }
    r["forward_s"], _ = timed(lambda: plain_forward(model, batches), device)
    r["wanda_s"], _ = timed(lambda: wanda_scores(model, mods, batches), device)
    r["fwd_bwd_s"], _ = timed(lambda: plain_forward_backward(model, batches), device)
    r["snip_s"], _ = timed(lambda: snip_scores(model, mods, batches), device)
    t, its = research_loop(model, batches, ref_samples, ref_layers)
    n_layers = model.config.num_hidden_layers
    r["research_per_it_s"] = t / its
    r["research_subset"] = f"{min(ref_samples, samples)} samples x {min(ref_layers, n_layers)} layers"
    r["research_est_s"] = t / its * samples * n_layers

    # memory: SNIP over two batches vs its budget
    two = batches[:2]
    r["weights_bytes"] = sum(p.numel() * p.element_size() for p in model.parameters())
    r["scores_bytes"] = 4 * n_scored
    r["act_bytes"] = peak_delta(lambda: training_step_without_grads(model, batches[0]), device)
    largest = max(m.weight.numel() for m in mods.values())
    block = max(1, snip_mod.PER_SAMPLE_BLOCK_BYTES // (largest * 4))
    r["per_sample_bytes"] = min(batch_size, block) * largest * 4
    r["snip_peak_delta"] = peak_delta(lambda: snip_scores(model, mods, two), device)
    r["snip_peak"] = r["weights_bytes"] + r["snip_peak_delta"]
    r["budget"] = r["weights_bytes"] + r["scores_bytes"] + r["act_bytes"] + r["per_sample_bytes"]
    return r


def report(r: dict[str, Any]) -> str:
    lines = [
        f"### {r['size']} Llama ({r['params'] / 1e6:,.1f}M parameters, {r['scored'] / 1e6:,.1f}M scored), "
        f"{r['device']}, {r['dtype']}, {r['threads']} threads; {r['samples']} samples x {r['seq']} tokens, batch {r['batch_size']}",
        "",
        "| what | seconds | ratio | target |",
        "|---|---:|---:|---|",
        f"| plain forward | {r['forward_s']:.2f} | 1.00 | |",
        f"| wanda | {r['wanda_s']:.2f} | {r['wanda_s'] / r['forward_s']:.2f}x forward | <= 1.3x |",
        f"| plain forward+backward | {r['fwd_bwd_s']:.2f} | 1.00 | |",
        f"| snip (per-sample, batched) | {r['snip_s']:.2f} | {r['snip_s'] / r['fwd_bwd_s']:.2f}x fwd+bwd | <= 2x |",
        f"| research loop, one sample x one layer per pass (extrapolated from {r['research_subset']}: "
        f"{r['research_per_it_s']:.3f} s per pass) | {r['research_est_s']:.0f} | "
        f"snip is {r['research_est_s'] / r['snip_s']:.1f}x faster | >= 10x |",
        "",
        f"SNIP peak memory (two batches): {mib(r['snip_peak'])} = weights {mib(r['weights_bytes'])} + "
        f"{mib(r['snip_peak_delta'])} during scoring; budget {mib(r['budget'])} = weights + float32 scores "
        f"{mib(r['scores_bytes'])} + one batch of activations {mib(r['act_bytes'])} (measured: peak of one "
        f"ordinary forward+backward whose weight gradients are dropped as they appear) + one layer's per-sample gradients {mib(r['per_sample_bytes'])}"
        f" -> {'within' if r['snip_peak'] <= r['budget'] else 'OVER'} budget "
        f"({100 * r['snip_peak'] / r['budget']:.0f}%).",
    ]
    return "\n".join(lines)


def write_readme(path: Path, body: str) -> None:
    """Replace (or append) the '## Scoring' section of the README, leaving other sections alone."""
    text = path.read_text() if path.is_file() else "# Benchmarks\n"
    section = "## Scoring\n\n" + body.strip() + "\n"
    pat = re.compile(r"^## Scoring\n.*?(?=^## |\Z)", re.S | re.M)
    if pat.search(text):
        text = pat.sub(lambda _m: section + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--ref-samples", type=int, default=2, help="samples of the research-loop subset")
    ap.add_argument("--ref-layers", type=int, default=2, help="decoder layers of the research-loop subset")
    ap.add_argument("--quick", action="store_true", help="a tiny model, for a smoke run")
    ap.add_argument("--no-gpu", action="store_true")
    ap.add_argument(
        "--readme", type=Path, default=None, help="write the figures into this README's '## Scoring'"
    )
    args = ap.parse_args()

    runs = [("tiny" if args.quick else "cpu-50m", "cpu", torch.float32)]
    if torch.cuda.is_available() and not args.no_gpu:
        runs.append(("tiny" if args.quick else "gpu-1b", "cuda", torch.bfloat16))
    parts = []
    for size, device, dtype in runs:
        r = bench(
            size, device, dtype, args.samples, args.seq, args.batch_size, args.ref_samples, args.ref_layers
        )
        text = report(r)
        print(text, "\n", flush=True)
        parts.append(text)
    if not torch.cuda.is_available():
        parts.append(
            "No CUDA device was available for this run, so the 1B bf16 GPU figures are not measured here."
        )
    header = (
        f"`python benchmarks/scoring.py --samples {args.samples} --seq {args.seq}` on "
        f"{platform.machine()} / torch {torch.__version__}. Times are wall-clock from one run; "
        "the research-loop time is measured on a subset and extrapolated to all samples x all layers."
    )
    if args.readme:
        write_readme(args.readme, header + "\n\n" + "\n\n".join(parts))


if __name__ == "__main__":
    main()
