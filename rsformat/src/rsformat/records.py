"""The unified schema: four record families, typed views of one row of a dataset.

Every box is stored in **original-image pixels** (float), with the image's
width and height, in the canonical forms of :mod:`rsmetrics.geometry`:
``hbb`` ``(x1, y1, x2, y2)``, ``quad`` (8 numbers, clockwise on screen from the
top-most vertex) and ``obb`` ``(cx, cy, w, h, angle in degrees, le90)``.
Rendering into a model's coordinate frame is a separate step
(:mod:`rsformat.render`).

Families:

:class:`DetectionRecord` (COCO-like)
    one image and all its objects; images without objects are kept (the model
    must learn to answer "There are none.").
:class:`GroundingRecord` (refGeo-like)
    one referring expression and its box.
:class:`ZoomRecord` (LRS-VQA-Zoom)
    a large image, a question, its answer (or choices) and the regions of
    interest that hold the evidence.
:class:`ConversationRecord` (OpenAI chat messages)
    classification, VQA, captioning, multi-image and general-domain data, and
    tool-call turns.

Rows are plain dicts (``to_row`` / ``from_row``) whose layout is
:mod:`rsformat.features`. Image paths are relative to the dataset root.

Example:
    >>> obj = DetectionObject.from_quad("plane", [10, 20, 30, 20, 30, 40, 10, 40])
    >>> obj.hbb, obj.obb[2:4]
    ((10.0, 20.0, 30.0, 40.0), (20.0, 20.0))
    >>> rec = DetectionRecord("P0001", "dota", "train", "images/P0001.png", 100, 100, (obj,))
    >>> DetectionRecord.from_row(rec.to_row()) == rec
    True
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from rsmetrics.geometry import canonical_quad, quad_to_hbb, quad_to_obb

__all__ = [
    "ROLES",
    "ContentPart",
    "ConversationRecord",
    "DetectionObject",
    "DetectionRecord",
    "GroundingRecord",
    "Message",
    "Record",
    "ToolCall",
    "ZoomRecord",
    "record_class",
]

ROLES = ("system", "user", "assistant", "tool")

Family = Literal["detection", "grounding", "zoom", "conversation"]


def _floats(values: Sequence[float] | np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1))


@dataclass(frozen=True)
class DetectionObject:
    """One object: its class and the same box in the three canonical forms.

    ``difficult``: 0 normal, 1 hard to recognise (DOTA's flag), 2 truncated by
    a patch border (the DOTA splitter's flag).
    """

    category: str
    quad: tuple[float, ...]
    hbb: tuple[float, ...]
    obb: tuple[float, ...]
    difficult: int = 0

    @classmethod
    def from_quad(cls, category: str, quad: Sequence[float] | np.ndarray, difficult: int = 0) -> DetectionObject:
        """Build from any quad: vertex order is made canonical, hbb and obb derived."""
        q = canonical_quad(np.asarray(quad, dtype=np.float64).reshape(8))
        return cls(str(category), _floats(q), _floats(quad_to_hbb(q)), _floats(quad_to_obb(q)), int(difficult))

    @classmethod
    def from_quads(
        cls,
        categories: Sequence[str],
        quads: Sequence[Sequence[float]] | np.ndarray,
        difficult: Sequence[int] | np.ndarray | None = None,
    ) -> tuple[DetectionObject, ...]:
        """Many objects at once: one vectorised conversion instead of one per object.

        Example:
            >>> objs = DetectionObject.from_quads(["a", "b"], [[0, 0, 2, 0, 2, 1, 0, 1], [0, 1, 1, 1, 1, 0, 0, 0]])
            >>> [o.hbb for o in objs]
            [(0.0, 0.0, 2.0, 1.0), (0.0, 0.0, 1.0, 1.0)]
        """
        q = canonical_quad(np.asarray(quads, dtype=np.float64).reshape(-1, 8))
        flags = np.zeros(len(q), np.int64) if difficult is None else np.asarray(difficult, np.int64).reshape(-1)
        if not (len(categories) == len(q) == len(flags)):
            raise ValueError(
                f"Expected as many categories, quads and flags, but got {len(categories)}, {len(q)} and {len(flags)}"
            )
        hbb, obb = quad_to_hbb(q), quad_to_obb(q)
        new = object.__new__
        out = []
        # the frozen dataclass __init__ sets each field through object.__setattr__; filling the
        # instance dict directly gives the same object several times faster (hot in converters)
        for c, qq, hh, oo, d in zip(
            categories, map(tuple, q.tolist()), map(tuple, hbb.tolist()), map(tuple, obb.tolist()), flags.tolist()
        ):
            obj = new(cls)
            obj.__dict__.update(category=str(c), quad=qq, hbb=hh, obb=oo, difficult=d)
            out.append(obj)
        return tuple(out)

    def to_row(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "quad": list(self.quad),
            "hbb": list(self.hbb),
            "obb": list(self.obb),
            "difficult": self.difficult,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DetectionObject:
        return cls(
            str(row["category"]), _floats(row["quad"]), _floats(row["hbb"]), _floats(row["obb"]), int(row["difficult"])
        )


@dataclass(frozen=True)
class _ImageRecord:
    id: str
    source: str
    split: str
    image: str
    width: int
    height: int

    family: ClassVar[str] = ""

    def _base_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "split": self.split,
            "image": self.image,
            "width": self.width,
            "height": self.height,
        }

    @staticmethod
    def _base_args(row: Mapping[str, Any]) -> dict[str, Any]:
        image = row["image"]
        if isinstance(image, Mapping):  # a datasets.Image() cell: {"bytes": ..., "path": ...}
            image = image.get("path") or ""
        return {
            "id": str(row["id"]),
            "source": str(row["source"]),
            "split": str(row["split"]),
            "image": str(image),
            "width": int(row["width"]),
            "height": int(row["height"]),
        }


@dataclass(frozen=True)
class DetectionRecord(_ImageRecord):
    """One image with all its objects (possibly none)."""

    objects: tuple[DetectionObject, ...] = ()

    family: ClassVar[str] = "detection"

    def to_row(self) -> dict[str, Any]:
        return {**self._base_row(), "objects": [o.to_row() for o in self.objects]}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DetectionRecord:
        objects = row.get("objects") or []
        if isinstance(objects, Mapping):  # a column-wise struct of lists
            n = len(objects.get("category", []))
            objects = [{k: objects[k][i] for k in objects} for i in range(n)]
        return cls(**cls._base_args(row), objects=tuple(DetectionObject.from_row(o) for o in objects))

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(o.category for o in self.objects)

    def quads(self) -> np.ndarray:
        """``(N, 8)`` quads of the objects."""
        return np.array([o.quad for o in self.objects], dtype=np.float64).reshape(-1, 8)


@dataclass(frozen=True)
class GroundingRecord(_ImageRecord):
    """One referring expression and the box it refers to."""

    expression: str = ""
    hbb: tuple[float, ...] = ()
    quad: tuple[float, ...] | None = None
    mask: str | None = None
    category: str | None = None

    family: ClassVar[str] = "grounding"

    def to_row(self) -> dict[str, Any]:
        return {
            **self._base_row(),
            "expression": self.expression,
            "hbb": list(self.hbb),
            "quad": None if self.quad is None else list(self.quad),
            "mask": self.mask,
            "category": self.category,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> GroundingRecord:
        quad = row.get("quad")
        return cls(
            **cls._base_args(row),
            expression=str(row["expression"]),
            hbb=_floats(row["hbb"]),
            quad=None if quad is None else _floats(quad),
            mask=row.get("mask"),
            category=row.get("category"),
        )


@dataclass(frozen=True)
class ZoomRecord(_ImageRecord):
    """A question on a large image with the regions of interest that answer it.

    ``rois`` are hbbs in original pixels. With ``choices`` the record is a
    multiple-choice question and ``answer`` is the correct letter.
    """

    question: str = ""
    answer: str = ""
    rois: tuple[tuple[float, ...], ...] = ()
    choices: tuple[str, ...] | None = None
    category: str | None = None

    family: ClassVar[str] = "zoom"

    def to_row(self) -> dict[str, Any]:
        return {
            **self._base_row(),
            "question": self.question,
            "answer": self.answer,
            "rois": [list(r) for r in self.rois],
            "choices": None if self.choices is None else list(self.choices),
            "category": self.category,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ZoomRecord:
        choices = row.get("choices")
        return cls(
            **cls._base_args(row),
            question=str(row["question"]),
            answer=str(row["answer"]),
            rois=tuple(_floats(r) for r in (row.get("rois") or [])),
            choices=None if choices is None else tuple(str(c) for c in choices),
            category=row.get("category"),
        )


@dataclass(frozen=True)
class ContentPart:
    """A text part, or an image part pointing at the record's ``images[index]``."""

    type: Literal["text", "image"]
    text: str | None = None
    image: int | None = None

    def to_row(self) -> dict[str, Any]:
        return {"type": self.type, "text": self.text, "image": self.image}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ContentPart:
        return cls(row["type"], row.get("text"), None if row.get("image") is None else int(row["image"]))


@dataclass(frozen=True)
class ToolCall:
    """An assistant's function call; ``arguments`` is a JSON-encoded string (OpenAI style)."""

    id: str
    name: str
    arguments: str

    def parsed_arguments(self) -> Any:
        return json.loads(self.arguments)

    def to_row(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ToolCall:
        fn = row.get("function") or {}
        return cls(str(row["id"]), str(fn["name"]), str(fn["arguments"]))


@dataclass(frozen=True)
class Message:
    """One chat message: OpenAI roles, content parts, optional tool calls or tool result id."""

    role: Literal["system", "user", "assistant", "tool"]
    content: tuple[ContentPart, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    @classmethod
    def text(cls, role: Literal["system", "user", "assistant", "tool"], text: str, **kwargs: Any) -> Message:
        return cls(role, (ContentPart("text", text=text),), **kwargs)

    @property
    def text_content(self) -> str:
        return "".join(p.text or "" for p in self.content if p.type == "text")

    def to_row(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "content": [p.to_row() for p in self.content],
            "tool_calls": [t.to_row() for t in self.tool_calls],
            "tool_call_id": self.tool_call_id,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Message:
        return cls(
            row["role"],
            tuple(ContentPart.from_row(p) for p in row.get("content") or []),
            tuple(ToolCall.from_row(t) for t in row.get("tool_calls") or []),
            row.get("tool_call_id"),
        )


@dataclass(frozen=True)
class ConversationRecord:
    """OpenAI chat messages over zero or more images (``images`` are relative paths).

    ``tools`` is the JSON-encoded list of tool schemas offered to the model (or
    ``None``); ``task`` names the kind of data (``"classification"``, ``"vqa"``,
    ``"caption"``, ``"temporal"``, ``"general"``...).
    """

    id: str
    source: str
    split: str
    images: tuple[str, ...]
    messages: tuple[Message, ...]
    task: str = "conversation"
    tools: str | None = None
    metadata: str | None = None

    family: ClassVar[str] = "conversation"

    def to_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "split": self.split,
            "images": list(self.images),
            "messages": [m.to_row() for m in self.messages],
            "task": self.task,
            "tools": self.tools,
            "metadata": self.metadata,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ConversationRecord:
        images = [i.get("path") if isinstance(i, Mapping) else i for i in row.get("images") or []]
        return cls(
            str(row["id"]),
            str(row["source"]),
            str(row["split"]),
            tuple(str(i) for i in images),
            tuple(Message.from_row(m) for m in row["messages"]),
            str(row.get("task") or "conversation"),
            row.get("tools"),
            row.get("metadata"),
        )


Record = DetectionRecord | GroundingRecord | ZoomRecord | ConversationRecord

_FAMILIES: dict[str, type] = {
    "detection": DetectionRecord,
    "grounding": GroundingRecord,
    "zoom": ZoomRecord,
    "conversation": ConversationRecord,
}


def record_class(family: str) -> type:
    """The record class of a family name."""
    try:
        return _FAMILIES[family]
    except KeyError:
        raise ValueError(f"Expected a record family among {sorted(_FAMILIES)}, but got {family!r}") from None
