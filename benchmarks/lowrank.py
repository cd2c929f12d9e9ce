"""Benchmark of ActSVD: streamed Gram + exact eigh against the reference (every activation stored,
``torch.svd_lowrank(W X^T, q = R, niter = 20)`` per matrix).

Method (see ``benchmarks/harness.py``): a fixed printed thread count (``--threads``, default 1),
every measurement in a fresh process (time after a one-sample warm-up, and that process's own peak
RSS), the methods interleaved, ``--repeats`` rounds (default 3), medians with min-max spread, load
average before and after.

Methods, on the random Llama of ``benchmarks/scoring.py`` (``--size``, default the 51.8M ``cpu-50m``),
``--samples`` samples of ``--seq`` tokens (first half prompt), batch 8, every Linear but the head:

- ``streamed``: ``actsvd`` one pass (float64 Grams of every distinct layer input, then eigh);
- ``sequential``: ``actsvd`` block by block (one block's Grams held; L(L+1)/2 block forwards);
- ``reference``: the research code's approach: every module's response-token inputs stored on the CPU
  (float32), then ``svd_lowrank`` of W X^T with q = R = min(d_out, d_in) and 20 power iterations.

The subspaces are compared in one more process: the largest principal angle (degrees) over all
matrices between the streamed and the reference top-k subspaces, k = 16 and k = R / 4.

Usage: python benchmarks/lowrank.py [--threads 1] [--repeats 3] [--samples 128] [--seq 256]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H  # noqa: E402
from scoring import SIZES, _batches, _build  # noqa: E402

METHODS = ["streamed", "sequential", "reference"]
LABELS = {
    "streamed": "**actsvd, one pass** (streamed float64 Grams + eigh)",
    "sequential": "actsvd, sequential (block by block, one block's Grams)",
    "reference": "reference: stored activations + `svd_lowrank(q=R, niter=20)`",
}


def reference_bases(model: Any, mods: dict[str, Any], batches: list[Any]) -> dict[str, Any]:
    """The research code's approach: store every module's inputs at the response tokens, then svd_lowrank."""
    import torch

    from excise.scoring.actsvd import out_in_weight

    store: dict[str, list[Any]] = {n: [] for n in mods}
    state: dict[str, Any] = {}

    def make(name: str) -> Any:
        def pre(_m: Any, inputs: tuple[Any, ...]) -> None:
            x = inputs[0]
            store[name].append(x.reshape(-1, x.shape[-1])[state["pos"]].detach().float().cpu())

        return pre

    handles = [m.register_forward_pre_hook(make(n)) for n, m in mods.items()]
    with torch.no_grad():
        for b in batches:
            state["pos"] = (b.labels != -100).reshape(-1)
            model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False, logits_to_keep=1)
    for h in handles:
        h.remove()
    out = {}
    for name, mod in mods.items():
        x = torch.cat(store.pop(name))
        w = out_in_weight(mod).float()
        q = min(w.shape)
        u, _s, _v = torch.svd_lowrank(w @ x.T, q=q, niter=20)
        out[f"{name}.weight"] = u
        del x
    return out


def worker(spec: dict[str, Any]) -> None:
    import torch

    from excise.data import Batch
    from excise.models.adapters import linear_layers
    from excise.scoring.actsvd import actsvd_scores

    torch.set_num_threads(spec["threads"])
    model = _build(spec["size"], spec["seq"], "cpu", torch.float32)
    mods = linear_layers(model)
    batches = _batches(model.config.vocab_size, spec["samples"], spec["seq"], 8, 0.5, "cpu")
    res: dict[str, Any] = {
        "params": sum(p.numel() for p in model.parameters()),
        "matrices": len(mods),
        "layers": model.config.num_hidden_layers,
        "threads": torch.get_num_threads(),
        "tokens": sum(int((b.labels != -100).sum()) for b in batches),
    }
    if spec["method"] == "angles":
        torch.manual_seed(0)
        s = actsvd_scores(model, mods, batches)
        ref = reference_bases(model, mods, batches)
        worst: dict[str, float] = {}
        for key, u in ref.items():
            a = s.companions["basis"][key].double()
            r = min(a.shape)
            for label, k in (("k16", 16), ("kR4", r // 4)):
                b = u[:, :k].double()
                sin = float(torch.linalg.matrix_norm(b - a[:, :k] @ (a[:, :k].T @ b), ord=2))
                worst[label] = max(worst.get(label, 0.0), math.degrees(math.asin(min(1.0, sin))))
        res.update(worst)
        res["seconds"] = 0.0
        H.emit(res)
        return
    fn: Callable[[list[Any]], Any] = {
        "streamed": lambda bs: actsvd_scores(model, mods, bs, mode="one-pass"),
        "sequential": lambda bs: actsvd_scores(model, mods, bs, mode="sequential"),
        "reference": lambda bs: reference_bases(model, mods, bs),
    }[spec["method"]]
    b0 = batches[0]
    fn([Batch(b0.input_ids[:1], b0.attention_mask[:1], b0.labels[:1])])  # warm-up on one sample
    gc.collect()
    rss0, _ = H.rss_bytes()
    t = time.perf_counter()
    out = fn(batches)
    res["seconds"] = time.perf_counter() - t
    del out
    _, hwm = H.rss_bytes()
    res["rss_before"] = rss0
    res["peak_rss"] = hwm
    cfg = model.config
    d, f = cfg.hidden_size, cfg.intermediate_size
    res["block_gram_bytes"] = (3 * d * d + f * f) * 8  # qkv, o, gate/up inputs (d) and the down input (f)
    res["all_gram_bytes"] = res["block_gram_bytes"] * cfg.num_hidden_layers
    H.emit(res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", default="cpu-50m", choices=list(SIZES))
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--methods", default=",".join(METHODS))
    args = ap.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return

    def child(method: str) -> dict[str, Any]:
        spec = {"size": args.size, "method": method, "samples": args.samples, "seq": args.seq,
                "threads": args.threads}  # fmt: skip
        return H.run_child([__file__, "--worker", json.dumps(spec)], args.threads, timeout=7200)

    say = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    methods = args.methods.split(",")
    lb = H.load_average()
    say(f"lowrank benchmark, {args.size}, {args.threads} thread(s): {lb} before")
    ang = child("angles")
    res = H.interleaved(methods, args.repeats, child, say)
    la = H.load_average()
    sec = {m: [r["seconds"] for r in rs] for m, rs in res.items()}
    first = res[methods[0]][0]
    lines = [
        f"### ActSVD, {args.size} Llama: {first['params'] / 1e6:.1f}M parameters, {first['matrices']} matrices "
        f"in {first['layers']} layers; {args.samples} samples x {args.seq} tokens ({first['tokens']} response "
        f"tokens), cpu, float32, **{first['threads']} thread(s)**",
        "",
        f"Load: {lb} before, {la} after. {args.repeats} interleaved rounds, each figure in a fresh process.",
        "",
        "| method | seconds, median (min-max) | reference / method (per-round ratios) | peak RSS MiB "
        "(above the loaded model) |",
        "|---|---:|---:|---:|",
    ]
    for m in methods:
        ratio = H.ratio_spread(sec["reference"], sec[m]) if "reference" in sec else "-"
        peaks = [r["peak_rss"] for r in res[m]]
        above = [r["peak_rss"] - r["rss_before"] for r in res[m]]
        lines.append(
            f"| {LABELS[m]} | {H.fmt_spread(sec[m])} | {ratio} | "
            f"{H.mib(sorted(peaks)[len(peaks) // 2])} (+{H.mib(sorted(above)[len(above) // 2])}) |"
        )
    lines += [
        "",
        f"Gram budget: one block's float64 Grams {H.mib(first['block_gram_bytes'])} MiB, all blocks' "
        f"{H.mib(first['all_gram_bytes'])} MiB. Largest principal angle between the streamed and the reference "
        f"subspaces over all {ang['matrices']} matrices: top 16: {ang['k16']:.2e} deg; top R/4: {ang['kR4']:.2e} deg.",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
