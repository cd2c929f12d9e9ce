"""Named SPD experiments (engine documents ``experiments/configs/spd-*.yaml``), target builders, evaluation and runs."""

from __future__ import annotations

import difflib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import excise.spd.metrics as M
from excise.config import apply_overrides, read_yaml, validate
from excise.devices import resolve_device
from excise.errors import ExciseError
from excise.models.toys import (
    ResidMLP,
    ResidMLPRecipe,
    TMSModel,
    TMSRecipe,
    load_toy,
    resid_mlp_batch,
    tms_batch,
)
from excise.spd.components import SPDModel, decompose
from excise.spd.config import LMTarget, SPDConfig
from excise.spd.train import TrainResult, train_spd
from excise.threads import auto_threads
from excise.utils import atomic_write_bytes, atomic_write_json, atomic_write_text, stable_hash

#: Named SPD experiments are documents of the experiment engine: ``spd-<name>.yaml`` with
#: ``experiment: {type: spd, ...}`` and ``sweeps:`` over seeds and coefficients.
CONFIG_DIR = Path(__file__).resolve().parents[1] / "experiments" / "configs"
PREFIX = "spd-"


# ----------------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------------


def list_experiments() -> list[str]:
    """Names of the registered SPD experiments (``spd-<name>.yaml`` documents, listed as ``<name>``)."""
    return sorted(p.stem[len(PREFIX) :] for p in CONFIG_DIR.glob(f"{PREFIX}*.yaml"))


