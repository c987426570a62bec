"""The paper's fair comparison, on a case worked out by hand."""

from __future__ import annotations

import pytest

from rsmetrics.detection.fair_compare import fair_compare, sweep_thresholds
from rsmetrics.detection.types import ImageAnnotations, ImageDetections
from rsmetrics.errors import InvalidInputError

GT = [ImageAnnotations("a", [[0, 0, 10, 10], [20, 20, 30, 30]], ["car", "car"], box_kind="hbb")]
# TP 0.9, FP 0.3, TP 0.6
PRED = [
    ImageDetections(
        "a", [[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]], ["car"] * 3, scores=[0.9, 0.3, 0.6], box_kind="hbb"
    )
]


def test_sweep_by_hand():
    # threshold 0: all three kept, no scores: P = 2/3, R = 1 -> voc07 AP_nc = 2/3 (every t <= 1);
    #   mF1 = 2*2 / (4 + 1 + 0) = 0.8
    # threshold 0.5: both TPs kept: P = R = 1 -> 1.0
    low, high = sweep_thresholds(PRED, GT, ["car"], thresholds=(0.0, 0.5))
    assert (low.num_kept, high.num_kept) == (3, 2)
    assert low.ap_nc == pytest.approx(2 / 3)
    assert low.mf1 == pytest.approx(0.8)
    assert high.ap_nc == pytest.approx(1.0)
    # random scores at threshold 0: the FP last gives 1, in the middle (6 + 5 * 2/3) / 11,
    # first 2/3; the mean lies between and the spread is zero only if every seed agrees
    assert 2 / 3 - 1e-12 <= low.ap_nc_random_mean <= 1 + 1e-12
    assert high.ap_nc_random_std == pytest.approx(0.0)


def test_best_threshold_is_applied_to_test():
    r = fair_compare(PRED, GT, ["car"], PRED, GT, thresholds=(0.0, 0.5))
    assert r.best_threshold == 0.5
    assert r.test is not None and r.test.ap_nc == pytest.approx(1.0)
    assert r.validation_ap == pytest.approx(1.0)  # with scores the TPs rank first
    assert "<- best" in r.to_table()
    assert r.to_dict()["best_threshold"] == 0.5


def test_needs_scores_and_test_ground_truth():
    no_scores = [ImageDetections("a", [[0, 0, 10, 10]], ["car"], box_kind="hbb")]
    with pytest.raises(InvalidInputError, match="confidence scores"):
        fair_compare(no_scores, GT, ["car"])
    with pytest.raises(InvalidInputError, match="test ground truth"):
        fair_compare(PRED, GT, ["car"], PRED, None)


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    r = fair_compare(PRED, GT, ["car"], thresholds=(0.0, 0.25, 0.5))
    _fig, ax = r.plot(tmp_path / "fig5.png")
    data = (tmp_path / "fig5.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(ax.lines) >= 2
