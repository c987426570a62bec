"""Helpers shared by the detection converters: image headers, safe XML, object checks.

Private module (its name starts with ``_``, so the package does not register it
as a converter). Every helper counts what it rejects in the
:class:`~rsformat.converters.base.ConversionReport` instead of raising, so one
bad file never stops a conversion.

Example:
    >>> report = ConversionReport("demo")
    >>> objs = build_objects(
    ...     [[0, 0, 4, 0, 4, 2, 0, 2], [0, 0, 0, 0, 0, 0, 0, 0]], ["ship", "ship"], [0, 0],
    ...     width=10, height=10, report=report, where="a.txt")
    >>> len(objs), report.skipped
    (1, {'degenerate_box': 1})
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as safe_et
import numpy as np
from defusedxml import DefusedXmlException
from PIL import Image, UnidentifiedImageError

from rsformat.converters.base import ConversionReport, UnsafePathError, safe_join
from rsformat.records import DetectionObject
from rsmetrics.io._common import ReadReport
from rsmetrics.iou import degenerate_mask

__all__ = [
    "IMAGE_EXTENSIONS",
    "build_objects",
    "fold_read_report",
    "image_size_or_skip",
    "inside_root",
    "large_images",
    "parse_xml",
    "read_image_size",
    "xml_float",
    "xml_text",
]

# the raster formats of the detection sources (DOTA png, FAIR1M tif, DIOR jpg, HRSC bmp)
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@contextlib.contextmanager
def large_images() -> Iterator[None]:
    """Let Pillow open the very large scenes of DOTA-v2 and GLH-Bridge (up to 20000 px a side).

    Pillow refuses images over ~179 megapixels as "decompression bombs"; these
    are genuine satellite scenes, so the limit is lifted for the duration only.

    Example:
        >>> with large_images():
        ...     Image.MAX_IMAGE_PIXELS is None
        True
    """
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def read_image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(width, height)`` from the image header, without decoding the pixels.

    Raises:
        OSError: if the file is not an image Pillow can identify.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.png"
        >>> Image.new("RGB", (7, 5)).save(p)
        >>> read_image_size(p)
        (7, 5)
    """
    with large_images(), Image.open(path) as img:
        width, height = img.size
    return int(width), int(height)


def image_size_or_skip(path: Path, report: ConversionReport, where: str) -> tuple[int, int] | None:
    """The image size, or ``None`` after counting a ``corrupt_image`` skip."""
    try:
        size = read_image_size(path)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        report.skip(where, "corrupt_image", f"{type(err).__name__}: {err}")
        return None
    if size[0] <= 0 or size[1] <= 0:
        report.skip(where, "corrupt_image", f"the image header says {size[0]}x{size[1]}")
        return None
    return size


def inside_root(root: Path, relative: str, report: ConversionReport, where: str) -> Path | None:
    """``root / relative`` resolved if it stays inside ``root`` (symlinks included), else ``None`` and a skip.

    Example:
        >>> report = ConversionReport("demo")
        >>> inside_root(Path("/data"), "../etc/passwd", report, "ImageSets/Main/test.txt:1"), report.skipped
        (None, {'unsafe_path': 1})
    """
    try:
        return safe_join(root, relative)
    except UnsafePathError as err:
        report.skip(where, "unsafe_path", str(err))
        return None


def parse_xml(path: Path, report: ConversionReport, where: str) -> Element | None:
    """The root element of an XML file, parsed by defusedxml; ``None`` after a counted skip.

    Entity declarations (the "billion laughs" bomb), external entities and DTDs
    are refused (``unsafe_xml``); malformed XML is ``bad_xml``.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "bomb.xml"
        >>> _ = p.write_text('<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;&a;</x>')
        >>> report = ConversionReport("demo")
        >>> parse_xml(p, report, "bomb.xml") is None, report.skipped
        (True, {'unsafe_xml': 1})
    """
    try:
        return safe_et.parse(path).getroot()
    except DefusedXmlException as err:
        report.skip(where, "unsafe_xml", f"refused ({type(err).__name__}): entity or DTD declarations are not allowed")
        return None
    except ParseError as err:
        report.skip(where, "bad_xml", str(err))
        return None
    except OSError as err:
        report.skip(where, "unreadable_file", str(err))
        return None


