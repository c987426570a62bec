"""Grounding Acc@t, mean and cumulative IoU; expected values worked out by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsmetrics.errors import InvalidInputError
from rsmetrics.grounding import (
    GROUNDING_PRESETS,
    GroundingResult,
    grounding_accuracy,
    score_grounding_answers,
    vlmr1_iou_pairs,
)
from rsmetrics.parsers import Frame

BOX = [0, 0, 10, 10]


# --------------------------------------------------------------------------- IoU conventions


def test_continuous_iou_half_overlap():
    # 5x10 overlap of two 10x10 boxes: 50 / (100 + 100 - 50)
    r = grounding_accuracy([BOX], [[5, 0, 15, 10]])
    assert r.ious[0] == pytest.approx(50 / 150)
    assert r.accuracy == {0.5: 0.0}


def test_exactly_one_half_separates_strict_and_non_strict():
    # [0,0,10,5] is half of [0,0,10,10]: IoU = 50 / 100 exactly
    preds, gts = [BOX], [[0, 0, 10, 5]]
    strict = grounding_accuracy(preds, gts, iou_op=">")
    loose = grounding_accuracy(preds, gts, iou_op=">=")
    assert strict.ious[0] == 0.5
    assert strict.accuracy[0.5] == 0.0
    assert loose.accuracy[0.5] == 1.0
    # VHM preset: '>=' with continuous IoU
    assert grounding_accuracy(preds, gts, preset="vhm").accuracy[0.5] == 1.0
    # RSCoVLM preset: '>' (the overlap is 10x5 px, so the 1-px rule does not bite)
    assert grounding_accuracy(preds, gts, preset="rscovlm").accuracy[0.5] == 0.0


def test_plus_one_by_hand():
    # +1 areas: 11x11 = 121 each; overlap x 5..10 -> 6 px, y 0..10 -> 11 px = 66; union 242 - 66 = 176
    r = grounding_accuracy([BOX], [[5, 0, 15, 10]], pixel="plus_one")
    assert r.ious[0] == pytest.approx(66 / 176)
    # the exact-0.5 pair is 11x6 = 66 inside 121 under +1: 66 / 121 > 0.5
    r = grounding_accuracy([BOX], [[0, 0, 10, 5]], preset="vrsbench")
    assert r.ious[0] == pytest.approx(66 / 121)
    assert r.accuracy[0.5] == 1.0
    # a zero-width box is a 1-px column under +1, not degenerate: 1x11 inside 11x11
    r = grounding_accuracy([[3, 0, 3, 10]], [BOX], pixel="plus_one")
    assert r.num_degenerate == 0
    assert r.ious[0] == pytest.approx(11 / 121)


def test_vlmr1_overlap_of_one_pixel_counts_as_zero():
    # [9, 19] overlaps [0, 10] by exactly 1 px in x: continuous 10 / 190, VLM-R1 0
    a, b = [BOX], [[9, 0, 19, 10]]
    assert grounding_accuracy(a, b).ious[0] == pytest.approx(10 / 190)
    assert grounding_accuracy(a, b, pixel="vlmr1").ious[0] == 0.0
    assert vlmr1_iou_pairs(a, b).tolist() == [0.0]
    # 1.5 px overlap is kept: 15 / (200 - 15)
    assert vlmr1_iou_pairs(a, [[8.5, 0, 18.5, 10]])[0] == pytest.approx(15 / 185)
    # the rule applies to height too
    assert vlmr1_iou_pairs(a, [[0, 9, 10, 19]])[0] == 0.0
    # large overlaps equal the continuous IoU
    assert vlmr1_iou_pairs(a, [[5, 0, 15, 10]])[0] == pytest.approx(50 / 150)


def test_vlmr1_degenerate_boxes_are_zero_not_errors():
    out = vlmr1_iou_pairs([[0, 0, 0, 0], [0, 0, np.nan, 5]], [[0, 0, 0, 0], BOX])
    assert out.tolist() == [0.0, 0.0]


def test_presets_table_is_the_documented_one():
    assert GROUNDING_PRESETS == {
        "rscovlm": {"iou_op": ">", "pixel": "vlmr1"},
        "vrsbench": {"iou_op": ">=", "pixel": "plus_one"},
        "vhm": {"iou_op": ">=", "pixel": "continuous"},
    }
    r = grounding_accuracy([BOX], [BOX], preset="vrsbench")
    assert (r.iou_op, r.pixel) == (">=", "plus_one")
    # an explicit argument overrides the preset
    r = grounding_accuracy([BOX], [BOX], preset="vrsbench", pixel="continuous")
    assert (r.iou_op, r.pixel) == (">=", "continuous")


def test_several_thresholds():
    # IoUs 1, 50/150, 0.6 (6x10 inside 10x10)
    preds = [BOX, BOX, BOX]
    gts = [BOX, [5, 0, 15, 10], [0, 0, 6, 10]]
    r = grounding_accuracy(preds, gts, thresholds=(0.5, 0.7))
    assert r.thresholds == (0.5, 0.7)
    assert r.num_correct == {0.5: 2, 0.7: 1}
    assert r.accuracy[0.5] == pytest.approx(2 / 3)
    assert r.accuracy[0.7] == pytest.approx(1 / 3)
    assert grounding_accuracy(preds, gts, thresholds=0.3).accuracy == {0.3: 1.0}


# --------------------------------------------------------------------------- unparsable, degenerate


def test_unparsable_and_degenerate_are_wrong_and_in_the_denominator():
    preds = [BOX, None, "garbage", [1, 2, 3], [0, 0, 0, 10], [0, 0, np.nan, 10], [10, 10, 0, 0]]
    gts = [BOX] * 7
    r = grounding_accuracy(preds, gts)
    assert r.num_total == 7
    assert r.num_unparsable == 3  # None, a string, 3 numbers
    assert r.num_degenerate == 3  # zero width, NaN, swapped corners
    assert r.num_correct == {0.5: 1}
    assert r.accuracy[0.5] == pytest.approx(1 / 7)
    assert r.ious.tolist() == [1.0, 0, 0, 0, 0, 0, 0]


def test_degenerate_target_counts_and_is_wrong():
    r = grounding_accuracy([BOX, BOX], [BOX, [5, 5, 5, 5]])
    assert r.num_degenerate_targets == 1
    assert r.accuracy[0.5] == 0.5
    assert "degenerate_targets=1" in r.to_table()


def test_empty_input_gives_nan():
    r = grounding_accuracy([], [])
    assert r.num_total == 0
    assert math.isnan(r.accuracy[0.5]) and math.isnan(r.mean_iou) and math.isnan(r.cumulative_iou)
    assert r.to_dict()["accuracy"] == {"0.5": None}


# --------------------------------------------------------------------------- mean / cumulative IoU


def test_mean_and_cumulative_iou_by_hand():
    # (I, U): (50, 150), (100, 100), and a missing prediction for a 4x5 target: (0, 20)
    preds = [BOX, BOX, None]
    gts = [[5, 0, 15, 10], BOX, [0, 0, 4, 5]]
    r = grounding_accuracy(preds, gts)
    assert r.mean_iou == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert r.cumulative_iou == pytest.approx((50 + 100 + 0) / (150 + 100 + 20))


def test_cumulative_iou_with_plus_one_and_vlmr1():
    # +1: (66, 176) and (121, 121)
    r = grounding_accuracy([BOX, BOX], [[5, 0, 15, 10], BOX], pixel="plus_one")
    assert r.cumulative_iou == pytest.approx((66 + 121) / (176 + 121))
    # VLM-R1 drops the 1-px overlap: I = 0, U = 100 + 100 (the reference does not subtract it)
    r = grounding_accuracy([BOX, BOX], [[9, 0, 19, 10], BOX], pixel="vlmr1")
    assert r.cumulative_iou == pytest.approx((0 + 100) / (200 + 100))


# --------------------------------------------------------------------------- per dataset


def test_per_dataset_breakdown_by_hand():
    preds = [BOX, BOX, None, BOX, [0, 0, 10, 4]]
    gts = [BOX, [50, 50, 60, 60], BOX, [0, 0, 10, 8], BOX]
    datasets = ["rsvg", "rsvg", "vrs", "vrs", "vrs"]
    r = grounding_accuracy(preds, gts, datasets=datasets)
    assert list(r.per_dataset) == ["rsvg", "vrs"]
    rsvg, vrs = r.per_dataset["rsvg"], r.per_dataset["vrs"]
    # rsvg: IoU 1 and 0
    assert (rsvg.num_total, rsvg.num_correct[0.5], rsvg.accuracy[0.5]) == (2, 1, 0.5)
    assert rsvg.mean_iou == pytest.approx(0.5)
    assert rsvg.cumulative_iou == pytest.approx(100 / (100 + 200))
    # vrs: unparsable (I 0, U 100), 80/100, 40/100
    assert (vrs.num_total, vrs.num_unparsable, vrs.num_correct[0.5]) == (3, 1, 1)
    assert vrs.accuracy[0.5] == pytest.approx(1 / 3)
    assert vrs.mean_iou == pytest.approx((0 + 0.8 + 0.4) / 3)
    assert vrs.cumulative_iou == pytest.approx((0 + 80 + 40) / (100 + 100 + 100))
    # overall: 2 of 5
    assert r.accuracy[0.5] == pytest.approx(2 / 5)
    assert r.to_dict()["per_dataset"]["vrs"]["num_unparsable"] == 1
    table = r.to_table()
    assert "rsvg" in table and "vrs" in table and table.splitlines()[-1].startswith("all")


# --------------------------------------------------------------------------- quads


DIAMOND = [5, 0, 10, 5, 5, 10, 0, 5]  # the square [0,0,10,10] rotated 45 degrees and shrunk: area 50


def test_quad_prediction_vs_its_hbb():
    # polygon IoU: the diamond covers half of its enclosing box
    r = grounding_accuracy([DIAMOND], [BOX], box_kind="quad", thresholds=(0.4, 0.6))
    assert r.ious[0] == pytest.approx(0.5, abs=1e-12)
    assert r.num_correct == {0.4: 1, 0.6: 0}
    # as an hbb the diamond is its enclosing box: IoU 1
    r = grounding_accuracy([DIAMOND], [BOX], box_kind="hbb")
    assert r.ious[0] == pytest.approx(1.0)


def test_quad_vs_quad_and_mixed_sizes():
    # the diamond and a copy shifted by (2.5, 2.5), i.e. along one of its diagonal axes: in that
    # rotated frame both are squares of side 5*sqrt2, offset by 2.5*sqrt2, so I = 2.5*sqrt2 * 5*sqrt2 = 25
    shifted = [7.5, 2.5, 12.5, 7.5, 7.5, 12.5, 2.5, 7.5]
    r = grounding_accuracy([DIAMOND, BOX], [shifted, DIAMOND], box_kind="quad")
    assert r.ious[0] == pytest.approx(25 / (50 + 50 - 25))
    # an hbb prediction becomes a rectangle: the square vs the diamond inside it
    assert r.ious[1] == pytest.approx(0.5)
    assert r.cumulative_iou == pytest.approx((25 + 50) / (75 + 100))


def test_quad_degenerate_and_swapped_hbb():
    line = [0, 0, 10, 10, 0, 0, 10, 10]  # zero area
    r = grounding_accuracy([line, [10, 10, 0, 0], BOX], [BOX] * 3, box_kind="quad")
    assert r.num_degenerate == 2
    assert r.ious.tolist() == [0.0, 0.0, pytest.approx(1.0)]


def test_quad_kind_rejects_hbb_pixel_conventions():
    with pytest.raises(InvalidInputError, match="pixel"):
        grounding_accuracy([DIAMOND], [BOX], box_kind="quad", pixel="plus_one")
    with pytest.raises(InvalidInputError, match="pixel"):
        grounding_accuracy([DIAMOND], [BOX], box_kind="quad", preset="rscovlm")


# --------------------------------------------------------------------------- text answers


def test_text_answers_end_to_end():
    # 500x250 input frame of a 1000x500 image: every coordinate doubles
    answers = [
        "12,34,56,78 the car",  # -> [24, 68, 112, 156]
        "12,34,34,78 the car",  # -> [24, 68, 68, 156]: half the width
        "There is none.",
        None,
        "I cannot tell.",
    ]
    target = [24, 68, 112, 156]
    r = score_grounding_answers(
        answers,
        [target] * 5,
        dialect="rscovlm_plain",
        frames=Frame.pixels(500, 250),
        image_sizes=(1000, 500),
        preset="vhm",
    )
    assert r.ious.tolist() == [pytest.approx(1.0), pytest.approx(0.5), 0.0, 0.0, 0.0]
    assert r.num_unparsable == 3
    assert r.accuracy[0.5] == pytest.approx(2 / 5)  # '>=' counts the exact half
    strict = score_grounding_answers(
        answers,
        [target] * 5,
        dialect="rscovlm_plain",
        frames=[Frame.pixels(500, 250)] * 5,
        image_sizes=[(1000, 500)] * 5,
        preset="rscovlm",
    )
    assert strict.accuracy[0.5] == pytest.approx(1 / 5)


def test_text_answers_first_box_and_quads():
    # two lines: only the first box is the prediction; a quad answer on a 0..1000 grid
    answers = ["0,0,500,500 a\n500,500,1000,1000 b", "500,0,1000,500,500,1000,0,500 roof"]
    gts = [[0, 0, 100, 100], [0, 0, 200, 200]]
    r = score_grounding_answers(
        answers, gts, dialect="rscovlm_plain", frames=Frame.grid(1000), image_sizes=[(200, 200), (200, 200)]
    )
    # first: [0,0,100,100] exactly; second: a diamond whose enclosing hbb is the target
    assert r.ious.tolist() == [pytest.approx(1.0), pytest.approx(1.0)]
    q = score_grounding_answers(
        answers, gts, dialect="rscovlm_plain", frames=Frame.grid(1000), image_sizes=(200, 200), box_kind="quad"
    )
    assert q.ious[1] == pytest.approx(0.5)


def test_text_answers_json_dialect():
    answer = '```json\n[{"bbox_2d": [100, 200, 300, 400], "label": "ship"}]\n```'
    r = score_grounding_answers(
        [answer], [[100, 200, 300, 400]], dialect="qwen25vl_json", frames=Frame.pixels(800, 600), image_sizes=(800, 600)
    )
    assert r.accuracy[0.5] == 1.0


def test_text_answers_length_errors():
    with pytest.raises(InvalidInputError, match=r"2 predictions and 1 frames"):
        score_grounding_answers(
            ["1,2,3,4 a", "1,2,3,4 b"], [BOX, BOX], dialect="rscovlm_plain", frames=[Frame.grid()], image_sizes=(8, 8)
        )
    with pytest.raises(InvalidInputError, match="single string"):
        score_grounding_answers("1,2,3,4 a", [BOX], dialect="rscovlm_plain", frames=Frame.grid(), image_sizes=(8, 8))


# --------------------------------------------------------------------------- errors and output


def test_length_mismatch_names_both_lengths():
    with pytest.raises(InvalidInputError, match=r"2 predictions and 3 targets"):
        grounding_accuracy([BOX, BOX], [BOX, BOX, BOX])
    with pytest.raises(InvalidInputError, match=r"1 predictions and 2 datasets"):
        grounding_accuracy([BOX], [BOX], datasets=["a", "b"])


@pytest.mark.parametrize("bad", [[1, 2, 3], [1, 2, 3, 4, 5], None, "x"])
def test_malformed_target_names_its_index(bad):
    with pytest.raises(InvalidInputError, match=r"target 1 "):
        grounding_accuracy([BOX, BOX, BOX], [BOX, bad, BOX])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"iou_op": "<"}, "iou_op"),
        ({"pixel": "inclusive"}, "pixel"),
        ({"box_kind": "obb"}, "box_kind"),
        ({"preset": "geochat"}, "preset"),
        ({"thresholds": (1.5,)}, "thresholds"),
        ({"thresholds": ()}, "thresholds"),
        ({"thresholds": (math.nan,)}, "thresholds"),
    ],
)
def test_invalid_options(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        grounding_accuracy([BOX], [BOX], **kwargs)


def test_targets_as_array_and_to_dict_is_json():
    gts = np.array([BOX, [5, 0, 15, 10]], dtype=float)
    r = grounding_accuracy(np.array([BOX, BOX]), gts, thresholds=(0.5, 0.75), datasets=["a", "b"])
    d = json.loads(json.dumps(r.to_dict()))
    assert d["protocol"] == {"thresholds": [0.5, 0.75], "iou_op": ">", "pixel": "continuous", "box_kind": "hbb"}
    assert d["accuracy"] == {"0.5": 0.5, "0.75": 0.5}
    assert set(d["per_dataset"]) == {"a", "b"}
    assert "ious" not in d
    assert str(r) == r.to_table()
    assert "Acc@0.75" in r.to_table()


def test_result_is_frozen_and_comparable():
    r1 = grounding_accuracy([BOX], [BOX])
    r2 = grounding_accuracy([BOX], [BOX])
    assert isinstance(r1, GroundingResult)
    assert r1 == r2
    assert r1 != grounding_accuracy([BOX], [[5, 0, 15, 10]])
    with pytest.raises(AttributeError):
        r1.mean_iou = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        r1.ious[0] = 0.0


# --------------------------------------------------------------------------- properties

_coord = st.one_of(
    st.floats(-50, 150, allow_nan=False, allow_infinity=False),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 1e308]),
)
_box = st.one_of(st.lists(_coord, min_size=4, max_size=4), st.lists(_coord, min_size=8, max_size=8))


@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(st.tuples(st.one_of(st.none(), _box), _box), max_size=12),
    pixel=st.sampled_from(["continuous", "plus_one", "vlmr1"]),
    box_kind=st.sampled_from(["hbb", "quad"]),
    iou_op=st.sampled_from([">", ">="]),
)
def test_random_boxes_never_raise_and_stay_in_range(data, pixel, box_kind, iou_op):
    if box_kind == "quad":
        pixel = "continuous"
    preds = [p for p, _ in data]
    gts = [t for _, t in data]
    names = [f"d{i % 3}" for i in range(len(data))]
    r = grounding_accuracy(
        preds, gts, thresholds=(0.0, 0.5, 1.0), iou_op=iou_op, pixel=pixel, box_kind=box_kind, datasets=names
    )
    assert r.num_total == len(data)
    assert r.num_unparsable + r.num_degenerate <= len(data)
    for scores in [r, *r.per_dataset.values()]:
        for acc in scores.accuracy.values():
            assert 0.0 <= acc <= 1.0 or (scores.num_total == 0 and math.isnan(acc))
        assert 0.0 <= scores.mean_iou <= 1.0 or scores.num_total == 0
        assert math.isnan(scores.cumulative_iou) or 0.0 <= scores.cumulative_iou <= 1.0
    assert np.all((r.ious >= 0) & (r.ious <= 1))
    # Acc@0 with '>=' is 1 by definition; with '>' it counts the overlapping samples
    if iou_op == ">=" and data:
        assert r.accuracy[0.0] == 1.0
    assert sum(s.num_total for s in r.per_dataset.values()) == len(data)
