"""``EvalConfig``: the one description of how a model's safety and utility are measured.

Every caller uses it: ``evaluate_safety``, ``excise evaluate``, the safety study and its
experiment type (``eval:`` in the YAML), the freeze-attack study and the demo. Frozen pydantic,
unknown keys rejected, like every config of the project.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from excise.config import BaseConfig


class EvalConfig(BaseConfig):
    """What to measure: data sets, decoding, the optional ASR variants, the KL and zero-shot tasks."""

    harmful: str = Field(default="harmful-eval", description="harmful prompt set (name or file)")
    benign: str = Field(default="benign-eval", description="benign prompt set with checkable answers")
    text: str = Field(default="text", description="plain text for perplexity / cross-entropy")
    limit: int | None = Field(default=None, ge=1, description="prompts per eval set (None = all)")
    max_new_tokens: int = Field(default=64, ge=1)
    batch_size: int = Field(default=64, ge=1)
    system_prompt: str | None = Field(default=None, description="when set, also ASR with this system prompt")
    samples: int = Field(default=0, ge=0, description="> 0: also sampled ASR, any-of-n with n = samples")
    temperature: float = Field(default=1.0, gt=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    suffixes: str | None = Field(default=None, description="a file of adversarial suffixes, one per line")
    seed: int = 0
    kl_prompts: int = Field(
        default=32, ge=0, description="harmless prompts (the first of `benign`) for the KL; 0: off"
    )
    kl_tokens: int = Field(default=32, ge=1, description="tokens of the original's answer scored for the KL")
    lmeval_tasks: tuple[str, ...] = Field(
        default=(), description="zero-shot multiple-choice tasks (shipped names or local files); () = none"
    )
    lmeval_evaluator: Literal["excise", "lm-eval"] = "excise"
    lmeval_limit: int | None = Field(default=None, ge=1, description="documents per zero-shot task")
