"""Ask, ground and detect on your own images: the everyday inference API.

:class:`Predictor` wraps an :class:`~rscovlm_ref.infer.engine.InferenceEngine`
and builds the prompts the model was trained on (``rsformat.render.render_prompt``)
from an image and a question, an expression or a class list; answers are read
back with rsmetrics' parsers in the frame the image was shown in and returned in
original pixels.

* :meth:`Predictor.ask`: free-form question, optionally with the Zoom-in Chain;
* :meth:`Predictor.ground`: the box of a referring expression;
* :meth:`Predictor.detect`: oriented detection of the given classes. A large
  image is cut into overlapping windows (``patch_size``/``gap``, the DOTA
  splitter's windows), every window answered (all in one batch), and the boxes
  merged back with polygon NMS, as for DOTA test submissions.

:func:`draw_detections` writes a PNG with the boxes drawn on the image.

Example (a scripted backend stands in for a model):
    >>> from PIL import Image
    >>> class Fixed:
    ...     def generate(self, requests):
    ...         return ["28,28,84,84 the car"] * len(requests)
    >>> out = Predictor(Fixed()).ground(Image.new("RGB", (800, 800)), "the car")
    >>> out.hbb  # 800 x 800 is shown at 812 x 812 (a multiple of 28): 28 * 800 / 812 = 27.59
    (27.59, 27.59, 82.76, 82.76)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rscovlm_ref.infer.engine import InferenceAnswer, InferenceEngine, InferenceItem
from rsformat.records import ContentPart, DetectionRecord, GroundingRecord, Message, ZoomRecord
from rsformat.render import RenderFrame, RenderStyle, render_prompt
from rsmetrics.detection.types import ImageDetections
from rsmetrics.parsers import Frame, parse_response

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["DetectionOutput", "GroundingOutput", "Predictor", "draw_detections", "load_image"]


def load_image(image: str | os.PathLike[str] | Image.Image) -> Image.Image:
    """An RGB PIL image from a path or an image; a clear error naming the file when it cannot be read."""
    from rscovlm_ref.data.encode import open_image_bytes

    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        try:
            data = path.read_bytes()
        except OSError as err:
            raise FileNotFoundError(f"cannot read image {str(path)!r}: {err}") from None
        return open_image_bytes(data, str(path))
    return image.convert("RGB") if image.mode != "RGB" else image


@dataclass
class GroundingOutput:
    """The box of an expression in original pixels (``None`` when the answer has no readable box)."""

    hbb: tuple[float, float, float, float] | None
    quad: tuple[float, ...] | None
    answer: InferenceAnswer


@dataclass
class DetectionOutput:
    """Detections in original pixels (quads, no scores), and how they were obtained.

    Attributes:
        detections: The image's detections (``rsmetrics`` type, ready to evaluate or write as Task1).
        answers: One answer per window (one window unless the image was tiled).
        windows: Top-left corners of the windows, in original pixels.
        unparsed: Box-like candidates that could not be read, over all windows.
        unknown_labels: Labels outside ``classes``, with counts (left out).
        truncated: Windows whose answer stopped at the token limit (their last objects are missing).
    """

    detections: ImageDetections
    answers: list[InferenceAnswer]
    windows: list[tuple[int, int]]
    unparsed: int = 0
    unknown_labels: dict[str, int] = field(default_factory=dict)
    truncated: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_id": self.detections.image_id,
            "objects": [
                {"label": label, "quad": [round(float(v), 2) for v in box]}
                for label, box in zip(self.detections.labels, self.detections.boxes)
            ],
            "windows": [list(w) for w in self.windows],
            "unparsed": self.unparsed,
            "unknown_labels": self.unknown_labels,
            "truncated": self.truncated,
            "answers": [a.text for a in self.answers],
        }


class Predictor:
    """Inference on single images (see the module doc).

    Args:
        backend: A generation backend (``HFBackend``, ``VLLMBackend``, or any ``generate``).
        min_pixels, max_pixels: The input budget (the training one by default: 224² to 1008²).
        max_zoom_rounds: Zoom calls executed per question (training teaches one).
    """

    def __init__(
        self, backend: Any, *, min_pixels: int = 224 * 224, max_pixels: int = 1008 * 1008, max_zoom_rounds: int = 1
    ) -> None:
        self.engine = InferenceEngine(backend, max_zoom_rounds=max_zoom_rounds)
        self.min_pixels, self.max_pixels = min_pixels, max_pixels

    @classmethod
    def from_pretrained(
        cls,
        path: str,
        *,
        backend: str = "hf",
        min_pixels: int = 224 * 224,
        max_pixels: int = 1008 * 1008,
        max_zoom_rounds: int = 1,
        **backend_kwargs: Any,
    ) -> Predictor:
        """A predictor on a checkpoint with the ``"hf"`` or ``"vllm"`` backend."""
        from rscovlm_ref.infer.backends import HFBackend, VLLMBackend

        if backend == "vllm":
            built: Any = VLLMBackend(path, max_images=max_zoom_rounds + 1, **backend_kwargs)
        elif backend == "hf":
            built = HFBackend.from_pretrained(path, min_pixels=min_pixels, max_pixels=max_pixels, **backend_kwargs)
        else:
            raise ValueError(f"Expected backend 'hf' or 'vllm', but got {backend!r}")
        return cls(built, min_pixels=min_pixels, max_pixels=max_pixels, max_zoom_rounds=max_zoom_rounds)

    def frame(self, max_mode: bool = False) -> RenderFrame:
        """The input frame; ``max_mode`` shows every image at ``max_pixels`` (the paper's Max Mode)."""
        return RenderFrame.smart(self.max_pixels if max_mode else self.min_pixels, self.max_pixels)

    # ------------------------------------------------------------------ tasks

    def ask(
        self, image: str | os.PathLike[str] | Image.Image, question: str, *, zoom: bool = False, max_mode: bool = False
    ) -> InferenceAnswer:
        """Answer a question on an image; ``zoom``: the Zoom-in Chain prompt, with the model's zoom executed."""
        im = load_image(image)
        frame = self.frame(max_mode)
        if zoom:
            record = ZoomRecord("q", "user", "test", "image", im.width, im.height, question=question)
            messages = render_prompt(record, frame, RenderStyle(tool_format="qwen"))
        else:
            messages = [Message("user", (ContentPart("image", image=0), ContentPart("text", text=question)))]
        return self.engine.run([InferenceItem("q", messages, [im], frame, zoom=zoom)])[0]

    def ground(
        self,
        image: str | os.PathLike[str] | Image.Image,
        expression: str,
        *,
        style: str = "plain-hbb",
        max_mode: bool = False,
    ) -> GroundingOutput:
        """The box of ``expression`` (the first box of the answer), in original pixels, rounded to 0.01."""
        im = load_image(image)
        frame, render_style = self.frame(max_mode), RenderStyle.parse(style)
        record = GroundingRecord("g", "user", "test", "image", im.width, im.height, expression, (0.0, 0.0, 1.0, 1.0))
        item = InferenceItem("g", render_prompt(record, frame, render_style), [im], frame)
        answer = self.engine.run([item])[0]
        parsed = parse_response(
            answer.text, render_style.dialect, frame=Frame.pixels(*answer.input_size), image_size=(im.width, im.height)
        )
        if len(parsed.boxes) == 0:
            return GroundingOutput(None, None, answer)
        quad = np.asarray(parsed.boxes[0], dtype=np.float64)
        xs, ys = quad[0::2], quad[1::2]
        hbb = tuple(round(float(v), 2) for v in (xs.min(), ys.min(), xs.max(), ys.max()))
        return GroundingOutput(hbb, tuple(round(float(v), 2) for v in quad), answer)  # type: ignore[arg-type]

    def detect(
        self,
        image: str | os.PathLike[str] | Image.Image,
        classes: Sequence[str],
        *,
        style: str = "plain-quad",
        patch_size: int | None = None,
        gap: int = 200,
        max_mode: bool = False,
        image_id: str = "image",
        iou_threshold: float = 0.1,
    ) -> DetectionOutput:
        """Detect ``classes`` (every class asked, as trained); tile when the image exceeds ``patch_size``.

        Raises:
            ValueError: an empty class list, or ``gap`` not below ``patch_size``.
        """
        from rsformat.split import patch_name, sliding_windows
        from rsmetrics.detection.vlm import detections_from_responses
        from rsmetrics.merge import merge_patch_detections

        names = [str(c) for c in classes]
        if not names:
            raise ValueError("Expected at least one class to detect")
        im = load_image(image)
        frame, render_style = self.frame(max_mode), RenderStyle.parse(style)
        if patch_size is not None and (im.width > patch_size or im.height > patch_size):
            windows = [(int(x), int(y)) for x, y in sliding_windows(im.width, im.height, patch_size, gap)]
            size = patch_size
        else:
            windows, size = [(0, 0)], 0
        items, records = [], []
        for x, y in windows:
            crop = im.crop((x, y, x + size, y + size)) if size else im  # beyond the border: black, as the splitters pad
            name = patch_name(image_id, x, y, size=size) if size else image_id
            record = DetectionRecord(name, "user", "test", "image", crop.width, crop.height, ())
            items.append(
                InferenceItem(name, render_prompt(record, frame, render_style, categories=names), [crop], frame)
            )
            records.append(record)
        answers = self.engine.run(items)
        responses = [
            {"image_id": r.id, "response": a.text, "image_width": r.width, "image_height": r.height,
             "input_width": a.input_size[0], "input_height": a.input_size[1]}  # type: ignore[index]
            for r, a in zip(records, answers)
        ]  # fmt: skip
        per_window, report = detections_from_responses(responses, names, dialect=render_style.dialect)
        if size:
            merged = merge_patch_detections(per_window, iou_threshold=iou_threshold)
            detections = merged[0] if merged else ImageDetections(image_id, np.zeros((0, 8)), [], None, "quad")
        else:
            detections = per_window[0]
        return DetectionOutput(
            detections,
            answers,
            windows,
            report.unparsed_candidates,
            dict(report.unknown_labels),
            sum(a.truncated for a in answers),
        )


def draw_detections(
    image: str | os.PathLike[str] | Image.Image,
    boxes: Sequence[Sequence[float]] | np.ndarray,
    labels: Sequence[str],
    path: str | os.PathLike[str],
    *,
    width: int = 3,
) -> Path:
    """Write ``image`` with the quads (or hbbs) drawn and labelled, one colour per label, as PNG (atomically)."""
    from PIL import ImageDraw

    from rsmetrics.geometry import hbb_to_quad

    canvas = load_image(image).copy()
    draw = ImageDraw.Draw(canvas)
    palette = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
               (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)]  # fmt: skip
    colours: dict[str, tuple[int, int, int]] = {}
    array = np.asarray(boxes, dtype=np.float64)
    rows = array.reshape(len(labels), -1) if len(labels) else np.zeros((0, 8))
    for box, label in zip(rows, labels):
        quad = hbb_to_quad(box) if box.shape[0] == 4 else box
        colour = colours.setdefault(label, palette[len(colours) % len(palette)])
        points = [(float(quad[i]), float(quad[i + 1])) for i in range(0, 8, 2)]
        draw.line([*points, points[0]], fill=colour, width=width)
        draw.text((points[0][0] + 2, points[0][1] + 2), label, fill=colour)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    canvas.save(tmp, format="PNG")
    os.replace(tmp, out)
    return out
