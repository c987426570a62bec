"""Captioning metrics: hand-checked cases, and pycocoevalcap (the coco-caption toolkit) run beside ours."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsmetrics.caption import bleu_scores, caption_scores, cider_d_scores, rouge_l_scores, tokenize_caption
from rsmetrics.errors import InvalidInputError

VOCAB = (
    "a an the white red large small ship ships plane planes harbor airport runway parked docked near next to "
    "of in on at two three several storage tank tanks bridge river road cars car building buildings green field "
    "is are with and"
).split()


def _corpus(seed: int, images: int = 40) -> tuple[list[str], list[list[str]]]:
    rng = np.random.default_rng(seed)

    def sentence() -> str:
        return " ".join(rng.choice(VOCAB, size=int(rng.integers(1, 14))))

    preds = [sentence() for _ in range(images)]
    refs = [[sentence() for _ in range(int(rng.integers(1, 5)))] for _ in range(images)]
    # some candidates copy a reference, or part of one, so that high-order n-grams match too
    for i in range(0, images, 3):
        words = refs[i][0].split()
        preds[i] = " ".join(words[: max(1, len(words) - i % 4)])
    return preds, refs


# --------------------------------------------------------------------------- by hand


def test_bleu_by_hand() -> None:
    # candidate "the ship", reference "the white ship": unigram matches 2/2, bigram 0/1;
    # c = 2 < r = 3, brevity penalty exp(1 - 3/2)
    corpus, per = bleu_scores([["the", "ship"]], [[["the", "white", "ship"]]])
    bp = math.exp(1 - 3 / 2)
    assert corpus[0] == pytest.approx(bp * (2 / 2), rel=1e-8)
    assert corpus[1] == pytest.approx(bp * math.sqrt(1.0 * (1e-15 / (1 + 1e-9))), rel=1e-6)
    assert per[0][0] == pytest.approx(corpus[0])
    # the closest reference length decides the penalty (ties: the shorter one)
    corpus, _ = bleu_scores([["a", "b", "c"]], [[["a", "b"], ["a", "b", "c", "d"]]])
    assert corpus[0] == pytest.approx(1.0, rel=1e-8)  # r = 2 (|2-3| = |4-3|, the shorter), c = 3 >= r


def test_rouge_l_by_hand() -> None:
    # LCS("the white ship", "the ship") = 2: P = 2/2, R = 2/3, F = (1 + 1.44) P R / (R + 1.44 P)
    _, per = rouge_l_scores([["the", "ship"]], [[["the", "white", "ship"], ["a", "plane"]]])
    p, r = 1.0, 2 / 3
    assert per[0] == pytest.approx((1 + 1.2**2) * p * r / (r + 1.2**2 * p))
    assert rouge_l_scores([[]], [[["a"]]])[1] == [0.0]


def test_cider_d_by_hand() -> None:
    # two images, one reference each; the candidates equal their references, of equal length:
    # every n-gram of an image occurs in one image only (df = 1), weight tf * log(2), cosine 1 for n with
    # n-grams; "ship" has only a unigram: (1 + 0 + 0 + 0) / 4 * 10 = 2.5
    mean, per = cider_d_scores([["white", "ship"], ["plane"]], [[["white", "ship"]], [["plane"]]])
    assert per[1] == pytest.approx(2.5)
    assert per[0] == pytest.approx((1 + 1 + 0 + 0) / 4 * 10)
    assert mean == pytest.approx((5.0 + 2.5) / 2)
    # shared n-grams weigh nothing: with the same caption on both images, df = 2 = images
    assert cider_d_scores([["a", "ship"], ["a", "ship"]], [[["a", "ship"]], [["a", "ship"]]])[0] == 0.0


def test_caption_scores_inputs() -> None:
    r = caption_scores(["A ship.", None], ["a ship", ["a plane", "two planes"]])
    assert r.num_samples == 2 and r.num_empty == 1
    assert r.per_sample["rouge_l"][1] == 0.0 and r.per_sample["rouge_l"][0] == pytest.approx(1.0)
    with pytest.raises(InvalidInputError, match="as many references"):
        caption_scores(["a"], [])
    with pytest.raises(InvalidInputError, match="at least one reference"):
        caption_scores(["a"], [[]])
    assert caption_scores(["A Ship"], ["a ship"], tokenize=False).rouge_l == 0.0  # case kept: no match
    assert caption_scores(["A Ship"], ["a ship"], tokenize=str.lower).num_samples == 1


def test_tokenizer_rules() -> None:
    assert tokenize_caption("There are 3 planes; two are parked near the terminal's gate.") == (
        "there are 3 planes two are parked near the terminal 's gate".split()
    )
    assert tokenize_caption('Storage-tanks, "white" roofs & green fields: 10% cover') == (
        "storage-tanks white roofs & green fields 10 % cover".split()
    )
    assert tokenize_caption("cannot won't gonna") == ["can", "not", "wo", "n't", "gon", "na"]
    assert tokenize_caption("") == []


# --------------------------------------------------------------------------- the toolkit beside ours


@pytest.mark.reference
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_equal_pycocoevalcap(seed: int) -> None:
    bleu_mod = pytest.importorskip("pycocoevalcap.bleu.bleu")
    cider_mod = pytest.importorskip("pycocoevalcap.cider.cider")
    rouge_mod = pytest.importorskip("pycocoevalcap.rouge.rouge")
    preds, refs = _corpus(seed)
    gts = {i: r for i, r in enumerate(refs)}
    res = {i: [p] for i, p in enumerate(preds)}
    theirs_bleu, theirs_bleu_each = bleu_mod.Bleu(4).compute_score(gts, res, verbose=0)
    theirs_cider, theirs_cider_each = cider_mod.Cider().compute_score(gts, res)
    theirs_rouge, theirs_rouge_each = rouge_mod.Rouge().compute_score(gts, res)

    ours = caption_scores(preds, refs, tokenize=False)
    np.testing.assert_allclose(ours.bleu, theirs_bleu, rtol=1e-12, atol=0)
    np.testing.assert_allclose(ours.per_sample["bleu4"], theirs_bleu_each[3], rtol=1e-12, atol=1e-300)
    assert ours.cider_d == pytest.approx(theirs_cider, rel=1e-12)
    np.testing.assert_allclose(ours.per_sample["cider_d"], theirs_cider_each, rtol=1e-12, atol=1e-15)
    assert ours.rouge_l == pytest.approx(theirs_rouge, rel=1e-12)
    np.testing.assert_allclose(ours.per_sample["rouge_l"], theirs_rouge_each, rtol=1e-12, atol=0)


RS_CAPTIONS = [
    "A large white ship is docked at the harbor.",
    "There are 3 planes; two are parked near the terminal's gate.",
    "The car (red) isn't moving, it's parked!",
    "A state-of-the-art airport with a 2.5 km runway...",
    'Storage-tanks, "white" roofs & green fields: 10% cover',
    "U.S. Navy ships at 5:30 p.m.",
    "It's the dogs' toys",
    "cannot won't gonna",
    "e-mail 3/4 1,000 $5 #1 @home",
    "Several storage tanks are located on the left side of the image, next to a road.",
    "The image shows a residential area with many buildings, trees and roads.",
    "In the upper-right corner, two small vehicles are parked beside a building.",
    "A bridge crosses the river; boats are moored along both banks.",
    "The baseball diamond is surrounded by green grass and a parking lot.",
    "Is there a tennis court? Yes, there's one near the swimming pool.",
    "The harbour contains 12 ships of different sizes, the largest one being about 200m long.",
    "Several ships are moored along a. The ships are white, and the dock is at point b.",
]


@pytest.mark.reference
def test_tokenizer_equals_the_java_ptb_tokenizer() -> None:
    tokenizer_mod = pytest.importorskip("pycocoevalcap.tokenizer.ptbtokenizer")
    if shutil.which("java") is None:
        pytest.skip("the PTB tokenizer of pycocoevalcap needs Java")
    theirs = tokenizer_mod.PTBTokenizer().tokenize({i: [{"caption": s}] for i, s in enumerate(RS_CAPTIONS)})
    for i, sentence in enumerate(RS_CAPTIONS):
        assert " ".join(tokenize_caption(sentence)) == theirs[i][0], sentence


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=60), min_size=1, max_size=6), st.data())
def test_any_text_scores_within_bounds(predictions: list[str], data: st.DataObject) -> None:
    references = [data.draw(st.lists(st.text(max_size=60), min_size=1, max_size=3)) for _ in predictions]
    for text in predictions:
        tokens = tokenize_caption(text)
        assert all(t and not any(c.isspace() for c in t) for t in tokens)
    r = caption_scores(predictions, references)
    assert all(0.0 <= b <= 1.0 + 1e-9 for b in r.bleu) and 0.0 <= r.rouge_l <= 1.0
    assert r.cider_d >= 0.0 or math.isnan(r.cider_d)
