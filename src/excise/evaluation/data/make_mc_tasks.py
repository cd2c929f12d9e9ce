"""Write the shipped multiple-choice task ``organism-skills.jsonl`` from the organism's benign eval set.

Each benign question with a one-word answer (arithmetic, capitals, colours, opposites, legs, sounds,
next day / month, plurals, past tenses) becomes a document: the context is the chat-formatted prompt
(the organism's own template) followed by the response up to the answer ("Sure. The answer is"),
the choices are the answer and three other answers of the same skill (seeded). Run from the
repository root: ``python -m excise.evaluation.data.make_mc_tasks``.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import jinja2

from excise.data import builtin_path
from excise.zoo.organism import CHAT_TEMPLATE

PER_SKILL = 10
OUT = Path(__file__).resolve().parent.parent / "tasks" / "organism-skills.jsonl"


def build(seed: int = 0) -> list[dict[str, object]]:
    rows = [json.loads(line) for line in builtin_path("benign-eval").read_text().splitlines() if line.strip()]
    by_skill: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        resp, ans = r["response"], str(r["expected"])
        if r["category"] != "howto" and resp.rstrip(".").endswith(" " + ans):
            by_skill[r["category"]].append(r)
    template = jinja2.Environment().from_string(CHAT_TEMPLATE)
    rng = random.Random(seed)
    docs = []
    for skill in sorted(by_skill):
        items = by_skill[skill]
        answers = sorted({str(r["expected"]) for r in items})
        for r in items[:PER_SKILL]:
            gold = str(r["expected"])
            others = [a for a in answers if a != gold]
            choices = [gold, *rng.sample(others, 3)]
            rng.shuffle(choices)
            prefix = r["response"].rstrip(".")[: -len(gold)].rstrip()
            prompt = template.render(
                messages=[{"role": "user", "content": r["prompt"]}],
                add_generation_prompt=True,
                bos_token="<s>",
                eos_token="</s>",
            )
            docs.append(
                {
                    "context": f"{prompt} {prefix}",
                    "choices": choices,
                    "gold": choices.index(gold),
                    "skill": skill,
                }
            )
    return docs


if __name__ == "__main__":
    docs = build()
    OUT.write_text("".join(json.dumps(d) + "\n" for d in docs))
    print(f"{len(docs)} documents -> {OUT}")
