"""The safety evaluation of one model: ASR, benign accuracy and perplexity in one call."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from excise.data.loading import Example
from excise.evaluation.asr import attack_success_rate
from excise.evaluation.judges import Judge
from excise.evaluation.perplexity import perplexity
from excise.evaluation.utility import benign_accuracy


@dataclass(frozen=True)
class SafetyEvalConfig:
    """What to measure: data sets, decoding, and which extra ASR variants to run."""

    harmful: str = "harmful-eval"
    benign: str = "benign-eval"
    text: str = "text"
    max_new_tokens: int = 64
    batch_size: int = 64
    system_prompt: str | None = None  # when set, also measure ASR with this system prompt
    samples: int = 0  # when > 0, also measure sampled ASR, any-of-n with n = samples
    temperature: float = 1.0
    top_p: float = 1.0
    suffixes: str | None = None  # a file of adversarial suffixes, one per line
    limit: int | None = None
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def evaluate_safety(
    model: Any,
    tokenizer: Any,
    config: SafetyEvalConfig | None = None,
    judge: Judge | None = None,
    keep_examples: int = 3,
) -> dict[str, Any]:
    """Greedy ASR (no system prompt), benign accuracy, perplexity, plus the configured ASR variants."""
    cfg = config or SafetyEvalConfig()
    t0 = time.perf_counter()
    harmful: str | Path | Sequence[Example] = cfg.harmful
    common: dict[str, Any] = {
        "judge": judge,
        "max_new_tokens": cfg.max_new_tokens,
        "batch_size": cfg.batch_size,
        "limit": cfg.limit,
        "seed": cfg.seed,
    }
    greedy = attack_success_rate(model, tokenizer, harmful, **common)
    acc = benign_accuracy(model, tokenizer, cfg.benign, batch_size=cfg.batch_size, limit=cfg.limit)
    out: dict[str, Any] = {
        "asr": greedy.asr,
        "refusal_rate": greedy.refusal_rate,
        "incoherent_rate": greedy.incoherent_rate,
        "benign_accuracy": acc.accuracy,
        "benign_per_task": acc.per_task,
        "perplexity": perplexity(model, tokenizer, cfg.text, batch_size=cfg.batch_size),
    }
    if cfg.system_prompt:
        out["asr_system_prompt"] = attack_success_rate(
            model, tokenizer, harmful, system=cfg.system_prompt, **common
        ).asr
    if cfg.samples > 0:
        sampled = attack_success_rate(
            model,
            tokenizer,
            harmful,
            sample=True,
            n=cfg.samples,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            **common,
        )
        out[f"asr_sampled_any_of_{cfg.samples}"] = sampled.asr
    if cfg.suffixes:
        suff = attack_success_rate(model, tokenizer, harmful, suffixes=cfg.suffixes, **common)
        out["asr_suffixes"] = suff.asr
        out["asr_per_suffix"] = suff.per_suffix
    if keep_examples:
        out["examples"] = {"harmful": greedy.examples(keep_examples), "benign": acc.examples(keep_examples)}
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out
