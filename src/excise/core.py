"""The two core types: ``Scores`` (float32 importance per unit) and ``Selection`` (boolean).

Both map a parameter or site name to a CPU tensor, carry the ``unit`` kind and a ``meta``
dict, and are saved as safetensors plus a JSON sidecar. ``Scores`` may carry named companion
tensors in the same file (a basis per matrix for ``rank``, distances for ``head``); the sidecar
says what each companion is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from excise.errors import ExciseError
from excise.utils import atomic_write_bytes, atomic_write_json

UNITS = ("weight", "neuron", "rank", "head", "feature", "subcomponent")


def _check_unit(unit: str) -> str:
    if unit not in UNITS:
        raise ExciseError(f"unknown unit kind '{unit}'; expected one of {', '.join(UNITS)}")
    return unit


def require_unit(obj: Any, allowed: str | tuple[str, ...], what: str) -> None:
    """ExciseError naming both unit kinds when ``obj.unit`` is not one ``what`` accepts."""
    allowed = (allowed,) if isinstance(allowed, str) else allowed
    unit = getattr(obj, "unit", None)
    if unit not in allowed:
        kind = getattr(obj, "kind", "input")
        raise ExciseError(
            f"{what} takes {kind} of unit {' or '.join(repr(u) for u in allowed)}, got unit '{unit}' "
            f"(use a {'/'.join(allowed)}-level method or rule for this step)"
        )


COMPANION_SEP = "::"


def _paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")  # "top0.01" keeps its dot


@dataclass
class _TensorMap(Mapping[str, torch.Tensor]):
    tensors: dict[str, torch.Tensor]
    unit: str = "weight"
    meta: dict[str, Any] = field(default_factory=dict)
    companions: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    companion_doc: dict[str, str] = field(default_factory=dict)

    kind = "tensors"

    def __post_init__(self) -> None:
        _check_unit(self.unit)
        bad = [k for k in list(self.tensors) + list(self.companions) if COMPANION_SEP in k]
        if bad:
            raise ExciseError(f"tensor names may not contain '{COMPANION_SEP}': {bad[:3]}")
        missing = [c for c in self.companions if c not in self.companion_doc]
        if missing:
            raise ExciseError(f"companion tensors need a description: {missing}")

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.tensors[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def numel(self) -> int:
        return sum(t.numel() for t in self.tensors.values())

    def save(self, path: str | Path) -> Path:
        """Write ``path.safetensors`` and ``path.json`` atomically; returns the tensor file."""
        tpath, jpath = _paths(path)
        flat = {k: v.contiguous() for k, v in self.tensors.items()}
        for cname, group in self.companions.items():
            flat.update({f"{cname}{COMPANION_SEP}{k}": v.contiguous() for k, v in group.items()})
        blob = save(flat)
        atomic_write_bytes(tpath, blob)
        side: dict[str, Any] = {"kind": self.kind, "unit": self.unit, "meta": self.meta}
        if self.companions:
            side["companions"] = dict(self.companion_doc)
        atomic_write_json(jpath, side)
        return tpath

    @staticmethod
    def _split_companions(
        flat: dict[str, torch.Tensor],
    ) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, torch.Tensor]]]:
        main: dict[str, torch.Tensor] = {}
        comps: dict[str, dict[str, torch.Tensor]] = {}
        for k, v in flat.items():
            if COMPANION_SEP in k:
                cname, key = k.split(COMPANION_SEP, 1)
                comps.setdefault(cname, {})[key] = v
            else:
                main[k] = v
        return main, comps

    @classmethod
    def _load_parts(cls, path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tpath, jpath = _paths(path)
        if not tpath.is_file():
            raise ExciseError(f"{cls.kind} file not found: {tpath} (pass the path written by 'save')")
        if not jpath.is_file():
            raise ExciseError(f"sidecar not found: {jpath} (it is written next to the .safetensors file)")
        try:
            side = json.loads(jpath.read_text())
            tensors = load_file(str(tpath))
        except Exception as err:  # noqa: BLE001 - any parse failure means a corrupt file
            raise ExciseError(f"cannot read {tpath}: {err} (the file is corrupt; recompute it)") from None
        if side.get("kind") != cls.kind:
            raise ExciseError(f"{tpath} holds '{side.get('kind')}', not {cls.kind}")
        return tensors, side


class Scores(_TensorMap):
    """Importance per unit: float32 on CPU, higher = more important (never negated on disk)."""

    kind = "scores"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.tensors = {k: v.detach().to("cpu", torch.float32) for k, v in self.tensors.items()}
        self.companions = {
            c: {k: v.detach().to("cpu") for k, v in g.items()} for c, g in self.companions.items()
        }

    @classmethod
    def load(cls, path: str | Path) -> Scores:
        flat, side = cls._load_parts(path)
        tensors, comps = cls._split_companions(flat)
        docs = side.get("companions") or {}
        if set(comps) != set(docs):
            raise ExciseError(
                f"{_paths(path)[0]}: companion tensors {sorted(comps)} do not match the sidecar's "
                f"{sorted(docs)} (the files are from different runs; recompute them)"
            )
        return cls(
            tensors, unit=side["unit"], meta=side.get("meta", {}), companions=comps, companion_doc=docs
        )


class Selection(_TensorMap):
    """A boolean choice of units with the same keys as the ``Scores`` it came from."""

    kind = "selection"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.tensors = {k: v.detach().to("cpu", torch.bool) for k, v in self.tensors.items()}

    @classmethod
    def load(cls, path: str | Path) -> Selection:
        tensors, side = cls._load_parts(path)
        return cls(tensors, unit=side["unit"], meta=side.get("meta", {}))

    def count(self) -> int:
        return int(sum(int(t.sum()) for t in self.tensors.values()))

    def fraction(self) -> float:
        n = self.numel()
        return self.count() / n if n else 0.0
