"""Registry of experiment types (config schema + run + plots) and of named experiment YAML files.

A method adds an experiment type without touching the engine::

    register_experiment_type("my-study", MyStudyConfig, run_my_study, plot_my_study)

``MyStudyConfig`` subclasses :class:`ExperimentConfig` with ``type: Literal["my-study"]``; the
run function takes ``(config, ctx: RunContext)`` and returns a flat mapping of metrics; the plots
function takes ``(table, out_dir)`` and returns a list of :class:`ReportFigure`.

Types are found by import: the built-in ones in ``excise.experiments.types``, any module named
in the ``excise.experiment_types`` entry-point group, and any ``excise.<package>.experiments``
module. Named experiments are YAML documents in ``excise/experiments/configs/`` (or folders added
with :func:`register_config_dir`).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from excise.config import BaseConfig, read_yaml, validate
from excise.errors import ExciseError

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "configs"
_BUILTIN_TYPE_MODULES = ("excise.experiments.types",)


class ExperimentConfig(BaseConfig):
    """Base of every experiment config; a subclass fixes ``type`` with ``Literal["its-name"]``."""

    type: str
    seed: int = 0


@dataclass(frozen=True)
class ReportFigure:
    """One image of a report: its file, a title and an optional caption."""

    path: Path
    title: str
    caption: str = ""


RunFn = Callable[[Any, Any], Mapping[str, Any]]
PlotsFn = Callable[[Any, Path], list[ReportFigure]]


@dataclass(frozen=True)
class ExperimentType:
    """A registered experiment type: its name, config schema, run function and plots function."""

    name: str
    config_cls: type[ExperimentConfig]
    run_fn: RunFn
    plots_fn: PlotsFn | None
    description: str
    module: str


_TYPES: dict[str, ExperimentType] = {}
_CONFIG_DIRS: list[Path] = [CONFIG_DIR]
_NAMED: dict[str, Path] = {}
_DISCOVERED = False


def _literal_type_name(config_cls: type[ExperimentConfig]) -> str | None:
    field = config_cls.model_fields.get("type")
    if field is None:
        return None
    args = typing.get_args(field.annotation)
    if typing.get_origin(field.annotation) is typing.Literal and len(args) == 1:
        return str(args[0])
    return None


def register_experiment_type(
    name: str,
    config_cls: type[ExperimentConfig],
    run_fn: RunFn,
    plots_fn: PlotsFn | None = None,
    *,
    description: str = "",
) -> ExperimentType:
    """Register an experiment type; re-registering the same functions (a re-import) is allowed."""
    if not (isinstance(config_cls, type) and issubclass(config_cls, ExperimentConfig)):
        raise ExciseError(f"experiment type '{name}': the config class must subclass ExperimentConfig")
    lit = _literal_type_name(config_cls)
    if lit != name:
        raise ExciseError(
            f"experiment type '{name}': {config_cls.__name__}.type must be declared as "
            f"Literal['{name}'] with that default (found {lit!r})"
        )
    entry = ExperimentType(
        name,
        config_cls,
        run_fn,
        plots_fn,
        description or (config_cls.__doc__ or "").strip(),
        getattr(run_fn, "__module__", config_cls.__module__),
    )
    old = _TYPES.get(name)
    if old is not None and (_qualname(old.run_fn), old.config_cls.__qualname__) != (
        _qualname(run_fn),
        config_cls.__qualname__,
    ):
        raise ExciseError(
            f"experiment type '{name}' is already registered by {old.module}; choose another name"
        )
    _TYPES[name] = entry
    return entry


def experiment_type(
    name: str, config_cls: type[ExperimentConfig], plots_fn: PlotsFn | None = None, description: str = ""
) -> Callable[[RunFn], RunFn]:
    """Decorator form of :func:`register_experiment_type` for a run function."""

    def deco(fn: RunFn) -> RunFn:
        register_experiment_type(name, config_cls, fn, plots_fn, description=description)
        return fn

    return deco


def _qualname(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _try_import(module: str) -> None:
    try:
        importlib.import_module(module)
    except ExciseError:
        raise
    except Exception as err:  # noqa: BLE001 - a broken optional module must not break the others
        log.warning("could not import experiment module %s: %s", module, err)


def discover(force: bool = False) -> None:
    """Import every module that may register experiment types (built-ins, entry points, packages)."""
    global _DISCOVERED
    if _DISCOVERED and not force:
        return
    _DISCOVERED = True
    for mod in _BUILTIN_TYPE_MODULES:
        importlib.import_module(mod)
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group="excise.experiment_types"):
            _try_import(ep.value.split(":")[0])
    except Exception as err:  # noqa: BLE001
        log.warning("could not read excise.experiment_types entry points: %s", err)
    import pkgutil

    import excise

    for info in pkgutil.iter_modules(excise.__path__):
        if not info.ispkg or info.name == "experiments":
            continue
        pkg_dir = Path(info.module_finder.path) / info.name  # type: ignore[union-attr]
        if (pkg_dir / "experiments.py").is_file() or (pkg_dir / "experiments" / "__init__.py").is_file():
            _try_import(f"excise.{info.name}.experiments")


def get_experiment_type(name: str, module: str | None = None) -> ExperimentType:
    """The registered type called ``name`` (importing ``module`` or discovering types if needed)."""
    if name not in _TYPES:
        for mod in _BUILTIN_TYPE_MODULES:
            importlib.import_module(mod)
    if name not in _TYPES and module:
        _try_import(module)
    if name not in _TYPES:
        discover()
    if name not in _TYPES:
        known = ", ".join(sorted(_TYPES)) or "none"
        raise ExciseError(f"unknown experiment type '{name}'; registered types: {known}")
    return _TYPES[name]


def experiment_types() -> dict[str, ExperimentType]:
    """All registered experiment types, after discovery."""
    discover()
    return dict(sorted(_TYPES.items()))


def config_union() -> Any:
    """The discriminated union (on ``type``) of every registered experiment config, as a TypeAdapter."""
    classes = tuple(t.config_cls for t in experiment_types().values())
    if len(classes) == 1:
        return TypeAdapter(classes[0])
    return TypeAdapter(Annotated[Union[classes], Field(discriminator="type")])  # type: ignore[arg-type]  # noqa: UP007


def parse_experiment_config(data: Mapping[str, Any], what: str = "experiment config") -> ExperimentConfig:
    """Validate a dict into the config class its ``type`` names; errors name the offending key."""
    if not isinstance(data, Mapping):
        raise ExciseError(f"invalid {what}: expected a mapping with a 'type' key, got {type(data).__name__}")
    name = data.get("type")
    if not isinstance(name, str) or not name:
        known = ", ".join(experiment_types()) or "none"
        raise ExciseError(f"invalid {what}: missing key 'type' (one of: {known})")
    etype = get_experiment_type(name)
    return validate(etype.config_cls, dict(data), what=f"{what} ({name})")


# ---------------------------------------------------------------- named experiment documents


def register_config_dir(path: str | Path) -> None:
    """Add a folder of named experiment YAML files to the registry."""
    p = Path(path)
    if p not in _CONFIG_DIRS:
        _CONFIG_DIRS.append(p)


def register_named_experiment(name: str, path: str | Path) -> None:
    """Register one named experiment YAML file."""
    _NAMED[name] = Path(path)


def named_experiments() -> dict[str, Path]:
    """Name -> YAML file of every named experiment (shipped and registered)."""
    discover()
    out: dict[str, Path] = {}
    for d in _CONFIG_DIRS:
        if d.is_dir():
            for f in sorted(d.glob("*.yaml")):
                out[f.stem] = f
    out.update(_NAMED)
    return dict(sorted(out.items()))


def resolve_named(name_or_path: str) -> tuple[str, dict[str, Any]]:
    """Load a named experiment or a YAML path; returns (name, raw document dict)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        if not p.is_file():
            raise ExciseError(f"experiment file not found: {p}")
        return p.stem, read_yaml(p)
    named = named_experiments()
    if name_or_path not in named:
        known = ", ".join(named) or "none"
        raise ExciseError(
            f"unknown experiment '{name_or_path}'; named experiments: {known} (or pass a YAML file path)"
        )
    return name_or_path, read_yaml(named[name_or_path])


def scalar_metrics(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested result -> flat {"a.b": scalar} for a run's metrics; lists are left out."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(scalar_metrics(v, key + "."))
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out[key] = v
    return out
