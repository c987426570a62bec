"""VHM evaluation files (``datasets_eval/*.json``) with the classification prompt suffix removed.

``vhm`` (:class:`~rsformat.converters.geochat.VhmConverter`) already reads
the eval files as ``eval_<name>`` splits. ``vhm_eval`` is the same reader
restricted to those splits, plus one counted cleaning rule (dataset-formats.md
§2): the scene-classification prompts of ``cls_*.json`` end with "Answer with
one word or short phrase.", a prompt choice that RSCoVLM strips
(``cls_answer_suffix``). Other files are left as written.

Example:
    >>> apply_rules("Classify the image.\\nAnswer with one word or short phrase.", VHM_CLS_RULES)
    'Classify the image.'
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import ClassVar

from rsformat.converters.base import CleaningRule, ConversionReport, apply_rules, register
from rsformat.converters.geochat import VhmConverter
from rsformat.records import ConversationRecord, Message

__all__ = ["VHM_CLS_RULES", "VhmEvalConverter"]

_SUFFIX = re.compile(r"\s*Answer with one word or short phrase\.?\s*$", re.IGNORECASE)

VHM_CLS_RULES: tuple[CleaningRule, ...] = (
    CleaningRule(
        "cls_answer_suffix",
        lambda s: _SUFFIX.sub("", s),
        "drop the trailing 'Answer with one word or short phrase.' of the cls_* prompts (RSCoVLM)",
    ),
)
"""Rules applied to the user turns of the ``cls_*`` eval files."""


@register
class VhmEvalConverter(VhmConverter):
    """The VHM eval files only (``eval_<name>`` splits), classification prompt suffix removed."""

    name: ClassVar[str] = "vhm_eval"
    description: ClassVar[str] = (
        "VHM evaluation sets (presence, position, colour, counting, scene classification, RSVQA, grounding...)."
    )

    def splits(self) -> list[str]:
        """``eval_<name>`` for each ``datasets_eval/<name>.json``."""
        return [s for s in super().splits() if s.startswith("eval_")]

    def records(self, split: str, report: ConversionReport) -> Iterator[ConversationRecord]:
        """The ``vhm`` records of ``split``; in ``eval_cls_*`` splits the user turns are cleaned."""
        clean = split.startswith("eval_cls_")
        for rec in super().records(split, report):
            messages = self._clean(rec.messages, report) if clean else rec.messages
            yield dataclasses.replace(rec, source=self.name, messages=messages)

    @staticmethod
    def _clean(messages: tuple[Message, ...], report: ConversionReport) -> tuple[Message, ...]:
        out = []
        for m in messages:
            if m.role != "user":
                out.append(m)
                continue
            parts = tuple(
                dataclasses.replace(p, text=apply_rules(p.text, VHM_CLS_RULES, report))
                if p.type == "text" and p.text
                else p
                for p in m.content
            )
            # a part emptied by the rule would be an empty text part: dropped
            out.append(dataclasses.replace(m, content=tuple(p for p in parts if p.type != "text" or p.text)))
        return tuple(out)
