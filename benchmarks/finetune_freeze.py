"""Fine-tuning speed with freezing: none vs static vs dynamic (re-score every 50 steps).

Fine-tunes the organism on the utility set (batch 8, max length 128) for ``--steps`` optimizer steps
with (a) nothing frozen, (b) the top ``--q`` SNIP safety-critical weights per matrix frozen (gradient
masks + restore after each step), (c) the same, re-scored (SNIP on ``--rescore-samples`` safety
examples) and re-selected every 50 steps. The modes are interleaved (A B C, B C A, ...) in one
process, ``--repeats`` rounds; the figure is the median steps per second (wall) with its min-max,
and the overhead is the median of the per-round ratios. Only ``finetune()`` is timed (the model is
reloaded from a CPU copy before each run). One torch thread unless ``--threads``.

    .venv/bin/python benchmarks/finetune_freeze.py --steps 100 --repeats 3
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import fmt_spread, load_average, ratio_spread  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--q", type=float, default=0.1, help="frozen fraction of each matrix")
    ap.add_argument("--every", type=int, default=50, help="dynamic: re-select every N steps")
    ap.add_argument("--rescore-samples", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default="organism")
    a = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "EXCISE_THREADS"):
        os.environ[var] = str(a.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("EXCISE_NO_PROGRESS", "1")
    import torch

    torch.set_num_threads(a.threads)
    from excise.data import load_examples
    from excise.finetune import FinetuneArgs, finetune
    from excise.freeze_analysis import safety_critical
    from excise.models import load_model

    print(f"torch threads: {torch.get_num_threads()}; {load_average()} (before)")
    model, tok = load_model(a.model)
    pristine = copy.deepcopy(model.state_dict())
    train = load_examples("utility", require_response=True)
    safety = load_examples("safety", limit=a.rescore_samples, require_response=True)
    frozen = safety_critical(model, tok, safety, "snip", a.q)
    print(f"model {a.model}: {sum(p.numel() for p in model.parameters()):,} parameters; frozen {frozen.count():,} "
          f"weights ({a.q:g} of each matrix); {a.steps} steps per run, batch 8")  # fmt: skip

    def run(mode: str) -> float:
        model.load_state_dict(pristine)
        args = FinetuneArgs(
            max_steps=a.steps, learning_rate=1e-4, batch_size=8, max_length=128, logging_steps=10**6,
            reselect_every=a.every if mode == "dynamic" else None,
        )  # fmt: skip

        def reselect(m):  # type: ignore[no-untyped-def]
            return safety_critical(m, tok, safety, "snip", a.q, use_cache=False)

        t0 = time.perf_counter()
        finetune(
            model, tok, train, args,
            frozen if mode != "none" else None,
            reselect=reselect if mode == "dynamic" else None,
        )  # fmt: skip
        return a.steps / (time.perf_counter() - t0)

    modes = ["none", "static", "dynamic"]
    res: dict[str, list[float]] = {m: [] for m in modes}
    order = list(modes)
    for r in range(a.repeats):
        for m in order:
            sps = run(m)
            res[m].append(sps)
            print(f"  round {r + 1}/{a.repeats} {m}: {sps:.2f} steps/s", flush=True)
        order = order[1:] + order[:1]
    print(f"{load_average()} (after)")
    print("| freezing | steps/s, median (min-max) | time vs none, median of per-round ratios |")
    print("|---|---|---|")
    for m in modes:
        ratio = ratio_spread(res["none"], res[m]) if m != "none" else "1x"
        print(f"| {m} | {fmt_spread(res[m])} | {ratio} |")


if __name__ == "__main__":
    main()
