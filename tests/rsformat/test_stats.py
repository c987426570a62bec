"""Dataset statistics: counts and sizes by hand, every family, the CLI and its plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rsformat.cli import main
from rsformat.hub import write_dataset
from rsformat.records import (
    ContentPart,
    ConversationRecord,
    DetectionObject,
    DetectionRecord,
    GroundingRecord,
    Message,
    ZoomRecord,
)
from rsformat.stats import dataset_stats


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    objs = DetectionObject.from_quads(
        ["ship", "ship", "plane"],
        [[0, 0, 10, 0, 10, 10, 0, 10], [0, 0, 20, 0, 20, 5, 0, 5], [5, 5, 45, 5, 45, 45, 5, 45]],
    )
    det = [
        DetectionRecord("a", "x", "train", "a.png", 100, 80, objs),
        DetectionRecord("b", "x", "train", "b.png", 60, 60, ()),
    ]
    grd = [
        GroundingRecord("g0", "refgeo/rsvg", "test", "a.png", 100, 100, "the white ship", (0.0, 0.0, 30.0, 30.0)),
        GroundingRecord("g1", "refgeo/dior_rsvg", "test", "a.png", 100, 100, "a plane", (10.0, 10.0, 20.0, 50.0)),
    ]
    zoom = [
        ZoomRecord("z0", "lrs", "test", "a.png", 1000, 1000, question="q", answer="a", rois=((0.0, 0.0, 100.0, 100.0),),
                   category="color"),
        ZoomRecord("z1", "lrs", "test", "a.png", 1000, 1000, question="q", answer="B", choices=("x", "y"),
                   category="count"),
    ]  # fmt: skip
    user = Message("user", (ContentPart("image", image=0), ContentPart("text", text="What is it?")))
    conv = [
        ConversationRecord("c0", "v", "train", ("a.png",), (user, Message.text("assistant", "A ship.")), task="vqa")
    ]
    for split_records, family, name in ((det, "detection", "det"), (grd, "grounding", "grd"), (zoom, "zoom", "zoom"),
                                        (conv, "conversation", "conv")):  # fmt: skip
        split = split_records[0].split
        write_dataset({split: split_records}, tmp_path, family=family, config_name=name, embed_images=False)
    return tmp_path


def test_stats_by_hand(folder: Path) -> None:
    stats = dataset_stats(folder)
    det = stats["det"]["train"]
    # boxes 10x10, 20x5 and 40x40: sqrt(area) 10, 10, 40
    assert det["objects"] == 3 and det["classes"] == {"plane": 1, "ship": 2}
    assert (det["box_size"]["median"], det["box_size"]["max"]) == (10.0, 40.0)
    assert det["objects_per_image"]["empty_images"] == 1 and det["objects_per_image"]["max"] == 3.0
    assert (det["width"]["min"], det["width"]["max"]) == (60.0, 100.0)
    grd = stats["grd"]["test"]
    # boxes 30x30 and 10x40: sqrt(area) 30 and 20; expressions of 3 and 2 words
    assert (grd["box_size"]["min"], grd["box_size"]["max"]) == (20.0, 30.0)
    assert (grd["expression_words"]["min"], grd["expression_words"]["max"]) == (2.0, 3.0)
    assert grd["sources"] == {"refgeo/dior_rsvg": 1, "refgeo/rsvg": 1}
    zoom = stats["zoom"]["test"]
    # one region of 100x100 in a 1000x1000 image: sqrt(1e4 / 1e6) = 0.1
    assert zoom["categories"] == {"color": 1, "count": 1} and zoom["multiple_choice"] == 1
    assert zoom["with_regions"] == 1 and zoom["region_relative_size"]["median"] == 0.1
    conv = stats["conv"]["train"]
    assert conv["tasks"] == {"vqa": 1} and conv["messages_per_record"]["max"] == 2.0
    assert conv["images_per_record"]["max"] == 1.0
    with pytest.raises(FileNotFoundError, match="no split 'val'"):
        dataset_stats(folder, configs=["det"], splits=["val"])
    with pytest.raises(FileNotFoundError, match="no rsformat dataset"):
        dataset_stats(folder / "nothing")


def test_stats_cli_writes_json_and_plots(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "stats"
    assert main(["stats", str(folder), "--config", "det", "--json", str(out / "s.json"), "--plot-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "det/train: 2 detection records" in text and "classes: ship 2, plane 1" in text
    assert json.loads((out / "s.json").read_text())["det"]["train"]["objects"] == 3
    assert (out / "det_train.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["stats", str(folder / "missing")]) == 2
