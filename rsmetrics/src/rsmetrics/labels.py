"""Match free-text class labels from model outputs against a class vocabulary.

Vision-language models write class names the way people do: ``"Small
vehicles"``, ``"storage_tank"``, ``"harbors."``. Evaluators need the dataset's
own spelling (``"small-vehicle"``). :class:`LabelVocabulary` maps one to the
other with a fixed, documented rule set and **no fuzzy matching**: a label that
the rules do not map is unknown, never the "closest" class.

Matching, in order (the first rule that names a class wins):

1. exact match after :func:`normalize_label`;
2. the same after removing an English plural ending from the last word
   (see :func:`singular_candidates`);
3. the synonym table (keys normalised the same way), exactly;
4. the synonym table after plural folding.

Unknown labels can be tallied in a :class:`collections.Counter` passed to the
match methods, so an evaluator can report ``unknown labels: {'tank truck': 3}``.

Example:
    >>> vocab = LabelVocabulary(DOTA_V1_CLASSES)
    >>> vocab.match("Small vehicles")
    'small-vehicle'
    >>> vocab.match("airport") is None
    True
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

from rsmetrics.errors import InvalidInputError

__all__ = [
    "DOTA_V1_CLASSES",
    "DOTA_V2_CLASSES",
    "DOTA_V15_CLASSES",
    "LabelVocabulary",
    "normalize_label",
    "prompt_category_order",
    "singular_candidates",
]

DOTA_V1_CLASSES: tuple[str, ...] = (
    "plane",
    "baseball-diamond",
    "bridge",
    "ground-track-field",
    "small-vehicle",
    "large-vehicle",
    "ship",
    "tennis-court",
    "basketball-court",
    "storage-tank",
    "soccer-ball-field",
    "roundabout",
    "harbor",
    "swimming-pool",
    "helicopter",
)
"""The 15 DOTA-v1.0 classes in devkit order and spelling."""

DOTA_V15_CLASSES: tuple[str, ...] = (*DOTA_V1_CLASSES, "container-crane")
"""DOTA-v1.5: DOTA-v1.0 plus ``container-crane``."""

DOTA_V2_CLASSES: tuple[str, ...] = (*DOTA_V15_CLASSES, "airport", "helipad")
"""DOTA-v2.0: DOTA-v1.5 plus ``airport`` and ``helipad``."""

# Characters removed from both ends of a label: sentence punctuation and the
# quotes/backticks models wrap names in. The space is included so that
# '"plane ."' strips in one pass.
_EDGE_CHARS = ".,:;!?'\"`\u2018\u2019\u201c\u201d "

# English plural endings of the last word, tried in this order, with what
# replaces them. Shortest removal first, so 'planes' -> 'plane' before 'plan'.
_PLURAL_RULES: tuple[tuple[str, str], ...] = (("s", ""), ("es", ""), ("ies", "y"))


def normalize_label(text: str) -> str:
    """Normalise a label for comparison.

    Lower-cases, treats ``-``, ``_`` and runs of whitespace as one space, and
    strips surrounding punctuation (``. , : ; ! ?``), quotes and backticks.

    Args:
        text: Any label text.

    Returns:
        The normalised label, possibly empty.

    Example:
        >>> normalize_label('  "Small_Vehicle". ')
        'small vehicle'
        >>> normalize_label("ground-track   field:")
        'ground track field'
    """
    spaced = text.lower().replace("-", " ").replace("_", " ")
    # collapse whitespace before stripping, so every kind of space counts as one
    return " ".join(spaced.split()).strip(_EDGE_CHARS)


def singular_candidates(label: str) -> list[str]:
    """Possible singular forms of a normalised label, most likely first.

    Only the last word is changed, by removing one English plural ending:
    ``-s`` (not after another ``s``, so ``glass`` stays), then ``-es``, then
    ``-ies`` -> ``-y``. Each rule needs a non-empty stem. The label itself is
    not included. These are candidates only: a candidate counts when it is
    exactly a class name (or synonym), so a wrong candidate never matches.

    Args:
        label: A label already passed through :func:`normalize_label`.

    Returns:
        Zero to three candidate singular forms.

    Example:
        >>> singular_candidates("storage tanks")
        ['storage tank']
        >>> singular_candidates("batteries")
        ['batterie', 'batteri', 'battery']
        >>> singular_candidates("glass")
        []
    """
    head, _, last = label.rpartition(" ")
    prefix = f"{head} " if head else ""
    out: list[str] = []
    for suffix, replacement in _PLURAL_RULES:
        if len(last) > len(suffix) and last.endswith(suffix):
            if suffix == "s" and last.endswith("ss"):
                continue
            out.append(prefix + last[: -len(suffix)] + replacement)
    return out


def prompt_category_order(classes: Iterable[str]) -> list[str]:
    """Class names as written in prompts: the paper's (RSCoVLM) display order.

    Names are sorted by ``name.replace('-', ' ').lower()`` and rendered the
    same way (lower case, ``-`` replaced by a space).

    Args:
        classes: Class names in dataset spelling, e.g. :data:`DOTA_V1_CLASSES`.

    Returns:
        The display names, sorted.

    Example:
        >>> ", ".join(prompt_category_order(["bridge", "baseball-diamond", "basketball-court"]))
        'baseball diamond, basketball court, bridge'
    """
    return sorted(name.replace("-", " ").lower() for name in classes)


class LabelVocabulary:
    """An immutable class list with an optional synonym table.

    Args:
        classes: Class names in the dataset's spelling; the spelling returned by
            :meth:`match`. They must stay distinct after :func:`normalize_label`.
        synonyms: Optional ``{synonym: class}`` table. Keys are normalised like
            labels; values must name a class (in any spelling that normalises
            to it). A synonym may not normalise to a *different* class's name.

    Raises:
        InvalidInputError: on duplicate classes, empty names, or a synonym
            table that points outside the class list or shadows a class.

    Example:
        >>> vocab = LabelVocabulary(["storage-tank", "ship"], {"oil tank": "storage-tank"})
        >>> vocab.match("Oil tanks")
        'storage-tank'
        >>> unknown = Counter()
        >>> vocab.match_many(["ships", "tank truck", "Tank-Truck"], unknown)
        ['ship', None, None]
        >>> dict(unknown)
        {'tank truck': 2}
    """

    __slots__ = ("_classes", "_index", "_synonym_index", "_synonyms")

    def __init__(self, classes: Iterable[str], synonyms: Mapping[str, str] | None = None) -> None:
        self._classes: tuple[str, ...] = tuple(classes)
        index: dict[str, int] = {}
        for i, name in enumerate(self._classes):
            if not isinstance(name, str):
                raise InvalidInputError(f"Expected class names to be str, but got {name!r}")
            key = normalize_label(name)
            if not key:
                raise InvalidInputError(f"Expected non-empty class names, but got {name!r}")
            if key in index:
                raise InvalidInputError(
                    f"Expected distinct class names, but {self._classes[index[key]]!r} and {name!r} "
                    f"both normalise to {key!r}"
                )
            index[key] = i
        self._index = index

        table = dict(synonyms or {})
        synonym_index: dict[str, int] = {}
        for raw_key, target in table.items():
            key = normalize_label(str(raw_key))
            target_key = normalize_label(str(target))
            if target_key not in index:
                raise InvalidInputError(
                    f"Expected synonym {raw_key!r} to map to one of {list(self._classes)}, but got {target!r}"
                )
            if not key:
                raise InvalidInputError(f"Expected non-empty synonyms, but got {raw_key!r}")
            if key in index and index[key] != index[target_key]:
                # a synonym can never win over a class name, so this entry would be dead code
                raise InvalidInputError(
                    f"Synonym {raw_key!r} -> {target!r} shadows the class {self._classes[index[key]]!r}"
                )
            if key in synonym_index and synonym_index[key] != index[target_key]:
                raise InvalidInputError(f"Synonym {raw_key!r} maps to two different classes")
            synonym_index[key] = index[target_key]
        self._synonyms = MappingProxyType(table)
        self._synonym_index = synonym_index

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names, in the order given."""
        return self._classes

    @property
    def synonyms(self) -> Mapping[str, str]:
        """The synonym table as given (read-only)."""
        return self._synonyms

    def __len__(self) -> int:
        return len(self._classes)

    def __repr__(self) -> str:
        return f"LabelVocabulary({len(self._classes)} classes, {len(self._synonyms)} synonyms)"

    def match_index(self, label: str, unknown: Counter[str] | None = None) -> int:
        """Index of the class that ``label`` names, or ``-1``.

        Args:
            label: Raw label text from a model.
            unknown: If given, an unmatched label's normalised form is counted
                here (the empty string for an empty label).

        Returns:
            The index into :attr:`classes`, or ``-1`` if no rule matches.

        Example:
            >>> LabelVocabulary(DOTA_V1_CLASSES).match_index("Harbors")
            12
        """
        key = normalize_label(label)
        found = self._index.get(key)
        if found is None and key:
            found = self._lookup_folded(key, self._index)
            if found is None:
                found = self._synonym_index.get(key)
            if found is None:
                found = self._lookup_folded(key, self._synonym_index)
        if found is None:
            if unknown is not None:
                unknown[key] += 1
            return -1
        return found

    def match(self, label: str, unknown: Counter[str] | None = None) -> str | None:
        """Class name (dataset spelling) that ``label`` names, or ``None``.

        Args:
            label: Raw label text from a model.
            unknown: If given, an unmatched label's normalised form is counted here.

        Returns:
            The class name as spelled in :attr:`classes`, or ``None``.

        Example:
            >>> LabelVocabulary(DOTA_V1_CLASSES).match("small vehicles")
            'small-vehicle'
        """
        i = self.match_index(label, unknown)
        return None if i < 0 else self._classes[i]

    def match_many(self, labels: Iterable[str], unknown: Counter[str] | None = None) -> list[str | None]:
        """:meth:`match` for each label.

        Example:
            >>> LabelVocabulary(["ship"]).match_many(["Ship", "boat"])
            ['ship', None]
        """
        return [self.match(label, unknown) for label in labels]

    def match_indices(self, labels: Iterable[str], unknown: Counter[str] | None = None) -> NDArray[np.int64]:
        """:meth:`match_index` for each label, as an int64 array (``-1`` = unknown).

        Example:
            >>> LabelVocabulary(["ship", "plane"]).match_indices(["planes", "car"]).tolist()
            [1, -1]
        """
        return np.array([self.match_index(label, unknown) for label in labels], dtype=np.int64)

    @staticmethod
    def _lookup_folded(key: str, table: Mapping[str, int]) -> int | None:
        for candidate in singular_candidates(key):
            found = table.get(candidate)
            if found is not None:
                return found
        return None
