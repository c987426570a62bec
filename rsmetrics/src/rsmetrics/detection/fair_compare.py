"""The paper's fair comparison of a conventional detector with a VLM (Sec. III-E2, IV-D).

A VLM emits no confidence scores, so its detections are scored as AP_nc: AP
with every prediction tied. A conventional detector keeps many low-confidence
false positives that scores would rank last; to compare fairly:

1. on a validation split, for every confidence threshold ``0.00, 0.05, ..., 0.95``
   keep the detections scoring above it (strictly), drop their scores and
   compute AP_nc;
2. pick the threshold with the best AP_nc;
3. apply it to the test split and report AP_nc under the constant (grouped)
   tie rule, and its mean and population std over random scores (10 seeds),
   which the paper's error bands show.

Example:
    >>> from rsmetrics.synthetic import make_detection_workload, DOTA_LIKE_CLASSES
    >>> val_gt, val_pred = make_detection_workload(40, seed=1)
    >>> test_gt, test_pred = make_detection_workload(40, seed=2)
    >>> r = fair_compare(val_pred, val_gt, DOTA_LIKE_CLASSES, test_pred, test_gt)
    >>> 0.0 <= r.best_threshold <= 0.95
    True
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rsmetrics.detection.evaluate import DetectionEvaluator, _score
from rsmetrics.detection.protocol import DetectionProtocol
from rsmetrics.detection.types import ImageAnnotations, ImageDetections
from rsmetrics.errors import InvalidInputError, RSMetricsError

__all__ = ["DEFAULT_SWEEP", "FairComparison", "SweepPoint", "fair_compare", "sweep_thresholds"]

DEFAULT_SWEEP: tuple[float, ...] = tuple(round(i * 0.05, 2) for i in range(20))


@dataclass(frozen=True)
class SweepPoint:
    """AP_nc of the detections kept at one confidence threshold."""

    threshold: float
    num_kept: int
    ap_nc: float
    ap_nc_random_mean: float
    ap_nc_random_std: float
    mf1: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class FairComparison:
    """Outcome of :func:`fair_compare`.

    Attributes:
        sweep: one point per threshold on the validation split.
        best_threshold: the threshold with the best constant-rule AP_nc on validation.
        validation_ap: AP with the detector's own scores on validation (for reference).
        test: AP_nc on the test split at ``best_threshold``, or None without test data.
        test_ap: AP with the detector's own scores on the whole test output.
    """

    protocol: dict[str, Any]
    sweep: tuple[SweepPoint, ...]
    best_threshold: float
    validation_ap: float
    test: SweepPoint | None
    test_ap: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "best_threshold": self.best_threshold,
            "validation_ap_with_scores": self.validation_ap,
            "sweep": [p.to_dict() for p in self.sweep],
            "test": None if self.test is None else self.test.to_dict(),
            "test_ap_with_scores": self.test_ap,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_table(self) -> str:
        head = f"{'threshold':>9}{'kept':>9}{'AP_nc':>9}{'random mean':>13}{'std':>9}{'mF1':>9}"
        lines = [head, "-" * len(head)]
        for p in self.sweep:
            mark = "  <- best" if p.threshold == self.best_threshold else ""
            lines.append(
                f"{p.threshold:>9.2f}{p.num_kept:>9}{p.ap_nc:>9.4f}{p.ap_nc_random_mean:>13.4f}{p.ap_nc_random_std:>9.4f}{p.mf1:>9.4f}{mark}"
            )
        lines.append(f"validation AP with scores: {self.validation_ap:.4f}")
        if self.test is not None:
            t = self.test
            lines.append(
                f"test @ {self.best_threshold:.2f}: AP_nc {t.ap_nc:.4f}, random {t.ap_nc_random_mean:.4f} ± {t.ap_nc_random_std:.4f}, "
                f"mF1 {t.mf1:.4f} (AP with scores {self.test_ap:.4f})"
            )
        return "\n".join(lines)

    def plot(self, path: str | Path | None = None, ax: Any = None) -> tuple[Any, Any]:
        """AP_nc against the confidence threshold with the random-score band (the paper's Fig. 5).

        Needs matplotlib (``pip install rsmetrics[plot]``). Writes a PNG when ``path``
        is given; returns ``(fig, ax)`` and never calls ``show()``.
        """
        try:
            import matplotlib

            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:  # pragma: no cover - depends on the environment
            raise RSMetricsError("Plotting needs matplotlib: pip install 'rsmetrics[plot]'") from None
        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
        else:
            fig = ax.figure
        thr = np.array([p.threshold for p in self.sweep])
        mean = np.array([p.ap_nc_random_mean for p in self.sweep])
        std = np.array([p.ap_nc_random_std for p in self.sweep])
        ax.plot(thr, [p.ap_nc for p in self.sweep], marker="o", label="AP_nc (constant score)")
        ax.plot(thr, mean, linestyle="--", label="AP_nc (random scores, mean)")
        ax.fill_between(thr, mean - std, mean + std, alpha=0.25, label="± std over seeds")
        ax.axhline(self.validation_ap, color="grey", linestyle=":", label="AP with the detector's scores")
        ax.axvline(self.best_threshold, color="red", alpha=0.4, label=f"best threshold {self.best_threshold:.2f}")
        ax.set_xlabel("confidence threshold")
        ax.set_ylabel("mAP")
        ax.set_title("AP without confidence scores vs threshold (validation)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        if path is not None:
            from rsmetrics.io._common import save_figure

            save_figure(fig, path)
        return fig, ax


def _point(prep: Any, protocol: DetectionProtocol, keep: np.ndarray, threshold: float) -> SweepPoint:
    ones = np.ones(len(keep))
    constant = _score(prep, replace(protocol, tie_rule="grouped"), keep, ones)
    random = _score(prep, replace(protocol, tie_rule="random"), keep, ones)
    return SweepPoint(
        threshold=float(threshold),
        num_kept=int(keep.sum()),
        ap_nc=constant.map,
        ap_nc_random_mean=random.map,
        ap_nc_random_std=float(random.map_std or 0.0),
        mf1=constant.mf1,
    )


def _prepared(
    predictions: Iterable[ImageDetections],
    ground_truths: Iterable[ImageAnnotations],
    classes: Sequence[str],
    protocol: DetectionProtocol,
) -> tuple[Any, np.ndarray]:
    ev = DetectionEvaluator(classes, protocol).update(list(ground_truths), list(predictions))
    prep = ev._prepare()
    if not prep.pred.has_scores and len(prep.pred.scores):
        raise InvalidInputError(
            "Expected predictions with confidence scores for the threshold sweep, but they have none"
        )
    return prep, prep.pred.scores


def sweep_thresholds(
    predictions: Iterable[ImageDetections],
    ground_truths: Iterable[ImageAnnotations],
    classes: Sequence[str],
    *,
    thresholds: Sequence[float] = DEFAULT_SWEEP,
    preset: str | DetectionProtocol = "mmrotate",
    **overrides: Any,
) -> tuple[SweepPoint, ...]:
    """AP_nc (constant and random scores) of the detections kept above each threshold."""
    protocol = DetectionEvaluator(classes, preset, **overrides).protocol
    prep, scores = _prepared(predictions, ground_truths, classes, protocol)
    return tuple(_point(prep, protocol, scores > t, t) for t in thresholds)


def fair_compare(
    val_predictions: Iterable[ImageDetections],
    val_ground_truths: Iterable[ImageAnnotations],
    classes: Sequence[str],
    test_predictions: Iterable[ImageDetections] | None = None,
    test_ground_truths: Iterable[ImageAnnotations] | None = None,
    *,
    thresholds: Sequence[float] = DEFAULT_SWEEP,
    preset: str | DetectionProtocol = "mmrotate",
    **overrides: Any,
) -> FairComparison:
    """Tune a detector's confidence threshold on validation by AP_nc, then score test.

    Args:
        val_predictions: the detector's output on the validation split, with scores.
        val_ground_truths: validation ground truth (every image).
        classes: the class list.
        test_predictions: output on the test split, with scores (optional).
        test_ground_truths: test ground truth (required with test predictions).
        thresholds: confidence thresholds to sweep; kept detections score strictly above.
        preset: the detection protocol (default ``"mmrotate"``, the paper's AP_nc).
        **overrides: protocol fields, e.g. ``seeds=(0, 1, 2)`` or ``ap_method="area"``.
    """
    protocol = DetectionEvaluator(classes, preset, **overrides).protocol
    prep, scores = _prepared(val_predictions, val_ground_truths, classes, protocol)
    sweep = tuple(_point(prep, protocol, scores > t, t) for t in thresholds)
    if not sweep:
        raise InvalidInputError("Expected at least one threshold to sweep, but got none")
    best = max(sweep, key=lambda p: (p.ap_nc, -p.threshold))
    validation_ap = _score(prep, replace(protocol, tie_rule="stable")).map
    test_point = test_ap = None
    if test_predictions is not None:
        if test_ground_truths is None:
            raise InvalidInputError("Expected test ground truth with the test predictions, but got none")
        tprep, tscores = _prepared(test_predictions, test_ground_truths, classes, protocol)
        test_point = _point(tprep, protocol, tscores > best.threshold, best.threshold)
        test_ap = _score(tprep, replace(protocol, tie_rule="stable")).map
    return FairComparison(
        protocol=protocol.to_dict(),
        sweep=sweep,
        best_threshold=best.threshold,
        validation_ap=validation_ap,
        test=test_point,
        test_ap=test_ap,
    )
