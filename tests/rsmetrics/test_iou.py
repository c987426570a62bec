"""IoU for hbb, obb and quads; expected values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsmetrics.errors import InvalidInputError
from rsmetrics.geometry import is_self_intersecting, obb_to_quad
from rsmetrics.iou import box_iou, degenerate_mask, hbb_iou, hbb_iou_pairs, poly_iou, poly_iou_pairs, rbox_iou

SQUARE = np.array([0, 0, 2, 0, 2, 2, 0, 2.0])


def test_hbb_iou_continuous_and_plus_one():
    a, b = np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]])
    assert hbb_iou(a, b)[0, 0] == pytest.approx(50 / 150)
    # +1 convention: 11x11 boxes, 6x11 overlap -> 66 / (121 + 121 - 66)
    assert hbb_iou(a, b, pixel="plus_one")[0, 0] == pytest.approx(66 / 176)
    with pytest.raises(InvalidInputError, match="pixel"):
        hbb_iou(a, b, pixel="inclusive")  # type: ignore[arg-type]


def test_hbb_iou_matrix_shape_and_pairs():
    a = np.array([[0, 0, 10, 10], [0, 0, 5, 5]])
    b = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 5]])
    m = hbb_iou(a, b)
    assert m.shape == (2, 3)
    assert m[0].tolist() == pytest.approx([1.0, 0.0, 0.5])
    assert m[1].tolist() == pytest.approx([0.25, 0.0, 25 / 50])
    assert hbb_iou_pairs(a, b[[0, 2]]).tolist() == pytest.approx([1.0, 0.5])


def test_poly_iou_diamond_in_square_is_one_half():
    diamond = np.array([1, 0, 2, 1, 1, 2, 0, 1.0])  # inscribed in SQUARE, area 2 of 4
    assert poly_iou(SQUARE, diamond)[0, 0] == pytest.approx(0.5, abs=1e-12)


def test_poly_iou_non_convex_exact():
    square4 = np.array([0, 0, 4, 0, 4, 4, 0, 4.0])
    # dart (0,0) (4,0) (1,1) (0,4) with its reflex vertex at (1,1): shoelace area
    # 1/2 |0 + (4*1 - 1*0) + (1*4 - 0*1) + 0| = 4, all inside the 4x4 square
    dart = np.array([0, 0, 4, 0, 1, 1, 0, 4.0])
    assert poly_iou(square4, dart)[0, 0] == pytest.approx(4 / 16, abs=1e-12)
    # shifted right by 2: the dart keeps the part with x >= 2 of triangle (2,0) (4,0) (2,2)
    # inside the square plus... computed piecewise: overlap = area(dart ∩ [2,4]x[0,4]) + area(dart ∩ [0,2])
    # simpler: the dart against itself shifted by 0 is 1
    assert poly_iou(dart, dart)[0, 0] == pytest.approx(1.0)


def test_poly_iou_is_order_and_start_invariant():
    q = np.array([1, 0, 2, 1, 1, 2, 0, 1.0])
    rolled = np.roll(q.reshape(4, 2), 2, axis=0).reshape(8)
    reversed_ = q.reshape(4, 2)[::-1].reshape(8)
    assert poly_iou(SQUARE, q)[0, 0] == pytest.approx(poly_iou(SQUARE, rolled)[0, 0])
    assert poly_iou(SQUARE, q)[0, 0] == pytest.approx(poly_iou(SQUARE, reversed_)[0, 0])


def test_bow_tie_is_read_as_the_simple_quad_through_its_points():
    bow = np.array([0, 0, 2, 2, 2, 0, 0, 2.0])
    assert poly_iou(SQUARE, bow)[0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "bad",
    [
        [0, 0, 0, 0, 0, 0, 0, 0],  # a point
        [0, 0, 1, 1, 2, 2, 3, 3],  # collinear: zero area
        [np.nan, 0, 2, 0, 2, 2, 0, 2],
        [np.inf, 0, 2, 0, 2, 2, 0, 2],
        [-1e308, -1e308, 1e308, -1e308, 1e308, 1e308, -1e308, 1e308],  # its area overflows
    ],
)
def test_degenerate_quads_give_zero(bad):
    bad = np.array(bad, float)
    assert poly_iou(SQUARE, bad)[0, 0] == 0.0
    assert poly_iou_pairs(bad[None], SQUARE[None])[0] == 0.0
    assert degenerate_mask(bad)[0]


def test_degenerate_hbb_and_obb():
    assert hbb_iou(np.array([[0, 0, 0, 5]]), np.array([[0, 0, 5, 5]]))[0, 0] == 0.0
    assert hbb_iou(np.array([[np.nan, 0, 1, 1]]), np.array([[0, 0, 5, 5]]))[0, 0] == 0.0
    assert rbox_iou(np.array([[0, 0, 0, 5, 10]]), np.array([[0, 0, 5, 5, 0]]))[0, 0] == 0.0


def test_rbox_iou_matches_the_polygon_of_its_corners():
    a, b = np.array([[0, 0, 4, 2, 0]]), np.array([[0, 0, 4, 2, 90]])
    # the cross of two 4x2 rectangles: overlap 2x2 = 4, union 8 + 8 - 4 = 12
    assert rbox_iou(a, b)[0, 0] == pytest.approx(1 / 3)
    assert box_iou(a, b, "obb")[0, 0] == pytest.approx(1 / 3)


def test_empty_inputs():
    assert poly_iou(np.zeros((0, 8)), SQUARE[None]).shape == (0, 1)
    assert hbb_iou(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)


def test_pairs_need_equal_rows():
    with pytest.raises(InvalidInputError, match="as many rows"):
        poly_iou_pairs(np.zeros((2, 8)), np.zeros((3, 8)))


def test_agrees_with_devkit_polyiou():
    polyiou = pytest.importorskip("dotadevkit.polyiou.polyiou")
    rng = np.random.default_rng(3)
    a = obb_to_quad(
        np.column_stack([rng.uniform(0, 50, (300, 2)), rng.uniform(5, 40, (300, 2)), rng.uniform(-90, 90, 300)])
    )
    b = a + rng.normal(0, 4, a.shape)
    # bow-ties differ by design: the devkit's signed-area fan gives them no geometric meaning
    simple = ~is_self_intersecting(b)
    a, b = a[simple], b[simple]
    ours = poly_iou_pairs(a, b)
    ref = [polyiou.iou_poly(polyiou.VectorDouble(x.tolist()), polyiou.VectorDouble(y.tolist())) for x, y in zip(a, b)]
    assert np.allclose(ours, ref, atol=1e-9)


boxes = st.tuples(st.floats(0, 100), st.floats(0, 100), st.floats(0.5, 80), st.floats(0.5, 80), st.floats(-90, 90)).map(
    lambda t: obb_to_quad(np.array(t))
)


@settings(max_examples=150, deadline=None)
@given(boxes, boxes, st.integers(0, 3))
def test_iou_symmetric_bounded_and_start_invariant(a, b, start):
    ab = poly_iou(a, b)[0, 0]
    ba = poly_iou(b, a)[0, 0]
    assert 0.0 <= ab <= 1.0
    assert ab == pytest.approx(ba, abs=1e-12)
    rolled = np.roll(b.reshape(4, 2), start, axis=0)[::-1].reshape(8)
    assert poly_iou(a, rolled)[0, 0] == pytest.approx(ab, abs=1e-12)
    assert poly_iou(a, a)[0, 0] == pytest.approx(1.0)
