"""Merge detections on split patches back into full images, with polygon NMS.

Large images (DOTA) are cut into overlapping patches for inference; each patch
is named after its image and its top-left corner:

* mmrotate 1.x (and BboxToolkit): ``P0001__1024__0___512``: ``<image>__<size>__<x>___<y>``,
  the window size and offset in **original** pixels. Its ``--rates`` option only
  changes the window size, so the offset needs no rescaling.
* DOTA devkit ``ImgSplit`` (and mmrotate 0.x data): ``P0004__1__0___0``:
  ``<image>__<rate>__<x>___<y>``. The devkit resizes the whole image by ``rate``
  *before* cutting, so the offset and the patch pixels are in the resized frame
  and ``original = (patch + offset) / rate`` (its ``ResultMerge`` does the same).

The second field cannot say by itself which of the two it is; rsmetrics reads
it as a rate when it is at most :data:`MAX_RATE` (16), else as a window size
(no window is 16 px or smaller, and no devkit rate is larger).

After translation, the detections of each image are filtered per class by
greedy polygon NMS at IoU 0.1, like mmrotate's ``DOTAMetric(merge_patches=True)``
(which uses ``nms_rotated`` on minimum-area rectangles; here the IoU is the exact
polygon IoU of the quads).

Example:
    >>> import numpy as np
    >>> from rsmetrics.detection.types import ImageDetections
    >>> a = ImageDetections("P1__1024__0___0", [[800, 10, 900, 50]], ["ship"], [0.9], "hbb")
    >>> b = ImageDetections("P1__1024__824___0", [[-24, 10, 76, 50]], ["ship"], [0.8], "hbb")
    >>> merged = merge_patch_detections([a, b])
    >>> merged[0].image_id, len(merged[0]), merged[0].scores.tolist()
    ('P1', 1, [0.9])
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray

from rsmetrics.detection.types import ImageDetections
from rsmetrics.errors import InvalidInputError
from rsmetrics.geometry import as_boxes, quad_to_hbb, quad_to_obb
from rsmetrics.iou import _pair_iou, _QuadSet

__all__ = ["MAX_RATE", "PatchName", "merge_patch_detections", "parse_patch_name", "polygon_nms"]

MAX_RATE = 16.0
_PATCH_NAME = re.compile(r"^(.*)__([0-9.]+)__(-?\d+)___(-?\d+)$", re.DOTALL)


class PatchName(NamedTuple):
    """The parts of a patch name ``<image_id>__<rate_or_size>__<x>___<y>``.

    Attributes:
        image_id: the original image's id.
        rate_or_size: the second field as a number: a devkit resize rate or a
            window size (see :attr:`is_rate`).
        x: left offset of the patch.
        y: top offset of the patch.
    """

    image_id: str
    rate_or_size: float
    x: int
    y: int

    @property
    def is_rate(self) -> bool:
        """True for the devkit's rate naming: a value <= :data:`MAX_RATE`."""
        return self.rate_or_size <= MAX_RATE

    @property
    def scale(self) -> float:
        """The factor from the patch frame (plus offset) to the original frame: ``1 / rate`` or 1."""
        return 1.0 / self.rate_or_size if self.is_rate else 1.0


def parse_patch_name(name: str) -> PatchName:
    """Split a patch name into image id, rate or size, and offset.

    Args:
        name: e.g. ``"P0001__1024__0___512"`` (mmrotate 1.x) or ``"P0004__0.5__0___0"``
            (DOTA devkit). The image id may itself contain ``__``.

    Raises:
        InvalidInputError: if ``name`` does not match ``<id>__<number>__<x>___<y>``
            or the rate/size is not a positive number.

    Example:
        >>> tuple(parse_patch_name("P0001__1024__0___512"))
        ('P0001', 1024.0, 0, 512)
        >>> p = parse_patch_name("P0004__0.5__100___0")
        >>> p.is_rate, p.scale
        (True, 2.0)
    """
    match = _PATCH_NAME.match(str(name))
    if match is None:
        raise InvalidInputError(
            f"Expected a patch name like 'P0001__1024__0___512' (<image>__<size or rate>__<x>___<y>), but got {name!r}"
        )
    image_id, raw, x, y = match.groups()
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise InvalidInputError(f"Expected a positive size or rate in patch name {name!r}, but got {raw!r}")
    if not image_id:
        raise InvalidInputError(f"Expected an image id before '__' in patch name {name!r}")
    return PatchName(image_id, value, int(x), int(y))


