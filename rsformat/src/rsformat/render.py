"""Render a record as the chat messages a model trains on: ``render(record, frame, style)``.

Boxes are stored in original-image pixels; a model sees them in its own
coordinate frame (:class:`RenderFrame`): the pixels of its resized input image
(the scalable boxes of the paper, Qwen2.5-VL's ``smart_resize``), a fixed
input size, or a normalised grid (0-1000, 0-100). :class:`RenderStyle` picks
plain text (RSCoVLM) or Qwen2.5-VL JSON, and hbb, quad or obb boxes.

The inverse is :func:`rsmetrics.parsers.parse_response` with
``style.dialect`` and ``frame.parser_frame(width, height)``: parsing an
assistant answer gives the stored boxes back up to the rounding (at most half
a frame unit per coordinate, scaled back to the image; obb angles to half a
degree). The tests prove it for every style and frame. Two limits are
inherent to the formats, not to the rendering: an oriented box in a frame
scaled differently along x and y is a parallelogram, so the model is given
its minimum-area rectangle in the frame (exact there up to rounding; mapping
it back is rsmetrics' minimum-area rectangle again); and a plain-text label
that starts with a digit or a comma is read as part of the numbers.

What is kept from RSCoVLM, and what is fixed (see the project notes):

* prompts: the main templates (``find the {categories}`` in plain text, the
  main JSON templates), the plain system prompts, ``There are none.`` for
  empty images, categories sorted alphabetically and objects by
  (category, starting vertex ``y`` then ``x``);
* fixed: coordinates are rounded once, half up, in the final frame (RSCoVLM
  truncated with ``int()`` twice); the quad prompts say *clockwise* and the
  quads are clockwise, for detection and grounding alike; JSON is always
  ``json.dumps`` (a ``"`` in an expression stays valid JSON); the grounding
  JSON prompt has its own template (RSCoVLM formatted the detection template
  with the wrong key); ``find the the ...`` is avoided when an expression
  starts with "the".

Boxes in conversation text: converters of conversation data (GeoChat,
VRSBench, TEOChatlas) replace every box of a message by a placeholder
``<box:K>`` (:func:`box_token`) and store the box in ``metadata`` (see
:class:`TextBoxes`: canonical quads in original pixels, the kind the source
wrote, the image each box lies on, the images' sizes). :func:`render`
substitutes each placeholder with the box in the frame of *its own image*
(``image_sizes[box_images[K]]`` through the frame) and in the style's box
kind, rounded once by the helper detection and grounding use (``style.box``
decides for every box: a source's oriented box asked for as ``hbb`` is its
enclosing box, as in detection; ``box_kinds`` only records what the source
wrote). An assistant
text part made only of boxes (``<box:0>``, ``<box:0>, <box:1>``: a
referring answer) is written as a grounding answer is, so the two teach one
format: plain, one ``numbers`` line per box; JSON, the fenced list of
``{"bbox_2d": [...]}`` objects (no label). Anywhere else a box is inline:
plain ``x1,y1,x2,y2`` (or the 8 quad / 5 obb numbers), JSON
``[x1, y1, x2, y2]``. Inline boxes are for the model to read; only the
box-only answers are meant for :func:`rsmetrics.parsers.parse_response`.

Zoom records render to the Zoom-in Chain: system (tool list), user (image,
question, zoom instruction), assistant tool call (the region of interest in the
model frame; several regions are merged into their enclosing box), tool
result (a crop of the original image, see :data:`CROP_PREFIX`), assistant
answer.

Example:
    >>> from rsformat.records import DetectionObject, DetectionRecord
    >>> rec = DetectionRecord("a", "demo", "train", "a.png", 1000, 500,
    ...                       (DetectionObject.from_quad("plane", [100, 100, 300, 100, 300, 200, 100, 200]),))
    >>> msgs = render(rec, RenderFrame.pixels(500, 252), RenderStyle("plain", "hbb"))
    >>> [m.role for m in msgs], msgs[-1].text_content
    (['system', 'user', 'assistant'], '50,50,150,101 plane')
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from rsformat.records import (
    ContentPart,
    ConversationRecord,
    DetectionRecord,
    GroundingRecord,
    Message,
    Record,
    ToolCall,
    ZoomRecord,
)
from rsformat.tools import IMAGE_ZOOM_IN, ZOOM_TOOL_NAME, format_tool_call, tool_system_prompt, tools_json
from rsmetrics.geometry import canonical_quad, hbb_to_quad, obb_to_quad, quad_to_hbb, quad_to_obb
from rsmetrics.labels import prompt_category_order
from rsmetrics.parsers import Frame

__all__ = [
    "BOX_TOKEN_PATTERN",
    "CROP_PREFIX",
    "NONE_ANSWER",
    "ZOOM_INSTRUCTION",
    "ZOOM_RESULT",
    "RenderFrame",
    "RenderStyle",
    "TextBoxes",
    "box_token",
    "crop_box",
    "crop_ref",
    "format_messages",
    "parse_crop_ref",
    "render",
    "render_conversation",
    "render_prompt",
    "smart_resize",
]

NONE_ANSWER = "There are none."
"""The answer for an image without objects of the asked categories."""

CROP_PREFIX = "crop:"
"""Prefix of a virtual image entry: ``crop:x1,y1,x2,y2`` is the crop of the
record's first image (``images[0]``, the original, full resolution) at those
integer pixel bounds (``x2``, ``y2`` exclusive, PIL's ``Image.crop``). A zoom
record's rendered conversation lists ``[image, "crop:..."]`` and its tool
result points at index 1; a loader or inference engine resolves the entry by
cropping the original, never the resized image."""

ZOOM_INSTRUCTION = "\nZoom in to the region of interest and answer the question."
ZOOM_RESULT = "Here's the zoomed-in image. You can complete your task now."
_SHORT_ANSWER = "Answer the question using a single word or phrase."

# RSCoVLM's plain system prompts; the oriented ones state the conventions they follow
_PLAIN_SYSTEM = {
    "hbb": "As an AI assistant, you specialize in accurate image object detection, "
    "delivering coordinates in plain text format 'x1,y1,x2,y2 object'.",
    "quad": "As an AI assistant, you specialize in accurate oriented object detection, "
    "delivering coordinates of the polygon vertices in clockwise order, starting from the top-most vertex, "
    "in plain text format 'x1,y1,x2,y2,x3,y3,x4,y4 object'.",
    "obb": "As an AI assistant, you specialize in accurate oriented object detection, "
    "delivering coordinates in plain text format 'x,y,w,h,a object', "
    "where the angle a is in degrees, clockwise.",
}
_JSON_SYSTEM = {
    "hbb": "",  # Qwen2.5-VL's native format needs none (RSCoVLM sends none)
    "quad": "You are an AI assistant specializing in oriented object detection. Represent objects with "
    "quadrant bbox: the coordinates of the vertices of the oriented bounding boxes in clockwise order, "
    "starting from the top-most vertex.",
    "obb": "You are an AI assistant specializing in oriented object detection. Represent objects with: "
    "center (x,y), width (w), height (h), and rotation angle in degrees, clockwise.",
}
_JSON_KEY = {"hbb": "bbox_2d", "quad": "quadrant bbox", "obb": "oriented bbox"}
_DETECTION_PROMPT = {
    "plain": "find the {categories}",
    "json_hbb": "Locate every item from the category list in the image and output the coordinates in JSON "
    "format. The category set includes {categories}.",
    "json_oriented": "Locate every item from the category list in the image and output the oriented bbox "
    "coordinates in JSON format. The category set includes {categories}.",
}
_GROUNDING_PROMPT = {
    "plain": "find the {expression}",
    "json_hbb": "Locate the {expression}, output the bbox coordinates using JSON format.",
    "json_quad": "Locate the {expression}, output the quadrant bbox coordinates using JSON format.",
    "json_obb": "Locate the {expression}, output the oriented bbox coordinates using JSON format.",
}


# --------------------------------------------------------------------------- frames


def smart_resize(
    height: int, width: int, factor: int = 28, min_pixels: int = 224 * 224, max_pixels: int = 1008 * 1008
) -> tuple[int, int]:
    """Qwen2.5-VL's input size for an image: ``(height, width)``, multiples of ``factor``.

    The rule of ``qwen_vl_utils.smart_resize``: round each side to a multiple
    of ``factor`` (at least ``factor``); if that is above ``max_pixels``, scale
    both sides down by ``sqrt(h * w / max_pixels)`` and floor; if below
    ``min_pixels``, scale up and ceil. Defaults are RSCoVLM's multi-task
    budget (224² to 1008²).

    Raises:
        ValueError: for a non-positive size or an aspect ratio above 200.

    Example:
        >>> smart_resize(512, 512)
        (504, 504)
        >>> smart_resize(256, 256, min_pixels=448 * 448)
        (448, 448)
        >>> smart_resize(4000, 3000)
        (1148, 868)
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"Expected a positive image size, but got {height}x{width} (height x width)")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"Expected an aspect ratio of at most 200, but got {height}x{width} (height x width)")
    # Python's round() (half to even) as in qwen_vl_utils, so sizes match the processor's exactly
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


