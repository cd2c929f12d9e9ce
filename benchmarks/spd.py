"""SPD speed: training steps/second for tms_5-2 and resid_mlp1, and time to MMCS >= 0.99 on tms_5-2.

Usage: python benchmarks/spd.py [--threads 1] [--steps 30] [--seeds 1] [--repeats 3]

Method (``benchmarks/harness.py``): a fixed thread count (default 1), every figure in a fresh process
(with that process's peak RSS), the configurations interleaved over ``--repeats`` rounds, medians with
min-max spread, load average before and after. Steps/second are measured after a few warm-up steps,
at the paper's batch sizes (tms 4096, resid_mlp 2048) and at the registered recipes' batch sizes, on
CPU and, when torch.cuda.is_available(), on GPU. Time to MMCS >= 0.99 runs the registered tms_5-2
recipe with an evaluation every 100 steps and stops at the first evaluation where all its checks hold
(target-model training, cached, is not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H  # noqa: E402
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


def worker(spec: dict[str, object]) -> None:
    """One figure in this fresh process."""
    torch.set_num_threads(int(spec["threads"]))  # type: ignore[call-overload]
    if spec["kind"] == "steps":
        sps, cps = steps_per_second(
            str(spec["name"]), int(spec["batch"]), str(spec["device"]), int(spec["steps"])
        )  # type: ignore[call-overload]
        res: dict[str, object] = {"seconds": 1 / sps, "sps": sps, "cps": cps}
    else:
        r = time_to_mmcs(int(spec["seed"]), "cpu")  # type: ignore[call-overload]
        res = {**r, "seconds": r["all_seconds"]}
    res["peak_rss"] = H.rss_bytes()[1]
    res["threads"] = torch.get_num_threads()
    H.emit(res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per steps/second figure")
    ap.add_argument("--seeds", type=int, default=1, help="seeds for the time-to-MMCS figure")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.worker is not None:
        worker(json.loads(args.worker))
        return

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def child(spec: dict[str, object]) -> dict[str, object]:
        return H.run_child(
            [__file__, "--worker", json.dumps({**spec, "threads": args.threads})], args.threads
        )

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    configs: dict[str, dict[str, object]] = {}
    for device in devices:
        for name, paper_bs in PAPER_BATCH.items():
            recipe_bs = load_config(name).train.batch_size
            for bs in dict.fromkeys([paper_bs, recipe_bs]):
                configs[f"{device} {name} {bs}"] = {
                    "kind": "steps",
                    "name": name,
                    "batch": bs,
                    "device": device,
                    "steps": args.steps,
                }
    for seed in range(args.seeds):
        configs[f"mmcs seed {seed}"] = {"kind": "mmcs", "seed": seed}
    lb = H.load_average()
    say(lb)
    res = H.interleaved(list(configs), args.repeats, lambda k: child(configs[k]), say)
    la = H.load_average()
    lines = [
        "## SPD",
        "",
        f"`python benchmarks/spd.py {' '.join(sys.argv[1:])}` on {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}), torch {torch.__version__}, **{args.threads} thread(s)**; "
        f"{args.repeats} interleaved rounds, each figure in a fresh process; {lb} before, {la} after.",
        "",
        "| device | experiment | batch | steps/s (wall), median (min-max) | steps per CPU s | peak RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    for key, spec in configs.items():
        if spec["kind"] != "steps":
            continue
        rs = res[key]
        lines.append(
            f"| {spec['device']} | {spec['name']} | {spec['batch']} | {H.fmt_spread([r['sps'] for r in rs], 1)} | "  # type: ignore[misc]
            f"{H.fmt_spread([r['cps'] for r in rs], 1)} | {H.mib(max(r['peak_rss'] for r in rs))} |"  # type: ignore[misc]
        )
    lines += [
        "",
        "Time to all tms_5-2 checks on the registered recipe (MMCS >= 0.99, ML2R in [0.9, 1.1], exactly 5 alive "
        "subcomponents of W; evaluation every 100 steps included):",
        "",
        "| seed | step | wall s, median (min-max) | CPU s |",
        "|---|---|---|---|",
    ]
    for key, spec in configs.items():
        if spec["kind"] == "mmcs":
            rs = res[key]
            lines.append(
                f"| {spec['seed']} | {rs[0]['all_step']:.0f} | {H.fmt_spread([r['all_seconds'] for r in rs], 1)} | "  # type: ignore[misc]
                f"{H.fmt_spread([r['all_cpu_seconds'] for r in rs], 1)} |"  # type: ignore[misc]
            )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
