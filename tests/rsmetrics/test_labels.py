"""Tests of rsmetrics.labels: normalisation, plural folding, synonyms, DOTA vocabularies."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rsmetrics.errors import InvalidInputError
from rsmetrics.labels import (
    DOTA_V1_CLASSES,
    DOTA_V2_CLASSES,
    DOTA_V15_CLASSES,
    LabelVocabulary,
    normalize_label,
    prompt_category_order,
    singular_candidates,
)

DOTA_V1 = LabelVocabulary(DOTA_V1_CLASSES)
DOTA_V2 = LabelVocabulary(DOTA_V2_CLASSES)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plane", "plane"),  # already normal
        ("Small-Vehicle", "small vehicle"),  # case and hyphen
        ("storage_tank", "storage tank"),  # underscore
        ("  ground -  track\tfield  ", "ground track field"),  # runs of spaces/hyphens collapse
        ('"harbor".', "harbor"),  # quotes and a final period
        ("'ship',", "ship"),  # single quotes and a trailing comma
        ("roundabout:", "roundabout"),  # trailing colon
        ("`swimming-pool`", "swimming pool"),  # backticks
        ("\u201cbridge\u201d", "bridge"),  # typographic quotes
        ("tennis-court.\n", "tennis court"),  # punctuation then a newline
        ("a.b", "a.b"),  # inner punctuation is kept
        ("--", ""),  # only separators: empty
        ("", ""),  # empty stays empty
    ],
)
def test_normalize_label(text: str, expected: str) -> None:
    assert normalize_label(text) == expected


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("ships", ["ship"]),  # -s
        ("storage tanks", ["storage tank"]),  # only the last word changes
        ("buses", ["buse", "bus"]),  # -s, then -es
        ("batteries", ["batterie", "batteri", "battery"]),  # -s, -es, -ies -> -y
        ("glass", []),  # -ss is not a plural
        ("s", []),  # a stem may not be empty
        ("es", ["e"]),  # -s with stem 'e'; -es would leave nothing
        ("plane", []),  # no plural ending
        ("", []),  # nothing to fold
    ],
)
def test_singular_candidates(label: str, expected: list[str]) -> None:
    assert singular_candidates(label) == expected


def test_dota_class_lists() -> None:
    # sizes from the DOTA papers: 15, 16 and 18 classes
    assert len(DOTA_V1_CLASSES) == 15
    assert DOTA_V15_CLASSES == (*DOTA_V1_CLASSES, "container-crane")
    assert DOTA_V2_CLASSES == (*DOTA_V15_CLASSES, "airport", "helipad")
    # devkit spelling uses hyphens
    assert "small-vehicle" in DOTA_V1_CLASSES and "ground-track-field" in DOTA_V1_CLASSES


def test_prompt_category_order_dota_v1() -> None:
    # sorted by hand on the space-separated names
    assert prompt_category_order(DOTA_V1_CLASSES) == [
        "baseball diamond",
        "basketball court",
        "bridge",
        "ground track field",
        "harbor",
        "helicopter",
        "large vehicle",
        "plane",
        "roundabout",
        "ship",
        "small vehicle",
        "soccer ball field",
        "storage tank",
        "swimming pool",
        "tennis court",
    ]


@pytest.mark.parametrize(
    ("classes", "expected"),
    [
        # a space sorts before letters, so 'small vehicle' < 'smallvehicle' and the hyphen is sorted as a space
        (["smallvehicle", "small-vehicle"], ["small vehicle", "smallvehicle"]),
        # upper case is lowered before sorting
        (["Ship", "bridge"], ["bridge", "ship"]),
        # the DOTA-v2 extras land in alphabetical place
        (["helipad", "airport", "container-crane"], ["airport", "container crane", "helipad"]),
    ],
)
def test_prompt_category_order_cases(classes: list[str], expected: list[str]) -> None:
    assert prompt_category_order(classes) == expected


@pytest.mark.parametrize(
    ("vocab", "label", "expected"),
    [
        (DOTA_V1, "plane", "plane"),  # exact
        (DOTA_V1, "Small Vehicle", "small-vehicle"),  # case and space for hyphen
        (DOTA_V1, "small_vehicle.", "small-vehicle"),  # underscore and period
        (DOTA_V1, "small vehicles", "small-vehicle"),  # plural of the last word
        (DOTA_V1, "harbors", "harbor"),  # plural -s
        (DOTA_V1, "ships", "ship"),  # plural -s
        (DOTA_V1, "storage tanks", "storage-tank"),  # multi-word plural
        (DOTA_V1, "Planes", "plane"),  # -s tried before -es, so not 'plan'
        (DOTA_V1, "tennis-courts", "tennis-court"),  # hyphenated plural
        (DOTA_V1, "airport", None),  # not in v1, and never matches a substring class
        (DOTA_V1, "port", None),  # not a class
        (DOTA_V1, "vehicle", None),  # a part of a class name is not the class
        (DOTA_V1, "small", None),  # likewise
        (DOTA_V1, "smalls vehicle", None),  # only the last word is folded
        (DOTA_V1, "plane ship", None),  # two classes in one label: unknown
        (DOTA_V1, "", None),  # empty label
        (DOTA_V1, "planee", None),  # a typo is not fixed: no fuzzy matching
        (DOTA_V2, "airport", "airport"),  # v2 has airports
        (DOTA_V2, "helipads", "helipad"),  # plural of a v2 class
        (DOTA_V2, "container cranes", "container-crane"),  # v1.5 class is in v2
        (LabelVocabulary(["port"]), "airport", None),  # no substring matching
        (LabelVocabulary(["airport"]), "port", None),  # either way round
        (LabelVocabulary(["battery"]), "batteries", "battery"),  # -ies -> -y
        (LabelVocabulary(["bus", "box"]), "buses", "bus"),  # -es
        (LabelVocabulary(["bus", "box"]), "boxes", "box"),  # -es
        (LabelVocabulary(["glas"]), "glass", None),  # -ss is not folded
        (LabelVocabulary(["vehicles"]), "vehicle", None),  # folding is one way: class names should be singular
    ],
)
def test_match(vocab: LabelVocabulary, label: str, expected: str | None) -> None:
    assert vocab.match(label) == expected


SYNONYMS = LabelVocabulary(
    DOTA_V1_CLASSES,
    {"oil tank": "storage-tank", "Vessel": "ship", "car": "small vehicle", "boats": "ship"},
)


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("oil tank", "storage-tank"),  # synonym exactly
        ("Oil-Tanks", "storage-tank"),  # synonym after normalisation and folding
        ("vessel", "ship"),  # synonym key is normalised too
        ("VESSELS.", "ship"),  # plural synonym
        ("car", "small-vehicle"),  # target written in another spelling maps to the class spelling
        ("boats", "ship"),  # plural synonym key matched exactly
        ("boat", None),  # keys are not folded themselves, only the label is
        ("tank", None),  # part of a synonym is not a synonym
        ("ship", "ship"),  # classes still match
    ],
)
def test_match_synonyms(label: str, expected: str | None) -> None:
    assert SYNONYMS.match(label) == expected


def test_unknown_counter_counts_normalised_labels() -> None:
    unknown: Counter[str] = Counter()
    out = DOTA_V1.match_many(["tank truck", "Tank-Truck", "ships", "", "airport"], unknown)
    assert out == [None, None, "ship", None, None]
    # the two spellings of 'tank truck' are one entry; the empty label is counted as ''
    assert unknown == Counter({"tank truck": 2, "": 1, "airport": 1})


def test_match_index_and_indices() -> None:
    assert DOTA_V1.match_index("plane") == 0
    assert DOTA_V1.match_index("helicopters") == 14
    unknown: Counter[str] = Counter()
    assert DOTA_V1.match_indices(["bridge", "car", "harbors"], unknown).tolist() == [2, -1, 12]
    assert unknown == Counter({"car": 1})
    assert DOTA_V1.match_indices([]).shape == (0,)


def test_vocabulary_properties() -> None:
    assert SYNONYMS.classes == DOTA_V1_CLASSES
    assert SYNONYMS.synonyms["Vessel"] == "ship"
    assert len(SYNONYMS) == 15
    assert "15 classes" in repr(SYNONYMS)
    with pytest.raises(TypeError):
        SYNONYMS.synonyms["x"] = "ship"  # type: ignore[index]


@pytest.mark.parametrize(
    ("classes", "synonyms", "message"),
    [
        (["small-vehicle", "small vehicle"], None, "distinct"),  # duplicates after normalisation
        (["plane", ""], None, "non-empty"),  # empty class
        (["plane", 3], None, "str"),  # not a string
        (["plane"], {"jet": "aircraft"}, "map to one of"),  # synonym target not a class
        (["plane", "ship"], {"ship": "plane"}, "shadows"),  # synonym hides a class
        (["plane"], {"...": "plane"}, "non-empty"),  # synonym normalises to nothing
        (["plane", "ship"], {"jet": "plane", "JET": "ship"}, "two different"),  # one key, two classes
    ],
)
def test_vocabulary_rejects_bad_tables(classes: list, synonyms: dict | None, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        LabelVocabulary(classes, synonyms)


def test_synonym_equal_to_its_own_class_is_allowed() -> None:
    # redundant but harmless
    assert LabelVocabulary(["ship"], {"Ship": "ship"}).match("ships") == "ship"


@given(st.text())
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize_label(text)
    assert normalize_label(once) == once


@given(st.text())
def test_match_never_raises(text: str) -> None:
    unknown: Counter[str] = Counter()
    result = SYNONYMS.match(text, unknown)
    assert result is None or result in DOTA_V1_CLASSES
    assert sum(unknown.values()) == (result is None)


@pytest.mark.parametrize("name", DOTA_V2_CLASSES)
def test_every_class_matches_its_display_name_and_plural(name: str) -> None:
    display = name.replace("-", " ")
    assert DOTA_V2.match(display) == name
    assert DOTA_V2.match(display.upper() + "s") == name
