"""Box kinds and vectorised conversions between them.

Three box kinds are used everywhere in the project, always in pixels of one
image frame (``x`` to the right, ``y`` down, the origin at the top-left corner
of the top-left pixel; coordinates are continuous):

``hbb``  ``(x1, y1, x2, y2)``: horizontal box, ``x1 <= x2`` and ``y1 <= y2``.
``obb``  ``(cx, cy, w, h, angle)``: oriented box. ``angle`` is in **degrees**,
         measured from the +x axis towards +y, i.e. clockwise on screen, and is
         the direction of the side of length ``w``. Normalised boxes (what
         :func:`quad_to_obb` returns) have ``w >= h`` and ``angle`` in
         ``[-90, 90)``: the "le90" convention of mmrotate, in degrees.
``quad`` ``(x1, y1, x2, y2, x3, y3, x4, y4)``: any quadrilateral.

The canonical vertex order (:func:`canonical_quad`) is the paper's: clockwise
on screen, starting at the top-most vertex (the left-most one on ties). It is
used for detection and grounding alike.

Every function takes an array of shape ``(..., K)`` (or ``(K,)`` for a single
box) and returns the same leading shape; no Python loop runs per box.

Example:
    >>> import numpy as np
    >>> hbb_to_quad(np.array([10, 20, 30, 60])).tolist()
    [10.0, 20.0, 30.0, 20.0, 30.0, 60.0, 10.0, 60.0]
    >>> quad_to_obb(np.array([0, 0, 4, 0, 4, 2, 0, 2])).tolist()
    [2.0, 1.0, 4.0, 2.0, 0.0]
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rsmetrics.errors import InvalidInputError

__all__ = [
    "BOX_SIZES",
    "BoxKind",
    "as_boxes",
    "box_to_quad",
    "canonical_quad",
    "hbb_to_quad",
    "is_self_intersecting",
    "obb_to_quad",
    "quad_area",
    "quad_to_hbb",
    "quad_to_obb",
    "scale_boxes",
]

BoxKind = Literal["hbb", "obb", "quad"]
BOX_SIZES: dict[str, int] = {"hbb": 4, "obb": 5, "quad": 8}

FloatArray = NDArray[np.float64]

# vertices whose y differ by less than this (pixels) count as equally top-most
_TIE_PX = 1e-6
_CHUNK = 8192  # rows per step where temporaries scale with the input


def as_boxes(boxes: ArrayLike, kind: BoxKind) -> FloatArray:
    """Return ``boxes`` as a float64 array of shape ``(N, K)`` for box ``kind``.

    A single box of shape ``(K,)`` becomes ``(1, K)``; an empty input becomes
    ``(0, K)``.

    Raises:
        InvalidInputError: if ``kind`` is unknown or the last axis is not ``K``.
    """
    if kind not in BOX_SIZES:
        raise InvalidInputError(f"Expected `kind` to be one of {sorted(BOX_SIZES)}, but got {kind!r}")
    size = BOX_SIZES[kind]
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, size), dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != size:
        raise InvalidInputError(
            f"Expected {kind} boxes of shape (N, {size}), but got an array of shape {np.shape(boxes)}"
        )
    return arr


def _keep_single(result: FloatArray, boxes: ArrayLike) -> FloatArray:
    return result[0] if np.ndim(boxes) == 1 else result


def hbb_to_quad(hbb: ArrayLike) -> FloatArray:
    """``(N, 4)`` horizontal boxes to ``(N, 8)`` quads in canonical order (TL, TR, BR, BL)."""
    b = as_boxes(hbb, "hbb")
    x1, y1, x2, y2 = b.T
    out = np.stack([x1, y1, x2, y1, x2, y2, x1, y2], axis=1)
    return _keep_single(out, hbb)


def quad_to_hbb(quad: ArrayLike) -> FloatArray:
    """``(N, 8)`` quads to their enclosing ``(N, 4)`` horizontal boxes."""
    q = as_boxes(quad, "quad")
    xs, ys = q[:, 0::2], q[:, 1::2]
    out = np.stack([xs.min(1), ys.min(1), xs.max(1), ys.max(1)], axis=1)
    return _keep_single(out, quad)


def obb_to_quad(obb: ArrayLike) -> FloatArray:
    """``(N, 5)`` oriented boxes (angle in degrees) to ``(N, 8)`` canonical quads."""
    o = as_boxes(obb, "obb")
    cx, cy, w, h, a = o.T
    rad = np.deg2rad(a)
    cos, sin = np.cos(rad), np.sin(rad)
    # half-extent vectors along the w side and the h side
    wx, wy = cos * w / 2, sin * w / 2
    hx, hy = -sin * h / 2, cos * h / 2
    out = np.stack(
        [
            cx - wx - hx,
            cy - wy - hy,
            cx + wx - hx,
            cy + wy - hy,
            cx + wx + hx,
            cy + wy + hy,
            cx - wx + hx,
            cy - wy + hy,
        ],
        axis=1,
    )
    return _keep_single(canonical_quad(out), obb)


def box_to_quad(boxes: ArrayLike, kind: BoxKind) -> FloatArray:
    """Any box kind to ``(N, 8)`` quads; quads are returned in canonical order."""
    if kind == "hbb":
        return hbb_to_quad(boxes)
    if kind == "obb":
        return obb_to_quad(boxes)
    if kind == "quad":
        return canonical_quad(boxes)
    raise InvalidInputError(f"Expected `kind` to be one of {sorted(BOX_SIZES)}, but got {kind!r}")


def quad_area(quad: ArrayLike) -> FloatArray:
    """Signed shoelace area of ``(N, 8)`` quads: positive when clockwise on screen."""
    q = as_boxes(quad, "quad")
    xs, ys = q[:, 0::2], q[:, 1::2]
    with np.errstate(invalid="ignore", over="ignore"):
        area = 0.5 * np.sum(xs * np.roll(ys, -1, axis=1) - np.roll(xs, -1, axis=1) * ys, axis=1)
    return _keep_single(area, quad)


def _cross(
    ox: FloatArray, oy: FloatArray, ax: FloatArray, ay: FloatArray, bx: FloatArray, by: FloatArray
) -> FloatArray:
    return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)


def _segments_cross(p: FloatArray, q: FloatArray, r: FloatArray, s: FloatArray) -> NDArray[np.bool_]:
    """Proper crossing of segments p-q and r-s (each ``(N, 2)``), touching excluded."""
    with np.errstate(invalid="ignore", over="ignore"):
        return _segments_cross_unchecked(p, q, r, s)


def _segments_cross_unchecked(p: FloatArray, q: FloatArray, r: FloatArray, s: FloatArray) -> NDArray[np.bool_]:
    d1 = _cross(r[:, 0], r[:, 1], s[:, 0], s[:, 1], p[:, 0], p[:, 1])
    d2 = _cross(r[:, 0], r[:, 1], s[:, 0], s[:, 1], q[:, 0], q[:, 1])
    d3 = _cross(p[:, 0], p[:, 1], q[:, 0], q[:, 1], r[:, 0], r[:, 1])
    d4 = _cross(p[:, 0], p[:, 1], q[:, 0], q[:, 1], s[:, 0], s[:, 1])
    return (d1 * d2 < 0) & (d3 * d4 < 0)


def is_self_intersecting(quad: ArrayLike) -> NDArray[np.bool_]:
    """True where a quad's boundary crosses itself (a "bow-tie")."""
    q = as_boxes(quad, "quad").reshape(-1, 4, 2)
    out = _segments_cross(q[:, 0], q[:, 1], q[:, 2], q[:, 3]) | _segments_cross(q[:, 1], q[:, 2], q[:, 3], q[:, 0])
    return out[0] if np.ndim(quad) == 1 else out


