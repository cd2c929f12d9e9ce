"""SPD speed: training steps/second for tms_5-2 and resid_mlp1, and time to MMCS >= 0.99 on tms_5-2.

Usage: python benchmarks/spd.py [--threads 2] [--steps 30] [--seeds 1] [--readme benchmarks/README.md]

Steps/second are measured after a few warm-up steps, at the paper's batch sizes (tms 4096, resid_mlp
2048) and at the registered recipes' batch sizes, on CPU and, when torch.cuda.is_available(), on GPU.
Time to MMCS >= 0.99 runs the registered tms_5-2 recipe with an evaluation every 100 steps and stops at
the first evaluation that reaches it (target-model training, cached, is not counted).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from excise.spd import metrics as M  # noqa: E402
from excise.spd.registry import build_spd, build_target, load_config, resolve_device  # noqa: E402
from excise.spd.train import spd_losses, train_spd  # noqa: E402

PAPER_BATCH = {"tms_5-2": 4096, "resid_mlp1": 2048}


def steps_per_second(name: str, batch_size: int, device: str, steps: int) -> tuple[float, float]:
    """Full SPD training steps (all losses, backward, AdamW) per wall second and per CPU second."""
    cfg = load_config(name, [f"train.batch_size={batch_size}", f"train.device={device}"])
    dev = resolve_device(device)
    target = build_target(cfg, dev)
    spd = build_spd(cfg, target).to(dev)
    params = [p for n, p in spd.named_parameters() if p.requires_grad and not n.startswith("target.")]
    opt = torch.optim.AdamW(params, lr=cfg.train.lr, foreach=True)
    gen = torch.Generator(device=dev).manual_seed(0)
    data_gen = torch.Generator().manual_seed(1)

    def step() -> None:
        x = target.batch_fn(batch_size, data_gen).to(dev)
        terms = spd_losses(spd, x, cfg.loss, cfg.loss.p_start, gen)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()

    for _ in range(3):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0), steps / (time.process_time() - c0)


def time_to_mmcs(seed: int, device: str, target_mmcs: float = 0.99, every: int = 100) -> dict[str, float]:
    """Wall and CPU seconds until MMCS(W) >= target on the registered tms_5-2 recipe (evaluation time included)."""
    cfg = load_config("tms_5-2", [f"seed={seed}", f"train.device={device}", f"train.eval_every={every}"])
    dev = resolve_device(device)
    target = build_target(cfg, dev)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        spd = build_spd(cfg, target).to(dev)
    W = target.model.W.detach()  # type: ignore[union-attr]

    def eval_fn(step: int) -> dict[str, float]:
        return M.tms_metrics(spd, W)

    res = train_spd(
        spd,
        target.batch_fn,
        cfg.loss,
        cfg.train,
        seed=cfg.seed,
        eval_fn=eval_fn,
        stop_fn=lambda row: row["mmcs"] >= target_mmcs,
        show_progress=False,
    )
    last = res.evals[-1] if res.evals else {}
    return {
        "reached": float(bool(last) and last.get("mmcs", 0.0) >= target_mmcs),
        "step": last.get("step", float("nan")),
        "seconds": last.get("seconds", float("nan")),
        "cpu_seconds": last.get("cpu_seconds", float("nan")),
        "mmcs": last.get("mmcs", float("nan")),
    }


def update_readme(path: Path, section: str) -> None:
    """Replace (or append) the '## SPD' section of a README, leaving the other sections alone."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## SPD\n.*?(?=^## |\Z)", re.S | re.M)
    block = section.rstrip() + "\n\n"
    text = pattern.sub(block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    path.write_text(text.rstrip() + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per steps/second figure")
    ap.add_argument("--seeds", type=int, default=1, help="seeds for the time-to-MMCS figure")
    ap.add_argument("--readme", type=Path, default=None, help="write the figures into this README's '## SPD'")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        for name, paper_bs in PAPER_BATCH.items():
            recipe_bs = load_config(name).train.batch_size
            for bs in dict.fromkeys([paper_bs, recipe_bs]):
                sps, cps = steps_per_second(name, bs, device, args.steps)
                rows.append((device, name, bs, sps, cps))
                print(
                    f"{device:5s} {name:11s} batch {bs:5d}: {sps:8.1f} steps/s ({cps:.1f} per CPU s)",
                    flush=True,
                )
    ttm = []
    for seed in range(args.seeds):
        r = time_to_mmcs(seed, "cpu")
        ttm.append(r)
        print(
            f"tms_5-2 seed {seed}: MMCS {r['mmcs']:.4f} at step {r['step']:.0f} after {r['seconds']:.1f} s wall "
            f"({r['cpu_seconds']:.1f} s CPU)",
            flush=True,
        )
    cpu = platform.processor() or platform.machine()
    lines = [
        "## SPD",
        "",
        f"`python benchmarks/spd.py --threads {args.threads}` on {os.cpu_count()} CPU cores ({cpu}), "
        f"torch {torch.__version__}, {args.threads} thread(s).",
        "",
        f"Machine load average at the start: {os.getloadavg()[0]:.1f} (wall-clock figures shrink under load; "
        "steps per CPU second are the quiet-machine figure for one thread).",
        "",
        "| device | experiment | batch | steps/s (wall) | steps per CPU s |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {d} | {n} | {b} | {s:.1f} | {c:.1f} |" for d, n, b, s, c in rows]
    lines += ["", "| tms_5-2 seed | MMCS | step | wall s | CPU s |", "|---|---|---|---|---|"]
    lines += [
        f"| {i} | {r['mmcs']:.4f} | {r['step']:.0f} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} |"
        for i, r in enumerate(ttm)
    ]
    section = "\n".join(lines)
    print()
    print(section)
    if args.readme is not None:
        update_readme(args.readme, section)


if __name__ == "__main__":
    main()
