from __future__ import annotations

import pytest
import torch

from excise.cache import cached_scores, model_fingerprint
from excise.core import Scores, Selection
from excise.errors import ExciseError
from excise.models import tiny_model


def test_scores_round_trip_float32_cpu(tmp_path) -> None:
    s = Scores({"a.weight": torch.arange(6, dtype=torch.float64).reshape(2, 3)}, unit="weight", meta={"m": 1})
    assert s["a.weight"].dtype == torch.float32
    s.save(tmp_path / "s")
    back = Scores.load(tmp_path / "s.safetensors")
    assert torch.equal(back["a.weight"], s["a.weight"]) and back.meta == {"m": 1} and back.unit == "weight"


def test_selection_round_trip_and_kind_check(tmp_path) -> None:
    sel = Selection({"w": torch.tensor([[1, 0], [0, 1]])}, unit="head")
    assert sel.count() == 2 and sel.fraction() == 0.5
    sel.save(tmp_path / "m")
    assert torch.equal(Selection.load(tmp_path / "m")["w"], sel["w"])
    with pytest.raises(ExciseError, match="not scores"):
        Scores.load(tmp_path / "m")


def test_unknown_unit() -> None:
    with pytest.raises(ExciseError, match="unit"):
        Scores({}, unit="atom")


def test_corrupt_file_is_reported(tmp_path) -> None:
    Scores({"w": torch.ones(2)}).save(tmp_path / "s")
    (tmp_path / "s.safetensors").write_bytes(b"garbage")
    with pytest.raises(ExciseError, match="corrupt"):
        Scores.load(tmp_path / "s")


def test_fingerprint_changes_with_weights() -> None:
    m, _ = tiny_model("llama")
    fp = model_fingerprint(m)
    assert fp == model_fingerprint(tiny_model("llama")[0])
    with torch.no_grad():
        m.model.layers[0].mlp.up_proj.weight[0, 0] += 1
    assert model_fingerprint(m) != fp


def test_cache_computes_once() -> None:
    calls = []

    def compute() -> Scores:
        calls.append(1)
        return Scores({"w": torch.rand(3)})

    a = cached_scores("magnitude", {"x": 1}, "m", "d", compute)
    b = cached_scores("magnitude", {"x": 1}, "m", "d", compute)
    assert len(calls) == 1 and torch.equal(a["w"], b["w"])
    cached_scores("magnitude", {"x": 2}, "m", "d", compute)
    assert len(calls) == 2
