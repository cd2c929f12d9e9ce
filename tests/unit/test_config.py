from __future__ import annotations

import pytest

from excise.config import BaseConfig, apply_overrides, load_yaml, validate
from excise.errors import ExciseError


class Inner(BaseConfig):
    lr: float = 1e-3
    steps: int = 10


class Outer(BaseConfig):
    name: str = "x"
    inner: Inner = Inner()
    tags: list[str] = []


def test_overrides_set_nested_values_with_yaml_types() -> None:
    data = apply_overrides(
        {"inner": {"lr": 0.1}}, ["inner.steps=5", "name=abc", "tags=[a, b]", "inner.lr=2e-4"]
    )
    cfg = validate(Outer, data)
    assert cfg.inner.steps == 5 and cfg.inner.lr == pytest.approx(2e-4)
    assert cfg.name == "abc" and cfg.tags == ["a", "b"]


def test_overrides_do_not_mutate_input() -> None:
    src = {"inner": {"lr": 0.1}}
    apply_overrides(src, ["inner.lr=0.5"])
    assert src == {"inner": {"lr": 0.1}}


def test_unknown_key_is_named_in_the_error() -> None:
    with pytest.raises(ExciseError, match=r"unknown key 'inner.stepz'"):
        validate(Outer, {"inner": {"stepz": 3}})


def test_wrong_type_is_named_in_the_error() -> None:
    with pytest.raises(ExciseError, match=r"'inner.steps'"):
        validate(Outer, {"inner": {"steps": "many"}})


def test_configs_are_frozen() -> None:
    cfg = Outer()
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError on frozen assignment
        cfg.name = "y"  # type: ignore[misc]


def test_yaml_round_trip(tmp_path) -> None:
    cfg = validate(Outer, {"name": "n", "inner": {"lr": 0.5, "steps": 3}, "tags": ["t"]})
    p = tmp_path / "c.yaml"
    cfg.save_yaml(p)
    assert load_yaml(Outer, p) == cfg
    assert load_yaml(Outer, p, ["inner.steps=9"]).inner.steps == 9


def test_bad_override_syntax() -> None:
    with pytest.raises(ExciseError, match="key.sub=value"):
        apply_overrides({}, ["novalue"])


def test_missing_yaml_file(tmp_path) -> None:
    with pytest.raises(ExciseError, match="not found"):
        load_yaml(Outer, tmp_path / "nope.yaml")
