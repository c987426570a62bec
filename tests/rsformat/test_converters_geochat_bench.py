"""geochat_bench / geochat_bench_referring: the 7 GeoChat-Bench JSONL files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from rsformat.converters import get_converter
from rsformat.converters.base import ConversionReport
from rsformat.converters.geochat_bench import bench_class


def _image(path: Path, size: tuple[int, int] = (200, 100)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size).save(path)


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _run(name: str, root: Path, split: str, **options: object) -> tuple[list, ConversionReport]:
    report = ConversionReport(name)
    return list(get_converter(name)(root, **options).records(split, report)), report


def _texts(rec) -> list[str]:
    return [m.text_content for m in rec.messages]


@pytest.fixture()
def bench(tmp_path: Path) -> Path:
    root = tmp_path / "geochat_data"
    ann = root / "benchmark" / "converted"
    _image(root / "images" / "G1.png")
    _image(root / "AID" / "Airport" / "airport_1.jpg")
    _image(root / "AID" / "MediumResidential" / "mediumresidential_2.jpg")
    _image(root / "UCMerced_LandUse" / "Images" / "denseresidential" / "denseresidential01.tif")
    _image(root / "RSVQA_HR" / "Data" / "10.tif")
    _image(root / "RSVQA_LR" / "Images_LR" / "3.tif")
    prompt = "Classify the image within one of the given classes: airport, medium residential.\n"
    _jsonl(ann / "aid.jsonl", [
        {"question_id": "Airport/airport_1", "image": "Airport/airport_1.png", "text": prompt, "ground_truth": "Airport"},
        {"question_id": "MediumResidential/mediumresidential_2", "image": "MediumResidential/mediumresidential_2.png",
         "text": prompt, "ground_truth": "MediumResidentialgt"},
    ])  # fmt: skip
    _jsonl(ann / "UCmerced.jsonl", [
        {"question_id": "denseresidential/denseresidential01", "image": "denseresidential/denseresidential01.tif",
         "text": "Classes: dense residential, forest\nAnswer in one word.", "ground_truth": "denseresidential"},
    ])  # fmt: skip
    suffix = "\nAnswer the question using a single word or phrase."
    _jsonl(ann / "hrben.jsonl", [
        {"question_id": 5, "image": "10.tif", "text": "Is there a road?" + suffix, "category": "presence"},
        {"question_id": 6, "image": "10.tif", "text": "How many?" + suffix, "category": "count"},
    ])  # fmt: skip
    (root / "RSVQA_HR" / "USGSanswers.json").write_text(json.dumps({"answers": [
        {"id": 5, "question_id": 5, "answer": "yes", "active": True},
        {"id": 6, "question_id": 6, "answer": "3", "active": False},
    ]}))  # fmt: skip
    _jsonl(
        ann / "lrben.jsonl", [{"question_id": 1, "image": "3.tif", "text": "Is it rural?", "category": "rural_urban"}]
    )
    _jsonl(ann / "region_captioning.jsonl", [
        {"question_id": 7, "image_id": "G1", "question": "{<10><20><30><40>}", "ground_truth": "a white car"},
    ])  # fmt: skip
    _jsonl(ann / "grounding_description.jsonl", [
        {"image_id": "G1.png", "description": "<p>a car</p> {<10><20><30><40>} on a road."},
    ])  # fmt: skip
    _jsonl(ann / "referring.jsonl", [
        {"question_id": 1, "image_id": "G1", "question": "the <p>white car</p>", "ground_truth": "{<10><20><30><40>}",
         "type": "ref"},
        {"question_id": 2, "image_id": "G1", "question": "the rotated ship", "ground_truth": "{<50><40><70><80>|<90>}"},
        {"question_id": 3, "image_id": "G1", "question": "all cars", "ground_truth": "{<1><1><5><5>}{<6><6><9><9>}"},
        {"question_id": 4, "image_id": "G1", "question": "nothing", "ground_truth": "no box"},
        {"question_id": 5, "image_id": "G9", "question": "absent image", "ground_truth": "{<1><1><5><5>}"},
    ])  # fmt: skip
    return root


def test_splits_are_the_files(bench: Path) -> None:
    assert get_converter("geochat_bench")(bench).splits() == [
        "aid", "UCmerced", "hrben", "lrben", "region_captioning", "grounding_description"
    ]  # fmt: skip
    assert get_converter("geochat_bench_referring")(bench).splits() == ["referring"]


def test_classification_quirks(bench: Path) -> None:
    recs, report = _run("geochat_bench", bench, "aid")
    assert [(r.id, r.images, _texts(r)[1], r.task) for r in recs] == [
        ("aid/Airport/airport_1", ("AID/Airport/airport_1.jpg",), "airport", "classification"),
        ("aid/MediumResidential/mediumresidential_2", ("AID/MediumResidential/mediumresidential_2.jpg",),
         "medium residential", "classification"),
    ]  # fmt: skip
    assert [p.type for p in recs[0].messages[0].content] == ["image", "text"]
    assert _texts(recs[0])[0] == "Classify the image within one of the given classes: airport, medium residential."
    assert report.rules == {"aid_image_extension": 2, "medium_residential_gt": 1}
    assert report.labels_mapped == {"Airport -> airport": 1, "MediumResidentialgt -> medium residential": 1}
    assert json.loads(recs[1].metadata)["class"] == "medium residential"
    recs, _ = _run("geochat_bench", bench, "UCmerced")
    assert _texts(recs[0])[1] == "dense residential"


def test_vqa_answers_joined_or_missing(bench: Path) -> None:
    recs, report = _run("geochat_bench", bench, "hrben")
    assert [(r.id, _texts(r), r.task) for r in recs] == [("hrben/5", ["Is there a road?", "yes"], "vqa")]
    assert recs[0].images == ("RSVQA_HR/Data/10.tif",)
    assert json.loads(recs[0].metadata) == {"category": "presence", "question_id": 5}
    assert report.skipped == {"missing_answer": 1}  # question 6's answer is inactive
    assert report.rules["answer_instruction_suffix"] == 1
    recs, report = _run("geochat_bench", bench, "lrben")
    assert recs == [] and report.skipped == {"missing_answer": 1}
    assert report.counters == {"answers_file_missing": 1}


def test_region_caption_and_grounded_description_boxes(bench: Path) -> None:
    (rec,) = _run("geochat_bench", bench, "region_captioning")[0]
    assert _texts(rec) == ["What is the object present at <box:0>", "a white car"]
    meta = json.loads(rec.metadata)
    # 0-100 grid on a 200x100 image: x * 2, y * 1
    assert meta["boxes"] == [[20.0, 20.0, 60.0, 20.0, 60.0, 40.0, 20.0, 40.0]]
    assert (meta["box_kinds"], meta["box_messages"], meta["image_sizes"]) == (["hbb"], [0], [[200, 100]])
    assert meta["box_source_format"] == "geochat" and rec.task == "region_caption"
    (rec,) = _run("geochat_bench", bench, "grounding_description")[0]
    assert _texts(rec) == [
        "Describe the image and give the location of each object you mention.",
        "a car <box:0> on a road.",
    ]
    assert rec.id == "grounding_description/G1.png" and json.loads(rec.metadata)["box_messages"] == [1]


def test_referring_records(bench: Path) -> None:
    recs, report = _run("geochat_bench_referring", bench, "referring")
    straight, rotated = recs
    assert (straight.id, straight.expression, straight.hbb, straight.quad) == (
        "referring/1", "the white car", (20.0, 20.0, 60.0, 40.0), None
    )  # fmt: skip
    assert (straight.image, straight.width, straight.height) == ("images/G1.png", 200, 100)
    # {<50><40><70><80>|<90>}: a 40x40 px box turned by 90 degrees is itself
    assert rotated.hbb == pytest.approx((100.0, 40.0, 140.0, 80.0))
    assert rotated.quad is not None and len(rotated.quad) == 8
    assert report.skipped == {"multiple_boxes": 1, "bad_box": 1, "missing_image": 1}


def test_bench_class() -> None:
    assert bench_class("golfcourse") == "golf course"
    assert bench_class("RailwayStation") == "railway station"
