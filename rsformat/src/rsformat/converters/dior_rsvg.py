"""DIOR-RSVG in its raw release -> :class:`~rsformat.records.GroundingRecord`.

Layout (dataset-formats.md §6)::

    DIOR_RSVG/
      Annotations/00001.xml ...     VOC-like, one <object> per expression
      JPEGImages/00001.jpg ...
      train.txt val.txt test.txt    one GLOBAL object index per line

A split file's integers index every ``<object>`` of every XML file, counted
in file order. The reference loader walks the folder with ``os.walk`` (no
guaranteed order); this converter counts in **sorted file-name order**, the
only reproducible choice, and reports indices past the last object
(``index_out_of_range``) and repeated ones (``duplicate_index``). A file that
cannot be parsed keeps its objects' indices (counted from its raw
``<object>`` tags, so later files stay aligned); listed indices inside it are
skipped as ``bad_xml``.

Each object holds ``<name>`` (a DIOR class), ``<bndbox>`` (``xmin ymin xmax
ymax``, original pixels) and ``<description>`` (the expression, kept as
written but stripped; the reference loader lower-cases it, a rendering
choice left to later steps).

Example:
    >>> DiorRsvgConverter.name, DiorRsvgConverter.family
    ('dior_rsvg', 'grounding')
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from rsformat.converters._llava import RecordError, note, relative, resolve_image
from rsformat.converters.base import ConversionReport, Converter, register
from rsformat.converters.refgeo import checked_hbb, record_size
from rsformat.records import GroundingRecord

__all__ = ["DiorRsvgConverter", "read_split_indices"]

_SPLITS = ("train", "val", "test")


def read_split_indices(path: Path, report: ConversionReport) -> set[int]:
    """The set of global object indices in a split file; bad and repeated lines are counted.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "test.txt"
        >>> _ = p.write_text("0\\n6\\nx\\n6\\n")
        >>> r = ConversionReport("demo")
        >>> sorted(read_split_indices(p, r)), r.skipped, r.counters
        ([0, 6], {'bad_index': 1}, {'duplicate_index': 1})
    """
    out: set[int] = set()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue
            try:
                index = int(text)
                if index < 0:
                    raise ValueError
            except ValueError:
                report.skip(f"{path.name}:{n}", "bad_index", repr(text[:40]))
                continue
            if index in out:
                note(report, f"{path.name}:{n}", "duplicate_index", str(index))
            out.add(index)
    return out


def _text(node: Element | None, tag: str) -> str | None:
    child = node.find(tag) if node is not None else None
    return child.text.strip() if child is not None and child.text is not None else None


@register
class DiorRsvgConverter(Converter):
    """DIOR-RSVG raw XML + global-index split files."""

    name: ClassVar[str] = "dior_rsvg"
    family: ClassVar[str] = "grounding"
    description: ClassVar[str] = (
        "DIOR-RSVG: 38,320 referring expressions on 17,402 DIOR images (800x800), one horizontal box each."
    )
    license: ClassVar[str] = "DIOR terms: academic research use only"
    citation: ClassVar[str] = (
        "@article{zhan2023rsvg, title={RSVG: Exploring Data and Models for Visual Grounding on Remote Sensing "
        "Data}, author={Zhan, Yang and Xiong, Zhitong and Yuan, Yuan}, journal={IEEE TGRS}, year={2023}}"
    )

    def splits(self) -> list[str]:
        """The splits whose ``<split>.txt`` exists."""
        return [s for s in _SPLITS if (self.root / f"{s}.txt").is_file()]

    def records(self, split: str, report: ConversionReport) -> Iterator[GroundingRecord]:
        """Yield the expressions whose global index is listed in ``<split>.txt``, in file order."""
        if split not in _SPLITS:
            raise ValueError(f"Expected `split` to be one of {list(_SPLITS)}, but got {split!r}")
        wanted = read_split_indices(self.root / f"{split}.txt", report)
        check = bool(self.options.get("check_images", True))
        index = 0
        for xml_path in sorted((self.root / "Annotations").glob("*.xml")):
            root_node, objects, count = self._objects(xml_path, report)
            if root_node is None:
                for lost in sorted(i for i in wanted if index <= i < index + count):
                    wanted.discard(lost)
                    report.records_in += 1
                    report.skip(f"{xml_path.name} (index {lost})", "bad_xml", "the file cannot be parsed")
            for k, obj in enumerate(objects):
                global_index = index + k
                if global_index not in wanted:
                    continue
                wanted.discard(global_index)
                report.records_in += 1
                where = f"{xml_path.name}#{k} (index {global_index})"
                try:
                    assert root_node is not None  # objects come only from a parsed file
                    rec = self._record(xml_path, root_node, obj, k, split, check, where, report)
                except RecordError as e:
                    report.skip(where, e.reason, e.detail)
                    continue
                report.records_out += 1
                yield rec
            index += count
        for missing in sorted(wanted):
            report.records_in += 1
            report.skip(f"{split}.txt", "index_out_of_range", f"{missing} >= {index} objects")

    @staticmethod
    def _objects(xml_path: Path, report: ConversionReport) -> tuple[Element | None, list[Element], int]:
        """The root and ``<object>`` elements of a file, and how many objects it holds.

        A file that cannot be parsed has no root and no elements, but its
        objects are still counted from the raw tags.
        """
        try:
            data = xml_path.read_bytes()
        except OSError as e:
            note(report, xml_path.name, "unreadable_xml_files", f"{e}; later indices may be shifted")
            return None, [], 0
        try:
            root = fromstring(data)
        except (ParseError, DefusedXmlException) as e:
            # the file's objects still take global indices: counting the tags keeps the
            # indices of every later file aligned with the split files
            count = data.count(b"<object>") + data.count(b"<object ")
            note(report, xml_path.name, "unparsable_xml_files", f"{e}; its {count} objects keep their indices")
            return None, [], count
        objects = root.findall("object")
        return root, objects, len(objects)

    def _record(
        self,
        xml_path: Path,
        root_node: Element,
        obj: Element,
        k: int,
        split: str,
        check: bool,
        where: str,
        report: ConversionReport,
    ) -> GroundingRecord:
        filename = _text(root_node, "filename") or f"{xml_path.stem}.jpg"
        image = resolve_image(self.root, f"JPEGImages/{filename}", report=report, where=where, check=check)
        size = root_node.find("size")
        fields: dict[str, Any] = {"width": _text(size, "width"), "height": _text(size, "height")}
        width, height = record_size(fields, "width", "height", image)
        expression = _text(obj, "description")
        if not expression:
            raise RecordError("missing_expression")
        box = obj.find("bndbox")
        hbb, clipped = checked_hbb([_text(box, t) for t in ("xmin", "ymin", "xmax", "ymax")], width, height)
        if clipped:
            note(report, where, "boxes_clipped")
        return GroundingRecord(
            id=f"{xml_path.stem}_{k}",
            source=self.name,
            split=split,
            image=relative(self.root, image),
            width=width,
            height=height,
            expression=expression,
            hbb=hbb,
            category=_text(obj, "name"),
        )
