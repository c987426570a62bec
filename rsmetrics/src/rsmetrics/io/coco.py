"""COCO detection JSON: ground truth files and result lists.

**Image ids.** COCO identifies images by an integer ``id``; rsmetrics by a
string ``image_id``. By default (``image_key="file_stem"``) the string is the
stem of ``file_name`` (``"P0000__1024__0___0.png"`` -> ``"P0000__1024__0___0"``),
so that a COCO export of a DOTA split has the same ids as its label files and
patch merging works. ``image_key="id"`` uses ``str(id)`` instead. Both the
ground-truth reader and the result reader resolve ids through the same
:class:`CocoIndex`, so they always agree.

**Boxes.** ``bbox`` is ``[x, y, w, h]`` in absolute pixels. With
``use_segmentation=True`` an annotation whose ``segmentation`` is a single
polygon of exactly 8 numbers (the mmrotate ``dota2coco`` export) uses that quad
instead. ``iscrowd: 1`` becomes the difficult flag 1.

**Errors.** A JSON file has no meaningful line per record, so record errors
name the file and the record (``annotations[17]``); JSON syntax errors name the
line.

Example:
    >>> gt = {"images": [{"id": 7, "file_name": "P0001.png"}],
    ...       "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [0, 0, 4, 2]}],
    ...       "categories": [{"id": 1, "name": "ship"}]}
    >>> anns, classes, report = read_coco_ground_truth(gt)
    >>> anns[0].image_id, classes, anns[0].boxes.tolist()
    ('P0001', ['ship'], [[0.0, 0.0, 4.0, 0.0, 4.0, 2.0, 0.0, 2.0]])
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rsmetrics.detection.types import ImageAnnotations, ImageDetections
from rsmetrics.errors import InvalidInputError, RecordError
from rsmetrics.geometry import quad_to_hbb
from rsmetrics.io._common import ReadReport, atomic_open, source_name
from rsmetrics.io._common import fail_or_skip as _fail

__all__ = [
    "CocoIndex",
    "ImageKey",
    "coco_index",
    "read_coco_ground_truth",
    "read_coco_results",
    "write_coco_ground_truth",
    "write_coco_results",
]

ImageKey = Literal["file_stem", "id"]
_DICT_SOURCE = "<dict>"
_LIST_SOURCE = "<list>"


@dataclass(frozen=True)
class CocoIndex:
    """How the ids of one COCO ground truth map to rsmetrics names.

    Attributes:
        image_ids: COCO image id -> rsmetrics ``image_id`` (string).
        image_numbers: rsmetrics ``image_id`` -> COCO image id.
        category_names: COCO category id -> class name.
        category_ids: class name -> COCO category id.
        classes: class names in ascending category id order.
        image_order: rsmetrics image ids in the order of the ``images`` list.
    """

    image_ids: Mapping[int, str]
    image_numbers: Mapping[str, int]
    category_names: Mapping[int, str]
    category_ids: Mapping[str, int]
    classes: tuple[str, ...]
    image_order: tuple[str, ...]


def _load_json(data: str | os.PathLike[str] | Any, default_source: str) -> tuple[Any, str]:
    """Parse a JSON file, or pass an already-loaded object through."""
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        src = source_name(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise InvalidInputError(f"Expected an existing file, but {src!r} does not exist") from None
        except UnicodeDecodeError as err:
            raise RecordError(src, None, f"the file is not valid UTF-8 ({err.reason})") from None
        try:
            return json.loads(text), src
        except json.JSONDecodeError as err:
            raise RecordError(src, err.lineno, f"invalid JSON: {err.msg} (column {err.colno})") from None
    return data, default_source


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _stem(file_name: str) -> str:
    """``pathlib``'s stem of the base name, by string operations (called once per image).

    COCO files written on Windows may use backslashes.
    """
    base = file_name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    dot = base.rfind(".")
    return base[:dot] if dot > 0 else base


def _as_list(value: Any, key: str, src: str, required: bool = True) -> list[Any]:
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise RecordError(src, None, f"expected `{key}` to be a list, but got {type(value).__name__}")
    return value


def coco_index(
    ground_truth: str | os.PathLike[str] | Mapping[str, Any] | CocoIndex,
    *,
    image_key: ImageKey = "file_stem",
) -> CocoIndex:
    """Build the id mapping of a COCO ground truth (file path or loaded dict).

    Args:
        ground_truth: the COCO JSON (needs ``images`` and ``categories``).
        image_key: ``"file_stem"`` (default): image ids are the stems of
            ``file_name``; ``"id"``: ``str(id)``.

    Raises:
        RecordError: for a duplicated image id, stem, category id or name, or
            a record missing ``id``/``file_name``/``name``.

    Example:
        >>> idx = coco_index({"images": [{"id": 3, "file_name": "a/P7.png"}],
        ...                   "categories": [{"id": 2, "name": "ship"}, {"id": 1, "name": "plane"}]})
        >>> idx.image_ids[3], idx.classes
        ('P7', ('plane', 'ship'))
    """
    if isinstance(ground_truth, CocoIndex):
        return ground_truth
    if image_key not in ("file_stem", "id"):
        raise InvalidInputError(f"Expected `image_key` to be one of ['file_stem', 'id'], but got {image_key!r}")
    data, src = _load_json(ground_truth, _DICT_SOURCE)
    if not isinstance(data, Mapping):
        raise RecordError(
            src, None, f"expected a COCO object with `images` and `categories`, but got {type(data).__name__}"
        )

    image_ids: dict[int, str] = {}
    image_numbers: dict[str, int] = {}
    for k, img in enumerate(_as_list(data.get("images"), "images", src)):
        where = f"images[{k}]"
        if not isinstance(img, Mapping) or not _is_int(img.get("id")):
            raise RecordError(src, None, f"{where}: expected an object with an integer `id`")
        number = img["id"]
        if image_key == "id":
            name = str(number)
        else:
            file_name = img.get("file_name")
            if not isinstance(file_name, str) or not _stem(file_name):
                raise RecordError(src, None, f"{where}: expected a `file_name` string (or use image_key='id')")
            name = _stem(file_name)
        if number in image_ids:
            raise RecordError(src, None, f"{where}: image id {number} is used twice")
        if name in image_numbers:
            raise RecordError(
                src,
                None,
                f"{where}: image name {name!r} is used by ids {image_numbers[name]} and {number} (use image_key='id')",
            )
        image_ids[number] = name
        image_numbers[name] = number

    category_names: dict[int, str] = {}
    for k, cat in enumerate(_as_list(data.get("categories"), "categories", src)):
        where = f"categories[{k}]"
        if not isinstance(cat, Mapping) or not _is_int(cat.get("id")) or not isinstance(cat.get("name"), str):
            raise RecordError(src, None, f"{where}: expected an object with an integer `id` and a string `name`")
        if cat["id"] in category_names:
            raise RecordError(src, None, f"{where}: category id {cat['id']} is used twice")
        category_names[cat["id"]] = cat["name"]
    ordered = sorted(category_names)
    classes = tuple(category_names[i] for i in ordered)
    if len(set(classes)) != len(classes):
        dup = sorted({c for c in classes if classes.count(c) > 1})
        raise RecordError(src, None, f"category names must be unique, but {dup} appear more than once")
    return CocoIndex(
        image_ids=image_ids,
        image_numbers=image_numbers,
        category_names=category_names,
        category_ids={category_names[i]: i for i in ordered},
        classes=classes,
        image_order=tuple(image_ids.values()),
    )


def _finite_numbers(value: Any, n: int | None) -> list[float] | None:
    if not isinstance(value, (list, tuple)) or (n is not None and len(value) != n):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        return None
    return [float(v) for v in value]


def _record_box(rec: Mapping[str, Any], use_segmentation: bool) -> tuple[list[float] | None, bool, str]:
    """The record's box as a quad, whether it came from the segmentation, and an error text."""
    if use_segmentation:
        seg = rec.get("segmentation")
        if isinstance(seg, list) and len(seg) == 1:
            quad = _finite_numbers(seg[0], 8)
            if quad is not None:
                return quad, True, ""
    bbox = _finite_numbers(rec.get("bbox"), 4)
    if bbox is None:
        return None, False, f"expected `bbox` to be 4 finite numbers [x, y, w, h], but got {rec.get('bbox')!r}"
    x, y, w, h = bbox
    if w < 0 or h < 0:
        return None, False, f"expected a non-negative width and height in `bbox`, but got {rec.get('bbox')!r}"
    # the canonical quad of the box (TL, TR, BR, BL), as hbb_to_quad gives it, without a numpy call per record
    return [x, y, x + w, y, x + w, y + h, x, y + h], False, ""


