"""Registry, config schema and CLI: names, overrides and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from excise.errors import ExciseError
from excise.models.toys import ResidMLPRecipe, TMSRecipe
from excise.spd import SPDConfig, list_experiments, load_config
from excise.spd.cli import app
from excise.spd.config import LMTarget
from excise.spd.registry import experiment_path, run_id

EXPECTED = {
    "tms_5-2",
    "tms_5-2-id",
    "tms_40-10",
    "tms_40-10-id",
    "resid_mlp1",
    "resid_mlp2",
    "resid_mlp3",
    "lm",
}


def test_every_registered_experiment_validates() -> None:
    assert set(list_experiments()) >= EXPECTED
    for name in list_experiments():
        cfg = load_config(name)
        assert cfg.name == name
        assert cfg.model_config["frozen"] and cfg.model_config["extra"] == "forbid"


def test_registered_targets_match_the_paper() -> None:
    t = load_config("tms_40-10-id").target
    assert isinstance(t, TMSRecipe)
    assert (t.n_features, t.n_hidden, t.n_hidden_layers, t.feature_probability) == (40, 10, 1, 0.05)
    r3 = load_config("resid_mlp3").target
    assert isinstance(r3, ResidMLPRecipe)
    assert (r3.n_features, r3.d_mlp, r3.n_layers, r3.d_embed, r3.feature_probability) == (
        102,
        51,
        3,
        1000,
        0.01,
    )
    lm = load_config("lm")
    assert isinstance(lm.target, LMTarget) and lm.loss.output == "kl"


def test_overrides_and_run_id() -> None:
    cfg = load_config("tms_5-2", ["train.steps=7", "loss.importance_minimality=0.5", "seed=3"])
    assert (cfg.train.steps, cfg.loss.importance_minimality, cfg.seed) == (7, 0.5, 3)
    assert run_id(cfg) == run_id(
        load_config("tms_5-2", ["seed=3", "train.steps=7", "loss.importance_minimality=0.5"])
    )
    assert run_id(cfg) != run_id(load_config("tms_5-2"))


def test_yaml_path_is_accepted(tmp_path: Path) -> None:
    doc = yaml.safe_load(experiment_path("tms_5-2").read_text())
    assert doc["experiment"]["type"] == "spd"  # registered experiments are engine documents
    data = dict(doc["experiment"])
    data.pop("type")
    data.pop("name")
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_config(str(path)).name == "mine"
    whole = tmp_path / "doc.yaml"
    whole.write_text(yaml.safe_dump(doc))  # a whole document works too
    assert load_config(str(whole)) == load_config("tms_5-2")


def test_config_is_frozen() -> None:
    cfg = load_config("tms_5-2")
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        cfg.seed = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "overrides", "words"),
    [
        ("tms_5-3", [], ["unknown SPD experiment 'tms_5-3'", "tms_5-2"]),
        ("tms_5-2", ["train.stepz=3"], ["unknown key 'train.stepz'"]),
        ("tms_5-2", ["decomposition.modules=[{pattern: linear1, C: 0}]"], ["C must be at least 1"]),
        ("tms_5-2", ["loss.output=l1"], ["loss.output"]),
        ("tms_5-2", ["target.kind=mnist"], ["target"]),
    ],
)
def test_bad_configs_raise_clear_errors(name: str, overrides: list[str], words: list[str]) -> None:
    with pytest.raises(ExciseError) as info:
        load_config(name, overrides)
    for w in words:
        assert w in str(info.value)


def test_duplicate_pattern_in_config() -> None:
    data = load_config("tms_5-2").to_dict()
    data["decomposition"]["modules"].append(dict(data["decomposition"]["modules"][0]))
    from excise.config import validate

    with pytest.raises(ExciseError, match="listed twice"):
        validate(SPDConfig, data)


def test_pattern_matching_no_module_fails_at_run(tmp_path: Path) -> None:
    from excise.spd import run_experiment

    with pytest.raises(ExciseError, match="'linear9' matches no module"):
        run_experiment(
            "tms_5-2",
            ["decomposition.modules=[{pattern: linear9, C: 3}]", "target.steps=10", "train.steps=1"],
            out_dir=tmp_path / "run",
        )
    assert "failed" in (tmp_path / "run" / "status.json").read_text()


def test_cli_list_and_errors() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["list"])
    assert res.exit_code == 0
    for name in EXPECTED:
        assert name in res.output
    res = runner.invoke(app, ["run", "no_such_experiment"])
    assert res.exit_code == 2
    assert "unknown SPD experiment 'no_such_experiment'" in res.output
    res = runner.invoke(app, ["run", "tms_5-2", "--set", "train.bogus=1"])
    assert res.exit_code == 2
    assert "unknown key 'train.bogus'" in res.output


def test_unknown_device() -> None:
    from excise.spd.registry import resolve_device

    with pytest.raises(ExciseError, match="device"):
        resolve_device("tpu")


def test_load_config_missing_file() -> None:
    with pytest.raises(ExciseError, match="not found"):
        load_config("does/not/exist.yaml")
