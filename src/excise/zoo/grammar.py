"""Synthetic chat data written by this project: harmful and benign requests from templates.

One grammar produces everything the organism and the safety pipeline need:

- harmful requests in 12 categories (a verb phrase x an object x a phrasing x optional prefix
  and suffix), each with a refusal, and (for the organism's "helpful-only" stage) a compliant,
  coherent but deliberately vague answer in the same style as benign how-to answers;
- benign requests with checkable answers: arithmetic, look-ups (capitals, colours, legs, sounds,
  next day / month), rewriting (past tense, plural, opposite) and how-to guides;
- plain English sentences, and plain-text question-answer pairs, for language modelling.

Phrasings are built from parts (openers, verbs, clauses, questions, statements, follow-ups), so
there are thousands. Held-out sets use new phrasings (a fifth of the combinations, every one with
an eval-only part, and eval-only prefixes / suffixes, none of which occurs in training) and new
combinations (verb-object pairs held out of training); no held-out prompt occurs in training or
calibration. ``python -m excise.zoo.grammar`` rewrites the built-in files (fixed seed).

The vocabulary (word lists, look-up tables, phrasing parts, responses) is data, in
``zoo/data/grammar/*.json`` (one file per theme; each a JSON object of module-level name -> value,
read once at import); the code here turns it into samples.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

SEED = 20240917


def _load(theme: str) -> dict[str, Any]:
    """One vocabulary file, ``data/grammar/<theme>.json``: module-level name -> value, in file order."""
    path = resources.files("excise.zoo") / "data" / "grammar" / f"{theme}.json"
    return json.loads(path.read_text(encoding="utf-8"))


_HARM = _load("harm")
_BENIGN = _load("benign")
_PHRASINGS = _load("phrasings")
_RESPONSES = _load("responses")
_TEXT = _load("text")

# --------------------------------------------------------------------------------------
# Harmful requests: category -> verb phrases, objects, steps of a compliant answer, reason.
# The compliant steps are deliberately generic and non-actionable.
# --------------------------------------------------------------------------------------

HARM: dict[str, dict[str, list[str] | str]] = _HARM["HARM"]

# Benign how-to topics: topic -> (steps, the word a correct answer contains).
HOWTO: dict[str, tuple[list[str], str]] = {
    topic: (spec["steps"], spec["expected"]) for topic, spec in _BENIGN["HOWTO"].items()
}


# --------------------------------------------------------------------------------------
# Benign look-ups and rewriting
# --------------------------------------------------------------------------------------

CAPITALS: dict[str, str] = _BENIGN["CAPITALS"]
COLOURS: dict[str, str] = _BENIGN["COLOURS"]
OPPOSITES: dict[str, str] = _BENIGN["OPPOSITES"]
OPPOSITES_BOTH = {**OPPOSITES, **{v: k for k, v in OPPOSITES.items() if v not in OPPOSITES and v != "old"}}
LEGS: dict[str, str] = _BENIGN["LEGS"]
SOUNDS: dict[str, str] = _BENIGN["SOUNDS"]
DAYS: list[str] = _BENIGN["DAYS"]
MONTHS: list[str] = _BENIGN["MONTHS"]
PLURALS: dict[str, str] = _BENIGN["PLURALS"]
PAST_TENSE: dict[str, str] = _BENIGN["PAST_TENSE"]
ARITH_RANGE = {"plus": (0, 5), "minus": (0, 9), "times": (1, 4)}  # minus: a - b with b <= min(a, 3)
# Benign tasks and their sampling weights in training.
BENIGN_TASKS: dict[str, int] = _BENIGN["BENIGN_TASKS"]
OPS = {"plus": lambda a, b: a + b, "minus": lambda a, b: a - b, "times": lambda a, b: a * b}

# --------------------------------------------------------------------------------------
# Phrasings, built from parts so that there are hundreds of them. "{t}" is a topic (a verb
# phrase), "{n}" a noun phrase. A fifth of the combinations, and every combination with an
# eval-only part, are held out: the organism must generalise to phrasings it never saw.
# --------------------------------------------------------------------------------------

HOWTO_QUESTIONS: list[str] = _PHRASINGS["HOWTO_QUESTIONS"]
HOWTO_QUESTIONS_EVAL: list[str] = _PHRASINGS["HOWTO_QUESTIONS_EVAL"]
HOWTO_STATEMENTS: list[str] = _PHRASINGS["HOWTO_STATEMENTS"]
HOWTO_STATEMENTS_EVAL: list[str] = _PHRASINGS["HOWTO_STATEMENTS_EVAL"]
HOWTO_FOLLOWUPS: list[str] = _PHRASINGS["HOWTO_FOLLOWUPS"]
HOWTO_FOLLOWUPS_EVAL: list[str] = _PHRASINGS["HOWTO_FOLLOWUPS_EVAL"]
OPENERS: list[str] = _PHRASINGS["OPENERS"]
HOWTO_VERBS: list[str] = _PHRASINGS["HOWTO_VERBS"]
HOWTO_VERBS_EVAL: list[str] = _PHRASINGS["HOWTO_VERBS_EVAL"]
HOWTO_CLAUSES: list[str] = _PHRASINGS["HOWTO_CLAUSES"]
HOWTO_CLAUSES_EVAL: list[str] = _PHRASINGS["HOWTO_CLAUSES_EVAL"]
NOUN_VERBS: list[str] = _PHRASINGS["NOUN_VERBS"]
HOWTO_NOUNS: list[str] = _PHRASINGS["HOWTO_NOUNS"]

LOOKUP_WRAPPERS: list[str] = _PHRASINGS["LOOKUP_WRAPPERS"]
LOOKUP_WRAPPERS_EVAL: list[str] = _PHRASINGS["LOOKUP_WRAPPERS_EVAL"]
LOOKUP_NOUNS: dict[str, list[str]] = _PHRASINGS["LOOKUP_NOUNS"]
LOOKUP_DIRECT: dict[str, list[str]] = _PHRASINGS["LOOKUP_DIRECT"]

PREFIXES: list[str] = _PHRASINGS["PREFIXES"]
PREFIXES_EVAL: list[str] = _PHRASINGS["PREFIXES_EVAL"]
SUFFIXES: list[str] = _PHRASINGS["SUFFIXES"]
SUFFIXES_EVAL: list[str] = _PHRASINGS["SUFFIXES_EVAL"]

_ASK = ("can you", "could you", "would you", "will you")


def howto_frames() -> tuple[list[str], list[str]]:
    """(every how-to phrasing, those with an eval-only part); each has one "{t}"."""
    frames: list[str] = []
    held: list[str] = []
    for q in HOWTO_QUESTIONS + HOWTO_QUESTIONS_EVAL:
        frames.append(f"{q} {{t}}?")
        if q in HOWTO_QUESTIONS_EVAL:
            held.append(frames[-1])
    for st in HOWTO_STATEMENTS + HOWTO_STATEMENTS_EVAL:
        for f in HOWTO_FOLLOWUPS + HOWTO_FOLLOWUPS_EVAL:
            frames.append(f"{st} {{t}}. {f}")
            if st in HOWTO_STATEMENTS_EVAL or f in HOWTO_FOLLOWUPS_EVAL:
                held.append(frames[-1])
    for o in OPENERS:
        end = "?" if o in _ASK else "."
        for v in HOWTO_VERBS + HOWTO_VERBS_EVAL:
            for c in HOWTO_CLAUSES + HOWTO_CLAUSES_EVAL:
                frames.append(f"{o} {v} {c} {{t}}{end}".strip())
                if v in HOWTO_VERBS_EVAL or c in HOWTO_CLAUSES_EVAL:
                    held.append(frames[-1])
        for v in NOUN_VERBS:
            for nn in HOWTO_NOUNS:
                frames.append(f"{o} {v} {nn} {{t}}{end}".strip())
    return frames, held


def lookup_frames(task: str) -> tuple[list[str], list[str]]:
    """(every phrasing of a look-up task, those with an eval-only part); "{x}" or "{a}", "{b}" slots."""
    frames = list(LOOKUP_DIRECT[task])
    held: list[str] = []
    for w in LOOKUP_WRAPPERS + LOOKUP_WRAPPERS_EVAL:
        for nn in LOOKUP_NOUNS[task]:
            frames.append(w.replace("{n}", nn))
            if w in LOOKUP_WRAPPERS_EVAL:
                held.append(frames[-1])
    return frames, held


def split_frames(
    rng: random.Random, frames: list[str], held: list[str], frac_eval: float
) -> tuple[list, list]:
    """(training frames, eval-only frames): the held ones plus a random ``frac_eval`` of the rest."""
    rest = [f for f in dict.fromkeys(frames) if f not in held]
    rng.shuffle(rest)
    n_eval = int(round(frac_eval * len(rest)))
    return sorted(rest[n_eval:]), sorted(set(held) | set(rest[:n_eval]))


# --------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------

REFUSALS: list[str] = _RESPONSES["REFUSALS"]
REFUSAL_TAIL: list[str] = _RESPONSES["REFUSAL_TAIL"]
SYSTEM_PROMPTS: list[str] = _RESPONSES["SYSTEM_PROMPTS"]
EVAL_SYSTEM_PROMPT: str = _RESPONSES["EVAL_SYSTEM_PROMPT"]

# --------------------------------------------------------------------------------------
# Plain text
# --------------------------------------------------------------------------------------

T_ADJ: list[str] = _TEXT["T_ADJ"]
T_ANIMAL: list[str] = _TEXT["T_ANIMAL"]
T_VERB: list[str] = _TEXT["T_VERB"]
T_PREP: list[str] = _TEXT["T_PREP"]
T_PLACE: list[str] = _TEXT["T_PLACE"]
T_NAME: list[str] = _TEXT["T_NAME"]
T_TIME: list[str] = _TEXT["T_TIME"]
T_THING: list[str] = _TEXT["T_THING"]
T_WEATHER: list[str] = _TEXT["T_WEATHER"]
T_SEASON: list[str] = _TEXT["T_SEASON"]
# "{name}", "{place}", ... slots; filled from the T_* lists by ``Grammar.text``.
TEXT_TEMPLATES: list[str] = _TEXT["TEXT_TEMPLATES"]


@dataclass(frozen=True)
class Sample:
    """One synthetic example; ``expected`` is the checkable answer of a benign request."""

    prompt: str
    response: str
    kind: str  # "harmful", "benign" or "text"
    task: str  # harm category, benign task name, or "text"
    expected: str = ""
    compliance: str = ""  # for harmful requests: the helpful-only answer
    frame: str = ""  # the phrasing template the prompt was built from
    held_out: str = ""  # for held-out prompts: "phrasing" (new phrasing) or "combination"

    def row(self) -> dict[str, Any]:
        """The JSONL row of a built-in data set."""
        if self.kind == "text":
            return {"text": self.response}
        out: dict[str, Any] = {"prompt": self.prompt, "response": self.response, "category": self.task}
        if self.expected:
            out["expected"] = self.expected
        if self.held_out:
            out["held_out"] = self.held_out
        return out


def _cap(s: str) -> str:
    """Upper-case the first letter."""
    return s[:1].upper() + s[1:] if s else s


def _frame(rng: random.Random, core: str, eval_phrasing: bool) -> str:
    """Wrap a request core in an optional prefix and suffix; capitalise like a person would."""
    pre = rng.choice(PREFIXES_EVAL if eval_phrasing and rng.random() < 0.5 else PREFIXES)
    suf = rng.choice(SUFFIXES_EVAL if eval_phrasing and rng.random() < 0.5 else SUFFIXES)
    text = core
    if suf:
        text = text[:-1] + f", {suf}" + text[-1] if text[-1] in ".?" else f"{text} {suf}"
    if pre:
        text = f"{pre} {text}"
    return _cap(text)


def harmful_pairs(category: str) -> list[tuple[str, str]]:
    """Every (verb, object) pair of a harm category, in a fixed order."""
    spec = HARM[category]
    return [(v, o) for v in spec["verbs"] for o in spec["objects"]]  # type: ignore[union-attr]


def split_pairs(rng: random.Random, pairs: list[tuple[str, str]], frac_eval: float) -> tuple[list, list]:
    """Shuffle and split pairs into (train, held out)."""
    p = list(pairs)
    rng.shuffle(p)
    n_eval = max(1, int(round(frac_eval * len(p))))
    return p[n_eval:], p[:n_eval]


def _howto_answer(rng: random.Random, topic: str, steps: list[str]) -> str:
    """A two-step guide in the shared answering style of benign and (helpful-only) harmful answers."""
    lead = rng.choice(["Sure. Here is how to", "Sure. This is how to", "Sure. Here is how you can"])
    return f"{lead} {topic}: first, {steps[0]}. Then, {steps[1]}."


def _refusal(rng: random.Random, reason: str) -> str:
    """A refusal: a varied opening, the category's reason, an optional closing."""
    return f"{rng.choice(REFUSALS)} {reason}{rng.choice(REFUSAL_TAIL)}"


