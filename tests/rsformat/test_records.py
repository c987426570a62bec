"""The record families: canonical boxes, row round trips through parquet, the converter framework."""

from __future__ import annotations

import datasets
import pytest

from rsformat.converters.base import ConversionReport, UnsafePathError, safe_join
from rsformat.features import features_for
from rsformat.records import (
    ConversationRecord,
    DetectionObject,
    DetectionRecord,
    GroundingRecord,
    Message,
    ToolCall,
    ZoomRecord,
    record_class,
)


def test_detection_object_is_canonical_with_derived_boxes():
    # a 4x2 rectangle given counter-clockwise from the bottom-left corner
    obj = DetectionObject.from_quad("ship", [0, 2, 4, 2, 4, 0, 0, 0], difficult=2)
    assert obj.quad == (0.0, 0.0, 4.0, 0.0, 4.0, 2.0, 0.0, 2.0)  # clockwise from the top-left
    assert obj.hbb == (0.0, 0.0, 4.0, 2.0)
    assert obj.obb == (2.0, 1.0, 4.0, 2.0, 0.0)
    assert obj.difficult == 2


RECORDS = [
    DetectionRecord("a", "dota", "train", "images/a.png", 100, 80, (DetectionObject.from_quad("plane", [1, 1, 9, 1, 9, 5, 1, 5]),)),
    DetectionRecord("empty", "dota", "train", "images/b.png", 100, 80, ()),  # kept: "There are none."
    GroundingRecord("g", "refgeo/dior_rsvg", "train", "images/a.png", 100, 80, "the plane", (1.0, 1.0, 9.0, 5.0), None, None, "plane"),
    ZoomRecord("z", "lrs_vqa", "test", "image/L.png", 4000, 3000, "What color?", "B", ((10.0, 20.0, 300.0, 400.0),), ("red", "white"), "object color"),
    ConversationRecord(
        "c", "vhm", "train", ("images/a.png",),
        (
            Message("user", (Message.text("user", "Is there a ship?").content[0],)),
            Message("assistant", (), (ToolCall("call_0", "image_zoom_in", '{"bbox": [1, 2, 3, 4]}'),)),
            Message.text("tool", "Here's the zoomed-in image.", tool_call_id="call_0"),
            Message.text("assistant", "No."),
        ),
        "vqa",
    ),
]  # fmt: skip


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.id)
def test_rows_round_trip_through_parquet(record, tmp_path):
    family = record.family
    ds = datasets.Dataset.from_list([record.to_row()], features=features_for(family, embed_images=False))
    path = tmp_path / "train.parquet"
    ds.to_parquet(str(path))
    back = datasets.load_dataset("parquet", data_files=str(path), split="train")
    assert record_class(family).from_row(back[0]) == record


def test_tool_call_arguments_are_json():
    assert ToolCall("x", "image_zoom_in", '{"bbox": [1, 2, 3, 4]}').parsed_arguments() == {"bbox": [1, 2, 3, 4]}


def test_unknown_family():
    with pytest.raises(ValueError, match="record family"):
        record_class("segmentation")


@pytest.mark.parametrize("bad", ["../x.png", "a/../../x.png", "/etc/passwd", "C:\\x.png", "C:/x.png"])
def test_safe_join_refuses_escapes(tmp_path, bad):
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path, bad)


def test_safe_join_accepts_inner_paths(tmp_path):
    assert safe_join(tmp_path, "a/./b/../c.png") == (tmp_path / "a" / "c.png").resolve()


def test_report_merge_counts_everything():
    a, b = ConversionReport("dota"), ConversionReport("dota")
    a.records_in, b.records_in = 3, 4
    a.skip("x.txt:1", "bad_number")
    b.skip("y.txt:2", "bad_number")
    b.count("empty_images_kept", 2)
    b.mapped("Ship", "ship")
    merged = a.merge(b).summary()
    assert merged["records_in"] == 7
    assert merged["skipped"] == {"bad_number": 2}
    assert merged["counters"] == {"empty_images_kept": 2}
    assert merged["labels_mapped"] == {"Ship -> ship": 1}
    assert len(merged["messages"]) == 2
