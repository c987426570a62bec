"""refGeo (GeoGround) referring expressions -> :class:`~rsformat.records.GroundingRecord`.

Layout (dataset-formats.md §5)::

    refGeo/
      metainfo_v2/<name>_train_v2.jsonl     train
      metainfo/<name>_{val,test}.jsonl      val, test
      images/<dataset>/<image_id>
      masks/<dataset>/<image stem>_<question_id>.png   (optional SAM masks)

One JSON line per expression: ``question_id``, ``image_id``, ``dataset``,
``question``, ``bbox`` ``[x1, y1, x2, y2]`` and ``poly`` ``[[x, y] x 4]`` in
original pixels, ``image_width``, ``image_height``, ``mask_exists``.

Options: ``datasets`` (names to keep, e.g. ``["dior_rsvg"]``),
``check_images`` (default ``True``: a record whose image is absent is
skipped as ``missing_image``).

Example:
    >>> checked_hbb([-5, 10, 50, 20], 40, 40)
    ((0.0, 10.0, 40.0, 20.0), True)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rsformat.converters._llava import RecordError, image_size, iter_jsonl, note, relative, resolve_image
from rsformat.converters.base import ConversionReport, Converter, register
from rsformat.records import GroundingRecord
from rsmetrics.geometry import canonical_quad, quad_area

__all__ = ["RefGeoConverter", "checked_hbb", "checked_quad", "record_size"]

_SPLIT_FILES: dict[str, tuple[str, re.Pattern[str]]] = {
    "train": ("metainfo_v2", re.compile(r"^(?P<name>.+)_train_v2\.jsonl$")),
    "val": ("metainfo", re.compile(r"^(?P<name>.+)_val\.jsonl$")),
    "test": ("metainfo", re.compile(r"^(?P<name>.+)_test\.jsonl$")),
}


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"not a number: {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"not finite: {value!r}")
    return out


def checked_hbb(values: Any, width: float, height: float) -> tuple[tuple[float, ...], bool]:
    """An hbb ``(x1, y1, x2, y2)`` with ordered corners, clipped to the image.

    Returns:
        The box and whether it was clipped.

    Raises:
        RecordError: ``bad_box`` (not 4 finite numbers) or ``degenerate_box``
            (no area left inside the image).

    Example:
        >>> checked_hbb([30, 40, 10, 20], 100, 100)
        ((10.0, 20.0, 30.0, 40.0), False)
        >>> checked_hbb([10, 10, 10, 20], 100, 100)  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        ...
        rsformat.converters._llava.RecordError: degenerate_box: ...
    """
    if not isinstance(values, (list, tuple)) or len(values) != 4:
        raise RecordError("bad_box", f"expected [x1, y1, x2, y2], got {values!r}"[:200])
    try:
        x1, y1, x2, y2 = (_number(v) for v in values)
    except (TypeError, ValueError) as e:
        raise RecordError("bad_box", str(e)) from None
    x1, x2 = min(x1, x2), max(x1, x2)
    y1, y2 = min(y1, y2), max(y1, y2)
    width, height = float(width), float(height)
    box = (min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width), min(max(y2, 0.0), height))
    if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
        raise RecordError("degenerate_box", f"{values!r} has no area inside the {width:g}x{height:g} image")
    return box, box != (x1, y1, x2, y2)


def checked_quad(values: Any, width: float, height: float) -> tuple[tuple[float, ...] | None, str]:
    """A canonical quad from ``[[x, y] x 4]`` (or 8 numbers), vertices clipped to the image.

    Returns:
        ``(quad, status)``: status ``"ok"``, ``"clipped"``, or, with ``quad``
        ``None``, ``"bad"`` (not 4 finite points) or ``"degenerate"`` (no area).

    Example:
        >>> checked_quad([[10, 0], [10, 10], [0, 10], [0, 0]], 100, 100)
        ((0.0, 0.0, 10.0, 0.0, 10.0, 10.0, 0.0, 10.0), 'ok')
    """
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None, "bad"
    if arr.shape != (8,) or not np.isfinite(arr).all():
        return None, "bad"
    clipped = arr.copy()
    clipped[0::2] = np.clip(clipped[0::2], 0.0, width)
    clipped[1::2] = np.clip(clipped[1::2], 0.0, height)
    quad = canonical_quad(clipped)
    if abs(float(quad_area(quad))) <= 0.0:
        return None, "degenerate"
    return tuple(float(v) for v in quad), "clipped" if not np.array_equal(clipped, arr) else "ok"


def record_size(item: dict[str, Any], width_key: str, height_key: str, image: Path | None) -> tuple[int, int]:
    """Image size from the record's fields, else from the image header.

    Raises:
        RecordError: ``missing_image_size``.
    """
    w, h = item.get(width_key), item.get(height_key)
    try:
        if w is not None and h is not None:
            wi, hi = int(_number(w)), int(_number(h))
            if wi > 0 and hi > 0:
                return wi, hi
    except (TypeError, ValueError):
        pass
    size = image_size(image) if image is not None and image.is_file() else None
    if size is None:
        raise RecordError("missing_image_size", f"no valid {width_key}/{height_key} and no readable image")
    return size


@register
class RefGeoConverter(Converter):
    """refGeo: DIOR-RSVG, RSVG, GeoChat, VRSBench and AVVG referring expressions."""

    name: ClassVar[str] = "refgeo"
    family: ClassVar[str] = "grounding"
    description: ClassVar[str] = (
        "refGeo (GeoGround): 161k referring expressions over 80k images merged from DIOR-RSVG, RSVG, "
        "GeoChat, VRSBench and AVVG, each with an hbb, a quad and an optional SAM mask."
    )
    license: ClassVar[str] = "see erenzhou/refGeo and the terms of each merged source (academic use)"
    citation: ClassVar[str] = (
        "@article{zhou2024geoground, title={GeoGround: A Unified Large Vision-Language Model for Remote "
        "Sensing Visual Grounding}, author={Zhou, Yue and others}, journal={arXiv:2411.11904}, year={2024}}"
    )

    def _files(self, split: str) -> list[tuple[str, Path]]:
        folder, pattern = _SPLIT_FILES[split]
        keep = self.options.get("datasets")
        out = []
        base = self.root / folder
        if base.is_dir():
            for path in sorted(base.glob("*.jsonl")):
                m = pattern.match(path.name)
                if m and (keep is None or m["name"] in keep):
                    out.append((m["name"], path))
        return out

    def splits(self) -> list[str]:
        """The splits with at least one metainfo file."""
        return [s for s in _SPLIT_FILES if self._files(s)]

    def records(self, split: str, report: ConversionReport) -> Iterator[GroundingRecord]:
        """Yield one record per expression of ``split``."""
        if split not in _SPLIT_FILES:
            raise ValueError(f"Expected `split` to be one of {list(_SPLIT_FILES)}, but got {split!r}")
        for file_name, path in self._files(split):
            for where, item in iter_jsonl(path, report):
                try:
                    rec = self._record(item, file_name, split, where, report)
                except RecordError as e:
                    report.skip(where, e.reason, e.detail)
                    continue
                report.records_out += 1
                yield rec

    def _record(
        self, item: dict[str, Any], file_name: str, split: str, where: str, report: ConversionReport
    ) -> GroundingRecord:
        check = bool(self.options.get("check_images", True))
        dataset = str(item.get("dataset") or file_name)
        image_id, qid = item.get("image_id"), item.get("question_id")
        expression = item.get("question")
        if not isinstance(image_id, str) or not image_id or qid is None:
            raise RecordError("missing_field", "image_id or question_id")
        if not isinstance(expression, str) or not expression.strip():
            raise RecordError("missing_expression")
        image = resolve_image(self.root, f"images/{dataset}/{image_id}", report=report, where=where, check=check)
        width, height = record_size(item, "image_width", "image_height", image)
        hbb, clipped = checked_hbb(item.get("bbox"), width, height)
        if clipped:
            note(report, where, "boxes_clipped", f"bbox {item.get('bbox')!r} in {width}x{height}")
        quad = None
        if item.get("poly") is not None:
            quad, status = checked_quad(item["poly"], width, height)
            if status == "clipped":
                note(report, where, "quads_clipped")
            elif status in ("bad", "degenerate"):
                note(report, where, f"{status}_poly_dropped", repr(item["poly"])[:120])
        mask = None
        if item.get("mask_exists"):
            mask_rel = f"masks/{dataset}/{Path(image_id).stem}_{qid}.png"
            try:
                mask_path: Path | None = resolve_image(self.root, mask_rel, check=False)
            except RecordError:
                mask_path = None
            if mask_path is not None and mask_path.is_file():
                mask = relative(self.root, mask_path)
            else:
                note(report, where, "mask_missing", mask_rel)
        return GroundingRecord(
            id=f"{dataset}/{qid}",
            source=f"refgeo/{dataset}",
            split=split,
            image=relative(self.root, image),
            width=width,
            height=height,
            expression=expression.strip(),
            hbb=hbb,
            quad=quad,
            mask=mask,
        )
