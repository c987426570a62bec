"""The result of a detection evaluation: per-class numbers, means, counts."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rsmetrics.errors import RSMetricsError

__all__ = ["ClassResult", "DetectionResult"]


def _clean(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


@dataclass(frozen=True)
class ClassResult:
    """Numbers of one class.

    ``ap`` has one value per IoU threshold (NaN for a class without GT when the
    protocol averages over classes with GT). TP/FP/FN, precision, recall and F1
    are those of the whole (unthresholded) prediction list at each IoU threshold,
    under the protocol's one-to-one matching: ``F1 = 2TP / (2TP + FP + FN)``.
    Under the ``random`` tie rule ``ap`` is the mean over seeds and ``ap_std`` the
    population standard deviation.
    """

    name: str
    num_gt: int
    num_predictions: int
    ap: tuple[float, ...]
    tp: tuple[int, ...]
    fp: tuple[int, ...]
    fn: tuple[int, ...]
    ap_std: tuple[float, ...] | None = None

    @property
    def precision(self) -> tuple[float, ...]:
        return tuple(t / (t + f) if t + f else 0.0 for t, f in zip(self.tp, self.fp))

    @property
    def recall(self) -> tuple[float, ...]:
        return tuple(t / (t + n) if t + n else 0.0 for t, n in zip(self.tp, self.fn))

    @property
    def f1(self) -> tuple[float, ...]:
        return tuple(2 * t / (2 * t + f + n) if (2 * t + f + n) else 0.0 for t, f, n in zip(self.tp, self.fp, self.fn))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_gt": self.num_gt,
            "num_predictions": self.num_predictions,
            "ap": [_clean(v) for v in self.ap],
            "ap_std": None if self.ap_std is None else [_clean(v) for v in self.ap_std],
            "tp": list(self.tp),
            "fp": list(self.fp),
            "fn": list(self.fn),
            "precision": list(self.precision),
            "recall": list(self.recall),
            "f1": list(self.f1),
        }


@dataclass(frozen=True)
class DetectionResult:
    """Outcome of :func:`rsmetrics.evaluate_detection`.

    Attributes:
        protocol: the protocol as a dict.
        iou_thresholds: the thresholds, in order.
        classes: per-class results, in class-list order.
        map_per_threshold: mAP at each threshold.
        map: mean of ``map_per_threshold`` (AP50:95 for the COCO thresholds).
        map_std: population std of mAP over seeds (``random`` tie rule), else None.
        mf1: macro F1 over classes with GT at the first threshold.
        micro_f1: F1 of the summed TP/FP/FN at the first threshold.
        counts: images, objects, predictions, and everything skipped or repaired.
    """

    protocol: dict[str, Any]
    iou_thresholds: tuple[float, ...]
    classes: tuple[ClassResult, ...]
    map_per_threshold: tuple[float, ...]
    map: float
    mf1: float
    micro_f1: float
    map_std: float | None = None
    counts: dict[str, Any] = field(default_factory=dict)

    def _at(self, thr: float) -> float | None:
        for t, v in zip(self.iou_thresholds, self.map_per_threshold):
            if abs(t - thr) < 1e-9:
                return v
        return None

    @property
    def ap50(self) -> float | None:
        """mAP at IoU 0.5, if evaluated."""
        return self._at(0.5)

    @property
    def ap75(self) -> float | None:
        """mAP at IoU 0.75, if evaluated."""
        return self._at(0.75)

    @property
    def ap50_95(self) -> float | None:
        """Mean mAP over IoU 0.50:0.95, if exactly those ten thresholds were evaluated."""
        expected = [0.5 + 0.05 * i for i in range(10)]
        if len(self.iou_thresholds) == 10 and all(abs(a - b) < 1e-9 for a, b in zip(self.iou_thresholds, expected)):
            return self.map
        return None

    def per_class_ap(self, threshold_index: int = 0) -> dict[str, float]:
        """AP of each class at one threshold."""
        return {c.name: c.ap[threshold_index] for c in self.classes}

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "iou_thresholds": list(self.iou_thresholds),
            "map": _clean(self.map),
            "map_std": self.map_std,
            "map_per_threshold": [_clean(v) for v in self.map_per_threshold],
            "ap50": _clean(self.ap50) if self.ap50 is not None else None,
            "ap75": _clean(self.ap75) if self.ap75 is not None else None,
            "ap50_95": _clean(self.ap50_95) if self.ap50_95 is not None else None,
            "mf1": _clean(self.mf1),
            "micro_f1": _clean(self.micro_f1),
            "classes": [c.to_dict() for c in self.classes],
            "counts": self.counts,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_table(self) -> str:
        """A fixed-width text table: one row per class, then the means."""
        thr = self.iou_thresholds[0]
        head = f"{'class':<22}{'gt':>7}{'pred':>7}{'TP':>7}{'FP':>7}{'FN':>7}{'P':>8}{'R':>8}{'F1':>8}{'AP@' + format(thr, 'g'):>9}"
        lines = [head, "-" * len(head)]
        for c in self.classes:
            ap = c.ap[0]
            ap_text = "   -" if math.isnan(ap) else f"{ap:.4f}"
            lines.append(
                f"{c.name[:21]:<22}{c.num_gt:>7}{c.num_predictions:>7}{c.tp[0]:>7}{c.fp[0]:>7}{c.fn[0]:>7}"
                f"{c.precision[0]:>8.4f}{c.recall[0]:>8.4f}{c.f1[0]:>8.4f}{ap_text:>9}"
            )
        lines.append("-" * len(head))
        summary = [f"mAP@{thr:g} = {self.map_per_threshold[0]:.4f}"]
        if len(self.iou_thresholds) > 1:
            summary.append(f"mAP({self.iou_thresholds[0]:g}:{self.iou_thresholds[-1]:g}) = {self.map:.4f}")
            if self.ap75 is not None:
                summary.append(f"AP75 = {self.ap75:.4f}")
        if self.map_std is not None:
            summary.append(f"std over seeds = {self.map_std:.4f}")
        summary.append(f"mF1 = {self.mf1:.4f}")
        summary.append(f"micro F1 = {self.micro_f1:.4f}")
        lines.append("   ".join(summary))
        skipped = {
            k: v for k, v in self.counts.items() if k.startswith(("unknown", "degenerate", "repaired", "dropped")) and v
        }
        if skipped:
            lines.append("notes: " + ", ".join(f"{k}={v}" for k, v in skipped.items()))
        return "\n".join(lines)

    def plot(self, path: str | Path | None = None, ax: Any = None) -> tuple[Any, Any]:
        """Per-class AP and F1 at the first IoU threshold as paired horizontal bars.

        Classes without ground truth show no AP bar. Needs matplotlib
        (``pip install rsmetrics[plot]``); writes a PNG atomically when ``path``
        is given; returns ``(fig, ax)`` and never calls ``show()``.
        """
        try:
            import matplotlib

            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:  # pragma: no cover - depends on the environment
            raise RSMetricsError("Plotting needs matplotlib: pip install 'rsmetrics[plot]'") from None
        names = [c.name for c in self.classes]
        ap = np.array([c.ap[0] for c in self.classes], dtype=np.float64)
        f1 = np.array([c.f1[0] for c in self.classes], dtype=np.float64)
        if ax is None:
            fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.5), dpi=120)
        else:
            fig = ax.figure
        y = np.arange(len(names))
        ax.barh(y - 0.2, np.nan_to_num(ap), height=0.4, label=f"AP@{self.iou_thresholds[0]:g}")
        ax.barh(y + 0.2, f1, height=0.4, label="F1")
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("score")
        ax.set_title(f"mAP {self.map_per_threshold[0]:.4f}   mF1 {self.mf1:.4f}")
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(axis="x", alpha=0.3)
        if path is not None:
            from rsmetrics.io._common import save_figure

            save_figure(fig, path)
        return fig, ax

    def __str__(self) -> str:
        return self.to_table()
