"""Scoring of short text answers: classification, VQA, multiple choice and LRS-VQA.

Every score here is built from two named, composable parts:

* a **normaliser** chain (:data:`NORMALIZERS`), applied to prediction and
  target alike, e.g. ``("lower", "strip", "strip_period")``;
* a **matcher** (:data:`MATCHERS`) that decides whether a normalised prediction
  answers a normalised target, e.g. ``"exact"`` or ``"whole_word_contains"``.

Two rules hold for every matcher, the lenient legacy ones included:

* a prediction that is not a string (``None``, a number, ...) is wrong;
* a prediction that is empty after normalisation is wrong, and so is any
  prediction for a target that is empty after normalisation. The reference
  scorers that test ``pred in gt`` count an empty output as correct; pass
  ``allow_empty=True`` only to reproduce such numbers.

Example:
    >>> match_answer("Airport.", "port", matcher="gt_in_pred")  # legacy substring test
    True
    >>> match_answer("Airport.", "port", matcher="whole_word_contains")
    False
    >>> vqa_accuracy(["Yes.", "no", "3"], ["yes", "yes", "3"]).overall_accuracy
    0.6666666666666666
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from rsmetrics._wordnet import ENV_VAR as WORDNET_ENV_VAR
from rsmetrics._wordnet import INSTALL_HINT as WORDNET_INSTALL_HINT
from rsmetrics._wordnet import SynsetLookup, load_wordnet_lookup
from rsmetrics.errors import InvalidInputError
from rsmetrics.labels import normalize_label

__all__ = [
    "CLASSIFICATION_NORMALIZERS",
    "DEFAULT_NORMALIZERS",
    "MATCHERS",
    "NORMALIZERS",
    "WORDNET_ENV_VAR",
    "WORDNET_INSTALL_HINT",
    "ClassificationResult",
    "GroupAccuracy",
    "LRSVQARecord",
    "LRSVQAResult",
    "LRSVQASourceResult",
    "Matcher",
    "MultipleChoiceResult",
    "Normalizer",
    "SynsetLookup",
    "VQAResult",
    "classification_accuracy",
    "extract_choice",
    "get_matcher",
    "load_wordnet_lookup",
    "lrsvqa_scores",
    "match_answer",
    "multiple_choice_accuracy",
    "normalize_answer",
    "vqa_accuracy",
    "wordnet_matcher",
]

Normalizer = Callable[[str], str]
"""A function ``str -> str``; chains of them are applied left to right."""

Matcher = Callable[[str, str], bool]
"""A function ``(prediction, target) -> bool`` on already-normalised strings."""

NormalizerSpec = str | Normalizer | Sequence[str | Normalizer]

# ---------------------------------------------------------------------------
# Normalisers
# ---------------------------------------------------------------------------

# VQAv2 maps zero..ten; counts in remote-sensing scenes run higher.
_NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_ARTICLES = frozenset({"a", "an", "the"})
_ASCII_PUNCTUATION_TABLE = str.maketrans("", "", string.punctuation)
_APOSTROPHES = frozenset("'\u2019\u2018`")


def _is_punctuation(char: str) -> bool:
    return char in string.punctuation or unicodedata.category(char).startswith("P")


def _vqa_normalize(text: str) -> str:
    text = text.lower()
    out: list[str] = []
    for i, char in enumerate(text):
        if not _is_punctuation(char):
            out.append(char)
        elif 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit():
            # "3.5", "1,000", "10:30" keep their separator: it is part of the number.
            out.append(char)
        elif char in _APOSTROPHES:
            # Deleting (not spacing) keeps "don't" and "ship's" one token.
            continue
        else:
            out.append(" ")
    tokens = [_NUMBER_WORDS.get(tok, tok) for tok in "".join(out).split()]
    return " ".join(tok for tok in tokens if tok not in _ARTICLES)


NORMALIZERS: Mapping[str, Normalizer] = {
    "lower": str.lower,
    "strip": str.strip,
    # str.strip(".") removes periods at both ends, as RSCoVLM's `.strip(".")` does.
    "strip_period": lambda s: s.strip("."),
    "remove_spaces": lambda s: "".join(s.split()),
    "remove_periods": lambda s: s.replace(".", ""),
    "remove_punctuation": lambda s: s.translate(_ASCII_PUNCTUATION_TABLE),
    "separators_to_spaces": lambda s: s.replace("-", " ").replace("_", " "),
    "collapse_spaces": lambda s: " ".join(s.split()),
    "label": normalize_label,
    "vqa": _vqa_normalize,
}
"""Named normalisers.

* ``lower``: ``str.lower``.
* ``strip``: strip surrounding whitespace.
* ``strip_period``: strip periods at both ends (``str.strip(".")``), not whitespace.
* ``remove_spaces``: delete all whitespace (GeoChat, VHM).
* ``remove_periods``: delete every ``.`` (GeoChat scene classification).
* ``remove_punctuation``: delete every ASCII punctuation character (TEOChat).
* ``separators_to_spaces``: ``-`` and ``_`` become spaces.
* ``collapse_spaces``: strip, and turn runs of whitespace into one space.
* ``label``: class-name normalisation, the same as detection labels
  (:func:`rsmetrics.labels.normalize_label`): lower-case, ``-``/``_`` and
  whitespace runs as one space, ``. , : ; ! ?``, quotes and backticks stripped
  at both ends.
