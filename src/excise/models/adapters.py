"""Architecture adapters as data: where each family keeps its layers, projections and heads.

A layout is looked up by ``config.model_type``. Weight-level methods do not need one: they
fall back to every ``nn.Linear`` (and GPT-2's ``Conv1D``) outside the embeddings and head.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from excise.errors import ExciseError


@dataclass(frozen=True)
class Layout:
    """Module paths (relative to one decoder layer) and config keys of one model family."""

    layers: str
    o: str
    q: str | None = None
    k: str | None = None
    v: str | None = None
    qkv: str | None = None
    qkv_order: str = "concat"  # "concat": [q | k | v]; "per_head": [h0(q,k,v), h1(q,k,v), ...]
    mlp_in: tuple[str, ...] = ()
    mlp_out: str = ""
    n_heads_key: str = "num_attention_heads"
    n_kv_heads_key: str | None = None
    # config key of an explicit head size (physical head removal needs it: the others derive the
    # head size from hidden_size / heads, so a config with fewer heads would change it)
    head_dim_key: str | None = None
    families: tuple[str, ...] = field(default_factory=tuple)
    # model-level modules whose outputs are added into the residual stream (token/position embeddings);
    # with ``o`` and ``mlp_out`` of every layer they are all the residual writers (refusal direction)
    embed_writers: tuple[str, ...] = ()


_LLAMA = Layout(
    layers="model.layers",
    q="self_attn.q_proj",
    k="self_attn.k_proj",
    v="self_attn.v_proj",
    o="self_attn.o_proj",
    mlp_in=("mlp.gate_proj", "mlp.up_proj"),
    mlp_out="mlp.down_proj",
    n_kv_heads_key="num_key_value_heads",
    embed_writers=("model.embed_tokens",),
    head_dim_key="head_dim",
)

LAYOUTS: dict[str, Layout] = {
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "qwen3": _LLAMA,
    "smollm3": _LLAMA,
    "gpt2": Layout(
        layers="transformer.h",
        qkv="attn.c_attn",
        qkv_order="concat",
        o="attn.c_proj",
        mlp_in=("mlp.c_fc",),
        mlp_out="mlp.c_proj",
        n_heads_key="n_head",
        embed_writers=("transformer.wte", "transformer.wpe"),
    ),
    "opt": Layout(
        layers="model.decoder.layers",
        q="self_attn.q_proj",
        k="self_attn.k_proj",
        v="self_attn.v_proj",
        o="self_attn.out_proj",
        mlp_in=("fc1",),
        mlp_out="fc2",
        embed_writers=("model.decoder.embed_tokens", "model.decoder.embed_positions"),
    ),
    "bloom": Layout(
        layers="transformer.h",
        qkv="self_attention.query_key_value",
        qkv_order="per_head",
        o="self_attention.dense",
        mlp_in=("mlp.dense_h_to_4h",),
        mlp_out="mlp.dense_4h_to_h",
        n_heads_key="n_head",
        # before word_embeddings_layernorm: its output keeps a component along r that no weight edit removes
        embed_writers=("transformer.word_embeddings",),
    ),
    "gpt_neox": Layout(
        layers="gpt_neox.layers",
        qkv="attention.query_key_value",
        qkv_order="per_head",
        o="attention.dense",
        mlp_in=("mlp.dense_h_to_4h",),
        mlp_out="mlp.dense_4h_to_h",
        embed_writers=("gpt_neox.embed_in",),
    ),
}

SUPPORTED_FAMILIES = ("llama (also mistral, qwen2, smollm)", "gpt2", "opt", "bloom", "gpt_neox")


def is_linear(module: nn.Module) -> bool:
    """True for ``nn.Linear`` and the transposed ``Conv1D`` used by GPT-2."""
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def weight_in_axis(module: nn.Module) -> int:
    """Axis of ``module.weight`` that indexes input features (1 for Linear, 0 for Conv1D)."""
    return 0 if type(module).__name__ == "Conv1D" else 1


def linear_layers(model: nn.Module, include_head: bool = False) -> dict[str, nn.Module]:
    """Every Linear (or Conv1D) module by name; the output head is left out unless asked."""
    out: dict[str, nn.Module] = {}
    get_out = getattr(model, "get_output_embeddings", None)
    out_emb = get_out() if callable(get_out) else None
    for name, mod in model.named_modules():
        if not is_linear(mod):
            continue
        if not include_head and (mod is out_emb or name.split(".")[-1] in ("lm_head", "embed_out")):
            continue
        out[name] = mod
    return out


def get_layout(model: nn.Module) -> Layout:
    """The layout of a supported family, or an ExciseError naming the supported ones."""
    mt = getattr(getattr(model, "config", None), "model_type", None)
    if mt not in LAYOUTS:
        raise ExciseError(
            f"architecture '{mt}' is not supported by head-level methods; supported families: "
            + ", ".join(SUPPORTED_FAMILIES)
            + " (weight-level methods such as wanda and snip work on any model)"
        )
    return LAYOUTS[mt]


def _cfg(model: nn.Module) -> Any:
    return model.config


def n_heads(model: nn.Module) -> int:
    return int(getattr(_cfg(model), get_layout(model).n_heads_key))


def n_kv_heads(model: nn.Module) -> int:
    lay = get_layout(model)
    if lay.n_kv_heads_key:
        val = getattr(_cfg(model), lay.n_kv_heads_key, None)
        if val:
            return int(val)
    return n_heads(model)


def head_dim(model: nn.Module) -> int:
    cfg = _cfg(model)
    hd = getattr(cfg, "head_dim", None)
    if hd:
        return int(hd)
    hidden = getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", None)
    if hidden is None:
        raise ExciseError("the model config has neither hidden_size nor n_embd; cannot infer the head size")
    return int(hidden) // n_heads(model)


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    mod = model.get_submodule(get_layout(model).layers)
    if not isinstance(mod, (nn.ModuleList, nn.Sequential)):
        raise ExciseError(
            f"{get_layout(model).layers} is a {type(mod).__name__}, not a list of decoder layers"
        )
    return list(mod)


def layer_module(model: nn.Module, layer: int, path: str) -> nn.Module:
    return decoder_layers(model)[layer].get_submodule(path)


def module_name(model: nn.Module, layer: int, path: str) -> str:
    return f"{get_layout(model).layers}.{layer}.{path}"


def attention_output_projections(model: nn.Module) -> dict[str, nn.Module]:
    """The attention output projection of each layer; its input is the concat of head outputs."""
    lay = get_layout(model)
    return {
        module_name(model, i, lay.o): layer_module(model, i, lay.o) for i in range(len(decoder_layers(model)))
    }


def _weight(module: nn.Module) -> torch.Tensor:
    w = module.weight
    assert isinstance(w, torch.Tensor)
    return w


def describe(model: nn.Module) -> dict[str, Any]:
    """What the adapter sees, as a plain dict (used by ``excise info``)."""
    cfg = getattr(model, "config", None)
    lin = linear_layers(model)
    info: dict[str, Any] = {
        "model_type": getattr(cfg, "model_type", type(model).__name__),
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "linear_layers": len(lin),
        "linear_weights": sum(_weight(m).numel() for m in lin.values()),
    }
    try:
        lay = get_layout(model)
    except ExciseError:
        info["adapter"] = "generic (every nn.Linear; head-level methods unavailable)"
        return info
    info.update(
        {
            "adapter": getattr(cfg, "model_type", ""),
            "layers_path": lay.layers,
            "num_layers": len(decoder_layers(model)),
            "num_heads": n_heads(model),
            "num_kv_heads": n_kv_heads(model),
            "head_dim": head_dim(model),
            "attention": (
                f"fused qkv '{lay.qkv}' ({lay.qkv_order})"
                if lay.qkv
                else f"q/k/v '{lay.q}', '{lay.k}', '{lay.v}'"
            ),
            "attention_out": lay.o,
            "mlp_in": list(lay.mlp_in),
            "mlp_out": lay.mlp_out,
        }
    )
    return info


def head_slices(model: nn.Module) -> list[slice]:
    """Column slices of the attention-output input, one per head."""
    hd = head_dim(model)
    return [slice(h * hd, (h + 1) * hd) for h in range(n_heads(model))]


def attention_input_width(model: nn.Module) -> int:
    return n_heads(model) * head_dim(model)


def as_float(t: torch.Tensor) -> torch.Tensor:
    return t.detach().float()


def residual_writers(model: nn.Module) -> dict[str, nn.Module]:
    """Every module whose output is added into the residual stream: embeddings, attention and MLP outputs.

    An ExciseError for a family without writer adapters, or a layout where a weight edit cannot make
    the stream orthogonal to a direction (OPT with post-layer norm or an input projection).
    """
    mt = getattr(getattr(model, "config", None), "model_type", None)
    lay = LAYOUTS.get(mt)  # type: ignore[arg-type]
    if lay is None or not lay.embed_writers:
        raise ExciseError(
            f"architecture '{mt}' has no residual-writer adapter (refusal direction); supported families: "
            + ", ".join(SUPPORTED_FAMILIES)
        )
    cfg: Any = getattr(model, "config", None)
    if mt == "opt" and (
        not getattr(cfg, "do_layer_norm_before", True)
        or getattr(cfg, "word_embed_proj_dim", cfg.hidden_size) != cfg.hidden_size
    ):
        raise ExciseError(
            "this OPT model normalises after each block or projects its embeddings (OPT-350m style); "
            "its residual stream has no fixed set of writers to orthogonalise"
        )
    out = {p: model.get_submodule(p) for p in lay.embed_writers}
    for i in range(len(decoder_layers(model))):
        for path in (lay.o, lay.mlp_out):
            out[module_name(model, i, path)] = layer_module(model, i, path)
    return out
