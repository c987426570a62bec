"""Captioning metrics: BLEU-1..4, CIDEr-D and ROUGE-L, as the COCO caption toolkit computes them.

The numbers are those of ``pycocoevalcap`` (the coco-caption code every RS
captioning paper reports: VRSBench, GeoChat region captions, RSCoVLM), which
the tests run beside ours on the same tokens, in pure Python without Java:

* **BLEU-n** (``Bleu(4)``): corpus BLEU with clipped n-gram counts, the
  reference length *closest* to each candidate (ties: the shorter), the brevity
  penalty ``exp(1 - r/c)`` when the corpus is shorter than its references, and
  the toolkit's smoothing (``1e-15`` added to matches, ``1e-9`` to guesses).
* **CIDEr-D** (``Cider``): tf-idf n-gram vectors (n = 1..4) with document
  frequencies over the references of the evaluated set, the hypothesis clipped
  by each reference, a Gaussian length penalty (sigma 6), averaged over
  references and n, times 10. As in the toolkit, the length of a sentence is
  its number of *bigrams*.
* **ROUGE-L** (``Rouge``): longest common subsequence against each reference;
  the best precision and the best recall (over references) combined with
  beta 1.2; the mean over images.

Tokenisation matters as much as the formulas. The toolkit runs Stanford's PTB
tokenizer (Java) with lower-casing and drops punctuation tokens;
:func:`tokenize_caption` reproduces it in Python for ordinary English captions
(the tests compare both on a corpus of remote-sensing captions; one known
difference: the Java tokenizer reads a caption that *ends* in a one-letter word
and a period, "... at point a.", by looking at the next caption of its input
stream, which a per-caption tokenizer cannot see; here the period stays). Pass
``tokenize=False`` for text that is already tokenized (e.g. by the Java
tokenizer, for numbers identical to a published table), or a callable.
METEOR and SPICE need Java and are not computed.

Example:
    >>> r = caption_scores(["A white ship docked at the harbor."],
    ...                    [["A white ship is docked at the harbor.", "One ship in a harbor."]])
    >>> round(r.bleu[0], 4), round(r.rouge_l, 4)  # 7/7 unigrams x exp(1 - 8/7); LCS 7: P 1, R 7/8
    (0.8669, 0.9222)
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rsmetrics.errors import InvalidInputError

__all__ = [
    "PTB_PUNCTUATION",
    "CaptionResult",
    "bleu_scores",
    "caption_scores",
    "cider_d_scores",
    "rouge_l_scores",
    "tokenize_caption",
]

PTB_PUNCTUATION = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)
"""Tokens the coco-caption toolkit drops after PTB tokenisation (case-sensitive: the lower-cased
``-lrb-`` of a parenthesis is *not* dropped there, and is kept here too)."""

_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "{": "-lcb-", "}": "-rcb-", "[": "-lsb-", "]": "-rsb-"}
_SPLIT_WORDS = {"cannot": "can not", "gonna": "gon na", "gotta": "got ta", "wanna": "wan na"}
_SENTENCE_END_LETTER = re.compile(r"(?<![\w.])([a-z])\.(?=\s+[A-Z])")
_CLITIC = re.compile(r"^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$")
# a token: a number (1,000  2.5  5:30  3/4), letters each followed by a period (u.s.  p.m.  a.: PTB keeps
# a single letter with its period as an initial), a word
# (with inner hyphens, apostrophes, ampersands, at-signs), or one symbol; "..." and "--" stay whole
_TOKEN = re.compile(
    r"\d+(?:[.,:/]\d+)*(?!\w)"
    r"|(?:[a-z]\.)+(?![a-z])"
    r"|[\w@&]+(?:[-'][\w@&]+)*'?"
    r"|\.\.\.|--|``|''"
    r"|\S"
)


def tokenize_caption(text: str) -> list[str]:
    """Lower-cased PTB-style tokens of a caption, punctuation dropped (the coco-caption preprocessing).

    Example:
        >>> tokenize_caption("The car (red) isn't moving, it's parked at the U.S. harbor!")
        ['the', 'car', '-lrb-', 'red', '-rrb-', 'is', "n't", 'moving', 'it', "'s", 'parked', 'at', 'the', 'u.s.', 'harbor']
    """
    out: list[str] = []
    # a lower-case letter and its period before a capitalised word end a sentence ("along a. The"),
    # elsewhere they are an initial ("point b.", "U.S."): decided before lower-casing loses the capital
    text = _SENTENCE_END_LETTER.sub(r"\1 .", str(text))
    for raw in _TOKEN.findall(text.lower().replace('"', " '' ")):
        if raw in _BRACKETS:
            out.append(_BRACKETS[raw])
            continue
        if raw in _SPLIT_WORDS:
            out.extend(_SPLIT_WORDS[raw].split())
            continue
        if raw.endswith("'") and raw != "'" and not raw.endswith("''"):
            out.extend([raw[:-1], "'"])  # a plural possessive: dogs' -> dogs '
            continue
        m = _CLITIC.match(raw)
        if m is not None and raw not in ("'s",):
            out.extend([m.group(1), m.group(2)])
            continue
        out.append(raw)
    return [t for t in out if t not in PTB_PUNCTUATION]


@dataclass(frozen=True)
class CaptionResult:
    """Captioning scores of a set of predictions.

    Attributes:
        bleu: Corpus BLEU-1..4.
        cider_d: CIDEr-D (the toolkit's "CIDEr"), the mean over images.
        rouge_l: ROUGE-L, the mean over images.
        num_samples: Images scored.
        num_empty: Predictions that were missing or empty (scored as empty captions).
        per_sample: Per image, ``{"bleu4", "cider_d", "rouge_l"}`` lists in input order.
    """

    bleu: tuple[float, float, float, float]
    cider_d: float
    rouge_l: float
    num_samples: int
    num_empty: int = 0
    per_sample: dict[str, list[float]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bleu1": self.bleu[0],
            "bleu2": self.bleu[1],
            "bleu3": self.bleu[2],
            "bleu4": self.bleu[3],
            "cider_d": self.cider_d,
            "rouge_l": self.rouge_l,
            "num_samples": self.num_samples,
            "num_empty": self.num_empty,
        }


def _ngrams(tokens: Sequence[str], n: int = 4) -> Counter[tuple[str, ...]]:
    counts: Counter[tuple[str, ...]] = Counter()
    for k in range(1, n + 1):
        for i in range(len(tokens) - k + 1):
            counts[tuple(tokens[i : i + k])] += 1
    return counts


def bleu_scores(
    candidates: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]], n: int = 4
) -> tuple[list[float], list[list[float]]]:
    """Corpus BLEU-1..n and the per-sentence BLEU-1..n (token lists in, see the module doc)."""
    small, tiny = 1e-9, 1e-15
    total_guess, total_correct = [0] * n, [0] * n
    total_c = total_r = 0
    per_sentence: list[list[float]] = []
    for cand, refs in zip(candidates, references):
        c = len(cand)
        # the closest reference length; on a tie the shorter one
        r = min((abs(len(ref) - c), len(ref)) for ref in refs)[1]
        max_ref: dict[tuple[str, ...], int] = {}
        for ref in refs:
            for gram, count in _ngrams(ref, n).items():
                max_ref[gram] = max(max_ref.get(gram, 0), count)
        correct = [0] * n
        for gram, count in _ngrams(cand, n).items():
            correct[len(gram) - 1] += min(max_ref.get(gram, 0), count)
        guess = [max(0, c - k) for k in range(n)]
        total_c, total_r = total_c + c, total_r + r
        product, scores = 1.0, []
        for k in range(n):
            total_guess[k] += guess[k]
            total_correct[k] += correct[k]
            product *= (correct[k] + tiny) / (guess[k] + small)
            scores.append(product ** (1.0 / (k + 1)))
        ratio = (c + tiny) / (r + small)
        if ratio < 1:
            scores = [s * math.exp(1 - 1 / ratio) for s in scores]
        per_sentence.append(scores)
    product, corpus = 1.0, []
    for k in range(n):
        product *= (total_correct[k] + tiny) / (total_guess[k] + small)
        corpus.append(product ** (1.0 / (k + 1)))
    ratio = (total_c + tiny) / (total_r + small)
    if ratio < 1:
        corpus = [s * math.exp(1 - 1 / ratio) for s in corpus]
    return corpus, per_sentence


def cider_d_scores(
    candidates: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    n: int = 4,
    sigma: float = 6.0,
) -> tuple[float, list[float]]:
    """CIDEr-D over the set and per sentence (token lists in, see the module doc)."""
    ref_grams = [[_ngrams(ref, n) for ref in refs] for refs in references]
    document_frequency: Counter[tuple[str, ...]] = Counter()
    for refs in ref_grams:
        document_frequency.update({gram for grams in refs for gram in grams})
    log_images = math.log(float(len(references))) if references else 0.0

    def vector(counts: Counter[tuple[str, ...]]) -> tuple[list[dict[tuple[str, ...], float]], list[float], int]:
        vec: list[dict[tuple[str, ...], float]] = [{} for _ in range(n)]
        norm = [0.0] * n
        bigrams = 0
        for gram, tf in counts.items():
            k = len(gram) - 1
            weight = float(tf) * (log_images - math.log(max(1.0, document_frequency[gram])))
            vec[k][gram] = weight
            norm[k] += weight * weight
            if k == 1:
                bigrams += tf
        return vec, [math.sqrt(v) for v in norm], bigrams

    scores = []
    for cand, refs in zip(candidates, ref_grams):
        vec_c, norm_c, len_c = vector(_ngrams(cand, n))
        total = np.zeros(n)
        for ref in refs:
            vec_r, norm_r, len_r = vector(ref)
            penalty = math.e ** (-((len_c - len_r) ** 2) / (2 * sigma**2))
            for k in range(n):
                value = sum(min(w, vec_r[k].get(g, 0.0)) * vec_r[k].get(g, 0.0) for g, w in vec_c[k].items())
                if norm_c[k] != 0 and norm_r[k] != 0:
                    value /= norm_c[k] * norm_r[k]
                total[k] += value * penalty
        scores.append(float(np.mean(total)) / len(refs) * 10.0)
    return (float(np.mean(scores)) if scores else float("nan")), scores


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l_scores(
    candidates: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]], beta: float = 1.2
) -> tuple[float, list[float]]:
    """ROUGE-L over the set and per sentence (token lists in, see the module doc).

    An empty candidate or reference counts one (empty) token, as the toolkit's
    ``split(" ")`` of an empty string does.
    """
    scores = []
    for cand, refs in zip(candidates, references):
        c = list(cand) or [""]
        precision, recall = [], []
        for ref in refs:
            r = list(ref) or [""]
            common = _lcs(r, c)
            precision.append(common / len(c))
            recall.append(common / len(r))
        p, r_ = max(precision), max(recall)
        scores.append((1 + beta**2) * p * r_ / (r_ + beta**2 * p) if p and r_ else 0.0)
    return (float(np.mean(scores)) if scores else float("nan")), scores


def caption_scores(
    predictions: Sequence[str | None],
    references: Sequence[Sequence[str] | str],
    *,
    tokenize: bool | Callable[[str], list[str]] = True,
) -> CaptionResult:
    """BLEU-1..4, CIDEr-D and ROUGE-L of predicted captions (see the module doc).

    Args:
        predictions: ``(N,)`` captions; ``None`` or non-text is scored as an empty caption (counted).
        references: ``(N,)`` reference captions per image (a string is one reference).
        tokenize: ``True``: :func:`tokenize_caption`; ``False``: split on whitespace
            (already tokenized text); or a callable ``str -> list[str]``.

    Raises:
        InvalidInputError: lengths differ, no sample, or an image without references.
    """
    if len(predictions) != len(references):
        raise InvalidInputError(
            f"Expected as many references as predictions, got {len(references)} and {len(predictions)}"
        )
    if not predictions:
        raise InvalidInputError("Expected at least one caption to score")
    split: Callable[[str], list[str]]
    if tokenize is True:
        split = tokenize_caption
    elif tokenize is False:
        split = str.split
    else:
        split = tokenize
    empty = 0
    cands: list[list[str]] = []
    refs: list[list[list[str]]] = []
    for i, (pred, ref) in enumerate(zip(predictions, references)):
        if not isinstance(pred, str) or not pred.strip():
            empty += 1
            pred = ""
        group = [ref] if isinstance(ref, str) else list(ref)
        if not group:
            raise InvalidInputError(f"Expected at least one reference caption for sample {i}")
        cands.append(split(pred))
        refs.append([split(str(r)) for r in group])
    bleu, bleu_each = bleu_scores(cands, refs)
    cider, cider_each = cider_d_scores(cands, refs)
    rouge, rouge_each = rouge_l_scores(cands, refs)
    return CaptionResult(
        bleu=(bleu[0], bleu[1], bleu[2], bleu[3]),
        cider_d=cider,
        rouge_l=rouge,
        num_samples=len(cands),
        num_empty=empty,
        per_sample={"bleu4": [s[3] for s in bleu_each], "cider_d": cider_each, "rouge_l": rouge_each},
    )
