"""The ``refusal-direction`` experiment type through the engine on a tiny tied Llama: hooks and
orthogonalised weights give the same metrics, the weights (and the tied head) come back, forced
layers, the seeded random direction, config errors before any forward pass, the plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import excise.evaluation
from excise.data import write_jsonl
from excise.errors import ExciseError
from excise.experiments import ExecutorConfig, collect, load_document, run_sweep, write_report
from excise.experiments.types import refusal_direction as rd
from excise.models import tiny_model
from excise.scoring import score

pytestmark = pytest.mark.usefixtures("one_thread")

INPROC = ExecutorConfig(kind="inprocess")


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A tiny Llama with a tied head served as every model name, and the weights at each evaluation."""
    model, tok = tiny_model("llama", seed=4, tie_word_embeddings=True)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    initial = {k: v.detach().clone() for k, v in model.named_parameters(remove_duplicate=False)}
    monkeypatch.setattr("excise.models.load_model", lambda *a, **k: (model, tok))
    seen: list[tuple[Any, dict[str, torch.Tensor]]] = []
    current: dict[str, Any] = {}
    real_study, real_eval = rd.refusal_direction_study, excise.evaluation.evaluate_safety

    def study(cfg: Any, **kw: Any) -> Any:
        assert_unedited(model, initial)  # every run starts from the unedited model
        current["cfg"] = cfg
        return real_study(cfg, **kw)

    def evaluate(m: Any, t: Any, config: Any = None, **kw: Any) -> Any:
        seen.append(
            (current["cfg"], {k: v.detach().clone() for k, v in m.named_parameters(remove_duplicate=False)})
        )
        return real_eval(m, t, config, **kw)

    monkeypatch.setattr(rd, "refusal_direction_study", study)
    monkeypatch.setattr("excise.evaluation.evaluate_safety", evaluate)
    text = tmp_path / "text.jsonl"
    text.write_text(
        "".join(f'{{"text": "The {w} sat on the mat by the door."}}\n' for w in ("cat", "dog", "fox"))
    )
    return {"model": model, "tok": tok, "initial": initial, "seen": seen, "text": str(text)}


def assert_unedited(model: Any, initial: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters(remove_duplicate=False))
    assert set(params) == set(initial)
    for k, v in params.items():
        assert torch.equal(v, initial[k]), k
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert model.config.tie_word_embeddings


def _doc(tmp_path: Path, rig: dict[str, Any], points: list[dict[str, Any]], **base: Any) -> Any:
    experiment = {
        "type": "refusal-direction",
        "model": "tiny-llama",
        "n_harmful": 4,
        "n_harmless": 4,
        "positions": 2,
        "kl_threshold": 10.0,
        "batch_size": 4,
        "judge": "keyword",
        "reference": None,
        "threads": None,
        "eval": {"limit": 3, "max_new_tokens": 4, "kl_prompts": 2, "kl_tokens": 4, "text": rig["text"]},
        **base,
    }
    path = tmp_path / "rd.yaml"
    path.write_text(
        yaml.safe_dump({"name": "rd-test", "experiment": experiment, "sweeps": {"p": {"points": points}}})
    )
    return load_document(str(path))


def _table(sweep: Path) -> Any:
    df = collect(sweep).frame
    assert set(df["state"]) == {"done"}, df[["state", "error"]].to_string()
    return df


def _direction(sweep: Path, run_id: str) -> torch.Tensor:
    (path,) = (sweep / "runs" / run_id).rglob("results.json")
    return torch.tensor(json.loads(path.read_text())["direction"], dtype=torch.float64)


def test_ablation_and_orthogonalisation_give_the_same_metrics_and_restore_the_model(
    tmp_path: Path, rig: dict[str, Any]
) -> None:
    points: list[dict[str, Any]] = [
        {"intervention": "ablate"},
        {"intervention": "orthogonalize"},
        {"random": True, "seed": 3},
    ]
    res = run_sweep(_doc(tmp_path, rig, points), tmp_path / "sw", executor=INPROC)
    assert res.planned == 3
    df = _table(tmp_path / "sw")
    assert_unedited(rig["model"], rig["initial"])
    hook = df[(df["intervention"] == "ablate") & ~df["random"]].iloc[0]
    ortho = df[(df["intervention"] == "orthogonalize") & ~df["random"]].iloc[0]
    rand = df[df["random"]].iloc[0]
    for m in ("asr", "refusal_rate", "benign_accuracy", "over_refusal", "chosen_layer", "chosen_position"):
        assert hook[m] == ortho[m], m
    for m in ("perplexity", "kl_first_token", "kl_mean", "candidate_kl", "candidate_refusal"):
        assert hook[m] == pytest.approx(ortho[m], rel=1e-4, abs=1e-6), m
    assert hook["kl_first_token"] > 0  # the ablation changes the model

    # the method's own choice: what `score` picks on the same prompts (the type cut the harmless set to 4)
    from excise.data import load_examples

    harmless = tmp_path / "harmless4.jsonl"
    write_jsonl(
        harmless, [{"prompt": e.prompt, "response": e.response} for e in load_examples("utility", limit=4)]
    )
    s = score(rig["model"], rig["tok"], load_examples("safety", limit=4), "refusal-direction", batch_size=4,
              use_cache=False, harmless=str(harmless), positions=2, kl_threshold=10.0)  # fmt: skip
    assert (hook["chosen_layer"], hook["chosen_position"]) == (s.meta["layer"], s.meta["position"])
    assert hook["candidate_kl"] == pytest.approx(s.meta["kl"], rel=1e-6)
    assert hook["baseline_refusal"] == pytest.approx(s.meta["baseline_refusal"], rel=1e-6)
    r = _direction(tmp_path / "sw", hook["run_id"])
    torch.testing.assert_close(r.float(), s.companions["direction"]["selected"], rtol=0, atol=1e-6)

    # during the orthogonalised evaluation: no writer writes along r, the head reads the original embedding
    (w,) = [w for c, w in rig["seen"] if c.intervention == "orthogonalize" and not c.random]
    emb = "model.embed_tokens.weight"
    assert float((w[emb].double() @ r).abs().max()) < 1e-5
    for key in (k for k in w if k.endswith(("o_proj.weight", "down_proj.weight"))):
        assert float((r @ w[key].double()).abs().max()) < 1e-5, key
    assert torch.equal(w["lm_head.weight"], rig["initial"]["lm_head.weight"])
    (w,) = [w for c, w in rig["seen"] if c.intervention == "ablate" and not c.random]
    for k, v in w.items():  # hooks: the weights stay as they are
        assert torch.equal(v, rig["initial"][k]), k

    # the random baseline: a seeded Gaussian direction of the residual width, no candidate
    g = torch.Generator().manual_seed(3)
    want = torch.randn(64, generator=g, dtype=torch.float64)
    torch.testing.assert_close(
        _direction(tmp_path / "sw", rand["run_id"]), want / want.norm(), rtol=0, atol=1e-7
    )
    assert rand["chosen_layer"] is None or rand["chosen_layer"] != rand["chosen_layer"]  # None / NaN

    rep = write_report(tmp_path / "sw")
    assert not rep.warnings
    assert [f.path.name for f in rep.figures] == ["refusal_direction_by_layer.png"]
    assert rep.figures[0].path.stat().st_size > 0


