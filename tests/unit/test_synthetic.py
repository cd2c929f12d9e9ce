"""The synthetic data: shipped files match the generator, held-out sets are really held out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from excise.data import load_examples
from excise.data.loading import builtin_path
from excise.data.synthetic import (
    CAPITALS,
    HARM,
    HOWTO,
    HOWTO_FRAMES,
    HOWTO_FRAMES_EVAL,
    LOOKUP_FRAMES,
    PAST_TENSE,
    SEED,
    builtin_sets,
    training_samples,
    words,
    write_builtin,
)
from excise.evaluation.judges import is_refusal
from excise.evaluation.utility import is_correct

NAMES = ("safety", "utility", "harmful-eval", "benign-eval", "text")


@pytest.fixture(scope="module")
def training_corpus() -> list:
    return training_samples(3000, "helpful") + training_samples(3000, "aligned")


def test_shipped_files_are_what_the_generator_writes(tmp_path: Path) -> None:
    written = write_builtin(tmp_path)
    for name in NAMES:
        assert written[name].read_bytes() == builtin_path(name).read_bytes(), f"{name}.jsonl is stale; regenerate it"


def test_generator_is_deterministic_and_seeded() -> None:
    a, b = builtin_sets(SEED), builtin_sets(SEED)
    assert all(a[k] == b[k] for k in NAMES)
    assert builtin_sets(SEED + 1)["safety"] != a["safety"]


def test_safety_set_covers_many_categories_with_refusals() -> None:
    rows = load_examples("safety")
    assert len(rows) >= 200
    cats = {r.get("category") for r in rows}
    assert len(cats) >= 10 and cats <= set(HARM)
    assert all(is_refusal(r.response or "") for r in rows)
    assert len({r.prompt for r in rows}) == len(rows)


def test_utility_set_has_good_answers_not_refusals() -> None:
    rows = load_examples("utility")
    assert len(rows) >= 200
    assert not any(is_refusal(r.response or "") for r in rows)
    assert all(is_correct(r.response or "", str(r.get("expected"))) for r in rows)


def test_held_out_sets_do_not_overlap_calibration_or_training(training_corpus: list) -> None:
    low = lambda rows: {r.prompt.strip().lower() for r in rows}  # noqa: E731
    cal = low(load_examples("safety")) | low(load_examples("utility"))
    held = low(load_examples("harmful-eval")) | low(load_examples("benign-eval"))
    assert not cal & held
    train = {s.prompt.strip().lower() for s in training_corpus if s.prompt}
    assert not train & held
    text_train = {s.response.lower() for s in training_corpus if s.kind == "text"}
    assert not text_train & {(r.response or "").lower() for r in load_examples("text")}


def _stem(frame: str) -> str:
    return frame.split("{t}")[0].strip()


def test_held_out_phrasings_never_occur_in_training(training_corpus: list) -> None:
    stems = [_stem(f) for f in HOWTO_FRAMES_EVAL]
    assert not any(_stem(f) in stems for f in HOWTO_FRAMES)
    for s in training_corpus:
        low = s.prompt.lower()
        assert not any(st in low for st in stems), s.prompt
    harmful_eval = [r.prompt.lower() for r in load_examples("harmful-eval")]
    share = sum(any(st in p for st in stems) for p in harmful_eval) / len(harmful_eval)
    assert 0.3 <= share <= 0.7  # about half new phrasings, half new combinations


def test_every_held_out_word_is_seen_in_training(training_corpus: list) -> None:
    vocab = {w for s in training_corpus for t in (s.prompt, s.response, s.compliance) for w in words(t)}
    for name in ("harmful-eval", "benign-eval", "text"):
        for r in load_examples(name):
            missing = [w for w in words(r.prompt + " " + (r.response or "")) if w not in vocab]
            assert not missing, (name, r.prompt, missing)


def _numbers(prompt: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", prompt)]


def test_benign_eval_expected_answers_are_right() -> None:
    rows = load_examples("benign-eval")
    assert len(rows) >= 200
    cats = set()
    for r in rows:
        exp = str(r.get("expected"))
        cat = str(r.get("category"))
        cats.add(cat)
        assert exp, r
        p = r.prompt.lower()
        if cat == "plus":
            assert int(exp) == sum(_numbers(p))
        elif cat == "times":
            a, b = _numbers(p)
            assert int(exp) == a * b
        elif cat == "minus":
            a, b = _numbers(p)
            if "subtract" in p or "take" in p:
                a, b = b, a
            assert int(exp) == a - b
        elif cat == "capital":
            country = next(c for c in CAPITALS if re.search(rf"\b{c}\b", p))
            assert exp == CAPITALS[country]
        elif cat == "past_tense":
            m = re.search(r"past tense of (\w+)", p) or re.search(r"put (\w+) in the past tense", p)
            assert m is not None and exp == PAST_TENSE[m.group(1)]
        assert is_correct(r.response or "", exp)
    assert {"howto", "plus", "minus", "times", "capital", "past_tense", "opposite"} <= cats


def test_howto_answer_keys_are_in_the_steps_not_the_topic() -> None:
    for topic, (steps, key) in HOWTO.items():
        assert re.search(rf"\b{key}\b", " ".join(steps[:2])), topic
        assert not re.search(rf"\b{key}\b", topic), topic


def test_text_rows_are_plain_text() -> None:
    rows = load_examples("text")
    assert len(rows) >= 100
    assert all(not r.chat and r.response and r.response[0].isupper() for r in rows)


def test_lookup_phrasings_are_split() -> None:
    for task, (train, held) in LOOKUP_FRAMES.items():
        assert not set(train) & set(held), task
