"""FAIR1M v1.0/v2.0: fine-grained oriented objects in Gaofen images, one XML file per image.

Layouts (both found under every top-level split folder)::

    <split>/images/*.tif  +  <split>/labelXml/*.xml
    <split>/part1/images/*.tif  +  <split>/part1/labelXml/*.xml     (torchgeo, the original archives)

Each ``<object>`` has ``<possibleresult><name>`` (class names with spaces, such
as ``Liquid Cargo Ship``, kept as they are) and ``<points>`` with five
``x,y`` points, the fifth closing the ring: the first four are the quad.
XML is parsed with defusedxml; a file declaring entities (the "billion
laughs" bomb) is refused and counted (``unsafe_xml``) and the run goes on.

Example:
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for sub in ("images", "labelXml"):
    ...     (root / "train" / "part1" / sub).mkdir(parents=True)
    >>> Image.new("RGB", (32, 32)).save(root / "train" / "part1" / "images" / "0.tif")
    >>> pts = "".join(f"<point>{x},{y}</point>" for x, y in [(1, 1), (9, 1), (9, 5), (1, 5), (1, 1)])
    >>> xml = f"<annotation><objects><object><possibleresult><name>Small Car</name></possibleresult><points>{pts}</points></object></objects></annotation>"
    >>> _ = (root / "train" / "part1" / "labelXml" / "0.xml").write_text(xml)
    >>> rec = next(Fair1mConverter(root).records("train", ConversionReport("fair1m")))
    >>> rec.id, rec.image, rec.categories, rec.objects[0].hbb
    ('0', 'train/part1/images/0.tif', ('Small Car',), (1.0, 1.0, 9.0, 5.0))
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rsformat.converters._shared import (
    IMAGE_EXTENSIONS,
    build_objects,
    checked_image,
    files_by_stem,
    parse_xml,
    xml_text,
)
from rsformat.converters.base import ConversionReport, Converter, register
from rsformat.records import DetectionRecord

__all__ = ["FAIR1M_CLASSES", "Fair1mConverter"]

FAIR1M_CLASSES: tuple[str, ...] = (
    "Boeing737", "Boeing747", "Boeing777", "Boeing787", "C919", "A220", "A321", "A330", "A350", "ARJ21",
    "other-airplane",
    "Passenger Ship", "Motorboat", "Fishing Boat", "Tugboat", "Engineering Ship", "Liquid Cargo Ship",
    "Dry Cargo Ship", "Warship", "other-ship",
    "Small Car", "Bus", "Cargo Truck", "Dump Truck", "Van", "Trailer", "Tractor", "Excavator",
    "Truck Tractor", "other-vehicle",
    "Basketball Court", "Tennis Court", "Football Field", "Baseball Field",
    "Intersection", "Roundabout", "Bridge",
)  # fmt: skip

_MAX_DEPTH = 3  # <split>/part1/labelXml is two levels below the split folder


def _data_dirs(split_dir: Path) -> list[Path]:
    """Folders under ``split_dir`` (itself included) that hold ``images/`` or ``labelXml/``."""
    out = []
    frontier = [split_dir]
    for _ in range(_MAX_DEPTH):
        nxt = []
        for d in frontier:
            if (d / "images").is_dir() or (d / "labelXml").is_dir():
                out.append(d)
            nxt.extend(sorted(c for c in d.iterdir() if c.is_dir() and c.name not in ("images", "labelXml")))
        frontier = nxt
    return out


@register
class Fair1mConverter(Converter):
    """FAIR1M XML labels (``<points>`` rings) with their GeoTIFF/TIFF images.

    Options:
        classes: the class list (default: the 37 FAIR1M classes).
        allow_unknown: keep objects whose class is not in the list.
    """

    name: ClassVar[str] = "fair1m"
    family: ClassVar[str] = "detection"
    description: ClassVar[str] = (
        "FAIR1M: fine-grained object recognition in high-resolution remote sensing imagery (37 classes)."
    )
    license: ClassVar[str] = "FAIR1M terms: academic use only"
    citation: ClassVar[str] = (
        "Sun et al., FAIR1M: A Benchmark Dataset for Fine-grained Object Recognition in High-Resolution Remote Sensing Imagery, ISPRS J. 2022"
    )

    def __init__(self, root: str | Path, **options: Any) -> None:
        super().__init__(root, **options)
        self.classes: tuple[str, ...] = tuple(options.get("classes") or FAIR1M_CLASSES)
        self.allow_unknown = bool(options.get("allow_unknown", False))

    def splits(self) -> list[str]:
        """Top-level folders holding (directly or in ``part*/``) ``images/`` or ``labelXml/``."""
        return [d.name for d in sorted(self.root.iterdir()) if d.is_dir() and _data_dirs(d)]

    def records(self, split: str, report: ConversionReport) -> Iterator[DetectionRecord]:
        """One record per image of the split (parts in name order, images by id)."""
        split_dir = self.root / split
        if split not in self.splits():
            raise ValueError(f"Expected a split among {self.splits()}, but got {split!r}")
        seen: set[str] = set()
        for part in _data_dirs(split_dir):
            images = files_by_stem(part / "images", IMAGE_EXTENSIONS)
            labels = files_by_stem(part / "labelXml", (".xml",))
            for stem in sorted(images.keys() | labels.keys()):
                report.records_in += 1
                image, label = images.get(stem), labels.get(stem)
                first = label if label is not None else image
                where = first.relative_to(self.root).as_posix() if first is not None else stem
                if stem in seen:
                    report.skip(where, "duplicate_id", f"image id {stem} was already read in another part")
                    continue
                record = self._record(split, stem, image, label, where, report)
                if record is not None:
                    seen.add(stem)
                    report.records_out += 1
                    yield record

    def _record(
        self, split: str, stem: str, image: Path | None, label: Path | None, where: str, report: ConversionReport
    ) -> DetectionRecord | None:
        checked = checked_image(self.root, stem, image, label, where, report)
        if checked is None:
            return None
        rel_image, width, height = checked
        objects: tuple = ()
        if label is None:
            report.count("images_without_labels")
        else:
            root = parse_xml(label, report, where)
            if root is None:
                return None
            quads, names = [], []
            for i, obj in enumerate(root.iter("object")):
                quad = self._quad(obj, f"{where} object {i}", report)
                if quad is None:
                    continue
                quads.append(quad)
                names.append(xml_text(obj, "possibleresult/name"))
            objects = build_objects(
                np.array(quads).reshape(-1, 8),
                names,
                [0] * len(names),
                width=width,
                height=height,
                report=report,
                where=where,
                classes=self.classes,
                allow_unknown=self.allow_unknown,
            )
        if not objects:
            report.count("empty_images_kept")
        return DetectionRecord(stem, self.name, split, rel_image, width, height, objects)

    @staticmethod
    def _quad(obj: Any, where: str, report: ConversionReport) -> list[float] | None:
        """The first four ``x,y`` points of the ring (the fifth repeats the first)."""
        values: list[float] = []
        for point in obj.iter("point"):
            parts = (point.text or "").split(",")
            try:
                values.extend(float(v) for v in parts)
            except ValueError:
                report.skip(where, "bad_number", f"point {point.text!r} is not 'x,y'")
                return None
            if len(parts) != 2:
                report.skip(where, "bad_number", f"point {point.text!r} is not 'x,y'")
                return None
        if len(values) < 8:
            report.skip(where, "bad_points", f"expected at least 4 points, got {len(values) // 2}")
            return None
        return values[:8]