* ``vqa``: VQAv2-style: lower-case; punctuation becomes a space (apostrophes are
  deleted) except between two digits (``3.5``, ``1,000``); the number words
  ``zero`` .. ``twenty`` become digits; the articles ``a``, ``an``, ``the`` are
  dropped; whitespace collapsed. Unlike the VQAv2 script it does not expand
  contractions nor map ``none`` to ``0``.
"""

DEFAULT_NORMALIZERS: tuple[str, ...] = ("lower", "strip", "strip_period")
"""``.lower().strip().strip(".")``: what RSCoVLM applies before every comparison."""

CLASSIFICATION_NORMALIZERS: tuple[str, ...] = ("label",)
"""Default for :func:`classification_accuracy`: case, ``-``/``_``/space and end punctuation ignored."""


def _resolve_normalizers(normalizers: NormalizerSpec) -> tuple[Normalizer, ...]:
    # A bare string is one name; iterating it would yield single characters.
    specs: Sequence[str | Normalizer]
    specs = (normalizers,) if isinstance(normalizers, str) or callable(normalizers) else normalizers
    resolved: list[Normalizer] = []
    for spec in specs:
        if callable(spec):
            resolved.append(spec)
        elif isinstance(spec, str) and spec in NORMALIZERS:
            resolved.append(NORMALIZERS[spec])
        else:
            raise InvalidInputError(
                f"Expected each normalizer to be a callable or one of {sorted(NORMALIZERS)}, but got {spec!r}"
            )
    return tuple(resolved)


def _apply(chain: tuple[Normalizer, ...], text: object) -> str | None:
    if not isinstance(text, str):
        return None
    for func in chain:
        text = func(text)
    return text


def normalize_answer(text: object, normalizers: NormalizerSpec = DEFAULT_NORMALIZERS) -> str:
    """Apply a chain of normalisers to one answer.

    Args:
        text: The answer. Anything that is not a ``str`` (``None`` included)
            gives ``""``.
        normalizers: Names from :data:`NORMALIZERS` or callables ``str -> str``,
            applied left to right; a single name or callable is accepted too.

    Returns:
        The normalised text.

    Raises:
        InvalidInputError: An unknown normaliser name.

    Example:
        >>> normalize_answer("  Airport. ")
        'airport'
        >>> normalize_answer("There are Two ships.", "vqa")
        'there are 2 ships'
        >>> normalize_answer("Storage_Tank.", ("label",))
        'storage tank'
        >>> normalize_answer(None)
        ''
    """
    result = _apply(_resolve_normalizers(normalizers), text)
    return "" if result is None else result


# ---------------------------------------------------------------------------
# Matchers
# ---------------------------------------------------------------------------

# Hyphens count as word characters so that "no" is not found in "no-go".
_WORD_CHARS = r"\w-"
_YES_NO = re.compile(rf"(?<![{_WORD_CHARS}])(yes|no)(?![{_WORD_CHARS}])", re.IGNORECASE)


def _exact(prediction: str, target: str) -> bool:
    return prediction == target


@lru_cache(maxsize=4096)
def _whole_word_pattern(target: str) -> re.Pattern[str]:
    # Cached beyond re's own small cache: a benchmark has thousands of distinct targets.
    return re.compile(rf"(?<![{_WORD_CHARS}]){re.escape(target)}(?![{_WORD_CHARS}])")


def _whole_word_contains(prediction: str, target: str) -> bool:
    return _whole_word_pattern(target).search(prediction) is not None


def _yes_no(prediction: str, target: str) -> bool:
    if target.lower() not in ("yes", "no"):
        return prediction == target
    found = _YES_NO.search(prediction)
    return found is not None and found.group(1).lower() == target.lower()


def _gt_in_pred(prediction: str, target: str) -> bool:
    return target in prediction


def _pred_in_gt(prediction: str, target: str) -> bool:
    return prediction in target


def _either(prediction: str, target: str) -> bool:
    return target in prediction or prediction in target


class _WordNetMatcher:
    """Exact match, or both strings share a WordNet synset."""

    __name__ = "wordnet"

    def __init__(self, synsets_of: SynsetLookup | None, wordnet_dir: str | None) -> None:
        self._synsets_of = synsets_of
        self._wordnet_dir = wordnet_dir

    def load(self) -> SynsetLookup:
        if self._synsets_of is None:
            self._synsets_of = load_wordnet_lookup(self._wordnet_dir)
        return self._synsets_of

    def __call__(self, prediction: str, target: str) -> bool:
        if prediction == target:
            return True
        synsets_of = self.load()
        # The reference asks for path_similarity > 0.8 on some synset pair;
        # path similarity is 1 / (1 + distance), which exceeds 0.8 only at
        # distance 0, i.e. for the same synset.
        return not set(synsets_of(target)).isdisjoint(synsets_of(prediction))

    def __repr__(self) -> str:
        return "wordnet_matcher()"


def wordnet_matcher(synsets_of: SynsetLookup | None = None, *, wordnet_dir: str | None = None) -> Matcher:
    """Build the ``wordnet`` matcher: exact match, or a shared WordNet synset.

    This is the LRS-VQA rule. The reference accepts a pair when some synset
    pair has ``path_similarity > 0.8``; path similarity is ``1 / (1 +
    distance)``, so that means *the same synset*, which is what is tested here.
    ``car``/``cars``, ``2``/``two``, ``grey``/``gray`` match; answers with
    spaces have no synset and match only exactly.

    Args:
        synsets_of: ``word -> set of synset names``. ``None`` builds the nltk
            lookup (:func:`load_wordnet_lookup`) the first time a non-identical
            pair is compared.
        wordnet_dir: Corpus location for that lookup; see
            :func:`load_wordnet_lookup`.

    Returns:
        A matcher ``(prediction, target) -> bool``.

    Example:
        >>> table = {"car": {"car.n.01"}, "auto": {"car.n.01"}, "bus": {"bus.n.01"}}
        >>> match = wordnet_matcher(lambda w: table.get(w, set()))
        >>> match("auto", "car"), match("bus", "car")
        (True, False)
    """
    return _WordNetMatcher(synsets_of, wordnet_dir)


class _LazyDefaultWordNet:
    # Lives in MATCHERS; nltk is touched only on the first non-identical pair.
    # It holds no lookup itself: load_wordnet_lookup caches per corpus
    # location, so a changed $RSMETRICS_WORDNET_DIR is honoured.
    __name__ = "wordnet"

    def __call__(self, prediction: str, target: str) -> bool:
        return _WordNetMatcher(None, None)(prediction, target)

    def __repr__(self) -> str:
        return "wordnet_matcher()"


MATCHERS: Mapping[str, Matcher] = {
    "exact": _exact,
    "whole_word_contains": _whole_word_contains,
    "yes_no": _yes_no,
    "gt_in_pred": _gt_in_pred,
    "pred_in_gt": _pred_in_gt,
    "either": _either,
    "wordnet": _LazyDefaultWordNet(),
}
"""Named matchers, each ``(prediction, target) -> bool`` on normalised text.

