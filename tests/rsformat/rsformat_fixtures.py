"""Helpers of the rsformat tests: small images and records of every family."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from rsformat.records import (
    ContentPart,
    ConversationRecord,
    DetectionObject,
    DetectionRecord,
    GroundingRecord,
    Message,
    ToolCall,
    ZoomRecord,
)


def make_image(path: Path, width: int, height: int, color: tuple[int, int, int] = (10, 120, 200)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), color).save(path)


def family_records() -> dict[str, dict[str, list]]:
    """Records of each family, by split, whose images exist in ``image_root``."""
    det = [
        DetectionRecord(
            "a",
            "demo",
            "train",
            "images/a.png",
            64,
            48,
            (
                DetectionObject.from_quad("plane", [10.25, 5.5, 30.125, 5.5, 30.125, 20.75, 10.25, 20.75]),
                DetectionObject.from_quad("small-vehicle", [40, 30, 50, 32, 48, 42, 38, 40], difficult=2),
            ),
        ),
        DetectionRecord("b", "demo", "train", "images/b.png", 32, 32, ()),  # kept: "There are none."
    ]
    grd = [
        GroundingRecord(
            "g1",
            "demo",
            "val",
            "images/a.png",
            64,
            48,
            expression='the "red" car',
            hbb=(1.5, 2.0, 30.0, 40.0),
            quad=(1.5, 2.0, 30.0, 2.0, 30.0, 40.0, 1.5, 40.0),
            mask="masks/g1.png",
            category="car",
        ),
        GroundingRecord("g2", "demo", "val", "images/b.png", 32, 32, expression="pool", hbb=(0.0, 0.0, 8.0, 8.0)),
    ]
    zoom = [
        ZoomRecord(
            "z1",
            "lrs",
            "test",
            "images/big.png",
            200,
            150,
            question="What color?",
            answer="Green",
            rois=((10.0, 20.0, 50.0, 60.0),),
            category="color",
        ),
        ZoomRecord(
            "z2",
            "lrs",
            "test",
            "images/big.png",
            200,
            150,
            question="Which?",
            answer="B",
            rois=(),
            choices=("one", "two"),
        ),
    ]
    call = ToolCall("call_0", "image_zoom_in", '{"bbox": [1, 2, 30, 40]}')
    conv = [
        ConversationRecord(
            "c1",
            "demo",
            "train",
            ("images/a.png", "images/b.png"),
            (
                Message.text("system", "You are helpful."),
                Message(
                    "user",
                    (
                        ContentPart("image", image=0),
                        ContentPart("image", image=1),
                        ContentPart("text", text="Compare."),
                    ),
                ),
                Message("assistant", (), (call,)),
                Message("tool", (ContentPart("text", text="ok"),), (), "call_0"),
                Message.text("assistant", "The first is blue."),
            ),
            task="temporal",
            tools='[{"type": "function"}]',
            metadata='{"k": 1}',
        ),
    ]
    return {
        "detection": {"train": det},
        "grounding": {"val": grd},
        "zoom": {"test": zoom},
        "conversation": {
            "train": conv,
            "test": [
                ConversationRecord(
                    "c2", "demo", "test", (), (Message.text("user", "hi"), Message.text("assistant", "hello"))
                )
            ],
        },
    }
