"""Average precision from a precision-recall curve, three integration rules.

Example:
    >>> import numpy as np
    >>> recall, precision = np.array([0.5]), np.array([0.8])  # one operating point
    >>> round(average_precision(recall, precision, "area"), 6)  # P * R
    0.4
    >>> round(average_precision(recall, precision, "voc07"), 6)  # P * #{t <= R} / 11
    0.436364
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

from rsmetrics.errors import InvalidInputError

__all__ = ["COCO_RECALL_THRESHOLDS", "VOC07_RECALL_THRESHOLDS", "APMethod", "average_precision"]

APMethod = Literal["voc07", "area", "coco101"]

# ``i * 0.1`` in floating point, exactly as the DOTA devkit and mmdet build them:
# 0.30000000000000004 etc., so a recall of exactly 3/10 does not reach 0.3.
VOC07_RECALL_THRESHOLDS = np.arange(0.0, 1.1, 0.1)
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)


def average_precision(recall: NDArray[np.float64], precision: NDArray[np.float64], method: APMethod) -> float:
    """Integrate one precision-recall curve.

    Args:
        recall: ``(K,)`` recall after each point of the ranked list (non-decreasing).
        precision: ``(K,)`` precision at the same points.
        method: ``"voc07"`` (11-point interpolation, the DOTA and mmrotate default),
            ``"area"`` (all-point area under the interpolated curve, VOC2010+), or
            ``"coco101"`` (101 recall points, pycocotools).

    Returns:
        The AP in ``[0, 1]``; 0 for an empty curve.
    """
    rec = np.asarray(recall, dtype=np.float64)
    prec = np.asarray(precision, dtype=np.float64)
    if rec.shape != prec.shape:
        raise InvalidInputError(f"Expected recall and precision of one shape, but got {rec.shape} and {prec.shape}")
    if len(rec) == 0:
        return 0.0
    if method == "voc07":
        reached = rec[None, :] >= VOC07_RECALL_THRESHOLDS[:, None]  # (11, K)
        best = np.where(reached, prec[None, :], 0.0).max(axis=1)
        return float(best.sum() / 11.0)
    if method == "area":
        mrec = np.concatenate([[0.0], rec, [1.0]])
        mpre = np.concatenate([[0.0], prec, [0.0]])
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]
        change = np.flatnonzero(mrec[1:] != mrec[:-1])
        return float(np.sum((mrec[change + 1] - mrec[change]) * mpre[change + 1]))
    if method == "coco101":
        envelope = np.maximum.accumulate(prec[::-1])[::-1]
        idx = np.searchsorted(rec, COCO_RECALL_THRESHOLDS, side="left")
        valid = idx < len(rec)
        sampled = np.zeros(len(COCO_RECALL_THRESHOLDS))
        sampled[valid] = envelope[idx[valid]]
        return float(sampled.mean())
    raise InvalidInputError(f"Expected `method` to be one of ['voc07', 'area', 'coco101'], but got {method!r}")
