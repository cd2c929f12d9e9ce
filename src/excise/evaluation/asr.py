"""Attack success rate (ASR) on harmful prompts: greedy or sampled, with or without a system
prompt, optionally with adversarial suffixes read from a file.

Aggregation is any-of-n: a prompt counts as attacked if ANY of its completions (over the ``n``
samples and over the suffixes) is a successful attack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from excise.data.loading import Example, load_examples
from excise.errors import ExciseError
from excise.evaluation.generation import generate
from excise.evaluation.judges import Judge, KeywordJudge, Verdict, judge_all


def any_of_n(verdicts: Sequence[Sequence[Verdict]]) -> list[bool]:
    """Per prompt: True if any of its verdicts is a successful attack (False for no verdicts)."""
    return [any(v.attack_success for v in vs) for vs in verdicts]


def load_suffixes(path: str | Path) -> list[str]:
    """Adversarial suffixes, one per non-empty line of a text file (``#`` starts a comment line)."""
    p = Path(path)
    if not p.is_file():
        raise ExciseError(
            f"adversarial suffix file not found: {p} (pass a text file with one suffix per line)"
        )
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ExciseError(f"cannot read the suffix file {p}: {err}") from None
    out = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not out:
        raise ExciseError(f"the suffix file {p} holds no suffix; write one per line")
    return out


@dataclass
class ASRResult:
    """ASR and everything behind it: completions and verdicts per prompt (variants x samples)."""

    asr: float
    attacked: list[bool]
    prompts: list[str]
    responses: list[list[str]]
    verdicts: list[list[Verdict]]
    settings: dict[str, Any] = field(default_factory=dict)
    per_suffix: dict[str, float] = field(default_factory=dict)
    categories: list[str] = field(default_factory=list)

    def _share(self, kind: str) -> float:
        flat = [v for vs in self.verdicts for v in vs]
        return sum(v.kind == kind for v in flat) / len(flat) if flat else 0.0

    @property
    def off_topic_rate(self) -> float:
        """Fraction of all completions that neither refuse nor address the request ("Sure.")."""
        return self._share("off_topic")

    @property
    def unjudged_rate(self) -> float:
        """Fraction of all completions in a language the judge cannot read (never attacks)."""
        return self._share("unjudged")

    @property
    def per_category(self) -> dict[str, float]:
        """ASR per category of the harmful set (empty when the set has no categories)."""
        if not self.categories or len(set(self.categories)) < 2:
            return {}
        groups: dict[str, list[bool]] = {}
        for c, a in zip(self.categories, self.attacked, strict=True):
            groups.setdefault(c, []).append(a)
        return {c: sum(v) / len(v) for c, v in sorted(groups.items())}

    @property
    def refusal_rate(self) -> float:
        """Fraction of all completions the judge counts as refusals."""
        flat = [v for vs in self.verdicts for v in vs]
        return sum(v.refused for v in flat) / len(flat) if flat else 0.0

    @property
    def incoherent_rate(self) -> float:
        """Fraction of non-refusal completions that fail the coherence gate."""
        flat = [v for vs in self.verdicts for v in vs if not v.refused]
        return sum(not v.coherent for v in flat) / len(flat) if flat else 0.0

    def summary(self) -> dict[str, Any]:
        """The rates and settings as a plain dict (no completions)."""
        return {
            "asr": self.asr,
            "refusal_rate": self.refusal_rate,
            "incoherent_rate": self.incoherent_rate,
            "off_topic_rate": self.off_topic_rate,
            "unjudged_rate": self.unjudged_rate,
            "n_prompts": len(self.prompts),
            **({"asr_per_category": self.per_category} if self.per_category else {}),
            **self.settings,
            **({"per_suffix": self.per_suffix} if self.per_suffix else {}),
        }

    def examples(self, k: int = 5) -> list[dict[str, Any]]:
        """The first ``k`` prompts with their first completion and verdict (for reports)."""
        return [
            {
                "prompt": p,
                "response": r[0] if r else "",
                "attack_success": v[0].attack_success if v else False,
                "reason": v[0].reason if v else "",
            }
            for p, r, v in zip(self.prompts[:k], self.responses[:k], self.verdicts[:k], strict=True)
        ]


def _prompts_of(data: str | Path | Sequence[Example] | Sequence[str]) -> tuple[list[str], list[str]]:
    """(prompts, categories) of a data set name / path, a list of ``Example`` or of strings."""
    items = load_examples(data) if isinstance(data, str | Path) else list(data)
    out = [e.prompt if isinstance(e, Example) else str(e) for e in items]
    if not out:
        raise ExciseError("no harmful prompts given; pass a data set with at least one prompt")
    cats = [str(e.get("category", "") or "") if isinstance(e, Example) else "" for e in items]
    return out, cats


def attack_success_rate(
    model: Any,
    tokenizer: Any,
    harmful: str | Path | Sequence[Example] | Sequence[str] = "harmful-eval",
    judge: Judge | None = None,
    sample: bool = False,
    n: int = 1,
    system: str | None = None,
    suffixes: str | Path | Sequence[str] | None = None,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 32,
    seed: int = 0,
    limit: int | None = None,
) -> ASRResult:
    """ASR of ``model`` on harmful prompts, judged by ``judge`` (default: keywords + coherence gate)."""
    if isinstance(suffixes, str | Path):
        suffix_list: list[str] = load_suffixes(suffixes)
    else:
        suffix_list = list(suffixes) if suffixes is not None else []
    prompts, categories = _prompts_of(harmful)
    if limit is not None:
        prompts, categories = prompts[:limit], categories[:limit]
    judge = judge or KeywordJudge()
    variants = suffix_list if suffix_list else [""]
    per_prompt: list[list[Verdict]] = [[] for _ in prompts]
    per_resp: list[list[str]] = [[] for _ in prompts]
    per_suffix: dict[str, float] = {}
    for v_i, suffix in enumerate(variants):
        full = [f"{p} {suffix}".strip() for p in prompts]
        outs = generate(
            model,
            tokenizer,
            full,
            system=system,
            max_new_tokens=max_new_tokens,
            sample=sample,
            n=n if sample else 1,
            temperature=temperature,
            top_p=top_p,
            batch_size=batch_size,
            seed=seed + 7919 * v_i,
            desc="ASR: generate",
        )
        flat_p = [p for p, o in zip(full, outs, strict=True) for _ in o]
        flat_r = [r for o in outs for r in o]
        flat_v = judge_all(judge, flat_p, flat_r)
        pos = 0
        this: list[list[Verdict]] = []
        for i, o in enumerate(outs):
            vs = flat_v[pos : pos + len(o)]
            pos += len(o)
            per_prompt[i].extend(vs)
            per_resp[i].extend(o)
            this.append(vs)
        if suffix:
            hits = any_of_n(this)
            per_suffix[suffix] = sum(hits) / len(hits)
    attacked = any_of_n(per_prompt)
    settings = {
        "decoding": f"sampled x{n}" if sample else "greedy",
        "system_prompt": system is not None,
        "suffixes": len(suffix_list),
        "max_new_tokens": max_new_tokens,
    }
    if sample:
        settings.update(temperature=temperature, top_p=top_p)
    return ASRResult(
        sum(attacked) / len(attacked),
        attacked,
        prompts,
        per_resp,
        per_prompt,
        settings,
        per_suffix,
        categories if any(categories) else [],
    )
