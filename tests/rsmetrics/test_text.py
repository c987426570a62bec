"""Tests of rsmetrics.text: normalisers, matchers, classification, VQA, MCQ, LRS-VQA.

Every expected number is counted by hand in the comment next to it.
"""

from __future__ import annotations

import json
import math
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsmetrics import _wordnet
from rsmetrics.errors import InvalidInputError, RSMetricsError
from rsmetrics.text import (
    MATCHERS,
    NORMALIZERS,
    ClassificationResult,
    LRSVQARecord,
    classification_accuracy,
    extract_choice,
    get_matcher,
    lrsvqa_scores,
    match_answer,
    multiple_choice_accuracy,
    normalize_answer,
    vqa_accuracy,
    wordnet_matcher,
)

REPO = Path(__file__).resolve().parents[2]
LRS_VQA_SAMPLE = REPO.parent / "shared" / "samples" / "lrs_vqa" / "LRS_VQA_merged.subset.jsonl"

WORDNET_MESSAGE = (
    "WordNet matching needs `pip install rsmetrics[wordnet]` and the WordNet corpus: "
    "python -m nltk.downloader -d DIR wordnet; then set RSMETRICS_WORDNET_DIR=DIR"
)

# A stand-in for WordNet: which synsets each (already lemmatised) word has.
FAKE_SYNSETS: dict[str, frozenset[str]] = {
    "3": frozenset({"three.n.01", "three.s.01"}),
    "three": frozenset({"three.n.01", "three.s.01"}),
    "grey": frozenset({"gray.n.01", "gray.s.01"}),
    "gray": frozenset({"gray.n.01", "gray.s.01"}),
    "car": frozenset({"car.n.01", "car.n.02"}),
    "cars": frozenset({"car.n.01", "car.n.02"}),
    "bus": frozenset({"bus.n.01"}),
}


def fake_lookup(word: str) -> frozenset[str]:
    return FAKE_SYNSETS.get(word, frozenset())


@pytest.fixture(autouse=True)
def _fresh_wordnet_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each test sees its own lookup cache and no corpus directory from the environment.
    monkeypatch.setattr(_wordnet, "_LOOKUPS", {})
    monkeypatch.delenv(_wordnet.ENV_VAR, raising=False)