def read_coco_ground_truth(
    path_or_dict: str | os.PathLike[str] | Mapping[str, Any],
    *,
    use_segmentation: bool = True,
    image_key: ImageKey = "file_stem",
    strict: bool = True,
) -> tuple[list[ImageAnnotations], list[str], ReadReport]:
    """Read a COCO ground-truth file (or loaded dict) into per-image annotations.

    Args:
        path_or_dict: a COCO detection JSON path or the parsed dict.
        use_segmentation: use a single 8-number ``segmentation`` polygon as the
            box (oriented data); otherwise, and for other segmentations, ``bbox``.
        image_key: how image ids are named, see the module doc and :func:`coco_index`.
        strict: raise on a bad annotation (default) or skip and count it.

    Returns:
        ``(annotations, classes, report)``: one :class:`ImageAnnotations` per
        entry of ``images`` in file order (images without annotations are kept,
        empty), the class names in ascending category id order, and the report.
        Boxes are ``box_kind="quad"`` if any annotation used a segmentation quad,
        else ``"hbb"``. ``iscrowd`` becomes ``difficult`` 1.

    Raises:
        RecordError: for invalid JSON, missing ``images``/``categories``, or (in
            strict mode) an annotation with an unknown image or category or an
            invalid ``bbox``.

    Example:
        >>> gt = {"images": [{"id": 1, "file_name": "x.png"}, {"id": 2, "file_name": "y.png"}],
        ...       "annotations": [{"id": 1, "image_id": 2, "category_id": 5, "iscrowd": 1,
        ...                        "bbox": [0, 0, 1, 1], "segmentation": [[0, 0, 2, 0, 2, 1, 0, 1]]}],
        ...       "categories": [{"id": 5, "name": "car"}]}
        >>> anns, _, _ = read_coco_ground_truth(gt)
        >>> [len(a) for a in anns], anns[1].difficult.tolist(), anns[1].boxes[0, 2]
        ([0, 1], [1], np.float64(2.0))
    """
    data, src = _load_json(path_or_dict, _DICT_SOURCE)
    index = coco_index(data, image_key=image_key)
    report = ReadReport(files=1)
    per_image: dict[int, list[tuple[list[float], str, int]]] = {number: [] for number in index.image_ids}
    any_quad = False
    for k, ann in enumerate(_as_list(data.get("annotations"), "annotations", src, required=False)):
        where = f"annotations[{k}]"
        if not isinstance(ann, Mapping):
            _fail(RecordError(src, None, f"{where}: expected an object"), "not_object", strict, report)
            continue
        where += f" (id {ann['id']})" if "id" in ann else ""
        number = ann.get("image_id")
        if not _is_int(number) or number not in per_image:
            _fail(RecordError(src, None, f"{where}: unknown image_id {number!r}"), "unknown_image", strict, report)
            continue
        name = index.category_names.get(ann.get("category_id")) if _is_int(ann.get("category_id")) else None
        if name is None:
            _fail(
                RecordError(src, None, f"{where}: unknown category_id {ann.get('category_id')!r}"),
                "unknown_category",
                strict,
                report,
            )
            continue
        quad, from_seg, problem = _record_box(ann, use_segmentation)
        if quad is None:
            _fail(RecordError(src, None, f"{where}: {problem}"), "bad_bbox", strict, report)
            continue
        any_quad |= from_seg
        per_image[number].append((quad, name, 1 if ann.get("iscrowd") else 0))
        report.objects += 1

    kind: Literal["hbb", "quad"] = "quad" if any_quad else "hbb"
    out = []
    for number, objs in per_image.items():
        quads = np.array([o[0] for o in objs], dtype=np.float64).reshape(-1, 8)
        boxes = quads if kind == "quad" else quad_to_hbb(quads)
        out.append(
            ImageAnnotations(
                index.image_ids[number],
                boxes=boxes,
                labels=[o[1] for o in objs],
                difficult=[o[2] for o in objs],
                box_kind=kind,
            )
        )
    return out, list(index.classes), report