@dataclass(frozen=True)
class RenderFrame:
    """The coordinate frame a model's boxes are written in.

    Build one with a constructor: :meth:`smart` (pixels of the input image as
    ``smart_resize`` sizes it: depends on each image), :meth:`pixels` (every
    image resized to one fixed size) or :meth:`grid` (``0..size`` on both
    axes, whatever the image). :meth:`parse` reads ``"smart"``,
    ``"smart:MIN:MAX"`` (pixel budgets), ``"504x504"`` or ``"grid1000"``.

    Example:
        >>> RenderFrame.smart().size(512, 512)
        (504, 504)
        >>> RenderFrame.parse("grid1000").size(640, 480)
        (1000, 1000)
        >>> RenderFrame.parse("500x252").parser_frame(1000, 500)
        Frame(kind='pixels', width=500.0, height=252.0)
    """

    kind: Literal["smart", "pixels", "grid"]
    width: int = 0
    height: int = 0
    factor: int = 28
    min_pixels: int = 224 * 224
    max_pixels: int = 1008 * 1008

    @classmethod
    def smart(cls, min_pixels: int = 224 * 224, max_pixels: int = 1008 * 1008, factor: int = 28) -> RenderFrame:
        """Pixels of the ``smart_resize``d input (the paper's scalable boxes)."""
        return cls("smart", factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)

    @classmethod
    def pixels(cls, width: int, height: int) -> RenderFrame:
        """Pixels of a fixed ``width x height`` input."""
        if width <= 0 or height <= 0:
            raise ValueError(f"Expected a positive frame size, but got {width}x{height}")
        return cls("pixels", int(width), int(height))

    @classmethod
    def grid(cls, size: int = 1000) -> RenderFrame:
        """A normalised grid ``0..size`` (Qwen2-VL and Qwen3-VL: 1000; GeoChat: 100)."""
        if size <= 0:
            raise ValueError(f"Expected a positive grid size, but got {size}")
        return cls("grid", int(size), int(size))

    @classmethod
    def parse(cls, text: str) -> RenderFrame:
        """A frame from its command-line spelling (see the class doc)."""
        t = text.strip().lower()
        if t == "smart":
            return cls.smart()
        if m := re.fullmatch(r"smart:(\d+):(\d+)", t):
            return cls.smart(int(m.group(1)), int(m.group(2)))
        if m := re.fullmatch(r"grid(\d+)", t):
            return cls.grid(int(m.group(1)))
        if m := re.fullmatch(r"(\d+)x(\d+)", t):
            return cls.pixels(int(m.group(1)), int(m.group(2)))
        raise ValueError(f"Expected a frame like 'smart', 'smart:MIN:MAX', '504x504' or 'grid1000', but got {text!r}")

    def size(self, image_width: int, image_height: int) -> tuple[int, int]:
        """``(width, height)`` of the frame for an image of that size."""
        if self.kind == "smart":
            h, w = smart_resize(image_height, image_width, self.factor, self.min_pixels, self.max_pixels)
            return w, h
        return self.width, self.height

    def input_size(self, image_width: int, image_height: int) -> tuple[int, int] | None:
        """``(width, height)`` the image must be resized to, or ``None`` for a grid (any size works)."""
        return None if self.kind == "grid" else self.size(image_width, image_height)

    def parser_frame(self, image_width: int, image_height: int) -> Frame:
        """The :class:`rsmetrics.parsers.Frame` that reads boxes rendered in this frame."""
        if self.kind == "grid":
            return Frame.grid(self.width)
        return Frame.pixels(*self.size(image_width, image_height))

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("kind", "width", "height", "factor", "min_pixels", "max_pixels")}


