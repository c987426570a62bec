"""Synonym replacement of class names in detection samples (paper Sec. III-B3).

With probability ``rate`` per class, a sample's class name is replaced by one of
its synonyms, everywhere in that sample at once: in the prompt's category list
and in every answer line, so the sample stays consistent. Evaluation maps the
synonyms back with :class:`rsmetrics.labels.LabelVocabulary` (``vocabulary_table``
gives its ``{synonym: class}`` form); nothing is ever fuzzily matched.

RSCoVLM carried LLM-generated DOTA synonym lists but never used them (the switch
was unreachable). The table here is short and written by hand, so that no
synonym names another class of the same vocabulary.

Example:
    >>> import numpy as np
    >>> table = {"plane": ("airplane",), "ship": ("boat",)}
    >>> choose_synonyms(["plane", "ship"], table, rate=1.0, rng=np.random.default_rng(0))
    {'plane': 'airplane', 'ship': 'boat'}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from rsformat.records import DetectionRecord

__all__ = ["SYNONYM_TABLES", "apply_synonyms", "choose_synonyms", "resolve_table", "vocabulary_table"]

DOTA_SYNONYMS: dict[str, tuple[str, ...]] = {
    "plane": ("airplane", "aircraft"),
    "ship": ("boat", "vessel"),
    "small-vehicle": ("car", "small car"),
    "large-vehicle": ("truck", "lorry"),
    "storage-tank": ("oil tank", "tank"),
    "harbor": ("dock", "port"),
    "swimming-pool": ("pool",),
    "helicopter": ("chopper",),
    "bridge": ("viaduct",),
    "tennis-court": ("tennis field",),
    "basketball-court": ("basketball field",),
    "baseball-diamond": ("baseball field",),
    "ground-track-field": ("running track", "athletics field"),
    "soccer-ball-field": ("football field", "soccer field"),
    "roundabout": ("traffic circle", "rotary"),
}

SYNONYM_TABLES: dict[str, dict[str, tuple[str, ...]]] = {"dota": DOTA_SYNONYMS}


def resolve_table(spec: str | Mapping[str, Sequence[str]] | None) -> dict[str, tuple[str, ...]]:
    """A synonym table from a built-in name (``"dota"``) or an inline ``{class: [synonyms]}`` mapping."""
    if spec is None:
        return {}
    if isinstance(spec, str):
        if spec not in SYNONYM_TABLES:
            raise ValueError(f"Expected a synonym table among {sorted(SYNONYM_TABLES)}, but got {spec!r}")
        return dict(SYNONYM_TABLES[spec])
    return {str(k): tuple(str(s) for s in v) for k, v in spec.items()}


def vocabulary_table(table: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """``{synonym: class}``, the form :class:`rsmetrics.labels.LabelVocabulary` takes."""
    return {syn: cls for cls, syns in table.items() for syn in syns}


def choose_synonyms(
    categories: Sequence[str], table: Mapping[str, Sequence[str]], *, rate: float, rng: np.random.Generator
) -> dict[str, str]:
    """For each class with synonyms, with probability ``rate`` pick one: ``{class: synonym}``.

    One uniform draw per class in ``categories`` order whatever the table, so the
    stream of random draws does not depend on which classes have synonyms.
    """
    out: dict[str, str] = {}
    for cls in categories:
        u, k = rng.random(), rng.random()
        options = table.get(cls, ())
        if options and u < rate:
            out[cls] = options[int(k * len(options))]
    return out


def apply_synonyms(
    record: DetectionRecord, categories: Sequence[str], mapping: Mapping[str, str]
) -> tuple[DetectionRecord, list[str]]:
    """The record and its prompt category list with classes renamed by ``mapping``."""
    if not mapping:
        return record, list(categories)
    objects = tuple(replace(o, category=mapping.get(o.category, o.category)) for o in record.objects)
    return replace(record, objects=objects), [mapping.get(c, c) for c in categories]