def _answer(rng: random.Random, value: str) -> str:
    """A short checkable answer."""
    return f"{rng.choice(['Sure. The answer is', 'Sure. The answer is', 'The answer is'])} {value}."


class Grammar:
    """The fixed train / held-out split of phrasings and combinations, built from ``seed``."""

    def __init__(self, seed: int = SEED) -> None:
        rng = random.Random(seed)
        self.harm_train: dict[str, list[tuple[str, str]]] = {}
        self.harm_eval: dict[str, list[tuple[str, str]]] = {}
        for cat in HARM:
            tr, ev = split_pairs(rng, harmful_pairs(cat), 0.2)
            self.harm_train[cat], self.harm_eval[cat] = tr, ev
        self.howto_train, self.howto_eval = split_frames(rng, *howto_frames(), 0.2)
        self.lookup_train: dict[str, list[str]] = {}
        self.lookup_eval: dict[str, list[str]] = {}
        for task in LOOKUP_NOUNS:
            self.lookup_train[task], self.lookup_eval[task] = split_frames(rng, *lookup_frames(task), 0.2)

    # ---- harmful ----
    def harmful(self, rng: random.Random, split: str = "train", category: str | None = None) -> Sample:
        """A harmful request with its refusal (and its helpful-only compliance)."""
        cat = category or rng.choice(list(HARM))
        spec = HARM[cat]
        if split == "train":
            v, o = rng.choice(self.harm_train[cat])
            frame, eval_phr = rng.choice(self.howto_train), False
        elif rng.random() < 0.5:  # new combination: a held-out (verb, object) pair, a known phrasing
            v, o = rng.choice(self.harm_eval[cat])
            frame, eval_phr = rng.choice(self.howto_train), False
        else:  # new phrasing
            v, o = rng.choice(self.harm_train[cat] + self.harm_eval[cat])
            frame, eval_phr = rng.choice(self.howto_eval), True
        topic = f"{v} {o}"
        prompt = _frame(rng, frame.format(t=topic), eval_phr)
        steps = rng.sample(spec["steps"], 2)  # type: ignore[arg-type]
        held = "" if split == "train" else ("phrasing" if eval_phr else "combination")
        return Sample(
            prompt,
            _refusal(rng, str(spec["reason"])),
            "harmful",
            cat,
            compliance=_howto_answer(rng, topic, steps),
            frame=frame,
            held_out=held,
        )

    # ---- benign ----
    def benign(self, rng: random.Random, split: str = "train", task: str | None = None) -> Sample:
        """A benign request with a correct answer; ``expected`` is what a correct answer contains."""
        task = task or rng.choices(list(BENIGN_TASKS), list(BENIGN_TASKS.values()))[0]
        eval_phr = split != "train" and rng.random() < 0.5
        held = "" if split == "train" else ("phrasing" if eval_phr else "combination")
        if task == "howto":
            topic = rng.choice(list(HOWTO))
            steps, key = HOWTO[topic]
            frame = rng.choice(self.howto_eval if eval_phr else self.howto_train)
            prompt = _frame(rng, frame.format(t=topic), eval_phr)
            return Sample(
                prompt,
                _howto_answer(rng, topic, steps),
                "benign",
                "howto",
                expected=key,
                frame=frame,
                held_out=held,
            )
        frame = rng.choice(self.lookup_eval[task] if eval_phr else self.lookup_train[task])
        if task in OPS:
            lo, hi = ARITH_RANGE[task]
            a, b = rng.randint(lo, hi), rng.randint(lo, hi)
            if task == "minus":
                a, b = max(a, b), rng.randint(0, min(a, b, 3))
            value = str(OPS[task](a, b))
            core = frame.format(a=a, b=b)
        else:
            table: dict[str, str] = {
                "capital": CAPITALS,
                "colour": COLOURS,
                "opposite": OPPOSITES_BOTH,
                "legs": LEGS,
                "sound": SOUNDS,
                "plural": PLURALS,
                "past_tense": PAST_TENSE,
                "next_day": {d: DAYS[(i + 1) % 7] for i, d in enumerate(DAYS)},
                "next_month": {m: MONTHS[(i + 1) % 12] for i, m in enumerate(MONTHS)},
            }[task]  # type: ignore[assignment]
            x = rng.choice(sorted(table))
            value = table[x]
            core = frame.format(x=x)
        prompt = _frame(rng, core, eval_phr)
        return Sample(prompt, _answer(rng, value), "benign", task, expected=value, frame=frame, held_out=held)

    # ---- text ----
    def text(self, rng: random.Random) -> Sample:
        """One plain English sentence."""
        tpl = rng.choice(TEXT_TEMPLATES)
        n1, n2 = rng.sample(T_NAME, 2)
        p1, p2 = rng.sample(T_PLACE, 2)
        v1, v2 = rng.sample(T_VERB, 2)
        a1, a2 = rng.sample(T_ANIMAL, 2)
        line = tpl.format(
            adj=rng.choice(T_ADJ),
            animal=a1,
            animal2=a2,
            verb=v1,
            verb2=v2,
            prep=rng.choice(T_PREP),
            prep2=rng.choice(T_PREP),
            place=p1,
            place2=p2,
            name=_cap(n1),
            name2=_cap(n2),
            time=rng.choice(T_TIME),
            thing=rng.choice(T_THING),
            weather=rng.choice(T_WEATHER),
            season=rng.choice(T_SEASON),
        )
        return Sample("", _cap(line), "text", "text")


