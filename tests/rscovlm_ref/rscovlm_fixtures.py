"""Helpers of the rscovlm_ref tests (importable by the tests): rendered records and their images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rscovlm_ref.data.encode import materialize_images
from rsformat.records import DetectionObject, DetectionRecord, Message, ZoomRecord
from rsformat.render import RenderFrame, RenderStyle, render_conversation


@dataclass
class Rendered:
    """A record rendered to a conversation, with its materialised images."""

    messages: list[Message]
    images: list[Any]
    record_images: tuple[str, ...]
    root: Path


def make_image(path: Path, width: int, height: int, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    # smooth gradients plus noise: crops of different places differ
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) * 255 // (width + height)], axis=-1)
    noise = rng.integers(0, 40, size=(height, width, 3))
    Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(path)


FRAME = RenderFrame.smart(min_pixels=112 * 112, max_pixels=224 * 224)


def zoom_record() -> ZoomRecord:
    return ZoomRecord(
        "z1",
        "lrs_vqa",
        "train",
        "zoom.png",
        640,
        480,
        question="What color is the car?",
        answer="The car is red.",
        rois=((400.0, 300.0, 520.0, 380.0),),
    )


def detection_record() -> DetectionRecord:
    objects = (
        DetectionObject.from_quad("plane", [20, 30, 80, 30, 80, 70, 20, 70]),
        DetectionObject.from_quad("ship", [150, 100, 210, 110, 200, 150, 140, 140]),
    )
    return DetectionRecord("d1", "dota", "train", "det.png", 300, 200, objects)


def rendered(record: Any, root: Path, style: RenderStyle) -> Rendered:
    conv = render_conversation(record, FRAME, style)
    images = materialize_images(conv.images, root, FRAME)
    return Rendered(list(conv.messages), images, conv.images, root)