def canonical_quad(quad: ArrayLike) -> FloatArray:
    """Put ``(N, 8)`` quads in canonical vertex order.

    The order is clockwise on screen (y axis down), starting at the top-most
    vertex, the left-most one on ties. A simple quad (convex or not) keeps its
    boundary: it is only reversed if counter-clockwise and rotated to the start
    vertex. A self-intersecting quad is reordered by angle around the mean of
    its vertices, which gives the simple quad through the same four points
    (their convex hull when they are in convex position). Rows with NaN or
    infinite coordinates are returned unchanged.

    Example:
        >>> canonical_quad(np.array([0, 10, 10, 10, 10, 0, 0, 0])).tolist()  # BL, BR, TR, TL
        [0.0, 0.0, 10.0, 0.0, 10.0, 10.0, 0.0, 10.0]
    """
    q = as_boxes(quad, "quad")
    if len(q) <= _CHUNK:
        return _keep_single(_canonical_rows(q), quad)
    # in chunks: the steps make a dozen temporaries the size of their input
    out = np.empty_like(q)
    for lo in range(0, len(q), _CHUNK):
        out[lo : lo + _CHUNK] = _canonical_rows(q[lo : lo + _CHUNK])
    return out


def _canonical_rows(q: FloatArray) -> FloatArray:
    q = q.copy()
    finite = np.isfinite(q).all(axis=1)
    pts = q.reshape(-1, 4, 2)

    bowtie = is_self_intersecting(q) & finite
    if bowtie.any():
        sub = pts[bowtie]
        centre = sub.mean(axis=1, keepdims=True)
        angle = np.arctan2(sub[..., 1] - centre[..., 1], sub[..., 0] - centre[..., 0])
        # ascending angle with y down is clockwise on screen
        pts[bowtie] = np.take_along_axis(sub, np.argsort(angle, axis=1, kind="stable")[..., None], axis=1)

    ccw = (quad_area(pts.reshape(-1, 8)) < 0) & finite
    pts[ccw] = pts[ccw][:, ::-1]

    # start at the top-most vertex, left-most on ties; y values within _TIE_PX are a tie, so
    # float noise (a rotation by exactly 90 degrees leaves -1e-16) does not pick the start
    with np.errstate(invalid="ignore"):
        near_top = (
            pts[..., 1] <= np.nanmin(np.where(finite[:, None], pts[..., 1], 0.0), axis=1, keepdims=True) + _TIE_PX
        )
    key = np.argmin(np.where(near_top, pts[..., 0], np.inf), axis=1)
    key = np.where(finite, key, 0)
    order = (key[:, None] + np.arange(4)[None, :]) % 4
    pts = np.take_along_axis(pts, order[..., None], axis=1)
    return pts.reshape(-1, 8)