def read_coco_results(
    path_or_list: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
    gt_index: CocoIndex | str | os.PathLike[str] | Mapping[str, Any],
    *,
    use_segmentation: bool = True,
    image_key: ImageKey = "file_stem",
    strict: bool = True,
    stats: ReadReport | None = None,
) -> list[ImageDetections]:
    """Read a COCO results list (``[{image_id, category_id, bbox, score}, ...]``).

    Args:
        path_or_list: a results JSON path or the parsed list.
        gt_index: the ground truth the results refer to: a :class:`CocoIndex`,
            or a COCO path/dict (indexed with ``image_key``). COCO image and
            category ids are mapped to names through it, exactly as
            :func:`read_coco_ground_truth` names them.
        use_segmentation: use a single 8-number ``segmentation`` polygon as the
            box when present; otherwise ``bbox``.
        image_key: only used when ``gt_index`` is not a :class:`CocoIndex`.
        strict: raise on a bad record (default) or skip and count it in ``stats``.
        stats: a report to add the counts to.

    Returns:
        One :class:`ImageDetections` per image that has results, in order of
        first appearance; an image's detections keep the list order (the tie
        order of equal scores). If no record has a ``score``, ``scores`` is
        ``None`` (a model without confidences); mixing is an error.

    Example:
        >>> gt = {"images": [{"id": 1, "file_name": "P1.png"}], "categories": [{"id": 1, "name": "ship"}]}
        >>> dets = read_coco_results([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "score": 0.5}], gt)
        >>> dets[0].image_id, dets[0].labels, dets[0].scores.tolist()
        ('P1', ('ship',), [0.5])
    """
    index = coco_index(gt_index, image_key=image_key)
    data, src = _load_json(path_or_list, _LIST_SOURCE)
    report = stats if stats is not None else ReadReport()
    report.files += 1
    if isinstance(data, Mapping) and isinstance(data.get("annotations"), list):
        data = data["annotations"]  # a results file written as a COCO object
    if not isinstance(data, list):
        raise RecordError(src, None, f"expected a list of result objects, but got {type(data).__name__}")

    has_score = [isinstance(r, Mapping) and "score" in r for r in data]
    with_scores = any(has_score)
    per_image: dict[str, list[tuple[list[float], str, float]]] = {}
    any_quad = False
    for k, rec in enumerate(data):
        where = f"[{k}]"
        if not isinstance(rec, Mapping):
            _fail(RecordError(src, None, f"{where}: expected an object"), "not_object", strict, report)
            continue
        name = index.image_ids.get(rec.get("image_id")) if _is_int(rec.get("image_id")) else None
        if name is None:
            _fail(
                RecordError(src, None, f"{where}: unknown image_id {rec.get('image_id')!r}"),
                "unknown_image",
                strict,
                report,
            )
            continue
        label = index.category_names.get(rec.get("category_id")) if _is_int(rec.get("category_id")) else None
        if label is None:
            _fail(
                RecordError(src, None, f"{where}: unknown category_id {rec.get('category_id')!r}"),
                "unknown_category",
                strict,
                report,
            )
            continue
        score = 1.0
        if with_scores:
            value = _finite_numbers([rec.get("score")], 1)
            if value is None:
                what = (
                    "missing `score` (other records have one)"
                    if "score" not in rec
                    else f"score {rec['score']!r} is not a finite number"
                )
                _fail(RecordError(src, None, f"{where}: {what}"), "bad_score", strict, report)
                continue
            score = value[0]
        quad, from_seg, problem = _record_box(rec, use_segmentation)
        if quad is None:
            _fail(RecordError(src, None, f"{where}: {problem}"), "bad_bbox", strict, report)
            continue
        any_quad |= from_seg
        per_image.setdefault(name, []).append((quad, label, score))
        report.objects += 1

    kind: Literal["hbb", "quad"] = "quad" if any_quad else "hbb"
    out = []
    for name, objs in per_image.items():
        quads = np.array([o[0] for o in objs], dtype=np.float64).reshape(-1, 8)
        out.append(
            ImageDetections(
                name,
                boxes=quads if kind == "quad" else quad_to_hbb(quads),
                labels=[o[1] for o in objs],
                scores=[o[2] for o in objs] if with_scores else None,
                box_kind=kind,
            )
        )
    return out


