"""COCO ground truth and results: segmentation quads, iscrowd, id mapping, round trips, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rsmetrics.detection.types import ImageAnnotations, ImageDetections
from rsmetrics.errors import InvalidInputError, RecordError
from rsmetrics.io import (
    CocoIndex,
    ReadReport,
    coco_index,
    read_coco_ground_truth,
    read_coco_results,
    read_dota_labels,
    write_coco_ground_truth,
    write_coco_results,
)

SAMPLES = Path(__file__).parents[2] / ".." / "shared" / "samples"


def _gt() -> dict[str, Any]:
    # the mmrotate dota2coco layout: quad in segmentation[0], bbox its enclosing box
    return {
        "images": [
            {"id": 10, "file_name": "P0000__1024__0___0.png", "width": 1024, "height": 1024},
            {"id": 11, "file_name": "sub\\P0001.png"},  # Windows separator
            {"id": 12, "file_name": "P0002.jpg"},  # no annotations
        ],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 2, "bbox": [10, 20, 30, 40], "area": 1200, "iscrowd": 0},
            {
                "id": 2, "image_id": 10, "category_id": 1, "iscrowd": 1, "bbox": [0, 0, 4, 4],
                "segmentation": [[2, 0, 4, 2, 2, 4, 0, 2]],  # a diamond
            },
            {"id": 3, "image_id": 11, "category_id": 1, "bbox": [1, 1, 1, 1],
             "segmentation": [[1, 1, 2, 1, 2, 2, 1, 2, 1, 1.5]]},  # 10 numbers: bbox is used
            {"id": 4, "image_id": 11, "category_id": 2, "bbox": [5, 5, 2, 3],
             "segmentation": {"counts": "x", "size": [1, 1]}},  # RLE: bbox is used
        ],
        # ids not in order and not contiguous
        "categories": [{"id": 7, "name": "ship"}, {"id": 1, "name": "plane"}],
    }  # fmt: skip


def test_read_gt_segmentation_and_crowd() -> None:
    gt = _gt()
    gt["categories"][0]["id"] = 2
    anns, classes, report = read_coco_ground_truth(gt)
    assert classes == ["plane", "ship"]  # ascending category id
    assert [a.image_id for a in anns] == ["P0000__1024__0___0", "P0001", "P0002"]
    assert [len(a) for a in anns] == [2, 2, 0]  # image without annotations kept, empty
    assert (report.files, report.objects, report.skipped) == (1, 4, {})
    a0 = anns[0]
    assert a0.labels == ("ship", "plane")
    # bbox [10, 20, 30, 40] -> (10, 20)-(40, 60)
    assert a0.boxes[0].tolist() == [10, 20, 40, 20, 40, 60, 10, 60]
    # the 8-number segmentation is used (canonical: top-most vertex first, clockwise)
    assert a0.boxes[1].tolist() == [2, 0, 4, 2, 2, 4, 0, 2]
    assert a0.difficult.tolist() == [0, 1]  # iscrowd -> difficult 1
    assert a0.box_kind == "quad"
    # a 10-number polygon and an RLE fall back to bbox
    assert anns[1].boxes.tolist() == [[1, 1, 2, 1, 2, 2, 1, 2], [5, 5, 7, 5, 7, 8, 5, 8]]


def test_read_gt_without_segmentation() -> None:
    gt = _gt()
    gt["categories"][0]["id"] = 2
    anns, _, _ = read_coco_ground_truth(gt, use_segmentation=False)
    assert anns[0].boxes[1].tolist() == [0, 0, 4, 0, 4, 4, 0, 4]
    assert all(a.box_kind == "hbb" for a in anns)


def test_image_key_id_and_stem_collisions() -> None:
    gt = _gt()
    gt["categories"][0]["id"] = 2
    anns, _, _ = read_coco_ground_truth(gt, image_key="id")
    assert [a.image_id for a in anns] == ["10", "11", "12"]
    gt["images"][2]["file_name"] = "other/P0001.tif"
    with pytest.raises(
        RecordError, match=r"images\[2\]: image name 'P0001' is used by ids 11 and 12 \(use image_key='id'\)"
    ):
        read_coco_ground_truth(gt)
    assert len(read_coco_ground_truth(gt, image_key="id")[0]) == 3


def test_unknown_ids_strict_and_lenient(tmp_path: Path) -> None:
    gt = _gt()  # category 2 does not exist (ship is 7)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    with pytest.raises(RecordError, match=r"gt\.json: annotations\[0\] \(id 1\): unknown category_id 2"):
        read_coco_ground_truth(path)
    gt["annotations"].append({"id": 9, "image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1]})
    gt["annotations"].append({"id": 10, "image_id": 10, "category_id": 1, "bbox": [0, 0, -1, 1]})
    gt["annotations"].append({"id": 11, "image_id": 10, "category_id": 1, "bbox": [0, 0, 1]})
    anns, _, report = read_coco_ground_truth(gt, strict=False)
    assert report.skipped == {"unknown_category": 2, "unknown_image": 1, "bad_bbox": 2}
    assert report.objects == 2 and sum(len(a) for a in anns) == 2
    assert report.errors[0] == "<dict>: annotations[0] (id 1): unknown category_id 2"


def test_invalid_json_names_line(tmp_path: Path) -> None:
    path = tmp_path / "gt.json"
    path.write_text('{"images": [],\n "categories": [}\n')
    with pytest.raises(RecordError, match=r"gt\.json:2: invalid JSON"):
        read_coco_ground_truth(path)
    with pytest.raises(InvalidInputError, match="does not exist"):
        read_coco_ground_truth(tmp_path / "none.json")
    with pytest.raises(RecordError, match="expected `images` to be a list"):
        read_coco_ground_truth({"categories": []})
    with pytest.raises(RecordError, match="category names must be unique"):
        coco_index({"images": [], "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "a"}]})


def test_gt_round_trip(tmp_path: Path) -> None:
    anns = [
        ImageAnnotations(
            "P1", boxes=[[0, 0, 10, 5], [2, 2, 3, 4]], labels=["ship", "plane"], difficult=[0, 2], box_kind="hbb"
        ),
        ImageAnnotations("P2", boxes=np.zeros((0, 4)), labels=[], box_kind="hbb"),
        ImageAnnotations("P3.v2", boxes=[[5, 0, 10, 5, 5, 10, 0, 5]], labels=["ship"]),
    ]
    path = write_coco_ground_truth(
        anns, tmp_path / "deep" / "gt.json", ["plane", "ship", "bridge"], image_sizes={"P1": (100, 50)}
    )
    data = json.loads(path.read_text())
    assert data["categories"] == [
        {"id": 1, "name": "plane", "supercategory": "plane"},
        {"id": 2, "name": "ship", "supercategory": "ship"},
        {"id": 3, "name": "bridge", "supercategory": "bridge"},
    ]
    assert data["images"][0] == {"id": 1, "file_name": "P1.png", "width": 100, "height": 50}
    first = data["annotations"][0]
    assert first == {
        "id": 1, "image_id": 1, "category_id": 2, "bbox": [0.0, 0.0, 10.0, 5.0], "area": 50.0, "iscrowd": 0,
        "segmentation": [[0.0, 0.0, 10.0, 0.0, 10.0, 5.0, 0.0, 5.0]],
    }  # fmt: skip
    assert data["annotations"][1]["iscrowd"] == 1  # difficult 2 -> crowd

    back, classes, _ = read_coco_ground_truth(path)
    assert classes == ["plane", "ship", "bridge"]
    assert [a.image_id for a in back] == ["P1", "P2", "P3.v2"]
    for a, b in zip(anns, back, strict=True):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        assert a.labels == b.labels
    assert back[0].difficult.tolist() == [0, 1]  # crowd comes back as 1
    # without segmentation the diamond becomes its enclosing box
    write_coco_ground_truth(anns, path, with_segmentation=False, crowd_from_difficult=False)
    back, classes, _ = read_coco_ground_truth(path)
    assert classes == ["plane", "ship"]
    assert back[2].boxes.tolist() == [[0, 0, 10, 0, 10, 10, 0, 10]]
    assert back[0].difficult.tolist() == [0, 0]


def test_gt_round_trip_real_dota_sample(tmp_path: Path) -> None:
    src = SAMPLES / "dota" / "P1888.txt"
    if not src.is_file():
        pytest.skip(f"sample not found: {src}")
    ann = read_dota_labels(src)
    path = write_coco_ground_truth([ann], tmp_path / "gt.json")
    (back,), classes, report = read_coco_ground_truth(path)
    assert classes == ["large-vehicle", "small-vehicle"]  # sorted labels found
    assert report.objects == 64
    np.testing.assert_array_equal(back.boxes, ann.boxes)
    assert back.labels == ann.labels


def test_results_round_trip(tmp_path: Path) -> None:
    anns = [
        ImageAnnotations("P1", boxes=[[0, 0, 10, 5]], labels=["ship"], box_kind="hbb"),
        ImageAnnotations("P2", boxes=[[0, 0, 10, 5]], labels=["plane"], box_kind="hbb"),
    ]
    gt_path = write_coco_ground_truth(anns, tmp_path / "gt.json", ["plane", "ship"])
    dets = [
        ImageDetections(
            "P2", boxes=[[1, 1, 4, 3], [0, 0, 2, 2]], labels=["ship", "plane"], scores=[0.25, 0.5], box_kind="hbb"
        ),
        ImageDetections("P1", boxes=[[2, 2, 6, 7]], labels=["ship"], scores=[0.75], box_kind="hbb"),
    ]
    res_path = write_coco_results(dets, tmp_path / "res.json", gt_path)
    records = json.loads(res_path.read_text())
    assert records[0] == {"image_id": 2, "category_id": 2, "bbox": [1.0, 1.0, 3.0, 2.0], "score": 0.25}
    index = coco_index(gt_path)
    back = read_coco_results(res_path, index)
    assert [d.image_id for d in back] == ["P2", "P1"]  # first appearance
    for a, b in zip(dets, back, strict=True):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        assert a.labels == b.labels
        np.testing.assert_array_equal(a.scores, b.scores)
        assert b.box_kind == "hbb"


def test_results_segmentation_and_missing_scores(tmp_path: Path) -> None:
    gt = {"images": [{"id": 1, "file_name": "P1.png"}], "categories": [{"id": 3, "name": "ship"}]}
    quad = [5, 0, 10, 5, 5, 10, 0, 5]
    res = [{"image_id": 1, "category_id": 3, "bbox": [0, 0, 10, 10], "segmentation": [quad]}]
    (det,) = read_coco_results(res, gt)
    assert det.scores is None  # a model without confidences
    assert det.boxes.tolist() == [quad] and det.box_kind == "quad"
    (det,) = read_coco_results(res, gt, use_segmentation=False)
    assert det.boxes.tolist() == [[0, 0, 10, 0, 10, 10, 0, 10]]
    # scores None are written as 1
    path = write_coco_results([det], tmp_path / "r.json", gt, with_segmentation=True)
    assert json.loads(path.read_text())[0]["score"] == 1.0
    # mixing records with and without scores is an error
    res.append({"image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 0.5})
    with pytest.raises(RecordError, match=r"<list>: \[0\]: missing `score`"):
        read_coco_results(res, gt)
    report = ReadReport()
    (det,) = read_coco_results(res, gt, strict=False, stats=report)
    assert det.scores.tolist() == [0.5] and report.skipped == {"bad_score": 1}


def test_results_errors(tmp_path: Path) -> None:
    gt = {"images": [{"id": 1, "file_name": "P1.png"}], "categories": [{"id": 3, "name": "ship"}]}
    with pytest.raises(RecordError, match=r"\[1\]: unknown image_id 5"):
        read_coco_results([{"image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 1},
                           {"image_id": 5, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 1}], gt)  # fmt: skip
    path = tmp_path / "res.json"
    path.write_text('[{"image_id": 1, "category_id": 4, "bbox": [0, 0, 1, 1], "score": 1}]')
    with pytest.raises(RecordError, match=r"res\.json: \[0\]: unknown category_id 4"):
        read_coco_results(path, gt)
    with pytest.raises(RecordError, match="expected a list of result objects"):
        read_coco_results({"a": 1}, gt)  # type: ignore[arg-type]
    det = ImageDetections("P9", boxes=[[0, 0, 1, 1]], labels=["ship"], box_kind="hbb")
    with pytest.raises(InvalidInputError, match="'P9'"):
        write_coco_results([det], tmp_path / "x.json", gt)
    det = ImageDetections("P1", boxes=[[0, 0, 1, 1]], labels=["car"], box_kind="hbb")
    with pytest.raises(InvalidInputError, match="'car' in image 'P1'"):
        write_coco_results([det], tmp_path / "x.json", gt)
    det = ImageDetections("P1", boxes=[[0, 0, 1, 1]], labels=["ship"], scores=[np.nan], box_kind="hbb")
    with pytest.raises(InvalidInputError, match="finite"):
        write_coco_results([det], tmp_path / "x.json", gt)


def test_index_is_reused() -> None:
    gt = {"images": [{"id": 1, "file_name": "P1.png"}], "categories": [{"id": 3, "name": "ship"}]}
    index = coco_index(gt)
    assert isinstance(index, CocoIndex) and coco_index(index) is index
    assert index.image_numbers == {"P1": 1} and index.category_ids == {"ship": 3}
    assert index.image_order == ("P1",)


def test_coco_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    anns = [ImageAnnotations("P1", boxes=[[0, 0, 10, 5]], labels=["ship"], box_kind="hbb")]
    path = write_coco_ground_truth(anns, tmp_path / "gt.json")
    before = path.read_bytes()

    def broken_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        raise OSError("killed")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="killed"):
        write_coco_ground_truth(anns * 0, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["gt.json"]


@pytest.mark.parametrize(
    "file_name",
    ["a/b/P0001.png", "C:\\x\\P2.tif", ".hidden", "a.tar.gz", "noext", "dir/.png", "P1__1024__0___0.png", "x/y/"],
)
def test_image_stem_equals_pathlib(file_name):
    from pathlib import PurePosixPath, PureWindowsPath

    from rsmetrics.io.coco import _stem

    # pathlib is the reference: the string version exists only for speed
    assert _stem(file_name) == PurePosixPath(PureWindowsPath(file_name).as_posix()).stem