def _normalise_obb(cx: FloatArray, cy: FloatArray, w: FloatArray, h: FloatArray, a: FloatArray) -> FloatArray:
    swap = w < h
    w, h = np.where(swap, h, w), np.where(swap, w, h)
    a = np.where(swap, a + 90.0, a)
    a = (a + 90.0) % 180.0 - 90.0
    return np.stack([cx, cy, w, h, a], axis=1)


def quad_to_obb(quad: ArrayLike) -> FloatArray:
    """Minimum-area enclosing rectangle of ``(N, 8)`` quads, as ``(N, 5)`` le90 oriented boxes.

    The same rectangle as ``cv2.minAreaRect`` (up to float error) without
    OpenCV: the minimum-area rectangle has a side on an edge of the convex hull,
    and every hull edge of four points joins two of them, so the six pairwise
    directions are a superset of the candidates. Returned boxes have ``w >= h``
    and ``angle`` in ``[-90, 90)`` degrees.
    """
    q = as_boxes(quad, "quad")
    pts = q.reshape(-1, 4, 2)
    i, j = np.triu_indices(4, k=1)
    d = pts[:, j] - pts[:, i]  # (N, 6, 2)
    norm = np.hypot(d[..., 0], d[..., 1])
    valid = norm > 0
    safe = np.where(valid, norm, 1.0)
    ux, uy = d[..., 0] / safe, d[..., 1] / safe  # (N, 6)
    # projections of the 4 points on each candidate axis and its normal: (N, 6, 4)
    pu = pts[:, None, :, 0] * ux[..., None] + pts[:, None, :, 1] * uy[..., None]
    pv = -pts[:, None, :, 0] * uy[..., None] + pts[:, None, :, 1] * ux[..., None]
    umin, umax = pu.min(-1), pu.max(-1)
    vmin, vmax = pv.min(-1), pv.max(-1)
    area = np.where(valid, (umax - umin) * (vmax - vmin), np.inf)
    best = np.argmin(area, axis=1)[:, None]
    pick = lambda arr: np.take_along_axis(arr, best, axis=1)[:, 0]  # noqa: E731
    bux, buy = pick(ux), pick(uy)
    bumin, bumax, bvmin, bvmax = pick(umin), pick(umax), pick(vmin), pick(vmax)
    mu, mv = (bumin + bumax) / 2, (bvmin + bvmax) / 2
    cx = mu * bux - mv * buy
    cy = mu * buy + mv * bux
    w, h = bumax - bumin, bvmax - bvmin
    angle = np.rad2deg(np.arctan2(buy, bux))
    out = _normalise_obb(cx, cy, w, h, angle)
    # all four points equal: a zero-size box at that point
    none = ~valid.any(axis=1)
    if none.any():
        out[none] = np.stack(
            [pts[none, 0, 0], pts[none, 0, 1], 0 * pts[none, 0, 0], 0 * pts[none, 0, 0], 0 * pts[none, 0, 0]], 1
        )
    return _keep_single(out, quad)


def scale_boxes(boxes: ArrayLike, kind: BoxKind, sx: float, sy: float) -> FloatArray:
    """Scale boxes from one frame to another by ``sx`` along x and ``sy`` along y.

    Used to map boxes between the model's input frame (the resized image) and
    the original image: ``sx = original_width / input_width``. Oriented boxes
    are scaled exactly through their corners when ``sx != sy`` (a rotated
    rectangle under anisotropic scaling is a parallelogram, so the result is
    its minimum-area rectangle).
    """
    b = as_boxes(boxes, kind).copy()
    if kind == "hbb":
        b[:, [0, 2]] *= sx
        b[:, [1, 3]] *= sy
    elif kind == "quad":
        b[:, 0::2] *= sx
        b[:, 1::2] *= sy
    elif sx == sy:
        b[:, :4] *= sx
    else:
        b = quad_to_obb(scale_boxes(obb_to_quad(b), "quad", sx, sy))
    return _keep_single(b, boxes)
