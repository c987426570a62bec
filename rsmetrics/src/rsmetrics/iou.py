"""Intersection over union for horizontal boxes, oriented boxes and quads.

All functions come in two shapes: ``*_iou(a, b)`` returns the ``(M, N)`` matrix
between every box of ``a`` and every box of ``b``; ``*_iou_pairs(a, b)``
returns the ``(P,)`` IoU of row ``k`` of ``a`` with row ``k`` of ``b``.

Rules shared by every function:

* Double precision. Polygon IoU is exact for simple quads, convex or not
  (shapely/GEOS overlay), and agrees with the DOTA devkit's ``polyiou`` to
  about 1e-12.
* Self-intersecting ("bow-tie") quads are first reordered into the simple
  quad through the same points (see :func:`rsmetrics.geometry.canonical_quad`):
  an annotator who clicked the corners in the wrong order meant that shape.
* Degenerate boxes (zero area, NaN or infinite coordinates) have IoU 0 with
  everything, never an exception or an out-of-range value. Count them with
  :func:`degenerate_mask`.

Example:
    >>> import numpy as np
    >>> hbb_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]])).round(4).tolist()
    [[0.3333]]
    >>> square = np.array([[0, 0, 2, 0, 2, 2, 0, 2]])
    >>> diamond = np.array([[1, -1, 3, 1, 1, 3, -1, 1]])
    >>> round(float(poly_iou(square, diamond)[0, 0]), 12)
    0.5
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray

from rsmetrics.errors import InvalidInputError
from rsmetrics.geometry import (
    BoxKind,
    as_boxes,
    box_to_quad,
    canonical_quad,
    is_self_intersecting,
    quad_area,
    quad_to_hbb,
)

__all__ = [
    "PixelConvention",
    "box_iou",
    "box_iou_pairs",
    "degenerate_mask",
    "hbb_iou",
    "hbb_iou_pairs",
    "poly_iou",
    "poly_iou_pairs",
    "rbox_iou",
    "rbox_iou_pairs",
]

PixelConvention = Literal["continuous", "plus_one"]
FloatArray = NDArray[np.float64]

_PAIR_CHUNK = 4096  # pairs whose bounds and polygons are built and intersected together


def _pixel_offset(pixel: str) -> float:
    if pixel == "continuous":
        return 0.0
    if pixel == "plus_one":
        return 1.0
    raise InvalidInputError(f"Expected `pixel` to be one of ['continuous', 'plus_one'], but got {pixel!r}")


def degenerate_mask(boxes: ArrayLike, kind: BoxKind = "quad") -> NDArray[np.bool_]:
    """True for boxes with a non-finite coordinate or zero area."""
    b = as_boxes(boxes, kind)
    finite = np.isfinite(b).all(axis=1)
    if kind == "hbb":
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        return ~finite | ~(area > 0)
    if kind == "obb":
        return ~finite | ~(b[:, 2] * b[:, 3] > 0)
    with np.errstate(invalid="ignore", over="ignore"):
        # the shoelace area of a simple quad does not depend on its vertex order; only a
        # bow-tie needs reordering first (into the simple quad through its points)
        area = np.abs(quad_area(b))
        bowtie = is_self_intersecting(b) & finite
        if bowtie.any():
            area[bowtie] = np.abs(quad_area(canonical_quad(b[bowtie])))
    return ~finite | ~(area > 0) | ~np.isfinite(area)


def _hbb_inter_union(a: FloatArray, b: FloatArray, off: float) -> tuple[FloatArray, FloatArray]:
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + off
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + off
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[..., 2] - a[..., 0] + off) * (a[..., 3] - a[..., 1] + off)
    area_b = (b[..., 2] - b[..., 0] + off) * (b[..., 3] - b[..., 1] + off)
    return inter, area_a + area_b - inter


def _safe_ratio(inter: FloatArray, union: FloatArray, bad: NDArray[np.bool_]) -> FloatArray:
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        iou = inter / union
    iou = np.where(bad | ~np.isfinite(iou) | ~(union > 0), 0.0, iou)
    return np.clip(iou, 0.0, 1.0)


def hbb_iou(a: ArrayLike, b: ArrayLike, *, pixel: PixelConvention = "continuous") -> FloatArray:
    """IoU matrix ``(M, N)`` of horizontal boxes ``(M, 4)`` and ``(N, 4)``.

    Args:
        a: boxes ``(x1, y1, x2, y2)``.
        b: boxes ``(x1, y1, x2, y2)``.
        pixel: ``"continuous"`` (areas ``w * h``) or ``"plus_one"`` (the legacy
            VOC/VRSBench convention where a box covers ``x2 - x1 + 1`` pixels).
    """
    off = _pixel_offset(pixel)
    aa, bb = as_boxes(a, "hbb"), as_boxes(b, "hbb")
    inter, union = _hbb_inter_union(aa[:, None, :], bb[None, :, :], off)
    bad = degenerate_mask(aa, "hbb")[:, None] | degenerate_mask(bb, "hbb")[None, :]
    if off:
        # with +1 areas a zero-width box still covers a pixel column: only non-finite rows are degenerate
        bad = ~np.isfinite(aa).all(1)[:, None] | ~np.isfinite(bb).all(1)[None, :]
    return _safe_ratio(inter, union, bad)


def hbb_iou_pairs(a: ArrayLike, b: ArrayLike, *, pixel: PixelConvention = "continuous") -> FloatArray:
    """Row-wise IoU ``(P,)`` of horizontal boxes ``(P, 4)`` and ``(P, 4)``."""
    off = _pixel_offset(pixel)
    aa, bb = as_boxes(a, "hbb"), as_boxes(b, "hbb")
    _check_pairs(aa, bb)
    inter, union = _hbb_inter_union(aa, bb, off)
    if off:
        bad = ~np.isfinite(aa).all(1) | ~np.isfinite(bb).all(1)
    else:
        bad = degenerate_mask(aa, "hbb") | degenerate_mask(bb, "hbb")
    return _safe_ratio(inter, union, bad)


def _check_pairs(a: FloatArray, b: FloatArray) -> None:
    if len(a) != len(b):
        raise InvalidInputError(f"Expected as many rows in `a` as in `b`, but got {len(a)} and {len(b)}")


class _QuadSet:
    """Quads prepared once for many IoU queries: canonical order, areas, bounds.

    Polygons are built lazily, only for the quads of pairs whose bounds overlap:
    shapely geometries cost far more memory than the coordinates.
    """

    def __init__(self, quads: FloatArray) -> None:
        self.quads = canonical_quad(quads)
        with np.errstate(invalid="ignore", over="ignore"):
            self.area = np.abs(quad_area(self.quads))
            self.hbb = quad_to_hbb(self.quads)
        self.bad = ~np.isfinite(self.quads).all(axis=1) | ~(self.area > 0) | ~np.isfinite(self.area)

    def polygons(self, idx: NDArray[np.intp]) -> tuple[NDArray[np.object_], NDArray[np.bool_]]:
        """Polygons of the given rows, and whether GEOS finds each valid."""
        polys = shapely.polygons(self.quads[idx].reshape(-1, 4, 2))
        # a canonical quad is simple, but near-collinear points can still make GEOS call it invalid
        return polys, shapely.is_valid(polys)


def _pair_iou(sa: _QuadSet, ia: NDArray[np.intp], sb: _QuadSet, ib: NDArray[np.intp]) -> FloatArray:
    """IoU of quad ``sa[ia[k]]`` with ``sb[ib[k]]`` for every k.

    Works in chunks of pairs: a shapely polygon costs ~0.5 kB, far more than its
    8 coordinates, so only one chunk's polygons (and bounds) are alive at a time.
    """
    out = np.zeros(len(ia), dtype=np.float64)
    for lo in range(0, len(ia), _PAIR_CHUNK):
        ca, cb = ia[lo : lo + _PAIR_CHUNK], ib[lo : lo + _PAIR_CHUNK]
        ha, hb = sa.hbb[ca], sb.hbb[cb]
        overlap = (
            (np.minimum(ha[:, 2], hb[:, 2]) > np.maximum(ha[:, 0], hb[:, 0]))
            & (np.minimum(ha[:, 3], hb[:, 3]) > np.maximum(ha[:, 1], hb[:, 1]))
            & ~sa.bad[ca]
            & ~sb.bad[cb]
        )
        k = np.flatnonzero(overlap)
        if len(k) == 0:
            continue
        ua, ra = np.unique(ca[k], return_inverse=True)
        ub, rb = np.unique(cb[k], return_inverse=True)
        pa, va = sa.polygons(ua)
        pb, vb = sb.polygons(ub)
        ok = va[ra] & vb[rb]
        k, ra, rb = k[ok], ra[ok], rb[ok]
        inter = shapely.area(shapely.intersection(pa[ra], pb[rb]))
        union = sa.area[ca[k]] + sb.area[cb[k]] - inter
        out[lo + k] = _safe_ratio(inter, union, np.zeros(len(k), dtype=bool))
    return out


def _quad_matrix(qa: FloatArray, qb: FloatArray) -> FloatArray:
    sa, sb = _QuadSet(qa), _QuadSet(qb)
    m, n = len(qa), len(qb)
    ia, ib = np.divmod(np.arange(m * n, dtype=np.intp), n) if n else (np.zeros(0, np.intp),) * 2
    return _pair_iou(sa, ia, sb, ib).reshape(m, n)


def poly_iou(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """IoU matrix ``(M, N)`` of quads ``(M, 8)`` and ``(N, 8)`` (exact polygon overlay)."""
    return _quad_matrix(as_boxes(a, "quad"), as_boxes(b, "quad"))


def poly_iou_pairs(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """Row-wise polygon IoU ``(P,)`` of quads ``(P, 8)`` and ``(P, 8)``."""
    qa, qb = as_boxes(a, "quad"), as_boxes(b, "quad")
    _check_pairs(qa, qb)
    idx = np.arange(len(qa), dtype=np.intp)
    return _pair_iou(_QuadSet(qa), idx, _QuadSet(qb), idx)


def rbox_iou(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """IoU matrix ``(M, N)`` of oriented boxes ``(M, 5)`` and ``(N, 5)`` (angles in degrees)."""
    return _quad_matrix(box_to_quad(as_boxes(a, "obb"), "obb"), box_to_quad(as_boxes(b, "obb"), "obb"))


def rbox_iou_pairs(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """Row-wise IoU ``(P,)`` of oriented boxes ``(P, 5)`` and ``(P, 5)``."""
    return poly_iou_pairs(box_to_quad(as_boxes(a, "obb"), "obb"), box_to_quad(as_boxes(b, "obb"), "obb"))


def box_iou(a: ArrayLike, b: ArrayLike, kind: BoxKind, *, pixel: PixelConvention = "continuous") -> FloatArray:
    """IoU matrix for any box kind: ``"hbb"``, ``"obb"`` or ``"quad"``."""
    if kind == "hbb":
        return hbb_iou(a, b, pixel=pixel)
    if kind == "obb":
        return rbox_iou(a, b)
    if kind == "quad":
        return poly_iou(a, b)
    raise InvalidInputError(f"Expected `kind` to be one of ['hbb', 'obb', 'quad'], but got {kind!r}")


def box_iou_pairs(a: ArrayLike, b: ArrayLike, kind: BoxKind, *, pixel: PixelConvention = "continuous") -> FloatArray:
    """Row-wise IoU for any box kind."""
    if kind == "hbb":
        return hbb_iou_pairs(a, b, pixel=pixel)
    if kind == "obb":
        return rbox_iou_pairs(a, b)
    if kind == "quad":
        return poly_iou_pairs(a, b)
    raise InvalidInputError(f"Expected `kind` to be one of ['hbb', 'obb', 'quad'], but got {kind!r}")
