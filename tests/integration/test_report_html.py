"""The static HTML report, loaded in headless Chromium: it renders, shows the table and every image."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from excise.experiments import ExecutorConfig, load_document, run_sweep, write_report

pytestmark = pytest.mark.slow

INSTALL = "apt-get update && apt-get install -y chromium"


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        msg = f"headless Chromium is needed for this test; install it with: {INSTALL}"
        if os.environ.get("CI") or os.environ.get("EXCISE_REQUIRE_CHROMIUM"):
            pytest.fail(msg)
        pytest.skip(msg)
    return exe


def _dump_dom(exe: str, page: Path, profile: Path) -> str:
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def _fake_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The safety study replaced by a closed form of (p, q) (the type's report still runs on it)."""

    def safety_study(cfg: Any, **kw: Any) -> dict[str, Any]:
        p, q = cfg.p, cfg.q
        row = {
            "asr": min(1.0, 6 * q / (1 + 4 * p)),
            "benign_accuracy": 1 - p / 3,
            "perplexity": 2 + q,
            "removed": q * (1 - p),
        }
        return {
            "model": cfg.model,
            "method": cfg.method,
            "p": p,
            "q": q,
            **row,
            "rows": {"set_difference": row},
        }

    monkeypatch.setattr("excise.pipeline.safety_study", safety_study)


def test_report_page_renders_table_and_every_image_in_chromium(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exe = _chromium()
    _fake_pipeline(monkeypatch)
    out = tmp_path / "sweep"
    inproc = ExecutorConfig(kind="inprocess")
    run_sweep(load_document("safety-neurons"), out, mode="grid", executor=inproc)
    run_sweep(load_document("quadratic", ["fail=true"]), out, mode="points", executor=inproc)
    run_sweep(load_document("quadratic"), out, mode="points", executor=inproc)
    rep = write_report(out)
    assert rep.rows == 35 + 3 + 3 and not rep.warnings
    assert len(rep.figures) == 4  # three for the safety study, one for quadratic

    dom = _dump_dom(exe, rep.html, tmp_path / "profile")
    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None, dom[:500]
    assert 'data-report-ready="true"' in body.group(1), "the page's load handler did not run"
    assert 'data-images-loaded="4/4"' in body.group(1), body.group(1)
    table = re.search(r'<table class="results" id="results">(.*?)</table>', dom, re.S)
    assert table is not None
    assert table.group(1).count("<tr") == 1 + rep.rows
    assert table.group(1).count(">failed<") == 3
    srcs = re.findall(r'<img class="plot" src="([^"]+)"', dom)
    assert len(srcs) == 4
    import matplotlib.image as mpimg

    for src in srcs:
        img = mpimg.imread(rep.html.parent / src)
        assert img.shape[0] > 50 and img.shape[1] > 50 and img.std() > 0