def _hide_nltk(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import nltk...` raise ImportError.
    for name in list(sys.modules):
        if name == "nltk" or name.startswith("nltk."):
            monkeypatch.delitem(sys.modules, name)
    for name in ("nltk", "nltk.data", "nltk.corpus", "nltk.corpus.reader", "nltk.corpus.reader.wordnet"):
        monkeypatch.setitem(sys.modules, name, None)


# ---------------------------------------------------------------------------
# Normalisers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normalizers", "expected"),
    [
        ("  Airport. ", ("lower", "strip", "strip_period"), "airport"),
        # strip_period strips periods only, as `.strip(".")` does
        ("airport. ", ("strip_period",), "airport. "),
        ("..yes..", "strip_period", "yes"),
        ("Storage Tank", ("lower", "remove_spaces"), "storagetank"),
        ("St. Louis.", "remove_periods", "St Louis"),
        ("it's: yes!", "remove_punctuation", "its yes"),
        ("storage-tank_area", "separators_to_spaces", "storage tank area"),
        ("  a   b \t c ", "collapse_spaces", "a b c"),
        ('  "Storage_Tank". ', "label", "storage tank"),
        ("Ground-Track  Field:", "label", "ground track field"),
        # VQAv2-style: number words, articles, punctuation, numbers kept whole
        ("There are Two ships.", "vqa", "there are 2 ships"),
        ("The area is 3.5 km, about 1,000 m!", "vqa", "area is 3.5 km about 1,000 m"),
        ("An airport; a port", "vqa", "airport port"),
        ("don't", "vqa", "dont"),
        ("", "vqa", ""),
    ],
)
def test_normalizers(text: str, normalizers: Any, expected: str) -> None:
    assert normalize_answer(text, normalizers) == expected


def test_normalize_answer_default_callable_and_non_str() -> None:
    assert normalize_answer("  Yes. ") == "yes"
    assert normalize_answer("ABC", [str.lower, lambda s: s[::-1]]) == "cba"
    assert normalize_answer(None) == ""
    assert normalize_answer(42, "lower") == ""


def test_unknown_normalizer_is_named() -> None:
    with pytest.raises(InvalidInputError, match=r"one of .*but got 'upper'"):
        normalize_answer("x", ("lower", "upper"))


# ---------------------------------------------------------------------------
# Matchers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "target", "matcher", "expected"),
    [
        # the substring traps of the reference scorers
        ("airport", "port", "whole_word_contains", False),
        ("airport", "port", "gt_in_pred", True),
        ("parking", "park", "whole_word_contains", False),
        ("parking lot", "park", "gt_in_pred", True),
        ("not sure", "no", "whole_word_contains", False),
        ("not sure", "no", "gt_in_pred", True),
        ("north", "no", "whole_word_contains", False),
        ("no-go area", "no", "whole_word_contains", False),
        ("it is a port.", "port", "whole_word_contains", True),
        ("the storage tank", "storage tank", "whole_word_contains", True),
        ("no, there is none", "no", "whole_word_contains", True),
        # yes/no extraction: the first standalone yes or no decides
        ("No, there is not.", "no", "yes_no", True),
        ("yes, no doubt", "no", "yes_no", False),
        ("I think yes", "yes", "yes_no", True),
        ("north", "no", "yes_no", False),
        ("not sure", "no", "yes_no", False),
        ("nothing", "no", "yes_no", False),
        ("urban", "urban", "yes_no", True),  # non yes/no targets: exact
        ("urban area", "urban", "yes_no", False),
        # legacy directions
        ("air", "airport", "pred_in_gt", True),
        ("airport", "air", "pred_in_gt", False),
        ("air", "airport", "either", True),
        ("airport", "air", "either", True),
        ("sea", "airport", "either", False),
        ("Yes.", "yes", "exact", True),
        ("yes sir", "yes", "exact", False),
    ],
)
def test_matchers(prediction: str, target: str, matcher: str, expected: bool) -> None:
    assert match_answer(prediction, target, matcher=matcher) is expected


ALL_MATCHERS: list[Any] = [name for name in MATCHERS if name != "wordnet"] + [wordnet_matcher(fake_lookup)]


@pytest.mark.parametrize("matcher", ALL_MATCHERS)
@pytest.mark.parametrize("prediction", ["", "   ", " . ", "..", None, 0, ["yes"]])
def test_empty_or_non_str_prediction_is_never_correct(matcher: Any, prediction: object) -> None:
    for target in ("yes", "airport", "3", "no"):
        assert match_answer(prediction, target, matcher=matcher) is False


@pytest.mark.parametrize("matcher", ALL_MATCHERS)
def test_empty_target_is_never_matched(matcher: Any) -> None:
    assert match_answer("yes", "", matcher=matcher) is False
    assert match_answer("", "", matcher=matcher) is False
    assert match_answer("yes", ".", matcher=matcher) is False


def test_allow_empty_reproduces_legacy_leniency() -> None:
    # VHM's `pred in gt`: the empty output is a substring of every answer.
    assert match_answer("", "airport", matcher="pred_in_gt", allow_empty=True) is True
    assert match_answer("", "airport", matcher="either", allow_empty=True) is True
    assert match_answer("", "airport", matcher="exact", allow_empty=True) is False
    # non-str stays wrong even then
    assert match_answer(None, "airport", matcher="pred_in_gt", allow_empty=True) is False


def test_unknown_matcher_is_named() -> None:
    with pytest.raises(InvalidInputError, match=r"Expected `matcher` to be .*but got 'fuzzy'"):
        get_matcher("fuzzy")


def test_custom_matcher_callable() -> None:
    starts = lambda pred, gt: pred.startswith(gt)  # noqa: E731
    assert match_answer("Yes, it is.", "yes", matcher=starts) is True
    assert vqa_accuracy(["yes it is", "no"], ["yes", "yes"], matcher=starts).overall_accuracy == 0.5


# ---------------------------------------------------------------------------
# WordNet
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "target", "expected"),
    [
        ("Three.", "3", True),  # shares three.n.01
        ("gray", "grey", True),
        ("cars", "car", True),
        ("bus", "car", False),
        ("unknownword", "car", False),
        ("unknownword", "unknownword", True),  # exact comes first, no synset needed
        ("paved road", "paved road", True),
        ("paved", "paved road", False),  # multi-word: no synset, exact only
    ],
)
def test_wordnet_matcher_shares_a_synset(prediction: str, target: str, expected: bool) -> None:
    assert match_answer(prediction, target, matcher=wordnet_matcher(fake_lookup)) is expected


def test_wordnet_matcher_only_looks_up_non_identical_pairs() -> None:
    calls: list[str] = []

    def counting(word: str) -> frozenset[str]:
        calls.append(word)
        return fake_lookup(word)

    match = wordnet_matcher(counting)
    assert match("car", "car") is True
    assert calls == []
    assert match("cars", "car") is True
    assert sorted(calls) == ["car", "cars"]


def test_wordnet_without_nltk_raises_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide_nltk(monkeypatch)
    with pytest.raises(RSMetricsError) as info:
        get_matcher("wordnet")
    assert str(info.value) == WORDNET_MESSAGE
    with pytest.raises(RSMetricsError, match=r"pip install rsmetrics\[wordnet\]"):
        vqa_accuracy(["car"], ["auto"], matcher="wordnet")
    with pytest.raises(RSMetricsError, match="RSMETRICS_WORDNET_DIR=DIR"):
        lrsvqa_scores([{"question_id": "STAR_1", "category": "c", "ground_truth": "car"}], ["auto"], matcher="wordnet")
    with pytest.raises(RSMetricsError, match=r"nltk\.downloader"):
        wordnet_matcher(wordnet_dir="/nonexistent")("auto", "car")


def test_wordnet_registry_entry_loads_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide_nltk(monkeypatch)
    lazy = MATCHERS["wordnet"]
    assert lazy("car", "car") is True  # identical: nltk never touched
    with pytest.raises(RSMetricsError, match="WordNet matching needs"):
        lazy("auto", "car")
    # exact-only scoring never needs nltk
    assert vqa_accuracy(["car"], ["car"]).overall_accuracy == 1.0


def _write_fake_corpus(root: Path) -> Path:
    """A four-synset corpus in WordNet's database format (byte offsets included)."""
    synsets = {"n": [["car", "auto", "automobile"], ["three", "3", "III"], ["bus"]], "a": [["gray", "grey"]]}
    files = {"n": "noun", "a": "adj", "v": "verb", "r": "adv"}
    root.mkdir(parents=True)
    (root / "lexnames").write_text("00\tadj.all\t3\n01\tnoun.Tops\t1\n")
    for pos, name in files.items():
        data = "  1 fake WordNet for tests\n"
        index: dict[str, list[int]] = {}
        for lemmas in synsets.get(pos, []):
            offset = len(data.encode())
            words = " ".join(f"{lemma} 0" for lemma in lemmas)
            data += f"{offset:08d} {0 if pos == 'a' else 1:02d} {pos} {len(lemmas):02x} {words} 000 | gloss  \n"
            for lemma in lemmas:
                index.setdefault(lemma.lower(), []).append(offset)
        lines = [
            f"{lemma} {pos} {len(offs)} 0 {len(offs)} 0 " + " ".join(f"{o:08d}" for o in offs) + "\n"
            for lemma, offs in sorted(index.items())
        ]
        (root / f"data.{name}").write_text(data)
        (root / f"index.{name}").write_text("  1 fake\n" + "".join(lines))
        (root / f"{name}.exc").write_text("")
    (root / "index.sense").write_text("")
    return root


def test_wordnet_reads_a_local_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("nltk")
    corpus = _write_fake_corpus(tmp_path / "plain" / "wordnet")
    lookup = _wordnet.load_wordnet_lookup(corpus)
    assert lookup("cars") == lookup("auto") == {"car.n.01"}  # morphy lemmatises "cars"
    assert lookup("3") == lookup("three") == {"three.n.01"}
    assert lookup("paved road") == frozenset()
    # the downloader's layout: DIR/corpora/wordnet.zip, found through the env var
    nltk_dir = tmp_path / "nltk_data"
    (nltk_dir / "corpora").mkdir(parents=True)
    with zipfile.ZipFile(nltk_dir / "corpora" / "wordnet.zip", "w") as archive:
        for file in corpus.iterdir():
            archive.write(file, f"wordnet/{file.name}")
    monkeypatch.setenv(_wordnet.ENV_VAR, str(nltk_dir))
    assert match_answer("Automobiles.", "car", matcher="wordnet") is True
    assert match_answer("bus", "car", matcher="wordnet") is False
    records = [{"question_id": "GLH-Bridge_1", "category": "object color", "ground_truth": "grey", "output": "Gray"}]
    assert lrsvqa_scores(records, matcher="wordnet").overall_accuracy == 1.0


# ---------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------

CLASSES = ["airport", "port", "parking lot", "park", "storage-tank"]


def test_classification_hand_counted() -> None:
    predictions = [
        "Airport.",  # airport: correct
        "airport",  # port: wrong class (the substring scorer says correct)
        "port",  # port: correct
        "Parking_Lot",  # parking lot: correct
        "parking",  # park: out of vocabulary, wrong
        "storage tank.",  # storage-tank: correct
        None,  # storage-tank: out of vocabulary, wrong
        "",  # park: out of vocabulary, wrong
    ]
    targets = ["airport", "port", "port", "parking lot", "park", "Storage-Tank", "storage tank", "park"]
    r = classification_accuracy(predictions, targets, CLASSES)
    assert isinstance(r, ClassificationResult)
    assert (r.num_correct, r.num_total, r.accuracy) == (4, 8, 0.5)
    assert r.num_out_of_vocabulary == 3
    # per class (recall): airport 1/1, port 1/2, parking lot 1/1, park 0/2, storage-tank 1/2
    assert {k: (g.num_correct, g.num_total) for k, g in r.per_class.items()} == {
        "airport": (1, 1),
        "park": (0, 2),
        "parking lot": (1, 1),
        "port": (1, 2),
        "storage-tank": (1, 2),
    }
    assert r.mean_per_class_accuracy == pytest.approx((1 + 0.5 + 1 + 0 + 0.5) / 5)
    d = r.to_dict()
    assert d["per_class"]["port"] == {"accuracy": 0.5, "num_correct": 1, "num_total": 2}
    json.dumps(d)


def test_classification_three_of_four() -> None:
    r = classification_accuracy(["port", "park", "airport", "parking"], ["port", "park", "airport", "park"], CLASSES)
    assert r.accuracy == 0.75
    # park 1/2, port 1/1, airport 1/1; classes without targets are left out of the mean
    assert r.mean_per_class_accuracy == pytest.approx((0.5 + 1 + 1) / 3)
    assert set(r.per_class) == {"port", "park", "airport"}


def test_classification_errors() -> None:
    with pytest.raises(InvalidInputError, match="3 predictions and 2 targets"):
        classification_accuracy(["a", "b", "c"], ["port", "park"], CLASSES)
    with pytest.raises(InvalidInputError, match=r"targets\[1\] to be one of the classes, but got 'harbour'"):
        classification_accuracy(["port", "port"], ["port", "harbour"], CLASSES)
    with pytest.raises(InvalidInputError, match="'storage-tank' and 'storage_tank' both normalise"):
        classification_accuracy([], [], ["storage-tank", "storage_tank"])
    with pytest.raises(InvalidInputError, match="non-empty"):
        classification_accuracy([], [], ["port", ""])


def test_classification_empty_input_is_nan() -> None:
    r = classification_accuracy([], [], CLASSES)
    assert math.isnan(r.accuracy) and math.isnan(r.mean_per_class_accuracy)
    assert r.num_total == 0


# ---------------------------------------------------------------------------
# VQA (RSVQA-style OA / AA)
# ---------------------------------------------------------------------------

RSVQA_PREDS = ["yes", "No.", "yes", "no", "yes", "2", "two", "Urban"]
RSVQA_GTS = ["yes", "no", "no", "yes", "yes", "2", "2", "urban"]
RSVQA_TYPES = ["presence", "presence", "presence", "comp", "comp", "count", "count", "rural_urban"]


def test_vqa_per_type_and_aa_oa_by_hand() -> None:
    r = vqa_accuracy(RSVQA_PREDS, RSVQA_GTS, question_types=RSVQA_TYPES)
    # presence 2/3, comp 1/2, count 1/2 ("two" != "2"), rural_urban 1/1
    assert {k: (g.num_correct, g.num_total) for k, g in r.per_type.items()} == {
        "comp": (1, 2),
        "count": (1, 2),
        "presence": (2, 3),
        "rural_urban": (1, 1),
    }
    assert r.overall_accuracy == 5 / 8
    assert r.average_accuracy == pytest.approx((2 / 3 + 1 / 2 + 1 / 2 + 1) / 4)
    assert (r.matcher, r.normalizers) == ("exact", ("lower", "strip", "strip_period"))
    d = r.to_dict()
    assert d["per_type"]["presence"]["num_total"] == 3
    json.dumps(d)


def test_vqa_with_vqa_normalizer_maps_number_words() -> None:
    r = vqa_accuracy(RSVQA_PREDS, RSVQA_GTS, question_types=RSVQA_TYPES, normalizers="vqa")
    # count becomes 2/2
    assert r.overall_accuracy == 6 / 8
    assert r.average_accuracy == pytest.approx((2 / 3 + 1 / 2 + 1 + 1) / 4)
    assert r.normalizers == ("vqa",)


def test_vqa_without_types_and_with_non_str_predictions() -> None:
    r = vqa_accuracy([None, 3, "yes", ""], ["yes", "3", "yes", "no"])
    assert (r.num_correct, r.num_total, r.overall_accuracy) == (1, 4, 0.25)
    assert math.isnan(r.average_accuracy) and r.per_type == {}


def test_vqa_matcher_choice_matters() -> None:
    preds, gts = ["airport", "a port", "not sure"], ["port", "port", "no"]
    assert vqa_accuracy(preds, gts, matcher="gt_in_pred").overall_accuracy == 1.0
    assert vqa_accuracy(preds, gts, matcher="whole_word_contains").overall_accuracy == pytest.approx(1 / 3)
    assert vqa_accuracy(preds, gts).overall_accuracy == 0.0


def test_vqa_errors() -> None:
    with pytest.raises(InvalidInputError, match="2 predictions and 3 targets"):
        vqa_accuracy(["a", "b"], ["a", "b", "c"])
    with pytest.raises(InvalidInputError, match="2 predictions and 1 question_types"):
        vqa_accuracy(["a", "b"], ["a", "b"], question_types=["count"])
    with pytest.raises(InvalidInputError, match=r"targets\[1\] to be a str"):
        vqa_accuracy(["a", "b"], ["a", None])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match=r"question_types\[0\] to be a str"):
        vqa_accuracy(["a"], ["a"], question_types=[None])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="single string"):
        vqa_accuracy("yes", "yes")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Multiple choice
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A", "A"),
        ("A.", "A"),
        ("(A)", "A"),
        ("[C]", "C"),
        ("b", "B"),
        ("(c)", "C"),
        ("  d. ", "D"),
        ("A) text", "A"),
        ("A. The tank is round.", "A"),
        ("(B) a bridge", "B"),
        ("C: harbour", "C"),
        ("The answer is A", "A"),
        ("Answer: B", "B"),
        ("Answer:B", "B"),
        ("The best answer is: C", "C"),
        ("The correct option is (D).", "D"),
        ("I choose option C.", "C"),
        ("answer is (E)", "E"),
        ("**B**", "B"),
        ("**Answer:** D", "D"),
        ("The answer is B, because the roof is red.", "B"),
        ("A. The answer is A.", "A"),
        # ambiguous
        ("A or B", None),
        ("A/B", None),
        ("A, B", None),
        ("(A) and (B)", None),
        ("A. The answer is B", None),
        ("B) bridge C) car", None),
        ("Answer: B. Option C is wrong.", None),
        # words that merely contain or start with letters
        ("a car", None),
        ("Apple", None),
        ("Building", None),
        ("A car is parked", None),
        ("The answer is a car", None),
        ("Dense residential", None),
        # nothing usable
        ("", None),
        ("   ", None),
        ("F", None),
        ("The answer is F", None),
        (None, None),
        (7, None),
    ],
)
def test_extract_choice_table(text: object, expected: str | None) -> None:
    assert extract_choice(text) == expected


def test_extract_choice_respects_choices() -> None:
    assert extract_choice("E", "ABCD") is None
    assert extract_choice("The answer is D", "ABCD") == "D"
    with pytest.raises(InvalidInputError, match="upper-case"):
        extract_choice("A", "abcd")
    with pytest.raises(InvalidInputError, match="distinct"):
        extract_choice("A", "AAB")


def test_multiple_choice_accuracy_by_hand() -> None:
    predictions = ["A", "The answer is B", "a car", "(C)", None, "A or D"]
    targets = ["A", "C", "A", "(c)", "B", "D"]
    r = multiple_choice_accuracy(predictions, targets)
    # correct: 0 and 3; unparsed: "a car", None, "A or D"
    assert (r.num_correct, r.num_total, r.num_unparsed) == (2, 6, 3)
    assert r.accuracy == pytest.approx(2 / 6)
    assert r.to_dict() == {"accuracy": r.accuracy, "num_correct": 2, "num_total": 6, "num_unparsed": 3}


def test_multiple_choice_errors() -> None:
    with pytest.raises(InvalidInputError, match="1 predictions and 2 targets"):
        multiple_choice_accuracy(["A"], ["A", "B"])
    with pytest.raises(InvalidInputError, match=r"targets\[0\] to be one of"):
        multiple_choice_accuracy(["A"], ["yes"])


# ---------------------------------------------------------------------------
# LRS-VQA
# ---------------------------------------------------------------------------


def _load_sample() -> list[dict[str, Any]]:
    if not LRS_VQA_SAMPLE.is_file():
        pytest.skip(f"LRS-VQA sample not found at {LRS_VQA_SAMPLE}")
    with LRS_VQA_SAMPLE.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


# Predictions for the 17 sample records: the ground truth, except these.
SAMPLE_CHANGES = {
    "FAIR_401": "circle",  # object shape, gt arrowhead: wrong
    "FAIR_1873": "Three.",  # count, gt 3: wrong exactly, right with synonyms
    "FAIR_1086": "Paved Road",  # object category, gt "paved road": right after lower()
    "GLH-Bridge_253": "Gray",  # object color, gt grey: wrong exactly, right with synonyms
    "STAR_1": "  Rectangular. ",  # object shape: right after normalisation
    "STAR_1201": "",  # rural or urban, gt undetermined: empty is wrong
    "STAR_3001": "car",  # object category, gt cars: wrong exactly, right with synonyms
}


def _sample_predictions(records: list[dict[str, Any]]) -> list[str]:
    return [SAMPLE_CHANGES.get(r["question_id"], r["ground_truth"]) for r in records]


def test_lrsvqa_real_sample_exact() -> None:
    records = _load_sample()
    assert len(records) == 17
    r = lrsvqa_scores(records, _sample_predictions(records))
    assert (r.num_correct, r.num_total, r.num_skipped) == (12, 17, 0)
    assert r.overall_accuracy == 12 / 17
    # FAIR: 6 categories x 1 item, wrong FAIR_401 and FAIR_1873
    fair = r.per_source["FAIR"]
    assert (fair.num_correct, fair.num_total) == (4, 6)
    assert fair.overall_accuracy == pytest.approx(4 / 6) and fair.average_accuracy == pytest.approx(4 / 6)
    # GLH-Bridge: 4 categories x 1 item, wrong GLH-Bridge_253
    glh = r.per_source["GLH-Bridge"]
    assert (glh.num_correct, glh.num_total, glh.average_accuracy) == (3, 4, 0.75)
    # STAR: 7 categories x 1 item, wrong STAR_1201 and STAR_3001
    star = r.per_source["STAR"]
    assert (star.num_correct, star.num_total) == (5, 7)
    assert star.average_accuracy == pytest.approx(5 / 7)
    assert set(r.per_source) == {"FAIR", "GLH-Bridge", "STAR"}
    # pooled categories: reasoning 2/2, object shape 1/2, rural or urban 2/3, object category 1/2,
    # object status 2/2, count 2/3, object color 1/2, object background 1/1
    assert {k: (g.num_correct, g.num_total) for k, g in r.per_category.items()} == {
        "count": (2, 3),
        "object background": (1, 1),
        "object category": (1, 2),
        "object color": (1, 2),
        "object shape": (1, 2),
        "object status": (2, 2),
        "reasoning": (2, 2),
        "rural or urban": (2, 3),
    }
    assert r.average_accuracy == pytest.approx((1 + 0.5 + 2 / 3 + 0.5 + 1 + 2 / 3 + 0.5 + 1) / 8)  # 35/48
    json.dumps(r.to_dict())


def test_lrsvqa_real_sample_with_synonyms() -> None:
    records = _load_sample()
    r = lrsvqa_scores(records, _sample_predictions(records), matcher=wordnet_matcher(fake_lookup))
    # Three./3, Gray/grey, car/cars now match: 15 of 17
    assert (r.num_correct, r.num_total) == (15, 17)
    assert r.per_source["FAIR"].overall_accuracy == pytest.approx(5 / 6)
    assert r.per_source["GLH-Bridge"].overall_accuracy == 1.0
    assert r.per_source["STAR"].overall_accuracy == pytest.approx(6 / 7)
    # pooled: object shape 1/2, rural or urban 2/3, all six others 1
    assert r.average_accuracy == pytest.approx((0.5 + 2 / 3 + 6) / 8)  # 43/48


def test_lrsvqa_predictions_inside_records() -> None:
    records = _load_sample()
    # RSCoVLM keeps the output under `output`
    with_output = [dict(r, output=p) for r, p in zip(records, _sample_predictions(records), strict=True)]
    assert lrsvqa_scores(with_output).num_correct == 12
    # LRS-VQA's answer files: question moved to `prompt`, output in `text`, key `question_id`
    answer_file = [
        {"question_id": r["question_id"], "prompt": r["text"], "category": r["category"], "text": p,
         "ground_truth": r["ground_truth"]}
        for r, p in zip(records, _sample_predictions(records), strict=True)
    ]  # fmt: skip
    assert lrsvqa_scores(answer_file).num_correct == 12
    # The benchmark file alone: `text` is the question, so no prediction is found.
    with pytest.raises(InvalidInputError, match=r"records\[0\] \(FAIR_1\) to hold a prediction"):
        lrsvqa_scores(records)


def test_lrsvqa_skips_and_counts_empty_category_or_ground_truth() -> None:
    records: list[Any] = [
        {"question_id": "FAIR_1", "category": "count", "ground_truth": "3", "prediction": "3"},
        {"question_id": "FAIR_2", "category": "count", "ground_truth": "4", "prediction": "5"},
        {"question_id": "FAIR_3", "category": "reasoning", "ground_truth": "yes", "prediction": "Yes."},
        {"question_id": "FAIR_4", "category": "", "ground_truth": "yes", "prediction": "yes"},  # skipped
        {"question_id": "FAIR_5", "category": "count", "ground_truth": "", "prediction": ""},  # skipped
        {"question_id": "STAR_1", "category": None, "ground_truth": "no", "prediction": "no"},  # skipped
        {"question_id": "STAR_2", "ground_truth": "no", "prediction": "no"},  # no category: skipped
        {"question_id": "STAR_3", "category": "count", "ground_truth": ".", "prediction": "."},  # empty gt
        LRSVQARecord("STAR_4", "object color", "white", None),  # None prediction: wrong
        LRSVQARecord("STAR_5", "object color", "white", "white"),
        {"id": "GLH-Bridge_1", "category": "count", "ground_truth": "2", "answer": "2"},
    ]
    r = lrsvqa_scores(records)
    assert r.num_skipped == 5
    assert r.skipped_ids == ("FAIR_4", "FAIR_5", "STAR_1", "STAR_2", "STAR_3")
    # scored: FAIR 2/3, STAR 1/2, GLH-Bridge 1/1 -> 4/6
    assert (r.num_correct, r.num_total) == (4, 6)
    assert r.per_source["FAIR"].average_accuracy == pytest.approx((1 / 2 + 1) / 2)
    # STAR has only "object color" left; its other categories are simply absent
    assert list(r.per_source["STAR"].per_category) == ["object color"]
    assert r.per_source["STAR"].average_accuracy == 0.5
    # pooled: count 2/3, reasoning 1/1, object color 1/2
    assert r.average_accuracy == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert r.to_dict()["num_skipped"] == 5


def test_lrsvqa_all_skipped_or_empty_does_not_crash() -> None:
    r = lrsvqa_scores([{"question_id": "STAR_1", "category": "", "ground_truth": "x", "prediction": "x"}])
    assert (r.num_total, r.num_skipped) == (0, 1)
    assert math.isnan(r.overall_accuracy) and math.isnan(r.average_accuracy)
    assert r.per_source == {} and r.per_category == {}
    empty = lrsvqa_scores([])
    assert empty.num_total == 0 and math.isnan(empty.overall_accuracy)


def test_lrsvqa_errors() -> None:
    records = [{"question_id": "FAIR_1", "category": "count", "ground_truth": "3"}]
    with pytest.raises(InvalidInputError, match="2 predictions and 1 records"):
        lrsvqa_scores(records, ["3", "4"])
    with pytest.raises(InvalidInputError, match=r"records\[0\] to have a `question_id`"):
        lrsvqa_scores([{"category": "count", "ground_truth": "3"}], ["3"])


# ---------------------------------------------------------------------------
# Robustness
# ---------------------------------------------------------------------------

ANSWERS = st.one_of(st.text(), st.none(), st.integers(), st.floats(allow_nan=True))


@settings(max_examples=200, deadline=None)
@given(prediction=ANSWERS, target=st.text())
def test_no_function_raises_on_arbitrary_text(prediction: object, target: str) -> None:
    for name in NORMALIZERS:
        assert isinstance(normalize_answer(prediction, name), str)
    for matcher in ALL_MATCHERS:
        for allow_empty in (False, True):
            assert isinstance(match_answer(prediction, target, matcher=matcher, allow_empty=allow_empty), bool)
    letter = extract_choice(prediction)
    assert letter is None or letter in "ABCDE"
    vqa = vqa_accuracy([prediction], [target], question_types=["t"], normalizers="vqa", matcher="yes_no")
    assert vqa.num_total == 1
    assert classification_accuracy([prediction], ["port"], CLASSES).num_total == 1
    assert multiple_choice_accuracy([prediction], ["B"]).num_total == 1
    record = {"question_id": f"STAR_{target}", "category": target, "ground_truth": target}
    result = lrsvqa_scores([record], [prediction], matcher=wordnet_matcher(fake_lookup))
    assert result.num_total + result.num_skipped == 1
