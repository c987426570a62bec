"""Detection evaluation protocols: every knob, and the named presets.

A :class:`DetectionProtocol` fixes every rule that changes a detection number.
Presets reproduce reference evaluators; any field can be overridden.

Presets:

``dota``
    The DOTA devkit's Task1 evaluation (``dota_evaluation_task1.py``, also
    ``dotadevkit`` on PyPI): polygon IoU on the quads, a match needs IoU > thr,
    ground truth with ``difficult != 0`` is ignored (a detection on it is
    neither TP nor FP), VOC07 11-point AP, mAP over every class of the list.
``mmrotate``
    What RSCoVLM's published AP_nc runs (mmrotate 1.x ``DOTAMetric`` with
    ``eval_rbbox_map``): both quads become their minimum-area rectangles,
    rotated-box IoU, a match needs IoU >= thr, difficult objects are ordinary
    ground truth, VOC07 11-point AP, mAP over classes with at least one GT.
``coco``
    pycocotools' bbox AP: horizontal-box IoU, IoU >= thr, a detection falls
    back to the best still-unmatched GT, crowd/difficult GT ignored, 101-point
    AP at IoU 0.50:0.95, at most 100 detections per image and class, mAP over
    classes with GT.

Example:
    >>> p = get_protocol("dota", iou_thresholds="0.50:0.95")
    >>> p.iou_type, p.iou_op, len(p.iou_thresholds)
    ('poly', '>', 10)
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal

import numpy as np

from rsmetrics.errors import InvalidInputError

__all__ = ["PAPER_SEEDS", "PRESETS", "DetectionProtocol", "get_protocol", "parse_iou_thresholds"]

IoUType = Literal["poly", "rbox", "hbb"]
IoUOp = Literal[">", ">="]
DifficultRule = Literal["ignore", "keep", "drop"]
MatchingRule = Literal["voc", "coco"]
ClassAverage = Literal["all", "with_gt"]
TieRule = Literal["grouped", "stable", "random"]

# The ten seeds of LMMRotate's robustness script, which the paper's error bands use.
PAPER_SEEDS: tuple[int, ...] = (42, 666, 6666, 66666, 666666, 2024, 9968, 0, 1, 123)

COCO_IOU_THRESHOLDS: tuple[float, ...] = tuple(float(x) for x in np.linspace(0.5, 0.95, 10))

_CHOICES: dict[str, tuple[str, ...]] = {
    "iou_type": ("poly", "rbox", "hbb"),
    "iou_op": (">", ">="),
    "difficult": ("ignore", "keep", "drop"),
    "matching": ("voc", "coco"),
    "ap_method": ("voc07", "area", "coco101"),
    "class_average": ("all", "with_gt"),
    "tie_rule": ("grouped", "stable", "random"),
    "pixel": ("continuous", "plus_one"),
}


def parse_iou_thresholds(value: float | str | tuple[float, ...] | list[float]) -> tuple[float, ...]:
    """Read IoU thresholds: one number, a list, or a range ``"0.50:0.95"`` (step 0.05).

    The range gives pycocotools' values (``np.linspace(0.5, 0.95, 10)``).
    """
    if isinstance(value, str):
        text = value.strip()
        if ":" in text:
            parts = text.split(":")
            try:
                lo, hi = float(parts[0]), float(parts[-1])
                step = float(parts[1]) if len(parts) == 3 else 0.05
            except ValueError:
                raise InvalidInputError(
                    f"Expected IoU thresholds like '0.5', '0.5,0.75' or '0.50:0.95', but got {value!r}"
                ) from None
            count = round((hi - lo) / step) + 1
            out = tuple(float(x) for x in np.linspace(lo, hi, count))
        else:
            try:
                out = tuple(float(x) for x in text.split(",") if x.strip())
            except ValueError:
                raise InvalidInputError(
                    f"Expected IoU thresholds like '0.5', '0.5,0.75' or '0.50:0.95', but got {value!r}"
                ) from None
    elif isinstance(value, (int, float)):
        out = (float(value),)
    else:
        out = tuple(float(x) for x in value)
    if not out or any(not (0.0 <= t <= 1.0) for t in out):
        raise InvalidInputError(f"Expected IoU thresholds in [0, 1], but got {value!r}")
    return out


@dataclass(frozen=True)
class DetectionProtocol:
    """Every rule of a detection evaluation.

    Attributes:
        iou_type: ``"poly"`` (exact polygon IoU of the quads), ``"rbox"`` (IoU of
            the minimum-area rectangles of the quads) or ``"hbb"`` (IoU of their
            enclosing horizontal boxes).
        iou_op: ``">"`` or ``">="``: how IoU is compared with the threshold.
        difficult: ``"ignore"`` (a detection matched to a difficult GT is neither
            TP nor FP; such GT is not counted), ``"keep"`` (ordinary GT) or
            ``"drop"`` (removed before matching: detections on it become FP).
        matching: ``"voc"`` (a detection is tested against its highest-IoU GT
            only; if that GT is taken it is a FP) or ``"coco"`` (it takes the
            best GT still unmatched at each threshold, regular GT first).
        ap_method: ``"voc07"``, ``"area"`` or ``"coco101"``.
        class_average: ``"all"`` (mean over every class of the list; a class
            without GT has AP 0) or ``"with_gt"`` (classes with at least one GT).
        iou_thresholds: one or more thresholds; mAP is their mean.
        tie_rule: how detections with equal scores are ordered (see
            :mod:`rsmetrics.detection.evaluate`): ``"grouped"``, ``"stable"`` or
            ``"random"``.
        seeds: seeds of the ``"random"`` rule.
        max_dets_per_image: keep at most this many detections per image and
            class (highest scores first); ``None`` keeps all.
        pixel: pixel convention of ``hbb`` IoU.
        crowd_iou: treat ignored GT as crowd regions, as pycocotools does: their
            overlap with a prediction is ``intersection / prediction area``.
    """

    iou_type: IoUType = "poly"
    iou_op: IoUOp = ">"
    difficult: DifficultRule = "ignore"
    matching: MatchingRule = "voc"
    ap_method: Literal["voc07", "area", "coco101"] = "voc07"
    class_average: ClassAverage = "all"
    iou_thresholds: tuple[float, ...] = (0.5,)
    tie_rule: TieRule = "grouped"
    seeds: tuple[int, ...] = PAPER_SEEDS
    max_dets_per_image: int | None = None
    pixel: Literal["continuous", "plus_one"] = "continuous"
    crowd_iou: bool = False

    def __post_init__(self) -> None:
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise InvalidInputError(f"Expected `{name}` to be one of {list(choices)}, but got {value!r}")
        object.__setattr__(self, "iou_thresholds", parse_iou_thresholds(self.iou_thresholds))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if self.tie_rule == "random" and not self.seeds:
            raise InvalidInputError("Expected at least one seed for tie_rule='random', but got none")
        if self.max_dets_per_image is not None and self.max_dets_per_image < 1:
            raise InvalidInputError(f"Expected `max_dets_per_image` >= 1 or None, but got {self.max_dets_per_image}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view of the protocol."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}


PRESETS: dict[str, DetectionProtocol] = {
    "dota": DetectionProtocol(
        iou_type="poly", iou_op=">", difficult="ignore", matching="voc", ap_method="voc07", class_average="all"
    ),
    "mmrotate": DetectionProtocol(
        iou_type="rbox", iou_op=">=", difficult="keep", matching="voc", ap_method="voc07", class_average="with_gt"
    ),
    "coco": DetectionProtocol(
        iou_type="hbb",
        iou_op=">=",
        difficult="ignore",
        matching="coco",
        ap_method="coco101",
        class_average="with_gt",
        iou_thresholds=COCO_IOU_THRESHOLDS,
        max_dets_per_image=100,
        crowd_iou=True,
    ),
}


def get_protocol(preset: str | DetectionProtocol = "mmrotate", **overrides: Any) -> DetectionProtocol:
    """A preset by name (or a protocol) with some fields overridden.

    Raises:
        InvalidInputError: for an unknown preset or field.
    """
    if isinstance(preset, DetectionProtocol):
        base = preset
    else:
        if preset not in PRESETS:
            raise InvalidInputError(f"Expected `preset` to be one of {sorted(PRESETS)}, but got {preset!r}")
        base = PRESETS[preset]
    known = {f.name for f in fields(DetectionProtocol)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise InvalidInputError(f"Expected protocol fields among {sorted(known)}, but got {unknown}")
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(base, **given) if given else base
