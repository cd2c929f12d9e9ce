"""Experiment configs: typed, frozen, YAML in/out, dotted overrides, registry of types and named experiments."""

from __future__ import annotations

from typing import Any, Literal

import pytest
import yaml

from excise.errors import ExciseError
from excise.experiments import (
    ExperimentConfig,
    experiment_types,
    load_document,
    parse_experiment_config,
    plan_runs,
    register_experiment_type,
    run_id_for,
)
from excise.experiments.registry import config_union, named_experiments
from excise.experiments.sweep import parse_grid_options


def test_builtin_types_and_named_experiments_are_registered() -> None:
    types = experiment_types()
    assert {"safety-neurons", "quadratic"} <= set(types)
    assert {"safety-neurons", "quadratic"} <= set(named_experiments())


def test_unknown_key_is_rejected_with_its_name() -> None:
    with pytest.raises(ExciseError, match="unknown key 'pp'"):
        parse_experiment_config({"type": "safety-neurons", "pp": 0.1})
    with pytest.raises(ExciseError, match="unknown key 'n_safty'"):
        load_document("safety-neurons", ["n_safty=12"])


def test_wrong_type_is_rejected_with_its_name() -> None:
    with pytest.raises(ExciseError, match="'q'"):
        load_document("safety-neurons", ["q=lots"])
    with pytest.raises(ExciseError, match="'method'"):
        parse_experiment_config({"type": "safety-neurons", "method": "sparsegpt"})
    with pytest.raises(ExciseError, match="'executor.kind'"):
        load_document("quadratic", ["executor.kind=cluster"])


def test_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(ExciseError, match="unknown experiment type 'nope'.*quadratic"):
        parse_experiment_config({"type": "nope"})
    with pytest.raises(ExciseError, match="missing key 'type'"):
        parse_experiment_config({"x": 1})


def test_grid_key_typo_is_rejected_before_anything_runs() -> None:
    doc = load_document("quadratic")
    with pytest.raises(ExciseError, match="unknown key 'xx'"):
        plan_runs(doc, "grid", {"xx": [1, 2]})


