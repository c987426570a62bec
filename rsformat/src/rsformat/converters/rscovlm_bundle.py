"""The released RSCoVLM SFT bundle (``Qingyun/remote-sensing-sft-data``, extracted) as named sub-datasets.

Layout (dataset-formats.md §1, upstream-rscovlm.md §2.1-§2.2; the tree is
inferred from the paths RSCoVLM's registry expects, not from a listing)::

    playground/data/
      refGeo/                              refgeo
      detection/split_ss_dota_512/         trainval.json + trainval/images/
      LRS_VQA/annotations/{train,benchmark}/, LRS_VQA/images/{train,benchmark}/
      TEOChatlas/train/instruct_*.json, TEOChatlas/eval/
      geochat_data/images/, geochat_data/benchmark/converted/*.jsonl
      VHM_dataset_sft/, VHM_eval_dataset/datasets_eval/
      LLaVA-OneVision-Data/{shuffled-multimodal,shuffled-pure-text}/
      VRSBench/, scene_cls/, rsvqa/, coco/

:data:`BUNDLE_LAYOUT` maps each sub-dataset to ``(converter, relative root,
options, family)``: every sub-dataset is converted by its registered
converter, so the bundle adds no parsing of its own. Two small converters
registered here cover the bundle's own arrangements:

``teochatlas_files``
    TEOChatlas train files chosen by name (``files``), frames optionally under
    another folder (``image_root``): RSCoVLM reads
    ``instruct_GeoChat_modified.json`` with the images of ``geochat_data/``
    and the four temporal files as ``teochatlas_video``.
``llava_json``
    One JSON array of LLaVA records (``annotation``) with images under
    ``images_dir``: RSCoVLM's ``supervised`` type, used for the VHM re-export
    ``vhm_sft_mix_qwen2_5_vl_conversations.json``.

:class:`RscovlmBundleConverter` (``rscovlm_bundle``) lists the sub-datasets
present as its splits. A converter has one record family and the bundle has
four, so writing goes through :func:`convert_bundle`, one config per
sub-dataset. Sub-datasets whose folder or files are absent are reported as
``missing``, not errors.

Example:
    >>> BUNDLE_LAYOUT["dota_trainval512"].converter, BUNDLE_LAYOUT["dota_trainval512"].root
    ('coco_detection', 'detection/split_ss_dota_512')
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from rsformat.converters._llava import (
    RecordError,
    find_file,
    iter_json_items,
    llava_messages,
    relative,
    resolve_image,
)
from rsformat.converters.base import ConversionReport, Converter, get_converter, register
from rsformat.converters.geochat import TeochatlasConverter
from rsformat.records import ConversationRecord, Record

__all__ = [
    "BUNDLE_LAYOUT",
    "BundleEntry",
    "LlavaJsonConverter",
    "RscovlmBundleConverter",
    "TeochatlasFilesConverter",
    "bundle_data_root",
    "convert_bundle",
]


class BundleEntry(NamedTuple):
    """How one sub-dataset of the bundle is converted."""

    converter: str
    root: str
    options: Mapping[str, Any]
    family: str


_TEOCHAT_VIDEO = tuple(f"train/instruct_{n}.json" for n in ("fMoW", "QFabric", "S2Looking", "xBD"))
_LRS_TRAIN = tuple(
    f"LRS_VQA/annotations/train/{n}_imgpath-processed.json"
    for n in (
        "7_8_GPT4V_LS-VQA_DOTA2-Bridge-STAR_with_boxx_info_159k",
        "7_8_template_DOTA-Bridge-STAR_with_boxx_info_60k",
        "7_9_transformed_MCQ_83k",
    )
)

BUNDLE_LAYOUT: dict[str, BundleEntry] = {
    "refgeo": BundleEntry("refgeo", "refGeo", {}, "grounding"),
    "dota_trainval512": BundleEntry(
        "coco_detection",
        "detection/split_ss_dota_512",
        {"annotation": "trainval.json", "image_dir": "trainval/images", "split": "trainval", "source": "dota"},
        "detection",
    ),
    "dota_trainval1024": BundleEntry(
        "coco_detection",
        "detection/split_ss_dota",
        {"annotation": "trainval.json", "image_dir": "trainval/images", "split": "trainval", "source": "dota"},
        "detection",
    ),
    "fair1m_train1024": BundleEntry(
        "coco_detection",
        "detection/split_ss_fair1m_1_0/train",
        {
            "annotation": "trainval_1024_P2Bfmt_dota_rbox.json",
            "image_dir": "images",
            "split": "train",
            "source": "fair1m",
        },
        "detection",
    ),
    "coco_train2017": BundleEntry(
        "coco_detection",
        "coco",
        {"annotation": "annotations/instances_train2017.json", "image_dir": "train2017", "split": "train"},
        "detection",
    ),
    # image paths are taken relative to images/train, as RSCoVLM's data_path (unverified on real files)
    "lrsvqa_train": BundleEntry(
        "lrs_vqa_zoom", ".", {"annotation": list(_LRS_TRAIN), "image_root": "LRS_VQA/images/train"}, "zoom"
    ),
    "lrsvqa_benchmark": BundleEntry(
        "lrs_vqa",
        "LRS_VQA",
        {"annotation": "annotations/benchmark/LRS_VQA_merged.jsonl", "image_root": "images/benchmark"},
        "zoom",
    ),
    "teochatlas": BundleEntry("teochatlas_files", "TEOChatlas", {"files": list(_TEOCHAT_VIDEO)}, "conversation"),
    "geochat_from_teochatlas": BundleEntry(
        "teochatlas_files",
        ".",
        {"files": ["TEOChatlas/train/instruct_GeoChat_modified.json"], "image_root": "geochat_data/images"},
        "conversation",
    ),
    "vhm_sft": BundleEntry(
        "llava_json",
        "VHM_dataset_sft",
        {"annotation": "vhm_sft_mix_qwen2_5_vl_conversations.json", "images_dir": "images", "source": "vhm"},
        "conversation",
    ),
    "vhm_eval": BundleEntry("vhm", "VHM_eval_dataset", {}, "conversation"),
    "llava_onevision": BundleEntry("llava_onevision", "LLaVA-OneVision-Data/shuffled-multimodal", {}, "conversation"),
    "llava_onevision_text": BundleEntry(
        "llava_onevision", "LLaVA-OneVision-Data/shuffled-pure-text", {}, "conversation"
    ),
    "geochat_bench": BundleEntry("geochat_bench", "geochat_data", {}, "conversation"),
    "geochat_bench_referring": BundleEntry("geochat_bench_referring", "geochat_data", {}, "grounding"),
    "vrsbench_eval_referring": BundleEntry("vrsbench_eval_referring", "VRSBench", {}, "grounding"),
    "vrsbench_eval_vqa": BundleEntry("vrsbench_eval_vqa", "VRSBench", {}, "conversation"),
    "vrsbench_eval_caption": BundleEntry("vrsbench_eval_caption", "VRSBench", {}, "conversation"),
    "scene_cls_aid": BundleEntry("aid", "scene_cls/AID", {"split": "test"}, "conversation"),
    "scene_cls_nwpu_resisc45": BundleEntry("nwpu_resisc45", "scene_cls/NWPU-RESISC45", {}, "conversation"),
    "scene_cls_ucmerced": BundleEntry("ucmerced", "scene_cls/UCMerced_LandUse", {}, "conversation"),
}
"""Sub-dataset -> (converter name, root relative to ``playground/data``, options, family)."""


def bundle_data_root(root: str | os.PathLike[str]) -> Path:
    """The ``playground/data`` folder: ``root`` itself, or found below it.

    Example:
        >>> import tempfile
        >>> base = Path(tempfile.mkdtemp())
        >>> (base / "playground" / "data").mkdir(parents=True)
        >>> [bundle_data_root(p) == base / "playground" / "data" for p in (base, base / "playground")]
        [True, True]
    """
    base = Path(root)
    for candidate in (base / "playground" / "data", base / "data"):
        if candidate.is_dir():
            return candidate
    return base


# --------------------------------------------------------------------------- the bundle's own arrangements


@register
class TeochatlasFilesConverter(TeochatlasConverter):
    """TEOChatlas train files chosen by name, frames optionally under another folder.

    Options: ``files`` (paths of JSON files, relative to the root; absent
    ones are ignored), ``image_root`` (folder under the root the frame paths
    are relative to; paths not found there are tried as ``teochatlas`` does).
    """

    name: ClassVar[str] = "teochatlas_files"
    description: ClassVar[str] = "TEOChatlas instruction files chosen by name (RSCoVLM's per-file datasets)."

    def _files(self, split: str) -> list[Path]:
        if split != "train":
            return []
        chosen = self.options.get("files") or []
        return [p for p in (find_file(self.root, (), str(f)) for f in chosen) if p is not None and p.is_file()]

    def splits(self) -> list[str]:
        """``["train"]`` when one of the chosen files exists."""
        return ["train"] if self._files("train") else []

    def records(self, split: str, report: ConversionReport) -> Iterator[ConversationRecord]:
        """The records of ``teochatlas``, with its source name."""
        for rec in super().records(split, report):
            yield dataclasses.replace(rec, source=TeochatlasConverter.name)

    def _frame(self, rel: Any, where: str, report: ConversionReport) -> Path:
        base = self.options.get("image_root")
        if base and isinstance(rel, str):
            try:
                return resolve_image(self.root, f"{str(base).rstrip('/')}/{rel}", report=report, where=where)
            except RecordError as e:
                if e.reason != "missing_image":
                    raise
        return super()._frame(rel, where, report)


@register
class LlavaJsonConverter(Converter):
    """One JSON array of LLaVA records (``image`` a path or a list of paths) with images under a folder.

    Options: ``annotation`` (the JSON file, relative to the root; required),
    ``images_dir`` (folder under the root the image paths are relative to),
    ``source`` (the records' ``source``, default ``llava_json``),
    ``check_images`` (default ``True``). Records in another shape (e.g. Qwen
    ``messages``) are skipped as ``unsupported_layout``.
    """

    name: ClassVar[str] = "llava_json"
    family: ClassVar[str] = "conversation"
    description: ClassVar[str] = "A JSON array of LLaVA-style conversations (RSCoVLM's 'supervised' data type)."

    def _annotation(self) -> Path | None:
        chosen = self.options.get("annotation")
        return None if chosen is None else find_file(self.root, (), str(chosen))

    def splits(self) -> list[str]:
        """``["train"]`` when the annotation file exists."""
        path = self._annotation()
        return ["train"] if path is not None and path.is_file() else []

    def records(self, split: str, report: ConversionReport) -> Iterator[ConversationRecord]:
        """Yield one conversation per record."""
        path = self._annotation()
        if split not in self.splits() or path is None:
            raise ValueError(f"Expected `split` to be one of {self.splits()}, but got {split!r}")
        base = str(self.options.get("images_dir") or "")
        check = bool(self.options.get("check_images", True))
        source = str(self.options.get("source") or self.name)
        for where, item in iter_json_items(path, report):
            try:
                if "conversations" not in item:
                    raise RecordError("unsupported_layout", "no LLaVA 'conversations'")
                names = item.get("image")
                names = [] if names is None else [names] if isinstance(names, str) else names
                if not isinstance(names, list):
                    raise RecordError("missing_image", f"image is a {type(names).__name__}")
                images = tuple(
                    resolve_image(
                        self.root, f"{base.rstrip('/')}/{n}" if base else n, report=report, where=where, check=check
                    )
                    if isinstance(n, str)
                    else _bad_image(n)
                    for n in names
                )
                messages = llava_messages(item["conversations"], len(images), report=report, where=where)
            except RecordError as e:
                report.skip(where, e.reason, e.detail)
                continue
            report.records_out += 1
            rid = item.get("id")
            yield ConversationRecord(
                id=str(rid) if rid is not None else where,
                source=source,
                split=split,
                images=tuple(relative(self.root, p) for p in images),
                messages=messages,
                task="conversation" if images else "text",
            )


def _bad_image(value: Any) -> Path:
    raise RecordError("missing_image", f"image entry {value!r} is not a path"[:200])


# --------------------------------------------------------------------------- the bundle


@register
class RscovlmBundleConverter(Converter):
    """The RSCoVLM SFT bundle: splits are the sub-datasets present, each read by its own converter.

    ``records(name)`` yields the records of every split of that sub-dataset
    (their ``split`` field is the sub-dataset's own split). The family is
    ``"mixed"``: write with :func:`convert_bundle`, one config per sub-dataset.

    Options: ``datasets`` (sub-dataset names to consider, default all of
    :data:`BUNDLE_LAYOUT`), ``check_images`` (passed to every sub-converter).
    """

    name: ClassVar[str] = "rscovlm_bundle"
    family: ClassVar[str] = "mixed"
    description: ClassVar[str] = (
        "RSCoVLM's released SFT and evaluation bundle (Qingyun/remote-sensing-sft-data), one config per sub-dataset."
    )
    license: ClassVar[str] = "CC-BY-4.0 (Qingyun/remote-sensing-sft-data); each source dataset's terms apply"
    citation: ClassVar[str] = (
        "@article{rscovlm2025, title={RSCoVLM: Co-Training Vision Language Models for Remote Sensing Multi-task "
        "Learning}, journal={arXiv:2511.21272}, year={2025}}"
    )

    def __init__(self, root: str | os.PathLike[str], **options: Any) -> None:
        super().__init__(root, **options)
        self.data_root = bundle_data_root(self.root)
        names = options.get("datasets")
        unknown = sorted(set(names or ()) - set(BUNDLE_LAYOUT))
        if unknown:
            raise ValueError(f"Expected sub-datasets among {sorted(BUNDLE_LAYOUT)}, but got {unknown}")
        self.names: list[str] = list(names) if names else list(BUNDLE_LAYOUT)

    def sub_converter(self, name: str) -> Converter | None:
        """The converter of sub-dataset ``name``, or ``None`` when its folder is absent."""
        entry = BUNDLE_LAYOUT[name]
        root = self.data_root / entry.root
        if not root.is_dir():
            return None
        options = dict(entry.options)
        if "check_images" in self.options:
            options["check_images"] = self.options["check_images"]
        return get_converter(entry.converter)(root, **options)

    def missing(self) -> dict[str, str]:
        """Sub-datasets not found -> what was looked for."""
        out = {}
        for name in self.names:
            conv = self.sub_converter(name)
            if conv is None:
                out[name] = f"no folder {BUNDLE_LAYOUT[name].root}/"
            elif not conv.splits():
                out[name] = f"no {BUNDLE_LAYOUT[name].converter} files under {BUNDLE_LAYOUT[name].root}/"
        return out

    def splits(self) -> list[str]:
        """The sub-datasets present (folder found and at least one split in it)."""
        missing = self.missing()
        return [n for n in self.names if n not in missing]

    def family_of(self, name: str) -> str:
        """The record family of sub-dataset ``name``."""
        return BUNDLE_LAYOUT[name].family

    def records(self, split: str, report: ConversionReport) -> Iterator[Record]:
        """Yield the records of every split of sub-dataset ``split``."""
        conv = self.sub_converter(split) if split in self.names else None
        if conv is None or not conv.splits():
            raise ValueError(f"Expected `split` to be one of {self.splits()}, but got {split!r}")
        for inner in conv.splits():
            yield from conv.records(inner, report)


def convert_bundle(
    root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    datasets: Iterable[str] | None = None,
    embed_images: bool = True,
    check_images: bool = True,
    max_shard_size: int | str | None = None,
    progress: bool = False,
    on_done: Callable[[str, ConversionReport], None] | None = None,
) -> dict[str, ConversionReport]:
    """Convert every sub-dataset found in the bundle into one config of ``out_dir`` each.

    Args:
        root: The bundle (``playground/data``, or a folder holding it).
        out_dir: The dataset folder (configs named after the sub-datasets).
        datasets: Sub-dataset names to convert (default all of :data:`BUNDLE_LAYOUT`).
        embed_images: Embed image bytes in the parquet files.
        check_images: Skip records whose image is missing.
        max_shard_size: Passed to :func:`rsformat.hub.write_dataset` (its default when ``None``).
        progress: Progress bars.
        on_done: Called with each sub-dataset's name and report once written.

    Returns:
        Sub-dataset name -> its report. A sub-dataset not found has a report
        with ``skipped == {"missing": 1}`` and a message saying what was looked
        for; nothing is written for it.

    Example:
        >>> import tempfile
        >>> reports = convert_bundle(tempfile.mkdtemp(), tempfile.mkdtemp(), datasets=["refgeo"])
        >>> reports["refgeo"].skipped
        {'missing': 1}
    """
    from rsformat.hub import write_dataset

    bundle = RscovlmBundleConverter(root, datasets=list(datasets) if datasets is not None else None)
    missing = bundle.missing()
    reports: dict[str, ConversionReport] = {}
    extra: dict[str, Any] = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
    for name in bundle.names:
        entry = BUNDLE_LAYOUT[name]
        report = ConversionReport(f"rscovlm_bundle/{name}")
        if name in missing:
            report.skip(name, "missing", missing[name])
            reports[name] = report
            continue
        conv = get_converter(entry.converter)(
            bundle.data_root / entry.root, **{**entry.options, "check_images": check_images}
        )
        cls = type(conv)
        write_dataset(
            {s: conv.records(s, report) for s in conv.splits()},
            out_dir,
            family=entry.family,
            config_name=name,
            embed_images=embed_images,
            image_root=conv.root,
            card_info={
                "source": f"rscovlm_bundle/{name}",
                "description": cls.description,
                "license": cls.license,
                "citation": cls.citation,
                "pretty_name": f"RSCoVLM bundle: {name}",
            },
            report=report,
            progress=progress,
            **extra,
        )
        reports[name] = report
        if on_done is not None:
            on_done(name, report)
    return reports
