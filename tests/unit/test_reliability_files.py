"""Reliability of what excise writes and reads: overrides, names, permissions, locks, corrupt files."""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from excise.config import apply_overrides
from excise.errors import ExciseError, StorageError
from excise.experiments import load_document, parse_experiment_config, run_id_for, run_sweep
from excise.experiments.report import write_report
from excise.experiments.runs import (
    RunLock,
    RunSpec,
    classify,
    execute_run,
    inspect_lock,
    read_status,
    runs_root,
)
from excise.experiments.status import status_lines, sweep_status
from excise.experiments.sweep import ExecutorConfig
from excise.utils import atomic_write_bytes, check_plain_name

# ---------------------------------------------------------------- 11. dotted overrides reach list items


def test_override_addresses_a_list_item_by_index() -> None:
    data = {"decomposition": {"modules": [{"pattern": "a", "C": 2}, {"pattern": "b", "C": 3}]}, "x": 1}
    out = apply_overrides(data, ["decomposition.modules.0.C=4", "decomposition.modules.-1.pattern=z"])
    assert out["decomposition"]["modules"] == [{"pattern": "a", "C": 4}, {"pattern": "z", "C": 3}]
    assert data["decomposition"]["modules"][0]["C"] == 2  # the input is not changed
    lst = apply_overrides({"seeds": [1, 2, 3]}, ["seeds.1=9"])
    assert lst == {"seeds": [1, 9, 3]}


@pytest.mark.parametrize(
    "item, message",
    [
        ("m.2.C=1", "has 2 item"),
        ("m.x.C=1", "is a list"),
        ("x.y=1", "holds the value 1"),
    ],
)
def test_bad_list_overrides_name_the_problem(item: str, message: str) -> None:
    with pytest.raises(ExciseError, match=message):
        apply_overrides({"m": [{"C": 1}, {"C": 2}], "x": 1}, [item])


def test_spd_modules_C_is_reachable_from_overrides() -> None:
    from excise.spd.registry import load_config

    cfg = load_config("tms_5-2", ["decomposition.modules.0.C=4"])
    assert cfg.decomposition.modules[0].C == 4


# ---------------------------------------------------------------- 5. names used in paths


@pytest.mark.parametrize("name", ["quad", "a-b_c.1", "X9", "v1.2.3"])
def test_plain_names_pass(name: str) -> None:
    assert check_plain_name(name) == name


@pytest.mark.parametrize("name", ["../../../escaped", "/abs/dir", ".hidden", "a/b", "", "a b", "x\\y", "é"])
def test_names_that_could_leave_their_folder_are_refused(name: str) -> None:
    with pytest.raises(ExciseError, match="cannot be used in a folder name"):
        check_plain_name(name, "experiment name")


def test_a_document_named_to_escape_is_refused(tmp_path: Path) -> None:
    doc = tmp_path / "evil.yaml"
    doc.write_text(yaml.safe_dump({"name": "../../../escaped", "experiment": {"type": "quadratic"}}))
    with pytest.raises(ExciseError, match="experiment name '../../../escaped'"):
        load_document(str(doc))
    doc.write_text(
        yaml.safe_dump(
            {"name": "ok", "experiment": {"type": "quadratic"}, "sweeps": {"../up": {"points": []}}}
        )
    )
    with pytest.raises(ExciseError, match="sweep mode"):
        load_document(str(doc))


def test_spd_run_id_refuses_a_path_as_name() -> None:
    from excise.spd.registry import load_config, run_id

    cfg = load_config("tms_5-2", ["name=/some/absolute/dir"])
    with pytest.raises(ExciseError, match="SPD experiment name '/some/absolute/dir'"):
        run_id(cfg)


# ---------------------------------------------------------------- 10. permissions follow the umask