* ``exact``: equality.
* ``whole_word_contains``: the target occurs in the prediction as whole words
  (``port`` is not in ``airport``, ``no`` is not in ``not sure`` or
  ``north``). Still lenient for yes/no: ``"yes, no doubt"`` contains ``no``.
* ``yes_no``: for a ``yes``/``no`` target, the first standalone ``yes`` or ``no``
  of the prediction must equal it; other targets fall back to ``exact``.
* ``gt_in_pred``, ``pred_in_gt``, ``either``: the legacy substring tests of
  RSCoVLM (``gt in pred``), VHM (``pred in gt``) and RSCoVLM's VHM port (both).
  They are **lenient**: ``port`` is found in ``airport`` and ``a`` in any
  answer with that letter. Use them only to reproduce published numbers.
* ``wordnet``: ``exact``, or the two strings share a WordNet synset; needs the
  optional nltk dependency and a local corpus (see :func:`wordnet_matcher`).
"""


def get_matcher(matcher: str | Matcher, *, wordnet_dir: str | None = None) -> Matcher:
    """Resolve a matcher name, or pass a callable through.

    ``"wordnet"`` loads the corpus now, so that a missing nltk or corpus fails
    before any scoring.

    Args:
        matcher: A key of :data:`MATCHERS` or a callable ``(prediction, target) -> bool``.
        wordnet_dir: Corpus location for ``"wordnet"``.

    Returns:
        The matcher.

    Raises:
        InvalidInputError: An unknown name.
        RSMetricsError: ``"wordnet"`` without nltk or corpus.

    Example:
        >>> get_matcher("exact")("a", "a")
        True
    """
    if callable(matcher):
        if isinstance(matcher, _LazyDefaultWordNet):
            matcher = "wordnet"
        else:
            return matcher
    if matcher == "wordnet":
        resolved = _WordNetMatcher(None, wordnet_dir)
        resolved.load()
        return resolved
    if isinstance(matcher, str) and matcher in MATCHERS:
        return MATCHERS[matcher]
    raise InvalidInputError(f"Expected `matcher` to be a callable or one of {sorted(MATCHERS)}, but got {matcher!r}")


def _score_one(
    prediction: object,
    target: str,
    matcher: Matcher,
    chain: tuple[Normalizer, ...],
    allow_empty: bool,
) -> bool:
    pred = _apply(chain, prediction)
    if pred is None:
        return False
    if not allow_empty and (not pred or not target):
        return False
    return bool(matcher(pred, target))


def match_answer(
    prediction: object,
    target: str,
    *,
    matcher: str | Matcher = "exact",
    normalizers: NormalizerSpec = DEFAULT_NORMALIZERS,
    allow_empty: bool = False,
) -> bool:
    """Decide whether one prediction answers one target.

    Both are normalised with the same chain, then compared by the matcher.

    Args:
        prediction: The model's answer; a non-``str`` is wrong.
        target: The reference answer.
        matcher: A name from :data:`MATCHERS` or a callable.
        normalizers: See :func:`normalize_answer`.
        allow_empty: Let an empty (normalised) prediction or target reach the
            matcher, as the legacy scorers did. Off by default: empty is wrong.

    Returns:
        Whether the prediction is correct.

    Example:
        >>> match_answer("No.", "no"), match_answer("not sure", "no", matcher="whole_word_contains")
        (True, False)
        >>> match_answer("", "airport", matcher="pred_in_gt")
        False
        >>> match_answer("", "airport", matcher="pred_in_gt", allow_empty=True)
        True
    """
    chain = _resolve_normalizers(normalizers)
    norm_target = _apply(chain, target)
    if norm_target is None:
        return False
    return _score_one(prediction, norm_target, get_matcher(matcher), chain, allow_empty)


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else math.nan


@dataclass(frozen=True)
class GroupAccuracy:
    """Correct and total counts of one group (a class, type, category or source).

    Example:
        >>> GroupAccuracy(3, 4).accuracy
        0.75
    """

    num_correct: int
    num_total: int

    @property
    def accuracy(self) -> float:
        """``num_correct / num_total``; NaN for an empty group."""
        return _ratio(self.num_correct, self.num_total)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form: ``accuracy``, ``num_correct``, ``num_total``."""
        return {
            "accuracy": self.accuracy,
            "num_correct": self.num_correct,
            "num_total": self.num_total,
        }


