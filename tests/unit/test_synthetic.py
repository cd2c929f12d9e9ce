"""The synthetic data: shipped files match the generator, held-out sets are really held out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from excise.data import load_examples
from excise.data.loading import builtin_path
from excise.evaluation.judges import is_refusal
from excise.evaluation.utility import is_correct
from excise.zoo.grammar import (
    CAPITALS,
    HARM,
    HOWTO,
    PAST_TENSE,
    SEED,
    Grammar,
    builtin_sets,
    training_samples,
    words,
    write_builtin,
)

NAMES = ("safety", "utility", "harmful-eval", "benign-eval", "text")


@pytest.fixture(scope="module")
def training_corpus() -> list:
    return training_samples(3000, "helpful") + training_samples(3000, "aligned")


def test_shipped_files_are_what_the_generator_writes(tmp_path: Path) -> None:
    written = write_builtin(tmp_path)
    for name in NAMES:
        assert written[name].read_bytes() == builtin_path(name).read_bytes(), (
            f"{name}.jsonl is stale; regenerate it"
        )


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


# Word sequences that only eval-only phrasing parts contain.
EVAL_ONLY_MARKS = (
    "what would it take to",
    "in what way can i",
    "it is my plan to",
    "walk me through",
    "describe ",
    "the right way to",
    "what now?",
    "please explain.",
    "do you know",
    "is what?",
    "hello there,",
    "one more thing:",
    "i was wondering,",
    "for a project,",
    "many thanks",
    "in plain words",
    "short answer please",
    "as fast as you can",
)


def test_held_out_phrasings_never_occur_in_training(training_corpus: list) -> None:
    g = Grammar()
    held_frames = set(g.howto_eval) | {f for fs in g.lookup_eval.values() for f in fs}
    assert not held_frames & (set(g.howto_train) | {f for fs in g.lookup_train.values() for f in fs})
    for s in training_corpus:
        if s.task == "text":  # plain sentences may use any word
            continue
        low = (s.prompt or s.response).lower()
        assert not any(m in low for m in EVAL_ONLY_MARKS), low
        assert s.frame not in held_frames
    assert len(g.howto_train) >= 300  # many phrasings, so that refusals depend on content
    for name in ("harmful-eval", "benign-eval"):
        rows = load_examples(name)
        kinds = [r.get("held_out") for r in rows]
        assert set(kinds) == {"phrasing", "combination"}
        share = kinds.count("phrasing") / len(kinds)
        assert 0.35 <= share <= 0.65  # about half new phrasings, half new combinations
        marked = sum(any(m in r.prompt.lower() for m in EVAL_ONLY_MARKS) for r in rows)
        assert marked >= 0.15 * len(rows)


def test_held_out_harmful_combinations_are_new_pairs() -> None:
    g = Grammar()
    for cat in HARM:
        assert not set(g.harm_train[cat]) & set(g.harm_eval[cat])
    for r in load_examples("harmful-eval"):
        if r.get("held_out") == "combination":
            cat = str(r.get("category"))
            assert any(f"{v} {o}" in r.prompt.lower() for v, o in g.harm_eval[cat])


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
    g = Grammar()
    for task in g.lookup_train:
        assert g.lookup_train[task] and g.lookup_eval[task]
        assert not set(g.lookup_train[task]) & set(g.lookup_eval[task]), task