def _check_threshold(iou_threshold: float) -> float:
    thr = float(iou_threshold)
    # pairs with disjoint boxes are never examined, which is only right if IoU 0 cannot suppress
    if not (thr >= 0 and math.isfinite(thr)):
        raise InvalidInputError(f"Expected `iou_threshold` to be a finite number >= 0, but got {iou_threshold!r}")
    return thr


def polygon_nms(quads: ArrayLike, scores: ArrayLike | None, iou_threshold: float) -> NDArray[np.intp]:
    """Greedy non-maximum suppression of quads by exact polygon IoU.

    Boxes are visited by descending score; a box is suppressed if its IoU with
    an already kept box is **greater than** ``iou_threshold`` (mmcv
    ``nms_rotated`` uses ``>``, so IoU exactly at the threshold survives).

    Tie rule: equal scores, or ``scores=None`` (a model without confidences),
    keep the input order, i.e. the sort is stable. After
    :func:`merge_patch_detections` the input order is patch order, then
    detection order within a patch. Degenerate boxes (zero area, non-finite
    coordinates) have IoU 0 with everything: they are kept and suppress nothing.

    Only pairs whose enclosing horizontal boxes overlap, and whose IoU bound
    from those boxes can exceed the threshold, get a polygon IoU (pairs found
    with a shapely STRtree, IoUs computed in one vectorised call); the
    greedy pass loops over the boxes that can suppress another, one array
    operation each.

    Args:
        quads: ``(N, 8)`` boxes.
        scores: ``(N,)`` finite scores, or ``None`` for all equal.
        iou_threshold: suppress at IoU above this, ``>= 0``.

    Returns:
        Indices of the kept boxes, in visiting order (descending score, ties
        in input order).

    Example:
        >>> import numpy as np
        >>> q = np.array([[0, 0, 10, 0, 10, 10, 0, 10],
        ...               [1, 0, 11, 0, 11, 10, 1, 10],
        ...               [20, 0, 30, 0, 30, 10, 20, 10]])
        >>> polygon_nms(q, np.array([0.5, 0.9, 0.1]), 0.5).tolist()
        [1, 2]
        >>> polygon_nms(q, None, 0.5).tolist()
        [0, 2]
    """
    thr = _check_threshold(iou_threshold)
    q = as_boxes(quads, "quad")
    n = len(q)
    if scores is None:
        order = np.arange(n, dtype=np.intp)
    else:
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(s) != n:
            raise InvalidInputError(f"Expected {n} scores (one per box), but got {len(s)}")
        if not np.isfinite(s).all():
            raise InvalidInputError("Expected finite `scores`, but got NaN or inf")
        order = np.argsort(-s, kind="stable").astype(np.intp)
    if n <= 1:
        return order

    rank = np.empty(n, dtype=np.intp)
    rank[order] = np.arange(n, dtype=np.intp)

    # polygons, areas and enclosing boxes built once for all pairs (the evaluator does the same)
    quadset = _QuadSet(q)
    good = np.flatnonzero(~quadset.bad)  # degenerate boxes have IoU 0 with everything
    # candidate pairs: overlapping enclosing boxes, each pair once (i < j)
    boxes = shapely.box(*quadset.hbb[good].T)
    a, b = shapely.STRtree(boxes).query(boxes)
    a, b = good[a], good[b]
    pair = a < b
    a, b = a[pair], b[pair]
    # cheap bound: the polygon intersection is at most min(hbb overlap, area a, area b) and
    # x / (A + B - x) grows with x; pairs whose bound cannot pass the threshold need no GEOS call
    hbb, area = quadset.hbb, quadset.area
    iw = np.minimum(hbb[a, 2], hbb[b, 2]) - np.maximum(hbb[a, 0], hbb[b, 0])
    ih = np.minimum(hbb[a, 3], hbb[b, 3]) - np.maximum(hbb[a, 1], hbb[b, 1])
    inter = np.minimum(np.clip(iw, 0, None) * np.clip(ih, 0, None), np.minimum(area[a], area[b]))
    bound = inter / (area[a] + area[b] - inter)
    # the margin keeps pairs whose bound is only rounded below an IoU equal to it
    maybe = bound > thr - 1e-9
    a, b = a[maybe], b[maybe]
    if len(a) == 0:
        return order
    iou = _pair_iou(quadset, a, quadset, b)
    hit = iou > thr
    a, b = a[hit], b[hit]
    if len(a) == 0:
        return order

    # orient each conflicting pair from the earlier-visited box to the later one
    ra, rb = rank[a], rank[b]
    src = np.minimum(ra, rb)
    dst = np.maximum(ra, rb)
    by_src = np.argsort(src, kind="stable")
    src, dst = src[by_src], dst[by_src]
    starts = np.searchsorted(src, np.arange(n + 1))
    suppressed = np.zeros(n, dtype=bool)  # indexed by rank
    for r in np.unique(src).tolist():
        if not suppressed[r]:
            suppressed[dst[starts[r] : starts[r + 1]]] = True
    return order[~suppressed]


