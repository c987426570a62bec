"""Patch names, polygon NMS and patch merging: hand-computed cases and a brute-force reference."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from rsmetrics.detection.types import ImageDetections
from rsmetrics.errors import InvalidInputError
from rsmetrics.geometry import hbb_to_quad
from rsmetrics.io import read_dota_labels
from rsmetrics.iou import poly_iou
from rsmetrics.merge import PatchName, merge_patch_detections, parse_patch_name, polygon_nms

SAMPLES = Path(__file__).parents[2] / ".." / "shared" / "samples"


# ----------------------------------------------------------------- patch names


@pytest.mark.parametrize(
    ("name", "expected", "is_rate", "scale"),
    [
        ("P0001__1024__0___512", ("P0001", 1024.0, 0, 512), False, 1.0),  # mmrotate 1.x: window size
        ("P2805__1024__0___0", ("P2805", 1024.0, 0, 0), False, 1.0),
        ("P0004__1__0___1024", ("P0004", 1.0, 0, 1024), True, 1.0),  # devkit: rate 1
        ("P0004__0.5__824___0", ("P0004", 0.5, 824, 0), True, 2.0),
        ("P0004__1.5__0___0", ("P0004", 1.5, 0, 0), True, 1 / 1.5),
        ("my__image__800__-10___-20", ("my__image", 800.0, -10, -20), False, 1.0),  # '__' inside the id
    ],
)
def test_parse_patch_name(name: str, expected: tuple, is_rate: bool, scale: float) -> None:
    patch = parse_patch_name(name)
    assert isinstance(patch, PatchName)
    assert tuple(patch) == expected
    assert patch.is_rate is is_rate
    assert patch.scale == pytest.approx(scale)


@pytest.mark.parametrize(
    "bad", ["P0001", "P0001__1024__0__512", "P0001__1024__x___0", "P0001__0__0___0", "P1__1.2.3__0___0", "__1__0___0"]
)
def test_parse_patch_name_rejects(bad: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(repr(bad))):
        parse_patch_name(bad)


def test_parse_real_sample_names() -> None:
    folder = SAMPLES / "dota" / "split_ss_1024"
    if not folder.is_dir():
        pytest.skip(f"samples not found: {folder}")
    names = sorted(p.stem for p in folder.glob("*.txt"))
    assert [tuple(parse_patch_name(n)) for n in names] == [
        ("P0004", 1.0, 0, 0),
        ("P0004", 1.0, 0, 1024),
        ("P2805", 1024.0, 0, 0),
    ]


# ----------------------------------------------------------------- NMS

# three overlapping 10x10 squares on a row, hand-computed IoUs:
#   A-B: overlap 9x10 = 90, union 110 -> 0.818;  A-C: 50/150 = 0.333;  B-C: 60/140 = 0.429
A, B, C = [0, 0, 10, 10], [1, 0, 11, 10], [5, 0, 15, 10]
ABC = hbb_to_quad(np.array([A, B, C], dtype=float))


@pytest.mark.parametrize(
    ("scores", "thr", "keep"),
    [
        ([0.9, 0.8, 0.7], 0.5, [0, 2]),  # B suppressed by A; C overlaps A by 0.333 only
        ([0.9, 0.8, 0.7], 0.3, [0]),  # now A suppresses C too
        ([0.9, 0.8, 0.7], 0.9, [0, 1, 2]),
        ([0.1, 0.8, 0.7], 0.5, [1, 2]),  # B first kills A (0.818); C vs B 0.429 <= 0.5 survives
        ([0.7, 0.9, 0.8], 0.4, [1]),  # B kills A (0.818) and C (0.429)
    ],
)
def test_nms_three_boxes(scores: list[float], thr: float, keep: list[int]) -> None:
    assert polygon_nms(ABC, np.array(scores), thr).tolist() == keep


def test_nms_equal_scores_keep_input_order() -> None:
    # equal scores and no scores: visiting order is the input order
    assert polygon_nms(ABC, np.full(3, 0.5), 0.5).tolist() == [0, 2]
    assert polygon_nms(ABC, None, 0.5).tolist() == [0, 2]
    # reversed input: C comes first and suppresses B (0.429 > 0.4), then A (0.333) survives
    assert polygon_nms(ABC[::-1], None, 0.4).tolist() == [0, 2]
    # two identical boxes with equal scores: the first one wins, whichever it is
    same = hbb_to_quad(np.array([A, A], dtype=float))
    assert polygon_nms(same, np.array([1.0, 1.0]), 0.1).tolist() == [0]


def test_nms_is_greedy_not_transitive() -> None:
    # A-B 60/140 = 0.43, B-C 0.43, A-C 20/180 = 0.11: B is suppressed by A, so it cannot suppress C
    q = hbb_to_quad(np.array([[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], dtype=float))
    assert polygon_nms(q, np.array([0.9, 0.8, 0.7]), 0.3).tolist() == [0, 2]


def test_nms_threshold_is_strict() -> None:
    # square vs its top half: IoU exactly 50 / 100 = 0.5
    q = hbb_to_quad(np.array([[0, 0, 10, 10], [0, 0, 10, 5]], dtype=float))
    assert polygon_nms(q, None, 0.5).tolist() == [0, 1]  # IoU == thr: kept ('>' like mmcv)
    assert polygon_nms(q, None, 0.4999).tolist() == [0]


def test_nms_rotated_polygons() -> None:
    # square vs diamond: IoU exactly 0.5 (polygon, not enclosing boxes)
    q = np.array([[0, 0, 2, 0, 2, 2, 0, 2], [1, -1, 3, 1, 1, 3, -1, 1]], dtype=float)
    assert polygon_nms(q, None, 0.5).tolist() == [0, 1]
    assert polygon_nms(q, None, 0.49).tolist() == [0]
    # two parallel slanted strips: enclosing boxes overlap, polygons do not -> IoU 0, both kept at 0
    strips = np.array([[0, 0, 2, 0, 12, 10, 10, 10], [5, 0, 7, 0, 17, 10, 15, 10]], dtype=float)
    assert poly_iou(strips[:1], strips[1:])[0, 0] == 0
    assert polygon_nms(strips, None, 0.0).tolist() == [0, 1]


def test_nms_edge_cases() -> None:
    assert polygon_nms(np.zeros((0, 8)), None, 0.1).tolist() == []
    assert polygon_nms(ABC[:1], np.array([0.3]), 0.1).tolist() == [0]
    # degenerate and non-finite boxes: IoU 0, kept, suppress nothing
    q = np.vstack([ABC[:1], np.zeros((1, 8)), np.full((1, 8), np.nan), ABC[:1]])
    assert polygon_nms(q, None, 0.1).tolist() == [0, 1, 2]
    with pytest.raises(InvalidInputError, match="iou_threshold"):
        polygon_nms(ABC, None, -0.1)
    with pytest.raises(InvalidInputError, match="finite `scores`"):
        polygon_nms(ABC, np.array([0.1, np.nan, 0.2]), 0.1)
    with pytest.raises(InvalidInputError, match="Expected 3 scores"):
        polygon_nms(ABC, np.array([0.1, 0.2]), 0.1)


def _reference_nms(quads: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    """Textbook greedy NMS on the full IoU matrix, one box at a time."""
    iou = poly_iou(quads, quads)
    order = sorted(range(len(quads)), key=lambda i: (-scores[i], i))
    kept: list[int] = []
    for i in order:
        if all(iou[i, k] <= thr for k in kept):
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed", range(5))
def test_nms_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 150
    centres = rng.uniform(0, 200, size=(n, 2))
    wh = rng.uniform(5, 30, size=(n, 2))
    angle = rng.uniform(-np.pi, np.pi, size=n)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) / 2
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x = corners[None, :, 0] * wh[:, :1]
    y = corners[None, :, 1] * wh[:, 1:]
    quads = np.stack([centres[:, :1] + c * x - s * y, centres[:, 1:] + s * x + c * y], axis=2).reshape(n, 8)
    scores = rng.integers(0, 5, size=n) / 4  # many ties
    for thr in (0.0, 0.1, 0.5):
        assert polygon_nms(quads, scores, thr).tolist() == _reference_nms(quads, scores, thr)


# ----------------------------------------------------------------- merging


def test_merge_translates_offsets() -> None:
    dets = [
        ImageDetections("P1__1024__0___0", [[10, 20, 30, 40]], ["ship"], [0.9], "hbb"),
        ImageDetections("P1__1024__824___512", [[10, 20, 30, 40]], ["ship"], [0.8], "hbb"),
        ImageDetections("P2__1024__100___0", [[0, 0, 4, 0, 4, 2, 0, 2]], ["car"], None),
    ]
    merged = merge_patch_detections(dets)
    assert [m.image_id for m in merged] == ["P1", "P2"]
    # (10, 20, 30, 40) + (824, 512) = (834, 532, 854, 552)
    assert merged[0].boxes.tolist() == [[10, 20, 30, 20, 30, 40, 10, 40], [834, 532, 854, 532, 854, 552, 834, 552]]
    assert merged[0].box_kind == "hbb" and merged[0].scores.tolist() == [0.9, 0.8]
    assert merged[1].boxes.tolist() == [[100, 0, 104, 0, 104, 2, 100, 2]]
    assert merged[1].scores is None and merged[1].box_kind == "quad"


def test_merge_devkit_rate() -> None:
    # devkit split at rate 0.5 (image halved before cutting): original = (patch + offset) / 0.5
    det = ImageDetections("P4__0.5__100___50", [[10, 10, 20, 30]], ["plane"], [1.0], "hbb")
    (merged,) = merge_patch_detections([det])
    # x: (10 + 100) / 0.5 = 220, (20 + 100) / 0.5 = 240; y: (10 + 50) / 0.5 = 120, (30 + 50) / 0.5 = 160
    assert merged.boxes.tolist() == [[220, 120, 240, 120, 240, 160, 220, 160]]
    # mmrotate's merge ignores the rate
    (plain,) = merge_patch_detections([det], rate_aware=False)
    assert plain.boxes.tolist() == [[110, 60, 120, 60, 120, 80, 110, 80]]
    # rate 1 and size names: no scaling either way
    det1 = ImageDetections("P4__1__100___50", [[10, 10, 20, 30]], ["plane"], [1.0], "hbb")
    assert merge_patch_detections([det1])[0].boxes.tolist() == plain.boxes.tolist()


def test_merge_nms_across_patches_per_class() -> None:
    # the same ship seen by two overlapping patches (gap region), plus a plane at the same place
    dets = [
        ImageDetections(
            "P1__1024__0___0", [[900, 100, 1000, 140], [900, 100, 1000, 140]], ["ship", "plane"], [0.6, 0.5], "hbb"
        ),
        ImageDetections("P1__1024__824___0", [[78, 102, 178, 142]], ["ship"], [0.7], "hbb"),  # 902..1002
    ]
    (merged,) = merge_patch_detections(dets)
    # ship: IoU((900,100,1000,140), (902,102,1002,142)) = 98*38 / (2*4000 - 3724) = 0.871 > 0.1
    # -> the 0.7 one survives; the plane is another class and stays; input order is kept
    assert merged.labels == ("plane", "ship")
    assert merged.scores.tolist() == [0.5, 0.7]
    assert merged.boxes[1].tolist() == [902, 102, 1002, 102, 1002, 142, 902, 142]


def test_merge_equal_scores_keep_patch_order() -> None:
    box = [[900, 100, 1000, 140]]
    dets = [
        ImageDetections("P1__1024__0___0", box, ["ship"], None, "hbb"),
        ImageDetections("P1__1024__0___0", [[901, 100, 1001, 140]], ["ship"], None, "hbb"),
    ]
    (merged,) = merge_patch_detections(dets)
    assert merged.boxes.tolist() == [[900, 100, 1000, 100, 1000, 140, 900, 140]]  # first patch wins
    (merged,) = merge_patch_detections(dets[::-1])
    assert merged.boxes.tolist() == [[901, 100, 1001, 100, 1001, 140, 901, 140]]


def test_merge_errors_and_empty() -> None:
    with pytest.raises(InvalidInputError, match=r"'P1\.png'"):
        merge_patch_detections([ImageDetections("P1.png", [[0, 0, 1, 1]], ["a"], None, "hbb")])
    mixed = [
        ImageDetections("P1__1024__0___0", [[0, 0, 1, 1]], ["a"], None, "hbb"),
        ImageDetections("P1__1024__0___512", [[0, 0, 1, 1]], ["a"], [0.5], "hbb"),
    ]
    with pytest.raises(InvalidInputError, match="mix"):
        merge_patch_detections(mixed)
    # an empty patch still yields its image, with no detections
    (empty,) = merge_patch_detections([ImageDetections("P3__1024__0___0", np.zeros((0, 4)), [], [], "hbb")])
    assert empty.image_id == "P3" and len(empty) == 0
    assert merge_patch_detections([]) == []
    with pytest.raises(InvalidInputError, match="iou_threshold"):
        merge_patch_detections([], iou_threshold=float("nan"))


def test_merge_real_patch_labels() -> None:
    path = SAMPLES / "dota" / "split_ss_1024" / "P0004__1__0___0.txt"
    if not path.is_file():
        pytest.skip(f"sample not found: {path}")
    ann = read_dota_labels(path)
    det = ImageDetections(ann.image_id, ann.boxes, ann.labels, None)
    shifted = ImageDetections("P0004__1__0___1024", ann.boxes - np.tile([0, 1024], 4), ann.labels, None)
    (merged,) = merge_patch_detections([det, shifted])
    # the second patch holds the same boxes in its own frame (y - 1024): after merging each
    # coincides with its twin (IoU 1 > 0.1; equal "scores": the first patch wins). The 4 planes
    # of the file do not overlap each other, so exactly the first patch's 4 boxes remain.
    assert merged.image_id == "P0004"
    np.testing.assert_array_equal(merged.boxes, ann.boxes)


def test_merge_keeps_obb_kind() -> None:
    # a 40x10 box at 30 degrees, centre (50, 60) in a patch at offset (1000, 200)
    det = ImageDetections("P5__800__1000___200", [[50, 60, 40, 10, 30]], ["ship"], [0.5], "obb")
    (merged,) = merge_patch_detections([det])
    assert merged.box_kind == "obb"
    expected = ImageDetections("P5", [[1050, 260, 40, 10, 30]], ["ship"], [0.5], "obb")
    np.testing.assert_allclose(merged.boxes, expected.boxes, atol=1e-9)
