"""DIOR (horizontal boxes, ``dior``) and DIOR-R (oriented boxes, ``dior_r``).

Layout::

    JPEGImages-trainval/00001.jpg, JPEGImages-test/11726.jpg     (800x800)
    Annotations/Oriented Bounding Boxes/00001.xml                 (DIOR-R: <robndbox> corners)
    Annotations/Horizontal Bounding Boxes/00001.xml               (DIOR: VOC <bndbox>)
    ImageSets/Main/train.txt, val.txt, test.txt                   (one image id a line)

The split files choose the images; without ``ImageSets/Main`` the image
folders are the splits (``trainval``, ``test``). Class names are
lower-cased like mmrotate does (each changed spelling counted in
``labels_mapped``). An object without ``<robndbox>`` falls back to its
``<bndbox>`` (``hbb_fallback``); ``dior`` uses ``<bndbox>``, or the
enclosing box of ``<robndbox>`` when only that is given.

Example:
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for sub in ("JPEGImages-trainval", "Annotations/Horizontal Bounding Boxes", "ImageSets/Main"):
    ...     (root / sub).mkdir(parents=True)
    >>> Image.new("RGB", (80, 80)).save(root / "JPEGImages-trainval" / "00001.jpg")
    >>> _ = (root / "ImageSets/Main/train.txt").write_text("00001\\n")
    >>> xml = "<annotation><object><name>Airplane</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>9</xmax><ymax>6</ymax></bndbox></object></annotation>"
    >>> _ = (root / "Annotations/Horizontal Bounding Boxes/00001.xml").write_text(xml)
    >>> report = ConversionReport("dior")
    >>> rec = next(DiorConverter(root).records("train", report))
    >>> rec.categories, rec.objects[0].hbb, report.labels_mapped
    (('airplane',), (1.0, 2.0, 9.0, 6.0), {'Airplane -> airplane': 1})
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rsformat.converters._shared import build_objects, image_size_or_skip, inside_root, parse_xml, xml_float, xml_text
from rsformat.converters.base import ConversionReport, Converter, register
from rsformat.records import DetectionRecord
from rsmetrics.geometry import hbb_to_quad, quad_to_hbb

__all__ = ["DIOR_CLASSES", "DiorConverter", "DiorRConverter"]

DIOR_CLASSES: tuple[str, ...] = (
    "airplane", "airport", "baseballfield", "basketballcourt", "bridge", "chimney",
    "expressway-service-area", "expressway-toll-station", "dam", "golffield", "groundtrackfield",
    "harbor", "overpass", "ship", "stadium", "storagetank", "tenniscourt", "trainstation", "vehicle",
    "windmill",
)  # fmt: skip

# searched in this order; mmrotate's test data names the folder JPEGImage
_IMAGE_DIRS = ("JPEGImages-trainval", "JPEGImages-test", "JPEGImages", "JPEGImage")
_IMAGE_EXTS = (".jpg", ".jpeg", ".png")
_CORNERS = (
    "x_left_top", "y_left_top", "x_right_top", "y_right_top",
    "x_right_bottom", "y_right_bottom", "x_left_bottom", "y_left_bottom",
)  # fmt: skip


class _DiorBase(Converter):
    """Shared reading of the DIOR folders; subclasses pick the annotation folder and box."""

    family: ClassVar[str] = "detection"
    license: ClassVar[str] = "DIOR terms: academic use only"
    citation: ClassVar[str] = (
        "Li et al., Object Detection in Optical Remote Sensing Images: A Survey and a New Benchmark, ISPRS J. 2020"
    )
    annotation_dir: ClassVar[str] = ""
    oriented: ClassVar[bool] = False

    def __init__(self, root: str | Path, **options: Any) -> None:
        super().__init__(root, **options)
        self.classes: tuple[str, ...] = tuple(options.get("classes") or DIOR_CLASSES)
        self.allow_unknown = bool(options.get("allow_unknown", False))

    def _split_files(self) -> dict[str, Path]:
        folder = self.root / "ImageSets" / "Main"
        if not folder.is_dir():
            return {}
        return {p.stem: p for p in sorted(folder.glob("*.txt")) if p.is_file()}

    def splits(self) -> list[str]:
        """The ``ImageSets/Main/*.txt`` names, or the image folders' suffixes without them."""
        files = self._split_files()
        if files:
            return list(files)
        return [d.split("-", 1)[1] for d in _IMAGE_DIRS[:2] if (self.root / d).is_dir()]

    def _ids(self, split: str) -> list[tuple[str, str]]:
        """``(image id, where)`` pairs of a split, in file order."""
        files = self._split_files()
        if files:
            if split not in files:
                raise ValueError(f"Expected a split among {sorted(files)}, but got {split!r}")
            path = files[split]
            lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
            rel = path.relative_to(self.root).as_posix()
            return [(line.strip(), f"{rel}:{n}") for n, line in enumerate(lines, start=1) if line.strip()]
        folder = self.root / f"JPEGImages-{split}"
        if not folder.is_dir():
            raise ValueError(f"Expected a split among {self.splits()}, but got {split!r}")
        return [(p.stem, p.name) for p in sorted(folder.iterdir()) if p.suffix.lower() in _IMAGE_EXTS]

    def _find_image(self, image_id: str, where: str, report: ConversionReport) -> tuple[Path, str] | None:
        for folder in _IMAGE_DIRS:
            for ext in _IMAGE_EXTS:
                rel = f"{folder}/{image_id}{ext}"
                path = inside_root(self.root, rel, report, where)
                if path is None:  # the id escapes the root: counted once, not per folder
                    return None
                if path.is_file():
                    return path, rel
        report.skip(where, "missing_image", f"no image {image_id}.jpg in {', '.join(_IMAGE_DIRS)}")
        return None

    def records(self, split: str, report: ConversionReport) -> Iterator[DetectionRecord]:
        """One record per image id of the split."""
        seen: set[str] = set()
        for image_id, where in self._ids(split):
            report.records_in += 1
            if image_id in seen:
                report.skip(where, "duplicate_id", f"image id {image_id} is listed twice")
                continue
            seen.add(image_id)
            record = self._record(split, image_id, where, report)
            if record is not None:
                report.records_out += 1
                yield record

    def _record(self, split: str, image_id: str, where: str, report: ConversionReport) -> DetectionRecord | None:
        found = self._find_image(image_id, where, report)
        if found is None:
            return None
        image, rel_image = found
        size = image_size_or_skip(image, report, rel_image)
        if size is None:
            return None
        width, height = size
        # the original DIOR archive keeps its VOC files directly in Annotations/
        candidates = [f"Annotations/{self.annotation_dir}/{image_id}.xml"]
        if not self.oriented:
            candidates.append(f"Annotations/{image_id}.xml")
        rel_ann = next((c for c in candidates if (self.root / c).is_file()), candidates[0])
        ann = inside_root(self.root, rel_ann, report, where)
        objects: tuple = ()
        if ann is None or not ann.is_file():
            report.count("images_without_labels")
        else:
            root = parse_xml(ann, report, rel_ann)
            if root is None:
                return None
            quads, names, flags = [], [], []
            for obj in root.iter("object"):
                quads.append(self._quad(obj, report))
                names.append(xml_text(obj, "name"))
                flags.append(int(xml_float(obj, "difficult") == 1))
            objects = build_objects(
                np.array(quads).reshape(-1, 8),
                names,
                flags,
                width=width,
                height=height,
                report=report,
                where=rel_ann,
                classes=self.classes,
                allow_unknown=self.allow_unknown,
                lower_case=True,
            )
        if not objects:
            report.count("empty_images_kept")
        return DetectionRecord(image_id, self.name, split, rel_image, width, height, objects)

    def _quad(self, obj: Any, report: ConversionReport) -> np.ndarray:
        """The object's quad; NaN coordinates (a degenerate box, skipped later) if it has no box."""
        rob = obj.find("robndbox")
        bnd = obj.find("bndbox")
        rquad = np.array([xml_float(rob, c) for c in _CORNERS]) if rob is not None else None
        hquad = (
            hbb_to_quad(np.array([xml_float(bnd, c) for c in ("xmin", "ymin", "xmax", "ymax")]))
            if bnd is not None
            else None
        )
        if self.oriented:
            if rquad is not None:
                return rquad
            if hquad is not None:
                report.count("hbb_fallback")
                return hquad
        else:
            if hquad is not None:
                return hquad
            if rquad is not None:
                report.count("hbb_from_robndbox")
                return hbb_to_quad(quad_to_hbb(rquad))
        return np.full(8, np.nan)


@register
class DiorRConverter(_DiorBase):
    """DIOR-R: oriented boxes from ``Annotations/Oriented Bounding Boxes``."""

    name: ClassVar[str] = "dior_r"
    description: ClassVar[str] = "DIOR-R: oriented object detection in optical remote sensing images (20 classes)."
    annotation_dir: ClassVar[str] = "Oriented Bounding Boxes"
    oriented: ClassVar[bool] = True


@register
class DiorConverter(_DiorBase):
    """DIOR: horizontal VOC boxes from ``Annotations/Horizontal Bounding Boxes``."""

    name: ClassVar[str] = "dior"
    description: ClassVar[str] = "DIOR: horizontal object detection in optical remote sensing images (20 classes)."
    annotation_dir: ClassVar[str] = "Horizontal Bounding Boxes"
    oriented: ClassVar[bool] = False