@dataclass(frozen=True)
class RenderStyle:
    """How answers are written.

    Attributes:
        output: ``"plain"`` (RSCoVLM, one ``numbers label`` line per box) or
            ``"json"`` (Qwen2.5-VL: ``bbox_2d``; RSCoVLM's ``"quadrant bbox"``
            and ``"oriented bbox"``).
        box: ``"hbb"``, ``"quad"`` or ``"obb"``.
        prompt: Overrides the user instruction; ``{categories}`` (detection) and
            ``{expression}`` (grounding) are filled in. Zoom and conversation
            records ignore it.
        system: Overrides the system prompt of detection and grounding
            (``""`` sends none).
        tool_format: ``"openai"``: the zoom call is an assistant ``tool_calls``
            entry answered by a ``tool`` message (what datasets store);
            ``"qwen"``: the call is ``<tool_call>`` text and the crop comes back
            in a user message (RSCoVLM's training text).
        zoom: Render zoom records as the Zoom-in Chain (``False``: plain QA).

    Example:
        >>> RenderStyle.parse("plain-quad").dialect
        'rscovlm_plain'
    """

    output: Literal["plain", "json"] = "plain"
    box: Literal["hbb", "quad", "obb"] = "hbb"
    prompt: str | None = None
    system: str | None = None
    tool_format: Literal["openai", "qwen"] = "openai"
    zoom: bool = True

    def __post_init__(self) -> None:
        if self.output not in ("plain", "json"):
            raise ValueError(f"Expected output 'plain' or 'json', but got {self.output!r}")
        if self.box not in ("hbb", "quad", "obb"):
            raise ValueError(f"Expected box 'hbb', 'quad' or 'obb', but got {self.box!r}")
        if self.tool_format not in ("openai", "qwen"):
            raise ValueError(f"Expected tool_format 'openai' or 'qwen', but got {self.tool_format!r}")

    @classmethod
    def parse(cls, text: str) -> RenderStyle:
        """``"plain-quad"``, ``"json-hbb"``... (output, then box)."""
        m = re.fullmatch(r"(plain|json)-(hbb|quad|obb)", text.strip().lower())
        if m is None:
            raise ValueError(f"Expected a style like 'plain-quad' or 'json-hbb', but got {text!r}")
        return cls(m.group(1), m.group(2))  # type: ignore[arg-type]

    @property
    def dialect(self) -> str:
        """The :mod:`rsmetrics.parsers` dialect that reads this style back."""
        return "rscovlm_plain" if self.output == "plain" else "qwen25vl_json"