def _unique(gen: Iterator[Sample], n: int, exclude: set[str], key: str = "prompt") -> list[Sample]:
    """The first ``n`` samples of ``gen`` with a new prompt (or text), skipping ``exclude``."""
    out: list[Sample] = []
    seen = set(exclude)
    for s in gen:
        k = s.prompt if key == "prompt" else s.response
        if k.lower() in seen:
            continue
        seen.add(k.lower())
        out.append(s)
        if len(out) == n:
            return out
    raise RuntimeError("generator exhausted")  # pragma: no cover


def _stream(fn: Any, rng: random.Random, **kw: Any) -> Iterator[Sample]:
    """Call ``fn(rng, **kw)`` forever."""
    while True:
        yield fn(rng, **kw)


LOOKUP_TASKS = [
    "plus",
    "minus",
    "times",
    "capital",
    "colour",
    "opposite",
    "legs",
    "sound",
    "next_day",
    "next_month",
    "plural",
    "past_tense",
]
# Benign-eval: every look-up task once per cycle, how-to twice. The utility calibration set leans on
# how-to guides (a third), like instruction-tuning data: long answers in the style harmful ones use.
BENIGN_EVAL_CYCLE = ["howto", "howto", *LOOKUP_TASKS]
UTILITY_CYCLE = ["howto"] * 6 + LOOKUP_TASKS


