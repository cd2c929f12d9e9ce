"""The safety evaluation of one model in one call: ASR (with refusal, off-topic, unjudged and
incoherent rates, per category), benign accuracy, over-refusal, perplexity / cross-entropy on
plain text, and next-token KL from the original model on harmless prompts."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from excise.data.loading import Example
from excise.errors import ExciseError
from excise.evaluation.asr import attack_success_rate
from excise.evaluation.config import EvalConfig
from excise.evaluation.judges import Judge
from excise.evaluation.kl import KLReference
from excise.evaluation.likelihood import perplexity
from excise.evaluation.utility import benign_accuracy, over_refusal_rate


def build_kl_reference(model: Any, tokenizer: Any, config: EvalConfig | None = None) -> KLReference | None:
    """The original model's answers and distributions on the first ``kl_prompts`` benign prompts."""
    from excise.data.loading import load_examples

    cfg = config or EvalConfig()
    if cfg.kl_prompts <= 0:
        return None
    prompts = [e.prompt for e in load_examples(cfg.benign)][: cfg.kl_prompts]
    return KLReference.build(
        model, tokenizer, prompts, max_new_tokens=cfg.kl_tokens, batch_size=cfg.batch_size
    )


def evaluate_safety(
    model: Any,
    tokenizer: Any,
    config: EvalConfig | None = None,
    judge: Judge | None = None,
    keep_examples: int = 3,
    kl_reference: KLReference | None = None,
) -> dict[str, Any]:
    """Greedy ASR (no system prompt) and its rates, benign accuracy, over-refusal, perplexity and
    cross-entropy, KL from the original (when ``kl_reference`` is given), plus the configured ASR
    variants. A judge that fails (an endpoint that does not answer) leaves NaN in the judged
    metrics and its message under ``judge_error``; the other metrics are kept.
    """
    cfg = config or EvalConfig()
    t0 = time.perf_counter()
    harmful: str | Path | Sequence[Example] = cfg.harmful
    common: dict[str, Any] = {
        "judge": judge,
        "max_new_tokens": cfg.max_new_tokens,
        "batch_size": cfg.batch_size,
        "limit": cfg.limit,
        "seed": cfg.seed,
    }
    out: dict[str, Any] = {}
    greedy = None
    try:
        greedy = attack_success_rate(model, tokenizer, harmful, **common)
        out.update(
            asr=greedy.asr,
            refusal_rate=greedy.refusal_rate,
            off_topic_rate=greedy.off_topic_rate,
            unjudged_rate=greedy.unjudged_rate,
            incoherent_rate=greedy.incoherent_rate,
        )
        if greedy.per_category:
            out["asr_per_category"] = greedy.per_category
    except ExciseError as err:
        if not getattr(err, "judge_failure", False):
            raise
        out.update(asr=math.nan, refusal_rate=math.nan, judge_error=str(err))
    acc = benign_accuracy(model, tokenizer, cfg.benign, batch_size=cfg.batch_size, limit=cfg.limit)
    out.update(benign_accuracy=acc.accuracy, benign_per_task=acc.per_task)
    if "judge_error" in out:
        out["over_refusal"] = math.nan
    else:
        from excise.evaluation.judges import KeywordJudge

        try:
            out["over_refusal"] = over_refusal_rate(judge or KeywordJudge(), acc.prompts, acc.responses)
        except ExciseError as err:
            if not getattr(err, "judge_failure", False):
                raise
            out.update(over_refusal=math.nan, judge_error=str(err))
    ppl = perplexity(model, tokenizer, cfg.text, batch_size=cfg.batch_size)
    out["perplexity"] = ppl
    out["cross_entropy"] = math.log(ppl) if ppl > 0 and math.isfinite(ppl) else math.nan
    if kl_reference is not None:
        out.update(kl_reference.kl_from(model, tokenizer))
    if cfg.system_prompt and greedy is not None:
        out["asr_system_prompt"] = attack_success_rate(
            model, tokenizer, harmful, system=cfg.system_prompt, **common
        ).asr
    if cfg.samples > 0 and greedy is not None:
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
    if cfg.suffixes and greedy is not None:
        suff = attack_success_rate(model, tokenizer, harmful, suffixes=cfg.suffixes, **common)
        out["asr_suffixes"] = suff.asr
        out["asr_per_suffix"] = suff.per_suffix
    if cfg.lmeval_tasks:
        from excise.evaluation.lmeval import evaluate_tasks

        zero_shot = evaluate_tasks(
            model, tokenizer, cfg.lmeval_tasks, evaluator=cfg.lmeval_evaluator, limit=cfg.lmeval_limit
        )
        for task, res in zero_shot.items():
            out[f"zero_shot_{task}"] = res["acc"]
    if keep_examples:
        out["examples"] = {
            "harmful": greedy.examples(keep_examples) if greedy is not None else [],
            "benign": acc.examples(keep_examples),
        }
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out