def _groups_to_dict(groups: Mapping[str, GroupAccuracy]) -> dict[str, dict[str, Any]]:
    return {name: group.to_dict() for name, group in groups.items()}


def _count_groups(labels: Sequence[str], correct: Sequence[bool]) -> dict[str, GroupAccuracy]:
    totals: dict[str, list[int]] = {}
    for label, ok in zip(labels, correct, strict=True):
        entry = totals.setdefault(label, [0, 0])
        entry[0] += int(ok)
        entry[1] += 1
    return {label: GroupAccuracy(*totals[label]) for label in sorted(totals)}


def _check_lengths(predictions: Sequence[object], targets: Sequence[object], what: str = "targets") -> None:
    if len(predictions) != len(targets):
        raise InvalidInputError(
            f"Expected `predictions` and `{what}` to have the same length, "
            f"but got {len(predictions)} predictions and {len(targets)} {what}"
        )


def _as_sequence(values: Iterable[Any], name: str) -> Sequence[Any]:
    if isinstance(values, (str, bytes)):
        raise InvalidInputError(f"Expected `{name}` to be a sequence of answers, but got a single string")
    return values if isinstance(values, Sequence) else list(values)


# ---------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassificationResult:
    """Scene-classification accuracy against a closed class vocabulary.

    Attributes:
        accuracy: Correct predictions / all samples (NaN for no samples).
        mean_per_class_accuracy: Mean of ``per_class`` accuracies over classes
            with at least one target sample.
        num_correct: Correct predictions.
        num_total: All samples.
        num_out_of_vocabulary: Predictions that normalise to no class (empty,
            non-``str`` and free-text answers included); all are wrong.
        per_class: Per target class (by its name as given in ``classes``), the
            correct and total counts, i.e. that class's recall. Classes
            without target samples are absent.
    """

    accuracy: float
    mean_per_class_accuracy: float
    num_correct: int
    num_total: int
    num_out_of_vocabulary: int
    per_class: dict[str, GroupAccuracy] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict (JSON-ready) form.

        Example:
            >>> classification_accuracy(["Airport"], ["airport"], ["airport"]).to_dict()["accuracy"]
            1.0
        """
        return {
            "accuracy": self.accuracy,
            "mean_per_class_accuracy": self.mean_per_class_accuracy,
            "num_correct": self.num_correct,
            "num_total": self.num_total,
            "num_out_of_vocabulary": self.num_out_of_vocabulary,
            "per_class": _groups_to_dict(self.per_class),
        }


def classification_accuracy(
    predictions: Sequence[object],
    targets: Sequence[str],
    classes: Iterable[str],
    *,
    normalizers: NormalizerSpec = CLASSIFICATION_NORMALIZERS,
) -> ClassificationResult:
    """Exact-match classification accuracy against a class vocabulary.

    Predictions, targets and class names are normalised alike (default:
    ``"label"``: case, ``-``/``_`` versus space, and end periods do not matter).
    A prediction is correct iff it normalises to exactly its target's class;
    one that normalises to no class at all is out of vocabulary (counted, and
    wrong). There is no substring test: ``"airport"`` is not ``"port"``.

    Args:
        predictions: ``(N,)`` model answers; non-``str`` items are wrong.
        targets: ``(N,)`` true class names; each must normalise to a class.
        classes: The class vocabulary.
        normalizers: See :func:`normalize_answer`.

    Returns:
        A :class:`ClassificationResult`.

    Raises:
        InvalidInputError: Lengths differ, two classes normalise alike, a
            class is empty, or a target is not in the vocabulary.

    Example:
        >>> r = classification_accuracy(
        ...     ["Airport.", "port", "parking_lot", "I think a port"],
        ...     ["airport", "port", "parking lot", "port"],
        ...     ["airport", "port", "parking lot"])
        >>> r.accuracy, r.num_out_of_vocabulary, r.per_class["port"].accuracy
        (0.75, 1, 0.5)
    """
    predictions = _as_sequence(predictions, "predictions")
    targets = _as_sequence(targets, "targets")
    _check_lengths(predictions, targets)
    chain = _resolve_normalizers(normalizers)

    vocabulary: dict[str, str] = {}
    for name in _as_sequence(classes, "classes"):
        key = _apply(chain, name)
        if not key:
            raise InvalidInputError(f"Expected every class name to be a non-empty string, but got {name!r}")
        if key in vocabulary and vocabulary[key] != name:
            raise InvalidInputError(
                f"Expected distinct class names, but {vocabulary[key]!r} and {name!r} both normalise to {key!r}"
            )
        vocabulary[key] = name

    target_classes: list[str] = []
    for i, target in enumerate(targets):
        key = _apply(chain, target)
        if key not in vocabulary:
            raise InvalidInputError(f"Expected targets[{i}] to be one of the classes, but got {target!r}")
        target_classes.append(vocabulary[key])

    correct: list[bool] = []
    out_of_vocabulary = 0
    for prediction, target_class in zip(predictions, target_classes, strict=True):
        predicted = vocabulary.get(_apply(chain, prediction) or "")
        out_of_vocabulary += predicted is None
        correct.append(predicted == target_class)

    per_class = _count_groups(target_classes, correct)
    return ClassificationResult(
        accuracy=_ratio(sum(correct), len(correct)),
        mean_per_class_accuracy=_mean(g.accuracy for g in per_class.values()),
        num_correct=sum(correct),
        num_total=len(correct),
        num_out_of_vocabulary=out_of_vocabulary,
        per_class=per_class,
    )


# ---------------------------------------------------------------------------
# Open-ended VQA
# ---------------------------------------------------------------------------


def _matcher_name(matcher: str | Matcher) -> str:
    if isinstance(matcher, str):
        return matcher
    for name, registered in MATCHERS.items():
        if registered is matcher:
            return name
    return str(getattr(matcher, "__name__", None) or repr(matcher))


def _normalizer_names(normalizers: NormalizerSpec) -> tuple[str, ...]:
    specs = (normalizers,) if isinstance(normalizers, str) or callable(normalizers) else normalizers
    return tuple(s if isinstance(s, str) else getattr(s, "__name__", repr(s)) for s in specs)


@dataclass(frozen=True)
class VQAResult:
    """Open-ended VQA accuracy, overall and per question type.

    Attributes:
        overall_accuracy: OA, correct / all questions (NaN for none).
        average_accuracy: AA, the mean of the per-type accuracies; NaN when
            no question types were given.
        num_correct: Correct answers.
        num_total: All questions.
        per_type: Per question type, correct and total counts.
        matcher: Name of the matcher used.
        normalizers: Names of the normalisers used.
    """

    overall_accuracy: float
    average_accuracy: float
    num_correct: int
    num_total: int
    per_type: dict[str, GroupAccuracy] = field(default_factory=dict)
    matcher: str = "exact"
    normalizers: tuple[str, ...] = DEFAULT_NORMALIZERS

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict (JSON-ready) form.

        Example:
            >>> sorted(vqa_accuracy(["yes"], ["yes"]).to_dict())[:3]
            ['average_accuracy', 'matcher', 'normalizers']
        """
        return {
            "overall_accuracy": self.overall_accuracy,
            "average_accuracy": self.average_accuracy,
            "num_correct": self.num_correct,
            "num_total": self.num_total,
            "per_type": _groups_to_dict(self.per_type),
            "matcher": self.matcher,
            "normalizers": list(self.normalizers),
        }


