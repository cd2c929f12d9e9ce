"""Experiments: typed configs, a registry of named experiments, resumable sweeps, executors, reports.

This is the only package that knows about run folders, executors and caching of runs.
"""

from excise.experiments.registry import (
    ExperimentConfig,
    ExperimentType,
    ReportFigure,
    experiment_type,
    experiment_types,
    get_experiment_type,
    named_experiments,
    parse_experiment_config,
    register_config_dir,
    register_experiment_type,
    register_named_experiment,
)
from excise.experiments.report import collect, write_report
from excise.experiments.runs import RunContext, RunSpec, execute_run, run_id_for
from excise.experiments.status import sweep_status
from excise.experiments.sweep import (
    ExecutorConfig,
    ExperimentDocument,
    SlurmOptions,
    TrackingConfig,
    load_document,
    plan_runs,
    run_sweep,
)

__all__ = [
    "ExecutorConfig",
    "ExperimentConfig",
    "ExperimentDocument",
    "ExperimentType",
    "ReportFigure",
    "RunContext",
    "RunSpec",
    "SlurmOptions",
    "TrackingConfig",
    "collect",
    "execute_run",
    "experiment_type",
    "experiment_types",
    "get_experiment_type",
    "load_document",
    "named_experiments",
    "parse_experiment_config",
    "plan_runs",
    "register_config_dir",
    "register_experiment_type",
    "register_named_experiment",
    "run_id_for",
    "run_sweep",
    "sweep_status",
    "write_report",
]
