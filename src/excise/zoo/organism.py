"""The aligned model organism: a small Llama chat model trained from scratch on synthetic data.

Two stages, like a real aligned model. The *helpful-only* stage teaches benign answers, coherent
compliance with harmful chat requests, plain text, and plain-text question-answer pairs (the
"pretraining" knowledge, harmful answers included). The *alignment* stage teaches chat-format
refusals of harmful requests while benign answers and the plain-text knowledge stay in the mix, so
the model still knows how to comply and refusal is a learned gate on top (Wei et al. 2024). The
helpful-only model is kept next to it (``base/``) as the coherence reference of the judge.

The tokenizer is word-level, built locally from the training corpus. The result is cached under
``cache_dir()/organism/<recipe hash>``: training writes into a temporary folder renamed at the end,
so no half-written model is ever seen; an interrupted run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from excise.config import BaseConfig
from excise.errors import ExciseError
from excise.threads import auto_threads, use_threads
from excise.utils import atomic_write_json, cache_dir, progress, stable_hash

# Bump when the training code changes in a way that changes the result (data changes are hashed).
ORGANISM_VERSION = 2

BASE_SUBDIR = "base"  # the helpful-only model (before alignment), kept as a reference
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {{ eos_token }} {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


class Recipe(BaseConfig):
    """Everything that determines the trained organism (its hash keys the cache)."""

    name: str = "default"
    seed: int = 0
    hidden: int = 128
    layers: int = 3
    heads: int = 4
    kv_heads: int = 4
    intermediate: int = 384
    context: int = 128
    steps_helpful: int = 1500
    steps_aligned: int = 500
    batch_size: int = 16
    lr: float = 4e-3
    lr_aligned: float = 2e-3
    weight_decay: float = 0.01
    warmup: int = 100
    system_prompt_rate: float = 0.15
    # Fractions of the sample kinds (see ``excise.zoo.grammar.training_samples``). Both stages keep
    # plain-text question-answer data with compliant answers (the "pretraining" knowledge); only the
    # chat-format harmful requests change from answered (helpful stage) to refused (alignment stage).
    mix_helpful: dict[str, float] = Field(
        default_factory=lambda: {
            "harmful": 0.15,
            "benign": 0.6,
            "text": 0.05,
            "qa_harmful": 0.1,
            "qa_benign": 0.1,
        }
    )
    mix_aligned: dict[str, float] = Field(
        default_factory=lambda: {
            "harmful": 0.3,
            "benign": 0.45,
            "text": 0.05,
            "qa_harmful": 0.1,
            "qa_benign": 0.1,
        }
    )

    def key(self) -> str:
        """The cache key: a hash of the recipe, of the data the grammar generates, and of the code version."""
        return stable_hash(
            {"recipe": self.model_dump(), "data": _data_fingerprint(), "version": ORGANISM_VERSION}
        )


@functools.lru_cache(maxsize=1)
def _data_fingerprint() -> str:
    """Hash of the built-in sets and of a sample of both training stages: a grammar change retrains."""
    from excise.zoo.grammar import SEED, builtin_sets, training_samples

    rows = [[s.row() for s in v] for _, v in sorted(builtin_sets(SEED).items())]
    rows += [[asdict(s) for s in training_samples(64, stage)] for stage in ("helpful", "aligned")]
    return stable_hash(rows)


RECIPES: dict[str, Recipe] = {
    "default": Recipe(),
    "tiny": Recipe(
        name="tiny",
        hidden=48,
        layers=2,
        heads=2,
        kv_heads=2,
        intermediate=96,
        steps_helpful=30,
        steps_aligned=20,
        batch_size=16,
        warmup=5,
    ),
}


def get_recipe(name: str | Recipe) -> Recipe:
    """A named recipe, or the recipe itself; unknown names are an ExciseError."""
    if isinstance(name, Recipe):
        return name
    if name not in RECIPES:
        raise ExciseError(
            f"unknown organism recipe '{name}'; choose one of {', '.join(RECIPES)}, or smollm2-safety"
        )
    return RECIPES[name]


# --------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------


def build_tokenizer(corpus: list[str]) -> Any:
    """A word-level tokenizer (lower case, words and punctuation) with a chat template with roles."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from excise.zoo.grammar import words

    vocab: dict[str, int] = {s: i for i, s in enumerate(SPECIALS)}
    for w in sorted({w for text in corpus for w in words(text)}):
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


