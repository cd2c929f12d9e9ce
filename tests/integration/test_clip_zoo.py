"""The built-in CLIP models trained offline (slow): zero-shot on held-out images with unseen caption
templates, purity logged per epoch, and ``excise purity`` on each built-in model."""

from __future__ import annotations

import csv
import json

import pytest
import torch

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def _excise(argv: list[str]) -> int:
    from excise.cli import _mount_subapps, app, run_app

    _mount_subapps()
    return run_app(app, argv, prog_name="excise")


def test_digits_clip_reaches_90_percent_zero_shot_with_unseen_templates() -> None:
    from excise.evaluation.classification import evaluate_zero_shot
    from excise.models import load_model
    from excise.zoo.clip import DIGIT_TEST_TEMPLATES, DIGIT_TRAIN_TEMPLATES, clip_dir, eval_set

    model, tok = load_model("digits-clip")  # trains into the session cache on first use
    data = eval_set("digits")
    assert not set(data.templates) & set(DIGIT_TRAIN_TEMPLATES) and data.templates == list(
        DIGIT_TEST_TEMPLATES
    )
    from sklearn.datasets import load_digits

    counts = torch.bincount(torch.from_numpy(load_digits().target))
    assert len(data) == sum(round(0.3 * int(n)) for n in counts)  # the held-out 30% of each class
    acc = evaluate_zero_shot(model, tok, data)
    assert acc["top1"] >= 0.90, acc
    log = json.loads((clip_dir("digits-clip") / "clip.json").read_text())
    assert len(log["epochs"]) == log["recipe"]["epochs"]
    assert {"image.mean_abs_cos", "image.max_abs_cos", "text.median_abs_cos", "score_mean"} <= set(
        log["epochs"][0]
    )
    assert (clip_dir("digits-clip") / "purity_training.png").stat().st_size > 1000
    # the cached model is the model whose accuracy was logged
    assert log["zero_shot"]["top1"] == pytest.approx(acc["top1"], abs=1e-6)


def test_shapes_clip_composes_held_out_combinations_above_chance() -> None:
    from excise.evaluation.classification import evaluate_zero_shot
    from excise.models import load_model
    from excise.zoo import shapes as S
    from excise.zoo.clip import eval_set

    model, tok = load_model("shapes-clip")
    test = eval_set("shapes")
    held = {S.class_index(s, c) for s, c in S.HELD_OUT}
    assert set(test.labels.unique().tolist()) == held  # only combinations never seen in training
    acc = evaluate_zero_shot(model, tok, test)
    seen = evaluate_zero_shot(model, tok, eval_set("shapes-seen"))
    # 16 classes: chance is 1/16; the seen combinations are the easier, in-distribution check
    assert acc["top1"] > 2 / 16, acc
    assert seen["top1"] > 0.7, seen
    # the shape and the colour of a held-out image are each mostly right
    with torch.no_grad():
        from excise.evaluation.classification import class_embeddings, image_embeddings

        pred = (
            image_embeddings(model, test.images)
            @ class_embeddings(model, tok, test.classes, test.templates).t()
        ).argmax(1)
    names = [test.classes[i].split() for i in pred.tolist()]
    truth = [test.classes[i].split() for i in test.labels.tolist()]
    colour_ok = sum(p[0] == t[0] for p, t in zip(names, truth, strict=True)) / len(names)
    shape_ok = sum(p[1] == t[1] for p, t in zip(names, truth, strict=True)) / len(names)
    assert max(colour_ok, shape_ok) > 0.5, (colour_ok, shape_ok)


@pytest.mark.parametrize("name", ["digits", "shapes"])
def test_excise_purity_runs_on_each_built_in_model(name: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / name
    assert _excise(["purity", f"{name}-clip", "--data", name, "--kept", "8,16,24,32", "--out", str(out)]) == 0
    with open(out / f"{name}_accuracy_vs_kept.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["kept", "model", "full", "min", "max", "random"]
    assert [r[0] for r in rows[1:]] == ["8", "16", "24", "32"]
    assert rows[-1][2] == rows[-1][3] == rows[-1][4] == rows[-1][5]  # all 32 kept = full
    assert (out / f"{name}_min_max_gap.png").is_file() and (out / f"{name}_silhouette_vs_kept.png").is_file()
    assert (out / f"{name}-clip_purity_training.png").is_file()  # purity statistics per training epoch
