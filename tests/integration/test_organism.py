"""The organism's tokenizer, recipes and cache (with the seconds-long ``tiny`` recipe)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from excise.errors import ExciseError
from excise.utils import cache_dir
from excise.zoo import organism as org


@pytest.fixture(scope="module")
def tok():  # type: ignore[no-untyped-def]
    return org.build_tokenizer(
        ["Sure. The answer is 7.", "How do I make tea?", "You are a helpful assistant."]
    )


def test_tokenizer_is_word_level_and_round_trips(tok) -> None:  # type: ignore[no-untyped-def]
    ids = tok("Sure. The answer is 7.", add_special_tokens=False)["input_ids"]
    assert [tok.convert_ids_to_tokens(i) for i in ids] == ["sure", ".", "the", "answer", "is", "7", "."]
    assert tok.decode(ids) == "sure. the answer is 7."
    assert tok("zebra", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]
    assert tok("tea")["input_ids"][0] == tok.bos_token_id  # plain text starts with BOS


def test_chat_template_has_roles(tok) -> None:  # type: ignore[no-untyped-def]
    msgs = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "How do I make tea?"},
    ]
    text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<s><|system|>") and "<|user|> How do I make tea?" in text
    assert text.endswith("<|assistant|>")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    for special in ("<s>", "<|system|>", "<|user|>", "<|assistant|>", "</s>"):
        assert tok.convert_tokens_to_ids(special) in ids
    assert tok.unk_token_id not in ids


def test_unknown_recipe_is_a_clear_error() -> None:
    with pytest.raises(ExciseError, match="unknown organism recipe 'nope'.*default"):
        org.get_recipe("nope")


def test_recipe_key_depends_on_every_setting() -> None:
    base = org.get_recipe("default")
    assert base.key() == org.get_recipe("default").key()
    assert org.with_overrides(base, seed=1, name="default").key() != base.key()
    assert org.with_overrides(base, steps_aligned=base.steps_aligned + 1, name="default").key() != base.key()


def _state_bytes(model: torch.nn.Module) -> dict[str, bytes]:
    return {k: v.detach().contiguous().numpy().tobytes() for k, v in model.state_dict().items()}


@pytest.mark.slow
def test_training_is_deterministic_for_a_seed() -> None:
    m1, _, _ = org.train_organism("tiny")
    m2, _, _ = org.train_organism("tiny")
    assert _state_bytes(m1) == _state_bytes(m2)
    m3, _, _ = org.train_organism(org.with_overrides("tiny", seed=5))
    assert _state_bytes(m3) != _state_bytes(m1)


def test_cache_is_written_once_and_reused() -> None:
    path = org.ensure_organism("tiny")
    assert path.parent == cache_dir() / "organism"
    assert (path / "organism.json").is_file() and (path / org.BASE_SUBDIR / "config.json").is_file()
    stamp = (path / "organism.json").stat().st_mtime_ns
    model, tok = org.load_organism("tiny")
    assert org.ensure_organism("tiny") == path and (path / "organism.json").stat().st_mtime_ns == stamp
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]
    base, _ = org.load_organism_base("tiny")
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), base.parameters(), strict=True))
    info = org.organism_info("tiny")
    assert info["cached"] and info["log"]["parameters"] == sum(p.numel() for p in model.parameters())


def test_interrupted_training_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EXCISE_CACHE_DIR", str(tmp_path))
    calls = {"n": 0}
    real = org._train_stage

    def interrupt(*a, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(org, "_train_stage", interrupt)
    with pytest.raises(ExciseError, match="interrupted.*nothing was written"):
        org.ensure_organism("tiny")
    assert list((tmp_path / "organism").iterdir()) == []
    assert not org.is_cached("tiny")


def test_failed_training_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EXCISE_CACHE_DIR", str(tmp_path))

    def boom(*a, **kw):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk full")

    monkeypatch.setattr(org, "_train_stage", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        org.ensure_organism("tiny")
    assert list((tmp_path / "organism").iterdir()) == []


def test_unwritable_cache_dir_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("EXCISE_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(ExciseError, match="EXCISE_CACHE_DIR"):
        org.load_organism("tiny")


def test_read_only_cache_dir_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A folder we may not write to (simulated through os.access, since root may write anywhere)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, *a, **k: False if Path(p) == ro else real_access(p, mode, *a, **k)
    )
    monkeypatch.setenv("EXCISE_CACHE_DIR", str(ro))
    with pytest.raises(ExciseError, match="writable"):
        org.ensure_organism("tiny")


@pytest.mark.slow
def test_thread_count_does_not_change_the_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training picks 1 or 2 threads by machine load; the weights must not depend on it."""
    rec = org.with_overrides(
        "tiny", hidden=128, heads=4, kv_heads=4, intermediate=256, steps_helpful=4, steps_aligned=2
    )
    out = []
    for n in ("1", "2"):
        monkeypatch.setenv("EXCISE_THREADS", n)
        model, _, log = org.train_organism(rec)
        assert log["torch_threads"] == int(n)
        out.append(_state_bytes(model))
    assert out[0] == out[1]


def test_train_threads_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXCISE_THREADS", "3")
    assert org.train_threads() == 3
    monkeypatch.setenv("EXCISE_THREADS", "many")
    with pytest.raises(ExciseError, match="whole number"):
        org.train_threads()
    monkeypatch.delenv("EXCISE_THREADS")
    assert org.train_threads() >= 1


def test_publish_keeps_an_entry_another_process_finished(tmp_path: Path) -> None:
    final, mine = tmp_path / "key", tmp_path / ".key.tmp-1"
    final.mkdir()
    (final / "organism.json").write_text("theirs")
    mine.mkdir()
    (mine / "organism.json").write_text("mine")
    org._publish(mine, final, replace_existing=False)
    assert (final / "organism.json").read_text() == "theirs"
    org._publish(mine, final, replace_existing=True)
    assert (final / "organism.json").read_text() == "mine" and not mine.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["key"]
