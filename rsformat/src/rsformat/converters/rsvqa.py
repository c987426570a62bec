"""RSVQA LR and HR -> :class:`~rsformat.records.ConversationRecord` (task ``"vqa"``).

Each split is a triplet of JSON files (dataset-formats.md §13.1)::

    LR: LR_split_{train,val,test}_{questions,answers,images}.json     images Images_LR/<id>.tif
    HR: USGS_split_{train,val,test,test_phili}_{...}.json              images Data/<id>.tif

``questions`` items hold ``id``, ``img_id``, ``type``, ``question``,
``answers_ids`` and ``active``; ``answers`` items ``id``, ``question_id`` and
``answer``; ``images`` items ``id`` and ``active``. Items with ``active:
false`` (question, answer or image) are skipped. Items are looked up by their
``id`` rather than by list position (the reference loader assumes the two
agree). The spec's misspelled ``quesiton_id`` is accepted and counted.

Options: ``check_images`` (default ``True``).

Example:
    >>> RsvqaLrConverter.name, RsvqaHrConverter.image_dir
    ('rsvqa_lr', 'Data')
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from rsformat.converters._llava import RecordError, iter_json_items, note, relative, resolve_image
from rsformat.converters.base import ConversionReport, Converter, register
from rsformat.records import ContentPart, ConversationRecord, Message

__all__ = ["RsvqaHrConverter", "RsvqaLrConverter"]


class _RsvqaBase(Converter):
    family: ClassVar[str] = "conversation"
    license: ClassVar[str] = "CC-BY-4.0 (Zenodo); imagery: Sentinel-2 (LR), USGS (HR)"
    citation: ClassVar[str] = (
        "@article{lobry2020rsvqa, title={RSVQA: Visual Question Answering for Remote Sensing Data}, "
        "author={Lobry, Sylvain and Marcos, Diego and Murray, Jesse and Tuia, Devis}, journal={IEEE TGRS}, year={2020}}"
    )
    prefix: ClassVar[str] = ""
    image_dir: ClassVar[str] = ""

    def _folder(self) -> Path:
        # the JSON files sit in the root or in one folder below it (e.g. the unzipped archive)
        if any(self.root.glob(f"{self.prefix}_*_questions.json")):
            return self.root
        for sub in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if any(sub.glob(f"{self.prefix}_*_questions.json")):
                return sub
        return self.root

    def _images_folder(self) -> Path:
        # the image folder sits beside the JSON files or in the root
        for base in (self._folder(), self.root):
            if (base / self.image_dir).is_dir():
                return base / self.image_dir
        return self._folder() / self.image_dir

    def splits(self) -> list[str]:
        """The splits with a questions file, e.g. ``["test", "test_phili", "train", "val"]``."""
        pattern = re.compile(rf"^{re.escape(self.prefix)}_(?P<split>\w+?)_questions\.json$")
        return sorted(m["split"] for p in self._folder().glob("*_questions.json") if (m := pattern.match(p.name)))

    def _by_id(self, path: Path, key: str, report: ConversionReport) -> dict[Any, dict[str, Any]]:
        out: dict[Any, dict[str, Any]] = {}
        if not path.is_file():
            report.skip(path.name, "missing_file")
            return out
        # answers and images are lookup tables, not records: keep them out of records_in
        before = report.records_in
        for where, item in iter_json_items(path, report, key):
            if "id" not in item:
                report.skip(where, "missing_field", "id")
                continue
            out[item["id"]] = item
        report.records_in = before
        return out

    def records(self, split: str, report: ConversionReport) -> Iterator[ConversationRecord]:
        """Yield one VQA conversation per active question of ``split``."""
        if split not in self.splits():
            raise ValueError(f"Expected `split` to be one of {self.splits()}, but got {split!r}")
        folder = self._folder()
        stem = f"{self.prefix}_{split}"
        answers = self._by_id(folder / f"{stem}_answers.json", "answers", report)
        images = self._by_id(folder / f"{stem}_images.json", "images", report)
        by_question: dict[Any, dict[str, Any]] = {}
        for a in answers.values():
            qid = a.get("question_id", a.get("quesiton_id"))
            if "question_id" not in a and "quesiton_id" in a:
                report.count("misspelled_quesiton_id")
            if qid is not None and a.get("active", True) is not False:
                by_question.setdefault(qid, a)
        for where, q in iter_json_items(folder / f"{stem}_questions.json", report, "questions"):
            try:
                rec = self._record(q, split, answers, by_question, images, where, report)
            except RecordError as e:
                report.skip(where, e.reason, e.detail)
                continue
            report.records_out += 1
            yield rec

    def _record(
        self,
        q: dict[str, Any],
        split: str,
        answers: dict[Any, dict[str, Any]],
        by_question: dict[Any, dict[str, Any]],
        images: dict[Any, dict[str, Any]],
        where: str,
        report: ConversionReport,
    ) -> ConversationRecord:
        if q.get("active", True) is False:
            raise RecordError("inactive")
        qid, img_id, question = q.get("id"), q.get("img_id"), q.get("question")
        if qid is None or img_id is None or not isinstance(question, str) or not question.strip():
            raise RecordError("missing_field", "id, img_id or question")
        answer = None
        for aid in q.get("answers_ids") or []:
            cand = answers.get(aid)
            if cand is not None:
                if cand.get("active", True) is False:
                    continue
                answer = cand
                break
        if answer is None:
            answer = by_question.get(qid)
            if answer is not None:
                note(report, where, "answer_found_by_question_id")
        if answer is None or not str(answer.get("answer", "")).strip():
            raise RecordError("missing_answer", f"question {qid}")
        image_item = images.get(img_id)
        if image_item is not None and image_item.get("active", True) is False:
            raise RecordError("inactive_image", f"image {img_id}")
        image = resolve_image(
            self.root,
            relative(self.root, self._images_folder() / f"{img_id}.tif"),
            report=report,
            where=where,
            check=bool(self.options.get("check_images", True)),
        )
        user = Message("user", (ContentPart("image", image=0), ContentPart("text", text=question.strip())))
        return ConversationRecord(
            id=f"{split}/{qid}",
            source=self.name,
            split=split,
            images=(relative(self.root, image),),
            messages=(user, Message.text("assistant", str(answer["answer"]).strip())),
            task="vqa",
            metadata=json.dumps({"question_type": q.get("type"), "question_id": qid, "img_id": img_id}),
        )


@register
class RsvqaLrConverter(_RsvqaBase):
    """RSVQA low resolution (Sentinel-2, 256x256)."""

    name: ClassVar[str] = "rsvqa_lr"
    description: ClassVar[str] = (
        "RSVQA-LR: 77k questions on 772 Sentinel-2 tiles (256x256, 10 m); presence, comparison, "
        "rural/urban and count questions."
    )
    prefix: ClassVar[str] = "LR_split"
    image_dir: ClassVar[str] = "Images_LR"


@register
class RsvqaHrConverter(_RsvqaBase):
    """RSVQA high resolution (USGS, 512x512, 15 cm)."""

    name: ClassVar[str] = "rsvqa_hr"
    description: ClassVar[str] = (
        "RSVQA-HR: 1M questions on 10,659 USGS aerial tiles (512x512, 15 cm); presence, comparison, area "
        "and count questions; test_phili is the Philadelphia second test set."
    )
    prefix: ClassVar[str] = "USGS_split"
    image_dir: ClassVar[str] = "Data"
