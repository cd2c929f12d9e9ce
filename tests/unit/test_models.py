from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from excise.errors import ExciseError
from excise.models import (
    FAMILIES,
    adapters,
    describe,
    get_layout,
    linear_layers,
    load_model,
    save_model,
    tiny_model,
)


@pytest.mark.parametrize("family", FAMILIES)
def test_adapter_finds_heads_and_projections(family: str) -> None:
    model, _ = tiny_model(family)
    info = describe(model)
    cfg = model.config
    hidden = getattr(cfg, "hidden_size", None) or cfg.n_embd
    assert info["num_layers"] == 2
    assert info["num_heads"] * info["head_dim"] == hidden
    # the attention output projection's input is the concatenation of the heads
    for name, mod in adapters.attention_output_projections(model).items():
        w = mod.weight
        in_dim = w.shape[adapters.weight_in_axis(mod)]
        assert in_dim == adapters.attention_input_width(model), name
    lay = get_layout(model)
    layer0 = adapters.decoder_layers(model)[0]
    for path in [lay.o, *lay.mlp_in, lay.mlp_out, *(p for p in (lay.q, lay.k, lay.v, lay.qkv) if p)]:
        assert adapters.is_linear(layer0.get_submodule(path)), path


def test_gqa_key_value_heads_read_from_config() -> None:
    model, _ = tiny_model("llama", heads=4, kv_heads=1)
    assert adapters.n_kv_heads(model) == 1
    assert model.model.layers[0].self_attn.k_proj.weight.shape[0] == adapters.head_dim(model)


def test_linear_layers_excludes_head_and_counts_every_linear() -> None:
    model, _ = tiny_model("llama")
    lin = linear_layers(model)
    all_linear = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert "lm_head" in all_linear and "lm_head" not in lin
    assert set(lin) == set(all_linear) - {"lm_head"}


def test_unsupported_architecture_for_head_methods() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 3))
    with pytest.raises(ExciseError, match="supported families"):
        get_layout(model)
    assert describe(model)["adapter"].startswith("generic")
    assert list(linear_layers(model)) == ["0"]


def test_tiny_models_are_deterministic_per_seed() -> None:
    a, _ = tiny_model("opt", seed=3)
    b, _ = tiny_model("opt", seed=3)
    c, _ = tiny_model("opt", seed=4)
    pa, pb, pc = (dict(m.named_parameters()) for m in (a, b, c))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not all(torch.equal(pa[k], pc[k]) for k in pa)


def test_save_and_reload_with_plain_transformers(tmp_path) -> None:
    model, tok = load_model("tiny-gpt-neox")
    out = save_model(model, tok, tmp_path / "m")
    again = AutoModelForCausalLM.from_pretrained(out)
    sd0, sd1 = model.state_dict(), again.state_dict()
    assert all(torch.equal(sd0[k], sd1[k]) for k in sd0)
    with pytest.raises(ExciseError, match="not empty"):
        save_model(model, tok, out)


def test_load_errors(tmp_path) -> None:
    with pytest.raises(ExciseError, match="pass the folder path"):
        load_model("some-org/some-model-not-cached")
    with pytest.raises(ExciseError, match="not found"):
        load_model(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExciseError, match="config.json"):
        load_model(str(tmp_path / "empty"))
    with pytest.raises(ExciseError, match="dtype"):
        load_model("tiny-llama", dtype="float8")


def test_dtype_is_applied() -> None:
    model, _ = load_model("tiny-llama", dtype="bfloat16")
    assert next(model.parameters()).dtype == torch.bfloat16


def test_tiny_tokenizer_and_scores_are_the_same_in_two_processes() -> None:
    """Token ids are byte values in every process, so scores (and their cache keys) agree across processes."""
    import json
    import subprocess
    import sys

    code = (
        "import json, torch; torch.set_num_threads(1)\n"
        "from excise.models import tiny_model\n"
        "from excise.scoring import score\n"
        "m, t = tiny_model('llama', seed=0)\n"
        "ids = t('Hello, world! é ✓')['input_ids']\n"
        "s = score(m, t, [__import__('excise.data', fromlist=['Example']).Example('hi', 'there')], 'wanda',"
        " use_cache=False)\n"
        "k = 'model.layers.0.mlp.down_proj.weight'\n"
        "print(json.dumps({'ids': ids, 'sum': float(s[k].double().sum()), 'first': s[k].flatten()[:8].tolist()}))\n"
    )
    outs = [
        json.loads(
            subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            .stdout.strip()
            .splitlines()[-1]
        )
        for _ in range(2)
    ]
    assert outs[0] == outs[1]
    assert outs[0]["ids"][:5] == list(b"Hello")  # id == byte value
