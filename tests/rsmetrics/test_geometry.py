"""Box conversions and the canonical vertex order; expected values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsmetrics.errors import InvalidInputError
from rsmetrics.geometry import (
    as_boxes,
    canonical_quad,
    hbb_to_quad,
    is_self_intersecting,
    obb_to_quad,
    quad_area,
    quad_to_hbb,
    quad_to_obb,
    scale_boxes,
)


def test_hbb_quad_round_trip():
    quad = hbb_to_quad(np.array([[10, 20, 30, 60]]))
    assert quad.tolist() == [[10, 20, 30, 20, 30, 60, 10, 60]]  # TL, TR, BR, BL
    assert quad_to_hbb(quad).tolist() == [[10, 20, 30, 60]]


def test_single_box_keeps_its_shape():
    assert hbb_to_quad([0, 0, 1, 1]).shape == (8,)
    assert as_boxes([], "hbb").shape == (0, 4)


def test_bad_shape_names_kind_and_shape():
    with pytest.raises(InvalidInputError, match=r"hbb boxes of shape \(N, 4\), but got an array of shape \(2, 5\)"):
        hbb_to_quad(np.zeros((2, 5)))
    with pytest.raises(InvalidInputError, match="Expected `kind` to be one of"):
        as_boxes([1, 2, 3, 4], "xywh")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("obb", "expected"),
    [
        # axis-aligned 4x2 box centred at (2, 1)
        ((2, 1, 4, 2, 0), [0, 0, 4, 0, 4, 2, 0, 2]),
        # same box given as w=2, h=4 rotated by 90 degrees: the same rectangle
        ((2, 1, 2, 4, 90), [0, 0, 4, 0, 4, 2, 0, 2]),
        # a unit-diagonal square rotated 45 degrees: a diamond, top vertex first
        ((0, 0, np.sqrt(2), np.sqrt(2), 45), [0, -1, 1, 0, 0, 1, -1, 0]),
    ],
)
def test_obb_to_quad(obb, expected):
    assert np.allclose(obb_to_quad(np.array(obb, float)), expected, atol=1e-12)


def test_quad_to_obb_le90():
    # a 4x2 rectangle rotated by 30 degrees clockwise on screen
    quad = obb_to_quad(np.array([10.0, 20.0, 4.0, 2.0, 30.0]))
    assert np.allclose(quad_to_obb(quad), [10, 20, 4, 2, 30], atol=1e-9)
    # the long side vertical: w >= h after normalisation, angle -90
    assert np.allclose(quad_to_obb(np.array([0, 0, 2, 0, 2, 4, 0, 4.0])), [1, 2, 4, 2, -90], atol=1e-9)


def test_min_area_rect_of_a_non_rectangle():
    # right triangle (0,0) (4,0) (0,3) with a repeated vertex: 2x the triangle area = 12
    obb = quad_to_obb(np.array([0, 0, 4, 0, 0, 3, 0, 3.0]))
    assert obb[2] * obb[3] == pytest.approx(12.0)


def test_min_area_rect_matches_opencv_on_convex_quads():
    cv2 = pytest.importorskip("cv2")
    shapely = pytest.importorskip("shapely")
    rng = np.random.default_rng(0)
    n = 2000
    obb = np.column_stack([rng.uniform(0, 500, (n, 2)), rng.uniform(2, 100, (n, 2)), rng.uniform(-90, 90, n)])
    quads = obb_to_quad(obb) + rng.normal(0, 1.5, (n, 8))
    hull_points = shapely.get_num_coordinates(shapely.convex_hull(shapely.polygons(quads.reshape(-1, 4, 2)))) - 1
    quads = quads[hull_points == 4]
    ours = quad_to_obb(quads)
    for quad, mine in zip(quads, ours):
        (_, _), (w, h), _ = cv2.minAreaRect(quad.reshape(4, 2).astype(np.float32))
        # the minimum area is unique (the rectangle itself may tie between two hull edges);
        # OpenCV works on float32 points, hence the tolerance
        assert mine[2] * mine[3] == pytest.approx(w * h, rel=1e-4)
        rect = shapely.Polygon(obb_to_quad(mine).reshape(4, 2))
        assert rect.buffer(1e-6).contains(shapely.convex_hull(shapely.MultiPoint(quad.reshape(4, 2))))


def test_canonical_order_clockwise_from_top():
    # given counter-clockwise, starting bottom-left
    assert canonical_quad(np.array([0, 10, 10, 10, 10, 0, 0, 0.0])).tolist() == [0, 0, 10, 0, 10, 10, 0, 10]
    # top-most vertex first; left-most on ties (two top vertices at y=0)
    assert canonical_quad(np.array([5, 0, 9, 4, 4, 8, 0, 0.0])).tolist()[:2] == [0, 0]
    # rotated rectangle: top vertex (5, 0) first, then clockwise on screen (to the right and down)
    assert canonical_quad(np.array([0, 5, 5, 10, 10, 5, 5, 0.0])).tolist() == [5, 0, 10, 5, 5, 10, 0, 5]


def test_canonical_keeps_non_convex_simple_quads():
    dart = np.array([0, 0, 10, 5, 0, 10, 3, 5.0])  # reflex vertex at (3, 5)
    out = canonical_quad(dart)
    assert not is_self_intersecting(out)
    assert abs(quad_area(out)) == pytest.approx(abs(quad_area(dart)))  # same shape: 35


def test_canonical_repairs_bow_tie():
    bow = np.array([0, 0, 2, 2, 2, 0, 0, 2.0])
    assert is_self_intersecting(bow)
    assert canonical_quad(bow).tolist() == [0, 0, 2, 0, 2, 2, 0, 2]


def test_non_finite_rows_pass_through():
    bad = np.array([[np.nan] * 8, [0, 0, 1, 0, 1, 1, 0, 1]])
    out = canonical_quad(bad)
    assert np.isnan(out[0]).all() and out[1].tolist() == [0, 0, 1, 0, 1, 1, 0, 1]


def test_scale_boxes_between_frames():
    # model input 500x250 for a 1000x500 image: scale 2 on both axes
    assert scale_boxes(np.array([10, 20, 30, 40.0]), "hbb", 2, 2).tolist() == [20, 40, 60, 80]
    # anisotropic scaling of an axis-aligned obb stays exact
    assert np.allclose(scale_boxes(np.array([10, 10, 4, 2, 0.0]), "obb", 2, 3), [20, 30, 8, 6, 0])


coords = st.floats(-1000, 1000, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(coords, coords),
    st.floats(1, 300),
    st.floats(1, 300),
    st.floats(-180, 180),
    st.integers(0, 3),
    st.booleans(),
)
def test_canonical_is_invariant_to_start_and_direction(centre, w, h, angle, start, reverse):
    quad = obb_to_quad(np.array([*centre, w, h, angle])).reshape(4, 2)
    quad = np.roll(quad, start, axis=0)
    if reverse:
        quad = quad[::-1]
    expected = obb_to_quad(np.array([*centre, w, h, angle]))
    assert np.allclose(canonical_quad(quad.reshape(8)), expected, atol=1e-6)
    assert quad_area(canonical_quad(quad.reshape(8))) > 0  # clockwise on screen


@settings(max_examples=200, deadline=None)
@given(st.lists(coords, min_size=8, max_size=8))
def test_min_area_rect_encloses_the_quad(values):
    shapely = pytest.importorskip("shapely")
    quad = np.array(values)
    obb = quad_to_obb(quad)
    assert obb[2] >= obb[3] >= 0 and -90 <= obb[4] < 90
    hull = shapely.convex_hull(shapely.MultiPoint(quad.reshape(4, 2)))
    rect = shapely.Polygon(obb_to_quad(obb).reshape(4, 2)) if obb[3] > 1e-9 else None
    if rect is not None and hull.area > 1e-6:
        assert rect.buffer(1e-6 * (1 + np.abs(quad).max())).contains(hull)
        assert rect.area >= hull.area - 1e-6
