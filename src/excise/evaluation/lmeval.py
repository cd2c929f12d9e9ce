"""Zero-shot multiple-choice accuracy: lm-evaluation-harness on the in-memory model, and a lighter
evaluator of our own that scores the same way.

Tasks come from local files only (no hub). A *task file* is JSONL, one document per line:
``{"context": str, "choices": [str, ...], "gold": int}`` (``query``/``question`` are accepted for
``context``, ``answer``/``label`` for ``gold``); its task name is the file's stem. The project ships
two (``TASKS``): ``organism-skills`` (the organism's benign skills: arithmetic, capitals, colours,
opposites, ... with distractors of the same skill) and ``smollm2-commonsense`` (ARC/HellaSwag-style
questions written for this project). A user passes task files, folders of them, or folders of
lm-eval task YAML files (used by lm-eval as they are).

Scoring (both evaluators, as lm-eval's ``multiple_choice``): the continuation is
``target_delimiter + choice`` (a space); log-likelihood = sum of log p(continuation tokens |
context), the context's trailing spaces moved to the continuation, the continuation's tokens taken
from the encoding of the whole text; ``acc`` = argmax of the log-likelihoods == gold, ``acc_norm`` =
argmax of log-likelihood / len(choice).
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from excise.errors import ExciseError

TASKS_DIR = Path(__file__).parent / "tasks"
TASKS = ("organism-skills", "smollm2-commonsense")
DELIMITER = " "


@dataclass(frozen=True)
class MCDoc:
    """One multiple-choice question: context, choices, index of the right choice."""

    context: str
    choices: tuple[str, ...]
    gold: int


@dataclass(frozen=True)
class MCTask:
    """A named list of multiple-choice documents read from one JSONL file."""

    name: str
    docs: tuple[MCDoc, ...]
    path: Path


def _field(row: dict[str, Any], names: Sequence[str]) -> Any:
    for n in names:
        if n in row:
            return row[n]
    return None


def load_task(path: str | Path, name: str | None = None) -> MCTask:
    """Read a JSONL task file; every line needs context, choices (>= 2 strings) and gold (an index)."""
    p = Path(path)
    if not p.is_file():
        raise ExciseError(
            f"task file not found: {p} (pass a .jsonl file, a folder, or one of {', '.join(TASKS)})"
        )
    docs = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{p}:{i}"
        try:
            row = json.loads(line)
        except ValueError as err:
            raise ExciseError(f"{where}: not valid JSON ({err})") from None
        if not isinstance(row, dict):
            raise ExciseError(f"{where}: a task line must be an object with context, choices and gold")
        ctx, choices, gold = (
            _field(row, ("context", "query", "question")),
            row.get("choices"),
            _field(row, ("gold", "answer", "label")),
        )
        missing = [n for n, v in (("context", ctx), ("choices", choices), ("gold", gold)) if v is None]
        if missing:
            raise ExciseError(
                f"{where}: missing field(s) {', '.join(missing)}; a task line needs "
                '{"context": str, "choices": [str, ...], "gold": int}'
            )
        if not isinstance(ctx, str) or not ctx.strip():
            raise ExciseError(f"{where}: 'context' must be a non-empty string")
        if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) for c in choices):
            raise ExciseError(f"{where}: 'choices' must be a list of at least 2 strings")
        if isinstance(gold, bool) or not isinstance(gold, int) or not 0 <= gold < len(choices):
            raise ExciseError(
                f"{where}: 'gold' must be an index into choices (0..{len(choices) - 1}), got {gold!r}"
            )
        docs.append(MCDoc(ctx, tuple(choices), gold))
    if not docs:
        raise ExciseError(f"task file {p} has no documents")
    return MCTask(name or p.stem, tuple(docs), p)


def resolve_tasks(tasks: Sequence[str | Path]) -> tuple[list[MCTask], list[Path], list[str]]:
    """(JSONL tasks, lm-eval YAML folders, lm-eval task names from those folders), checked up front.

    Each entry is a shipped task name, a JSONL file, or a folder (its ``*.jsonl`` files are tasks,
    and if it holds ``*.yaml`` files it is an lm-eval include path whose ``task:`` names are run).
    """
    out: list[MCTask] = []
    yaml_dirs: list[Path] = []
    yaml_names: list[str] = []
    if not tasks:
        raise ExciseError(f"no tasks given; pass task files, folders, or the shipped {', '.join(TASKS)}")
    for t in tasks:
        s = str(t)
        if s in TASKS:
            out.append(load_task(TASKS_DIR / f"{s}.jsonl"))
            continue
        p = Path(s)
        if p.is_file() and p.suffix == ".jsonl":
            out.append(load_task(p))
        elif p.is_dir():
            files = sorted(p.glob("*.jsonl"))
            yamls = sorted([*p.glob("*.yaml"), *p.glob("*.yml")])
            if not files and not yamls:
                raise ExciseError(f"task folder {p} holds no .jsonl task files and no lm-eval .yaml files")
            out.extend(load_task(f) for f in files)
            if yamls:
                yaml_dirs.append(p)
                yaml_names.extend(_yaml_task_names(yamls))
        else:
            raise ExciseError(
                f"unknown task '{s}': not a shipped task ({', '.join(TASKS)}), a .jsonl file or a folder"
            )
    names = [t.name for t in out] + yaml_names
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ExciseError(f"task names must be unique, got {dup} more than once (rename a file)")
    return out, yaml_dirs, yaml_names


def _yaml_task_names(paths: Sequence[Path]) -> list[str]:
    import yaml

    names = []
    for p in paths:
        try:
            doc = yaml.load(p.read_text(encoding="utf-8"), Loader=_LenientLoader)
        except Exception as err:  # noqa: BLE001 - any YAML error is a bad task file
            raise ExciseError(f"cannot read lm-eval task file {p}: {err}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("task"), str):
            raise ExciseError(f"lm-eval task file {p} has no 'task: NAME' entry")
        names.append(doc["task"])
    return names


def _lenient_loader() -> Any:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    # lm-eval YAML may use "!function module.fn"; keep it as a string to read the task name
    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return Loader


_LenientLoader = _lenient_loader()


# ------------------------------------------------------------------- our own evaluator


def _bos_text(tokenizer: Any) -> str | None:
    tid = getattr(tokenizer, "bos_token_id", None)
    if tid is None:
        tid = getattr(tokenizer, "eos_token_id", None)
    return None if tid is None else tokenizer.decode([tid])


def _encode(tokenizer: Any, text: str) -> list[int]:
    """As lm-eval's HFLM.tok_encode: the tokenizer's default special tokens unless text starts with BOS."""
    bos = _bos_text(tokenizer)
    if bos and text.startswith(bos):
        return list(tokenizer.encode(text, add_special_tokens=False))
    return list(tokenizer.encode(text))


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Context and continuation ids: trailing spaces of the context go to the continuation."""
    n = len(context) - len(context.rstrip())
    if n:
        continuation = context[-n:] + continuation
        context = context[:-n]
    whole = _encode(tokenizer, context + continuation)
    ctx = _encode(tokenizer, context)
    return ctx, whole[len(ctx) :]


