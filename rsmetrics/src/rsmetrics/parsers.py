"""Turn vision-language model responses into boxes in original image pixels.

Each output dialect has one pure function, ``parse_<dialect>(text, *, frame,
image_size)``, listed in :data:`PARSERS` and reachable through
:func:`parse_response`. The coordinate space of the model output is declared by
the caller as a :class:`Frame`; it is never guessed from the numbers.

Dialects:

``rscovlm_plain``
    One object per line, numbers first, then the label (the rest of the line):
    ``x1,y1,x2,y2 label`` (hbb), ``cx,cy,w,h,angle label`` (obb, degrees) or
    ``x1,y1,...,x4,y4 label`` (quad). A comma may also separate the last number
    from the label.
``qwen25vl_json``
    A JSON list of objects with ``"bbox_2d": [x1, y1, x2, y2]`` (hbb),
    ``"quadrant bbox"`` (8 numbers, quad) or ``"oriented bbox"`` (5 numbers,
    obb), and ``"label"``. Code fences and surrounding prose are ignored, and an
    answer cut mid-object is recovered up to its last complete object.
``qwen2vl_tokens``
    ``<|object_ref_start|>label<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>``.
``geochat``
    ``{<x1><y1><x2><y2>|<angle>}``, any number per answer.
``florence_loc``
    ``label<loc_x1><loc_y1>...`` with 8 (quad) or 4 (hbb) ``<loc_N>`` per box.

Common rules, all dialects:

* No response text raises: what cannot be read is counted in
  :attr:`ParsedBoxes.num_unparsed` with a short reason in
  :attr:`ParsedBoxes.errors`. Only programmer errors raise (an unknown dialect,
  a bad :class:`Frame` or image size, a non-``str`` text).
* A candidate that looks like a box (it contains a digit) but cannot be read is
  counted as unparsed; prose without digits is ignored.
* A candidate with a non-finite number (``nan``, ``inf``, ``1e400``), or whose
  coordinates overflow when mapped to the image, is unparsed.
* Work is linear in the text length; at most :data:`MAX_CANDIDATES` candidates
  are read per response, the rest is counted as one more unparsed candidate.
* ``is_empty_answer`` is set when no box was read and the whole answer is
  "There are none." or "There is none." (case-insensitive, final period
  optional), or, for JSON, an empty list ``[]``.
* Output quads are in the canonical vertex order of
  :func:`rsmetrics.geometry.canonical_quad`; an hbb given with swapped corners
  is the same rectangle.

Labels are returned as written (stripped of surrounding whitespace); match them
to a class list with :mod:`rsmetrics.labels`.

Example:
    >>> out = parse_response("10,20,30,40 plane", "rscovlm_plain",
    ...                      frame=Frame.pixels(500, 250), image_size=(1000, 500))
    >>> out.boxes.tolist(), out.labels
    ([[20.0, 40.0, 60.0, 40.0, 60.0, 80.0, 20.0, 80.0]], ('plane',))
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rsmetrics.errors import InvalidInputError
from rsmetrics.geometry import (
    BOX_SIZES,
    BoxKind,
    as_boxes,
    box_to_quad,
    canonical_quad,
    obb_to_quad,
    quad_to_hbb,
    quad_to_obb,
    scale_boxes,
)

__all__ = [
    "MAX_CANDIDATES",
    "PARSERS",
    "Frame",
    "ParsedBoxes",
    "parse_florence_loc",
    "parse_geochat",
    "parse_qwen2vl_tokens",
    "parse_qwen25vl_json",
    "parse_response",
    "parse_rscovlm_plain",
]

FloatArray = NDArray[np.float64]
FrameKind = Literal["pixels", "grid", "bins"]

MAX_CANDIDATES = 10_000
"""Most candidate boxes read from one response (real answers hold far fewer)."""

# Errors are for a human reading a report; thousands of them help nobody.
_MAX_ERRORS = 20
# Box objects are flat; anything nested deeper is not a box and ends the scan,
# which bounds the work on adversarial '{{{{...' input.
_MAX_JSON_DEPTH = 32
# Long enough for any "(x1,y1),(x2,y2)" however formatted.
_MAX_TOKEN_BOX_CHARS = 200

# An ASCII decimal number. The alternatives are disjoint so a failed match
# cannot backtrack over a digit run more than once (no catastrophic backtracking).
_NUM = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"

_NONE_ANSWER = re.compile(r"there\s+(?:are|is)\s+none\.?", re.IGNORECASE)
_HAS_DIGIT = re.compile(r"[0-9]")


# --------------------------------------------------------------------------- frames


@dataclass(frozen=True)
class Frame:
    """Coordinate space of a model's boxes.

    Build one with a constructor:

    * :meth:`pixels`: pixels of the model's (resized) input image, mapped to
      the original image by ``x * image_width / input_width``;
    * :meth:`grid`: a normalised grid ``0..G``, mapped by ``x / G * image_width``
      (Qwen2-VL uses ``G = 1000``, GeoChat ``100``);
    * :meth:`bins`: ``n`` quantisation bins, mapped by
      ``(k + 0.5) / n * image_width``, the bin centre. This is Florence-2's
      dequantisation (its ``<loc_k>`` tokens use ``n = 1000`` bins, ``k`` in
      ``0..999``).

    Attributes:
        kind: ``"pixels"``, ``"grid"`` or ``"bins"``.
        width: Input width in pixels, or the grid size / bin count.
        height: Input height in pixels, or the grid size / bin count.

    Raises:
        InvalidInputError: for an unknown kind or a non-positive or non-finite size.

    Example:
        >>> Frame.grid(1000).to_image([[0, 0, 500, 1000]], "hbb", (640, 480)).tolist()
        [[0.0, 0.0, 320.0, 480.0]]
        >>> Frame.bins(1000).to_image([[0, 0, 999, 999]], "hbb", (1000, 1000)).tolist()
        [[0.5, 0.5, 999.5, 999.5]]
    """

    kind: FrameKind
    width: float
    height: float

    def __post_init__(self) -> None:
        if self.kind not in ("pixels", "grid", "bins"):
            raise InvalidInputError(f"Expected `kind` to be one of ['bins', 'grid', 'pixels'], but got {self.kind!r}")
        width, height = _check_size(self.width, self.height, "frame size")
        object.__setattr__(self, "width", width)
        object.__setattr__(self, "height", height)

    @classmethod
    def pixels(cls, input_width: float, input_height: float) -> Frame:
        """Pixels of the model input image of size ``input_width x input_height``.

        Example:
            >>> Frame.pixels(500, 250).scale((1000, 500))
            (2.0, 2.0)
        """
        return cls("pixels", input_width, input_height)

    @classmethod
    def grid(cls, size: float = 1000) -> Frame:
        """A normalised grid from 0 to ``size`` on both axes.

        Example:
            >>> Frame.grid(100).scale((400, 300))
            (4.0, 3.0)
        """
        return cls("grid", size, size)

    @classmethod
    def bins(cls, count: int = 1000) -> Frame:
        """``count`` quantisation bins per axis, read at the bin centre.

        Example:
            >>> Frame.bins(1000).offset
            0.5
        """
        return cls("bins", count, count)

    @property
    def offset(self) -> float:
        """Added to positions before scaling: 0.5 for bin centres, else 0."""
        return 0.5 if self.kind == "bins" else 0.0

    def scale(self, image_size: tuple[float, float]) -> tuple[float, float]:
        """Factors ``(sx, sy)`` from this frame to an image of ``(width, height)`` pixels.

        Raises:
            InvalidInputError: if ``image_size`` is not two positive finite numbers.

        Example:
            >>> Frame.pixels(100, 50).scale((300, 100))
            (3.0, 2.0)
        """
        iw, ih = _image_size(image_size)
        return iw / self.width, ih / self.height

    def to_image(self, boxes: ArrayLike, kind: BoxKind, image_size: tuple[float, float]) -> FloatArray:
        """Map ``(N, K)`` boxes of ``kind`` from this frame to original image pixels.

        Oriented boxes keep ``kind``: their centre is shifted and scaled, their
        size and angle follow :func:`rsmetrics.geometry.scale_boxes`.

        Example:
            >>> Frame.pixels(500, 250).to_image([[10, 20, 30, 40]], "hbb", (1000, 500)).tolist()
            [[20.0, 40.0, 60.0, 80.0]]
        """
        sx, sy = self.scale(image_size)
        arr = np.asarray(boxes, dtype=np.float64)
        if arr.ndim == 2 and arr.shape[0] == 0:
            return np.zeros((0, BOX_SIZES.get(kind, arr.shape[1])), dtype=np.float64)
        arr = arr.copy()
        if self.offset:
            # the offset moves positions; obb sizes and angles are not positions
            if kind == "obb":
                arr[..., :2] += self.offset
            else:
                arr += self.offset
        return scale_boxes(arr, kind, sx, sy)


def _check_size(width: Any, height: Any, what: str) -> tuple[float, float]:
    try:
        w, h = float(width), float(height)
    except (TypeError, ValueError):
        raise InvalidInputError(f"Expected the {what} to be two numbers, but got {(width, height)!r}") from None
    if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
        raise InvalidInputError(f"Expected the {what} to be positive and finite, but got {(width, height)!r}")
    return w, h


def _image_size(image_size: Any) -> tuple[float, float]:
    try:
        width, height = image_size
    except (TypeError, ValueError):
        raise InvalidInputError(f"Expected `image_size` to be (width, height), but got {image_size!r}") from None
    return _check_size(width, height, "image size")


# --------------------------------------------------------------------------- result


@dataclass(frozen=True, eq=False)
class ParsedBoxes:
    """Boxes read from one model response.

    Attributes:
        boxes: ``(N, 8)`` float64 quads in original image pixels, canonical
            vertex order (read-only array).
        kinds: What the model emitted for each box: ``"hbb"``, ``"obb"`` or ``"quad"``.
        labels: The raw label text of each box (``""`` when there is none).
        num_unparsed: Candidates that looked like boxes but could not be read.
        is_empty_answer: The model explicitly answered that there is nothing
            ("There are none.", or ``[]`` in JSON).
        truncated: The response ends inside a box, an object or an unclosed
            JSON list of objects (e.g. cut by a token limit); the complete
            boxes before the cut are kept.
        errors: Short reasons for the unparsed candidates (at most 20, then a
            count of the rest).

    Example:
        >>> out = ParsedBoxes.empty()
        >>> len(out), out.hbb.shape
        (0, (0, 4))
    """

    boxes: FloatArray
    kinds: tuple[BoxKind, ...] = ()
    labels: tuple[str, ...] = ()
    num_unparsed: int = 0
    is_empty_answer: bool = False
    truncated: bool = False
    errors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        boxes = as_boxes(self.boxes, "quad").copy()
        boxes.setflags(write=False)
        object.__setattr__(self, "boxes", boxes)
        if not (len(self.kinds) == len(self.labels) == len(boxes)):
            raise InvalidInputError(
                f"Expected as many kinds and labels as boxes ({len(boxes)}), "
                f"but got {len(self.kinds)} kinds and {len(self.labels)} labels"
            )

    @classmethod
    def empty(cls, **flags: Any) -> ParsedBoxes:
        """A result without boxes; ``flags`` sets the other fields.

        Example:
            >>> ParsedBoxes.empty(is_empty_answer=True).is_empty_answer
            True
        """
        return cls(np.zeros((0, 8)), **flags)

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def hbb(self) -> FloatArray:
        """``(N, 4)`` enclosing horizontal boxes ``(x1, y1, x2, y2)``.

        Example:
            >>> parse_rscovlm_plain("0,0,4,0,4,2,0,2 x", frame=Frame.grid(1), image_size=(1, 1)).hbb.tolist()
            [[0.0, 0.0, 4.0, 2.0]]
        """
        return quad_to_hbb(self.boxes)

    @property
    def obb(self) -> FloatArray:
        """``(N, 5)`` minimum-area oriented boxes (le90, degrees).

        Example:
            >>> parse_rscovlm_plain("0,0,4,2 x", frame=Frame.grid(1), image_size=(1, 1)).obb.tolist()
            [[2.0, 1.0, 4.0, 2.0, 0.0]]
        """
        return quad_to_obb(self.boxes)


# --------------------------------------------------------------------------- shared machinery


# Box slots of the collector: the box kinds, plus GeoChat's hbb-then-angle form,
# whose hbb part is mapped to the image before the rotation is applied.
_SLOT_KIND: dict[str, BoxKind] = {"hbb": "hbb", "obb": "obb", "quad": "quad", "hbb_angle": "obb"}


class _Collector:
    """Accumulates the candidates of one response, then converts them all at once."""

    def __init__(self, frame: Frame, image_size: tuple[float, float]) -> None:
        if not isinstance(frame, Frame):
            raise InvalidInputError(f"Expected `frame` to be a Frame, but got {type(frame).__name__}")
        self.frame = frame
        self.image_size = _image_size(image_size)
        self.rows: dict[str, list[list[float]]] = {}
        self.order: list[tuple[str, int]] = []  # (slot, row in rows[slot]) per box
        self.labels: list[str] = []
        self.num_unparsed = 0
        self.errors: list[str] = []
        self.num_errors = 0
        self.truncated = False
        self.budget = MAX_CANDIDATES

    def take(self) -> bool:
        """Spend one candidate of the budget; once it is spent, record that and say no."""
        if self.budget > 0:
            self.budget -= 1
            return True
        if self.budget == 0:
            self.budget = -1
            self.fail(f"more than {MAX_CANDIDATES} candidates: the rest was not read")
        return False

    def fail(self, reason: str) -> None:
        self.num_unparsed += 1
        self.note(reason)

    def note(self, reason: str) -> None:
        self.num_errors += 1
        if len(self.errors) < _MAX_ERRORS:
            self.errors.append(reason)

    def add(self, slot: str, values: Sequence[float], label: str, where: str) -> None:
        if not all(math.isfinite(v) for v in values):
            self.fail(f"{where}: non-finite number")
            return
        rows = self.rows.setdefault(slot, [])
        self.order.append((slot, len(rows)))
        rows.append(list(values))
        self.labels.append(label)

    def _quads(self, slot: str, arr: FloatArray) -> FloatArray:
        if slot == "hbb_angle":
            px = self.frame.to_image(arr[:, :4], "hbb", self.image_size)
            obb = np.stack(
                [
                    (px[:, 0] + px[:, 2]) / 2,
                    (px[:, 1] + px[:, 3]) / 2,
                    np.abs(px[:, 2] - px[:, 0]),
                    np.abs(px[:, 3] - px[:, 1]),
                    arr[:, 4],
                ],
                axis=1,
            )
            return obb_to_quad(obb)
        kind = _SLOT_KIND[slot]
        mapped = self.frame.to_image(arr, kind, self.image_size)
        if kind == "hbb":
            # swapped corners name the same rectangle; ordering them first also gives
            # zero-width boxes the usual TL, TR, BR, BL vertex order
            mapped = np.concatenate(
                [np.minimum(mapped[:, :2], mapped[:, 2:]), np.maximum(mapped[:, :2], mapped[:, 2:])], 1
            )
        return box_to_quad(mapped, kind)

    def finish(self, text: str, *, empty_answer: bool = False) -> ParsedBoxes:
        n = len(self.order)
        quads = np.zeros((n, 8), dtype=np.float64)
        slots = np.array([slot for slot, _ in self.order], dtype=object)
        index = np.array([row for _, row in self.order], dtype=np.int64)
        # huge but finite inputs may overflow to inf here; those rows are dropped below
        with np.errstate(all="ignore"):
            for slot, rows in self.rows.items():
                sel = slots == slot
                quads[sel] = self._quads(slot, np.array(rows, dtype=np.float64))[index[sel]]
            keep = np.isfinite(quads).all(axis=1)
            if n:
                quads = canonical_quad(quads)
        for _ in range(int(n - keep.sum())):
            self.fail("coordinates overflow when mapped to the image")
        if self.num_errors > len(self.errors):
            self.errors.append(f"... and {self.num_errors - len(self.errors)} more")
        found = bool(keep.any())
        return ParsedBoxes(
            boxes=quads[keep],
            kinds=tuple(_SLOT_KIND[slot] for (slot, _), ok in zip(self.order, keep, strict=True) if ok),
            labels=tuple(label for label, ok in zip(self.labels, keep, strict=True) if ok),
            num_unparsed=self.num_unparsed,
            is_empty_answer=not found and (empty_answer or _is_none_answer(text)),
            truncated=self.truncated,
            errors=tuple(self.errors),
        )


def _is_none_answer(text: str) -> bool:
    # strip() first keeps the regex free of leading/trailing \s* (quadratic on long blanks)
    return _NONE_ANSWER.fullmatch(text.strip()) is not None


def _snippet(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _check_text(text: Any) -> str:
    if not isinstance(text, str):
        raise InvalidInputError(f"Expected `text` to be a str, but got {type(text).__name__}")
    return text


# --------------------------------------------------------------------------- rscovlm_plain

_PLAIN_KINDS: dict[int, BoxKind] = {4: "hbb", 5: "obb", 8: "quad"}

# One match per line that holds a digit. The non-digit prefix cannot overlap
# with [0-9], so a digit-free line is rejected in time linear in its length.
_DIGIT_LINE = re.compile(r"^[^\n0-9]*[0-9][^\n]*", re.MULTILINE)
# Comma-separated numbers at the start of a line; [ \t] keeps it on one line.
# At most 9 are read: enough to tell "more than 8" without walking a huge list.
_NUMBER_LIST = re.compile(rf"{_NUM}(?:[ \t]*,[ \t]*{_NUM}){{0,8}}")


def parse_rscovlm_plain(text: str, *, frame: Frame, image_size: tuple[float, float]) -> ParsedBoxes:
    """Parse RSCoVLM plain text: one ``numbers label`` object per line.

    4 numbers are an hbb ``x1,y1,x2,y2``, 5 an obb ``cx,cy,w,h,angle`` (degrees,
    clockwise on screen), 8 a quad. Lines without a digit (blank lines, prose,
    "There are none.") are ignored; other lines that are not boxes are unparsed.

    Args:
        text: The model response.
        frame: Coordinate space of the numbers.
        image_size: ``(width, height)`` of the original image.

    Returns:
        The boxes in original image pixels.

    Example:
        >>> out = parse_rscovlm_plain("2,1,4,0,4,2,2,2 storage tank\\nThat is all.",
        ...                           frame=Frame.grid(10), image_size=(10, 10))
        >>> out.boxes.tolist(), out.kinds, out.labels
        ([[4.0, 0.0, 4.0, 2.0, 2.0, 2.0, 2.0, 1.0]], ('quad',), ('storage tank',))
    """
    text = _check_text(text)
    out = _Collector(frame, image_size)
    line_no, counted_to = 1, 0
    for match in _DIGIT_LINE.finditer(text):
        if not out.take():
            break
        # line numbers by counting only the newlines since the previous match: linear
        line_no += text.count("\n", counted_to, match.start())
        counted_to = match.start()
        where = f"line {line_no}"
        line = match.group().strip()
        numbers = _NUMBER_LIST.match(line)
        if numbers is None:
            out.fail(f"{where}: no leading numbers in {_snippet(line)}")
            continue
        rest = line[numbers.end() :]
        if rest and rest[0] not in " \t,":
            out.fail(f"{where}: no space between numbers and label in {_snippet(line)}")
            continue
        count = numbers.group().count(",") + 1
        slot = _PLAIN_KINDS.get(count)
        if slot is None:
            got = "more than 8" if count > 8 else str(count)
            out.fail(f"{where}: expected 4, 5 or 8 numbers, got {got}")
            continue
        values = [float(v) for v in numbers.group().split(",")]
        out.add(slot, values, rest.lstrip(" \t,").strip(), where)
    return out.finish(text)


# --------------------------------------------------------------------------- qwen25vl_json

# A brace-free object in one C-level match. The alternatives start with
# different characters, so a failed match backtracks linearly.
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_FLAT_OBJECT = re.compile(rf'\{{(?:[^{{}}"]|{_STRING})*\}}', re.DOTALL)
# Tokens inside a nested object: text runs, complete strings, braces, or a
# lone quote (a string that never closes, i.e. a cut answer).
_OBJECT_TOKEN = re.compile(rf'[^{{}}"]+|{_STRING}|[{{}}"]', re.DOTALL)
_EMPTY_LIST = re.compile(r"\[\s*\]")

# Keys in priority order when an object has several.
_JSON_KEYS: tuple[tuple[str, BoxKind], ...] = (
    ("quadrant bbox", "quad"),
    ("oriented bbox", "obb"),
    ("bbox_2d", "hbb"),
)


def _object_end(text: str, start: int) -> int:
    """End (exclusive) of the object opening at ``text[start]``.

    Returns ``-1`` if the text ends inside it and ``-2`` if it nests deeper
    than :data:`_MAX_JSON_DEPTH`.
    """
    flat = _FLAT_OBJECT.match(text, start)
    if flat is not None:
        return flat.end()
    depth = 0
    pos = start
    while True:
        token = _OBJECT_TOKEN.match(text, pos)
        if token is None:
            return -1
        first = text[pos]
        if first == "{":
            depth += 1
            if depth > _MAX_JSON_DEPTH:
                return -2
        elif first == "}":
            depth -= 1
            if depth == 0:
                return token.end()
        elif first == '"' and token.end() - pos == 1:
            return -1
        pos = token.end()


def _json_box(obj: Any) -> tuple[BoxKind, list[float], str] | str:
    """A box from a decoded JSON object, or the reason there is none."""
    if not isinstance(obj, dict):
        return "not an object"
    for key, kind in _JSON_KEYS:
        if key in obj:
            raw = obj[key]
            size = BOX_SIZES[kind]
            if (
                not isinstance(raw, list)
                or len(raw) != size
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw)
            ):
                return f"expected {size} numbers in {key!r}"
            try:
                values = [float(v) for v in raw]
            except OverflowError:  # an int too large for a float
                return "non-finite number"
            label = obj.get("label", "")
            return kind, values, ("" if label is None else str(label)).strip()
    if "point_2d" in obj:
        return "point_2d is a point, not a box"
    return "no box key ('bbox_2d', 'quadrant bbox' or 'oriented bbox')"


def parse_qwen25vl_json(text: str, *, frame: Frame, image_size: tuple[float, float]) -> ParsedBoxes:
    """Parse Qwen2.5-VL style JSON: ``[{"bbox_2d": [x1, y1, x2, y2], "label": "..."}, ...]``.

    Every top-level ``{...}`` object in the text is decoded on its own with
    :func:`json.loads`, so code fences, prose around the list, a bare object
    without a list, or a list cut by a token limit all work: a cut answer keeps
    its complete objects and sets ``truncated``. Objects are found by one
    linear scan that tracks strings, escapes and brace depth. RSCoVLM keys
    ``"quadrant bbox"`` (8 numbers) and ``"oriented bbox"`` (5 numbers, angle in
    degrees) are read too; ``point_2d`` objects are unparsed.

    Args:
        text: The model response.
        frame: Coordinate space of the numbers.
        image_size: ``(width, height)`` of the original image.

    Returns:
        The boxes in original image pixels.

    Example:
        >>> out = parse_qwen25vl_json('```json\\n[{"bbox_2d": [0, 0, 500, 500], "label": "ship"}, {"bbox',
        ...                           frame=Frame.grid(1000), image_size=(800, 600))
        >>> out.hbb.tolist(), out.labels, out.truncated
        ([[0.0, 0.0, 400.0, 300.0]], ('ship',), True)
    """
    text = _check_text(text)
    out = _Collector(frame, image_size)
    pos = 0
    first_start = last_end = -1
    while True:
        start = text.find("{", pos)
        if start < 0 or not out.take():
            break
        end = _object_end(text, start)
        if end == -1:
            out.truncated = True
            out.note(f"object at char {start}: cut off (no closing brace)")
            break
        if end == -2:
            out.fail(f"object at char {start}: nested deeper than {_MAX_JSON_DEPTH}; scan stopped")
            break
        if first_start < 0:
            first_start = start
        last_end = end
        pos = end
        where = f"object at char {start}"
        chunk = text[start:end]
        try:
            decoded = json.loads(chunk)
        except ValueError:
            if _HAS_DIGIT.search(chunk):
                out.fail(f"{where}: invalid JSON {_snippet(chunk)}")
            continue
        box = _json_box(decoded)
        if isinstance(box, str):
            if _HAS_DIGIT.search(chunk):
                out.fail(f"{where}: {box}")
            continue
        out.add(box[0], box[1], box[2], where)
    # a list was opened before the first object and never closed after the last
    if first_start >= 0 and "[" in text[:first_start] and text.find("]", last_end) < 0:
        out.truncated = True
    empty_list = first_start < 0 and _EMPTY_LIST.search(text) is not None
    return out.finish(text, empty_answer=empty_list)


# --------------------------------------------------------------------------- qwen2vl_tokens

_BOX_START, _BOX_END = "<|box_start|>", "<|box_end|>"
_REF_START, _REF_END = "<|object_ref_start|>", "<|object_ref_end|>"
_POINT_PAIR = re.compile(rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*(?:,\s*)?\(\s*({_NUM})\s*,\s*({_NUM})\s*\)")


def parse_qwen2vl_tokens(text: str, *, frame: Frame, image_size: tuple[float, float]) -> ParsedBoxes:
    """Parse Qwen2-VL grounding tokens.

    Reads ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>`` as an hbb (Qwen2-VL uses
    ``Frame.grid(1000)``). The label is the text of the last
    ``<|object_ref_start|>label<|object_ref_end|>`` before the box; it carries
    over to the following boxes until the next reference.

    Args:
        text: The model response.
        frame: Coordinate space of the numbers.
        image_size: ``(width, height)`` of the original image.

    Returns:
        The boxes in original image pixels.

    Example:
        >>> text = "<|object_ref_start|>the ship<|object_ref_end|><|box_start|>(100,200),(300,400)<|box_end|>"
        >>> out = parse_qwen2vl_tokens(text, frame=Frame.grid(1000), image_size=(1000, 1000))
        >>> out.hbb.tolist(), out.labels
        ([[100.0, 200.0, 300.0, 400.0]], ('the ship',))
    """
    text = _check_text(text)
    out = _Collector(frame, image_size)
    label = ""
    pos = 0
    while True:
        start = text.find(_BOX_START, pos)
        if start < 0 or not out.take():
            break
        # only the stretch since the previous box is searched, so each char is read O(1) times
        ref_end = text.rfind(_REF_END, pos, start)
        if ref_end >= 0:
            ref_start = text.rfind(_REF_START, pos, ref_end)
            if ref_start >= 0:
                label = text[ref_start + len(_REF_START) : ref_end].strip()
        body_start = start + len(_BOX_START)
        end = text.find(_BOX_END, body_start)
        where = f"box at char {start}"
        if end < 0:
            out.truncated = True
            out.fail(f"{where}: no {_BOX_END}")
            break
        pos = end + len(_BOX_END)
        body = text[body_start:end].strip()
        pair = _POINT_PAIR.fullmatch(body) if len(body) <= _MAX_TOKEN_BOX_CHARS else None
        if pair is None:
            out.fail(f"{where}: expected (x1,y1),(x2,y2) but got {_snippet(body)}")
            continue
        out.add("hbb", [float(v) for v in pair.groups()], label, where)
    return out.finish(text)


# --------------------------------------------------------------------------- geochat

_GEOCHAT_BOX = re.compile(rf"\{{<({_NUM})><({_NUM})><({_NUM})><({_NUM})>(?:\|<({_NUM})>)?\}}")
_LABEL_EDGES = " \t\r\n,;:."


def parse_geochat(text: str, *, frame: Frame, image_size: tuple[float, float]) -> ParsedBoxes:
    """Parse GeoChat boxes ``{<x1><y1><x2><y2>|<angle>}`` (GeoChat uses ``Frame.grid(100)``).

    ``x1..y2`` is the horizontal extent of the object before rotation: it is
    mapped to image pixels first (an axis-aligned box maps exactly), then
    rotated by ``angle`` degrees about its centre, giving the obb
    ``(cx, cy, x2 - x1, y2 - y1, angle)``. GeoChat's sign convention is not
    documented; this treats a positive angle as clockwise on screen, like the
    rest of the package. Without ``|<angle>`` the box is an hbb. The label is
    the text between the previous box (or the start) and this one, stripped of
    spaces and ``, ; : .``, often empty.

    Args:
        text: The model response.
        frame: Coordinate space of the numbers.
        image_size: ``(width, height)`` of the original image.

    Returns:
        The boxes in original image pixels.

    Example:
        >>> out = parse_geochat("{<10><20><50><40>|<90>}", frame=Frame.grid(100), image_size=(100, 100))
        >>> np.round(out.boxes, 6).tolist(), out.kinds
        ([[20.0, 10.0, 40.0, 10.0, 40.0, 50.0, 20.0, 50.0]], ('obb',))
    """
    text = _check_text(text)
    out = _Collector(frame, image_size)
    pos = 0
    found = 0
    for match in _GEOCHAT_BOX.finditer(text):
        if not out.take():
            break
        found += 1
        label = text[pos : match.start()].strip(_LABEL_EDGES)
        pos = match.end()
        *hbb, angle = match.groups()
        values = [float(v) for v in hbb]
        if angle is None:
            out.add("hbb", values, label, f"box at char {match.start()}")
        else:
            out.add("hbb_angle", [*values, float(angle)], label, f"box at char {match.start()}")
    if out.budget >= 0:
        # each box holds exactly one '{<', so the other openings are failed boxes
        missed = text.count("{<") - found
        if missed:
            out.num_unparsed += missed
            out.note(f"{missed} '{{<' not followed by <x1><y1><x2><y2>|<angle>}}")
    return out.finish(text)


# --------------------------------------------------------------------------- florence_loc

# A run of consecutive <loc_N> tokens, found in one C-level match: the literal
# '<loc_' and '>' around the digits keep the repetitions from overlapping.
_LOC_RUN = re.compile(r"(?:<loc_[0-9]+>)+")
_LOC_VALUE = re.compile(r"[0-9]+")
_FLORENCE_SPECIAL = ("<sep>", "</s>", "<s>", "<pad>", "<poly>", "</poly>")


def parse_florence_loc(
    text: str,
    *,
    frame: Frame,
    image_size: tuple[float, float],
    box_size: Literal[4, 8] | None = None,
) -> ParsedBoxes:
    """Parse Florence-2 / LMMRotate location tokens: ``label<loc_x1><loc_y1>...``.

    Consecutive ``<loc_N>`` tokens form a run. With ``box_size=None`` a run of
    8k tokens is k quads and a run of exactly 4 is an hbb; other lengths are
    unparsed (Florence-2's own horizontal boxes, 4 per box with the label
    written once, need ``box_size=4``; ``box_size=8`` reads quads only). Text
    between runs, without ``<sep>``, ``</s>``, ``<s>``, ``<pad>`` and
    ``<poly>`` tokens and surrounding spaces, is the label of the following
    runs; a run preceded by no text keeps the previous label. Use
    ``Frame.bins(1000)``.

    Args:
        text: The model response.
        frame: Coordinate space of the numbers.
        image_size: ``(width, height)`` of the original image.
        box_size: Tokens per box: 4, 8, or ``None`` for the rule above.

    Returns:
        The boxes in original image pixels.

    Raises:
        InvalidInputError: if ``box_size`` is not 4, 8 or None.

    Example:
        >>> text = "plane<loc_0><loc_0><loc_9><loc_0><loc_9><loc_9><loc_0><loc_9><sep>ship<loc_0><loc_0><loc_1><loc_1>"
        >>> out = parse_florence_loc(text, frame=Frame.bins(10), image_size=(10, 10))
        >>> out.hbb.tolist(), out.kinds, out.labels
        ([[0.5, 0.5, 9.5, 9.5], [0.5, 0.5, 1.5, 1.5]], ('quad', 'hbb'), ('plane', 'ship'))
    """
    text = _check_text(text)
    if box_size not in (None, 4, 8):
        raise InvalidInputError(f"Expected `box_size` to be one of [4, 8, None], but got {box_size!r}")
    out = _Collector(frame, image_size)
    label = ""
    pos = 0
    for run in _LOC_RUN.finditer(text):
        if not out.take():
            break
        gap = text[pos : run.start()]
        for token in _FLORENCE_SPECIAL:
            gap = gap.replace(token, " ")
        gap = gap.strip()
        if gap:
            label = gap
        pos = run.end()
        where = f"locations at char {run.start()}"
        count = run.group().count("<")
        if box_size is None:
            size = 8 if count % 8 == 0 else 4 if count == 4 else 0
        else:
            size = box_size if count % box_size == 0 else 0
        if size == 0:
            out.fail(f"{where}: {count} <loc_N> tokens is not a whole number of boxes")
            continue
        # convert no more numbers than the remaining budget can use
        wanted = min(count, (out.budget + 1) * size)
        values = [float(v.group()) for v in islice(_LOC_VALUE.finditer(run.group()), wanted)]
        kind: BoxKind = "quad" if size == 8 else "hbb"
        for i in range(0, count, size):
            # the run's first box was paid for by the run itself
            if i and not out.take():
                break
            out.add(kind, values[i : i + size], label, where)
    return out.finish(text)


# --------------------------------------------------------------------------- dispatch

PARSERS: dict[str, Callable[..., ParsedBoxes]] = {
    "rscovlm_plain": parse_rscovlm_plain,
    "qwen25vl_json": parse_qwen25vl_json,
    "qwen2vl_tokens": parse_qwen2vl_tokens,
    "geochat": parse_geochat,
    "florence_loc": parse_florence_loc,
}
"""Dialect name -> parser function."""


def parse_response(
    text: str,
    dialect: str,
    *,
    frame: Frame,
    image_size: tuple[float, float],
    **options: Any,
) -> ParsedBoxes:
    """Parse ``text`` written in ``dialect`` (a key of :data:`PARSERS`).

    Args:
        text: The model response.
        dialect: Name of the output format.
        frame: Coordinate space of the numbers in the response.
        image_size: ``(width, height)`` of the original image in pixels.
        **options: Extra keyword arguments of the dialect's parser (e.g.
            ``box_size`` for ``florence_loc``).

    Returns:
        The boxes in original image pixels.

    Raises:
        InvalidInputError: for an unknown dialect, a bad frame or image size.

    Example:
        >>> parse_response("There are none.", "rscovlm_plain", frame=Frame.grid(), image_size=(8, 8)).is_empty_answer
        True
    """
    parser = PARSERS.get(dialect)
    if parser is None:
        raise InvalidInputError(f"Expected `dialect` to be one of {sorted(PARSERS)}, but got {dialect!r}")
    return parser(text, frame=frame, image_size=image_size, **options)
