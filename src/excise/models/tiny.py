"""Tiny random models of every supported family, built from configs with a local tokenizer."""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from excise.errors import ExciseError

FAMILIES = ("llama", "gpt2", "opt", "bloom", "gpt_neox")

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def byte_to_char() -> dict[int, str]:
    """The byte-level pre-tokenizer's printable stand-in for every byte value, in byte order.

    Printable Latin-1 bytes stand for themselves; the other bytes, in increasing order, take the
    code points from 256 upwards (the mapping ``ByteLevel`` uses). Built from byte values, so the
    vocabulary order is the same in every process.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    out: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in out:
            out[b] = chr(256 + extra)
            extra += 1
    return dict(sorted(out.items()))


def byte_tokenizer(chat_template: str | None = CHAT_TEMPLATE) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer (256 byte tokens in byte order + <pad>, <s>, </s>) built locally, no download.

    Token id ``b`` is byte ``b`` in every process (the vocabulary is not read from a set's order).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    chars = byte_to_char()
    if set(chars.values()) != set(pre_tokenizers.ByteLevel.alphabet()):
        raise ExciseError("this tokenizers version maps bytes differently; the tiny tokenizer needs updating")
    vocab = {ch: b for b, ch in chars.items()}
    for s in ("<pad>", "<s>", "</s>"):
        vocab[s] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token=None
    )
    if chat_template:
        fast.chat_template = chat_template
    return fast


def tiny_config(family: str, vocab_size: int, special: dict[str, int] | None = None, **overrides: Any) -> Any:
    """A small config of the family: 2 layers, hidden 64, 4 heads (2 key/value heads for llama), context 512.

    The context holds every built-in data set's longest example in byte tokens (306).
    """
    import transformers as tf

    n_layers = overrides.pop("num_layers", 2)
    hidden = overrides.pop("hidden", 64)
    heads = overrides.pop("heads", 4)
    ctx = overrides.pop("context", 512)
    sp: dict[str, Any] = dict(special or {})
    cfg: tf.PretrainedConfig
    if family == "llama":
        cfg = tf.LlamaConfig(
            **sp,
            vocab_size=vocab_size,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=n_layers,
            num_attention_heads=heads,
            num_key_value_heads=overrides.pop("kv_heads", max(1, heads // 2)),
            max_position_embeddings=ctx,
            tie_word_embeddings=False,
        )
    elif family == "gpt2":
        cfg = tf.GPT2Config(
            **sp, vocab_size=vocab_size, n_embd=hidden, n_layer=n_layers, n_head=heads, n_positions=ctx
        )
    elif family == "opt":
        cfg = tf.OPTConfig(
            **sp,
            vocab_size=vocab_size,
            hidden_size=hidden,
            ffn_dim=2 * hidden,
            num_hidden_layers=n_layers,
            num_attention_heads=heads,
            max_position_embeddings=ctx,
            word_embed_proj_dim=hidden,
        )
    elif family == "bloom":
        cfg = tf.BloomConfig(**sp, vocab_size=vocab_size, hidden_size=hidden, n_layer=n_layers, n_head=heads)
    elif family == "gpt_neox":
        cfg = tf.GPTNeoXConfig(
            **sp,
            vocab_size=vocab_size,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=n_layers,
            num_attention_heads=heads,
            max_position_embeddings=ctx,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0},
        )
    else:
        raise ExciseError(f"unknown tiny model family '{family}'; choose one of {', '.join(FAMILIES)}")
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def tiny_model(
    family: str = "llama", seed: int = 0, **overrides: Any
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A randomly initialised tiny causal LM of ``family`` with a byte tokenizer; deterministic for ``seed``."""
    from transformers import AutoModelForCausalLM

    tok = byte_tokenizer()
    special = {
        "pad_token_id": tok.pad_token_id,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
    }
    cfg = tiny_config(family, vocab_size=len(tok), special=special, **overrides)
    gen = torch.random.fork_rng()
    with gen:
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    model.eval()
    return model, tok


def tiny_model_llama() -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    return tiny_model("llama")


def tiny_model_gpt2() -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    return tiny_model("gpt2")


def tiny_model_opt() -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    return tiny_model("opt")


def tiny_model_bloom() -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    return tiny_model("bloom")


def tiny_model_gpt_neox() -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    return tiny_model("gpt_neox")