def vqa_accuracy(
    predictions: Sequence[object],
    targets: Sequence[str],
    *,
    matcher: str | Matcher = "exact",
    normalizers: NormalizerSpec = DEFAULT_NORMALIZERS,
    question_types: Sequence[str] | None = None,
    allow_empty: bool = False,
    wordnet_dir: str | None = None,
) -> VQAResult:
    """Open-ended VQA accuracy (RSVQA LR/HR, VRSBench, ...), with OA and AA.

    Args:
        predictions: ``(N,)`` model answers; non-``str`` items are wrong.
        targets: ``(N,)`` reference answers (``str``).
        matcher: A name from :data:`MATCHERS` or a callable.
        normalizers: See :func:`normalize_answer`.
        question_types: ``(N,)`` type labels (RSVQA: ``presence``,
            ``comp``, ``rural_urban``, ``count``, ``area``); enables
            ``per_type`` and AA.
        allow_empty: See :func:`match_answer`.
        wordnet_dir: Corpus location for ``matcher="wordnet"``.

    Returns:
        A :class:`VQAResult`.

    Raises:
        InvalidInputError: Lengths differ, or a target or type is not a ``str``.

    Example:
        >>> r = vqa_accuracy(["yes", "no", "2", "rural"], ["yes", "yes", "2", "urban"],
        ...                  question_types=["presence", "presence", "count", "rural_urban"])
        >>> r.overall_accuracy, r.average_accuracy, r.per_type["presence"].accuracy
        (0.5, 0.5, 0.5)
    """
    predictions = _as_sequence(predictions, "predictions")
    targets = _as_sequence(targets, "targets")
    _check_lengths(predictions, targets)
    if question_types is not None:
        question_types = _as_sequence(question_types, "question_types")
        _check_lengths(predictions, question_types, "question_types")
        for i, qtype in enumerate(question_types):
            if not isinstance(qtype, str):
                raise InvalidInputError(f"Expected question_types[{i}] to be a str, but got {qtype!r}")
    chain = _resolve_normalizers(normalizers)
    match = get_matcher(matcher, wordnet_dir=wordnet_dir)

    correct: list[bool] = []
    for i, (prediction, target) in enumerate(zip(predictions, targets, strict=True)):
        norm_target = _apply(chain, target)
        if norm_target is None:
            raise InvalidInputError(f"Expected targets[{i}] to be a str, but got {target!r}")
        correct.append(_score_one(prediction, norm_target, match, chain, allow_empty))

    per_type = _count_groups(question_types, correct) if question_types is not None else {}
    return VQAResult(
        overall_accuracy=_ratio(sum(correct), len(correct)),
        average_accuracy=_mean(g.accuracy for g in per_type.values()),
        num_correct=sum(correct),
        num_total=len(correct),
        per_type=per_type,
        matcher=_matcher_name(matcher),
        normalizers=_normalizer_names(normalizers),
    )


