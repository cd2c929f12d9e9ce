"""The ``safety-ranks`` experiment type through the engine on a tiny model: rank(dW) measured on the
weights, the random baseline's rank, r_s = R is a no-op, weights restored, config errors, plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import excise.evaluation
from excise.errors import ExciseError
from excise.experiments import ExecutorConfig, collect, load_document, run_sweep, write_report
from excise.experiments.types import safety_ranks as sr
from excise.interventions.lowrank import RANK_TOL
from excise.models import tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")

INPROC = ExecutorConfig(kind="inprocess")


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A tiny Llama served as every model name, and a record of the weights at each evaluation."""
    model, tok = tiny_model("llama", seed=3)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    monkeypatch.setattr("excise.models.load_model", lambda *a, **k: (model, tok))
    seen: list[tuple[Any, dict[str, torch.Tensor]]] = []
    current: dict[str, Any] = {}
    real_study, real_eval = sr.safety_ranks_study, excise.evaluation.evaluate_safety

    def study(cfg: Any, **kw: Any) -> Any:
        for k, v in model.state_dict().items():  # every run starts from the unedited weights
            assert torch.equal(v, initial[k]), k
        current["cfg"] = cfg
        return real_study(cfg, **kw)

    def evaluate(m: Any, t: Any, config: Any = None, **kw: Any) -> Any:
        seen.append((current["cfg"], {k: v.detach().clone() for k, v in m.state_dict().items()}))
        return real_eval(m, t, config, **kw)

    monkeypatch.setattr(sr, "safety_ranks_study", study)
    monkeypatch.setattr("excise.evaluation.evaluate_safety", evaluate)
    text = tmp_path / "text.jsonl"
    text.write_text(
        "".join(f'{{"text": "The {w} sat on the mat by the door."}}\n' for w in ("cat", "dog", "fox"))
    )
    return {"model": model, "tok": tok, "initial": initial, "seen": seen, "text": str(text)}


def _doc(tmp_path: Path, rig: dict[str, Any], points: list[dict[str, Any]], **base: Any) -> Any:
    experiment = {
        "type": "safety-ranks",
        "model": "tiny-llama",
        "n_safety": 4,
        "n_utility": 4,
        "batch_size": 4,
        "judge": "keyword",
        "reference": None,
        "threads": None,
        "eval": {"limit": 3, "max_new_tokens": 4, "kl_prompts": 2, "kl_tokens": 4, "text": rig["text"]},
        **base,
    }
    path = tmp_path / "sr.yaml"
    path.write_text(
        yaml.safe_dump({"name": "sr-test", "experiment": experiment, "sweeps": {"p": {"points": points}}})
    )
    return load_document(str(path))