@pytest.fixture()
def umask() -> Iterator[Any]:
    old = os.umask(0o022)
    os.umask(old)

    def set_to(mask: int) -> None:
        os.umask(mask)

    yield set_to
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_atomic_writes_get_the_umask_permissions(tmp_path: Path, umask: Any, mask: int) -> None:
    umask(mask)
    path = tmp_path / "f.json"
    atomic_write_bytes(path, b"{}")
    # what a plain open() would have given, computed independently
    with open(tmp_path / "reference", "wb"):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "reference").stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_scores_status_metrics_and_saved_models_follow_the_umask(tmp_path: Path, umask: Any) -> None:
    import torch

    from excise.core import Scores
    from excise.models import save_model, tiny_model

    umask(0o002)
    Scores({"w": torch.ones(2, 2)}).save(tmp_path / "s")
    spec = _spec(tmp_path / "sw", x=1.0)
    assert execute_run(spec) == "done"
    files = [
        tmp_path / "s.safetensors",
        tmp_path / "s.json",
        Path(spec.run_dir) / "status.json",
        Path(spec.run_dir) / "metrics.json",
        Path(spec.run_dir) / "config.yaml",
    ]
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o664, f
    model, tok = tiny_model("llama")
    out = save_model(model, tok, tmp_path / "pruned")
    assert stat.S_IMODE(out.stat().st_mode) == 0o775


# ---------------------------------------------------------------- runs: corrupt files, locks, disks


def _spec(sweep: Path, **fields: Any) -> RunSpec:
    cfg = parse_experiment_config({"type": "quadratic", **fields})
    rid = run_id_for(cfg)
    return RunSpec(
        run_dir=str(runs_root(sweep) / rid),
        run_id=rid,
        type_name="quadratic",
        type_module="excise.experiments.types.quadratic",
        config=cfg.model_dump(mode="json"),
    )


def test_a_non_utf8_config_makes_a_done_run_corrupt_and_it_is_redone(tmp_path: Path) -> None:
    spec = _spec(tmp_path / "sw", x=2.0)
    assert execute_run(spec) == "done"
    cfg = Path(spec.run_dir) / "config.yaml"
    cfg.write_bytes(cfg.read_bytes().replace(b"x: 2.0", b"x: 2.0 # \xff\xfe"))
    st = classify(Path(spec.run_dir))
    assert st.state == "corrupt" and "config.yaml" in (st.problem or "")
    assert execute_run(spec) == "done"
    status = read_status(Path(spec.run_dir)).status
    assert status is not None and status["attempt"] == 2 and "config.yaml" in status["note"]
    assert cfg.read_text(encoding="utf-8") == yaml.safe_dump(spec.config, sort_keys=True)


def test_a_sweep_and_its_report_survive_non_utf8_files(tmp_path: Path) -> None:
    doc = load_document("quadratic")
    out = tmp_path / "sw"
    exe = ExecutorConfig(kind="inprocess")
    assert run_sweep(doc, out, mode="points", executor=exe).ok
    write_report(out)
    (out / "sweep.yaml").write_bytes(b"name: \xff\xfe\n")
    victim = sorted(runs_root(out).iterdir())[0]
    (victim / "config.yaml").write_bytes(b"\xff" + (victim / "config.yaml").read_bytes())
    (victim / "meta.json").write_bytes(b"\xfe{}")
    res = run_sweep(doc, out, mode="points", executor=exe)
    assert res.ok and dict(res.outcomes) == {"done": 1}  # only the corrupt one is redone
    assert yaml.safe_load((out / "sweep.yaml").read_text())["name"] == "quadratic"
    rep = write_report(out)
    assert rep.rows == 3 and "quadratic" in rep.html.read_text()


def test_a_deleted_status_of_a_finished_run_shows_as_corrupt(tmp_path: Path) -> None:
    doc = load_document("quadratic")
    out = tmp_path / "sw"
    assert run_sweep(doc, out, mode="points", executor=ExecutorConfig(kind="inprocess")).ok
    victim = sorted(runs_root(out).iterdir())[0]
    (victim / "status.json").unlink()
    assert classify(victim).state == "corrupt"
    text = "\n".join(status_lines(sweep_status(out)))
    assert "1 with a corrupt record" in text
    assert victim.name in text and "status.json is missing" in text


def test_a_failed_lock_write_leaves_no_lock_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    lock = RunLock(run_dir)
    with pytest.raises(OSError, match="No space left"):
        lock.acquire()
    monkeypatch.setattr(os, "write", real_write)
    assert list(run_dir.iterdir()) == []
    assert RunLock(run_dir).acquire()  # nobody waits on a leftover


def test_an_empty_lock_is_stale_after_a_short_grace(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "lock").write_bytes(b"")
    assert not inspect_lock(run_dir / "lock").stale  # just created: its writer may be about to write
    old = time.time() - 5
    os.utime(run_dir / "lock", (old, old))
    assert inspect_lock(run_dir / "lock").stale
    assert classify(run_dir).state == "pending"
    assert RunLock(run_dir).acquire()


