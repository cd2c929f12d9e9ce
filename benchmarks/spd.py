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
from excise.spd.registry import (  # noqa: E402
    build_spd,
    build_target,
    eval_batch,
    load_config,
    resolve_device,
    tms_checks,
)
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
    """Wall and CPU seconds until MMCS(W) >= target on the registered tms_5-2 recipe, and until all its checks
    hold at once (MMCS, ML2R in [0.9, 1.1], exactly n_features alive subcomponents of W); evaluation time included.

    MMCS alone is a weak signal on 5-2: W's columns live in 2 dimensions, so among 20 subcomponents one
    usually points within a few degrees of each column early on; the all-checks time is the meaningful one.
    """
    cfg = load_config("tms_5-2", [f"seed={seed}", f"train.device={device}", f"train.eval_every={every}"])
    dev = resolve_device(device)
    target = build_target(cfg, dev)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        spd = build_spd(cfg, target).to(dev)
    W = target.model.W.detach()  # type: ignore[union-attr]
    n_feat = W.shape[1]
    x_eval = eval_batch(cfg, target, dev)

    def eval_fn(step: int) -> dict[str, float]:
        row = M.tms_metrics(spd, W)
        alive = M.alive_counts(M.causal_importance_on(spd, x_eval), cfg.eval.alive_threshold)
        row["alive_W"] = float(alive["linear1"])
        return row

    def all_checks(row: dict[str, float]) -> bool:
        return all(tms_checks(row, row["alive_W"], n_feat, target_mmcs).values())

    res = train_spd(
        spd,
        target.batch_fn,
        cfg.loss,
        cfg.train,
        seed=cfg.seed,
        eval_fn=eval_fn,
        stop_fn=all_checks,
        show_progress=False,
    )
    nan = float("nan")
    first = next((r for r in res.evals if r["mmcs"] >= target_mmcs), {})
    done = next((r for r in res.evals if all_checks(r)), {})
    last = res.evals[-1] if res.evals else {}
    return {
        "reached": float(bool(first)),
        "step": first.get("step", nan),
        "seconds": first.get("seconds", nan),
        "cpu_seconds": first.get("cpu_seconds", nan),
        "mmcs": first.get("mmcs", last.get("mmcs", nan)),
        "all_reached": float(bool(done)),
        "all_step": done.get("step", nan),
        "all_seconds": done.get("seconds", nan),
        "all_cpu_seconds": done.get("cpu_seconds", nan),
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
            f"({r['cpu_seconds']:.1f} s CPU); all checks at step {r['all_step']:.0f} after "
            f"{r['all_seconds']:.1f} s wall ({r['all_cpu_seconds']:.1f} s CPU)",
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
    lines += [
        "",
        "Time to reach the target on the registered tms_5-2 recipe (evaluation every 100 steps included; "
        "'all checks' = MMCS >= 0.99, ML2R in [0.9, 1.1] and exactly 5 alive subcomponents of W at once):",
        "",
        "| tms_5-2 seed | MMCS >= 0.99: step | wall s | CPU s | all checks: step | wall s | CPU s |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {i} | {r['step']:.0f} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['all_step']:.0f} | "
        f"{r['all_seconds']:.1f} | {r['all_cpu_seconds']:.1f} |"
        for i, r in enumerate(ttm)
    ]
    section = "\n".join(lines)
    print()
    print(section)
    if args.readme is not None:
        update_readme(args.readme, section)


if __name__ == "__main__":
    main()
