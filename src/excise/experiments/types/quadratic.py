"""``quadratic``: a cheap demo/test experiment type with a closed-form metric (not research).

loss = (x - 1)^2 + (y + 2)^2 + noise * N(0, 1), the noise drawn from a generator seeded by
(seed, x, y), so the same config always gives the same metrics. Switches for tests: ``sleep_s``
(in small steps with a progress bar; only in the first ``sleep_attempts`` attempts if that is > 0),
``fail`` (raise), ``fail_attempts`` (fail the first N attempts), and ``marker_dir`` (append one
line per execution to ``<marker_dir>/<run_id>.txt``).
"""

from __future__ import annotations

import os
import random
import socket
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from excise.experiments.registry import ExperimentConfig, ReportFigure, register_experiment_type


class QuadraticConfig(ExperimentConfig):
    """Demo/test type: a closed-form quadratic loss, with sleep and failure switches."""

    type: Literal["quadratic"] = "quadratic"
    x: float = 0.0
    y: float = 0.0
    noise: float = Field(default=0.0, ge=0)
    sleep_s: float = Field(default=0.0, ge=0)
    sleep_attempts: int = Field(default=0, ge=0)
    fail: bool = False
    fail_attempts: int = Field(default=0, ge=0)
    marker_dir: str | None = None


def closed_form(x: float, y: float) -> float:
    """The noise-free loss (x - 1)^2 + (y + 2)^2."""
    return (x - 1.0) ** 2 + (y + 2.0) ** 2


def run_quadratic(cfg: QuadraticConfig, ctx: Any) -> dict[str, Any]:
    """Compute the loss; sleep, fail or leave an execution marker when asked."""
    if cfg.marker_dir:
        Path(cfg.marker_dir).mkdir(parents=True, exist_ok=True)
        with open(Path(cfg.marker_dir) / f"{ctx.run_id}.txt", "a") as f:
            f.write(
                f"{socket.gethostname()} {os.getpid()} attempt={ctx.attempt} "
                f"cuda={os.environ.get('CUDA_VISIBLE_DEVICES', '-')} {time.time():.3f}\n"
            )
    steps = 10
    if cfg.sleep_attempts == 0 or ctx.attempt <= cfg.sleep_attempts:
        for _ in ctx.progress(range(steps), desc="sleeping", total=steps):
            time.sleep(cfg.sleep_s / steps)
    if cfg.fail or ctx.attempt <= cfg.fail_attempts:
        raise RuntimeError(f"quadratic asked to fail (x={cfg.x}, y={cfg.y}, attempt {ctx.attempt})")
    rng = random.Random(f"{cfg.seed}:{cfg.x!r}:{cfg.y!r}")
    exact = closed_form(cfg.x, cfg.y)
    loss = exact + cfg.noise * rng.gauss(0.0, 1.0)
    ctx.logger.info("loss %.6f", loss)
    (ctx.artifacts_dir / "loss.txt").write_text(f"{loss!r}\n")
    return {"loss": loss, "exact": exact, "distance": exact**0.5}


def plot_quadratic(table: Any, out_dir: Path) -> list[ReportFigure]:
    """Loss over (x, y): a scatter coloured by loss."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    sc = ax.scatter(table["x"], table["y"], c=table["loss"], cmap="viridis", s=60)
    fig.colorbar(sc, ax=ax, label="loss")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("quadratic loss")
    path = out_dir / "quadratic_loss.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [ReportFigure(path, "Loss over (x, y)", "Closed-form demo metric; lower is better.")]


register_experiment_type("quadratic", QuadraticConfig, run_quadratic, plot_quadratic)
