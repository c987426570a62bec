"""HRSC2016: ships in Google Earth harbour images, rotated boxes in radians.

Layout::

    FullDataSet/AllImages/100000006.bmp
    FullDataSet/Annotations/100000006.xml
    ImageSets/trainval.txt, test.txt (also train.txt, val.txt)     one image id a line

Each ``<HRSC_Object>`` gives the rotated box ``mbox_cx, mbox_cy, mbox_w,
mbox_h, mbox_ang``, the angle in **radians**, measured from the image +x
axis towards +y (clockwise on screen) to the ``mbox_w`` side: our ``obb``
convention in degrees (checked on the real sample: the bow point
``header_x, header_y`` lies at one end of the ``w`` axis). Every object is
a ``ship`` (the level-1 class). Without ``ImageSets/`` every annotation file
forms the split ``all``.

Example:
    >>> import tempfile, pathlib, math
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for sub in ("FullDataSet/AllImages", "FullDataSet/Annotations"):
    ...     (root / sub).mkdir(parents=True)
    >>> Image.new("RGB", (100, 100)).save(root / "FullDataSet/AllImages/1.bmp")
    >>> obj = "<HRSC_Object><difficult>0</difficult><mbox_cx>50</mbox_cx><mbox_cy>50</mbox_cy><mbox_w>40</mbox_w><mbox_h>10</mbox_h><mbox_ang>0.5</mbox_ang></HRSC_Object>"
    >>> _ = (root / "FullDataSet/Annotations/1.xml").write_text(f"<HRSC_Image><HRSC_Objects>{obj}</HRSC_Objects></HRSC_Image>")
    >>> rec = next(Hrsc2016Converter(root).records("all", ConversionReport("hrsc2016")))
    >>> [round(v, 4) for v in rec.objects[0].obb], round(math.degrees(0.5), 4)
    ([50.0, 50.0, 40.0, 10.0, 28.6479], 28.6479)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np

from rsformat.converters._shared import build_objects, image_size_or_skip, inside_root, parse_xml, xml_float
from rsformat.converters.base import ConversionReport, Converter, register
from rsformat.records import DetectionRecord
from rsmetrics.geometry import obb_to_quad

__all__ = ["HRSC_CLASSES", "Hrsc2016Converter"]

HRSC_CLASSES: tuple[str, ...] = ("ship",)
_IMAGE_EXTS = (".bmp", ".png", ".jpg")
_ALL = "all"


@register
class Hrsc2016Converter(Converter):
    """HRSC2016 XML (``HRSC_Object`` rotated boxes) with the BMP images."""

    name: ClassVar[str] = "hrsc2016"
    family: ClassVar[str] = "detection"
    description: ClassVar[str] = "HRSC2016: high-resolution ship detection with rotated boxes."
    license: ClassVar[str] = "HRSC2016 terms: academic use only"
    citation: ClassVar[str] = (
        "Liu et al., A High Resolution Optical Satellite Image Dataset for Ship Recognition and Some New Baselines, ICPRAM 2017"
    )

    def _split_files(self) -> dict[str, Path]:
        folder = self.root / "ImageSets"
        return {p.stem: p for p in sorted(folder.glob("*.txt"))} if folder.is_dir() else {}

    def splits(self) -> list[str]:
        """``ImageSets/*.txt`` names, or ``["all"]``."""
        return list(self._split_files()) or [_ALL]

    def _ids(self, split: str) -> list[tuple[str, str]]:
        files = self._split_files()
        if not files:
            if split != _ALL:
                raise ValueError(f"Expected the split {_ALL!r}, but got {split!r}")
            folder = self.root / "FullDataSet" / "Annotations"
            return [(p.stem, p.name) for p in sorted(folder.glob("*.xml"))] if folder.is_dir() else []
        if split not in files:
            raise ValueError(f"Expected a split among {sorted(files)}, but got {split!r}")
        rel = files[split].relative_to(self.root).as_posix()
        lines = files[split].read_text(encoding="utf-8-sig", errors="replace").splitlines()
        return [(line.strip(), f"{rel}:{n}") for n, line in enumerate(lines, start=1) if line.strip()]

    def records(self, split: str, report: ConversionReport) -> Iterator[DetectionRecord]:
        """One record per image id of the split."""
        for image_id, where in self._ids(split):
            report.records_in += 1
            record = self._record(split, image_id, where, report)
            if record is not None:
                report.records_out += 1
                yield record

    def _record(self, split: str, image_id: str, where: str, report: ConversionReport) -> DetectionRecord | None:
        image = rel_image = None
        for ext in _IMAGE_EXTS:
            rel = f"FullDataSet/AllImages/{image_id}{ext}"
            path = inside_root(self.root, rel, report, where)
            if path is None:
                return None
            if path.is_file():
                image, rel_image = path, rel
                break
        if image is None or rel_image is None:
            report.skip(where, "missing_image", f"no image FullDataSet/AllImages/{image_id}.bmp")
            return None
        size = image_size_or_skip(image, report, rel_image)
        if size is None:
            return None
        width, height = size
        rel_ann = f"FullDataSet/Annotations/{image_id}.xml"
        ann = self.root / rel_ann
        objects: tuple = ()
        if not ann.is_file():
            report.count("images_without_labels")
        else:
            root = parse_xml(ann, report, rel_ann)
            if root is None:
                return None
            obbs, flags = [], []
            for obj in root.iter("HRSC_Object"):
                cx, cy, w, h, ang = (xml_float(obj, f"mbox_{k}") for k in ("cx", "cy", "w", "h", "ang"))
                obbs.append([cx, cy, w, h, math.degrees(ang)])
                flags.append(int(xml_float(obj, "difficult") == 1))
            obb = np.array(obbs, dtype=np.float64).reshape(-1, 5)
            with np.errstate(invalid="ignore"):
                quads = obb_to_quad(obb) if len(obb) else np.zeros((0, 8))
            objects = build_objects(
                quads,
                ["ship"] * len(obbs),
                flags,
                width=width,
                height=height,
                report=report,
                where=rel_ann,
                classes=HRSC_CLASSES,
            )
        if not objects:
            report.count("empty_images_kept")
        return DetectionRecord(image_id, self.name, split, rel_image, width, height, objects)
