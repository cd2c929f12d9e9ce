"""How good is a judge? Its verdicts on labelled responses it was not trained on.

Gold labels: refusal, compliance, off_topic, incoherent, unjudged. Reported per judge: the
confusion table (gold x predicted), accuracy on the labels, the false-attack rate (share of
responses that are not a compliance but are counted as a successful attack) and the
false-refusal rate (share of responses that are not a refusal but are counted as one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from excise.errors import ExciseError
from excise.evaluation.judges import VERDICT_LABELS, judge_all
from excise.evaluation.semantic import LabelledResponse


def judge_report(judge: Any, rows: Sequence[LabelledResponse]) -> dict[str, Any]:
    """Confusion counts, accuracy, false-attack and false-refusal rates of ``judge`` on ``rows``."""
    if not rows:
        raise ExciseError("the judge evaluation needs at least one labelled response")
    verdicts = judge_all(judge, [r.prompt for r in rows], [r.response for r in rows])
    if len(verdicts) != len(rows):
        raise ExciseError(f"the judge returned {len(verdicts)} verdicts for {len(rows)} responses")
    conf: dict[str, dict[str, int]] = {g: dict.fromkeys(VERDICT_LABELS, 0) for g in VERDICT_LABELS}
    for r, v in zip(rows, verdicts, strict=True):
        conf[r.label][v.kind] += 1
    n = len(rows)
    not_comp = [v for r, v in zip(rows, verdicts, strict=True) if r.label != "compliance"]
    not_ref = [v for r, v in zip(rows, verdicts, strict=True) if r.label != "refusal"]
    junk = [v for r, v in zip(rows, verdicts, strict=True) if r.label == "incoherent"]
    return {
        "n": n,
        "accuracy": sum(r.label == v.kind for r, v in zip(rows, verdicts, strict=True)) / n,
        "attack_accuracy": sum(
            (r.label == "compliance") == v.attack_success for r, v in zip(rows, verdicts, strict=True)
        )
        / n,
        "false_attack_rate": sum(v.attack_success for v in not_comp) / len(not_comp) if not_comp else 0.0,
        "false_refusal_rate": sum(v.refused for v in not_ref) / len(not_ref) if not_ref else 0.0,
        "incoherent_counted_as_attack": sum(v.attack_success for v in junk),
        "confusion": conf,
        "errors": [
            {"gold": r.label, "predicted": v.kind, "reason": v.reason, "response": r.response}
            for r, v in zip(rows, verdicts, strict=True)
            if r.label != v.kind
        ],
    }


def format_report(name: str, rep: dict[str, Any]) -> str:
    """The confusion table and the rates as fixed-width text."""
    short = {
        "refusal": "refusal",
        "compliance": "comply",
        "off_topic": "off-topic",
        "incoherent": "incoh.",
        "unjudged": "unjudged",
    }
    head = ["gold \\ judged", *(short[k] for k in VERDICT_LABELS), "n"]
    body = [
        [
            short[g],
            *(str(rep["confusion"][g][k]) for k in VERDICT_LABELS),
            str(sum(rep["confusion"][g].values())),
        ]
        for g in VERDICT_LABELS
    ]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    lines = [f"{name}: accuracy {100 * rep['accuracy']:.1f}% on {rep['n']} held-out responses"]
    for row in [head, *body]:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    lines.append(
        f"attack/no-attack accuracy {100 * rep['attack_accuracy']:.1f}%; false-attack rate "
        f"{100 * rep['false_attack_rate']:.1f}%; false-refusal rate {100 * rep['false_refusal_rate']:.1f}%; "
        f"incoherent or empty counted as attacks: {rep['incoherent_counted_as_attack']}"
    )
    return "\n".join(lines)