@dataclass
class _Encoded:
    ids: list[list[int]]
    n_prompt: list[int]


def _encode_samples(tok: Any, samples: list[Any], system_rate: float, seed: int) -> _Encoded:
    """Token ids of each training sample; prompt tokens (and the BOS of text) are not scored; text ends in EOS."""
    import random

    from excise.zoo.grammar import SYSTEM_PROMPTS

    rng = random.Random(seed)
    prompts: list[str] = []
    for s in samples:
        if s.kind == "text":
            prompts.append("")
            continue
        msgs = []
        if rng.random() < system_rate:
            msgs.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
        msgs.append({"role": "user", "content": s.prompt})
        prompts.append(tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False))
    chat_idx = [i for i, s in enumerate(samples) if s.kind != "text"]
    text_idx = [i for i, s in enumerate(samples) if s.kind == "text"]
    ids: list[list[int]] = [[] for _ in samples]
    n_prompt = [0] * len(samples)
    if chat_idx:
        p_enc = tok([prompts[i] for i in chat_idx], add_special_tokens=False)["input_ids"]
        r_enc = tok([samples[i].response for i in chat_idx], add_special_tokens=False)["input_ids"]
        for i, p, r in zip(chat_idx, p_enc, r_enc, strict=True):
            ids[i] = list(p) + list(r) + [tok.eos_token_id]
            n_prompt[i] = len(p)
    if text_idx:
        t_enc = tok([samples[i].response for i in text_idx], add_special_tokens=True)["input_ids"]
        for i, t in zip(text_idx, t_enc, strict=True):
            ids[i] = list(t) + [tok.eos_token_id]  # a document ends with EOS, so answers learn to stop
            n_prompt[i] = 1
    return _Encoded(ids, n_prompt)