def experiment_path(name: str) -> Path:
    """The YAML document of a registered experiment; unknown names raise ExciseError with suggestions."""
    name = name.removeprefix(PREFIX)
    path = CONFIG_DIR / f"{PREFIX}{name}.yaml"
    if not path.is_file():
        names = list_experiments()
        close = difflib.get_close_matches(name, names, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ExciseError(
            f"unknown SPD experiment '{name}'{hint}; choose one of {', '.join(names)} "
            "or pass the path of a YAML config file"
        )
    return path


def config_data(data: dict[str, Any]) -> dict[str, Any]:
    """The SPD config inside a YAML mapping: an engine document's ``experiment`` (without ``type``),
    or the mapping itself when it is a plain SPD config."""
    if isinstance(data.get("experiment"), dict):
        inner = dict(data["experiment"])
        if inner.get("type", "spd") != "spd":
            raise ExciseError(f"experiment type '{inner.get('type')}' is not an SPD experiment (type: spd)")
        inner.pop("type", None)
        return inner
    return data


def load_config(name_or_path: str | Path, overrides: list[str] | None = None) -> SPDConfig:
    """Resolve a registered name or a YAML path, apply ``a.b=value`` overrides and validate."""
    text = str(name_or_path)
    is_path = isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or "/" in text
    path = Path(text) if is_path else experiment_path(text)
    data = apply_overrides(config_data(read_yaml(path)), overrides or [])
    if is_path:
        data.setdefault("name", path.stem)
    return validate(SPDConfig, data, what=f"SPD config '{text}'")


# ----------------------------------------------------------------------------------------------------
# Targets
# ----------------------------------------------------------------------------------------------------


@dataclass
class Target:
    """A target model ready for SPD: the model, a batch sampler and what the metrics need to know."""

    model: nn.Module
    batch_fn: Callable[[int, torch.Generator], Any]
    kind: str
    forward_kwargs: dict[str, Any] = field(default_factory=dict)
    recipe: Any = None


def build_lm(target: LMTarget) -> nn.Module:
    """A tiny random Llama from a LlamaConfig (seeded), or a local / cached HF causal LM (offline)."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers as tf

    dtype = getattr(torch, target.dtype)
    if target.model == "tiny-llama":
        cfg = tf.LlamaConfig(
            vocab_size=target.vocab_size,
            hidden_size=target.hidden_size,
            intermediate_size=target.intermediate_size,
            num_hidden_layers=target.n_layers,
            num_attention_heads=target.n_heads,
            num_key_value_heads=target.n_kv_heads,
            max_position_embeddings=max(64, target.seq_len),
            initializer_range=target.initializer_range,
            tie_word_embeddings=False,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(target.model_seed)
            model = tf.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
        return model.to(dtype)
    try:
        return tf.AutoModelForCausalLM.from_pretrained(target.model, dtype=dtype, local_files_only=True)
    except Exception as err:  # noqa: BLE001 - any loading failure is a user error here
        raise ExciseError(
            f"cannot load the causal LM '{target.model}' offline ({type(err).__name__}: {err}); "
            "pass a local model folder or use target.model=tiny-llama"
        ) from None


def build_target(cfg: SPDConfig, device: torch.device) -> Target:
    """The trained (cached) toy model or the LM of ``cfg.target``, with its data sampler."""
    t = cfg.target
    if isinstance(t, TMSRecipe):
        model = load_toy(t).to(device)
        return Target(model, lambda b, g: tms_batch(t, b, g), "tms", recipe=t)
    if isinstance(t, ResidMLPRecipe):
        resid = load_toy(t).to(device)
        return Target(resid, lambda b, g: resid_mlp_batch(t, b, g), "resid_mlp", recipe=t)
    lm = build_lm(t).to(device)
    vocab = int(getattr(getattr(lm, "config", None), "vocab_size", t.vocab_size))
    seq = t.seq_len

    def lm_batch(b: int, g: torch.Generator) -> torch.Tensor:
        return torch.randint(0, vocab, (b, seq), generator=g)

    return Target(lm, lm_batch, "lm", forward_kwargs={"use_cache": False}, recipe=t)


def build_spd(cfg: SPDConfig, target: Target) -> SPDModel:
    """Wrap the target for SPD as the config's decomposition section says (pinv init sees a data batch)."""
    d = cfg.decomposition
    init_inputs = None
    if d.init == "pinv":
        gen = torch.Generator().manual_seed(20_000 + cfg.seed)
        device = next(target.model.parameters()).device
        x = target.batch_fn(d.init_samples if target.kind != "lm" else max(1, d.init_samples // 64), gen)
        init_inputs = x.to(device) if isinstance(x, torch.Tensor) else x
    return decompose(
        target.model,
        [(m.pattern, m.C) for m in d.modules],
        gate_type=d.gate,
        gate_hidden=d.gate_hidden,
        init=d.init,
        seed=cfg.seed,
        forward_kwargs=target.forward_kwargs,
        init_inputs=init_inputs,
    )


# ----------------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------------


def _layers(spd: SPDModel, part: str) -> list[str]:
    return [n for n in spd.layer_names if n.rsplit(".", 1)[-1] == part or n.startswith(part)]


def eval_batch(cfg: SPDConfig, target: Target, device: torch.device) -> Any:
    """A fixed evaluation batch (seeded independently of training)."""
    gen = torch.Generator().manual_seed(10_000 + cfg.seed)
    n = cfg.eval.n_samples if target.kind != "lm" else max(1, cfg.eval.n_samples // 64)
    x = target.batch_fn(n, gen)
    return x.to(device) if isinstance(x, torch.Tensor) else x


def quick_metrics(spd: SPDModel, cfg: SPDConfig, target: Target, x_eval: Any) -> dict[str, float]:
    """Cheap metrics logged during training: MMCS/ML2R (TMS) and alive counts."""
    out: dict[str, float] = {}
    model = target.model
    if isinstance(model, TMSModel):
        out.update(M.tms_metrics(spd, model.W.detach(), "linear1"))
    if isinstance(model, ResidMLP):
        ins = [n for n in spd.layer_names if n.endswith("mlp_in")]
        outs = [n for n in spd.layer_names if n.endswith("mlp_out")]
        if ins and len(ins) == len(outs):
            rec = M.resid_mlp_recovery(
                spd, model.W_E, ins, outs, cfg.eval.one_hot_value, cfg.eval.ci_threshold
            )
            out["n_recovered"] = float(rec["n_recovered"])
            out["n_one_subcomponent"] = float(rec["n_one_subcomponent"])
    ci = M.causal_importance_on(spd, x_eval)
    for n, v in M.alive_counts(ci, cfg.eval.alive_threshold).items():
        out[f"alive/{n}"] = float(v)
    return out


def tms_checks(
    tms: Mapping[str, float], alive_W: float | None, n_features: int, mmcs_target: float
) -> dict[str, bool]:
    """The TMS targets: MMCS(W) >= mmcs_target, ML2R(W) in [0.9, 1.1], exactly n_features alive in W."""
    return {
        "mmcs": tms["mmcs"] >= mmcs_target,
        "ml2r": 0.9 <= tms["ml2r"] <= 1.1,
        "alive_W": alive_W == n_features,
    }


def evaluate(
    spd: SPDModel, cfg: SPDConfig, target: Target, x_eval: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """All metrics of a finished run (JSON-able) and the arrays the plots need."""
    e = cfg.eval
    metrics: dict[str, Any] = {}
    arrays: dict[str, Any] = {}
    ci_data = M.causal_importance_on(spd, x_eval)
    alive = M.alive_counts(ci_data, e.alive_threshold)
    metrics["alive"] = alive
    metrics["C"] = spd.C
    gen = torch.Generator(device=next(spd.parameters()).device).manual_seed(7)
    metrics["reconstruction"] = M.reconstruction(spd, x_eval, cfg.loss.output, gen, cfg.loss.delta_component)
    with torch.no_grad():
        from excise.spd.losses import faithfulness_loss

        metrics["faithfulness"] = float(faithfulness_loss(spd))
    checks: dict[str, bool] = {}
    model = target.model
    if isinstance(model, TMSModel):
        W = model.W.detach()
        metrics["tms"] = M.tms_metrics(spd, W, "linear1")
        comp2 = spd.component("linear2") if "linear2" in spd.layer_names else None
        if comp2 is not None:
            m2 = M.mmcs_ml2r(comp2.W.T, comp2.V.T, comp2.U.T)
            metrics["tms_linear2"] = {"mmcs": m2["mmcs"], "ml2r": m2["ml2r"], "min_cos": m2["min_cos"]}
        n_feat = model.n_features
        x_hot = M.one_hot_inputs(n_feat, e.one_hot_value, W.device)
        ci_hot = M.causal_importance_on(spd, x_hot)
        with torch.no_grad():  # output k of Wᵀ needs its row on input j iff the target's output k > 0
            out_pattern = (model(x_hot) > 0).float().cpu()
        errors: dict[str, int] = {}
        orders: dict[str, list[int]] = {}
        for n, g in ci_hot.items():
            if n.startswith("hidden_layers"):
                r = M.dense_ci_errors(g, model.n_hidden, e.ci_threshold)
            elif n == "linear2":
                r = M.pattern_ci_errors(g, out_pattern, e.ci_threshold)
            else:
                r = M.identity_ci_errors(g, e.ci_threshold)
            errors[n], orders[n] = r["errors"], r["order"]
        metrics["ci_errors"] = errors
        arrays["ci_one_hot"] = {n: g[:, orders[n]] for n, g in ci_hot.items()}
        checks.update(tms_checks(metrics["tms"], alive.get("linear1"), n_feat, e.mmcs_target))
        for n in spd.layer_names:
            if n.startswith("hidden_layers"):
                checks[f"alive_{n}"] = alive[n] == model.n_hidden
    elif isinstance(model, ResidMLP):
        n_feat = model.n_features
        ci_hot = M.causal_importance_on(spd, M.one_hot_inputs(n_feat, e.one_hot_value, model.W_E.device))
        in_names = [n for n in spd.layer_names if n.endswith("mlp_in")]
        out_names = [n for n in spd.layer_names if n.endswith("mlp_out")]
        errors, orders = {}, {}
        for n, g in ci_hot.items():
            if n.endswith("mlp_out"):
                k = spd.component(n).d_in
                r = M.dense_ci_errors(g, k, e.ci_threshold)
            else:
                r = M.identity_ci_errors(g, e.ci_threshold)
            errors[n], orders[n] = r["errors"], r["order"]
        metrics["ci_errors"] = errors
        arrays["ci_one_hot"] = {n: g[:, orders[n]] for n, g in ci_hot.items()}
        if in_names and len(in_names) == len(out_names):
            rec = M.resid_mlp_recovery(spd, model.W_E, in_names, out_names, e.one_hot_value, e.ci_threshold)
            arrays["contributions"] = (rec.pop("target_contributions"), rec.pop("subcomponent_contributions"))
            metrics["resid_mlp"] = rec
            checks["features_recovered_95pct"] = rec["n_recovered"] >= math.ceil(0.95 * n_feat)
    metrics["checks"] = checks
    metrics["passed"] = bool(checks) and all(checks.values())
    return metrics, arrays


# ----------------------------------------------------------------------------------------------------
# Runs
# ----------------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """A finished SPD run: its config, metrics, folder, the trained model and the training record."""

    config: SPDConfig
    metrics: dict[str, Any]
    out_dir: Path | None
    spd: SPDModel
    train: TrainResult


def run_id(cfg: SPDConfig) -> str:
    """Deterministic run id: experiment name plus a hash of the resolved config."""
    from excise.utils import check_plain_name

    return f"{check_plain_name(cfg.name, 'SPD experiment name')}-{stable_hash(cfg.to_dict(), 10)}"


def save_checkpoint(spd: SPDModel, path: Path) -> None:
    """Write U, V and gate parameters as safetensors, atomically."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in spd.decomposition_state_dict().items()}
    atomic_write_bytes(path, save(state))


def run_experiment(
    experiment: str | Path | SPDConfig,
    overrides: list[str] | None = None,
    out_dir: str | Path | None = None,
    save: bool = True,
    show_progress: bool = True,
    bookkeeping: bool = True,
) -> RunResult:
    """Train and evaluate one SPD experiment; with ``save`` write config, checkpoints, metrics and plots.

    ``bookkeeping=False``: the experiment engine owns ``config.yaml``, ``status.json`` and
    ``metrics.json`` of the run; only checkpoints, history and plots are written to ``out_dir``.
    """
    if isinstance(experiment, SPDConfig):
        cfg = experiment
        if overrides:
            cfg = validate(SPDConfig, apply_overrides(cfg.to_dict(), overrides), what="SPD config")
    else:
        cfg = load_config(experiment, overrides)
    torch.set_num_threads(cfg.train.num_threads or auto_threads())  # excise.threads: the one policy
    device = resolve_device(cfg.train.device)
    folder: Path | None = None
    if save:
        folder = Path(out_dir) if out_dir is not None else Path("runs") / "spd" / run_id(cfg)
        folder.mkdir(parents=True, exist_ok=True)
        if bookkeeping:
            atomic_write_text(folder / "config.yaml", cfg.to_yaml())
            atomic_write_json(folder / "status.json", {"state": "running", "started": time.time()})
    t_start = time.perf_counter()
    try:
        target = build_target(cfg, device)
        target_seconds = time.perf_counter() - t_start
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            spd = build_spd(cfg, target).to(device)
        x_eval = eval_batch(cfg, target, device)

        def eval_fn(step: int) -> dict[str, float]:
            row = quick_metrics(spd, cfg, target, x_eval)
            if folder is not None:  # a line per evaluation, readable while the run goes on
                with open(folder / "progress.jsonl", "a") as f:
                    f.write(json.dumps({"step": step, **row}) + "\n")
            return row

        def ckpt_fn(step: int) -> None:
            if folder is not None:
                save_checkpoint(spd, folder / "checkpoints" / f"step_{step:07d}.safetensors")

        train = train_spd(
            spd,
            target.batch_fn,
            cfg.loss,
            cfg.train,
            seed=cfg.seed,
            eval_fn=eval_fn,
            checkpoint_fn=ckpt_fn,
            show_progress=show_progress,
        )
        metrics, arrays = evaluate(spd, cfg, target, x_eval)
        metrics["timing"] = {
            "train_seconds": train.seconds,
            "train_cpu_seconds": train.cpu_seconds,
            "target_seconds": target_seconds,
            "steps": train.steps_done,
            "steps_per_second": train.steps_done / train.seconds if train.seconds > 0 else float("nan"),
            "total_seconds": time.perf_counter() - t_start,
            "device": str(device),
            "threads": torch.get_num_threads(),
        }
        metrics["final_losses"] = train.history[-1] if train.history else {}
        metrics["run_id"] = run_id(cfg)
        if folder is not None:
            save_checkpoint(spd, folder / "model.safetensors")
            if bookkeeping:
                atomic_write_json(folder / "metrics.json", metrics)
            atomic_write_text(
                folder / "history.json", json.dumps({"train": train.history, "eval": train.evals}, indent=1)
            )
            if cfg.eval.plots:
                import excise.spd.plots as plots

                plots.save_all(folder, spd, target, train, arrays)
            if bookkeeping:
                atomic_write_json(folder / "status.json", {"state": "done", "finished": time.time()})
    except BaseException as err:
        if folder is not None and bookkeeping:
            atomic_write_json(
                folder / "status.json", {"state": "failed", "error": f"{type(err).__name__}: {err}"}
            )
        raise
    return RunResult(cfg, metrics, folder, spd, train)


def load_run(run_dir: str | Path) -> tuple[SPDConfig, SPDModel]:
    """Rebuild a saved run: its config and the SPD model with the final U, V and gates loaded."""
    from safetensors.torch import load_file

    folder = Path(run_dir)
    cfg_path, ckpt = folder / "config.yaml", folder / "model.safetensors"
    if not cfg_path.is_file() or not ckpt.is_file():
        raise ExciseError(f"{folder} is not a finished SPD run (needs config.yaml and model.safetensors)")
    cfg = validate(SPDConfig, read_yaml(cfg_path), what=f"SPD config {cfg_path}")
    device = resolve_device(cfg.train.device)
    target = build_target(cfg, device)
    spd = build_spd(cfg, target).to(device)
    missing, unexpected = spd.load_state_dict(load_file(str(ckpt)), strict=False)
    missing = [k for k in missing if not k.startswith("target.")]
    if missing or unexpected:
        raise ExciseError(
            f"checkpoint {ckpt} does not match its config (missing {missing}, unexpected {unexpected})"
        )
    return cfg, spd
