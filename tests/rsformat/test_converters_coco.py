"""coco_detection: COCO detection JSON (bbox or 8-number segmentation) -> DetectionRecord."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from rsformat.converters import get_converter
from rsformat.converters.base import ConversionReport
from rsformat.converters.coco import split_name


def _image(path: Path, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size).save(path)


def _coco(root: Path, name: str = "trainval.json") -> dict:
    data = {
        "images": [
            {"id": 1, "file_name": "P1.png", "width": 64, "height": 48},
            {"id": 2, "file_name": "P2.png", "width": 64, "height": 48},  # no annotations: kept
            {"id": 3, "file_name": "sub/P3.png"},  # no size: read from the header
            {"id": 4, "file_name": "absent.png", "width": 10, "height": 10},
            {"id": 5, "file_name": "../../../escape.png", "width": 10, "height": 10},
        ],
        "annotations": [
            # oriented: the quad is the segmentation (a diamond), bbox ignored
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1],
             "segmentation": [[20, 0, 40, 20, 20, 40, 0, 20]], "iscrowd": 0},
            # no segmentation: the quad of bbox [x, y, w, h]
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [1, 2, 3, 4]},
            {"id": 3, "image_id": 3, "category_id": 2, "bbox": [0, 0, 5, 5], "iscrowd": 1},
            {"id": 4, "image_id": 3, "category_id": 9, "bbox": [0, 0, 5, 5]},  # unknown category
            {"id": 5, "image_id": 1, "category_id": 1, "bbox": [3, 3, 0, 4]},  # zero width: degenerate
        ],
        "categories": [{"id": 1, "name": "plane"}, {"id": 2, "name": "small-vehicle"}],
    }  # fmt: skip
    (root / name).write_text(json.dumps(data))
    return data


@pytest.fixture()
def coco_root(tmp_path: Path) -> Path:
    root = tmp_path / "split_ss_dota_512"
    _image(root / "trainval" / "images" / "P1.png", (64, 48))
    _image(root / "trainval" / "images" / "P2.png", (64, 48))
    _image(root / "trainval" / "images" / "sub" / "P3.png", (30, 20))
    _coco(root)
    return root


def test_coco_records_quads_bbox_crowd_and_empty_images(coco_root: Path) -> None:
    conv = get_converter("coco_detection")(coco_root)
    assert conv.splits() == ["trainval"]
    report = ConversionReport("coco_detection")
    recs = list(conv.records("trainval", report))
    assert [(r.id, r.image, r.width, r.height) for r in recs] == [
        ("P1", "trainval/images/P1.png", 64, 48),
        ("P2", "trainval/images/P2.png", 64, 48),
        ("sub/P3", "trainval/images/sub/P3.png", 30, 20),
    ]
    p1, p2, p3 = recs
    assert p1.categories == ("plane", "small-vehicle")
    diamond, box = p1.objects
    assert diamond.hbb == (0.0, 0.0, 40.0, 40.0)
    assert diamond.obb[2:4] == pytest.approx((800**0.5, 800**0.5))
    assert sorted(zip(diamond.quad[0::2], diamond.quad[1::2])) == [(0, 20), (20, 0), (20, 40), (40, 20)]
    assert box.hbb == (1.0, 2.0, 4.0, 6.0) and box.difficult == 0
    assert p2.objects == ()
    assert [(o.category, o.difficult, o.hbb) for o in p3.objects] == [("small-vehicle", 1, (0.0, 0.0, 5.0, 5.0))]
    assert report.records_in == 5 and report.records_out == 3
    assert report.skipped == {"degenerate_box": 1, "missing_image": 1, "unknown_category": 1, "unsafe_path": 1}
    assert report.counters["empty_images_kept"] == 1


def test_coco_options_annotation_image_dir_split_source(tmp_path: Path) -> None:
    root = tmp_path / "fair1m"
    _image(root / "pics" / "P1.png", (64, 48))
    (root / "ann").mkdir(parents=True)
    data = _coco(root / "ann", "trainval_1024_P2Bfmt_dota_rbox.json")
    data["images"] = data["images"][:1]
    (root / "ann" / "trainval_1024_P2Bfmt_dota_rbox.json").write_text(json.dumps(data))
    conv = get_converter("coco_detection")(
        root, annotation="ann/trainval_1024_P2Bfmt_dota_rbox.json", image_dir="pics", split="train", source="fair1m"
    )
    assert conv.splits() == ["train"]
    report = ConversionReport("x")
    (rec,) = conv.records("train", report)
    assert (rec.source, rec.split, rec.image, len(rec.objects)) == ("fair1m", "train", "pics/P1.png", 2)
    # without the option, every JSON of the root is a split named by its stem
    assert get_converter("coco_detection")(root / "ann").splits() == ["trainval_1024_P2Bfmt_dota_rbox"]


def test_coco_bad_files_are_counted(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{oops")
    (tmp_path / "dup.json").write_text(
        json.dumps({"images": [{"id": 1, "file_name": "a.png"}, {"id": 1, "file_name": "b.png"}], "categories": []})
    )
    conv = get_converter("coco_detection")(tmp_path)
    report = ConversionReport("x")
    assert list(conv.records("broken", report)) == [] and list(conv.records("dup", report)) == []
    assert report.skipped == {"bad_json": 1, "bad_coco": 1}
    with pytest.raises(ValueError, match="Expected `split`"):
        list(conv.records("nope", report))


def test_split_name() -> None:
    assert split_name("instances_train2017") == "instances_train2017"
    assert split_name("a-b.c") == "a_b_c"