def _xywh(quads: np.ndarray) -> list[list[float]]:
    hbb = quad_to_hbb(quads).reshape(-1, 4)
    return np.stack([hbb[:, 0], hbb[:, 1], hbb[:, 2] - hbb[:, 0], hbb[:, 3] - hbb[:, 1]], axis=1).tolist()


def _dump(obj: Any, path: str | os.PathLike[str]) -> Path:
    try:
        # allow_nan=False: NaN/Infinity are not JSON and pycocotools' json.load would accept them silently
        text = json.dumps(obj, allow_nan=False, separators=(",", ":"))
    except ValueError as err:
        raise InvalidInputError(f"Expected finite boxes and scores to write JSON, but got: {err}") from None
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


def write_coco_ground_truth(
    annotations: Iterable[ImageAnnotations],
    path: str | os.PathLike[str],
    classes: Sequence[str] | None = None,
    *,
    file_ext: str = ".png",
    image_sizes: Mapping[str, tuple[int, int]] | None = None,
    with_segmentation: bool = True,
    crowd_from_difficult: bool = True,
) -> Path:
    """Write per-image ground truth as a COCO detection JSON (atomically).

    Images get ids ``1..N`` in the given order and ``file_name = image_id + file_ext``
    (so :func:`read_coco_ground_truth` gives the same ids back); categories get ids
    ``1..C`` in ``classes`` order (the mmrotate ``dota2coco`` convention). Each
    annotation has the enclosing ``bbox`` ``[x, y, w, h]``, ``area = w * h``,
    and, with ``with_segmentation``, the quad as ``segmentation [[x1, ..., y4]]``.

    Args:
        annotations: per-image ground truth.
        path: output JSON file; parent folders are created.
        classes: all class names (ids follow this order); ``None``: the sorted
            labels found.
        file_ext: extension appended to image ids in ``file_name``.
        image_sizes: optional ``image_id -> (width, height)`` to fill in.
        with_segmentation: write the quad as a polygon segmentation.
        crowd_from_difficult: ``iscrowd = 1`` where ``difficult != 0`` (the
            reader's inverse); ``False`` writes ``iscrowd = 0`` everywhere.

    Returns:
        The path written.

    Example:
        >>> import tempfile, pathlib, json
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "gt.json"
        >>> gt = ImageAnnotations("P1", boxes=[[0, 0, 4, 2]], labels=["ship"], box_kind="hbb")
        >>> _ = write_coco_ground_truth([gt], p)
        >>> json.loads(p.read_text())["annotations"][0]["bbox"]
        [0.0, 0.0, 4.0, 2.0]
    """
    anns = list(annotations)
    class_list = sorted({label for a in anns for label in a.labels}) if classes is None else [str(c) for c in classes]
    if len(set(class_list)) != len(class_list):
        raise InvalidInputError(f"Expected `classes` without duplicates, but got {class_list}")
    cat_ids = {c: i + 1 for i, c in enumerate(class_list)}
    images, records = [], []
    seen: set[str] = set()
    for number, ann in enumerate(anns, start=1):
        if ann.image_id in seen:
            raise InvalidInputError(f"Expected unique image ids, but {ann.image_id!r} appears twice")
        seen.add(ann.image_id)
        image: dict[str, Any] = {"id": number, "file_name": ann.image_id + file_ext}
        if image_sizes is not None and ann.image_id in image_sizes:
            width, height = image_sizes[ann.image_id]
            image.update(width=int(width), height=int(height))
        images.append(image)
        boxes = _xywh(ann.boxes)
        for label, xywh, quad, flag in zip(ann.labels, boxes, ann.boxes.tolist(), ann.difficult.tolist(), strict=True):
            if label not in cat_ids:
                raise InvalidInputError(
                    f"Expected every label to be one of `classes`, but got {label!r} in image {ann.image_id!r}"
                )
            rec: dict[str, Any] = {
                "id": len(records) + 1,
                "image_id": number,
                "category_id": cat_ids[label],
                "bbox": xywh,
                "area": xywh[2] * xywh[3],
                "iscrowd": int(bool(flag)) if crowd_from_difficult else 0,
            }
            if with_segmentation:
                rec["segmentation"] = [quad]
            records.append(rec)
    coco = {
        "info": {"description": "written by rsmetrics"},
        "licenses": [],
        "images": images,
        "annotations": records,
        "categories": [{"id": cat_ids[c], "name": c, "supercategory": c} for c in class_list],
    }
    return _dump(coco, path)


