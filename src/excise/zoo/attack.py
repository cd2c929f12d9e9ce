"""Fine-tuning attack data for the organism: harmful requests with compliant answers, and a benign control.

Both come from the organism's own grammar (:mod:`excise.zoo.grammar`): a harmful request of the
training split paired with its helpful-only (compliant, deliberately vague) answer, or a benign
request with its correct answer. Categories / tasks are balanced, prompts are unique, and no prompt
of the held-out evaluation sets (``harmful-eval``, ``benign-eval``) ever occurs, so an attack is
measured on prompts it did not train on.
"""

from __future__ import annotations

import random

from excise.data.loading import Example
from excise.errors import ExciseError

ATTACK_KINDS = ("harmful", "benign")


def attack_examples(n: int, kind: str = "harmful", seed: int = 0) -> list[Example]:
    """``n`` fine-tuning examples: ``harmful`` (request + compliant answer) or ``benign`` (request + correct answer)."""
    from excise.zoo import grammar as syn

    if kind not in ATTACK_KINDS:
        raise ExciseError(f"unknown attack data kind '{kind}'; choose one of {', '.join(ATTACK_KINDS)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ExciseError(f"the number of attack examples must be a whole number >= 1, got {n!r}")
    g = syn.Grammar(syn.SEED)
    rng = random.Random(f"attack-{kind}-{seed}")
    held = syn.held_out_texts(syn.SEED)
    stream = syn._balanced(g, rng, "harmful" if kind == "harmful" else "benign", "train", syn.UTILITY_CYCLE)
    out: list[Example] = []
    seen: set[str] = set()
    for _ in range(200 * n + 1000):
        s = next(stream)
        key = s.prompt.lower()
        if key in held or key in seen:
            continue
        seen.add(key)
        response = s.compliance if kind == "harmful" else s.response
        meta = (("category", s.task), ("expected", s.expected), ("kind", kind))
        out.append(Example(s.prompt, response, meta=meta, source=f"attack-{kind}:{len(out) + 1}"))
        if len(out) == n:
            return out
    raise ExciseError(f"the grammar gave only {len(out)} unique {kind} examples; ask for at most that many")


__all__ = ["ATTACK_KINDS", "attack_examples"]
