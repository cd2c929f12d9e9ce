"""The feature-purity sweep end to end on a tiny random CLIP saved to disk, and its bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = ("cat", "dog", "bird")


def _excise(argv: list[str]) -> int:
    from excise.cli import _mount_subapps, app, run_app

    _mount_subapps()
    return run_app(app, argv, prog_name="excise")


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from excise.models.clip import tiny_clip

    model, tok = tiny_clip(projection_dim=8)
    path = tmp_path_factory.mktemp("clip") / "tiny-clip"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("images") / "pets"
    g = torch.Generator().manual_seed(0)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(6):
            arr = (torch.rand(8, 8, 3, generator=g) * 80 + 60 * c).clamp(0, 255).to(torch.uint8).numpy()
            Image.fromarray(arr).save(root / name / f"{i}.png")
    return root


def _rows(path: Path) -> list[list[str]]:
    with open(path) as f:
        return list(csv.reader(f))


def test_a_tiny_clip_on_disk_runs_through_the_whole_sweep(
    clip_dir: Path, image_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = [
        "purity",
        str(clip_dir),
        "--data",
        str(image_dir),
        "--kept",
        "2,4,8",
        "--out",
        str(out),
        "--draws",
        "3",
    ]
    rc = _excise([*argv, "--template", "a photo of the {}"])
    assert rc == 0
    acc = _rows(out / "pets_accuracy_vs_kept.csv")
    sil = _rows(out / "pets_silhouette_vs_kept.csv")
    assert acc[0] == ["kept", "model", "full", "min", "max", "random"] == sil[0]
    assert [r[0] for r in acc[1:]] == ["2", "4", "8"]
    for r in acc[1:]:
        assert all(0.0 <= float(x) <= 1.0 for x in r[2:])  # accuracy as a fraction
    # at 8 of 8 features kept, every strategy is the full model
    assert len({r for r in acc[-1][2:]}) == 1 and len({r for r in sil[-1][2:]}) == 1
    for name in (
        "accuracy_vs_kept.png",
        "silhouette_vs_kept.png",
        "min_max_gap.png",
        "ablation_vs_purity.png",
    ):
        assert (out / f"pets_{name}").stat().st_size > 1000
    spread = _rows(out / "pets_random_spread.csv")
    assert spread[0] == ["kept", "metric", "mean", "std", "min", "max", "draws"] and spread[1][-1] == "3"
    # the same run again refuses to overwrite; --legacy-columns writes the research code's header
    assert _excise(argv) == 2
    assert _excise([*argv, "--overwrite", "--legacy-columns"]) == 0
    assert _rows(out / "pets_accuracy_vs_kept.csv")[0] == [
        "sam",
        "Model",
        "Full Features",
        "Min Sparse Features",
        "Max Sparse Features",
    ]


def test_the_accuracy_in_the_csv_is_the_masked_zero_shot_accuracy(clip_dir: Path, image_dir: Path) -> None:
    """The study's numbers, recomputed by hand from the model with the min-strategy features kept."""
    from excise.core import Selection
    from excise.data.images import load_image_folder
    from excise.evaluation.classification import class_embeddings, image_embeddings
    from excise.experiments.types.feature_purity import FeaturePurityConfig, purity_study
    from excise.interventions import keep_features
    from excise.models.clip import load_clip
    from excise.scoring.purity import purity_scores

    cfg = FeaturePurityConfig(
        model=str(clip_dir), data=str(image_dir), kept=[3], random_draws=2, ablation=False
    )
    metrics = purity_study(cfg)
    model, tok = load_clip(clip_dir)
    s = purity_scores({"a": model.visual_projection.weight, "b": model.text_projection.weight})["embedding"]
    keep = torch.zeros(8, dtype=torch.bool)
    keep[s.argsort()[:3]] = True
    data = load_image_folder(image_dir, 8)
    with keep_features(model, Selection({"embedding": keep}, unit="feature")):
        img = image_embeddings(model, data.images)
    cls = class_embeddings(model, tok, data.classes, ["a photo of a {}"])
    top1 = float(((img @ cls.t()).argmax(1) == data.labels).float().mean())
    assert metrics["top1.min.3"] == pytest.approx(top1)
    assert metrics["top1_std.random.3"] >= 0 and metrics["top1_min.random.3"] <= metrics["top1.random.3"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--kept", "0,4"], "between 1 and the feature dimension 8; got [0]"),
        (["--kept", "4,9"], "between 1 and the feature dimension 8; got [9]"),
        (["--kept", "2", "--projection", "visual_proj"], "no projection 'visual_proj'"),
    ],
)
def test_bad_input_is_one_line_before_any_model_work(
    clip_dir: Path,
    image_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    out = tmp_path / "out"
    rc = _excise(["purity", str(clip_dir), "--data", str(image_dir), "--out", str(out), *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.count("\n") == 0 and message in err
    assert not out.exists()


def test_bad_model_and_data_folders(
    clip_dir: Path, image_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from excise.models import tiny_model

    llama, _ = tiny_model("llama")
    llama.save_pretrained(tmp_path / "llama")
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "x.png").write_bytes((image_dir / "cat" / "0.png").read_bytes())
    cases = [
        ([str(tmp_path / "llama"), "--data", str(image_dir)], "not a CLIP-like one"),
        ([str(clip_dir), "--data", str(flat)], "no class sub-folders"),
        ([str(clip_dir), "--data", "cifar"], "unknown image set 'cifar'"),
        (["organism", "--data", "digits"], "not a CLIP-style model"),
    ]
    capsys.readouterr()  # drop save_pretrained's progress bar
    for argv, message in cases:
        rc = _excise(["purity", *argv, "--kept", "2", "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and message in err and "\n" not in err, (argv, err)
        assert not (tmp_path / "o").exists()


def test_mismatched_projection_sizes_in_a_folder(
    tmp_path: Path, image_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from excise.models.clip import tiny_clip

    model, tok = tiny_clip(projection_dim=8)
    with torch.no_grad():
        model.text_projection = torch.nn.Linear(16, 6, bias=False)
    model.save_pretrained(tmp_path / "odd")
    tok.save_pretrained(tmp_path / "odd")
    rc = _excise(
        [
            "purity",
            str(tmp_path / "odd"),
            "--data",
            str(image_dir),
            "--projection",
            "image",
            "--projection",
            "text",
        ]
        + ["--kept", "2", "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "different sizes" in err


def test_report_plots_rebuild_the_csvs_from_run_metrics(tmp_path: Path) -> None:
    import pandas as pd

    from excise.experiments.types.feature_purity import plot_feature_purity

    rows = []
    for k in (2, 4):
        row = {"model": "m", "data": "digits", "kept": str(k)}
        for st, v in (("full", 0.9), ("min", 0.5 + k / 10), ("max", 0.4), ("random", 0.45)):
            row[f"top1.{st}.{k}"] = v
            row[f"silhouette.{st}.{k}"] = v / 2
        row[f"top1_min.random.{k}"], row[f"top1_max.random.{k}"] = 0.4, 0.5
        row[f"silhouette_min.random.{k}"], row[f"silhouette_max.random.{k}"] = 0.2, 0.25
        rows.append(row)
    figs = plot_feature_purity(pd.DataFrame(rows), tmp_path)
    assert len(figs) == 3
    acc = _rows(tmp_path / "m_digits" / "digits_accuracy_vs_kept.csv")
    assert acc == [
        ["kept", "model", "full", "min", "max", "random"],
        ["2", "m", "0.900000", "0.700000", "0.400000", "0.450000"],
        ["4", "m", "0.900000", "0.900000", "0.400000", "0.450000"],
    ]
