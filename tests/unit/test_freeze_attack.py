"""Attack data for the freeze-attack study, and the study's registration and config checks."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from excise.errors import ExciseError


def _held_out_prompts() -> set[str]:
    """The held-out eval prompts, read straight from the shipped files."""
    from excise.data import builtin_path

    out: set[str] = set()
    for name in ("harmful-eval", "benign-eval"):
        for line in builtin_path(name).read_text().splitlines():
            if line.strip():
                out.add(json.loads(line)["prompt"].lower())
    return out


@pytest.mark.parametrize("kind", ["harmful", "benign"])
def test_attack_examples_are_unique_balanced_and_never_held_out(kind: str) -> None:
    from excise.zoo.attack import attack_examples
    from excise.zoo.grammar import HARM

    xs = attack_examples(100, kind)
    assert len(xs) == 100
    assert len({x.prompt.lower() for x in xs}) == 100
    assert not {x.prompt.lower() for x in xs} & _held_out_prompts()
    if kind == "benign":  # correct answers
        from excise.evaluation import is_correct

        assert all(x.get("expected") and is_correct(x.response, x.get("expected")) for x in xs)
    if kind == "harmful":
        assert all(x.response and x.response.startswith("Sure") for x in xs)
        cats = Counter(x.get("category") for x in xs)
        assert set(cats) == set(HARM)
        assert max(cats.values()) - min(cats.values()) <= 1  # balanced over the 12 categories
        from excise.evaluation import is_refusal

        assert not any(is_refusal(x.response) for x in xs)  # compliant answers


def test_attack_examples_are_deterministic_and_differ_by_seed() -> None:
    from excise.zoo.attack import attack_examples

    assert attack_examples(20, "harmful", seed=0) == attack_examples(20, "harmful", seed=0)
    assert attack_examples(20, "harmful", seed=0) != attack_examples(20, "harmful", seed=1)


@pytest.mark.parametrize(("n", "kind"), [(0, "harmful"), (5, "poison")])
def test_bad_attack_data_requests_are_clear_errors(n: int, kind: str) -> None:
    from excise.zoo.attack import attack_examples

    with pytest.raises(ExciseError, match="attack"):
        attack_examples(n, kind)


def test_freeze_attack_is_a_registered_experiment_with_its_sweeps() -> None:
    from excise.experiments.registry import get_experiment_type, parse_experiment_config, resolve_named

    assert get_experiment_type("freeze-attack").config_cls.__name__ == "FreezeAttackConfig"
    _, doc = resolve_named("freeze-attack")
    cfg = parse_experiment_config(doc["experiment"])
    assert cfg.model == "organism"
    points = doc["sweeps"]["attack"]["points"]
    assert sorted({p["n"] for p in points}) == [10, 50, 100]
    assert sorted({p["q"] for p in points}) == [0.0, 0.1, 0.3, 0.5, 0.7]
    for n in (10, 50, 100):
        for q in (0.1, 0.3, 0.5, 0.7):
            assert {p.get("freeze") for p in points if p["n"] == n and p["q"] == q} == {"safety", "random"}
    with pytest.raises(ExciseError, match="q"):
        parse_experiment_config({**doc["experiment"], "q": 1.5})
