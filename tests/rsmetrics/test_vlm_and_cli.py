"""VLM responses to detections, and the command line end to end on files written here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rsmetrics.cli import main
from rsmetrics.detection.vlm import detections_from_responses
from rsmetrics.errors import InvalidInputError
from rsmetrics.parsers import Frame


def test_responses_map_frames_and_count_unknown_labels():
    records = [
        # input frame 504x504 for a 1008x1008 image: coordinates double
        {"image_id": "a", "response": "10,10,20,10,20,20,10,20 small vehicle\n5,5,9,9 tank truck",
         "image_width": 1008, "image_height": 1008, "input_width": 504, "input_height": 504},
        {"image_id": "b", "response": "There are none.", "image_width": 10, "image_height": 10, "input_width": 10, "input_height": 10},
        {"image_id": "c", "response": "I see nothing here", "image_width": 10, "image_height": 10, "input_width": 10, "input_height": 10},
    ]  # fmt: skip
    dets, report = detections_from_responses(records, ["small-vehicle"])
    assert dets[0].labels == ("small-vehicle",)
    assert dets[0].boxes[0].tolist() == [20, 20, 40, 20, 40, 40, 20, 40]
    assert report.unknown_labels == {"tank truck": 1}
    assert (report.empty_answers, report.responses_without_boxes, report.boxes) == (1, 1, 1)


def test_missing_frame_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="input_width"):
        detections_from_responses([{"image_id": "a", "response": "", "image_width": 5, "image_height": 5}], ["x"])
    dets, _ = detections_from_responses(
        [{"image_id": "a", "response": "0,0,500,500 x", "image_width": 10, "image_height": 10}],
        ["x"],
        frame=Frame.grid(1000),
    )
    assert dets[0].boxes[0, 4:6].tolist() == [5, 5]


@pytest.fixture
def dota_files(tmp_path):
    labels = tmp_path / "labelTxt"
    labels.mkdir()
    # image a: two planes (one difficult); image b: no objects
    (labels / "a.txt").write_text(
        "imagesource:GoogleEarth\ngsd:0.5\n0 0 10 0 10 10 0 10 plane 0\n20 20 30 20 30 30 20 30 plane 1\n"
    )
    (labels / "b.txt").write_text("")
    task1 = tmp_path / "task1"
    task1.mkdir()
    (task1 / "Task1_plane.txt").write_text("a 0.9 0 0 10 0 10 10 0 10\nb 0.8 0 0 5 0 5 5 0 5\n")
    return tmp_path


def test_cli_detection_dota_preset(dota_files, capsys):
    out = dota_files / "result.json"
    code = main(["detection", "--gt", str(dota_files / "labelTxt"), "--pred", str(dota_files / "task1"),
                 "--classes", "plane", "--preset", "dota", "--json", str(out)])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    # npos 1 (the difficult plane is ignored); TP at 0.9 then FP at 0.8: (1, 1), (.5, 1) -> AP 1
    assert result["map"] == pytest.approx(1.0)
    assert result["classes"][0]["tp"] == [1] and result["classes"][0]["fp"] == [1]
    assert "mAP@0.5" in capsys.readouterr().out


def test_cli_detection_vlm_jsonl(dota_files):
    jsonl = dota_files / "vlm.jsonl"
    rows = [
        {"image_id": "a", "response": "0,0,10,0,10,10,0,10 plane\n20,20,30,20,30,30,20,30 plane", "image_width": 100,
         "image_height": 100, "input_width": 100, "input_height": 100},
        {"image_id": "b", "response": "There are none.", "image_width": 100, "image_height": 100, "input_width": 100, "input_height": 100},
    ]  # fmt: skip
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = dota_files / "vlm.json"
    assert main(["detection", "--gt", str(dota_files / "labelTxt"), "--pred", str(jsonl), "--classes", "plane",
                 "--preset", "mmrotate", "--ap-method", "area", "--json", str(out)]) == 0  # fmt: skip
    # mmrotate keeps the difficult plane: 2 GT, 2 TP, P = R = 1
    assert json.loads(out.read_text())["map"] == pytest.approx(1.0)


def test_cli_reports_bad_lines_with_file_and_line(dota_files, capsys):
    (dota_files / "labelTxt" / "a.txt").write_text("0 0 10 0 10 10 0 x plane 0\n")
    code = main(
        ["detection", "--gt", str(dota_files / "labelTxt"), "--pred", str(dota_files / "task1"), "--classes", "plane"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "a.txt:1" in err
    # lenient mode skips and counts it
    assert main(["detection", "--gt", str(dota_files / "labelTxt"), "--pred", str(dota_files / "task1"),
                 "--classes", "plane", "--lenient"]) == 0  # fmt: skip


def test_cli_vqa_and_classification(tmp_path, capsys):
    vqa = tmp_path / "vqa.jsonl"
    vqa.write_text("".join(json.dumps(r) + "\n" for r in [
        {"prediction": "Yes.", "ground_truth": "yes", "question_type": "presence"},
        {"prediction": "", "ground_truth": "no", "question_type": "presence"},
        {"prediction": "3", "ground_truth": "3", "question_type": "count"},
    ]))  # fmt: skip
    out = tmp_path / "vqa.json"
    assert main(["vqa", "--jsonl", str(vqa), "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    # 2 of 3 correct (the empty answer never counts); AA = (1/2 + 1) / 2
    assert d["overall_accuracy"] == pytest.approx(2 / 3)
    assert d["average_accuracy"] == pytest.approx(0.75)
    cls = tmp_path / "cls.jsonl"
    cls.write_text(
        json.dumps({"prediction": "Airport", "target": "airport"})
        + "\n"
        + json.dumps({"prediction": "airport", "target": "port"})
        + "\n"
    )
    out = tmp_path / "cls.json"
    assert main(["classification", "--jsonl", str(cls), "--classes", "airport,port", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["accuracy"] == pytest.approx(0.5)


def test_cli_caption(tmp_path, capsys):
    path = tmp_path / "cap.jsonl"
    path.write_text(
        json.dumps({"prediction": "Two ships in a harbor.", "references": ["Two ships docked in a harbor.", "Ships."]})
        + "\n"
        + json.dumps({"prediction": "A plane.", "reference": "A white plane on the runway."})
        + "\n"
    )
    out = tmp_path / "cap.json"
    assert main(["caption", "--jsonl", str(path), "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    # by hand, ROUGE-L (best precision and best recall over the references, as the toolkit):
    # "two ships in a harbor": P 5/5 against the first reference, R 1/1 against "ships": F 1;
    # "a plane" vs "a white plane on the runway": LCS 2, P 1, R 2/6; F = 2.44 P R / (R + 1.44 P)
    second = 2.44 * (2 / 6) / (2 / 6 + 1.44)
    assert d["rouge_l"] == pytest.approx((1.0 + second) / 2) and d["num_samples"] == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prediction": "x", "references": [1]}) + "\n")
    assert main(["caption", "--jsonl", str(bad)]) == 2
    assert "record 1: expected the reference caption(s)" in capsys.readouterr().err


def test_cli_merge_writes_task1(tmp_path):
    task1 = tmp_path / "patches"
    task1.mkdir()
    # the same plane seen by two overlapping patches: offset (0,0) and (5,0) -> one box after NMS
    (task1 / "Task1_plane.txt").write_text(
        "P1__1024__0___0 0.9 10 0 20 0 20 10 10 10\nP1__1024__5___0 0.8 5 0 15 0 15 10 5 10\n"
    )
    out = tmp_path / "merged"
    assert main(["merge", "--pred", str(task1), "--out", str(out), "--classes", "plane"]) == 0
    lines = (out / "Task1_plane.txt").read_text().splitlines()
    assert len(lines) == 1 and lines[0].split()[0] == "P1"


def test_console_script_help():
    proc = subprocess.run([sys.executable, "-m", "rsmetrics.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for sub in ("detection", "grounding", "vqa", "classification", "fair-compare", "merge"):
        assert sub in proc.stdout


def test_demo_main_job_runs(tmp_path):
    from rsmetrics.demo import main as demo_main

    assert demo_main(["--output", str(tmp_path), "--images", "60"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert 0 < summary["vlm_ap_nc50"] <= 1
    assert (tmp_path / "fair_compare.json").exists()