def xml_text(element: Element | None, path: str, default: str = "") -> str:
    """Stripped text of the child at ``path`` (ElementTree path syntax), or ``default``."""
    if element is None:
        return default
    child = element.find(path)
    if child is None or child.text is None:
        return default
    return child.text.strip()


def xml_float(element: Element | None, path: str) -> float:
    """The child's text as a float; NaN if absent or not a number (a degenerate box later)."""
    try:
        return float(xml_text(element, path, "nan"))
    except ValueError:
        return float("nan")


def fold_read_report(report: ConversionReport, read: ReadReport) -> None:
    """Add the skipped lines of an rsmetrics :class:`ReadReport` to the conversion report."""
    for reason, n in read.skipped.items():
        report.skipped[reason] = report.skipped.get(reason, 0) + n
    room = report.max_messages - len(report.messages)
    report.messages.extend(read.errors[: max(room, 0)])


def build_objects(
    quads: Any,
    labels: Sequence[str],
    difficult: Sequence[int] | Any,
    *,
    width: int,
    height: int,
    report: ConversionReport,
    where: str,
    classes: Collection[str] | None = None,
    allow_unknown: bool = False,
    lower_case: bool = False,
) -> tuple[DetectionObject, ...]:
    """Checked :class:`DetectionObject` s from ``(N, 8)`` quads in original pixels.

    Degenerate boxes (zero area, non-finite) are skipped as ``degenerate_box``;
    labels outside ``classes`` as ``unknown_category`` unless ``allow_unknown``.
    With ``lower_case`` labels are lower-cased and each change counted in
    ``report.labels_mapped``. Boxes reaching outside the image are kept as
    they are (annotators draw past the border) and counted in
    ``boxes_outside_image``.
    """
    q = np.asarray(quads, dtype=np.float64).reshape(-1, 8)
    flags = np.asarray(difficult, dtype=np.int64).reshape(-1)
    bad = degenerate_mask(q, "quad") if len(q) else np.zeros(0, bool)
    keep: list[int] = []
    names: list[str] = []
    for i, raw in enumerate(labels):
        name = raw.lower() if lower_case else raw
        if name != raw:
            report.mapped(raw, name)
        if bad[i]:
            report.skip(f"{where} object {i}", "degenerate_box", f"{name!r} has zero area or a non-finite coordinate")
            continue
        if classes is not None and name not in classes and not allow_unknown:
            report.skip(f"{where} object {i}", "unknown_category", f"{name!r} is not in the class list")
            continue
        xs, ys = q[i, 0::2], q[i, 1::2]
        if xs.min() < 0 or ys.min() < 0 or xs.max() > width or ys.max() > height:
            report.count("boxes_outside_image")
        keep.append(i)
        names.append(name)
    return DetectionObject.from_quads(names, q[keep], flags[keep])


def files_by_stem(folder: Path | None, extensions: tuple[str, ...]) -> dict[str, Path]:
    """``{stem: path}`` of the files of a folder with one of ``extensions`` (first in sorted order wins)."""
    if folder is None or not folder.is_dir():
        return {}
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in extensions and p.stem not in out:
            out[p.stem] = p
    return out


def checked_image(
    root: Path, stem: str, image: Path | None, label: Path | None, where: str, report: ConversionReport
) -> tuple[str, int, int] | None:
    """The image beside a label file, as ``(path relative to root, width, height)``, or ``None`` (counted).

    Skipped with a reason: no image by that stem (``missing_image``), an image or label reached
    through a link outside the root, an unreadable image header.
    """
    if image is None:
        report.skip(where, "missing_image", f"no image named {stem} beside the label file")
        return None
    rel_image = image.relative_to(root).as_posix()
    # a symlink in the image or label folder may point anywhere on the disk
    if inside_root(root, rel_image, report, rel_image) is None:
        return None
    if label is not None and inside_root(root, label.relative_to(root).as_posix(), report, where) is None:
        return None
    size = image_size_or_skip(image, report, rel_image)
    if size is None:
        return None
    return rel_image, size[0], size[1]
