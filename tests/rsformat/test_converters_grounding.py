"""refGeo, DIOR-RSVG and LRS-VQA converters: hand-checked values, quirks and corrupt input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from rsformat.converters import get_converter
from rsformat.converters.base import ConversionReport
from rsformat.records import GroundingRecord, ZoomRecord

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "samples"


def _image(path: Path, size: tuple[int, int] = (100, 80)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size).save(path)


def _jsonl(path: Path, rows: list[object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")


def _run(name: str, root: Path, split: str, **options: object) -> tuple[list, ConversionReport]:
    report = ConversionReport(name)
    return list(get_converter(name)(root, **options).records(split, report)), report


# --------------------------------------------------------------------------- refGeo


@pytest.fixture
def refgeo(tmp_path: Path) -> Path:
    _image(tmp_path / "images/dior_rsvg/00001.jpg", (800, 800))
    _image(tmp_path / "images/geochat_test/P1.png", (600, 400))  # listed as .jpg
    _image(tmp_path / "images/vrsbench/v1.png", (512, 256))  # no size fields: read from the header
    (tmp_path / "masks/dior_rsvg").mkdir(parents=True)
    _image(tmp_path / "masks/dior_rsvg/00001_7.png", (800, 800))
    base = {"dataset": "dior_rsvg", "image_id": "00001.jpg", "image_width": 800, "image_height": 800}
    _jsonl(
        tmp_path / "metainfo_v2/dior_rsvg_train_v2.jsonl",
        [
            {
                **base,
                "question_id": 7,
                "question": " the vehicle on the left ",
                "bbox": [34, 210, 78, 240],
                "poly": [[78, 240], [34, 240], [34, 210], [78, 210]],  # counter-clockwise from bottom-right
                "mask_exists": True,
                "unknown_field": {"ignored": 1},
            },
            {**base, "question_id": 8, "question": "clipped", "bbox": [-10, 700, 50, 900]},
            {**base, "question_id": 9, "question": "degenerate", "bbox": [10, 10, 10, 50]},
            "{not json",
            {**base, "question_id": 10, "question": "escape", "image_id": "../../../etc/passwd", "bbox": [1, 1, 5, 5]},
            {**base, "question_id": 11, "question": "absent", "image_id": "00002.jpg", "bbox": [1, 1, 5, 5]},
            {**base, "question_id": 12, "question": "mask gone", "bbox": [1, 1, 5, 5], "mask_exists": True},
        ],
    )
    _jsonl(
        tmp_path / "metainfo_v2/vrsbench_train_v2.jsonl",
        [{"dataset": "vrsbench", "image_id": "v1.png", "question_id": 1, "question": "a ship", "bbox": [0, 0, 10, 10]}],
    )
    _jsonl(
        tmp_path / "metainfo/geochat_test.jsonl",
        [{"dataset": "geochat_test", "image_id": "P1.jpg", "question_id": 3, "question": "x", "bbox": [1, 2, 3, 4]}],
    )
    return tmp_path


def test_refgeo_values_and_quirks(refgeo: Path) -> None:
    conv = get_converter("refgeo")(refgeo)
    assert conv.splits() == ["train", "test"]
    recs, report = _run("refgeo", refgeo, "train")
    by_id = {r.id: r for r in recs}
    assert sorted(by_id) == ["dior_rsvg/12", "dior_rsvg/7", "dior_rsvg/8", "vrsbench/1"]
    r = by_id["dior_rsvg/7"]
    assert isinstance(r, GroundingRecord)
    assert (r.source, r.image, r.width, r.height) == ("refgeo/dior_rsvg", "images/dior_rsvg/00001.jpg", 800, 800)
    assert r.expression == "the vehicle on the left"
    assert r.hbb == (34.0, 210.0, 78.0, 240.0)
    assert r.quad == (34.0, 210.0, 78.0, 210.0, 78.0, 240.0, 34.0, 240.0)  # canonical: clockwise from top-left
    assert r.mask == "masks/dior_rsvg/00001_7.png"
    assert by_id["dior_rsvg/8"].hbb == (0.0, 700.0, 50.0, 800.0)
    assert by_id["dior_rsvg/12"].mask is None
    assert (by_id["vrsbench/1"].width, by_id["vrsbench/1"].height) == (512, 256)
    assert report.records_in == 8 and report.records_out == 4
    assert report.skipped == {"bad_json": 1, "degenerate_box": 1, "missing_image": 1, "unsafe_path": 1}
    assert report.counters == {"boxes_clipped": 1, "mask_missing": 1}
    assert any("dior_rsvg_train_v2.jsonl:3: degenerate_box" in m for m in report.messages)


def test_refgeo_test_split_extension_fallback_and_filter(refgeo: Path) -> None:
    recs, report = _run("refgeo", refgeo, "test")
    assert [r.image for r in recs] == ["images/geochat_test/P1.png"]
    assert recs[0].source == "refgeo/geochat_test" and recs[0].split == "test"
    assert report.counters == {"image_extension_fixed": 1}
    recs, _ = _run("refgeo", refgeo, "train", datasets=["vrsbench"])
    assert [r.id for r in recs] == ["vrsbench/1"]
    with pytest.raises(ValueError, match="Expected `split`"):
        _run("refgeo", refgeo, "nope")


def test_refgeo_without_images(refgeo: Path) -> None:
    recs, report = _run("refgeo", refgeo, "train", check_images=False)
    # the absent image is kept (its size is in the record); the escaping path is still refused
    assert "dior_rsvg/11" in {r.id for r in recs}
    assert report.skipped["unsafe_path"] == 1


# --------------------------------------------------------------------------- DIOR-RSVG


def _dior_xml(objects: list[tuple[str, str, tuple[int, int, int, int]]], filename: str) -> str:
    objs = "".join(
        f"<object><name>{n}</name><pose>Unspecified</pose><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox><description>{d}</description></object>"
        for n, d, b in objects
    )
    return (
        f"<annotation><filename>{filename}</filename><size><width>800</width><height>800</height>"
        f"<depth>3</depth></size>{objs}</annotation>"
    )


@pytest.fixture
def dior_rsvg(tmp_path: Path) -> Path:
    ann = tmp_path / "Annotations"
    ann.mkdir()
    # written out of order: the global indices must follow the sorted file names
    (ann / "00003.xml").write_text(_dior_xml([("ship", "the ship", (1, 2, 30, 40))], "00003.jpg"))
    (ann / "00001.xml").write_text(
        _dior_xml(
            [
                ("vehicle", "  The vehicle on the left side of the road ", (391, 353, 411, 384)),
                ("vehicle", "the vehicle at the edge", (790, 10, 850, 20)),
                ("vehicle", "", (1, 1, 5, 5)),
            ],
            "00001.jpg",
        )
    )
    (ann / "00002.xml").write_text("<annotation><object><name>x</name></object><object>")  # broken, 2 objects
    for stem in ("00001", "00003"):
        _image(tmp_path / f"JPEGImages/{stem}.jpg", (800, 800))
    (tmp_path / "train.txt").write_text("0\n1\n2\n5\n99\n")
    (tmp_path / "test.txt").write_text("3\n")
    return tmp_path


def test_dior_rsvg_global_indices(dior_rsvg: Path) -> None:
    conv = get_converter("dior_rsvg")(dior_rsvg)
    assert conv.splits() == ["train", "test"]
    recs, report = _run("dior_rsvg", dior_rsvg, "train")
    assert [r.id for r in recs] == ["00001_0", "00001_1", "00003_0"]
    first = recs[0]
    assert first.expression == "The vehicle on the left side of the road"
    assert first.hbb == (391.0, 353.0, 411.0, 384.0) and first.category == "vehicle"
    assert (first.image, first.width, first.height, first.source) == ("JPEGImages/00001.jpg", 800, 800, "dior_rsvg")
    assert recs[1].hbb == (790.0, 10.0, 800.0, 20.0)
    # index 5 is the ship: 3 objects in 00001 and 2 in the broken 00002 come before it
    assert recs[2].expression == "the ship"
    assert report.skipped == {"index_out_of_range": 1, "missing_expression": 1}
    assert report.counters == {"boxes_clipped": 1, "unparsable_xml_files": 1}
    assert report.records_out == 3


def test_dior_rsvg_index_inside_broken_file(dior_rsvg: Path) -> None:
    recs, report = _run("dior_rsvg", dior_rsvg, "test")
    # index 3 is the first object of the broken 00002.xml
    assert recs == [] and report.skipped == {"bad_xml": 1} and report.records_in == 1
    assert any("00002.xml (index 3): bad_xml" in m for m in report.messages)


@pytest.mark.skipif(not (SAMPLES / "dior_rsvg/test.head40.txt").is_file(), reason="shared samples absent")
def test_dior_rsvg_real_split_file(tmp_path: Path) -> None:
    from rsformat.converters.dior_rsvg import read_split_indices

    report = ConversionReport("dior_rsvg")
    indices = read_split_indices(SAMPLES / "dior_rsvg/test.head40.txt", report)
    assert len(indices) == 40 and min(indices) == 0 and max(indices) == 222
    assert report.skipped == {} and report.counters == {}


# --------------------------------------------------------------------------- LRS-VQA


@pytest.mark.skipif(not (SAMPLES / "lrs_vqa").is_dir(), reason="shared samples absent")
def test_lrs_vqa_real_sample() -> None:
    root = SAMPLES / "lrs_vqa"
    recs, report = _run("lrs_vqa", root, "test", check_images=False)
    assert len(recs) == 17 and report.records_in == 17 and report.skipped == {}
    assert all(isinstance(r, ZoomRecord) for r in recs)
    # every question carried the instruction suffix, in both of its spellings
    assert report.rules == {"answer_instruction_suffix": 17}
    assert all("Answer the question" not in r.question and r.question.endswith("?") for r in recs)
    first = recs[0]
    assert first.id == "FAIR_1" and first.source == "lrs_vqa/fair" and first.answer == "yes"
    assert first.question == "Is the bottom-most and largest bridge crossing a river?"
    assert (first.width, first.height, first.category) == (4000, 4000, "reasoning")
    # the real hbox [282, 3418, 763, 4050] passes the 4000 px image edge: clipped and counted
    assert first.rois == ((282.0, 3418.0, 763.0, 4000.0),)
    assert report.counters == {"boxes_clipped": 1}
    count = [r for r in recs if r.category == "count"]
    assert len(count) == 3 and all(r.rois == () for r in count)
    assert {r.source for r in recs} == {"lrs_vqa/fair", "lrs_vqa/glh-bridge", "lrs_vqa/star"}
    star = next(r for r in recs if r.id == "STAR_601")
    assert (star.width, star.height, star.rois) == (15543, 7607, ((1232.0, 3327.0, 2865.0, 4553.0),))


def test_lrs_vqa_missing_images_and_bad_lines(tmp_path: Path) -> None:
    _image(tmp_path / "LRS_VQA/image/1.png", (50, 40))
    row = {"question_id": "STAR_1", "image": "LRS_VQA/image/1.png", "category": "object color",
           "text": "What color? \nAnswer the question using a single word or phrase.", "ground_truth": "red",
           "hbox": [1, 2, 3, 4]}  # fmt: skip
    _jsonl(
        tmp_path / "LRS_VQA_merged.jsonl",
        [
            row,
            {**row, "question_id": "STAR_2", "image": "LRS_VQA/image/2.png"},
            {**row, "question_id": "STAR_3", "image": "/etc/passwd"},
            {**row, "question_id": "STAR_4", "hbox": [5, 5, 5, 9]},
            "[1, 2]",
            "",
        ],
    )
    recs, report = _run("lrs_vqa", tmp_path, "test")
    assert [r.id for r in recs] == ["STAR_1"]
    assert (recs[0].width, recs[0].height, recs[0].question) == (50, 40, "What color?")  # size from the header
    assert report.skipped == {"degenerate_box": 1, "missing_image": 1, "not_an_object": 1, "unsafe_path": 1}
    assert report.records_in == 5


def test_lrs_vqa_zoom(tmp_path: Path) -> None:
    prefix = "/gruntdata/rs_nas/workspace/junhong.ljw/dataset/"
    _image(tmp_path / "LRS_VQA/images/train/a.png", (400, 300))
    items = [
        {"image": prefix + "LRS_VQA/images/train/a.png", "question": "Is there a bridge?", "answer": "Yes",
         "bbox_info": {"crop_hbox": [[10, 20, 110, 120]], "rbox": []}, "image_ori_width": 400,
         "image_ori_height": 300, "unknown": 1},
        {"image": prefix + "LRS_VQA/images/train/a.png",
         "Text": "Which color is the roof?\n Answer the question using a single word or phrase.",
         "Answer choices": ["(A) red", "(B) blue", "(C) green"], "Ground truth": "B",
         "bbox_info": {"crop_hbox": [[0, 0, 10, 10], [390, 290, 500, 400]]}, "question_id": "mcq7"},
        {"image": prefix + "LRS_VQA/images/train/a.png", "Text": "Q?", "Answer choices": ["x", "y"],
         "Ground truth": "Z"},
        {"image": "/other/dataset/../../etc/passwd", "question": "q", "answer": "a"},
        {"image": "LRS_VQA/images/train/missing.png", "question": "q", "answer": "a"},
        "not an object",
    ]  # fmt: skip
    (tmp_path / "annotations/train").mkdir(parents=True)
    (tmp_path / "annotations/train/mix.json").write_text(json.dumps(items))
    recs, report = _run("lrs_vqa_zoom", tmp_path, "train")
    assert [r.id for r in recs] == ["mix/0", "mix/mcq7"]
    open_ended, mcq = recs
    assert open_ended.image == "LRS_VQA/images/train/a.png" and open_ended.choices is None
    assert (open_ended.width, open_ended.height, open_ended.rois) == (400, 300, ((10.0, 20.0, 110.0, 120.0),))
    assert mcq.question == "Which color is the roof?" and mcq.choices == ("red", "blue", "green")
    assert mcq.answer == "B" and mcq.rois == ((0.0, 0.0, 10.0, 10.0), (390.0, 290.0, 400.0, 300.0))
    assert report.skipped == {"bad_mcq": 1, "missing_image": 1, "not_an_object": 1, "unsafe_path": 1}
    assert report.counters["private_prefix_stripped"] == 4  # the escaping one too, then refused
    assert report.counters["boxes_clipped"] == 1
    assert report.rules == {"answer_instruction_suffix": 1}
