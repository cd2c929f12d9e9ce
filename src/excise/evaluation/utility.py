"""Utility: accuracy on benign requests with checkable answers (field ``expected``)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from excise.data.loading import Example, load_examples
from excise.errors import ExciseError
from excise.evaluation.generation import generate
from excise.evaluation.judges import is_refusal, normalise


def is_correct(response: str, expected: str) -> bool:
    """True if ``expected`` occurs in the response as whole words (case-insensitive) and it is no refusal."""
    if not expected.strip() or is_refusal(response):
        return False
    words = " ".join(re.findall(r"[a-z0-9]+", normalise(expected)))
    text = " ".join(re.findall(r"[a-z0-9]+", normalise(response)))
    return re.search(r"(?<![a-z0-9])" + re.escape(words) + r"(?![a-z0-9])", text) is not None


@dataclass
class AccuracyResult:
    """Accuracy overall and per task / category, with the completions."""

    accuracy: float
    correct: list[bool]
    prompts: list[str]
    expected: list[str]
    responses: list[str]
    per_task: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Accuracy, count and per-task accuracy as a plain dict."""
        return {"accuracy": self.accuracy, "n": len(self.correct), "per_task": self.per_task}

    def examples(self, k: int = 5) -> list[dict[str, Any]]:
        """The first ``k`` prompts with expected answer, response and verdict (for reports)."""
        return [
            {"prompt": p, "expected": e, "response": r, "correct": c}
            for p, e, r, c in zip(
                self.prompts[:k], self.expected[:k], self.responses[:k], self.correct[:k], strict=True
            )
        ]


def _checkable(data: str | Path | Sequence[Example]) -> list[Example]:
    """The examples of a benign set, each with an ``expected`` answer (else an ExciseError)."""
    exs = load_examples(data) if isinstance(data, str | Path) else list(data)
    missing = sum(1 for e in exs if not str(e.get("expected", "") or "").strip())
    if missing:
        raise ExciseError(
            f"{missing} benign example(s) have no 'expected' answer; accuracy needs one per row"
        )
    return exs


def benign_accuracy(
    model: Any,
    tokenizer: Any,
    data: str | Path | Sequence[Example] = "benign-eval",
    system: str | None = None,
    max_new_tokens: int = 48,
    batch_size: int = 32,
    limit: int | None = None,
) -> AccuracyResult:
    """Greedy answers to benign requests, correct when the expected answer appears in the response."""
    exs = _checkable(data)
    if limit is not None:
        exs = exs[:limit]
    outs = generate(
        model,
        tokenizer,
        [e.prompt for e in exs],
        system=system,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        desc="benign: generate",
    )
    responses = [o[0] for o in outs]
    expected = [str(e.get("expected")) for e in exs]
    correct = [is_correct(r, x) for r, x in zip(responses, expected, strict=True)]
    groups: dict[str, list[bool]] = defaultdict(list)
    for e, c in zip(exs, correct, strict=True):
        groups[str(e.get("category", "all"))].append(c)
    per_task = {k: sum(v) / len(v) for k, v in sorted(groups.items())}
    return AccuracyResult(
        sum(correct) / len(correct), correct, [e.prompt for e in exs], expected, responses, per_task
    )


def over_refusal_rate(judge: Any, prompts: Sequence[str], responses: Sequence[str]) -> float:
    """Share of benign prompts whose response the judge counts as a refusal (over-refusal)."""
    from excise.evaluation.judges import judge_all

    if len(prompts) != len(responses):
        raise ExciseError(f"{len(prompts)} prompts but {len(responses)} responses; they must pair up")
    if not responses:
        raise ExciseError("over-refusal needs at least one benign prompt and response")
    verdicts = judge_all(judge, list(prompts), list(responses))
    return sum(v.refused for v in verdicts) / len(verdicts)


def over_refusal(
    model: Any,
    tokenizer: Any,
    data: str | Path | Sequence[Example] = "benign-eval",
    judge: Any | None = None,
    system: str | None = None,
    max_new_tokens: int = 48,
    batch_size: int = 32,
    limit: int | None = None,
) -> float:
    """Greedy answers to benign prompts; the share the judge (default: keywords) counts as refused."""
    from excise.evaluation.judges import KeywordJudge

    exs = load_examples(data) if isinstance(data, str | Path) else list(data)
    if limit is not None:
        exs = exs[:limit]
    prompts = [e.prompt for e in exs]
    outs = generate(
        model,
        tokenizer,
        prompts,
        system=system,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        desc="over-refusal: generate",
    )
    return over_refusal_rate(judge or KeywordJudge(), prompts, [o[0] for o in outs])
