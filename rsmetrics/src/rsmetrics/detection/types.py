"""Per-image containers for ground truth and predictions.

Both are small frozen dataclasses of parallel arrays, validated on creation.
Boxes may be given as any box kind; they are stored as ``(N, 8)`` quads in the
image's own pixel frame, which is what every evaluator consumes (hbb and obb
become canonical quads; quads are kept in their given vertex order, since IoU
does not depend on it and evaluators canonicalise in bulk).

Example:
    >>> import numpy as np
    >>> gt = ImageAnnotations("P0001", boxes=[[0, 0, 10, 10]], labels=["plane"], box_kind="hbb")
    >>> gt.boxes.tolist()
    [[0.0, 0.0, 10.0, 0.0, 10.0, 10.0, 0.0, 10.0]]
    >>> pred = ImageDetections("P0001", boxes=[[1, 1, 10, 10]], labels=["plane"], box_kind="hbb")
    >>> pred.scores is None
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rsmetrics.errors import InvalidInputError
from rsmetrics.geometry import BoxKind, as_boxes, box_to_quad

__all__ = ["ImageAnnotations", "ImageDetections"]


def _as_quads(boxes: ArrayLike, kind: BoxKind, owner: str) -> NDArray[np.float64]:
    try:
        arr = as_boxes(boxes, kind)
    except InvalidInputError as err:
        raise InvalidInputError(f"{owner}: {err}") from None
    if kind == "quad":
        # kept as given: evaluators canonicalise all quads in one vectorised call, which
        # is much cheaper than thousands of small per-image calls
        return arr
    return box_to_quad(arr, kind)


def _as_labels(labels: Sequence[Any] | NDArray[Any], n: int, owner: str) -> tuple[str, ...]:
    out = tuple(str(x) for x in (labels.tolist() if isinstance(labels, np.ndarray) else labels))
    if len(out) != n:
        raise InvalidInputError(f"{owner}: expected {n} labels (one per box), but got {len(out)}")
    return out


def _as_vector(values: ArrayLike | None, n: int, dtype: Any, owner: str, name: str) -> NDArray[Any] | None:
    if values is None:
        return None
    arr = np.asarray(values, dtype=dtype).reshape(-1)
    if len(arr) != n:
        raise InvalidInputError(f"{owner}: expected {n} values in `{name}` (one per box), but got {len(arr)}")
    return arr


@dataclass(frozen=True)
class ImageAnnotations:
    """Ground-truth objects of one image.

    Args:
        image_id: unique image name, e.g. ``"P0001"`` or a patch name ``"P0001__1024__0___512"``.
        boxes: ``(N, K)`` boxes of ``box_kind`` in the image's pixels.
        labels: ``N`` class names.
        difficult: ``N`` integer flags (DOTA: 0 normal, 1 difficult, 2 truncated by the
            splitter; COCO: 1 for ``iscrowd``). ``None`` means all 0.
        box_kind: ``"hbb"``, ``"obb"`` or ``"quad"``.
    """

    image_id: str
    boxes: NDArray[np.float64]
    labels: tuple[str, ...]
    difficult: NDArray[np.int64] = field(default=None)  # type: ignore[assignment]
    box_kind: BoxKind = "quad"

    def __init__(
        self,
        image_id: str,
        boxes: ArrayLike,
        labels: Sequence[Any] | NDArray[Any],
        difficult: ArrayLike | None = None,
        box_kind: BoxKind = "quad",
    ) -> None:
        owner = f"ground truth of image {image_id!r}"
        quads = _as_quads(boxes, box_kind, owner)
        flags = _as_vector(difficult, len(quads), np.int64, owner, "difficult")
        object.__setattr__(self, "image_id", str(image_id))
        object.__setattr__(self, "boxes", quads)
        object.__setattr__(self, "labels", _as_labels(labels, len(quads), owner))
        object.__setattr__(self, "difficult", np.zeros(len(quads), np.int64) if flags is None else flags)
        object.__setattr__(self, "box_kind", box_kind)

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass(frozen=True)
class ImageDetections:
    """Predicted objects of one image.

    Args:
        image_id: the image name, as in the ground truth.
        boxes: ``(N, K)`` boxes of ``box_kind`` in the image's pixels.
        labels: ``N`` class names.
        scores: ``N`` confidences, or ``None`` for a model without scores (a VLM):
            all its detections then tie, and the tie rule decides.
        box_kind: ``"hbb"``, ``"obb"`` or ``"quad"``.
    """

    image_id: str
    boxes: NDArray[np.float64]
    labels: tuple[str, ...]
    scores: NDArray[np.float64] | None = None
    box_kind: BoxKind = "quad"

    def __init__(
        self,
        image_id: str,
        boxes: ArrayLike,
        labels: Sequence[Any] | NDArray[Any],
        scores: ArrayLike | None = None,
        box_kind: BoxKind = "quad",
    ) -> None:
        owner = f"predictions of image {image_id!r}"
        quads = _as_quads(boxes, box_kind, owner)
        object.__setattr__(self, "image_id", str(image_id))
        object.__setattr__(self, "boxes", quads)
        object.__setattr__(self, "labels", _as_labels(labels, len(quads), owner))
        object.__setattr__(self, "scores", _as_vector(scores, len(quads), np.float64, owner, "scores"))
        object.__setattr__(self, "box_kind", box_kind)

    def __len__(self) -> int:
        return len(self.boxes)