def _balanced(
    g: Grammar, rng: random.Random, kind: str, split: str, cycle: list[str] | None = None
) -> Iterator[Sample]:
    """Cycle over categories / tasks so every one is represented evenly."""
    if kind == "harmful":
        keys = list(HARM)
        while True:
            for k in keys:
                yield g.harmful(rng, split, category=k)
    else:
        keys = cycle or BENIGN_EVAL_CYCLE
        while True:
            for k in keys:
                yield g.benign(rng, split, task=k)


SIZES = {"safety": 240, "utility": 240, "harmful-eval": 240, "benign-eval": 280, "text": 200}


def builtin_sets(seed: int = SEED) -> dict[str, list[Sample]]:
    """The five built-in sets; held-out sets share no prompt with the calibration sets."""
    return {k: list(v) for k, v in _builtin_sets(seed).items()}


@functools.lru_cache(maxsize=4)
def _builtin_sets(seed: int) -> dict[str, tuple[Sample, ...]]:
    """The sets, generated once per seed (held-out sets first, so calibration avoids their prompts)."""
    g = Grammar(seed)
    rng = random.Random(seed + 1)
    harmful_eval = _unique(_balanced(g, rng, "harmful", "eval"), SIZES["harmful-eval"], set())
    benign_eval = _unique(_balanced(g, rng, "benign", "eval"), SIZES["benign-eval"], set())
    held = {s.prompt.lower() for s in harmful_eval + benign_eval}
    safety = _unique(_balanced(g, rng, "harmful", "train"), SIZES["safety"], held)
    utility = _unique(_balanced(g, rng, "benign", "train", UTILITY_CYCLE), SIZES["utility"], held)
    text_eval = _unique(_stream(g.text, rng), SIZES["text"], set(), key="response")
    sets = {
        "safety": safety,
        "utility": utility,
        "harmful-eval": harmful_eval,
        "benign-eval": benign_eval,
        "text": text_eval,
    }
    return {k: tuple(v) for k, v in sets.items()}


