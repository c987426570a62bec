"""LRS-VQA (large-image VQA) -> :class:`~rsformat.records.ZoomRecord`.

Two converters (dataset-formats.md §12, upstream-rscovlm.md §2.2 (d), §5.1):

``lrs_vqa``
    The benchmark JSONL (``LRS_VQA_merged.jsonl``): ``question_id`` (prefix
    ``FAIR``, ``GLH-Bridge`` or ``STAR``), ``image``, ``category``, ``text``
    (the question plus an instruction suffix), ``ground_truth``, ``hbox``
    (original-pixel xyxy; absent for ``count`` questions), ``image_size``.
    Split ``test``.
``lrs_vqa_zoom``
    The training JSON arrays (``annotations/train/*.json``): ``image`` (with a
    private absolute prefix), ``question``/``answer`` or the MME-RealWorld MCQ
    keys ``Text``/``Answer choices``/``Ground truth``, ``bbox_info.crop_hbox``
    (the regions of interest) and ``image_ori_width``/``image_ori_height``.
    Split ``train``.

The instruction suffix ("Answer the question using a single word or phrase.")
is a prompt choice, not part of the question: the cleaning rule
``answer_instruction_suffix`` removes it and is counted.

Options: ``annotation`` (a file under the root; default: the known names, else the only ``*.jsonl`` of the root),
``image_root`` (a folder under the root that image paths are relative to;
default the root), ``check_images`` (default ``True``).

Example:
    >>> apply_rules("Is it a ship?\\n Answer the question using a single word or phrase.", LRS_VQA_RULES)
    'Is it a ship?'
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from rsformat.converters._llava import (
    RecordError,
    find_file,
    iter_json_items,
    iter_jsonl,
    note,
    relative,
    resolve_image,
)
from rsformat.converters.base import CleaningRule, ConversionReport, Converter, apply_rules, register
from rsformat.converters.refgeo import checked_hbb, record_size
from rsformat.records import ZoomRecord

__all__ = ["LRS_VQA_RULES", "LrsVqaConverter", "LrsVqaZoomConverter", "mcq_choices", "strip_private_prefix"]

_SUFFIX = re.compile(r"\s*Answer the question using a single word or phrase\.?\s*$", re.IGNORECASE)

LRS_VQA_RULES: tuple[CleaningRule, ...] = (
    CleaningRule(
        "answer_instruction_suffix",
        lambda s: _SUFFIX.sub("", s),
        "drop the trailing 'Answer the question using a single word or phrase.' (both spacings seen)",
    ),
    CleaningRule("strip", str.strip, "surrounding whitespace"),
)
"""Question cleaning: the instruction suffix removed (removesuffix-like), then stripped."""

_CITATION = (
    "@article{luo2025lrsvqa, title={When Large Vision-Language Model Meets Large Remote Sensing Imagery: "
    "Coarse-to-Fine Text-Guided Token Pruning}, author={Luo, Junwei and others}, journal={arXiv:2503.07588}, "
    "year={2025}}"
)

_PRIVATE_MARKER = "/dataset/"


def strip_private_prefix(path: str) -> str:
    """Drop a private absolute prefix up to and including ``/dataset/``.

    Only absolute paths are touched, so a relative path that merely contains
    a ``dataset`` folder is left alone.

    Example:
        >>> strip_private_prefix("/gruntdata/rs_nas/workspace/junhong.ljw/dataset/LRS_VQA/images/a.png")
        'LRS_VQA/images/a.png'
        >>> strip_private_prefix("LRS_VQA/images/a.png")
        'LRS_VQA/images/a.png'
    """
    if path.startswith("/") and _PRIVATE_MARKER in path:
        return path.split(_PRIVATE_MARKER, 1)[1]
    return path


def _source(question_id: str) -> str:
    prefix = question_id.rsplit("_", 1)[0] if "_" in question_id else question_id
    return f"lrs_vqa/{prefix.lower()}"


class _LrsBase(Converter):
    family: ClassVar[str] = "zoom"
    license: ClassVar[str] = "see ll-13/LRS-VQA; images from FAIR1M, GLH-Bridge and STAR (academic use)"
    citation: ClassVar[str] = _CITATION
    _candidates: ClassVar[tuple[str, ...]] = ()

    def _image(self, image: Any, where: str, report: ConversionReport) -> Path:
        if not isinstance(image, str):
            raise RecordError("missing_image", "no image path")
        base = self.options.get("image_root") or ""
        rel = f"{base.rstrip('/')}/{image}" if base else image
        return resolve_image(
            self.root, rel, report=report, where=where, check=bool(self.options.get("check_images", True))
        )

    def _rois(self, boxes: list[Any], width: int, height: int, where: str, report: ConversionReport) -> tuple:
        rois = []
        for box in boxes:
            hbb, clipped = checked_hbb(box, width, height)
            if clipped:
                note(report, where, "boxes_clipped", repr(box))
            rois.append(hbb)
        return tuple(rois)


@register
class LrsVqaConverter(_LrsBase):
    """LRS-VQA benchmark JSONL."""

    name: ClassVar[str] = "lrs_vqa"
    description: ClassVar[str] = (
        "LRS-VQA benchmark: 7,333 questions on large FAIR1M, GLH-Bridge and STAR images (up to 27k px), "
        "8 categories, with the box of the object each question is about."
    )

    def _annotation(self) -> Path | None:
        return find_file(
            self.root,
            ("annotations/benchmark/LRS_VQA_merged.jsonl", "LRS_VQA_merged.jsonl"),
            self.options.get("annotation"),
            only_match="*.jsonl",
        )

    def splits(self) -> list[str]:
        """``["test"]`` when the benchmark file is found."""
        return ["test"] if self._annotation() is not None else []

    def records(self, split: str, report: ConversionReport) -> Iterator[ZoomRecord]:
        """Yield one record per benchmark question."""
        if split != "test":
            raise ValueError(f"Expected `split` to be 'test', but got {split!r}")
        path = self._annotation()
        if path is None:
            return
        for where, item in iter_jsonl(path, report):
            try:
                rec = self._record(item, where, report)
            except RecordError as e:
                report.skip(where, e.reason, e.detail)
                continue
            report.records_out += 1
            yield rec

    def _record(self, item: dict[str, Any], where: str, report: ConversionReport) -> ZoomRecord:
        qid, text, answer = item.get("question_id"), item.get("text"), item.get("ground_truth")
        if not isinstance(qid, str) or not isinstance(text, str) or answer is None:
            raise RecordError("missing_field", "question_id, text or ground_truth")
        image = self._image(item.get("image"), where, report)
        size = item.get("image_size")
        fields = {"w": size[0], "h": size[1]} if isinstance(size, list) and len(size) == 2 else {}
        # image_size is taken as [width, height]: every checked box fits that order (notes §12)
        width, height = record_size(fields, "w", "h", image)
        hbox = item.get("hbox")
        rois = self._rois([hbox], width, height, where, report) if hbox is not None else ()
        category = item.get("category")
        return ZoomRecord(
            id=qid,
            source=_source(qid),
            split="test",
            image=relative(self.root, image),
            width=width,
            height=height,
            question=apply_rules(text, LRS_VQA_RULES, report),
            answer=str(answer).strip(),
            rois=rois,
            category=None if category is None else str(category),
        )


_CHOICE_PREFIX = re.compile(r"^\(\s*([A-Z])\s*\)\s*")
_LETTER = re.compile(r"^\(?\s*([A-Z])\s*\)?(?:[\s.:]|$)")


def mcq_choices(choices: Any, truth: Any, where: str, report: ConversionReport) -> tuple[tuple[str, ...], str]:
    """Choices without their ``(A)`` prefixes, and the answer letter."""
    if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
        raise RecordError("bad_mcq", "Answer choices is not a list of strings")
    letters = [m[1] if (m := _CHOICE_PREFIX.match(c)) else None for c in choices]
    expected = [chr(ord("A") + i) for i in range(len(choices))]
    if letters == expected:
        # the letter is the choice's position, so the prefix carries nothing
        texts = tuple(_CHOICE_PREFIX.sub("", c).strip() for c in choices)
        note(report, where, "choice_prefixes_stripped")
    else:
        texts = tuple(c.strip() for c in choices)
    truth_text = str(truth).strip() if truth is not None else ""
    m = _LETTER.match(truth_text)
    if m and m[1] in expected:
        return texts, m[1]
    if truth_text in texts:
        return texts, expected[texts.index(truth_text)]
    raise RecordError("bad_mcq", f"Ground truth {truth!r} is no choice letter")


@register
class LrsVqaZoomConverter(_LrsBase):
    """LRS-VQA training JSON (open-ended and MCQ) with the regions of interest for zoom-in."""

    name: ClassVar[str] = "lrs_vqa_zoom"
    description: ClassVar[str] = (
        "LRS-VQA training data (open-ended GPT-4V and template questions, MCQ) on large DOTA-v2, GLH-Bridge "
        "and STAR images, with the crop boxes used for zoom-in chain-of-thought."
    )

    def _annotations(self) -> list[Path]:
        chosen = self.options.get("annotation")
        if chosen is not None:
            paths = [chosen] if isinstance(chosen, str) else list(chosen)
            return [p for p in (find_file(self.root, (), c) for c in paths) if p is not None]
        for folder in ("annotations/train", "."):
            found = sorted((self.root / folder).glob("*.json"))
            if found:
                return found
        return []

    def splits(self) -> list[str]:
        """``["train"]`` when a training JSON is found."""
        return ["train"] if self._annotations() else []

    def records(self, split: str, report: ConversionReport) -> Iterator[ZoomRecord]:
        """Yield one record per training question of every annotation file."""
        if split != "train":
            raise ValueError(f"Expected `split` to be 'train', but got {split!r}")
        for path in self._annotations():
            for where, item in iter_json_items(path, report):
                try:
                    rec = self._record(item, path.stem, where, report)
                except RecordError as e:
                    report.skip(where, e.reason, e.detail)
                    continue
                report.records_out += 1
                yield rec

    def _record(self, item: dict[str, Any], stem: str, where: str, report: ConversionReport) -> ZoomRecord:
        raw = item.get("image")
        if not isinstance(raw, str):
            raise RecordError("missing_image", "no image path")
        rel = strip_private_prefix(raw)
        if rel != raw:
            report.count("private_prefix_stripped")
        image = self._image(rel, where, report)
        width, height = record_size(item, "image_ori_width", "image_ori_height", image)
        choices: tuple[str, ...] | None = None
        if "Text" in item:
            question = item["Text"]
            choices, answer = mcq_choices(item.get("Answer choices"), item.get("Ground truth"), where, report)
        else:
            question, answer = item.get("question"), item.get("answer")
        if not isinstance(question, str) or not question.strip() or answer is None or not str(answer).strip():
            raise RecordError("missing_field", "question or answer")
        info = item.get("bbox_info") or {}
        boxes = info.get("crop_hbox") if isinstance(info, dict) else None
        if boxes is not None and not isinstance(boxes, list):
            raise RecordError("bad_box", "crop_hbox is not a list")
        rois = self._rois(boxes or [], width, height, where, report)
        rid = item.get("question_id", item.get("id", item.get("Question_id")))
        index = where.rsplit("[", 1)[-1].rstrip("]")
        category = item.get("category", item.get("Category"))
        return ZoomRecord(
            id=f"{stem}/{rid if rid is not None else index}",
            source=self.name,
            split="train",
            image=relative(self.root, image),
            width=width,
            height=height,
            question=apply_rules(question, LRS_VQA_RULES, report),
            answer=str(answer).strip(),
            rois=rois,
            choices=choices,
            category=None if category is None else str(category),
        )
