"""Scene classification sets (folder per class) -> :class:`~rsformat.records.ConversationRecord`.

Sources (dataset-formats.md §13.2): ``nwpu_resisc45``, ``ucmerced``, ``aid``,
``whu_rs19``, ``siri_whu``. Each record is one image: the user message holds
the image and :data:`PROMPT` with the dataset's full class list, the
assistant answers the class name; ``task`` is ``"classification"``.

Class names are normalised to lower-case words: NWPU's underscores become
spaces (``baseball_diamond`` -> ``baseball diamond``), CamelCase folders
are split (AID ``DenseResidential`` -> ``dense residential``) and UCMerced's
run-together names are mapped from a table (``denseresidential`` ->
``dense residential``). Each raw name written differently is counted in
``labels_mapped``.

Splits: NWPU-RESISC45 and UCMerced have split files listing bare file names
(``resisc45-train.txt``, ``uc_merced-test.txt``); the class is the name
without its number. Listed files absent on disk are skipped as
``missing_image``. Sets without split files give one split, ``train`` (the
``split`` option renames it, e.g. ``test`` for an evaluation-only set).

Example:
    >>> normalise_class("DenseResidential"), normalise_class("baseball_diamond"), normalise_class("railwayStation")
    ('dense residential', 'baseball diamond', 'railway station')
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np

from rsformat.converters._llava import relative
from rsformat.converters.base import ConversionReport, Converter, register
from rsformat.records import ContentPart, ConversationRecord, Message

__all__ = [
    "PROMPT",
    "AidConverter",
    "NwpuResisc45Converter",
    "SceneClassificationConverter",
    "SiriWhuConverter",
    "UcMercedConverter",
    "WhuRs19Converter",
    "classification_prompt",
    "normalise_class",
]

PROMPT = "Classify the image within one of the given classes: {classes}."
"""The user prompt; ``{classes}`` is the class list joined with ``", "``."""

_IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def normalise_class(raw: str) -> str:
    """A folder name as lower-case words: ``_``/``-`` to spaces, CamelCase split, numbering dropped.

    Example:
        >>> normalise_class("1.idle_land"), normalise_class("StorageTanks")
        ('idle land', 'storage tanks')
    """
    name = re.sub(r"^\d+[._\s-]*", "", raw.strip())
    name = _CAMEL.sub(" ", name)
    name = re.sub(r"[_\-\s]+", " ", name)
    return name.strip().lower()


def classification_prompt(classes: list[str] | tuple[str, ...]) -> str:
    """The user prompt listing ``classes``.

    Example:
        >>> classification_prompt(["beach", "forest"])
        'Classify the image within one of the given classes: beach, forest.'
    """
    return PROMPT.format(classes=", ".join(classes))


class SceneClassificationConverter(Converter):
    """Folder-per-class image sets. Subclasses set the folders, split files and classes.

    Options: ``split`` (the split name when there are no split files,
    default ``"train"``).
    """

    family: ClassVar[str] = "conversation"
    # folders (relative to the root) that may hold the class folders, first found wins
    image_dirs: ClassVar[tuple[str, ...]] = (".",)
    # split file name pattern with {split}; empty when the set has none
    split_file: ClassVar[str] = ""
    split_names: ClassVar[tuple[str, ...]] = ("train", "val", "test")
    # the canonical classes (normalised, in the dataset's usual order); empty: the folders found
    classes: ClassVar[tuple[str, ...]] = ()
    # raw names whose normalisation is not mechanical
    aliases: ClassVar[dict[str, str]] = {}

    def _image_dir(self) -> Path:
        for d in self.image_dirs:
            path = self.root / d
            if path.is_dir() and any(p.is_dir() for p in path.iterdir()):
                return path
        return self.root

    def _class_folders(self) -> dict[str, Path]:
        base = self._image_dir()
        return {p.name: p for p in sorted(base.iterdir()) if p.is_dir()}

    def _normalise(self, raw: str, report: ConversionReport | None = None) -> str:
        name = self.aliases.get(raw) or normalise_class(raw)
        if report is not None and name != raw:
            report.mapped(raw, name)
        return name

    def class_names(self) -> tuple[str, ...]:
        """The classes offered in the prompt: the canonical list, or the folders found."""
        if self.classes:
            return self.classes
        return tuple(dict.fromkeys(self._normalise(f) for f in self._class_folders()))

    def _class_of_file(self, file_name: str) -> str:
        """The raw class (folder) name of a file listed in a split file."""
        return re.sub(r"_?\d+$", "", Path(file_name).stem)

    def _random_split(self) -> dict[str, float] | None:
        spec = self.options.get("random_split")
        if spec is None:
            return None
        if (
            not isinstance(spec, dict)
            or not spec
            or any(not isinstance(v, (int, float)) or v <= 0 for v in spec.values())
        ):
            raise ValueError(
                f"{self.name}: `random_split` must map split names to positive fractions, but got {spec!r}"
            )
        if abs(sum(spec.values()) - 1.0) > 1e-9:
            raise ValueError(f"{self.name}: `random_split` fractions must sum to 1, but sum to {sum(spec.values())}")
        return {str(k): float(v) for k, v in spec.items()}

    def splits(self) -> list[str]:
        """The split files found; else the ``random_split`` option's splits; else the single ``split`` option."""
        if self.split_file:
            found = [s for s in self.split_names if (self.root / self.split_file.format(split=s)).is_file()]
            if found:
                return found
        random_split = self._random_split()
        if random_split is not None:
            return list(random_split)
        return [str(self.options.get("split", "train"))]

    def _in_random_split(self, split: str, folder: str, files: list[str]) -> set[str]:
        """The files of one class folder that a seeded per-class split puts in ``split``.

        Sets without an official split (AID) are split per class, as RSCoVLM does
        (20 % / 80 %), but with a seed so the split can be reproduced.
        """
        fractions = self._random_split()
        assert fractions is not None
        seed = int(self.options.get("seed", 0))
        order = np.random.default_rng([seed, *folder.encode()]).permutation(len(files))
        bounds = np.round(np.cumsum([0.0, *fractions.values()]) * len(files)).astype(int)
        k = list(fractions).index(split)
        return {files[i] for i in order[bounds[k] : bounds[k + 1]]}

    def _listed(self, split: str, report: ConversionReport) -> Iterator[tuple[str, str, str]]:
        """``(where, raw class, file name)`` of the images of ``split``."""
        path = self.root / self.split_file.format(split=split) if self.split_file else None
        if path is not None and path.is_file():
            with open(path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    name = line.strip()
                    if name:
                        report.records_in += 1
                        yield f"{path.name}:{n}", self._class_of_file(name), name
            return
        random_split = self._random_split()
        for folder, folder_path in self._class_folders().items():
            files = [
                p.name for p in sorted(folder_path.iterdir()) if p.is_file() and p.suffix.lower() in _IMAGE_EXTENSIONS
            ]
            chosen = self._in_random_split(split, folder, files) if random_split is not None else None
            for name in files:
                if chosen is None or name in chosen:
                    report.records_in += 1
                    yield f"{folder}/{name}", folder, name

    def records(self, split: str, report: ConversionReport) -> Iterator[ConversationRecord]:
        """Yield one classification conversation per image of ``split``."""
        if split not in self.splits():
            raise ValueError(f"Expected `split` to be one of {self.splits()}, but got {split!r}")
        classes = self.class_names()
        prompt = classification_prompt(classes)
        folders = self._class_folders()
        # folders looked up by normalised name too, for split files naming classes differently
        by_norm = {self._normalise(f): p for f, p in folders.items()}
        for where, raw_class, file_name in self._listed(split, report):
            if "/" in file_name or "\\" in file_name or file_name in (".", ".."):
                report.skip(where, "unsafe_path", repr(file_name))
                continue
            label = self._normalise(raw_class)
            if label not in classes:
                report.skip(where, "unknown_class", f"{raw_class!r} -> {label!r}")
                continue
            folder = folders.get(raw_class) or by_norm.get(label)
            image = folder / file_name if folder is not None else None
            if image is None or not image.is_file():
                report.skip(where, "missing_image", f"{raw_class}/{file_name}")
                continue
            self._normalise(raw_class, report)  # counts the mapping of records actually written
            user = Message("user", (ContentPart("image", image=0), ContentPart("text", text=prompt)))
            report.records_out += 1
            yield ConversationRecord(
                id=f"{folder.name}/{Path(file_name).stem}",
                source=self.name,
                split=split,
                images=(relative(self.root, image),),
                messages=(user, Message.text("assistant", label)),
                task="classification",
                metadata=json.dumps({"class": label}),
            )


@register
class NwpuResisc45Converter(SceneClassificationConverter):
    """NWPU-RESISC45: 45 classes x 700 images, 256x256."""

    name: ClassVar[str] = "nwpu_resisc45"
    description: ClassVar[str] = "NWPU-RESISC45 scene classification: 31,500 images, 45 classes, 256x256 RGB."
    license: ClassVar[str] = "NWPU-RESISC45 terms: academic research use"
    citation: ClassVar[str] = (
        "@article{cheng2017resisc45, title={Remote Sensing Image Scene Classification: Benchmark and State of "
        "the Art}, author={Cheng, Gong and Han, Junwei and Lu, Xiaoqiang}, journal={Proc. IEEE}, year={2017}}"
    )
    image_dirs: ClassVar[tuple[str, ...]] = ("NWPU-RESISC45", ".")
    split_file: ClassVar[str] = "resisc45-{split}.txt"
    classes: ClassVar[tuple[str, ...]] = tuple(
        c.replace("_", " ")
        for c in (
            "airplane airport baseball_diamond basketball_court beach bridge chaparral church circular_farmland "
            "cloud commercial_area dense_residential desert forest freeway golf_course ground_track_field harbor "
            "industrial_area intersection island lake meadow medium_residential mobile_home_park mountain overpass "
            "palace parking_lot railway railway_station rectangular_farmland river roundabout runway sea_ice ship "
            "snowberg sparse_residential stadium storage_tank tennis_court terrace thermal_power_station wetland"
        ).split()
    )

    def _class_of_file(self, file_name: str) -> str:
        # NWPU names are <class>_<NNN>.jpg and classes hold underscores: cut at the last one
        return Path(file_name).stem.rsplit("_", 1)[0]


_UCM_RAW = (
    "agricultural airplane baseballdiamond beach buildings chaparral denseresidential forest freeway golfcourse "
    "harbor intersection mediumresidential mobilehomepark overpass parkinglot river runway sparseresidential "
    "storagetanks tenniscourt"
).split()
_UCM_SPACED = {
    "baseballdiamond": "baseball diamond",
    "denseresidential": "dense residential",
    "golfcourse": "golf course",
    "mediumresidential": "medium residential",
    "mobilehomepark": "mobile home park",
    "parkinglot": "parking lot",
    "sparseresidential": "sparse residential",
    "storagetanks": "storage tanks",
    "tenniscourt": "tennis court",
}


@register
class UcMercedConverter(SceneClassificationConverter):
    """UC Merced Land Use: 21 classes x 100 images, nominally 256x256 (some are not)."""

    name: ClassVar[str] = "ucmerced"
    description: ClassVar[str] = "UC Merced Land Use scene classification: 2,100 images, 21 classes, 0.3 m."
    license: ClassVar[str] = "UC Merced Land Use terms: research use (USGS imagery, public domain)"
    citation: ClassVar[str] = (
        "@inproceedings{yang2010ucm, title={Bag-of-Visual-Words and Spatial Extensions for Land-Use "
        "Classification}, author={Yang, Yi and Newsam, Shawn}, booktitle={ACM SIGSPATIAL}, year={2010}}"
    )
    image_dirs: ClassVar[tuple[str, ...]] = ("UCMerced_LandUse/Images", "Images", ".")
    split_file: ClassVar[str] = "uc_merced-{split}.txt"
    classes: ClassVar[tuple[str, ...]] = tuple(_UCM_SPACED.get(c, c) for c in _UCM_RAW)
    aliases: ClassVar[dict[str, str]] = _UCM_SPACED


@register
class AidConverter(SceneClassificationConverter):
    """AID: 30 classes, 10,000 images, 600x600; no official split."""

    name: ClassVar[str] = "aid"
    description: ClassVar[str] = "AID aerial scene classification: 10,000 images, 30 classes, 600x600 RGB."
    license: ClassVar[str] = "AID terms: academic research use"
    citation: ClassVar[str] = (
        "@article{xia2017aid, title={AID: A Benchmark Data Set for Performance Evaluation of Aerial Scene "
        "Classification}, author={Xia, Gui-Song and others}, journal={IEEE TGRS}, year={2017}}"
    )
    image_dirs: ClassVar[tuple[str, ...]] = ("AID", ".")
    classes: ClassVar[tuple[str, ...]] = tuple(
        normalise_class(c)
        for c in (
            "Airport BareLand BaseballField Beach Bridge Center Church Commercial DenseResidential Desert Farmland "
            "Forest Industrial Meadow MediumResidential Mountain Park Parking Playground Pond Port RailwayStation "
            "Resort River School SparseResidential Square Stadium StorageTanks Viaduct"
        ).split()
    )


@register
class WhuRs19Converter(SceneClassificationConverter):
    """WHU-RS19: 19 classes, about 50 images each, 600x600."""

    name: ClassVar[str] = "whu_rs19"
    description: ClassVar[str] = "WHU-RS19 scene classification: 1,005 images, 19 classes, 600x600."
    license: ClassVar[str] = "WHU-RS19 terms: academic research use"
    citation: ClassVar[str] = (
        "@inproceedings{dai2011whurs19, title={Satellite Image Classification via Two-Layer Sparse Coding With "
        "Biased Image Representation}, author={Dai, Dengxin and Yang, Wen}, booktitle={IEEE GRSL}, year={2011}}"
    )
    image_dirs: ClassVar[tuple[str, ...]] = ("WHU-RS19", "RSDataset", ".")
    classes: ClassVar[tuple[str, ...]] = tuple(
        normalise_class(c)
        for c in (
            "Airport Beach Bridge Commercial Desert Farmland footballField Forest Industrial Meadow Mountain Park "
            "Parking Pond Port railwayStation Residential River Viaduct"
        ).split()
    )


@register
class SiriWhuConverter(SceneClassificationConverter):
    """SIRI-WHU: 12 classes x 200 images, 200x200."""

    name: ClassVar[str] = "siri_whu"
    description: ClassVar[str] = "SIRI-WHU scene classification: 2,400 images, 12 classes, 200x200, 2 m."
    license: ClassVar[str] = "SIRI-WHU terms: academic research use"
    citation: ClassVar[str] = (
        "@article{zhao2016siri, title={Dirichlet-Derived Multiple Topic Scene Classification Model for High "
        "Spatial Resolution Remote Sensing Imagery}, author={Zhao, Bei and Zhong, Yanfei and Xia, Gui-Song and "
        "Zhang, Liangpei}, journal={IEEE TGRS}, year={2016}}"
    )
    image_dirs: ClassVar[tuple[str, ...]] = ("SIRI-WHU", "12class_tif", ".")
    classes: ClassVar[tuple[str, ...]] = (
        "agriculture",
        "commercial",
        "harbor",
        "idle land",
        "industrial",
        "meadow",
        "overpass",
        "park",
        "pond",
        "residential",
        "river",
        "water",
    )
