"""SPD end to end: short runs, run folders, the CLI, the LM experiment and the full tms_5-2 recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from excise.spd import causal_importance_on, list_experiments, load_run, run_experiment
from excise.spd.metrics import one_hot_inputs

FAST_TARGET = ["target.steps=1500", "target.batch_size=256"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_short_tms_run_decreases_losses_and_writes_a_run_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = run_experiment(
        "tms_5-2",
        [
            *FAST_TARGET,
            "train.steps=300",
            "train.log_every=20",
            "train.eval_every=150",
            "eval.n_samples=1024",
        ],
        out_dir=out,
        show_progress=False,
    )
    hist = res.train.history
    first, last = hist[:3], hist[-3:]

    def mean(rows: list[dict[str, float]], key: str) -> float:
        return sum(r[key] for r in rows) / len(rows)

    assert mean(last, "total") < mean(first, "total")
    assert mean(last, "stochastic_recon") < mean(first, "stochastic_recon")
    assert mean(last, "stochastic_recon_layerwise") < mean(first, "stochastic_recon_layerwise")
    assert len(res.train.evals) == 2 and "mmcs" in res.train.evals[0]
    for name in ("config.yaml", "model.safetensors", "metrics.json", "history.json", "status.json"):
        assert (out / name).is_file(), name
    for name in ("losses.png", "ci_matrices.png", "tms_subcomponents.png"):
        assert (out / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    metrics = json.loads((out / "metrics.json").read_text())
    rec = metrics["reconstruction"]
    assert rec["unmasked"] < 1e-3 * rec["zero_masked"]  # UV stays close to W (faithfulness)
    assert json.loads((out / "status.json").read_text())["state"] == "done"
    cfg, spd = load_run(out)
    assert cfg == res.config
    x = one_hot_inputs(5, 1.0)
    for name, g in causal_importance_on(spd, x).items():
        torch.testing.assert_close(g, causal_importance_on(res.spd, x)[name])


def test_cli_run_writes_outputs(tmp_path: Path) -> None:
    from excise.cli import main

    out = tmp_path / "cli-run"
    sets = [*FAST_TARGET, "train.steps=20", "eval.n_samples=256", "eval.plots=false"]
    try:
        main(["spd", "run", "tms_5-2", "--out", str(out), "-q", *sum((["--set", s] for s in sets), [])])
    except SystemExit as ex:  # typer may exit explicitly with status 0
        assert ex.code in (0, None)
    (run,) = list((out / "runs").iterdir())  # an ordinary run folder of the engine
    assert (run / "metrics.json").is_file() and not (run / "artifacts" / "plots").exists()


def test_cli_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from excise.cli import main

    with pytest.raises(SystemExit) as info:
        main(
            [
                "spd",
                "run",
                "tms_5-2",
                "--set",
                "decomposition.modules=[{pattern: nothing, C: 2}]",
                "--set",
                FAST_TARGET[0],
                "--set",
                FAST_TARGET[1],
                "--out",
                str(tmp_path / "bad"),
            ]
        )
    assert info.value.code == 2
    assert "'nothing' matches no module" in capsys.readouterr().err


def _kl_with_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], tokens: torch.Tensor) -> float:
    """KL(target ‖ copy of the model with the named Linear weights replaced), mean over positions, by hand."""
    import copy

    with torch.no_grad():
        p_logits = model(tokens, use_cache=False).logits.double()
        edited = copy.deepcopy(model)
        mods = dict(edited.named_modules())
        for name, w in weights.items():
            mods[name].weight.copy_(w)
        q_logits = edited(tokens, use_cache=False).logits.double()
    p = torch.softmax(p_logits, -1)
    return float((p * (torch.log(p) - torch.log_softmax(q_logits, -1))).sum(-1).mean())


@pytest.mark.slow
def test_lm_experiment_keeps_the_tiny_llama_faithful_and_learns_masks(tmp_path: Path) -> None:
    steps = 250
    res = run_experiment(
        "lm",
        [f"train.steps={steps}", "eval.n_samples=512", "train.log_every=10", "eval.plots=false"],
        out_dir=tmp_path / "lm",
        show_progress=False,
    )
    spd, m = res.spd, res.metrics
    names = {f"model.layers.{i}.mlp.{p}" for i in (0, 1) for p in ("up_proj", "down_proj")}
    assert set(spd.layer_names) == names and set(m["alive"]) == names
    tokens = torch.randint(0, 256, (16, 16), generator=torch.Generator().manual_seed(123))
    ones = {n: spd.component(n).weight().detach() for n in names}
    zeros = {n: torch.zeros_like(w) for n, w in ones.items()}
    kl_ones = _kl_with_weights(spd.target, ones, tokens)
    kl_zero = _kl_with_weights(spd.target, zeros, tokens)
    assert kl_zero > 0.5  # the MLPs of the random Llama matter
    assert kl_ones < 1e-2 * kl_zero  # U V stays close to W under KL training (faithfulness enforced)
    rec = m["reconstruction"]
    assert rec["unmasked"] < 1e-2 * rec["zero_masked"]
    assert abs(rec["zero_masked"] - kl_zero) < 0.25 * kl_zero  # same measure on another batch
    assert rec["ci_masked"] < 0.5 * rec["zero_masked"]  # the learned masks keep what matters
    assert rec["stochastic_masked"] < 0.5 * rec["zero_masked"]
    hist = res.train.history
    for key in ("stochastic_recon", "stochastic_recon_layerwise"):
        assert sum(r[key] for r in hist[-3:]) / 3 < 0.5 * hist[0][key], key
    assert hist[-1]["step"] == steps - 1


@pytest.mark.slow
def test_tms_5_2_full_recipe_recovers_the_ground_truth(tmp_path: Path) -> None:
    assert "tms_5-2" in list_experiments()
    res = run_experiment("tms_5-2", out_dir=tmp_path / "tms", show_progress=False)
    m = res.metrics
    assert m["tms"]["mmcs"] >= 0.99
    assert 0.9 <= m["tms"]["ml2r"] <= 1.1
    assert m["alive"]["linear1"] == 5
    assert m["ci_errors"]["linear1"] == 0
    assert m["passed"]
