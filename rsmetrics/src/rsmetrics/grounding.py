"""Visual grounding accuracy (Acc@0.5 and friends), mean IoU and cumulative IoU.

One predicted box per referring expression is compared with its one ground
truth box. A sample is correct at threshold ``t`` when ``IoU > t`` (or
``>= t``). Every sample is in the denominator: an unparsable answer (``None``)
and a degenerate box are wrong and are counted.

The published protocols differ in two details only, the comparison operator and
the pixel convention of the IoU (see :data:`GROUNDING_PRESETS`):

``"rscovlm"``
    RSCoVLM's evaluation "following GeoGround", also used for DIOR-RSVG and
    VRSBench referring: ``IoU > t`` with the VLM-R1 IoU, i.e. continuous IoU
    except that an overlap of at most 1 px in width or height counts as 0.
``"vrsbench"``
    VRSBench's notebook: ``IoU >= t`` with the ``+1`` pixel convention.
``"vhm"``
    VHM / RSEvalKit: ``IoU >= t`` with continuous IoU.

All boxes are in original image pixels: ``(x1, y1, x2, y2)`` horizontal boxes
or ``(x1, y1, ..., x4, y4)`` quads (see :mod:`rsmetrics.geometry`).

Example:
    >>> r = grounding_accuracy([[0, 0, 10, 10], None], [[0, 0, 10, 5], [0, 0, 4, 4]], iou_op=">=")
    >>> r.accuracy[0.5], r.num_unparsable, round(r.mean_iou, 4)
    (0.5, 1, 0.25)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rsmetrics.errors import InvalidInputError
from rsmetrics.geometry import as_boxes, canonical_quad, hbb_to_quad, quad_area, quad_to_hbb
from rsmetrics.iou import hbb_iou_pairs, poly_iou_pairs
from rsmetrics.parsers import Frame, parse_response

__all__ = [
    "GROUNDING_PRESETS",
    "GroundingPixel",
    "GroundingResult",
    "GroundingScores",
    "IouOp",
    "grounding_accuracy",
    "score_grounding_answers",
    "vlmr1_iou_pairs",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
GroundingPixel = Literal["continuous", "plus_one", "vlmr1"]
IouOp = Literal[">", ">="]
GroundingBoxKind = Literal["hbb", "quad"]

GROUNDING_PRESETS: dict[str, dict[str, Any]] = {
    "rscovlm": {"iou_op": ">", "pixel": "vlmr1"},
    "vrsbench": {"iou_op": ">=", "pixel": "plus_one"},
    "vhm": {"iou_op": ">=", "pixel": "continuous"},
}
"""Comparison operator and pixel convention of each reference protocol."""

_PIXELS = ("continuous", "plus_one", "vlmr1")
_OPS = (">", ">=")
_KINDS = ("hbb", "quad")


# --------------------------------------------------------------------------- IoU


def _overlap_extent(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Signed width and height of the overlap of ``(P, 4)`` boxes, row by row."""
    with np.errstate(invalid="ignore", over="ignore"):
        iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
        ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    return iw, ih