# ---------------------------------------------------------------------------
# Multiple choice
# ---------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _choice_patterns(
    choices: str,
) -> tuple[re.Pattern[str], tuple[re.Pattern[str], ...]]:
    upper = re.escape(choices)
    letters = re.escape(choices + choices.lower())
    # Two letters joined by or/and/slash/comma: the output hedges.
    listed = re.compile(rf"(?<![A-Za-z])[{upper}][)\]]?\s*(?i:\bor\b|\band\b|/|,)\s*[(\[]?[{upper}](?![A-Za-z])")
    return listed, (
        # The whole answer is one letter, maybe bracketed and/or with a period
        # or colon; only here is lower case accepted ("b", "(c)").
        re.compile(rf"^[(\[]?([{letters}])[)\]]?[.:]?$"),
        # The answer starts with a label followed by a separator: "A) text",
        # "(A) text", "A. text", "A: text". Without the separator "A car" would
        # read as choice A.
        re.compile(rf"^(?:\(([{upper}])\)|\[([{upper}])\]|([{upper}])[.):])(?:\s|$)"),
        # "answer"/"option"/"choice" (any case), an optional "is" and colon,
        # then an upper-case letter standing alone.
        re.compile(rf"(?i:\b(?:answer|option|choice)\b(?:\s+is)?)\s*:?\s*[(\[]?([{upper}])[)\]]?(?=$|[\s.,;:!?])"),
        # A label "(C)" or "C)" later in the text: found only so that an output
        # echoing several options ("B) bridge C) car") reads as ambiguous.
        re.compile(rf"(?:^|\s)(?:\(([{upper}])\)|([{upper}])\))(?=\s|$|[.,;:!?])"),
    )


def _validate_choices(choices: str) -> str:
    if (
        not isinstance(choices, str)
        or not choices
        or not all(c in string.ascii_uppercase for c in choices)
        or len(set(choices)) != len(choices)
    ):
        raise InvalidInputError(
            f"Expected `choices` to be distinct upper-case ASCII letters such as 'ABCDE', but got {choices!r}"
        )
    return choices


def extract_choice(text: object, choices: str = "ABCDE") -> str | None:
    """Extract a multiple-choice letter, strictly, or return ``None``.

    The rule, applied after removing ``*`` (markdown emphasis) and surrounding
    whitespace:

    1. the whole text is one choice letter, upper or lower case, optionally in
       ``()`` or ``[]`` and/or followed by ``.`` or ``:``: ``A``, ``b``,
       ``(C)``, ``D.``;
    2. the text starts with an upper-case label and a separator, then a space
       or the end: ``A) text``, ``(A) text``, ``[A] text``, ``A. text``,
       ``A: text``;
    3. anywhere, the word ``answer``, ``option`` or ``choice`` (any case),
       optionally ``is`` and/or ``:``, then an upper-case letter standing alone
       (optionally bracketed): ``The answer is A``, ``Answer: B``,
       ``The best answer is: C``, ``Option (D)``.

    4. a label ``(C)`` or ``C)`` after a space, anywhere (this alone is
       enough, and it makes outputs that echo several options ambiguous).

    The letters found by all four rules must agree, and the text must not
    list two letters (``A or B``, ``A/B``, ``A and B``, ``B, C``); otherwise
    the answer is ambiguous and ``None`` is returned. Words that merely start
    with a choice letter (``a car``, ``Apple``, ``Building``) match no rule.

    Args:
        text: The model output. Non-``str`` or blank gives ``None``.
        choices: The allowed letters, upper-case, e.g. ``"ABCD"``.

    Returns:
        The upper-case letter, or ``None``.

    Raises:
        InvalidInputError: ``choices`` is not a string of distinct upper-case letters.

    Example:
        >>> [extract_choice(t) for t in ["(B)", "The answer is C.", "A or B", "a car", ""]]
        ['B', 'C', None, None, None]
    """
    choices = _validate_choices(choices)
    if not isinstance(text, str):
        return None
    text = text.replace("*", "").strip()
    if not text:
        return None
    listed, patterns = _choice_patterns(choices)
    if listed.search(text):
        return None
    found: set[str] = set()
    for pattern in patterns:
        for match in pattern.finditer(text):
            found.update(g.upper() for g in match.groups() if g)
    return found.pop() if len(found) == 1 else None


