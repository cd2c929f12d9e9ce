"""Benchmark: collecting every attention head's representation costs about one plain forward pass.

Compares, on a random Llama with SmolLM2-135M's shape (30 layers x 9 heads, 3 key/value heads,
hidden 576; ``--small`` for a 2-layer tiny model), on ``--samples`` prompts of ``--seq`` tokens:

- ``forward``: a plain forward pass (no grad, eager attention),
- ``outputs``: ``head_gram(..., "output")``: the same forward with one pre-hook per layer collecting
  every head's output, plus the float64 Gram matrix over all heads of all layers (what the
  euclidean / cosine distances are computed from),
- ``patterns``: ``head_gram(..., "pattern")``: the forward with attention weights returned and
  their all-heads Gram over the lower triangle.

Fixed thread count (``--threads``, default 1, printed), the three interleaved in each of
``--repeats`` rounds (default 3, at least 3), medians with min-max spread of wall and CPU time,
load average printed before and after. The ratio to ``forward`` is the figure.

Usage: python benchmarks/heads.py [--threads 1] [--repeats 3] [--samples 8] [--seq 128] [--small]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch


def build(small: bool) -> tuple[torch.nn.Module, int]:
    from transformers import AutoModelForCausalLM, LlamaConfig

    if small:
        from excise.models import tiny_model

        return tiny_model("llama")[0], 259
    cfg = LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").eval(), cfg.vocab_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--small", action="store_true")
    args = ap.parse_args()
    if args.repeats < 3:
        ap.error("--repeats must be at least 3")
    torch.set_num_threads(args.threads)
    from excise.data import Batch
    from excise.scoring.heads import head_gram

    model, vocab = build(args.small)
    n_params = sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (args.samples, args.seq), generator=gen)
    att = torch.ones_like(ids)
    att[1::2, args.seq * 3 // 4 :] = 0  # every other sample right-padded by a quarter
    batch = Batch(ids, att, torch.where(att.bool(), ids, torch.full_like(ids, -100)))

    def forward() -> None:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=att, use_cache=False)

    cases = {
        "forward": forward,
        "outputs": lambda: head_gram(model, [batch], "output"),
        "patterns": lambda: head_gram(model, [batch], "pattern"),
    }
    print(f"torch threads: {torch.get_num_threads()} (asked {args.threads})")
    print(f"model: random llama, {n_params / 1e6:.1f}M parameters, {model.config.num_hidden_layers} layers")
    print(f"batch: {args.samples} x {args.seq} tokens ({int(att.sum())} not padding)")
    print(f"load average before: {os.getloadavg()}")
    forward()  # warm-up
    wall: dict[str, list[float]] = {k: [] for k in cases}
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.repeats):
        for name, fn in cases.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    print(f"load average after: {os.getloadavg()}")
    base_w, base_c = statistics.median(wall["forward"]), statistics.median(cpu["forward"])
    print(
        f"{'case':<10} {'wall median s':>14} {'[min-max]':>16} {'cpu median s':>13} {'x forward (wall/cpu)':>22}"
    )
    for name in cases:
        w, c = wall[name], cpu[name]
        mw, mc = statistics.median(w), statistics.median(c)
        print(
            f"{name:<10} {mw:14.3f} [{min(w):6.3f}-{max(w):6.3f}] {mc:13.3f} [{min(c):6.3f}-{max(c):6.3f}] "
            f"{mw / base_w:10.2f} / {mc / base_c:.2f}"
        )


if __name__ == "__main__":
    main()