def _restore_kind(quads: NDArray[np.float64], kinds: set[str]) -> tuple[NDArray[np.float64], str]:
    # translation and isotropic scaling keep hbbs axis-aligned and rectangles rectangular
    if kinds == {"hbb"}:
        return quad_to_hbb(quads).reshape(-1, 4), "hbb"
    if kinds == {"obb"}:
        return quad_to_obb(quads).reshape(-1, 5), "obb"
    return quads, "quad"


def merge_patch_detections(
    dets: Iterable[ImageDetections],
    *,
    iou_threshold: float = 0.1,
    rate_aware: bool = True,
) -> list[ImageDetections]:
    """Map patch detections to their original images and de-duplicate them per class.

    Each patch's boxes are translated by its ``(+x, +y)`` offset; for the devkit
    rate naming with ``rate != 1`` (and ``rate_aware=True``) they are then divided
    by the rate: the devkit resized the image by ``rate`` before cutting, so
    ``original = (patch + offset) / rate``. ``rate_aware=False`` ignores the
    second field, like mmrotate's ``merge_results``.

    Detections are then grouped by original image id and filtered per class
    with :func:`polygon_nms` at ``iou_threshold`` (0.1, the mmrotate default).

    Args:
        dets: per-patch detections whose ``image_id`` are patch names
            (see :func:`parse_patch_name`), boxes in patch pixels.
        iou_threshold: NMS threshold; a box with IoU ``>`` it with a kept box of
            the same class and higher (or equal, earlier) score is dropped.
        rate_aware: undo the devkit's resize for rate-named patches.

    Returns:
        One :class:`ImageDetections` per original image, in order of first
        appearance. Surviving detections keep their input order (patch order,
        then detection order), so a later stable sort by score reproduces the
        NMS tie rule. Scores are ``None`` only if every patch had none. The box
        kind is kept when all patches share ``hbb`` or ``obb``, else ``quad``.

    Raises:
        InvalidInputError: for an image id that is not a patch name, or patches
            of one image mixing ``scores=None`` with scores.

    Example:
        >>> d = ImageDetections("P2__0.5__10___20", [[0, 0, 4, 0, 4, 2, 0, 2]], ["car"])
        >>> merge_patch_detections([d])[0].boxes.tolist()
        [[20.0, 40.0, 28.0, 40.0, 28.0, 44.0, 20.0, 44.0]]
    """
    thr = _check_threshold(iou_threshold)
    groups: dict[str, list[tuple[NDArray[np.float64], tuple[str, ...], NDArray[np.float64] | None, str]]] = {}
    for det in dets:
        patch = parse_patch_name(det.image_id)
        quads = det.boxes.copy()
        quads[:, 0::2] += patch.x
        quads[:, 1::2] += patch.y
        if rate_aware and patch.scale != 1.0:
            quads /= patch.rate_or_size
        groups.setdefault(patch.image_id, []).append((quads, det.labels, det.scores, det.box_kind))

    out = []
    for image_id, parts in groups.items():
        with_scores = [p[2] is not None for p in parts if len(p[0])]
        if any(with_scores) and not all(with_scores):
            raise InvalidInputError(
                f"Expected the patches of image {image_id!r} to all have scores or all have none, but they mix"
            )
        quads = np.concatenate([p[0] for p in parts]).reshape(-1, 8)
        labels = np.array([label for p in parts for label in p[1]], dtype=object)
        scores = np.concatenate([p[2] for p in parts if p[2] is not None]) if any(with_scores) else None
        keep = np.zeros(len(quads), dtype=bool)
        if len(quads):
            names, inverse = np.unique(labels.astype(str), return_inverse=True)
            for k in range(len(names)):
                idx = np.flatnonzero(inverse == k)
                kept = polygon_nms(quads[idx], None if scores is None else scores[idx], thr)
                keep[idx[kept]] = True
        boxes, kind = _restore_kind(quads[keep], {p[3] for p in parts})
        out.append(
            ImageDetections(
                image_id,
                boxes=boxes,
                labels=labels[keep].tolist(),
                scores=None if scores is None else scores[keep],
                box_kind=kind,  # type: ignore[arg-type]
            )
        )
    return out