def test_configs_are_frozen_and_round_trip_through_yaml() -> None:
    cfg = parse_experiment_config({"type": "safety-neurons", "p": 0.02, "q": 0.01, "method": "wanda"})
    with pytest.raises(Exception, match="frozen"):
        cfg.p = 0.5  # type: ignore[misc]
    again = parse_experiment_config(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg
    assert run_id_for(again) == run_id_for(cfg)


def test_run_id_is_deterministic_and_depends_on_every_value() -> None:
    a = parse_experiment_config({"type": "quadratic", "x": 1.0, "y": 2.0})
    b = parse_experiment_config({"y": 2.0, "x": 1.0, "type": "quadratic"})
    c = parse_experiment_config({"type": "quadratic", "x": 1.0, "y": 2.5})
    assert run_id_for(a) == run_id_for(b) != run_id_for(c)
    assert len(run_id_for(a)) == 16


def test_dotted_overrides_reach_experiment_and_document_sections() -> None:
    doc = load_document(
        "safety-neurons",
        [
            "p=0.2",
            "experiment.q=0.01",
            "executor.kind=inprocess",
            "executor.slurm.partition=gpu",
            "tracking.wandb.enabled=false",
        ],
    )
    assert doc.experiment["p"] == 0.2 and doc.experiment["q"] == 0.01
    assert doc.executor.kind == "inprocess" and doc.executor.slurm.partition == "gpu"


def test_safety_neuron_modes_have_about_10_and_35_pairs() -> None:
    doc = load_document("safety-neurons")
    mode, pre = plan_runs(doc)
    assert mode == "predefined" and 8 <= len(pre) <= 12
    _, grid = plan_runs(doc, "grid")
    assert len(grid) == 35
    pairs = {(r.config.p, r.config.q) for r in grid}  # type: ignore[attr-defined]
    assert len(pairs) == 35 and all(0 < p <= 1 and 0 < q <= 1 for p, q in pairs)
    _, base = plan_runs(doc, "base")
    assert len(base) == 1
    with pytest.raises(ExciseError, match="no sweep mode 'huge'"):
        plan_runs(doc, "huge")


def test_points_cross_grid_and_duplicates_collapse() -> None:
    doc = load_document("quadratic")
    _, runs = plan_runs(doc, "points", {"seed": [0, 1]})
    assert len(runs) == 6
    _, dup = plan_runs(doc, "grid", {"x": [1.0, 1.0]})
    assert len(dup) == 3  # x collapses to one value, y has three


def test_parse_grid_options() -> None:
    assert parse_grid_options(["seed=0,1,2", "p=[0.1, 0.2]", "method=snip,wanda"]) == {
        "seed": [0, 1, 2],
        "p": [0.1, 0.2],
        "method": ["snip", "wanda"],
    }
    with pytest.raises(ExciseError):
        parse_grid_options(["seed"])


def test_bare_config_yaml_file_is_a_document(tmp_path: Any) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text("type: quadratic\nx: 3.0\n")
    doc = load_document(str(f), ["y=1"])
    assert doc.name == "mine"
    mode, runs = plan_runs(doc)
    assert mode == "base" and runs[0].config.x == 3.0 and runs[0].config.y == 1.0  # type: ignore[attr-defined]
    bad = tmp_path / "bad.yaml"
    bad.write_text("type: quadratic\nz: 3.0\n")
    with pytest.raises(ExciseError, match="unknown key 'z'"):
        load_document(str(bad))


class _DemoConfig(ExperimentConfig):
    """A type registered by a test, as a later method issue would."""

    type: Literal["test-demo"] = "test-demo"
    k: int = 1


def _run_demo(cfg: _DemoConfig, ctx: Any) -> dict[str, Any]:
    return {"k2": cfg.k * cfg.k}


def test_new_types_register_without_touching_the_engine() -> None:
    register_experiment_type("test-demo", _DemoConfig, _run_demo)
    register_experiment_type("test-demo", _DemoConfig, _run_demo)  # a re-import is fine
    cfg = parse_experiment_config({"type": "test-demo", "k": 3})
    assert isinstance(cfg, _DemoConfig)
    union = config_union()
    assert isinstance(union.validate_python({"type": "test-demo", "k": 2}), _DemoConfig)
    with pytest.raises(ExciseError, match="already registered"):
        register_experiment_type("test-demo", _DemoConfig, lambda c, x: {})
    with pytest.raises(ExciseError, match="Literal"):
        register_experiment_type("other-name", _DemoConfig, _run_demo)


def test_demo_is_a_named_experiment_of_the_safety_type() -> None:
    from excise.demo import demo_config
    from excise.experiments.types.safety_neurons import SafetyNeuronsConfig
    from excise.pipeline import ROWS, StudyConfig

    cfg = demo_config()
    assert isinstance(cfg, SafetyNeuronsConfig) and isinstance(cfg, StudyConfig)
    assert cfg.type == "safety-neurons" and cfg.model == "organism" and cfg.rows == ROWS
    assert cfg.n_safety is None and cfg.eval.system_prompt is None
    assert cfg == parse_experiment_config(load_document("demo").experiment)
    changed = demo_config({"p": 0.1, "eval": {"samples": 3}}, ["q=0.2", "eval.limit=40"])
    assert (changed.p, changed.q, changed.eval.samples, changed.eval.limit) == (0.1, 0.2, 3, 40)
    assert changed.eval.max_new_tokens == cfg.eval.max_new_tokens  # eval merged key by key
    with pytest.raises(ExciseError, match=r"p must be a fraction in \(0, 1\], got 2"):
        demo_config({"p": 2.0})
    with pytest.raises(ExciseError, match="unknown key 'eval.limt'"):
        demo_config(sets=["eval.limt=3"])