def test_a_full_disk_during_a_run_hands_it_back_and_raises_storage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import excise.utils as U

    spec = _spec(tmp_path / "sw", x=3.0)
    real = U.atomic_write_bytes

    def refuse_metrics(path: Path, data: bytes) -> None:
        if Path(path).name == "metrics.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(U, "atomic_write_bytes", refuse_metrics)
    with pytest.raises(StorageError, match="No space left on device") as info:
        execute_run(spec)
    assert spec.run_dir in str(info.value) and info.value.exit_code == 1
    run_dir = Path(spec.run_dir)
    assert not (run_dir / "lock").exists() and not (run_dir / "metrics.json").exists()
    assert classify(run_dir).state == "pending"
    monkeypatch.setattr(U, "atomic_write_bytes", real)
    assert execute_run(spec) == "done"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["exact"] == pytest.approx((3.0 - 1) ** 2 + (0.0 + 2) ** 2)


# ---------------------------------------------------------------- 4. a report: all or nothing


def test_a_report_that_fails_halfway_leaves_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import excise.experiments.report as R

    doc = load_document("quadratic")
    out = tmp_path / "sw"
    assert run_sweep(doc, out, mode="points", executor=ExecutorConfig(kind="inprocess")).ok
    rep = write_report(out)
    before = {p.relative_to(out): p.read_bytes() for p in rep.out_dir.rglob("*") if p.is_file()}
    assert run_sweep(doc, out, mode="grid", executor=ExecutorConfig(kind="inprocess")).ok

    def broken(*a: Any, **k: Any) -> str:
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(R, "render_html", broken)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        write_report(out)
    after = {p.relative_to(out): p.read_bytes() for p in rep.out_dir.rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    monkeypatch.undo()
    rep2 = write_report(out)
    grid = {(x, y) for x in (-1.0, 0.0, 1.0, 2.0) for y in (-3.0, -2.0, 0.0)}
    points = {(1.0, -2.0), (0.0, 0.0), (3.0, 1.0)}
    assert rep2.rows == len(grid | points) and (rep2.out_dir / "index.html").is_file()
    assert all(Path(f.path).is_file() and rep2.out_dir in Path(f.path).parents for f in rep2.figures)


# ---------------------------------------------------------------- 9. data files


def test_csv_with_a_byte_order_mark(tmp_path: Path) -> None:
    from excise.data import load_examples

    path = tmp_path / "adv.csv"
    path.write_bytes("\ufeffprompt,response\nhow to pick a lock,I can't help\n".encode())
    ex = load_examples(path)
    assert [(e.prompt, e.response) for e in ex] == [("how to pick a lock", "I can't help")]


def test_an_empty_response_is_refused_naming_the_line(tmp_path: Path) -> None:
    from excise.data import load_examples

    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "a", "response": "b"}\n\n{"prompt": "c", "response": ""}\n')
    with pytest.raises(ExciseError, match=r"d\.jsonl:3: 'response' is empty"):
        load_examples(path)
    path.write_text('{"prompt": "a"}\n')
    assert load_examples(path)[0].response is None  # no field at all: prompt-only, as documented


def test_a_too_long_prompt_names_its_file_and_line(tmp_path: Path) -> None:
    from excise.data import encode, load_examples
    from excise.models import tiny_model

    _, tok = tiny_model("llama")
    path = tmp_path / "d.jsonl"
    path.write_text(
        json.dumps({"prompt": "short", "response": "ok"})
        + "\n"
        + json.dumps({"prompt": "x " * 400, "response": "ok"})
        + "\n"
    )
    with pytest.raises(ExciseError, match=r"d\.jsonl:2: a prompt is \d+ tokens long"):
        encode(tok, load_examples(path), max_length=64)


def test_run_sweep_refuses_a_document_built_in_code_with_a_path_as_name(tmp_path: Path) -> None:
    from excise.experiments import ExperimentDocument

    doc = ExperimentDocument(name="../../escaped", experiment={"type": "quadratic"})
    with pytest.raises(ExciseError, match="experiment name '../../escaped'"):
        run_sweep(doc, tmp_path / "sw", executor=ExecutorConfig(kind="inprocess"))
    assert list(tmp_path.iterdir()) == []