def _rank_of_change(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(sum of rank(W_after - W_before), sum of R) over the scored matrices (every Linear but the head)."""
    total, total_R = 0, 0
    for key, w in before.items():
        if w.dim() != 2 or "embed" in key or "lm_head" in key:
            continue
        w64 = w.double()
        tol = RANK_TOL * torch.finfo(torch.float32).eps * float(torch.linalg.matrix_norm(w64))
        total += int(torch.linalg.matrix_rank(after[key].double() - w64, atol=tol, rtol=0.0))
        total_R += min(w.shape)
    return total, total_R


def _table(sweep: Path) -> Any:
    df = collect(sweep).frame
    assert set(df["state"]) == {"done"}, df[["state", "error"]].to_string()
    return df


def test_rank_of_dw_is_the_rank_of_the_weight_change_and_random_matches_it(
    tmp_path: Path, rig: dict[str, Any]
) -> None:
    points: list[dict[str, Any]] = [
        {"r_u": 0.5, "r_s": 0.75},
        {"r_u": 0.5, "r_s": 0.75, "random": True},
        {"mode": "remove-top", "k": 3, "actsvd_mode": "sequential"},
    ]
    res = run_sweep(_doc(tmp_path, rig, points), tmp_path / "sw", executor=INPROC)
    assert res.planned == 3
    df = _table(tmp_path / "sw")
    for cfg, weights in rig["seen"]:
        row = df[(df["mode"] == cfg.mode) & (df["random"] == cfg.random)].iloc[0]
        rank, total_R = _rank_of_change(rig["initial"], weights)
        assert row["rank_dw"] == rank > 0, (cfg.mode, cfg.random)
        assert row["total_R"] == total_R == 2 * (5 * 64 + 2 * 32)  # q, o, gate, up, down: R 64; k, v: 32
        assert row["rank_dw_fraction"] == pytest.approx(rank / total_R)
    ortho = df[(df["mode"] == "orthogonal") & ~df["random"].astype(bool)].iloc[0]
    rand = df[df["random"].astype(bool)].iloc[0]
    # R - r_s = 16 (R 64) or 8 (R 32) safety directions, fewer than the r_u the utility projection frees;
    # below the bound where the top safety directions lie in the kept utility subspace (layer 0's inputs
    # are a few dozen distinct byte embeddings, shared by both sets)
    assert 0 < ortho["rank_dw"] <= ortho["rank_bound"] == 2 * (5 * 16 + 2 * 8)
    assert rand["rank_dw"] == rand["matched_rank_dw"] == ortho["rank_dw"]
    top = df[df["mode"] == "remove-top"].iloc[0]
    assert top["rank_dw"] == 14 * 3 and top["rank_dw_max"] == 3 and top["matrices"] == 14
    # the random directions are not the safety directions
    w_ortho = next(w for c, w in rig["seen"] if c.mode == "orthogonal" and not c.random)
    w_rand = next(w for c, w in rig["seen"] if c.random)
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(w_ortho[key], w_rand[key])
    for k, v in rig["model"].state_dict().items():
        assert torch.equal(v, rig["initial"][k]), k
    assert {
        "asr",
        "refusal_rate",
        "benign_accuracy",
        "perplexity",
        "over_refusal",
        "kl_first_token",
        "kl_mean",
    } <= set(df.columns)
    assert not any("examples" in c or c.startswith("original.") for c in df.columns)
    assert (df["kl_first_token"] >= 0).all()
    reports = sorted((tmp_path / "sw").rglob("rank_report.json"))
    assert len(reports) == 3

    rep = write_report(tmp_path / "sw")
    assert not rep.warnings
    assert [f.path.name for f in rep.figures] == [
        "safety_ranks_asr_accuracy.png",
        "safety_ranks_kl_over_refusal.png",
    ]
    assert all(f.path.is_file() and f.path.stat().st_size > 0 for f in rep.figures)


def test_r_s_equal_to_R_changes_nothing_and_matches_the_unedited_model(
    tmp_path: Path, rig: dict[str, Any]
) -> None:
    run_sweep(
        _doc(tmp_path, rig, [{"r_u": 0.5, "r_s": 1.0}], include_original=True),
        tmp_path / "sw",
        executor=INPROC,
    )
    row = _table(tmp_path / "sw").iloc[0]
    assert row["rank_dw"] == 0 and row["rank_dw_fraction"] == 0.0
    assert len(rig["seen"]) == 2  # the unedited model, then the edited one
    for _cfg, weights in rig["seen"]:
        for k, v in weights.items():
            assert torch.equal(v, rig["initial"][k]), k
    for m in ("asr", "refusal_rate", "benign_accuracy", "perplexity", "over_refusal", "kl_first_token"):
        assert row[m] == row[f"original.{m}"], m
    assert row["kl_first_token"] == pytest.approx(0.0, abs=1e-9)
    assert row["asr_gain"] == 0.0 and row["accuracy_drop"] == 0.0


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("r_u=-1", "r_u must be at least 0"),
        ("r_s=1.5", "must lie in \\[0, 1\\]"),
        ("k=-0.1", "must lie in \\[0, 1\\]"),
        ("r_u=true", "must be a count"),
        ("mode=keep-bottom", "'mode'"),
        ("n_safety=0", "n_safety"),
    ],
)
def test_bad_settings_are_one_line_errors_when_the_sweep_is_planned(override: str, match: str) -> None:
    with pytest.raises(ExciseError, match=match) as err:
        load_document("safety-ranks", [override])
    assert "\n" not in str(err.value)


def test_counts_above_R_and_empty_data_fail_before_any_forward(tmp_path: Path) -> None:
    from excise.evaluation import KeywordJudge

    model, tok = tiny_model("llama", seed=1)
    calls: list[int] = []
    model.register_forward_pre_hook(lambda *_: calls.append(1))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    base = {"model": "tiny-llama", "reference": None, "judge": "keyword"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"r_u": 8, "r_s": 40}, "r_s = 40 exceeds R"),  # k_proj / v_proj have R = 32
        ({"mode": "remove-top", "k": 65}, "k = 65 exceeds R"),
        ({"safety": str(empty)}, "empty"),
        ({"utility": str(empty)}, "empty"),
        ({"targets": ["*.nothing.*"]}, "no linear layer matches"),
    ]
    for settings, match in cases:
        cfg = sr.SafetyRanksConfig.model_validate({**base, **settings})
        with pytest.raises(ExciseError, match=match) as err:
            sr.safety_ranks_study(cfg, model=model, tokenizer=tok, judge=KeywordJudge())
        assert "\n" not in str(err.value)
    assert not calls