@dataclass(frozen=True)
class MultipleChoiceResult:
    """Multiple-choice accuracy.

    Attributes:
        accuracy: Correct / all questions (NaN for none).
        num_correct: Correct answers.
        num_total: All questions.
        num_unparsed: Predictions from which :func:`extract_choice` got no
            letter (all wrong).
    """

    accuracy: float
    num_correct: int
    num_total: int
    num_unparsed: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict (JSON-ready) form.

        Example:
            >>> multiple_choice_accuracy(["A"], ["A"]).to_dict()["accuracy"]
            1.0
        """
        return {
            "accuracy": self.accuracy,
            "num_correct": self.num_correct,
            "num_total": self.num_total,
            "num_unparsed": self.num_unparsed,
        }


def multiple_choice_accuracy(
    predictions: Sequence[object], targets: Sequence[str], *, choices: str = "ABCDE"
) -> MultipleChoiceResult:
    """Accuracy of multiple-choice answers with strict letter extraction.

    Each prediction's letter comes from :func:`extract_choice`; unparsable or
    ambiguous outputs are wrong and counted in ``num_unparsed``. Targets are
    read with the same rule (``"A"``, ``"(A)"``, ``"a"``).

    Args:
        predictions: ``(N,)`` model outputs.
        targets: ``(N,)`` correct letters.
        choices: The allowed letters.

    Returns:
        A :class:`MultipleChoiceResult`.

    Raises:
        InvalidInputError: Lengths differ or a target is not a choice letter.

    Example:
        >>> multiple_choice_accuracy(["A", "The answer is B", "a car"], ["A", "C", "A"]).accuracy
        0.3333333333333333
    """
    predictions = _as_sequence(predictions, "predictions")
    targets = _as_sequence(targets, "targets")
    _check_lengths(predictions, targets)
    choices = _validate_choices(choices)
    correct = unparsed = 0
    for i, (prediction, target) in enumerate(zip(predictions, targets, strict=True)):
        letter = extract_choice(target, choices)
        if letter is None:
            raise InvalidInputError(f"Expected targets[{i}] to be one of {list(choices)}, but got {target!r}")
        got = extract_choice(prediction, choices)
        unparsed += got is None
        correct += got == letter
    return MultipleChoiceResult(
        accuracy=_ratio(correct, len(predictions)),
        num_correct=correct,
        num_total=len(predictions),
        num_unparsed=unparsed,
    )


# ---------------------------------------------------------------------------
# LRS-VQA
# ---------------------------------------------------------------------------

_ID_KEYS = ("question_id", "id")
_PREDICTION_KEYS = ("prediction", "output", "answer")


@dataclass(frozen=True)
class LRSVQARecord:
    """One scored LRS-VQA item.

    Example:
        >>> LRSVQARecord("STAR_1", "count", "3", "three").question_id
        'STAR_1'
    """

    question_id: str
    category: str
    ground_truth: str
    prediction: str | None


@dataclass(frozen=True)
class LRSVQASourceResult:
    """LRS-VQA scores of one source (or of all sources pooled).

    Attributes:
        overall_accuracy: OA, correct / scored items.
        average_accuracy: AA, the mean of the category accuracies; a category
            without items does not enter the mean.
        num_correct: Correct items.
        num_total: Scored items.
        per_category: Per category, correct and total counts.
    """

    overall_accuracy: float
    average_accuracy: float
    num_correct: int
    num_total: int
    per_category: dict[str, GroupAccuracy] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict (JSON-ready) form."""
        return {
            "overall_accuracy": self.overall_accuracy,
            "average_accuracy": self.average_accuracy,
            "num_correct": self.num_correct,
            "num_total": self.num_total,
            "per_category": _groups_to_dict(self.per_category),
        }