# --------------------------------------------------------------------------- boxes


def _round(values: np.ndarray) -> np.ndarray:
    """Round half up, once, in the final frame (deterministic, unlike banker's rounding)."""
    return np.floor(values + 0.5)


def _ints(values: np.ndarray) -> list[int]:
    # int() also turns -0.0 into 0
    return [int(v) for v in values]


@dataclass
class _Box:
    numbers: list[int]
    key: tuple[int, ...]  # (start y, start x, all the numbers) for the answer order


def _frame_box(quad: Sequence[float], hbb: Sequence[float], kind: str, sx: float, sy: float) -> _Box:
    """One box in the frame, rounded once; its sort key is its starting vertex."""
    if kind == "hbb":
        b = np.asarray(hbb, dtype=np.float64) * [sx, sy, sx, sy]
        numbers = _round(b)
        start = numbers[:2]
    elif kind == "quad":
        q = np.asarray(quad, dtype=np.float64).reshape(4, 2) * [sx, sy]
        # rounding may create a tie for the top-most vertex: canonical order is restored on the integers
        numbers = canonical_quad(_round(q.reshape(8)))
        start = numbers[:2]
    else:
        q = np.asarray(quad, dtype=np.float64).reshape(4, 2) * [sx, sy]
        obb = quad_to_obb(q.reshape(8))  # the rectangle the model sees in its own frame
        numbers = _round(obb)
        if numbers[4] >= 90:  # 89.6 degrees rounds to 90, which le90 writes as -90
            numbers[4] -= 180
        start = obb_to_quad(numbers)[:2]
    ints = _ints(numbers)
    return _Box(ints, (float(start[1]), float(start[0]), *ints))  # type: ignore[arg-type]


def _answer(boxes: Sequence[tuple[_Box, str]], style: RenderStyle) -> str:
    """A box answer: plain ``numbers label`` lines or the fenced JSON list; an empty label is left out."""
    if style.output == "plain":
        return "\n".join(" ".join(filter(None, (_inline(b, style), _one_line(label)))) for b, label in boxes)
    key = _JSON_KEY[style.box]
    items = ",\n\t".join(
        json.dumps({key: b.numbers, "label": label} if label else {key: b.numbers}, ensure_ascii=False)
        for b, label in boxes
    )
    return f"```json\n[\n\t{items}\n]\n```"


def _inline(box: _Box, style: RenderStyle) -> str:
    """One box inside a sentence: ``x1,y1,x2,y2`` (plain) or ``[x1, y1, x2, y2]`` (JSON)."""
    return ",".join(map(str, box.numbers)) if style.output == "plain" else json.dumps(box.numbers)


def _one_line(text: str) -> str:
    # a plain answer is one box per line: a label may not break it
    return " ".join(text.split())


def _system(style: RenderStyle) -> list[Message]:
    text = (
        style.system
        if style.system is not None
        else (_PLAIN_SYSTEM if style.output == "plain" else _JSON_SYSTEM)[style.box]
    )
    return [Message.text("system", text)] if text else []


def _user(text: str, image: int = 0) -> Message:
    return Message("user", (ContentPart("image", image=image), ContentPart("text", text=text)))


def _scale(record: DetectionRecord | GroundingRecord | ZoomRecord, frame: RenderFrame) -> tuple[float, float]:
    return _image_scale(frame, record.width, record.height)


def _image_scale(frame: RenderFrame, width: int, height: int) -> tuple[float, float]:
    """Factors from an image of ``width x height`` original pixels to ``frame``."""
    fw, fh = frame.size(width, height)
    return fw / width, fh / height


# --------------------------------------------------------------------------- families


def _render_detection(
    record: DetectionRecord, frame: RenderFrame, style: RenderStyle, categories: Sequence[str] | None
) -> list[Message]:
    names = prompt_category_order(categories if categories is not None else set(record.categories))
    rank = {name: i for i, name in enumerate(names)}
    sx, sy = _scale(record, frame)
    boxes: list[tuple[int, tuple[Any, ...], _Box, str]] = []
    for obj in record.objects:
        label = obj.category.replace("-", " ").lower()
        if label not in rank:
            raise ValueError(f"record {record.id!r}: category {obj.category!r} is not in the category list {names}")
        box = _frame_box(obj.quad, obj.hbb, style.box, sx, sy)
        boxes.append((rank[label], box.key, box, label))
    boxes.sort(key=lambda t: (t[0], t[1]))
    listed = ", ".join(names)
    if style.prompt is not None:
        template = style.prompt
    elif style.output == "plain":
        template = _DETECTION_PROMPT["plain"]
    else:
        template = _DETECTION_PROMPT["json_hbb" if style.box == "hbb" else "json_oriented"]
    answer = _answer([(b, label) for _, _, b, label in boxes], style) if boxes else NONE_ANSWER
    return [
        *_system(style),
        _user(template.format(categories=listed)),
        Message.text("assistant", answer),
    ]