@torch.no_grad()
def choice_loglikelihoods(
    model: nn.Module, tokenizer: Any, doc: MCDoc, max_length: int | None = None
) -> list[float]:
    """Sum of log p(choice tokens | context) for every choice (one padded batch per document)."""
    from excise.data import context_length
    from excise.scoring.base import input_device

    limit = max_length or context_length(model) or 2048
    seqs, spans = [], []
    for c in doc.choices:
        ctx, cont = encode_pair(tokenizer, doc.context, DELIMITER + c)
        if not cont:
            raise ExciseError(f"choice {c!r} encodes to no tokens; a choice must be non-empty text")
        full = (ctx + cont)[-(limit + 1) :]
        seqs.append(full[:-1])
        spans.append((len(full) - 1 - len(cont), cont))
    width = max(len(s) for s in seqs)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    att = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        att[i, : len(s)] = 1
    dev = input_device(model)
    logits = model(input_ids=ids.to(dev), attention_mask=att.to(dev), use_cache=False).logits
    logp = torch.log_softmax(logits.float(), -1)
    out = []
    for i, (start, cont) in enumerate(spans):
        pos = torch.arange(start, start + len(cont), device=logp.device)
        tgt = torch.tensor(cont, device=logp.device)
        out.append(float(logp[i, pos, tgt].sum()))
    return out


def mc_accuracy(model: nn.Module, tokenizer: Any, task: MCTask, limit: int | None = None) -> dict[str, Any]:
    """Our multiple-choice evaluator: acc and acc_norm (as lm-eval) with the per-document log-likelihoods."""
    from excise.scoring.base import eval_mode
    from excise.utils import progress

    docs = task.docs[:limit] if limit else task.docs
    acc = norm = 0
    lls = []
    with eval_mode(model):
        for doc in progress(docs, desc=f"mc {task.name}", total=len(docs)):
            ll = choice_loglikelihoods(model, tokenizer, doc)
            lls.append(ll)
            t = torch.tensor(ll, dtype=torch.float64)
            lens = torch.tensor([float(len(c)) for c in doc.choices], dtype=torch.float64)
            acc += int(int(torch.argmax(t)) == doc.gold)
            norm += int(int(torch.argmax(t / lens)) == doc.gold)
    n = len(docs)
    return {"task": task.name, "n": n, "acc": acc / n, "acc_norm": norm / n, "loglikelihoods": lls}