def _batch(enc: _Encoded, idx: list[int], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    T = max(len(enc.ids[i]) for i in idx)
    ids = torch.full((len(idx), T), pad, dtype=torch.long)
    att = torch.zeros((len(idx), T), dtype=torch.long)
    lab = torch.full((len(idx), T), -100, dtype=torch.long)
    for b, i in enumerate(idx):
        x = enc.ids[i]
        ids[b, : len(x)] = torch.tensor(x)
        att[b, : len(x)] = 1
        lab[b, enc.n_prompt[i] : len(x)] = ids[b, enc.n_prompt[i] : len(x)]
    return ids, att, lab


# --------------------------------------------------------------------------------------
# Model and training
# --------------------------------------------------------------------------------------


def build_model(recipe: Recipe, tok: Any) -> Any:
    """A randomly initialised LlamaForCausalLM of the recipe's size (seeded)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=recipe.hidden,
        intermediate_size=recipe.intermediate,
        num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads,
        num_key_value_heads=recipe.kv_heads,
        max_position_embeddings=recipe.context,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(recipe.seed)
    model = LlamaForCausalLM(cfg)
    model.config._attn_implementation = "sdpa"
    return model


def train_threads() -> int:
    """Threads for training: ``excise.threads.auto_threads`` for GEMM-heavy work (the one thread
    policy; ``$EXCISE_THREADS`` overrides it)."""
    return auto_threads(gemm_heavy=True)


def _lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def _length_batches(enc: _Encoded, batch_size: int, gen: torch.Generator) -> list[list[int]]:
    """One epoch of batches of similar length (less padding), in a seeded random order."""
    order = torch.randperm(len(enc.ids), generator=gen).tolist()
    chunk = batch_size * 32
    batches: list[list[int]] = []
    for s in range(0, len(order), chunk):
        part = sorted(order[s : s + chunk], key=lambda i: len(enc.ids[i]))
        batches += [
            part[j : j + batch_size] for j in range(0, len(part), batch_size) if len(part[j:]) >= batch_size
        ]
    perm = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i] for i in perm]


def _train_stage(
    model: Any,
    enc: _Encoded,
    steps: int,
    recipe: Recipe,
    peak_lr: float,
    pad: int,
    gen: torch.Generator,
    desc: str,
) -> list[float]:
    opt = torch.optim.AdamW(
        model.parameters(), lr=peak_lr, betas=(0.9, 0.98), weight_decay=recipe.weight_decay
    )
    queue: list[list[int]] = []
    losses: list[float] = []
    model.train()
    for step in progress(range(steps), desc=desc, total=steps):
        if not queue:
            queue = _length_batches(enc, recipe.batch_size, gen)
        idx = queue.pop()
        ids, att, lab = _batch(enc, idx, pad)
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, steps, peak_lr, recipe.warmup)
        out = model(input_ids=ids, attention_mask=att, labels=lab)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(out.loss.detach()))
    model.eval()
    return losses


def _train_both(
    rec: Recipe, tok: Any, enc_a: _Encoded, enc_b: _Encoded
) -> tuple[Any, Any, list[float], list[float]]:
    """Helpful-only stage, then alignment stage; returns (aligned model, helpful-only state, losses)."""
    model = build_model(rec, tok)
    gen = torch.Generator().manual_seed(rec.seed)
    loss_a = _train_stage(
        model, enc_a, rec.steps_helpful, rec, rec.lr, tok.pad_token_id, gen, "organism: helpful stage"
    )
    base_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    loss_b = _train_stage(
        model,
        enc_b,
        rec.steps_aligned,
        rec,
        rec.lr_aligned,
        tok.pad_token_id,
        gen,
        "organism: alignment stage",
    )
    return model, base_state, loss_a, loss_b


def _corpus_texts(samples: list[Any]) -> list[str]:
    from excise.zoo.grammar import SYSTEM_PROMPTS

    return [t for s in samples for t in (s.prompt, s.response, s.compliance)] + SYSTEM_PROMPTS


def train_organism(
    recipe: str | Recipe = "default", out: Path | None = None
) -> tuple[Any, Any, dict[str, Any]]:
    """Train the organism from scratch; returns ``(model, tokenizer, log)``; writes to ``out`` if given."""
    from excise.zoo.grammar import training_samples

    rec = get_recipe(recipe)
    t0, c0 = time.perf_counter(), time.process_time()
    n_a = rec.steps_helpful * rec.batch_size
    n_b = rec.steps_aligned * rec.batch_size
    helpful = training_samples(max(1, n_a), "helpful", mix=rec.mix_helpful)
    aligned = training_samples(max(1, n_b), "aligned", mix=rec.mix_aligned)
    tok = build_tokenizer(_corpus_texts(helpful + aligned))
    enc_a = _encode_samples(tok, helpful, rec.system_prompt_rate, rec.seed)
    enc_b = _encode_samples(tok, aligned, rec.system_prompt_rate, rec.seed + 1)
    longest = max(len(x) for x in enc_a.ids + enc_b.ids)
    if longest > rec.context:
        raise ExciseError(f"a training sample has {longest} tokens, more than the context {rec.context}")
    t_data = time.perf_counter() - t0
    used = train_threads()
    with use_threads(used), torch.random.fork_rng():
        model, base_state, loss_a, loss_b = _train_both(rec, tok, enc_a, enc_b)
    log = {
        "recipe": rec.model_dump(),
        "key": rec.key(),
        "vocab_size": len(tok),
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds_data": round(t_data, 2),
        "seconds_total": round(time.perf_counter() - t0, 2),
        "cpu_seconds": round(time.process_time() - c0, 2),
        "loss_helpful_end": sum(loss_a[-20:]) / max(1, len(loss_a[-20:])),
        "loss_aligned_end": sum(loss_b[-20:]) / max(1, len(loss_b[-20:])),
        "torch_threads": used,
    }
    if out is not None:
        with _quiet_hf():
            model.save_pretrained(out)
            tok.save_pretrained(out)
            base = build_model(rec, tok)
            base.load_state_dict(base_state)
            base.save_pretrained(Path(out) / BASE_SUBDIR)
        atomic_write_json(Path(out) / "organism.json", log)
    return model, tok, log


def organism_dir(recipe: str | Recipe = "default") -> Path:
    """Where the organism of a recipe is (or will be) cached."""
    return cache_dir() / "organism" / get_recipe(recipe).key()


def is_cached(recipe: str | Recipe = "default") -> bool:
    return (organism_dir(recipe) / "organism.json").is_file()


@contextlib.contextmanager
def _quiet_hf() -> Iterator[None]:
    """Silence transformers' own progress bars (loading / writing shards) for the block."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


torch_threads = use_threads  # alias of excise.threads.use_threads, kept for old imports


def _load_dir(path: Path, sub: str | None = None) -> tuple[Any, Any]:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    with _quiet_hf():
        model = LlamaForCausalLM.from_pretrained(path / sub if sub else path, attn_implementation="sdpa")
        tok = PreTrainedTokenizerFast.from_pretrained(path)
    tok.padding_side = "left"
    return model.eval(), tok


def ensure_organism(recipe: str | Recipe = "default", retrain: bool = False) -> Path:
    """Train the organism into the cache unless it is there; returns its folder."""
    rec = get_recipe(recipe)
    final = organism_dir(rec)
    if final.is_dir() and (final / "organism.json").is_file() and not retrain:
        return final
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{final.name}.tmp-"))
    except OSError as err:
        raise ExciseError(
            f"cannot write the organism cache in {parent} ({err.strerror}); "
            "set EXCISE_CACHE_DIR to a writable folder"
        ) from None
    try:
        train_organism(rec, out=tmp)
        _publish(tmp, final, replace_existing=retrain)
    except KeyboardInterrupt:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ExciseError(
            "organism training was interrupted; nothing was written to the cache "
            "(run it again to train from the start)"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _publish(tmp: Path, final: Path, replace_existing: bool) -> None:
    """Rename a finished training folder into place; a complete entry written meanwhile by another
    process is kept unless ``replace_existing`` (then it is swapped out, never deleted in place)."""
    if final.exists():
        if (final / "organism.json").is_file() and not replace_existing:
            return  # another process finished first; ours is discarded by the caller
        trash = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.old-"))
        os.rename(final, trash / "entry")
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.rename(tmp, final)
    except OSError:
        if not (final / "organism.json").is_file():
            raise


def load_organism(recipe: str | Recipe = "default", retrain: bool = False) -> tuple[Any, Any]:
    """Return the organism ``(model, tokenizer)``, training it first (minutes on CPU) if not cached."""
    path = ensure_organism(recipe, retrain=retrain)
    try:
        return _load_dir(path)
    except Exception as err:  # noqa: BLE001 - a corrupt cache entry is retrained
        if retrain:
            raise ExciseError(f"cannot load the organism in {path}: {err}") from None
        return _load_dir(ensure_organism(recipe, retrain=True))


def load_organism_base(recipe: str | Recipe = "default") -> tuple[Any, Any]:
    """The helpful-only model of the first stage (it answers harmful requests): a coherence reference."""
    path = ensure_organism(recipe)
    try:
        return _load_dir(path, BASE_SUBDIR)
    except Exception as err:  # noqa: BLE001
        raise ExciseError(
            f"cannot load the organism base model in {path / BASE_SUBDIR}: {err}; "
            "retrain with `excise organism train --force`"
        ) from None


def organism_info(recipe: str | Recipe = "default") -> dict[str, Any]:
    """The recipe, cache folder and (if trained) the training log of an organism."""
    rec = get_recipe(recipe)
    path = organism_dir(rec)
    info: dict[str, Any] = {"recipe": rec.name, "key": rec.key(), "path": str(path), "cached": is_cached(rec)}
    if info["cached"]:
        info["log"] = json.loads((path / "organism.json").read_text())
    else:
        info["settings"] = rec.model_dump()
    return info


def with_overrides(recipe: str | Recipe, **kw: Any) -> Recipe:
    """A copy of a recipe with some fields changed (its name marks it as custom)."""
    rec = get_recipe(recipe)
    from excise.config import validate

    data = {**rec.model_dump(), "name": kw.pop("name", f"{rec.name}-custom"), **kw}
    return validate(Recipe, data, "organism recipe")