def test_a_forced_layer_takes_its_best_candidate(tmp_path: Path, rig: dict[str, Any]) -> None:
    points = [{"layer": 1}, {"layer": 1, "position": -2, "include_original": True}, {"layer": 0}]
    run_sweep(_doc(tmp_path, rig, points, kl_threshold=0.0), tmp_path / "sw", executor=INPROC)
    df = collect(tmp_path / "sw").frame
    # layer 0 reads the embeddings: at the chat template's last tokens harmful and harmless agree
    zero = df[df["layer"] == 0].iloc[0]
    assert zero["state"] == "failed" and "every candidate of layer 0 is zero" in zero["error"]
    df = df[df["layer"] == 1]
    assert set(df["state"]) == {"done"}, df[["state", "error"]].to_string()
    from excise.data import load_examples

    harmless = tmp_path / "harmless4.jsonl"
    write_jsonl(
        harmless, [{"prompt": e.prompt, "response": e.response} for e in load_examples("utility", limit=4)]
    )
    s = score(rig["model"], rig["tok"], load_examples("safety", limit=4), "refusal-direction", batch_size=4,
              use_cache=False, harmless=str(harmless), positions=2, kl_threshold=1e12)  # fmt: skip
    drop, kl = s["refusal_direction"], s.companions["filter"]["kl"]
    best = df[df["position"].isna()].iloc[0]
    # no candidate passes kl_threshold 0: the layer's largest refusal drop is taken
    assert best["chosen_layer"] == 1 and not best["kl_ok"]
    assert best["chosen_position"] == int(drop[1].argmax()) - 2
    assert best["candidate_kl"] == pytest.approx(float(kl[1, int(drop[1].argmax())]), rel=1e-6)
    forced = df[df["position"] == -2].iloc[0]
    assert (forced["chosen_layer"], forced["chosen_position"]) == (1, -2)
    assert forced["candidate_drop"] == pytest.approx(float(drop[1, 0]), rel=1e-6)
    assert forced["original.benign_accuracy"] == forced["original.benign_accuracy"]  # evaluated: not NaN
    assert_unedited(rig["model"], rig["initial"])


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("random=true layer=1", "random: true takes no layer"),
        ("position=-1", "position needs a layer"),
        ("layer=0 position=-9", "outside the last positions=5"),
        ("intervention=steer", "'intervention'"),
        ("layer=-1", "'layer'"),
        ("n_harmless=0", "n_harmless"),
    ],
)
def test_bad_settings_are_one_line_errors_when_the_sweep_is_planned(override: str, match: str) -> None:
    with pytest.raises(ExciseError, match=match) as err:
        load_document("refusal-direction", override.split())
    assert "\n" not in str(err.value)


def test_missing_prompts_and_a_layer_outside_the_candidates_fail_before_any_forward(tmp_path: Path) -> None:
    from excise.evaluation import KeywordJudge

    model, tok = tiny_model("llama", seed=1)
    calls: list[int] = []
    model.register_forward_pre_hook(lambda *_: calls.append(1))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    base = {"model": "tiny-llama", "reference": None, "judge": "keyword"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"harmful": str(empty)}, "empty"),
        ({"harmless": str(empty)}, "empty"),
        ({"harmless": str(tmp_path / "missing.jsonl")}, "missing.jsonl"),
        ({"layer": 2}, "layer 2 is not a candidate"),  # 2 layers, max_layer_fraction 0.8: layers 0, 1
        ({"layer": 1, "max_layer_fraction": 0.5}, "layer 1 is not a candidate"),
    ]
    for settings, match in cases:
        cfg = rd.RefusalDirectionExperimentConfig.model_validate({**base, **settings})
        with pytest.raises(ExciseError, match=match) as err:
            rd.refusal_direction_study(cfg, model=model, tokenizer=tok, judge=KeywordJudge())
        assert "\n" not in str(err.value)
    assert not calls
