"""Detection evaluation rules on cases small enough to work out by hand.

Each expected value is derived in the comment above it from the precision-recall
points of the ranked list: (precision, recall) after each prediction.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsmetrics.detection.evaluate import DetectionEvaluator, evaluate_detection
from rsmetrics.detection.protocol import DetectionProtocol, get_protocol
from rsmetrics.detection.types import ImageAnnotations, ImageDetections
from rsmetrics.errors import InvalidInputError


def gt(image, boxes, labels=None, difficult=None):
    return ImageAnnotations(image, boxes, labels or ["car"] * len(boxes), difficult=difficult, box_kind="hbb")


def det(image, boxes, labels=None, scores=None):
    return ImageDetections(image, boxes, labels or ["car"] * len(boxes), scores=scores, box_kind="hbb")


HIT, MISS = [0, 0, 10, 10], [50, 50, 60, 60]
GTS = [gt("a", [[0, 0, 10, 10], [20, 20, 30, 30]])]


@pytest.mark.parametrize("order", [[HIT, MISS], [MISS, HIT]])
def test_no_scores_grouped_is_one_operating_point(order):
    # P = 1/2, R = 1/2 whatever the order:
    # area AP = P*R = 0.25; voc07 = P * #{0, .1, .., .5} / 11 = 0.5 * 6 / 11
    preds = [det("a", order)]
    assert evaluate_detection(preds, GTS, ["car"], "mmrotate", ap_method="area").map == pytest.approx(0.25)
    assert evaluate_detection(preds, GTS, ["car"], "mmrotate").map == pytest.approx(3 / 11)


def test_no_scores_stable_depends_on_order():
    # TP first: points (1, .5), (.5, .5) -> voc07 takes precision 1 at t <= .5: 6/11; area 0.5
    # FP first: points (0, 0), (.5, .5) -> voc07 0.5 * 6/11; area 0.25
    tp_first = evaluate_detection([det("a", [HIT, MISS])], GTS, ["car"], "mmrotate", tie_rule="stable")
    fp_first = evaluate_detection([det("a", [MISS, HIT])], GTS, ["car"], "mmrotate", tie_rule="stable")
    assert tp_first.map == pytest.approx(6 / 11)
    assert fp_first.map == pytest.approx(3 / 11)


def test_random_tie_rule_mean_and_population_std():
    # each seed orders TP/FP either way: AP 6/11 or 3/11; with k seeds of the first kind out of
    # 10, mean = 3/11 + k * 3/110 and population std = 3/11 * sqrt(k (10 - k)) / 10
    r = evaluate_detection([det("a", [HIT, MISS])], GTS, ["car"], "mmrotate", tie_rule="random")
    k = round((r.map - 3 / 11) / (3 / 110))
    assert 0 <= k <= 10
    assert r.map == pytest.approx(3 / 11 + k * 3 / 110)
    assert r.map_std == pytest.approx(3 / 11 * math.sqrt(k * (10 - k)) / 10)
    assert r.classes[0].ap_std is not None


DIFF_GT = [gt("a", [[0, 0, 10, 10], [20, 20, 30, 30]], difficult=[0, 1])]
# the prediction on the difficult object scores highest, then the good one, then a miss
DIFF_PRED = [det("a", [[20, 20, 30, 30], [0, 0, 10, 10], [50, 50, 60, 60]], scores=[0.95, 0.9, 0.7])]


@pytest.mark.parametrize(
    ("rule", "ap", "tp", "fp", "fn"),
    [
        # ignored: (0, 0) [ignored], (1, 1), (.5, 1) -> AP 1; F1 = 2/(2+1+0)
        ("ignore", 1.0, 1, 1, 0),
        # ordinary GT: (1, .5), (1, 1), (2/3, 1) -> AP 1; npos 2
        ("keep", 1.0, 2, 1, 0),
        # dropped: the first prediction becomes a FP: (0, 0), (.5, 1), (1/3, 1) -> 0.5 at every t
        ("drop", 0.5, 1, 2, 0),
    ],
)
def test_difficult_rules(rule, ap, tp, fp, fn):
    r = evaluate_detection(DIFF_PRED, DIFF_GT, ["car"], "dota", difficult=rule)
    assert r.map == pytest.approx(ap)
    c = r.classes[0]
    assert (c.tp[0], c.fp[0], c.fn[0]) == (tp, fp, fn)
    assert r.mf1 == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_duplicates_are_false_positives():
    # two predictions on one GT: the second is a FP, recall 1, precision 1/2
    r = evaluate_detection([det("a", [HIT, HIT], scores=[0.9, 0.8])], [gt("a", [HIT])], ["car"], "dota")
    c = r.classes[0]
    assert (c.tp[0], c.fp[0], c.fn[0]) == (1, 1, 0)
    assert r.map == pytest.approx(1.0)  # the TP comes first


def test_coco_matching_falls_back_to_the_next_gt():
    # g1 [0,0,10,10], g2 [4,0,14,10]; d1 = g1; d2 [1,0,11,10] has IoU 90/110 with g1 (taken)
    # and 70/130 = .538 with g2. VOC: d2 is a FP -> (1, .5), (.5, .5), area AP .5.
    # COCO: d2 takes g2 -> recall 1, AP 1.
    gts = [gt("a", [[0, 0, 10, 10], [4, 0, 14, 10]])]
    preds = [det("a", [[0, 0, 10, 10], [1, 0, 11, 10]], scores=[0.9, 0.8])]
    common = dict(iou_type="hbb", iou_op=">=", ap_method="area", difficult="keep")
    assert evaluate_detection(preds, gts, ["car"], "dota", matching="voc", **common).map == pytest.approx(0.5)
    assert evaluate_detection(preds, gts, ["car"], "dota", matching="coco", **common).map == pytest.approx(1.0)
    # at IoU .75 g2 no longer qualifies: COCO equals VOC again
    assert evaluate_detection(
        preds, gts, ["car"], "dota", matching="coco", iou_thresholds=0.75, **common
    ).map == pytest.approx(0.5)


def test_iou_operator_at_exactly_the_threshold():
    # hbb IoU of [0,0,10,10] and [0,0,10,5] is exactly 50/100
    gts, preds = [gt("a", [[0, 0, 10, 10]])], [det("a", [[0, 0, 10, 5]])]
    assert evaluate_detection(preds, gts, ["car"], "dota", iou_type="hbb").map == 0.0  # '>' rejects
    assert evaluate_detection(preds, gts, ["car"], "dota", iou_type="hbb", iou_op=">=").map == 1.0


def test_rbox_uses_the_minimum_area_rectangle_of_the_gt_quad():
    # trapezoid (0,0) (10,0) (8,4) (2,4): polygon area 32; its min-area rectangle is [0,10]x[0,4]
    trapezoid = ImageAnnotations("a", [[0, 0, 10, 0, 8, 4, 2, 4]], ["car"])
    rect = [det("a", [[0, 0, 10, 4]])]
    # polygon IoU = 32/40 = .8 < .85 -> miss; rbox IoU = 1 -> hit
    assert evaluate_detection(rect, [trapezoid], ["car"], "dota", iou_thresholds=0.85).map == 0.0
    assert evaluate_detection(rect, [trapezoid], ["car"], "mmrotate", iou_thresholds=0.85).map == 1.0


def test_class_averaging_over_all_classes_or_classes_with_gt():
    # ship has no GT but a FP: 'all' counts it as AP 0, 'with_gt' leaves it out
    gts = [gt("a", [HIT])]
    preds = [det("a", [HIT, MISS], labels=["car", "ship"], scores=[0.9, 0.8])]
    assert evaluate_detection(preds, gts, ["car", "ship"], "dota").map == pytest.approx(0.5)
    r = evaluate_detection(preds, gts, ["car", "ship"], "mmrotate")
    assert r.map == pytest.approx(1.0)
    assert math.isnan(r.classes[1].ap[0])
    assert r.mf1 == pytest.approx(1.0)  # macro F1 over classes with GT


def test_images_without_objects_and_without_predictions():
    # image b has no objects: its prediction is a FP; image c has objects but no predictions
    gts = [gt("a", [HIT]), gt("b", []), gt("c", [HIT])]
    preds = [det("a", [HIT], scores=[0.9]), det("b", [HIT], scores=[0.8])]
    r = evaluate_detection(preds, gts, ["car"], "dota", ap_method="area")
    # points (1, .5), (.5, .5) -> area .5
    assert r.map == pytest.approx(0.5)
    assert (r.classes[0].tp[0], r.classes[0].fp[0], r.classes[0].fn[0]) == (1, 1, 1)
    assert r.counts["images"] == 3


def test_predictions_on_unknown_images_and_labels_are_counted():
    preds = [det("zz", [HIT], scores=[0.9]), det("a", [HIT, HIT], labels=["car", "tank truck"], scores=[0.9, 0.8])]
    r = evaluate_detection(preds, [gt("a", [HIT])], ["car"], "dota")
    assert r.counts["images_without_ground_truth"] == 1
    assert r.counts["unknown_labels"] == {"prediction:tank truck": 1}
    assert r.classes[0].fp[0] == 1  # the prediction on image zz


def test_empty_predictions_give_zero():
    r = evaluate_detection([], [gt("a", [HIT])], ["car"], "dota")
    assert r.map == 0.0 and r.mf1 == 0.0


def test_max_dets_per_image_keeps_the_best_scores():
    # three predictions, cap 1: only the 0.9 one (a FP) survives -> AP 0
    preds = [det("a", [MISS, HIT, HIT], scores=[0.9, 0.5, 0.4])]
    r = evaluate_detection(preds, [gt("a", [HIT])], ["car"], "dota", max_dets_per_image=1)
    assert r.map == 0.0 and r.counts["dropped_over_max_dets"] == 2


def test_several_thresholds_and_summary_fields():
    # IoU 50/100 with [0,0,10,5]... use [0,0,10,8]: IoU .8 -> hit at .5 and .75, miss at .85
    r = evaluate_detection(
        [det("a", [[0, 0, 10, 8]])], [gt("a", [HIT])], ["car"], "dota", iou_thresholds=[0.5, 0.75, 0.85]
    )
    assert r.map_per_threshold == pytest.approx((1.0, 1.0, 0.0))
    assert r.ap50 == 1.0 and r.ap75 == 1.0 and r.map == pytest.approx(2 / 3)
    assert r.ap50_95 is None
    assert "mAP@0.5" in r.to_table()
    assert r.to_dict()["map_per_threshold"] == pytest.approx([1.0, 1.0, 0.0])


def test_mixed_scores_are_refused():
    with pytest.raises(InvalidInputError, match="scores for every prediction or for none"):
        evaluate_detection([det("a", [HIT], scores=[0.5]), det("b", [HIT])], [gt("a", [HIT])], ["car"])


def test_protocol_validation_messages():
    with pytest.raises(InvalidInputError, match="`iou_op` to be one of"):
        DetectionProtocol(iou_op="=")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="`preset` to be one of"):
        get_protocol("voc")
    with pytest.raises(InvalidInputError, match="protocol fields"):
        get_protocol("dota", iou_threshold=0.5)
    assert len(get_protocol("coco").iou_thresholds) == 10


def test_duplicate_ground_truth_image_is_refused():
    with pytest.raises(InvalidInputError, match="given twice"):
        evaluate_detection([], [gt("a", [HIT]), gt("a", [HIT])], ["car"])


def _workload(seed):
    from rsmetrics.synthetic import make_detection_workload

    return make_detection_workload(60, seed=seed, mean_objects=4)


def test_accumulator_merge_and_pickle_equal_one_call():
    from rsmetrics.synthetic import DOTA_LIKE_CLASSES

    gts, preds = _workload(5)
    whole = evaluate_detection(preds, gts, DOTA_LIKE_CLASSES, "dota", iou_thresholds="0.5:0.95")
    a = DetectionEvaluator(DOTA_LIKE_CLASSES, "dota", iou_thresholds="0.5:0.95").update(gts[:30], preds[:30])
    b = DetectionEvaluator(DOTA_LIKE_CLASSES, "dota", iou_thresholds="0.5:0.95")
    for g, p in zip(gts[30:], preds[30:]):
        b.update(g, p)
    merged = a.merge(pickle.loads(pickle.dumps(b))).compute()
    assert merged.to_dict() == whole.to_dict()


def test_perfect_predictions_score_one_in_every_preset():
    from rsmetrics.synthetic import DOTA_LIKE_CLASSES

    gts, _ = _workload(6)
    perfect = [ImageDetections(g.image_id, g.boxes, g.labels, scores=np.linspace(1, 0.5, len(g))) for g in gts]
    for preset in ("dota", "mmrotate", "coco"):
        r = evaluate_detection(perfect, gts, DOTA_LIKE_CLASSES, preset, difficult="keep", class_average="with_gt")
        assert r.map == pytest.approx(1.0), preset
        assert r.mf1 == pytest.approx(1.0)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["voc07", "area", "coco101"]))
def test_grouped_ap_does_not_depend_on_output_order(seed, method):
    from rsmetrics.synthetic import DOTA_LIKE_CLASSES, make_detection_workload

    gts, preds = make_detection_workload(12, seed=seed, mean_objects=4, with_scores=False)
    rng = np.random.default_rng(seed)
    shuffled = []
    for p in preds:
        perm = rng.permutation(len(p))
        shuffled.append(ImageDetections(p.image_id, p.boxes[perm], [p.labels[i] for i in perm]))
    a = evaluate_detection(preds, gts, DOTA_LIKE_CLASSES, "mmrotate", ap_method=method)
    b = evaluate_detection(shuffled[::-1], gts, DOTA_LIKE_CLASSES, "mmrotate", ap_method=method)
    assert a.map == pytest.approx(b.map, abs=1e-12)


def test_per_class_plot_shows_ap_and_f1(tmp_path):
    pytest.importorskip("matplotlib")
    gts = [ImageAnnotations("a", [[0, 0, 10, 10], [20, 20, 30, 30]], ["car", "ship"], box_kind="hbb")]
    preds = [ImageDetections("a", [[0, 0, 10, 10]], ["car"], box_kind="hbb")]
    result = evaluate_detection(preds, gts, ["car", "ship", "plane"], "mmrotate")
    _fig, ax = result.plot(tmp_path / "per_class.png")
    assert (tmp_path / "per_class.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # by hand: car found (AP 1, F1 1), ship missed (AP 0, F1 0), plane without GT (no AP bar, F1 0)
    widths = [round(p.get_width(), 6) for p in ax.patches]
    assert widths == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["car", "ship", "plane"]