def vlmr1_iou_pairs(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """Row-wise IoU ``(P,)`` of horizontal boxes as VLM-R1 / RSCoVLM compute it.

    Continuous IoU, except that an overlap whose width or height is at most
    1 px counts as no overlap (their ``iou()`` only intersects when
    ``max(x1) < min(x2) - 1``). Degenerate boxes give 0, never an exception
    (the reference divides by zero there).

    Args:
        a: ``(P, 4)`` boxes ``(x1, y1, x2, y2)``.
        b: ``(P, 4)`` boxes ``(x1, y1, x2, y2)``.

    Returns:
        ``(P,)`` IoU in ``[0, 1]``.

    Example:
        >>> vlmr1_iou_pairs([[0, 0, 10, 10], [0, 0, 10, 10]], [[9, 0, 19, 10], [8, 0, 18, 10]]).round(4).tolist()
        [0.0, 0.1111]
    """
    aa, bb = as_boxes(a, "hbb"), as_boxes(b, "hbb")
    # the kept overlaps are exactly the continuous ones, and a dropped overlap makes the IoU 0
    # whatever the union, so masking the continuous IoU reproduces the reference
    iou = hbb_iou_pairs(aa, bb, pixel="continuous")
    iw, ih = _overlap_extent(aa, bb)
    return np.where((iw > 1) & (ih > 1), iou, 0.0)


# --------------------------------------------------------------------------- results


def _clean(value: float) -> float | None:
    return None if math.isnan(value) else value


def _key(threshold: float) -> str:
    return format(threshold, "g")


@dataclass(frozen=True)
class GroundingScores:
    """Accuracy, IoU summaries and counts of one set of grounding samples.

    Attributes:
        accuracy: Threshold -> correct / all samples (NaN for no samples).
        num_correct: Threshold -> number of correct samples.
        num_total: All samples, unparsable and degenerate ones included.
        num_unparsable: Predictions that are ``None`` or not 4 or 8 numbers.
        num_degenerate: Parsed predictions with a non-finite coordinate, zero
            area, or (hbb) ``x2 < x1`` or ``y2 < y1``.
        num_degenerate_targets: Ground truth boxes of that kind; their samples
            are wrong.
        mean_iou: Mean IoU over all samples, 0 for unparsable and degenerate
            predictions (NaN for no samples).
        cumulative_iou: Sum of intersections / sum of unions (VRSBench's
            cumIoU). A missing or degenerate prediction covers nothing: it adds
            the target area to the unions. NaN when the unions sum to 0.

    Example:
        >>> s = grounding_accuracy([[0, 0, 10, 10]], [[5, 0, 15, 10]])
        >>> s.accuracy[0.5], round(s.cumulative_iou, 4)
        (0.0, 0.3333)
    """

    accuracy: dict[float, float]
    num_correct: dict[float, int]
    num_total: int
    num_unparsable: int
    num_degenerate: int
    num_degenerate_targets: int
    mean_iou: float
    cumulative_iou: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict (JSON-ready) form; thresholds become keys like ``"0.5"``, NaN becomes None.

        Example:
            >>> grounding_accuracy([[0, 0, 2, 2]], [[0, 0, 2, 2]]).to_dict()["accuracy"]
            {'0.5': 1.0}
        """
        return {
            "accuracy": {_key(t): _clean(v) for t, v in self.accuracy.items()},
            "num_correct": {_key(t): v for t, v in self.num_correct.items()},
            "num_total": self.num_total,
            "num_unparsable": self.num_unparsable,
            "num_degenerate": self.num_degenerate,
            "num_degenerate_targets": self.num_degenerate_targets,
            "mean_iou": _clean(self.mean_iou),
            "cumulative_iou": _clean(self.cumulative_iou),
        }


@dataclass(frozen=True, eq=False)
class GroundingResult(GroundingScores):
    """Outcome of :func:`grounding_accuracy`: the scores of all samples, the protocol, per-dataset scores.

    Attributes:
        thresholds: The IoU thresholds, in the order given.
        iou_op: ``">"`` or ``">="``.
        pixel: ``"continuous"``, ``"plus_one"`` or ``"vlmr1"``.
        box_kind: ``"hbb"`` or ``"quad"``.
        per_dataset: Dataset name -> its :class:`GroundingScores` (sorted by
            name; empty when no ``datasets`` were given).
        ious: ``(N,)`` read-only IoU of every sample, 0 for unparsable and
            degenerate ones.

    Example:
        >>> r = grounding_accuracy([[0, 0, 10, 10], [0, 0, 10, 10]], [[0, 0, 10, 10], [50, 50, 60, 60]],
        ...                        datasets=["a", "b"])
        >>> {name: s.accuracy[0.5] for name, s in r.per_dataset.items()}
        {'a': 1.0, 'b': 0.0}
    """

    thresholds: tuple[float, ...] = (0.5,)
    iou_op: IouOp = ">"
    pixel: GroundingPixel = "continuous"
    box_kind: GroundingBoxKind = "hbb"
    per_dataset: dict[str, GroundingScores] = field(default_factory=dict)
    ious: FloatArray = field(default_factory=lambda: np.zeros(0))

    def __eq__(self, other: object) -> bool:
        # a generated __eq__ would compare the `ious` arrays with `==`, whose truth value is ambiguous
        if not isinstance(other, GroundingResult):
            return NotImplemented
        return self.to_dict() == other.to_dict() and np.array_equal(self.ious, other.ious)

    __hash__ = None  # type: ignore[assignment]

    @property
    def protocol(self) -> dict[str, Any]:
        """The settings that produced these numbers.

        Example:
            >>> grounding_accuracy([], [], preset="vrsbench").protocol["pixel"]
            'plus_one'
        """
        return {
            "thresholds": list(self.thresholds),
            "iou_op": self.iou_op,
            "pixel": self.pixel,
            "box_kind": self.box_kind,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict (JSON-ready) form with the protocol and per-dataset scores (not ``ious``).

        Example:
            >>> sorted(grounding_accuracy([None], [[0, 0, 1, 1]]).to_dict())[:3]
            ['accuracy', 'cumulative_iou', 'mean_iou']
        """
        out = super().to_dict()
        out["protocol"] = self.protocol
        out["per_dataset"] = {name: s.to_dict() for name, s in self.per_dataset.items()}
        return out

    def to_table(self) -> str:
        """A fixed-width text table: one row per dataset, then all samples.

        Example:
            >>> print(grounding_accuracy([[0, 0, 2, 2]], [[0, 0, 2, 2]]).to_table())
            Acc@t: IoU > t, pixel=continuous, box_kind=hbb
            dataset                       n  unparsable  degenerate  Acc@0.5    mIoU  cumIoU
            --------------------------------------------------------------------------------
            all                           1           0           0   1.0000  1.0000  1.0000
        """
        acc_heads = "".join(f"{'Acc@' + _key(t):>9}" for t in self.thresholds)
        head = f"{'dataset':<24}{'n':>7}{'unparsable':>12}{'degenerate':>12}{acc_heads}{'mIoU':>8}{'cumIoU':>8}"
        lines = [
            f"Acc@t: IoU {self.iou_op} t, pixel={self.pixel}, box_kind={self.box_kind}",
            head,
            "-" * len(head),
        ]
        rows: list[tuple[str, GroundingScores]] = list(self.per_dataset.items())
        for name, scores in [*rows, ("all", self)]:
            if name == "all" and rows:
                lines.append("-" * len(head))
            accs = "".join(f"{_fmt(scores.accuracy[t]):>9}" for t in self.thresholds)
            lines.append(
                f"{name[:23]:<24}{scores.num_total:>7}{scores.num_unparsable:>12}{scores.num_degenerate:>12}"
                f"{accs}{_fmt(scores.mean_iou):>8}{_fmt(scores.cumulative_iou):>8}"
            )
        if self.num_degenerate_targets:
            lines.append(f"notes: degenerate_targets={self.num_degenerate_targets}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_table()


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"


# --------------------------------------------------------------------------- inputs


def _check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise InvalidInputError(f"Expected `{name}` to be one of {sorted(choices)}, but got {value!r}")


def _check_thresholds(thresholds: Any) -> tuple[float, ...]:
    try:
        values = tuple(float(t) for t in np.atleast_1d(np.asarray(thresholds, dtype=np.float64)))
    except (TypeError, ValueError):
        raise InvalidInputError(f"Expected `thresholds` to be numbers in [0, 1], but got {thresholds!r}") from None
    if not values or not all(0.0 <= t <= 1.0 for t in values):
        raise InvalidInputError(f"Expected `thresholds` to be numbers in [0, 1], but got {thresholds!r}")
    return values


def _check_length(name: str, values: Sequence[Any], expected: int) -> None:
    if len(values) != expected:
        raise InvalidInputError(
            f"Expected `predictions` and `{name}` to have the same length, "
            f"but got {expected} predictions and {len(values)} {name}"
        )


def _resolve_protocol(
    preset: str | None, iou_op: IouOp | None, pixel: GroundingPixel | None
) -> tuple[IouOp, GroundingPixel]:
    base: dict[str, Any] = {"iou_op": ">", "pixel": "continuous"}
    if preset is not None:
        _check_choice("preset", preset, list(GROUNDING_PRESETS))
        base.update(GROUNDING_PRESETS[preset])
    # an explicit argument wins over the preset, so a preset can be varied one setting at a time
    op = base["iou_op"] if iou_op is None else iou_op
    px = base["pixel"] if pixel is None else pixel
    _check_choice("iou_op", op, _OPS)
    _check_choice("pixel", px, _PIXELS)
    return op, px


def _as_flat(value: Any) -> FloatArray | None:
    """``value`` as a flat float array of 4 or 8 numbers, or None if it is not one."""
    if value is None:
        return None
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        return None
    return arr if arr.size in (4, 8) else None


def _to_kind(
    rows: list[FloatArray | None], kind: GroundingBoxKind, pixel: GroundingPixel
) -> tuple[FloatArray, BoolArray]:
    """Stack 4- and 8-number rows into ``(N, 4)`` hbbs or ``(N, 8)`` quads, and flag degenerate ones.

    Missing rows become NaN and are flagged too; the caller tells them apart.
    """
    n = len(rows)
    size = 4 if kind == "hbb" else 8
    out = np.full((n, size), np.nan, dtype=np.float64)
    idx4 = [i for i, r in enumerate(rows) if r is not None and r.size == 4]
    idx8 = [i for i, r in enumerate(rows) if r is not None and r.size == 8]
    hbb = np.array([rows[i] for i in idx4], dtype=np.float64).reshape(-1, 4)
    quad = np.array([rows[i] for i in idx8], dtype=np.float64).reshape(-1, 8)
    # plus_one boxes cover x2 - x1 + 1 pixels, so a zero-width one is a valid 1-px column (VRSBench)
    plus = pixel == "plus_one"
    with np.errstate(invalid="ignore", over="ignore"):
        if kind == "hbb":
            out[idx4] = hbb
            out[idx8] = quad_to_hbb(quad)
            w, h = out[:, 2] - out[:, 0], out[:, 3] - out[:, 1]
            ok = (w >= 0) & (h >= 0) if plus else (w > 0) & (h > 0)
            # huge finite coordinates overflow the area to inf, which no IoU can use
            bad = ~np.isfinite(out).all(axis=1) | ~ok | ~np.isfinite(w * h)
            return out, bad
        # an hbb with swapped corners is degenerate here too, not silently reordered by canonical_quad
        swapped = ~((hbb[:, 2] > hbb[:, 0]) & (hbb[:, 3] > hbb[:, 1]))
        out[idx4] = hbb_to_quad(hbb)
        out[idx8] = quad
        finite = np.isfinite(out).all(axis=1)
        area = np.abs(quad_area(np.where(finite[:, None], canonical_quad(out), 0.0)))
        bad = ~finite | ~(area > 0) | ~np.isfinite(area)
        bad[idx4] |= swapped
    return out, bad


def _areas(boxes: FloatArray, bad: BoolArray, kind: GroundingBoxKind, pixel: GroundingPixel) -> FloatArray:
    off = 1.0 if pixel == "plus_one" else 0.0
    safe = np.where(bad[:, None], 0.0, boxes)
    with np.errstate(invalid="ignore", over="ignore"):
        if kind == "hbb":
            area = (safe[:, 2] - safe[:, 0] + off) * (safe[:, 3] - safe[:, 1] + off)
        else:
            area = np.abs(quad_area(canonical_quad(safe)))
    return np.where(bad, 0.0, area)


# --------------------------------------------------------------------------- scoring


def _scores(
    ious: FloatArray,
    inter: FloatArray,
    union: FloatArray,
    unparsable: BoolArray,
    degenerate: BoolArray,
    bad_target: BoolArray,
    thresholds: tuple[float, ...],
    iou_op: IouOp,
) -> GroundingScores:
    n = len(ious)
    num_correct = {t: int(np.count_nonzero(ious > t if iou_op == ">" else ious >= t)) for t in thresholds}
    total_union = float(union.sum())
    cumulative = min(float(inter.sum()) / total_union, 1.0) if total_union > 0 else math.nan
    return GroundingScores(
        accuracy={t: (c / n if n else math.nan) for t, c in num_correct.items()},
        num_correct=num_correct,
        num_total=n,
        num_unparsable=int(np.count_nonzero(unparsable)),
        num_degenerate=int(np.count_nonzero(degenerate)),
        num_degenerate_targets=int(np.count_nonzero(bad_target)),
        mean_iou=float(ious.mean()) if n else math.nan,
        cumulative_iou=cumulative,
    )


def grounding_accuracy(
    predictions: Sequence[ArrayLike | None],
    targets: Sequence[ArrayLike] | ArrayLike,
    *,
    thresholds: Sequence[float] | float = (0.5,),
    iou_op: IouOp | None = None,
    box_kind: GroundingBoxKind = "hbb",
    pixel: GroundingPixel | None = None,
    datasets: Sequence[str] | None = None,
    preset: str | None = None,
) -> GroundingResult:
    """Grounding accuracy at IoU thresholds (Acc@0.5), mean IoU and cumulative IoU.

    Each sample has one predicted box and one target box, both in original
    image pixels. With ``box_kind="hbb"`` quads (8 numbers) are reduced to
    their enclosing horizontal box; with ``box_kind="quad"`` horizontal boxes
    become rectangles and the IoU is the exact polygon IoU.

    A prediction that is ``None``, not numeric, or not 4 or 8 numbers is
    unparsable; one with a non-finite coordinate, zero area, or (hbb) swapped
    corners is degenerate. Both are wrong, counted, and in the denominator.

    Args:
        predictions: ``(N,)`` predicted boxes (4 or 8 numbers each) or None.
        targets: ``(N,)`` ground truth boxes (4 or 8 numbers each).
        thresholds: IoU thresholds in ``[0, 1]``, e.g. ``(0.5, 0.7)``.
        iou_op: ``">"`` (RSCoVLM/GeoGround) or ``">="`` (VRSBench, VHM).
            Default: the preset's, else ``">"``.
        box_kind: ``"hbb"`` or ``"quad"``.
        pixel: IoU pixel convention for hbbs: ``"continuous"`` (``w * h``),
            ``"plus_one"`` (``(w + 1) * (h + 1)``, VRSBench) or ``"vlmr1"``
            (continuous, overlaps of at most 1 px count as 0; RSCoVLM).
            Quads only take ``"continuous"``. Default: the preset's, else
            ``"continuous"``.
        datasets: ``(N,)`` dataset name of each sample, for ``per_dataset``.
        preset: A key of :data:`GROUNDING_PRESETS`; explicit ``iou_op`` and
            ``pixel`` override it.

    Returns:
        A :class:`GroundingResult`.

    Raises:
        InvalidInputError: if the lengths differ, a target is not 4 or 8
            numbers (the message names its index), or an option is unknown.

    Example:
        >>> preds = [[0, 0, 10, 10], [0, 0, 10, 10], None]
        >>> gts = [[0, 0, 10, 5], [5, 0, 15, 10], [0, 0, 4, 4]]
        >>> grounding_accuracy(preds, gts, preset="rscovlm").accuracy
        {0.5: 0.0}
        >>> grounding_accuracy(preds, gts, preset="vhm").accuracy  # IoU of exactly 0.5 counts with '>='
        {0.5: 0.3333333333333333}
    """
    op, px = _resolve_protocol(preset, iou_op, pixel)
    _check_choice("box_kind", box_kind, _KINDS)
    if box_kind == "quad" and px != "continuous":
        raise InvalidInputError(
            f"Expected `pixel` to be 'continuous' with box_kind='quad' (polygon IoU), but got {px!r}"
        )
    thr = _check_thresholds(thresholds)
    if isinstance(predictions, (str, bytes)):
        raise InvalidInputError("Expected `predictions` to be a sequence of boxes, but got a string")
    preds = list(predictions)
    n = len(preds)
    gt_list = list(targets)  # type: ignore[arg-type]
    _check_length("targets", gt_list, n)
    names = None
    if datasets is not None:
        if isinstance(datasets, (str, bytes)):
            raise InvalidInputError("Expected `datasets` to be a sequence of names, but got a single string")
        names = [str(d) for d in datasets]
        _check_length("datasets", names, n)

    gt_rows: list[FloatArray | None] = []
    for i, t in enumerate(gt_list):
        row = _as_flat(t)
        if row is None:
            raise InvalidInputError(f"Expected target {i} to be 4 or 8 numbers, but got {t!r}")
        gt_rows.append(row)
    pred_rows = [_as_flat(p) for p in preds]
    unparsable = np.array([r is None for r in pred_rows], dtype=bool)

    pred_boxes, pred_bad = _to_kind(pred_rows, box_kind, px)
    gt_boxes, gt_bad = _to_kind(gt_rows, box_kind, px)
    degenerate = pred_bad & ~unparsable
    usable = ~pred_bad & ~gt_bad

    ious = np.zeros(n, dtype=np.float64)
    if usable.any():
        a, b = pred_boxes[usable], gt_boxes[usable]
        if box_kind == "quad":
            ious[usable] = poly_iou_pairs(a, b)
        elif px == "vlmr1":
            ious[usable] = vlmr1_iou_pairs(a, b)
        else:
            ious[usable] = hbb_iou_pairs(a, b, pixel=px)

    # intersection and union recovered from IoU = I / (A + B - I), so every convention shares one path:
    # with vlmr1 a dropped overlap has I = 0 and U = A + B, as in the reference
    area_p = _areas(pred_boxes, pred_bad, box_kind, px)
    area_g = _areas(gt_boxes, gt_bad, box_kind, px)
    with np.errstate(invalid="ignore", over="ignore"):
        total = area_p + area_g
        inter = np.where(ious > 0, ious * total / (1.0 + ious), 0.0)
        union = total - inter
    finite = np.isfinite(inter) & np.isfinite(union)
    inter, union = np.where(finite, inter, 0.0), np.where(finite, union, 0.0)
    ious.setflags(write=False)

    def scores(sel: slice | BoolArray) -> GroundingScores:
        return _scores(ious[sel], inter[sel], union[sel], unparsable[sel], degenerate[sel], gt_bad[sel], thr, op)

    per_dataset: dict[str, GroundingScores] = {}
    if names is not None:
        labels = np.array(names, dtype=object)
        per_dataset = {name: scores(labels == name) for name in sorted(set(names))}
    overall = scores(slice(None))
    return GroundingResult(
        **{f: getattr(overall, f) for f in GroundingScores.__dataclass_fields__},
        thresholds=thr,
        iou_op=op,
        pixel=px,
        box_kind=box_kind,
        per_dataset=per_dataset,
        ious=ious,
    )


# --------------------------------------------------------------------------- text answers


def _per_sample(value: Any, n: int, name: str, single: bool) -> list[Any]:
    if single:
        return [value] * n
    items = list(value)
    _check_length(name, items, n)
    return items


def _is_one_size(image_sizes: Any) -> bool:
    """True for a single ``(width, height)``, False for one size per answer."""
    try:
        return bool(np.ndim(image_sizes) == 1)
    except ValueError:  # ragged: sizes of different lengths, so one per answer (checked by the parser)
        return False


def score_grounding_answers(
    answers: Sequence[str | None],
    targets: Sequence[ArrayLike] | ArrayLike,
    *,
    dialect: str,
    frames: Frame | Sequence[Frame],
    image_sizes: tuple[float, float] | Sequence[tuple[float, float]],
    thresholds: Sequence[float] | float = (0.5,),
    iou_op: IouOp | None = None,
    box_kind: GroundingBoxKind = "hbb",
    pixel: GroundingPixel | None = None,
    datasets: Sequence[str] | None = None,
    preset: str | None = None,
    **parse_options: Any,
) -> GroundingResult:
    """Parse model answers with :func:`rsmetrics.parsers.parse_response` and score them.

    The first box of each answer is the prediction, mapped to original image
    pixels through its :class:`~rsmetrics.parsers.Frame` and image size. An
    answer without a readable box (including "There is none." and a
    non-``str`` answer) is unparsable. An hbb answer stays an hbb; obb and
    quad answers are quads (reduced to their enclosing hbb when
    ``box_kind="hbb"``).

    Args:
        answers: ``(N,)`` model responses.
        targets: ``(N,)`` ground truth boxes in original image pixels.
        dialect: Output format, a key of :data:`rsmetrics.parsers.PARSERS`.
        frames: The coordinate space of the answers: one :class:`Frame` for
            all, or one per answer.
        image_sizes: ``(width, height)`` of the original image: one for all,
            or one per answer.
        thresholds: See :func:`grounding_accuracy`.
        iou_op: See :func:`grounding_accuracy`.
        box_kind: See :func:`grounding_accuracy`.
        pixel: See :func:`grounding_accuracy`.
        datasets: See :func:`grounding_accuracy`.
        preset: See :func:`grounding_accuracy`.
        **parse_options: Passed to the dialect's parser.

    Returns:
        A :class:`GroundingResult`.

    Raises:
        InvalidInputError: if lengths differ, a target is malformed, or the
            dialect, a frame or an image size is invalid.

    Example:
        >>> r = score_grounding_answers(["12,34,56,78 the car"], [[24, 68, 112, 156]], dialect="rscovlm_plain",
        ...                             frames=Frame.pixels(500, 250), image_sizes=(1000, 500), preset="rscovlm")
        >>> r.accuracy[0.5], r.ious.tolist()
        (1.0, [1.0])
    """
    if isinstance(answers, (str, bytes)):
        raise InvalidInputError("Expected `answers` to be a sequence of responses, but got a single string")
    texts = list(answers)
    n = len(texts)
    frame_list = _per_sample(frames, n, "frames", isinstance(frames, Frame))
    size_list = _per_sample(image_sizes, n, "image_sizes", _is_one_size(image_sizes))
    predictions: list[FloatArray | None] = []
    for text, frame, size in zip(texts, frame_list, size_list, strict=True):
        if not isinstance(text, str):
            predictions.append(None)
            continue
        parsed = parse_response(text, dialect, frame=frame, image_size=size, **parse_options)
        if len(parsed) == 0:
            predictions.append(None)
        elif parsed.kinds[0] == "hbb":
            # the parser returns quads; an hbb's enclosing box is the hbb itself, exactly
            predictions.append(quad_to_hbb(parsed.boxes[0]))
        else:
            predictions.append(np.array(parsed.boxes[0]))
    return grounding_accuracy(
        predictions,
        targets,
        thresholds=thresholds,
        iou_op=iou_op,
        box_kind=box_kind,
        pixel=pixel,
        datasets=datasets,
        preset=preset,
    )