def evaluate_mc(
    model: nn.Module, tokenizer: Any, tasks: Sequence[str | Path], limit: int | None = None
) -> dict[str, dict[str, float]]:
    """{task: {acc, acc_norm, n}} with our evaluator on shipped or local JSONL tasks."""
    found, yaml_dirs, _ = resolve_tasks(tasks)
    if yaml_dirs:
        raise ExciseError(
            f"lm-eval YAML task folders ({', '.join(map(str, yaml_dirs))}) need lm-eval; use evaluate_lmeval"
        )
    res = {}
    for t in found:
        r = mc_accuracy(model, tokenizer, t, limit)
        res[t.name] = {"acc": r["acc"], "acc_norm": r["acc_norm"], "n": r["n"]}
    return res


# ------------------------------------------------------------------- lm-evaluation-harness


def require_lmeval() -> None:
    """ExciseError naming the extra when lm-evaluation-harness is not installed."""
    if importlib.util.find_spec("lm_eval") is None:
        raise ExciseError(
            "lm-evaluation-harness is not installed; install the extra: pip install 'excise[lmeval]' "
            "(lm-eval >= 0.4.10), or use the built-in evaluator (excise lmeval --evaluator excise)"
        )


def task_yaml(task: MCTask, name: str | None = None) -> str:
    """An lm-eval task definition reading ``task.path`` as a local JSON data set (no hub)."""
    import yaml

    body = {
        "task": name or task.name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(task.path.resolve())}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{" + _context_key(task) + "}}",
        "doc_to_choice": "choices",
        "doc_to_target": _gold_key(task),
        "target_delimiter": DELIMITER,
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {"version": 1.0},
    }
    return yaml.safe_dump(body, sort_keys=False)


def _first_row(task: MCTask) -> dict[str, Any]:
    for line in task.path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            return json.loads(line)
    return {}


def _context_key(task: MCTask) -> str:
    row = _first_row(task)
    return next(k for k in ("context", "query", "question") if k in row)


def _gold_key(task: MCTask) -> str:
    row = _first_row(task)
    return next(k for k in ("gold", "answer", "label") if k in row)


def evaluate_lmeval(
    model: nn.Module,
    tokenizer: Any,
    tasks: Sequence[str | Path],
    limit: int | None = None,
    batch_size: int = 8,
    log_samples: bool = False,
) -> dict[str, Any]:
    """lm-eval's ``simple_evaluate`` on the in-memory model (``HFLM(pretrained=model, tokenizer=tok)``).

    Returns {task: {acc, acc_norm, n}} and, with ``log_samples``, ``"_samples"``: lm-eval's per-document
    records. Only local tasks (shipped names, JSONL files, YAML folders); the hub is never asked.
    """
    require_lmeval()
    found, yaml_dirs, yaml_names = resolve_tasks(tasks)
    import logging

    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory(prefix="excise-lmeval-") as tmp:
        for t in found:
            (Path(tmp) / f"{t.name}.yaml").write_text(task_yaml(t), encoding="utf-8")
        tm = TaskManager(include_path=[tmp, *map(str, yaml_dirs)], include_defaults=False, verbosity="ERROR")
        names = [t.name for t in found] + yaml_names
        unknown = [n for n in names if n not in tm.all_tasks]
        if unknown:
            raise ExciseError(f"lm-eval did not find the task(s) {unknown} in the given folders")
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        logging.getLogger("lm_eval").setLevel(logging.ERROR)
        res = simple_evaluate(
            model=lm,
            tasks=names,
            task_manager=tm,
            limit=limit,
            log_samples=log_samples,
            bootstrap_iters=0,
            random_seed=0,
            numpy_random_seed=0,
            torch_random_seed=0,
        )
    if res is None:
        raise ExciseError("lm-eval returned no results (is this a non-main process of a distributed run?)")
    out: dict[str, Any] = {}
    for n in names:
        r = res["results"][n]
        out[n] = {
            "acc": float(r["acc,none"]),
            "acc_norm": float(r.get("acc_norm,none", float("nan"))),
            "n": int(res.get("n-samples", {}).get(n, {}).get("effective", 0)),
        }
    if log_samples:
        out["_samples"] = res.get("samples", {})
    return out


def evaluate_tasks(
    model: nn.Module,
    tokenizer: Any,
    tasks: Sequence[str | Path],
    evaluator: str = "excise",
    limit: int | None = None,
) -> dict[str, dict[str, float]]:
    """Zero-shot accuracy with ``evaluator`` 'excise' (ours) or 'lm-eval'."""
    if evaluator == "excise":
        return evaluate_mc(model, tokenizer, tasks, limit)
    if evaluator == "lm-eval":
        res = evaluate_lmeval(model, tokenizer, tasks, limit)
        return {k: v for k, v in res.items() if not k.startswith("_")}
    raise ExciseError(f"unknown evaluator '{evaluator}'; choose 'excise' or 'lm-eval'")
