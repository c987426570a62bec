"""COCO detection JSON (plain or oriented) -> :class:`~rsformat.records.DetectionRecord`.

Layout (dataset-formats.md §14.1; RSCoVLM ships DOTA-512 this way,
upstream-rscovlm.md §2.1-§2.2 (b))::

    <root>/trainval.json              {"images": [...], "annotations": [...], "categories": [...]}
    <root>/trainval/images/P0000__512__0___0.png

Parsing is :func:`rsmetrics.io.coco.read_coco_ground_truth` (lenient mode,
its skipped annotations counted in the report under the same reasons). An
annotation whose ``segmentation`` is a single 8-number polygon (mmrotate's
``dota2coco``, RSCoVLM's ``*_P2Bfmt*.json``) gives the quad; others give the
quad of ``bbox`` ``[x, y, w, h]``. ``iscrowd`` becomes ``difficult`` 1.
Images without annotations are kept (``empty_images_kept``). Category names
are the file's own, unchanged.

Splits: with the ``annotation`` option, one split (named by the ``split``
option, default the file's stem); without it, one split per ``*.json`` file
in the root, named by its stem.

Options:
    annotation: the JSON file, relative to the root.
    image_dir: the folder (relative to the root) that ``file_name`` is
        relative to; default the first of ``<stem>/images``, ``<stem>``,
        ``images`` and the root that exists.
    split: the split name (with ``annotation`` only).
    check_images: skip records whose image file is absent (default ``True``).
    source: the records' ``source`` (default ``"coco_detection"``; e.g. ``"dota"``).

The width and height come from the ``images`` entry when valid, else from the
image header.

Example:
    >>> import json, tempfile, pathlib
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "val" / "images").mkdir(parents=True)
    >>> Image.new("RGB", (64, 48)).save(root / "val" / "images" / "P1.png")
    >>> _ = (root / "val.json").write_text(json.dumps({
    ...     "images": [{"id": 1, "file_name": "P1.png", "width": 64, "height": 48}],
    ...     "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [1, 1, 8, 4]}],
    ...     "categories": [{"id": 2, "name": "ship"}]}))
    >>> conv = CocoDetectionConverter(root)
    >>> [(r.id, r.image, r.categories, r.objects[0].hbb) for r in conv.records("val", ConversionReport("coco"))]
    [('P1', 'val/images/P1.png', ('ship',), (1.0, 1.0, 9.0, 5.0))]
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from rsformat.converters._llava import RecordError, find_file, image_size, read_json, relative, resolve_image
from rsformat.converters._shared import build_objects, fold_read_report
from rsformat.converters.base import ConversionReport, Converter, register
from rsformat.records import DetectionRecord
from rsmetrics.errors import InvalidInputError
from rsmetrics.errors import RecordError as MetricsRecordError
from rsmetrics.io._common import ReadReport
from rsmetrics.io.coco import read_coco_ground_truth

__all__ = ["CocoDetectionConverter", "split_name"]


def split_name(stem: str) -> str:
    """A split name made of letters, digits and ``_`` (what the hub writer accepts).

    Example:
        >>> split_name("trainval_1024_P2Bfmt-dota.rbox")
        'trainval_1024_P2Bfmt_dota_rbox'
    """
    return re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_") or "train"


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if value > 0 else None


@register
class CocoDetectionConverter(Converter):
    """A COCO detection JSON and its image folder (oriented quads from ``segmentation``)."""

    name: ClassVar[str] = "coco_detection"
    family: ClassVar[str] = "detection"
    description: ClassVar[str] = (
        "A COCO detection JSON (bbox, or an 8-number segmentation polygon for oriented objects as in "
        "mmrotate's dota2coco and RSCoVLM's P2Bfmt files) with its images."
    )
    license: ClassVar[str] = "see the terms of the dataset the COCO file describes"

    def _files(self) -> dict[str, Path]:
        """Split name -> annotation file."""
        chosen = self.options.get("annotation")
        if chosen is not None:
            path = find_file(self.root, (), str(chosen))
            if path is None or not path.is_file():
                return {}
            return {split_name(str(self.options.get("split") or path.stem)): path}
        return {split_name(p.stem): p for p in sorted(self.root.glob("*.json"))}

    def _image_dir(self, annotation: Path) -> str:
        chosen = self.options.get("image_dir")
        if chosen is not None:
            return str(chosen)
        stem = annotation.stem
        return next((d for d in (f"{stem}/images", stem, "images") if (self.root / d).is_dir()), ".")

    def splits(self) -> list[str]:
        """One split per annotation file (see the module doc)."""
        return list(self._files())

    def records(self, split: str, report: ConversionReport) -> Iterator[DetectionRecord]:
        """One record per entry of ``images``, in file order."""
        path = self._files().get(split)
        if path is None:
            raise ValueError(f"Expected `split` to be one of {self.splits()}, but got {split!r}")
        data = read_json(path, report)
        if data is None:
            return
        read = ReadReport()
        try:
            # ids, not file stems: patches in different folders may share a stem
            annotations, _, read = read_coco_ground_truth(data, image_key="id", strict=False)
        except (InvalidInputError, MetricsRecordError) as err:
            report.skip(path.name, "bad_coco", str(err)[:200])
            return
        fold_read_report(report, read)
        images = data["images"]  # read_coco_ground_truth checked it is a list of objects with ids
        image_dir = self._image_dir(path)
        check = bool(self.options.get("check_images", True))
        for k, (entry, ann) in enumerate(zip(images, annotations)):
            report.records_in += 1
            where = f"{path.name} images[{k}]"
            try:
                record = self._record(entry, ann, image_dir, split, where, check, report)
            except RecordError as e:
                report.skip(where, e.reason, e.detail)
                continue
            report.records_out += 1
            yield record

    def _record(
        self,
        entry: Mapping[str, Any],
        ann: Any,
        image_dir: str,
        split: str,
        where: str,
        check: bool,
        report: ConversionReport,
    ) -> DetectionRecord:
        file_name = entry.get("file_name")
        if not isinstance(file_name, str) or not file_name.strip():
            raise RecordError("missing_image", "no file_name")
        file_name = file_name.replace("\\", "/")
        rel = file_name if image_dir in ("", ".") else f"{image_dir.rstrip('/')}/{file_name}"
        image = resolve_image(self.root, rel, report=report, where=where, check=check)
        width, height = _positive_int(entry.get("width")), _positive_int(entry.get("height"))
        if width is None or height is None:
            # the header is read only when the file does not say: big COCO files list every size
            size = image_size(image) if image.is_file() else None
            if size is None:
                raise RecordError("missing_image_size", "no valid width/height and no readable image")
            width, height = size
        objects = build_objects(
            ann.boxes, ann.labels, ann.difficult, width=width, height=height, report=report, where=where
        )
        if not objects:
            report.count("empty_images_kept")
        record_id = file_name.rsplit(".", 1)[0] if "." in file_name.rsplit("/", 1)[-1] else file_name
        source = str(self.options.get("source") or self.name)
        return DetectionRecord(record_id, source, split, relative(self.root, image), width, height, objects)