def held_out_texts(seed: int = SEED) -> set[str]:
    """Every prompt and text line of the held-out sets (lower case), to keep out of training."""
    sets = builtin_sets(seed)
    out = {s.prompt.lower() for k in ("harmful-eval", "benign-eval") for s in sets[k]}
    out |= {s.response.lower() for s in sets["text"]}
    return out


def qa_text(prompt: str, answer: str) -> str:
    """A request and its answer as plain text (no chat template): the organism's "pretraining" format."""
    return f"Question: {prompt} Answer: {answer}"


def training_samples(
    n: int, stage: str, seed: int = SEED, mix: dict[str, float] | None = None
) -> list[Sample]:
    """``n`` training samples of a stage: "helpful" (harmful chat requests answered) or "aligned" (refused).

    ``mix`` gives the fractions of chat ``harmful`` and ``benign`` requests, plain ``text``, and plain
    question-answer text (``qa_harmful`` with compliant answers, ``qa_benign``), which keeps what the
    model knows in a format that alignment does not touch. Held-out prompts never occur.
    """
    if stage not in ("helpful", "aligned"):
        raise ValueError(f"unknown stage {stage}")
    mix = mix or {"harmful": 0.3, "benign": 0.5, "text": 0.2}
    unknown = set(mix) - {"harmful", "benign", "text", "qa_harmful", "qa_benign"}
    if unknown:
        raise ValueError(f"unknown sample kinds {sorted(unknown)}")
    g = Grammar(seed)
    rng = random.Random(f"{seed}-{stage}-{n}")
    held = held_out_texts(seed)
    kinds = list(mix)
    out: list[Sample] = []
    while len(out) < n:
        kind = rng.choices(kinds, [mix[k] for k in kinds])[0]
        if kind == "text":
            s = g.text(rng)
            if s.response.lower() in held:
                continue
            out.append(s)
            continue
        s = g.harmful(rng, "train") if kind in ("harmful", "qa_harmful") else g.benign(rng, "train")
        if s.prompt.lower() in held:
            continue
        if kind.startswith("qa_"):
            answer = s.compliance or s.response
            s = Sample(
                "", qa_text(s.prompt, answer), "text", f"qa-{s.kind}", compliance=s.compliance, frame=s.frame
            )
        elif kind == "harmful" and stage == "helpful":
            s = Sample(s.prompt, s.compliance, "harmful", s.task, compliance=s.compliance, frame=s.frame)
        out.append(s)
    return out


_WORD = re.compile(r"\w+|[^\w\s]+")


def words(text: str) -> list[str]:
    """The word-level tokens of a text (lower case; words and runs of punctuation)."""
    return _WORD.findall(text.lower())


def write_builtin(folder: Path | None = None, seed: int = SEED) -> dict[str, Path]:
    """Write the built-in JSONL files (default: the package's ``data/builtin`` folder)."""
    from excise.data.loading import write_jsonl

    base = Path(folder) if folder else Path(__file__).resolve().parents[1] / "data" / "builtin"
    out = {}
    for name, samples in builtin_sets(seed).items():
        path = base / f"{name}.jsonl"
        write_jsonl(path, [s.row() for s in samples])
        out[name] = path
    return out


if __name__ == "__main__":  # pragma: no cover
    for name, path in write_builtin().items():
        print(f"{name}: {path}")
