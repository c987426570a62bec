"""DOTA (v1.0, v1.5, v2.0) and the sources that reuse its label files: STAR and GLH-Bridge.

Layout (``root`` is the dataset folder)::

    <split>/images/P0000.png            (also .jpg, .tif, .bmp)
    <split>/labelTxt/P0000.txt          (or annfiles/, mmrotate's name)

Every subfolder holding ``images/`` or a label folder is a split; a root that
holds them itself is the single split ``"all"``. One
:class:`~rsformat.records.DetectionRecord` per image: images without a label
file are kept with zero objects (``images_without_labels``), label files
without an image are skipped (``missing_image``). Label lines are read by
:func:`rsmetrics.io.dota.read_dota_labels` in lenient mode, its skipped lines
counted in the report under the same reasons.

Example:
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "train" / "images").mkdir(parents=True)
    >>> (root / "train" / "labelTxt").mkdir()
    >>> Image.new("RGB", (64, 48)).save(root / "train" / "images" / "P1.png")
    >>> _ = (root / "train" / "labelTxt" / "P1.txt").write_text("gsd:0.5\\n1 1 9 1 9 5 1 5 ship 0\\n2 2 4 2 4 4 2 4 cow 0\\n")
    >>> conv = DotaConverter(root)
    >>> report = ConversionReport("dota")
    >>> [(r.id, r.width, r.height, r.categories) for r in conv.records("train", report)]
    [('P1', 64, 48, ('ship',))]
    >>> report.skipped
    {'unknown_category': 1}
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from rsformat.converters._shared import (
    IMAGE_EXTENSIONS,
    build_objects,
    checked_image,
    files_by_stem,
    fold_read_report,
)
from rsformat.converters.base import ConversionReport, Converter, register
from rsformat.records import DetectionRecord
from rsmetrics.errors import InvalidInputError, RecordError
from rsmetrics.io._common import ReadReport
from rsmetrics.io.dota import dota_classes, read_dota_labels

__all__ = ["GLH_BRIDGE_CLASSES", "STAR_CLASSES", "DotaConverter", "GlhBridgeConverter", "StarConverter"]

# SGG-ToolKit's mmrotate DOTADataset class list, typos included (they are the label strings in the files)
STAR_CLASSES: tuple[str, ...] = (
    "ship", "boat", "crane", "goods_yard", "tank", "storehouse", "breakwater", "dock", "airplane",
    "boarding_bridge", "runway", "taxiway", "terminal", "apron", "gas_station", "truck", "car",
    "truck_parking", "car_parking", "bridge", "cooling_tower", "chimney", "vapor", "smoke", "genset",
    "coal_yard", "lattice_tower", "substation", "wind_mill", "cement_concrere_pavement", "toll_gate",
    "flood_dam", "gravity_dam", "ship_lock", "ground_track_field", "basketball_court",
    "engineering_vehicle", "foundation_pit", "intersection", "soccer_ball_field", "tennis_court",
    "tower_crane", "unfinished_building", "arch_dam", "baseball_dianmond", "stadium",
    "containment_vessel", "roundabout",
)  # fmt: skip
GLH_BRIDGE_CLASSES: tuple[str, ...] = ("bridge",)

_LABEL_DIRS = ("labelTxt", "annfiles")
_ROOT_SPLIT = "all"


@register
class DotaConverter(Converter):
    """DOTA label files (``x1 y1 ... x4 y4 category difficult``) with their images.

    Options:
        version: ``"1.0"`` (default, 15 classes), ``"1.5"`` or ``"2.0"``: the
            class list that labels are checked against.
        classes: an explicit class list instead (overrides ``version``).
        allow_unknown: keep objects whose class is not in the list (default:
            skipped and counted as ``unknown_category``).
    """

    name: ClassVar[str] = "dota"
    family: ClassVar[str] = "detection"
    description: ClassVar[str] = "DOTA: oriented object detection in aerial images (quadrilateral labels)."
    license: ClassVar[str] = "DOTA terms: academic use only; Google Earth imagery terms apply"
    citation: ClassVar[str] = "Xia et al., DOTA: A Large-scale Dataset for Object Detection in Aerial Images, CVPR 2018"

    def __init__(self, root: str | Path, **options: Any) -> None:
        super().__init__(root, **options)
        explicit = options.get("classes")
        self.classes: tuple[str, ...] = tuple(explicit) if explicit is not None else self.default_classes()
        self.allow_unknown = bool(options.get("allow_unknown", False))
        self._listings: dict[str, tuple[Path, dict[str, Path], dict[str, Path]]] = {}

    def default_classes(self) -> tuple[str, ...]:
        """The class list when no ``classes`` option is given."""
        try:
            return dota_classes(str(self.options.get("version", "1.0")))
        except InvalidInputError as err:
            raise ValueError(f"{self.name}: {err}") from None

    def _split_dirs(self) -> dict[str, Path]:
        def has_data(d: Path) -> bool:
            return (d / "images").is_dir() or any((d / sub).is_dir() for sub in _LABEL_DIRS)

        found = {d.name: d for d in sorted(self.root.iterdir()) if d.is_dir() and has_data(d)}
        if not found and has_data(self.root):
            found = {_ROOT_SPLIT: self.root}
        return found

    def splits(self) -> list[str]:
        """Subfolders with ``images/`` or label folders (``["all"]`` for a root holding them itself)."""
        return list(self._split_dirs())

    def _listing(self, split: str) -> tuple[Path, dict[str, Path], dict[str, Path]]:
        """The split folder, its images and its label files by stem.

        Listed once per converter instance (a worker converting many chunks of a
        split lists its folders once); a new instance sees files added since.
        """
        if split not in self._listings:
            folder = self._split_dirs().get(split)
            if folder is None:
                raise ValueError(f"Expected a split among {self.splits()}, but got {split!r}")
            label_dir = next((folder / sub for sub in _LABEL_DIRS if (folder / sub).is_dir()), None)
            self._listings[split] = (
                folder,
                files_by_stem(folder / "images", IMAGE_EXTENSIONS),
                files_by_stem(label_dir, (".txt",)),
            )
        return self._listings[split]

    def units(self, split: str) -> list[str]:
        """The image ids of ``split``: stems of its images and label files, sorted (one record each)."""
        _, images, labels = self._listing(split)
        return sorted(images.keys() | labels.keys())

    def records(self, split: str, report: ConversionReport) -> Iterator[DetectionRecord]:
        """One record per image of ``split`` (sorted by image id)."""
        _, images, labels = self._listing(split)
        return self._records(split, sorted(images.keys() | labels.keys()), images, labels, report)

    def records_for_units(
        self, split: str, units: Sequence[str], report: ConversionReport
    ) -> Iterator[DetectionRecord]:
        """The records of the image ids ``units`` of ``split``, in that order.

        An id whose files vanished since :meth:`units` listed them is skipped as ``missing_file``.
        """
        _, images, labels = self._listing(split)
        return self._records(split, units, images, labels, report)

    def source_files(self, split: str) -> Iterator[Path]:
        """The images and label files of ``split``."""
        _, images, labels = self._listing(split)
        yield from sorted({*images.values(), *labels.values()})

    def _records(
        self,
        split: str,
        stems: Sequence[str],
        images: dict[str, Path],
        labels: dict[str, Path],
        report: ConversionReport,
    ) -> Iterator[DetectionRecord]:
        for stem in stems:
            report.records_in += 1
            image, label = images.get(stem), labels.get(stem)
            if image is None and label is None:
                report.skip(f"{split}/{stem}", "missing_file", "neither an image nor a label file by that name")
                continue
            record = self._record(split, stem, image, label, report)
            if record is not None:
                report.records_out += 1
                yield record

    def _record(
        self, split: str, stem: str, image: Path | None, label: Path | None, report: ConversionReport
    ) -> DetectionRecord | None:
        first = label if label is not None else image
        where = first.relative_to(self.root).as_posix() if first is not None else stem
        checked = checked_image(self.root, stem, image, label, where, report)
        if checked is None:
            return None
        rel_image, width, height = checked
        if label is None:
            report.count("images_without_labels")
            objects: tuple = ()
        else:
            read = ReadReport()
            try:
                ann = read_dota_labels(label, strict=False, stats=read)
            except (InvalidInputError, RecordError, OSError) as err:
                report.skip(where, "unreadable_label", str(err))
                return None
            fold_read_report(report, read)
            objects = build_objects(
                ann.boxes,
                ann.labels,
                ann.difficult,
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


@register
class StarConverter(DotaConverter):
    """STAR (scene graphs in large satellite images): its OBB labels are DOTA txt files, 48 classes."""

    name: ClassVar[str] = "star"
    description: ClassVar[str] = "STAR: oriented objects of 48 classes in large-size satellite images (DOTA txt)."
    license: ClassVar[str] = "see the STAR dataset terms (Zhuzi24/STAR)"
    citation: ClassVar[str] = (
        "Li et al., STAR: A First-Ever Dataset and A Large-Scale Benchmark for Scene Graph Generation in Large-Size Satellite Imagery, TPAMI 2024"
    )

    def default_classes(self) -> tuple[str, ...]:
        return STAR_CLASSES


@register
class GlhBridgeConverter(DotaConverter):
    """GLH-Bridge: bridges in large VHR images, oriented boxes in DOTA txt files, one class."""

    name: ClassVar[str] = "glh_bridge"
    description: ClassVar[str] = "GLH-Bridge: oriented bridge detection in large-size VHR images (DOTA txt)."
    license: ClassVar[str] = "see the GLH-Bridge dataset terms (ll-13/GLH-Bridge)"
    citation: ClassVar[str] = (
        "Li et al., Learning to Holistically Detect Bridges from Large-Size VHR Remote Sensing Imagery, TPAMI 2024"
    )

    def default_classes(self) -> tuple[str, ...]:
        return GLH_BRIDGE_CLASSES
