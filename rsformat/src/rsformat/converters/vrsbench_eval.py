"""VRSBench evaluation files (``VRSBench_EVAL_*.json``) -> grounding and conversation records.

Layout (dataset-formats.md §8)::

    <root>/VRSBench_EVAL_referring.json   (or RSBench_EVAL_referring.json, converted/vrsbench_referring_test.json)
    <root>/VRSBench_EVAL_vqa.json         (or RSBench_EVAL_vqa.json)
    <root>/VRSBench_EVAL_Cap.json         (or RSBench_EVAL_Cap.json)
    <root>/Images_val/<image_id>          (or Images/, images/)

Each file is a JSON array; one split, ``test`` (the ``split`` option renames it).

``vrsbench_eval_referring`` (grounding)
    ``image_id``, ``question`` (the referring sentence), ``ground_truth``
    ``"{<x1><y1><x2><y2>}"`` on the 0-100 grid, ``obj_corner`` (normalised
    0-1 quad), ``obj_cls``. The hbb is the ground truth **as written**:
    VRSBench wrote it with ``int(v * 100)``, which truncates (up to 1 % of the
    side), and that is what the benchmark scores against, so it is not
    "repaired"; every such record is counted ``ground_truth_truncated_grid``
    (a grounding record has no metadata field to mark it per record). The
    quad comes from ``obj_corner`` when present (exact, not truncated).
``vrsbench_eval_vqa`` / ``vrsbench_eval_caption`` (conversations)
    ``image_id``, ``question``, ``ground_truth`` -> user (image + question) and
    assistant (ground truth); task ``vqa`` / ``caption``; ``type`` and
    ``question_id`` in ``metadata``.

Options: ``annotation`` (the file, relative to the root), ``images_dir``,
``split`` (default ``"test"``), ``check_images`` (default ``True``).

Example:
    >>> VrsbenchEvalReferringConverter.family, VrsbenchEvalVqaConverter.task
    ('grounding', 'vqa')
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rsformat.converters._llava import (
    RecordError,
    find_file,
    image_size,
    iter_json_items,
    note,
    relative,
    resolve_image,
)
from rsformat.converters.base import ConversionReport, Converter, register
from rsformat.converters.refgeo import checked_hbb, checked_quad
from rsformat.records import ContentPart, ConversationRecord, GroundingRecord, Message
from rsmetrics.parsers import Frame, parse_response

__all__ = ["VrsbenchEvalCaptionConverter", "VrsbenchEvalReferringConverter", "VrsbenchEvalVqaConverter"]

_GRID = Frame.grid(100)


class _VrsbenchEvalBase(Converter):
    license: ClassVar[str] = "CC-BY-4.0 annotations (xiang709/VRSBench); DOTA/DIOR images: academic use"
    citation: ClassVar[str] = (
        "@inproceedings{li2024vrsbench, title={VRSBench: A Versatile Vision-Language Benchmark Dataset for "
        "Remote Sensing Image Understanding}, author={Li, Xiang and Ding, Jian and Elhoseiny, Mohamed}, "
        "booktitle={NeurIPS Datasets and Benchmarks}, year={2024}}"
    )
    _annotations: ClassVar[tuple[str, ...]] = ()
    _image_dirs: ClassVar[tuple[str, ...]] = ("Images_val", "Images", "images")

    def _annotation(self) -> Path | None:
        return find_file(self.root, self._annotations, self.options.get("annotation"))

    def _split(self) -> str:
        return str(self.options.get("split") or "test")

    def splits(self) -> list[str]:
        """The single split (``test``) when the file is found."""
        return [self._split()] if self._annotation() is not None else []

    def _items(self, split: str, report: ConversionReport) -> Iterator[tuple[str, dict[str, Any]]]:
        if split not in self.splits():
            raise ValueError(f"Expected `split` to be one of {self.splits()}, but got {split!r}")
        path = self._annotation()
        if path is not None:
            yield from iter_json_items(path, report)

    def _image(self, item: dict[str, Any], where: str, report: ConversionReport) -> Path:
        name = item.get("image_id", item.get("image"))
        if not isinstance(name, str) or not name.strip():
            raise RecordError("missing_image", "no image_id")
        name = name.strip() if Path(name.strip()).suffix else f"{name.strip()}.png"
        chosen = self.options.get("images_dir")
        folder = (
            str(chosen) if chosen is not None else next((d for d in self._image_dirs if (self.root / d).is_dir()), ".")
        )
        rel = name if folder in ("", ".") else f"{folder.rstrip('/')}/{name}"
        return resolve_image(
            self.root, rel, report=report, where=where, check=bool(self.options.get("check_images", True))
        )

    @staticmethod
    def _id(item: dict[str, Any], where: str) -> str:
        qid = item.get("question_id")
        return str(qid) if qid is not None else where


@register
class VrsbenchEvalReferringConverter(_VrsbenchEvalBase):
    """VRSBench referring evaluation records -> grounding records (hbb as the truncated ground truth)."""

    name: ClassVar[str] = "vrsbench_eval_referring"
    family: ClassVar[str] = "grounding"
    description: ClassVar[str] = (
        "VRSBench visual grounding evaluation: referring sentences with the benchmark's 0-100 grid box "
        "(truncated, as scored) and the exact object quad."
    )
    _annotations: ClassVar[tuple[str, ...]] = (
        "VRSBench_EVAL_referring.json",
        "RSBench_EVAL_referring.json",
        "converted/vrsbench_referring_test.json",
    )

    def records(self, split: str, report: ConversionReport) -> Iterator[GroundingRecord]:
        """Yield one grounding record per referring sentence."""
        for where, item in self._items(split, report):
            try:
                rec = self._record(item, split, where, report)
            except RecordError as e:
                report.skip(where, e.reason, e.detail)
                continue
            report.records_out += 1
            yield rec

    def _record(self, item: dict[str, Any], split: str, where: str, report: ConversionReport) -> GroundingRecord:
        expression, truth = item.get("question"), item.get("ground_truth")
        if not isinstance(expression, str) or not expression.strip():
            raise RecordError("missing_expression")
        if not isinstance(truth, str):
            raise RecordError("bad_box", f"expected a '{{<x1><y1><x2><y2>}}' string, got {truth!r}"[:200])
        image = self._image(item, where, report)
        size = image_size(image)
        if size is None:
            raise RecordError("unreadable_image", f"{image.name}: no image size for the box")
        width, height = size
        parsed = parse_response(truth.strip(), "geochat", frame=_GRID, image_size=size)
        if len(parsed) != 1 or parsed.kinds[0] != "hbb":
            raise RecordError("bad_box", f"expected one {{<x1><y1><x2><y2>}} box in {truth.strip()[:60]!r}")
        hbb, clipped = checked_hbb(parsed.hbb[0].tolist(), width, height)
        if clipped:
            note(report, where, "boxes_clipped")
        report.count("ground_truth_truncated_grid")
        quad = None
        corner = item.get("obj_corner")
        if corner is not None:
            try:
                pixels = np.asarray(corner, dtype=np.float64).reshape(-1) * np.tile([width, height], 4)
            except (TypeError, ValueError):
                pixels = None
            if pixels is None or pixels.shape != (8,):
                note(report, where, "bad_obj_corner_dropped", repr(corner)[:120])
            else:
                quad, status = checked_quad(pixels, width, height)
                if status == "clipped":
                    # VRSBench's corners can fall outside [0, 1] (dataset-formats.md §8)
                    note(report, where, "quads_clipped")
                elif status in ("bad", "degenerate"):
                    note(report, where, f"{status}_obj_corner_dropped", repr(corner)[:120])
        category = item.get("obj_cls")
        return GroundingRecord(
            id=self._id(item, where),
            source="vrsbench",
            split=split,
            image=relative(self.root, image),
            width=width,
            height=height,
            expression=" ".join(expression.split()),
            hbb=hbb,
            quad=quad,
            category=str(category) if isinstance(category, str) and category else None,
        )


class _VrsbenchEvalText(_VrsbenchEvalBase):
    family: ClassVar[str] = "conversation"
    task: ClassVar[str] = ""
    default_question: ClassVar[str | None] = None

    def records(self, split: str, report: ConversionReport) -> Iterator[ConversationRecord]:
        """Yield one question-answer conversation per record."""
        for where, item in self._items(split, report):
            try:
                rec = self._record(item, split, where, report)
            except RecordError as e:
                report.skip(where, e.reason, e.detail)
                continue
            report.records_out += 1
            yield rec

    def _record(self, item: dict[str, Any], split: str, where: str, report: ConversionReport) -> ConversationRecord:
        question = item.get("question", self.default_question)
        truth = item.get("ground_truth")
        if not isinstance(question, str) or not question.strip():
            raise RecordError("missing_field", "question")
        if truth is None or not str(truth).strip():
            raise RecordError("missing_field", "ground_truth")
        image = self._image(item, where, report)
        metadata = {k: item[k] for k in ("type", "question_id") if item.get(k) is not None}
        return ConversationRecord(
            id=self._id(item, where),
            source="vrsbench",
            split=split,
            images=(relative(self.root, image),),
            messages=(
                Message("user", (ContentPart("image", image=0), ContentPart("text", text=question.strip()))),
                Message.text("assistant", str(truth).strip()),
            ),
            task=self.task,
            metadata=json.dumps(metadata) if metadata else None,
        )


@register
class VrsbenchEvalVqaConverter(_VrsbenchEvalText):
    """VRSBench VQA evaluation records."""

    name: ClassVar[str] = "vrsbench_eval_vqa"
    description: ClassVar[str] = "VRSBench VQA evaluation: open questions of 12 types on DOTA-v2 and DIOR patches."
    task: ClassVar[str] = "vqa"
    _annotations: ClassVar[tuple[str, ...]] = ("VRSBench_EVAL_vqa.json", "RSBench_EVAL_vqa.json")


@register
class VrsbenchEvalCaptionConverter(_VrsbenchEvalText):
    """VRSBench captioning evaluation records."""

    name: ClassVar[str] = "vrsbench_eval_caption"
    description: ClassVar[str] = "VRSBench captioning evaluation: detailed reference captions."
    task: ClassVar[str] = "caption"
    # the caption records carry the question, but a missing one means VRSBench's own prompt
    default_question: ClassVar[str | None] = "Describe the image in detail"
    _annotations: ClassVar[tuple[str, ...]] = ("VRSBench_EVAL_Cap.json", "RSBench_EVAL_Cap.json")
