"""vrsbench_eval_referring / _vqa / _caption: the VRSBench EVAL JSON arrays."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from rsformat.converters import get_converter
from rsformat.converters.base import ConversionReport


def _image(path: Path, size: tuple[int, int] = (200, 100)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size).save(path)


def _run(name: str, root: Path, split: str = "test", **options: object) -> tuple[list, ConversionReport]:
    report = ConversionReport(name)
    return list(get_converter(name)(root, **options).records(split, report)), report


@pytest.fixture()
def vrs(tmp_path: Path) -> Path:
    root = tmp_path / "VRSBench"
    _image(root / "Images_val" / "00001.png")
    (root / "VRSBench_EVAL_referring.json").write_text(json.dumps([
        # int(v * 100) truncation: the corner 0.104 .. 0.307 becomes <10> .. <30>
        {"image_id": "00001.png", "question": "the  small ship", "ground_truth": "{<10><20><30><40>}",
         "question_id": 1, "type": "ref", "obj_cls": "ship",
         "obj_corner": [0.104, 0.205, 0.307, 0.205, 0.307, 0.409, 0.104, 0.409]},
        {"image_id": "00001", "question": "no corner", "ground_truth": "{<0><0><50><50>}", "question_id": 2},
        {"image_id": "00001.png", "question": "corner out", "ground_truth": "{<0><0><50><50>}", "question_id": 3,
         "obj_corner": [-0.1, 0.0, 0.5, 0.0, 0.5, 0.5, -0.1, 0.5]},
        {"image_id": "00001.png", "question": "rotated gt", "ground_truth": "{<0><0><50><50>|<30>}", "question_id": 4},
        {"image_id": "00001.png", "question": "", "ground_truth": "{<0><0><50><50>}", "question_id": 5},
    ]))  # fmt: skip
    (root / "VRSBench_EVAL_vqa.json").write_text(json.dumps([
        {"image_id": "00001.png", "question": "What color is the ship?", "ground_truth": "white",
         "dataset": "RSBench", "question_id": 10, "type": "object color"},
        {"image_id": "missing.png", "question": "Any?", "ground_truth": "no", "question_id": 11},
    ]))  # fmt: skip
    (root / "VRSBench_EVAL_Cap.json").write_text(json.dumps([
        {"image_id": "00001.png", "ground_truth": "A harbour with one ship.", "question": "Describe the image in detail",
         "dataset": "RSBench", "question_id": 20, "type": "caption"},
    ]))  # fmt: skip
    return root


def test_referring(vrs: Path) -> None:
    recs, report = _run("vrsbench_eval_referring", vrs)
    first, second, third = recs
    # the hbb is the ground truth as written (0-100 grid on 200x100), not the exact corner
    assert (first.id, first.expression, first.hbb, first.category) == (
        "1",
        "the small ship",
        (20.0, 20.0, 60.0, 40.0),
        "ship",
    )
    assert first.quad == pytest.approx((20.8, 20.5, 61.4, 20.5, 61.4, 40.9, 20.8, 40.9))
    assert (first.image, first.width, first.height, first.source) == ("Images_val/00001.png", 200, 100, "vrsbench")
    assert second.quad is None and second.hbb == (0.0, 0.0, 100.0, 50.0)  # image_id without extension -> .png
    assert third.quad == pytest.approx((0.0, 0.0, 100.0, 0.0, 100.0, 50.0, 0.0, 50.0))
    assert report.counters == {"ground_truth_truncated_grid": 3, "quads_clipped": 1}
    assert report.skipped == {"bad_box": 1, "missing_expression": 1}


def test_vqa_and_caption(vrs: Path) -> None:
    recs, report = _run("vrsbench_eval_vqa", vrs)
    (rec,) = recs
    assert [m.text_content for m in rec.messages] == ["What color is the ship?", "white"]
    assert (rec.task, rec.images, json.loads(rec.metadata)) == (
        "vqa", ("Images_val/00001.png",), {"type": "object color", "question_id": 10}
    )  # fmt: skip
    assert report.skipped == {"missing_image": 1}
    conv = get_converter("vrsbench_eval_caption")(vrs, split="val", images_dir="Images_val")
    (rec,) = conv.records("val", ConversionReport("x"))
    assert (rec.split, rec.task, rec.messages[1].text_content) == ("val", "caption", "A harbour with one ship.")


def test_alternative_names_and_absent_files(tmp_path: Path) -> None:
    _image(tmp_path / "Images" / "a.png")
    (tmp_path / "RSBench_EVAL_vqa.json").write_text(
        json.dumps([{"image_id": "a.png", "question": "q", "ground_truth": "a"}])
    )
    assert get_converter("vrsbench_eval_vqa")(tmp_path).splits() == ["test"]
    assert get_converter("vrsbench_eval_caption")(tmp_path).splits() == []
    recs, _ = _run("vrsbench_eval_vqa", tmp_path)
    assert recs[0].images == ("Images/a.png",) and recs[0].id == "RSBench_EVAL_vqa.json[0]"
