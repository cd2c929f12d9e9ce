"""Light modules stay light: validating configs and refusing bad input load no torch.

Every CLI error that needs no model must come back in about a second, not after the several
seconds that importing torch and transformers take; these imports are what makes that hold.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

LIGHT = [
    "excise.evaluation.config",  # EvalConfig
    "excise.models.toy_recipes",  # the SPD toys' recipes
    "excise.spd.config",
    "excise.experiments.sweep",  # load_document / plan_runs of every named experiment
]


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    return set(out.split())


def test_light_modules_do_not_import_torch() -> None:
    loaded = _loaded_after("\n".join(f"import {m}" for m in LIGHT))
    assert set(LIGHT) <= loaded and "torch" not in loaded and "transformers" not in loaded


def test_planning_every_named_experiment_imports_no_transformers() -> None:
    code = (
        "from excise.experiments.registry import named_experiments\n"
        "from excise.experiments.sweep import load_document, plan_runs\n"
        "for name in named_experiments():\n"
        "    doc = load_document(name)\n"
        "    plan_runs(doc, 'base')"
    )
    assert "transformers" not in _loaded_after(code)


def test_planning_a_study_without_a_method_check_imports_no_torch() -> None:
    names = ["quadratic", "spd-tms_5-2", "freeze-attack", "head-pruning"]
    code = (
        "from excise.experiments.sweep import load_document, plan_runs\n"
        f"for name in {names!r}:\n"
        "    plan_runs(load_document(name), 'base')"
    )
    assert "torch" not in _loaded_after(code)


def test_lazy_package_names_still_resolve() -> None:
    import excise.evaluation as ev
    import excise.models as models
    import excise.spd as spd
    from excise.evaluation.suite import evaluate_safety
    from excise.models.load import load_model

    assert ev.evaluate_safety is evaluate_safety and models.load_model is load_model
    assert callable(spd.train_spd) and "train_spd" in dir(spd)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = ev.nope  # type: ignore[attr-defined]


@pytest.mark.parametrize("package", ["excise.evaluation", "excise.models", "excise.spd"])
def test_no_lazy_name_is_also_a_submodule(package: str) -> None:
    """A submodule's first import binds its name on the package, hiding a lazy name of that spelling."""
    import importlib
    import pkgutil

    pkg = importlib.import_module(package)
    submodules = {m.name for m in pkgutil.iter_modules(pkg.__path__)}
    assert not submodules & set(pkg._EXPORTS)