def _render_grounding(record: GroundingRecord, frame: RenderFrame, style: RenderStyle) -> list[Message]:
    sx, sy = _scale(record, frame)
    quad = record.quad if record.quad is not None else tuple(hbb_to_quad(np.asarray(record.hbb)).tolist())
    box = _frame_box(quad, record.hbb, style.box, sx, sy)
    if style.prompt is not None:
        template = style.prompt
    else:
        template = _GROUNDING_PROMPT["plain" if style.output == "plain" else f"json_{style.box}"]
    expression = _one_line(record.expression)
    # "find the the white car": the templates already say "the"
    in_prompt = (
        re.sub(r"^the\s+", "", expression, flags=re.IGNORECASE) if "the {expression}" in template else expression
    )
    return [
        *_system(style),
        _user(template.format(expression=in_prompt)),
        Message.text("assistant", _answer([(box, expression)], style)),
    ]


_LETTERED = re.compile(r"^\(?[A-Z][).:]\s")


def _question(record: ZoomRecord) -> str:
    question = record.question.rstrip()
    if not record.choices:
        return question
    # removesuffix, not RSCoVLM's character-set rstrip that ate the question's last letters
    question = question.removesuffix(_SHORT_ANSWER).rstrip()
    letters = [chr(ord("A") + i) for i in range(len(record.choices))]
    lines = [c if _LETTERED.match(c) else f"({letter}) {c}" for letter, c in zip(letters, record.choices)]
    listed = ", ".join(letters[:-1]) + (f", or {letters[-1]}" if len(letters) > 1 else letters[-1])
    return (
        f"{question}\nThe choices are listed below:\n"
        + "\n".join(lines)
        + "\nSelect the best answer to the above multiple-choice question based on the image. "
        f"Respond with only the letter ({listed}) of the correct option.\nThe best answer is:"
    )