def write_coco_results(
    detections: Iterable[ImageDetections],
    path: str | os.PathLike[str],
    gt_index: CocoIndex | str | os.PathLike[str] | Mapping[str, Any],
    *,
    image_key: ImageKey = "file_stem",
    with_segmentation: bool = False,
) -> Path:
    """Write detections as a COCO results list (atomically), for pycocotools ``loadRes``.

    Image and category names are mapped to COCO ids through ``gt_index`` (the
    ground truth the results will be evaluated against). Each record has the
    enclosing ``bbox`` ``[x, y, w, h]`` and ``score`` (1 where scores are missing).

    Args:
        detections: per-image predictions.
        path: output JSON file; parent folders are created.
        gt_index: a :class:`CocoIndex` or the COCO ground truth (path or dict).
        image_key: only used when ``gt_index`` is not a :class:`CocoIndex`.
        with_segmentation: also write the quad as ``segmentation``.

    Returns:
        The path written.

    Raises:
        InvalidInputError: for an image or label unknown to the ground truth.

    Example:
        >>> import tempfile, pathlib, json
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "res.json"
        >>> gt = {"images": [{"id": 4, "file_name": "P1.png"}], "categories": [{"id": 9, "name": "ship"}]}
        >>> det = ImageDetections("P1", boxes=[[1, 1, 3, 2]], labels=["ship"], scores=[0.5], box_kind="hbb")
        >>> _ = write_coco_results([det], p, gt)
        >>> json.loads(p.read_text())
        [{'image_id': 4, 'category_id': 9, 'bbox': [1.0, 1.0, 2.0, 1.0], 'score': 0.5}]
    """
    index = coco_index(gt_index, image_key=image_key)
    records = []
    for det in detections:
        number = index.image_numbers.get(det.image_id)
        if number is None:
            raise InvalidInputError(f"Expected image ids of the ground truth, but got {det.image_id!r}")
        scores = [1.0] * len(det) if det.scores is None else det.scores.tolist()
        for label, xywh, quad, score in zip(det.labels, _xywh(det.boxes), det.boxes.tolist(), scores, strict=True):
            cat = index.category_ids.get(label)
            if cat is None:
                raise InvalidInputError(
                    f"Expected every label to be a ground-truth category, but got {label!r} in image {det.image_id!r}"
                )
            rec: dict[str, Any] = {"image_id": number, "category_id": cat, "bbox": xywh, "score": score}
            if with_segmentation:
                rec["segmentation"] = [quad]
            records.append(rec)
    return _dump(records, path)