@dataclass(frozen=True)
class LRSVQAResult:
    """LRS-VQA scores: overall, per source and per category.

    Attributes:
        overall_accuracy: OA over every scored item.
        average_accuracy: AA, the mean over categories of the accuracy pooled
            over sources (RSCoVLM's "Average Acc").
        num_correct: Correct items.
        num_total: Scored items.
        num_skipped: Items skipped for an empty ``ground_truth`` or ``category``.
        skipped_ids: Their question ids, in input order.
        per_category: Per category, pooled over sources.
        per_source: Per source (the ``question_id`` prefix before the first
            ``_``: ``FAIR``, ``GLH-Bridge``, ``STAR``), OA, AA and categories.
        matcher: Name of the matcher used.
        normalizers: Names of the normalisers used.
    """

    overall_accuracy: float
    average_accuracy: float
    num_correct: int
    num_total: int
    num_skipped: int
    skipped_ids: tuple[str, ...] = ()
    per_category: dict[str, GroupAccuracy] = field(default_factory=dict)
    per_source: dict[str, LRSVQASourceResult] = field(default_factory=dict)
    matcher: str = "exact"
    normalizers: tuple[str, ...] = DEFAULT_NORMALIZERS

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict (JSON-ready) form."""
        return {
            "overall_accuracy": self.overall_accuracy,
            "average_accuracy": self.average_accuracy,
            "num_correct": self.num_correct,
            "num_total": self.num_total,
            "num_skipped": self.num_skipped,
            "skipped_ids": list(self.skipped_ids),
            "per_category": _groups_to_dict(self.per_category),
            "per_source": {name: src.to_dict() for name, src in self.per_source.items()},
            "matcher": self.matcher,
            "normalizers": list(self.normalizers),
        }


def _field(record: object, keys: Sequence[str]) -> tuple[bool, Any]:
    for key in keys:
        if isinstance(record, Mapping):
            if key in record:
                return True, record[key]
        elif hasattr(record, key):
            return True, getattr(record, key)
    return False, None


def _source_result(categories: Sequence[str], correct: Sequence[bool]) -> LRSVQASourceResult:
    per_category = _count_groups(categories, correct)
    return LRSVQASourceResult(
        overall_accuracy=_ratio(sum(correct), len(correct)),
        average_accuracy=_mean(g.accuracy for g in per_category.values()),
        num_correct=sum(correct),
        num_total=len(correct),
        per_category=per_category,
    )


def lrsvqa_scores(
    records: Iterable[Mapping[str, Any] | LRSVQARecord | Any],
    predictions: Sequence[object] | None = None,
    *,
    matcher: str | Matcher = "exact",
    normalizers: NormalizerSpec = DEFAULT_NORMALIZERS,
    wordnet_dir: str | None = None,
) -> LRSVQAResult:
    """Score LRS-VQA answers the way the benchmark's scripts do, without their crashes.

    Per item: ``ground_truth`` and prediction are normalised (default
    ``.lower().strip().strip(".")``, as RSCoVLM) and compared with the matcher.
    The official protocol is ``matcher="wordnet"`` (exact, or a shared WordNet
    synset); the default ``"exact"`` needs no nltk and is a lower bound.

    Items whose ``ground_truth`` or ``category`` is missing, not a string or
    empty after normalisation are skipped (as the official script does) and
    reported in ``num_skipped``/``skipped_ids``; they are in no denominator.
    The source of an item is its question id up to the first ``_``. OA =
    correct / scored; AA = mean of category accuracies, categories without
    items being left out (RSCoVLM crashes there instead).

    Args:
        records: Mappings or objects with ``question_id`` (or ``id``, the key
            the official script reads), ``category``, ``ground_truth`` and, if
            ``predictions`` is not given, the prediction under the first
            present key of ``prediction``, ``output`` (RSCoVLM), ``answer``;
            else ``text`` if the record also has ``prompt`` (LRS-VQA's answer
            files). In the *benchmark* file ``text`` is the question and there
            is no ``prompt``, so such records need ``predictions``.
        predictions: ``(N,)`` answers aligned with ``records``; overrides any
            prediction stored in the records.
        matcher: A name from :data:`MATCHERS` or a callable.
        normalizers: See :func:`normalize_answer`.
        wordnet_dir: Corpus location for ``matcher="wordnet"``.

    Returns:
        An :class:`LRSVQAResult`.

    Raises:
        InvalidInputError: Lengths differ, a record has no question id, or no
            prediction is given for a record.
        RSMetricsError: ``matcher="wordnet"`` without nltk or corpus.

    Example:
        >>> recs = [{"question_id": "FAIR_1", "category": "count", "ground_truth": "3"},
        ...         {"question_id": "FAIR_2", "category": "reasoning", "ground_truth": "yes"},
        ...         {"question_id": "STAR_1", "category": "count", "ground_truth": "2"}]
        >>> r = lrsvqa_scores(recs, ["3.", "no", "2"])
        >>> r.overall_accuracy, r.per_source["FAIR"].average_accuracy, r.average_accuracy
        (0.6666666666666666, 0.5, 0.5)
    """
    records = list(records)
    if predictions is not None:
        predictions = _as_sequence(predictions, "predictions")
        _check_lengths(predictions, records, "records")
    chain = _resolve_normalizers(normalizers)
    match = get_matcher(matcher, wordnet_dir=wordnet_dir)

    sources: list[str] = []
    categories: list[str] = []
    correct: list[bool] = []
    skipped: list[str] = []
    for i, record in enumerate(records):
        has_id, question_id = _field(record, _ID_KEYS)
        if not has_id or question_id is None:
            raise InvalidInputError(f"Expected records[{i}] to have a `question_id` (or `id`), but got none")
        question_id = str(question_id)
        if predictions is not None:
            prediction = predictions[i]
        else:
            has_prediction, prediction = _field(record, _PREDICTION_KEYS)
            if not has_prediction and _field(record, ("prompt",))[0]:
                # LRS-VQA's answer files move the question to `prompt` and put
                # the model output in `text`; in the benchmark file itself
                # `text` is the question, which must never be scored.
                has_prediction, prediction = _field(record, ("text",))
            if not has_prediction:
                raise InvalidInputError(
                    f"Expected records[{i}] ({question_id}) to hold a prediction under one of "
                    f"{list(_PREDICTION_KEYS)} (or `text` next to `prompt`), "
                    "or `predictions` to be given"
                )
        _, category = _field(record, ("category",))
        _, ground_truth = _field(record, ("ground_truth",))
        target = _apply(chain, ground_truth)
        if not target or not isinstance(category, str) or not category.strip():
            skipped.append(question_id)
            continue
        sources.append(question_id.split("_", 1)[0])
        categories.append(category)
        correct.append(_score_one(prediction, target, match, chain, allow_empty=False))

    pooled = _source_result(categories, correct)
    per_source = {
        source: _source_result(
            [c for s, c in zip(sources, categories, strict=True) if s == source],
            [ok for s, ok in zip(sources, correct, strict=True) if s == source],
        )
        for source in sorted(set(sources))
    }
    return LRSVQAResult(
        overall_accuracy=pooled.overall_accuracy,
        average_accuracy=pooled.average_accuracy,
        num_correct=pooled.num_correct,
        num_total=pooled.num_total,
        num_skipped=len(skipped),
        skipped_ids=tuple(skipped),
        per_category=pooled.per_category,
        per_source=per_source,
        matcher=_matcher_name(matcher),
        normalizers=_normalizer_names(normalizers),
    )