def crop_box(
    bbox: Sequence[float], frame_size: tuple[float, float], image_size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Integer crop bounds in the original image of a box given in the model frame.

    The inference engine maps a zoom call the same way: ``x * W / frame_w``,
    outwards to whole pixels (floor the start, ceil the end), clamped to the
    image, at least one pixel wide and high.

    Example:
        >>> crop_box([50, 50, 150, 101], (500, 252), (1000, 500))
        (100, 99, 300, 201)
    """
    (fw, fh), (w, h) = frame_size, image_size
    x1 = min(max(math.floor(bbox[0] * w / fw), 0), w - 1)
    y1 = min(max(math.floor(bbox[1] * h / fh), 0), h - 1)
    x2 = max(min(math.ceil(bbox[2] * w / fw), w), x1 + 1)
    y2 = max(min(math.ceil(bbox[3] * h / fh), h), y1 + 1)
    return x1, y1, x2, y2


def crop_ref(box: Sequence[int]) -> str:
    """The virtual image entry of a crop of ``images[0]``: ``crop:x1,y1,x2,y2``.

    Example:
        >>> crop_ref((100, 99, 300, 201)), parse_crop_ref("crop:100,99,300,201")
        ('crop:100,99,300,201', (100, 99, 300, 201))
    """
    return CROP_PREFIX + ",".join(str(int(v)) for v in box)


def parse_crop_ref(entry: str) -> tuple[int, int, int, int] | None:
    """The bounds of a ``crop:`` entry, or ``None`` if ``entry`` is an ordinary path."""
    m = re.fullmatch(r"crop:(\d+),(\d+),(\d+),(\d+)", entry)
    return None if m is None else (int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)))


def _zoom_roi(record: ZoomRecord, frame: RenderFrame) -> list[int]:
    rois = np.asarray(record.rois, dtype=np.float64).reshape(-1, 4)
    enclosing = np.array([rois[:, 0].min(), rois[:, 1].min(), rois[:, 2].max(), rois[:, 3].max()])
    fw, fh = frame.size(record.width, record.height)
    sx, sy = fw / record.width, fh / record.height
    x1, y1, x2, y2 = _ints(_round(enclosing * [sx, sy, sx, sy]))
    # the call must satisfy the tool schema: inside the frame, non-empty
    x1, y1 = min(max(x1, 0), fw - 1), min(max(y1, 0), fh - 1)
    x2, y2 = max(min(x2, fw), x1 + 1), max(min(y2, fh), y1 + 1)
    return [x1, y1, x2, y2]


def _render_zoom(record: ZoomRecord, frame: RenderFrame, style: RenderStyle) -> list[Message]:
    question = _question(record)
    if not record.rois or not style.zoom:
        return [_user(question), Message.text("assistant", record.answer)]
    bbox = _zoom_roi(record, frame)
    arguments = {"bbox": bbox}
    if style.tool_format == "openai":
        call = ToolCall("call_0", ZOOM_TOOL_NAME, json.dumps(arguments))
        turns = [
            Message("assistant", (), (call,)),
            Message("tool", (ContentPart("image", image=1), ContentPart("text", text=ZOOM_RESULT)), (), call.id),
        ]
    else:
        turns = [Message.text("assistant", format_tool_call(ZOOM_TOOL_NAME, arguments)), _user(ZOOM_RESULT, 1)]
    return [
        Message.text("system", tool_system_prompt([IMAGE_ZOOM_IN])),
        _user(question + ZOOM_INSTRUCTION),
        *turns,
        Message.text("assistant", record.answer),
    ]


# --------------------------------------------------------------------------- boxes in conversation text

BOX_TOKEN_PATTERN = re.compile(r"<box:(\d+)>")
"""A box placeholder in conversation text; group 1 is ``K``, the index into ``metadata["boxes"]``."""

# an assistant text part holding nothing but boxes: a referring (grounding) answer
_BOX_ONLY = re.compile(r"\s*<box:\d+>(?:\s*(?:[,;]|and)?\s*<box:\d+>)*\s*\.?\s*")


def box_token(index: int) -> str:
    """The placeholder of box ``index`` of a conversation's ``metadata["boxes"]``.

    Example:
        >>> box_token(3), BOX_TOKEN_PATTERN.findall("at <box:3> and <box:10>")
        ('<box:3>', ['3', '10'])
    """
    return f"<box:{int(index)}>"


@dataclass(frozen=True)
class TextBoxes:
    """The boxes behind the ``<box:K>`` placeholders of a conversation, read from its ``metadata``.

    The metadata keys (written by the conversation converters):

    ``boxes``
        ``[[8 floats], ...]``: canonical quads in original pixels of their image.
    ``box_kinds``
        ``"hbb"``, ``"quad"`` or ``"obb"`` per box: how the source wrote it
        (an obb is any box with an angle, GeoChat's ``|<θ>`` included).
    ``box_images``
        The index in ``images`` of the image each box lies on (default 0).
    ``image_sizes``
        ``[width, height]`` of each of the record's images, ``null`` for an
        image no box lies on. Needed: a conversation record has no size fields.

    Sources add ``box_messages`` (the message of each box), ``box_angles``
    (the source's angle, or ``null``) and ``box_source_format`` (see
    :func:`rsformat.converters.geochat.restore_source_text`).

    Raises:
        ValueError: (from :meth:`from_metadata`) for malformed keys.

    Example:
        >>> meta = {"boxes": [[0, 0, 4, 0, 4, 2, 0, 2]], "box_kinds": ["hbb"], "image_sizes": [[8, 8]]}
        >>> tb = TextBoxes.from_metadata(meta, num_images=1)
        >>> len(tb), tb.size_of(0)
        (1, (8, 8))
    """

    quads: tuple[tuple[float, ...], ...] = ()
    kinds: tuple[str, ...] = ()
    images: tuple[int, ...] = ()
    image_sizes: tuple[tuple[int, int] | None, ...] = ()

    def __len__(self) -> int:
        return len(self.quads)

    def size_of(self, k: int) -> tuple[int, int]:
        """``(width, height)`` of the image box ``k`` lies on."""
        size = self.image_sizes[self.images[k]]
        assert size is not None  # from_metadata checks it
        return size

    @classmethod
    def from_metadata(cls, metadata: str | Mapping[str, Any] | None, num_images: int) -> TextBoxes:
        """Read and check the box keys of a conversation's ``metadata`` (JSON text or dict).

        No ``boxes`` key gives an empty table.
        """
        meta = json.loads(metadata) if isinstance(metadata, str) else metadata
        if not isinstance(meta, Mapping) or not meta.get("boxes"):
            return cls()
        boxes = meta["boxes"]
        if not isinstance(boxes, list):
            raise ValueError("metadata boxes is not a list")
        n = len(boxes)
        quads = []
        for k, b in enumerate(boxes):
            if not isinstance(b, list) or len(b) != 8 or not all(_is_number(v) for v in b):
                raise ValueError(f"metadata box {k} is not 8 finite numbers")
            quads.append(tuple(float(v) for v in b))
        kinds = meta.get("box_kinds", ["quad"] * n)
        images = meta.get("box_images", [0] * n)
        sizes = meta.get("image_sizes")
        if not isinstance(kinds, list) or len(kinds) != n or any(k not in ("hbb", "quad", "obb") for k in kinds):
            raise ValueError(f"metadata box_kinds is not {n} of 'hbb', 'quad', 'obb'")
        if not isinstance(images, list) or len(images) != n:
            raise ValueError(f"metadata box_images is not {n} image indices")
        if not isinstance(sizes, list) or len(sizes) != num_images:
            raise ValueError(f"metadata image_sizes is not one [width, height] (or null) per image ({num_images})")
        table: list[tuple[int, int] | None] = []
        for i, size in enumerate(sizes):
            if size is None:
                table.append(None)
            elif isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size):
                table.append((size[0], size[1]))
            else:
                raise ValueError(f"metadata image_sizes[{i}] is not [width, height]: {size!r}")
        for k, i in enumerate(images):
            if not isinstance(i, int) or not 0 <= i < num_images:
                raise ValueError(f"metadata box {k} lies on image {i!r}, but the record has {num_images} images")
            if table[i] is None:
                raise ValueError(f"metadata box {k} lies on image {i}, whose size is not in image_sizes")
        return cls(tuple(quads), tuple(kinds), tuple(images), tuple(table))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _has_box_tokens(record: ConversationRecord) -> bool:
    return any(
        p.type == "text" and p.text and BOX_TOKEN_PATTERN.search(p.text) for m in record.messages for p in m.content
    )


def _render_text_boxes(record: ConversationRecord, frame: RenderFrame, style: RenderStyle) -> list[Message]:
    """The messages with every ``<box:K>`` written in ``frame`` and ``style`` (see the module doc)."""
    if not _has_box_tokens(record):
        return list(record.messages)
    table = TextBoxes.from_metadata(record.metadata, len(record.images))
    cache: dict[int, _Box] = {}

    def box(k: int) -> _Box:
        if k not in cache:
            if k >= len(table):
                raise ValueError(f"record {record.id!r}: {box_token(k)} but its metadata holds {len(table)} boxes")
            quad = table.quads[k]
            sx, sy = _image_scale(frame, *table.size_of(k))
            cache[k] = _frame_box(quad, quad_to_hbb(np.asarray(quad)), style.box, sx, sy)
        return cache[k]

    out = []
    for m in record.messages:
        parts = []
        for p in m.content:
            if p.type != "text" or not p.text or "<box:" not in p.text:
                parts.append(p)
            elif m.role == "assistant" and _BOX_ONLY.fullmatch(p.text):
                ks = [int(k) for k in BOX_TOKEN_PATTERN.findall(p.text)]
                parts.append(replace(p, text=_answer([(box(k), "") for k in ks], style)))
            else:
                text = BOX_TOKEN_PATTERN.sub(lambda t: _inline(box(int(t.group(1))), style), p.text)
                parts.append(replace(p, text=text))
        out.append(replace(m, content=tuple(parts)))
    return out


def render(
    record: Record,
    frame: RenderFrame,
    style: RenderStyle = RenderStyle(),
    *,
    categories: Sequence[str] | None = None,
) -> list[Message]:
    """The chat messages of ``record`` as a model in ``frame`` sees them, answers in ``style``.

    A pure function: the same inputs give the same messages. Image parts point
    at ``images[i]`` of :func:`render_conversation`'s record (index 0: the
    record's image; 1: the zoom crop).

    Args:
        record: Any record. A conversation record's messages are returned as
            they are, except that each ``<box:K>`` placeholder is written in
            ``frame`` and ``style`` (see the module doc).
        frame: The model's coordinate frame.
        style: Output format, box kind and prompt choice.
        categories: The dataset's class list, for the detection prompt (all
            classes are asked for, also on images without objects). Default:
            the classes present in the record.

    Raises:
        ValueError: if a detection object's class is not in ``categories``, or
            a conversation's ``<box:K>`` has no box ``K`` in its metadata.

    Example:
        >>> from rsformat.records import GroundingRecord
        >>> rec = GroundingRecord("g", "demo", "val", "g.png", 1000, 1000, expression="the white car",
        ...                       hbb=(100.4, 200.5, 300.0, 400.0))
        >>> [m.text_content for m in render(rec, RenderFrame.grid(100), RenderStyle("plain", "hbb"))][1:]
        ['find the white car', '10,20,30,40 the white car']
    """
    if isinstance(record, ConversationRecord):
        return _render_text_boxes(record, frame, style)
    if isinstance(record, DetectionRecord):
        return _render_detection(record, frame, style, categories)
    if isinstance(record, GroundingRecord):
        return _render_grounding(record, frame, style)
    if isinstance(record, ZoomRecord):
        return _render_zoom(record, frame, style)
    raise TypeError(f"Expected a record, but got {type(record).__name__}")


def render_prompt(
    record: Record,
    frame: RenderFrame,
    style: RenderStyle = RenderStyle(),
    *,
    categories: Sequence[str] | None = None,
) -> list[Message]:
    """What a model is asked at inference: :func:`render`'s messages before the first assistant turn.

    The prompt is exactly the one the model was trained on. A zoom record asks
    for the Zoom-in Chain (the tool system prompt and the zoom instruction)
    whenever ``style.zoom`` is set, also when it has no ``rois`` (benchmark
    questions carry no regions; the model proposes one); with ``style.zoom``
    off it is the plain question. A conversation keeps every message before
    its first assistant turn.

    Example:
        >>> from rsformat.records import ZoomRecord
        >>> rec = ZoomRecord("z", "lrs", "test", "big.png", 4000, 3000, question="What color is the roof?",
        ...                  answer="Red")
        >>> [m.role for m in render_prompt(rec, RenderFrame.smart())]
        ['system', 'user']
        >>> render_prompt(rec, RenderFrame.smart(), RenderStyle(zoom=False))[0].text_content
        'What color is the roof?'
    """
    if isinstance(record, ZoomRecord) and style.zoom:
        return [
            Message.text("system", tool_system_prompt([IMAGE_ZOOM_IN])),
            _user(_question(record) + ZOOM_INSTRUCTION),
        ]
    messages = render(record, frame, style, categories=categories)
    first = next((i for i, m in enumerate(messages) if m.role == "assistant"), len(messages))
    return list(messages[:first])


def render_conversation(
    record: Record,
    frame: RenderFrame,
    style: RenderStyle = RenderStyle(),
    *,
    categories: Sequence[str] | None = None,
) -> ConversationRecord:
    """:func:`render` packed as a :class:`ConversationRecord` (images, tools, metadata).

    ``metadata`` (JSON) holds the frame, the style and ``input_size``, the
    ``(width, height)`` to resize image 0 to (``null`` for a grid frame). A
    conversation record without ``<box:K>`` placeholders is returned as it is;
    with them, its placeholders are rendered and its metadata gains the
    frame, the style, ``input_sizes`` (one per image, ``null`` where the size
    is unknown or the frame is a grid) and ``input_size`` (image 0's).

    Example:
        >>> from rsformat.records import ZoomRecord
        >>> rec = ZoomRecord("z", "lrs", "train", "big.png", 4000, 3000, question="What color is the roof?",
        ...                  answer="Red", rois=((1000.0, 1000.0, 1400.0, 1300.0),))
        >>> conv = render_conversation(rec, RenderFrame.smart(), RenderStyle())
        >>> conv.images, json.loads(conv.messages[2].tool_calls[0].arguments)
        (('big.png', 'crop:1000,998,1401,1300'), {'bbox': [287, 289, 402, 376]})
    """
    if isinstance(record, ConversationRecord):
        if not _has_box_tokens(record):
            return record
        messages = _render_text_boxes(record, frame, style)
        meta = json.loads(record.metadata or "{}")
        sizes = TextBoxes.from_metadata(meta, len(record.images)).image_sizes
        inputs = [None if s is None else frame.input_size(*s) for s in sizes]
        meta.update(
            frame=frame.to_dict(),
            style={"output": style.output, "box": style.box},
            input_sizes=inputs,
            input_size=inputs[0] if inputs else None,
        )
        return replace(record, messages=tuple(messages), metadata=json.dumps(meta))
    messages = render(record, frame, style, categories=categories)
    images = [record.image]
    tools = None
    calls = [c for m in messages for c in m.tool_calls]
    texts = [m.text_content for m in messages if m.role == "assistant" and "<tool_call>" in m.text_content]
    if calls or texts:
        bbox = json.loads(calls[0].arguments)["bbox"] if calls else _zoom_roi(record, frame)  # type: ignore[arg-type]
        images.append(crop_ref(crop_box(bbox, frame.size(record.width, record.height), (record.width, record.height))))
        tools = tools_json()
    meta = {
        "frame": frame.to_dict(),
        "style": {"output": style.output, "box": style.box},
        "input_size": frame.input_size(record.width, record.height),
        "family": record.family,
    }
    return ConversationRecord(
        record.id,
        record.source,
        record.split,
        tuple(images),
        tuple(messages),
        task=record.family,
        tools=tools,
        metadata=json.dumps(meta),
    )


def format_messages(messages: Sequence[Message], images: Sequence[str] = ()) -> str:
    """Messages as ChatML-like text, tool calls in the Qwen text form, for a human to read.

    Example:
        >>> print(format_messages([Message.text("user", "hi")]))
        <|im_start|>user
        hi<|im_end|>
    """
    out = []
    for m in messages:
        parts = []
        for p in m.content:
            if p.type == "image":
                name = images[p.image] if p.image is not None and 0 <= p.image < len(images) else p.image
                parts.append(f"<image {p.image}: {name}>\n" if images else "<image>")
            else:
                parts.append(p.text or "")
        for call in m.tool_calls:
            parts.append(format_tool_call(call.name, json.loads(call.arguments)))
        role = m.role if m.tool_call_id is None else f"{m.role} ({m.tool_call_id})"
        out.append(f"<|im_start|>{role}\n" + "".join(parts) + "<|im_end|>")
    return "\n".join(out)
