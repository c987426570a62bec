"""Tests of rsmetrics.parsers: every dialect, frames, robustness and speed.

Expected boxes are worked out by hand in the comments. ``rect(x1, y1, x2, y2)``
writes an axis-aligned rectangle in the canonical vertex order (top-left,
top-right, bottom-right, bottom-left), which is what every parser returns.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsmetrics.errors import InvalidInputError
from rsmetrics.geometry import box_to_quad, canonical_quad
from rsmetrics.parsers import (
    MAX_CANDIDATES,
    PARSERS,
    Frame,
    ParsedBoxes,
    parse_florence_loc,
    parse_geochat,
    parse_qwen2vl_tokens,
    parse_qwen25vl_json,
    parse_response,
    parse_rscovlm_plain,
)

R2 = math.sqrt(2.0)
R3 = math.sqrt(3.0)
IDENTITY = Frame.grid(1)  # with image_size=(1, 1): output = input


def rect(x1: float, y1: float, x2: float, y2: float) -> list[float]:
    return [x1, y1, x2, y1, x2, y2, x1, y2]


def check(
    out: ParsedBoxes,
    boxes: list[list[float]],
    kinds: tuple[str, ...] | None = None,
    labels: tuple[str, ...] | None = None,
    unparsed: int = 0,
) -> None:
    np.testing.assert_allclose(out.boxes, np.array(boxes, dtype=float).reshape(-1, 8), rtol=0, atol=1e-9)
    if kinds is not None:
        assert out.kinds == kinds
    if labels is not None:
        assert out.labels == labels
    assert out.num_unparsed == unparsed, out.errors


# --------------------------------------------------------------------------- frames


@pytest.mark.parametrize(
    ("frame", "image_size", "box", "kind", "expected"),
    [
        # input 500x250, original 1000x500: every coordinate doubles
        (Frame.pixels(500, 250), (1000, 500), [10, 20, 30, 40], "hbb", [20, 40, 60, 80]),
        # grid 1000 on a 2000x1000 image: x * 2, y * 1
        (Frame.grid(1000), (2000, 1000), [100, 200, 300, 400], "hbb", [200, 200, 600, 400]),
        # grid 100 on 640x480: x * 6.4, y * 4.8
        (Frame.grid(100), (640, 480), [50, 50, 100, 100], "hbb", [320, 240, 640, 480]),
        # Florence bins: (k + 0.5) / 1000 * 1000
        (Frame.bins(1000), (1000, 1000), [0, 0, 999, 999], "hbb", [0.5, 0.5, 999.5, 999.5]),
        # bins on a 2000x1000 image: (999 + 0.5) * 2 = 1999
        (Frame.bins(1000), (2000, 1000), [999, 999, 999, 999], "hbb", [1999, 999.5, 1999, 999.5]),
        # bins: the offset shifts an obb centre only, not its size or angle
        (Frame.bins(10), (10, 10), [0, 0, 4, 2, 30], "obb", [0.5, 0.5, 4, 2, 30]),
        # quads scale per axis
        (Frame.pixels(10, 20), (20, 20), [1, 2, 3, 4, 5, 6, 7, 8], "quad", [2, 2, 6, 4, 10, 6, 14, 8]),
    ],
)
def test_frame_to_image(frame: Frame, image_size: tuple[float, float], box: list, kind: Any, expected: list) -> None:
    np.testing.assert_allclose(frame.to_image([box], kind, image_size), [expected], atol=1e-9)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Frame.pixels(0, 10),  # zero width
        lambda: Frame.pixels(10, -1),  # negative height
        lambda: Frame.grid(float("nan")),  # not finite
        lambda: Frame.grid(float("inf")),  # not finite
        lambda: Frame("percent", 100, 100),  # unknown kind
        lambda: Frame.pixels("wide", 10),  # not a number
    ],
)
def test_bad_frames_raise(make: Any) -> None:
    with pytest.raises(InvalidInputError):
        make()


@pytest.mark.parametrize("dialect", sorted(PARSERS))
@pytest.mark.parametrize(
    ("frame", "image_size"),
    [
        (Frame.grid(), (0, 10)),  # zero image width
        (Frame.grid(), (10,)),  # one number
        (Frame.grid(), None),  # missing
        (Frame.grid(), (10, float("inf"))),  # not finite
        ("grid", (10, 10)),  # not a Frame
    ],
)
def test_bad_frame_or_image_size_raise_even_for_empty_text(dialect: str, frame: Any, image_size: Any) -> None:
    with pytest.raises(InvalidInputError):
        parse_response("", dialect, frame=frame, image_size=image_size)


@pytest.mark.parametrize("dialect", sorted(PARSERS))
def test_non_str_text_raises(dialect: str) -> None:
    with pytest.raises(InvalidInputError, match="str"):
        parse_response(None, dialect, frame=Frame.grid(), image_size=(10, 10))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- rscovlm_plain

PLAIN_CASES = [
    # the brief's example: input 500x250 -> original 1000x500 doubles everything
    ("10,20,30,40 plane", Frame.pixels(500, 250), (1000, 500), [rect(20, 40, 60, 80)], ("hbb",), ("plane",), 0),
    # grid 1000 on 2000x1000: x * 2, y * 1
    ("10,20,30,40 plane", Frame.grid(1000), (2000, 1000), [rect(20, 20, 60, 40)], ("hbb",), ("plane",), 0),
    # spaces after commas; a multi-word label is the rest of the line
    (
        "10, 20, 30, 40 small vehicle",
        Frame.grid(100),
        (100, 100),
        [rect(10, 20, 30, 40)],
        ("hbb",),
        ("small vehicle",),
        0,
    ),
    # negatives and floats, grid 100 on 200x100: x * 2
    ("-10.5,20,30.25,40 a b", Frame.grid(100), (200, 100), [rect(-21, 20, 60.5, 40)], ("hbb",), ("a b",), 0),
    # '+', '.5e1' (= 5) and '4.' are numbers
    ("+1,.5e1,3,4. x", IDENTITY, (1, 1), [rect(1, 4, 3, 5)], ("hbb",), ("x",), 0),
    # corners given bottom-right first: the same rectangle
    ("30,40,10,20 plane", IDENTITY, (1, 1), [rect(10, 20, 30, 40)], ("hbb",), ("plane",), 0),
    # quad TL, BL, BR, TR is counter-clockwise on screen: reversed, starts top-left
    ("0,0,0,10,10,10,10,0 ship", IDENTITY, (1, 1), [rect(0, 0, 10, 10)], ("quad",), ("ship",), 0),
    # quad BR, BL, TL, TR is clockwise but starts bottom-right: rotated to top-left
    ("10,10,0,10,0,0,10,0 ship", IDENTITY, (1, 1), [rect(0, 0, 10, 10)], ("quad",), ("ship",), 0),
    # diamond top, left, bottom, right (counter-clockwise) -> top, right, bottom, left
    ("5,0,0,5,5,10,10,5 d", IDENTITY, (1, 1), [[5, 0, 10, 5, 5, 10, 0, 5]], ("quad",), ("d",), 0),
    # obb angle 0: 40 wide, 20 high around (50, 50)
    ("50,50,40,20,0 car", Frame.grid(100), (100, 100), [rect(30, 40, 70, 60)], ("obb",), ("car",), 0),
    # obb angle 90: the w side is vertical, so x spans 40..60 and y 30..70
    ("50,50,40,20,90 car", Frame.grid(100), (100, 100), [rect(40, 30, 60, 70)], ("obb",), ("car",), 0),
    # obb 2x2 square at 45 degrees around the origin: a diamond with half-diagonal sqrt(2), top vertex first
    ("0,0,2,2,45 sq", IDENTITY, (1, 1), [[0, -R2, R2, 0, 0, R2, -R2, 0]], ("obb",), ("sq",), 0),
    # obb 4x2 at 30 degrees, pixels 100x100 -> 200x200 doubles it: centre (20, 20), w 8, h 4.
    # w half-vector (4cos30, 4sin30) = (2R3, 2), h half-vector (-2sin30, 2cos30) = (-1, R3);
    # corners c-w-h = (21-2R3, 18-R3), c+w-h = (21+2R3, 22-R3), c+w+h = (19+2R3, 22+R3),
    # c-w+h = (19-2R3, 18+R3); the first is the top-most, and the order is clockwise.
    (
        "10,10,4,2,30 c",
        Frame.pixels(100, 100),
        (200, 200),
        [[21 - 2 * R3, 18 - R3, 21 + 2 * R3, 22 - R3, 19 + 2 * R3, 22 + R3, 19 - 2 * R3, 18 + R3]],
        ("obb",),
        ("c",),
        0,
    ),
    # obb under anisotropic scaling (x * 2): an angle-0 box stays a rectangle 8 x 2 around (20, 10)
    ("10,10,4,2,0 c", Frame.pixels(100, 100), (200, 100), [rect(16, 9, 24, 11)], ("obb",), ("c",), 0),
    # a comma may separate the label; no label gives ''
    ("1,2,3,4, plane\n1,2,3,4", IDENTITY, (1, 1), [rect(1, 2, 3, 4)] * 2, ("hbb", "hbb"), ("plane", ""), 0),
    # Windows line ends; leading spaces
    ("1,2,3,4 a\r\n   5,6,7,8 b\r\n", IDENTITY, (1, 1), [rect(1, 2, 3, 4), rect(5, 6, 7, 8)], None, ("a", "b"), 0),
    # prose without digits is ignored; prose with digits and wrong counts are unparsed
    (
        "Sure! Here are the objects:\n\n1,2,3,4 plane\nI found 3 planes\n1,2,3 bad\n1,2,3,4,5,6,7,8,9 long",
        IDENTITY,
        (1, 1),
        [rect(1, 2, 3, 4)],
        ("hbb",),
        ("plane",),
        3,
    ),
    # numbers glued to the label: unparsed
    ("1,2,3,4plane", IDENTITY, (1, 1), [], (), (), 1),
    # 6 numbers is no box kind
    ("1,2,3,4,5,6 x", IDENTITY, (1, 1), [], (), (), 1),
    # non-finite numbers: 1e400 overflows to inf, 'nan'/'inf' are not numbers here
    ("1e400,2,3,4 x\nnan,1,2,3 y\ninf,1,2,3 z", IDENTITY, (1, 1), [], (), (), 3),
    # finite input that overflows when scaled by 10: unparsed
    ("1e308,0,1e308,1 x\n1,2,3,4 y", Frame.pixels(1, 1), (10, 10), [rect(10, 20, 30, 40)], ("hbb",), ("y",), 1),
    # a line with nothing but spaces and punctuation
    ("  ,,, \n\n", IDENTITY, (1, 1), [], (), (), 0),
]


@pytest.mark.parametrize(("text", "frame", "size", "boxes", "kinds", "labels", "unparsed"), PLAIN_CASES)
def test_rscovlm_plain(text: str, frame: Frame, size: Any, boxes: list, kinds: Any, labels: Any, unparsed: int) -> None:
    check(parse_rscovlm_plain(text, frame=frame, image_size=size), boxes, kinds, labels, unparsed)


@pytest.mark.parametrize(
    ("text", "empty"),
    [
        ("There are none.", True),  # the trained answer
        ("There is none.", True),  # singular form
        ("  THERE ARE NONE \n", True),  # case, no period, surrounding blanks
        ("there  are\tnone.", True),  # inner whitespace runs
        ("None.", False),  # a different sentence
        ("", False),  # saying nothing is not an explicit empty answer
        ("There are none. Really.", False),  # more than the sentence
        ("There are none.\n1,2,3,4 a", False),  # a box was found after all
    ],
)
def test_plain_empty_answer(text: str, empty: bool) -> None:
    out = parse_rscovlm_plain(text, frame=IDENTITY, image_size=(1, 1))
    assert out.is_empty_answer is empty
    assert out.num_unparsed == 0


def test_plain_errors_name_the_line_and_are_capped() -> None:
    out = parse_rscovlm_plain("ok\n1,2 x\n" + "3 y\n" * 29, frame=IDENTITY, image_size=(1, 1))
    assert out.num_unparsed == 30
    assert out.errors[0] == "line 2: expected 4, 5 or 8 numbers, got 2"
    # 20 reasons are kept, then a count of the rest
    assert len(out.errors) == 21 and out.errors[-1] == "... and 10 more"


def test_candidate_budget() -> None:
    text = "1,2,3,4 a\n" * (MAX_CANDIDATES + 3)
    out = parse_rscovlm_plain(text, frame=IDENTITY, image_size=(1, 1))
    # the first MAX_CANDIDATES lines are read, the rest counts as one unparsed candidate
    assert len(out) == MAX_CANDIDATES
    assert out.num_unparsed == 1 and "more than" in out.errors[0]


# --------------------------------------------------------------------------- qwen25vl_json

G1000 = Frame.grid(1000)
WIDE = (2000, 1000)  # with G1000: x * 2, y * 1

JSON_CASES = [
    # one box: (100, 200, 300, 400) -> x * 2
    ('[{"bbox_2d": [100, 200, 300, 400], "label": "plane"}]', [rect(200, 200, 600, 400)], ("plane",), 0, False),
    # code fence and prose around it
    (
        'Here you go:\n```json\n[\n  {"bbox_2d": [100, 200, 300, 400], "label": "plane"},\n'
        '  {"bbox_2d": [0, 0, 10, 10], "label": "ship"}\n]\n```\nDone.',
        [rect(200, 200, 600, 400), rect(0, 0, 20, 10)],
        ("plane", "ship"),
        0,
        False,
    ),
    # cut mid-object: the complete first object is kept
    (
        '```json\n[\n  {"bbox_2d": [100, 200, 300, 400], "label": "plane"},\n  {"bbox_2d": [0, 0, 10',
        [rect(200, 200, 600, 400)],
        ("plane",),
        0,
        True,
    ),
    # cut inside a string
    ('[{"bbox_2d": [1, 2, 3, 4], "label": "pl', [], (), 0, True),
    # cut after a complete object, before the list closes
    ('[{"bbox_2d": [100, 200, 300, 400], "label": "plane"}, ', [rect(200, 200, 600, 400)], ("plane",), 0, True),
    # a bare object, no list
    ('{"bbox_2d": [100, 200, 300, 400], "label": "plane"}', [rect(200, 200, 600, 400)], ("plane",), 0, False),
    # RSCoVLM quad key, counter-clockwise: (0,0),(0,100),(200,100),(200,0) after x * 2 -> canonical
    (
        '[{"quadrant bbox": [0, 0, 0, 100, 100, 100, 100, 0], "label": "ship"}]',
        [rect(0, 0, 200, 100)],
        ("ship",),
        0,
        False,
    ),
    # point_2d is not a box
    (
        '[{"point_2d": [10, 20], "label": "x"}, {"bbox_2d": [1, 2, 3, 4], "label": "y"}]',
        [rect(2, 2, 6, 4)],
        ("y",),
        1,
        False,
    ),
    # wrong count, strings, booleans, 1e400 (inf) and NaN: all unparsed
    (
        '[{"bbox_2d": [1, 2, 3], "label": "a"}, {"bbox_2d": ["1", "2", "3", "4"]}, {"bbox_2d": [true, 2, 3, 4]},'
        ' {"bbox_2d": [1e400, 2, 3, 4]}, {"bbox_2d": [NaN, 2, 3, 4]}, {"bbox_2d": 5}]',
        [],
        (),
        6,
        False,
    ),
    # braces and an escaped quote inside the label string
    ('[{"bbox_2d": [1, 2, 3, 4], "label": "a } { \\" b"}]', [rect(2, 2, 6, 4)], ('a } { " b',), 0, False),
    # an extra nested object is fine
    ('[{"bbox_2d": [1, 2, 3, 4], "label": "a", "meta": {"score": 0.9}}]', [rect(2, 2, 6, 4)], ("a",), 0, False),
    # Python-style single quotes are not JSON (and never eval'd)
    ("[{'bbox_2d': [1, 2, 3, 4], 'label': 'a'}]", [], (), 1, False),
    # code instead of numbers is invalid JSON, never executed
    ('[{"bbox_2d": __import__("os").getcwd(), "label": "a"}]', [], (), 1, False),
    # braces in prose without digits are ignored
    ('I think {this} is it: [{"bbox_2d": [1, 2, 3, 4], "label": "a"}]', [rect(2, 2, 6, 4)], ("a",), 0, False),
    # missing, null and numeric labels
    (
        '[{"bbox_2d": [1, 2, 3, 4]}, {"bbox_2d": [1, 2, 3, 4], "label": null}, {"bbox_2d": [1, 2, 3, 4], "label": 7}]',
        [rect(2, 2, 6, 4)] * 3,
        ("", "", "7"),
        0,
        False,
    ),
    # when several box keys are present the quad wins
    ('{"bbox_2d": [1, 2, 3, 4], "quadrant bbox": [0, 0, 5, 0, 5, 5, 0, 5]}', [rect(0, 0, 10, 5)], ("",), 0, False),
    # float coordinates and a label with surrounding spaces
    ('[{"bbox_2d": [0.5, 1.5, 2.25, 3], "label": " plane "}]', [rect(1, 1.5, 4.5, 3)], ("plane",), 0, False),
    # an object nested 40 deep stops the scan: the later box is not read
    ('{"a": ' * 40 + "1" + "}" * 40 + ' {"bbox_2d": [1, 2, 3, 4]}', [], (), 1, False),
    # a lone closing bracket or brace is noise
    ('] } [{"bbox_2d": [1, 2, 3, 4]}]', [rect(2, 2, 6, 4)], ("",), 0, False),
]


@pytest.mark.parametrize(("text", "boxes", "labels", "unparsed", "truncated"), JSON_CASES)
def test_qwen25vl_json(text: str, boxes: list, labels: Any, unparsed: int, truncated: bool) -> None:
    out = parse_qwen25vl_json(text, frame=G1000, image_size=WIDE)
    check(out, boxes, None, labels, unparsed)
    assert out.truncated is truncated


def test_qwen25vl_json_oriented_key() -> None:
    # obb (500, 500, 400, 200, 90) on grid 1000 of a 1000x1000 image: x spans 400..600, y 300..700
    out = parse_qwen25vl_json(
        '[{"oriented bbox": [500, 500, 400, 200, 90], "label": "car"}]', frame=G1000, image_size=(1000, 1000)
    )
    check(out, [rect(400, 300, 600, 700)], ("obb",), ("car",))


@pytest.mark.parametrize(
    ("text", "empty"),
    [
        ("```json\n[]\n```", True),  # an empty list is an explicit empty answer
        ("[ ]", True),  # with a space
        ("There are none.", True),  # the sentence works in every dialect
        ('[{"bbox_2d": [1, 2, 3, 4]}]', False),  # a box
        ('[{"point_2d": [1, 2]}]', False),  # a failed candidate is not an empty answer
        ("I cannot see anything.", False),  # prose
    ],
)
def test_qwen25vl_json_empty_answer(text: str, empty: bool) -> None:
    assert parse_qwen25vl_json(text, frame=G1000, image_size=WIDE).is_empty_answer is empty


# --------------------------------------------------------------------------- qwen2vl_tokens

REF = "<|object_ref_start|>{}<|object_ref_end|>"
BOX = "<|box_start|>{}<|box_end|>"
TALL = (1000, 500)  # with G1000: x * 1, y * 0.5

TOKEN_CASES = [
    # (100, 200), (300, 400) -> y halves
    (REF.format("plane") + BOX.format("(100,200),(300,400)"), [rect(100, 100, 300, 200)], ("plane",), 0, False),
    # a label carries over to the next box until a new reference
    (
        REF.format("a")
        + BOX.format("(0,0),(10,10)")
        + BOX.format("(20,20),(30,30)")
        + REF.format("b")
        + BOX.format("(40,40),(50,50)"),
        [rect(0, 0, 10, 5), rect(20, 10, 30, 15), rect(40, 20, 50, 25)],
        ("a", "a", "b"),
        0,
        False,
    ),
    # no reference: empty label; spaces inside the box
    (BOX.format("( 100 , 200 ) , ( 300 , 400 )"), [rect(100, 100, 300, 200)], ("",), 0, False),
    # prose and an end-of-turn marker around the tokens
    (
        "The plane is at " + BOX.format("(100,200),(300,400)") + ".<|im_end|>",
        [rect(100, 100, 300, 200)],
        ("",),
        0,
        False,
    ),
    # one point is not a box; a box cut by the token limit is truncated
    (BOX.format("(1,2)") + "<|box_start|>(1,2),(3,4)", [], (), 2, True),
    # a reference with no box is just text
    (REF.format("plane"), [], (), 0, False),
]


@pytest.mark.parametrize(("text", "boxes", "labels", "unparsed", "truncated"), TOKEN_CASES)
def test_qwen2vl_tokens(text: str, boxes: list, labels: Any, unparsed: int, truncated: bool) -> None:
    out = parse_qwen2vl_tokens(text, frame=G1000, image_size=TALL)
    check(out, boxes, ("hbb",) * len(boxes), labels, unparsed)
    assert out.truncated is truncated


# --------------------------------------------------------------------------- geochat

G100 = Frame.grid(100)

GEOCHAT_CASES = [
    # no angle: an hbb; grid 100 on 200x100 doubles x
    ("{<10><20><30><40>}", (200, 100), [rect(20, 20, 60, 40)], ("hbb",), ("",), 0),
    # hbb (10,20,50,40): centre (30,30), w 40, h 20; rotated by 90 degrees it spans x 20..40, y 10..50
    ("{<10><20><50><40>|<90>}", (100, 100), [rect(20, 10, 40, 50)], ("obb",), ("",), 0),
    # -90 degrees is the same rectangle
    ("{<10><20><50><40>|<-90>}", (100, 100), [rect(20, 10, 40, 50)], ("obb",), ("",), 0),
    # angle 0 on 200x100: the hbb maps first to (20,20,100,40) and stays axis-aligned
    ("{<10><20><50><40>|<0>}", (200, 100), [rect(20, 20, 100, 40)], ("obb",), ("",), 0),
    # the same 40x20 box at 30 degrees, centre (30,30): w half-vector (10R3, 10), h half-vector (-5, 5R3);
    # corners c-w-h = (35-10R3, 20-5R3), c+w-h = (35+10R3, 40-5R3), c+w+h = (25+10R3, 40+5R3),
    # c-w+h = (25-10R3, 20+5R3): top-most first, clockwise
    (
        "{<10><20><50><40>|<30>}",
        (100, 100),
        [[35 - 10 * R3, 20 - 5 * R3, 35 + 10 * R3, 40 - 5 * R3, 25 + 10 * R3, 40 + 5 * R3, 25 - 10 * R3, 20 + 5 * R3]],
        ("obb",),
        ("",),
        0,
    ),
    # several boxes, each labelled by the text before it
    (
        "plane {<0><0><10><10>|<0>} ship, {<20><20><30><30>|<0>}",
        (100, 100),
        [rect(0, 0, 10, 10), rect(20, 20, 30, 30)],
        ("obb", "obb"),
        ("plane", "ship"),
        0,
    ),
    # openings that do not complete a box are unparsed
    ("{<1><2>} {<a>", (100, 100), [], (), (), 2),
    # decimals and a non-finite angle
    ("{<1.5><2><3><4>} {<1><2><3><4>|<1e400>}", (100, 100), [rect(1.5, 2, 3, 4)], ("hbb",), ("",), 1),
]


@pytest.mark.parametrize(("text", "size", "boxes", "kinds", "labels", "unparsed"), GEOCHAT_CASES)
def test_geochat(text: str, size: Any, boxes: list, kinds: Any, labels: Any, unparsed: int) -> None:
    check(parse_geochat(text, frame=G100, image_size=size), boxes, kinds, labels, unparsed)


# --------------------------------------------------------------------------- florence_loc


def locs(*values: int) -> str:
    return "".join(f"<loc_{v}>" for v in values)


BINS = Frame.bins(1000)
SQUARE = (1000, 1000)  # with BINS: k -> k + 0.5

FLORENCE_CASES = [
    # 8 locations: a quad; each k becomes k + 0.5
    (
        "plane" + locs(100, 200, 300, 200, 300, 400, 100, 400),
        None,
        [rect(100.5, 200.5, 300.5, 400.5)],
        ("quad",),
        ("plane",),
        0,
    ),
    # 4 locations: an hbb
    ("ship" + locs(0, 0, 9, 9), None, [rect(0.5, 0.5, 9.5, 9.5)], ("hbb",), ("ship",), 0),
    # one label, two quads in one run
    (
        "car" + locs(0, 0, 9, 0, 9, 9, 0, 9) + locs(10, 10, 19, 10, 19, 19, 10, 19),
        None,
        [rect(0.5, 0.5, 9.5, 9.5), rect(10.5, 10.5, 19.5, 19.5)],
        ("quad", "quad"),
        ("car", "car"),
        0,
    ),
    # <sep> between groups keeps the label; new text starts a new one
    (
        "a" + locs(0, 0, 1, 1) + "<sep>" + locs(2, 2, 3, 3) + "<sep>b" + locs(4, 4, 5, 5),
        None,
        [rect(0.5, 0.5, 1.5, 1.5), rect(2.5, 2.5, 3.5, 3.5), rect(4.5, 4.5, 5.5, 5.5)],
        ("hbb",) * 3,
        ("a", "a", "b"),
        0,
    ),
    # special tokens are not part of the label
    ("</s><s>plane" + locs(0, 0, 1, 1) + "</s>", None, [rect(0.5, 0.5, 1.5, 1.5)], ("hbb",), ("plane",), 0),
    # counter-clockwise quad is reordered
    ("x" + locs(0, 0, 0, 9, 9, 9, 9, 0), None, [rect(0.5, 0.5, 9.5, 9.5)], ("quad",), ("x",), 0),
    # 5 or 12 locations are no whole number of boxes under the default rule
    ("x" + locs(1, 2, 3, 4, 5) + "y" + locs(*range(12)), None, [], (), (), 2),
    # box_size=4 reads an 8-run as two hbbs
    (
        "x" + locs(0, 0, 1, 1, 2, 2, 3, 3),
        4,
        [rect(0.5, 0.5, 1.5, 1.5), rect(2.5, 2.5, 3.5, 3.5)],
        ("hbb", "hbb"),
        ("x", "x"),
        0,
    ),
    # box_size=8 refuses a 4-run
    ("x" + locs(0, 0, 1, 1), 8, [], (), (), 1),
    # broken tokens are text, not locations
    ("<loc_<loc_>1<loc_ 2>", None, [], (), (), 0),
]


@pytest.mark.parametrize(("text", "box_size", "boxes", "kinds", "labels", "unparsed"), FLORENCE_CASES)
def test_florence_loc(text: str, box_size: Any, boxes: list, kinds: Any, labels: Any, unparsed: int) -> None:
    check(parse_florence_loc(text, frame=BINS, image_size=SQUARE, box_size=box_size), boxes, kinds, labels, unparsed)


def test_florence_bad_box_size_raises() -> None:
    with pytest.raises(InvalidInputError, match="box_size"):
        parse_florence_loc("", frame=BINS, image_size=SQUARE, box_size=6)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- dispatch and result type


def test_unknown_dialect_message() -> None:
    with pytest.raises(InvalidInputError) as err:
        parse_response("1,2,3,4 a", "qwen3", frame=G1000, image_size=SQUARE)
    assert str(err.value) == (
        "Expected `dialect` to be one of ['florence_loc', 'geochat', 'qwen25vl_json', 'qwen2vl_tokens', "
        "'rscovlm_plain'], but got 'qwen3'"
    )


def test_dispatch_forwards_options() -> None:
    # florence's box_size reaches the parser: an 8-run becomes two hbbs
    out = parse_response("x" + locs(0, 0, 1, 1, 2, 2, 3, 3), "florence_loc", frame=BINS, image_size=SQUARE, box_size=4)
    assert out.kinds == ("hbb", "hbb")


@pytest.mark.parametrize(
    ("dialect", "text"),
    [
        ("rscovlm_plain", "1,2,3,4 a"),
        ("qwen25vl_json", '[{"bbox_2d": [1, 2, 3, 4], "label": "a"}]'),
        ("qwen2vl_tokens", REF.format("a") + BOX.format("(1,2),(3,4)")),
        ("geochat", "a {<1><2><3><4>}"),
        ("florence_loc", "a" + locs(1, 2, 3, 4)),
    ],
)
def test_every_dialect_through_the_dispatcher(dialect: str, text: str) -> None:
    # identity frame (florence uses bins, hence + 0.5)
    frame = Frame.bins(1) if dialect == "florence_loc" else IDENTITY
    shift = 0.5 if dialect == "florence_loc" else 0.0
    out = parse_response(text, dialect, frame=frame, image_size=(1, 1))
    check(out, [[v + shift for v in rect(1, 2, 3, 4)]], ("hbb",), ("a",))


def test_parsed_boxes_helpers() -> None:
    out = parse_rscovlm_plain("0,0,4,0,4,2,0,2 a\n10,10,4,2,90 b", frame=IDENTITY, image_size=(1, 1))
    assert len(out) == 2
    np.testing.assert_allclose(out.hbb, [[0, 0, 4, 2], [9, 8, 11, 12]], atol=1e-9)
    np.testing.assert_allclose(out.obb[0], [2, 1, 4, 2, 0], atol=1e-9)
    # a 90-degree box normalised to le90 is angle -90
    np.testing.assert_allclose(out.obb[1], [10, 10, 4, 2, -90], atol=1e-9)
    with pytest.raises(ValueError):
        out.boxes[0, 0] = 1.0  # read-only
    empty = ParsedBoxes.empty()
    assert empty.boxes.shape == (0, 8) and empty.hbb.shape == (0, 4) and len(empty) == 0
    with pytest.raises(InvalidInputError):
        ParsedBoxes(np.zeros((1, 8)), kinds=(), labels=())


# --------------------------------------------------------------------------- properties

TOKENS = [
    *'{}[]",:\\ 0123456789.-+eE<>|()_\n',
    "<loc_",
    "<loc_12>",
    "<sep>",
    "<|box_start|>",
    "<|box_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "{<",
    '"bbox_2d"',
    '"quadrant bbox"',
    "There are none.",
    "nan",
    "1e400",
]
tricky_text = st.lists(st.sampled_from(TOKENS), max_size=60).map("".join)


def _sane(out: ParsedBoxes) -> None:
    assert out.boxes.shape == (len(out.kinds), 8) and len(out.labels) == len(out.kinds)
    assert np.isfinite(out.boxes).all()
    assert out.num_unparsed >= 0
    assert not (out.is_empty_answer and len(out))
    assert set(out.kinds) <= {"hbb", "obb", "quad"}


@pytest.mark.parametrize("dialect", sorted(PARSERS))
@given(text=st.text())
def test_parsers_never_raise_on_any_text(dialect: str, text: str) -> None:
    _sane(parse_response(text, dialect, frame=Frame.pixels(640, 480), image_size=(1280, 720)))


@pytest.mark.parametrize("dialect", sorted(PARSERS))
@given(text=tricky_text)
def test_parsers_never_raise_on_box_like_text(dialect: str, text: str) -> None:
    _sane(parse_response(text, dialect, frame=Frame.bins(1000), image_size=(1000, 1000)))


coordinate = st.one_of(
    st.integers(-5000, 5000),
    st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False),
)
box_strategy = st.sampled_from(["hbb", "obb", "quad"]).flatmap(
    lambda kind: st.tuples(
        st.just(kind),
        st.lists(
            coordinate, min_size={"hbb": 4, "obb": 5, "quad": 8}[kind], max_size={"hbb": 4, "obb": 5, "quad": 8}[kind]
        ),
    )
)
label_strategy = st.text(alphabet="abcdefghijklmnopqrstuvwxyz -_", max_size=20).map(str.strip)


@given(
    boxes=st.lists(st.tuples(box_strategy, label_strategy), max_size=8),
    input_size=st.tuples(st.integers(1, 4000), st.integers(1, 4000)),
    image_size=st.tuples(st.integers(1, 8000), st.integers(1, 8000)),
    separator=st.sampled_from([",", ", ", " , "]),
)
@settings(max_examples=200)
def test_plain_render_parse_round_trip(
    boxes: list, input_size: tuple[int, int], image_size: tuple[int, int], separator: str
) -> None:
    # render each box as a plain line, with repr() so floats survive exactly
    lines = [separator.join(repr(v) for v in values) + (f" {label}" if label else "") for (_, values), label in boxes]
    frame = Frame.pixels(*input_size)
    out = parse_rscovlm_plain("\n".join(lines), frame=frame, image_size=image_size)
    assert out.kinds == tuple(kind for (kind, _), _ in boxes)
    assert out.labels == tuple(label for _, label in boxes)
    assert out.num_unparsed == 0
    for row, ((kind, values), _) in zip(out.boxes, boxes, strict=True):
        mapped = frame.to_image([values], kind, image_size)
        if kind == "hbb":
            # the parser orders hbb corners: (min x, min y, max x, max y)
            mapped = np.sort(mapped.reshape(1, 2, 2), axis=1).reshape(1, 4)
        expected = canonical_quad(box_to_quad(mapped, kind))[0]
        np.testing.assert_allclose(row, expected, rtol=1e-12, atol=1e-9)


# --------------------------------------------------------------------------- speed

ADVERSARIAL = {
    "open brackets": "[" * 10**6,
    "open box objects": '{"bbox_2d": [' * 100_000,
    "number list": "1," * 500_000,
    "open loc tokens": "<loc_" * 200_000,
    "nested braces": "{" * 10**6,
    "closing braces": "}" * 10**6,
    "unterminated string": '[{"label": "' + "a" * 10**6,
    "escaped quotes": '{"a": "' + '\\"' * 500_000,
    "quotes": '"' * 10**6,
    "digits": "1" * 10**6,
    "number lines": "1\n" * 500_000,
    "box lines": "1,2,3,4 a\n" * 100_000,
    "empty objects": "{}" * 500_000,
    "box objects": '{"bbox_2d": [1, 2, 3, 4]}' * 40_000,
    "loc run": "<loc_1>" * 140_000,
    "open box tokens": "<|box_start|>" * 75_000,
    "geochat openings": "{<" * 500_000,
    "geochat boxes": "{<1><2><3><4>|<5>}" * 55_000,
    "blank then text": " " * 10**6 + "x",
    "none then blanks": "there are none" + " " * 10**6 + "x",
    "string-brace mix": '[{"a": "}' * 100_000,
    "exponents": "1e" * 500_000,
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_inputs_parse_fast(name: str) -> None:
    text = ADVERSARIAL[name]
    for dialect, parser in PARSERS.items():
        start = time.perf_counter()
        out = parser(text, frame=G1000, image_size=SQUARE)
        elapsed = time.perf_counter() - start
        # a bound against quadratic behaviour, not a benchmark: typical times are under 0.1 s, while a
        # quadratic scan of these 10^5..10^6-character inputs takes minutes; loose enough for a loaded machine
        assert elapsed < 5.0, f"{dialect} took {elapsed:.2f}s on {name!r}"
        _sane(out)


json_box = st.fixed_dictionaries(
    {
        "bbox_2d": st.lists(st.integers(0, 1000), min_size=4, max_size=4),
        # labels with braces, quotes, backslashes and non-ASCII exercise the string scanner
        "label": st.text(alphabet='ab {}[]"\\:,é\n', max_size=12),
    }
)


@given(objects=st.lists(json_box, max_size=6), cut=st.integers(0, 10**4), indent=st.sampled_from([None, 2]))
@settings(max_examples=300)
def test_json_round_trip_and_any_truncation(objects: list[dict], cut: int, indent: int | None) -> None:
    fence = "```json\n"
    text = fence + json.dumps(objects, indent=indent, ensure_ascii=False) + "\n```"
    cut = min(cut, len(text))
    out = parse_qwen25vl_json(text[:cut], frame=Frame.grid(1000), image_size=(1000, 1000))
    # json.dumps of the first k objects is the full text up to the k-th closing brace, then ']'
    ends = [
        len(fence) + len(json.dumps(objects[:k], indent=indent, ensure_ascii=False).rstrip("]").rstrip())
        for k in range(1, len(objects) + 1)
    ]
    # exactly the objects whose closing brace survived the cut are read back
    expected = [obj for obj, end in zip(objects, ends, strict=True) if end <= cut]
    assert out.labels == tuple(obj["label"].strip() for obj in expected)
    for row, obj in zip(out.boxes, expected, strict=True):
        x1, y1, x2, y2 = obj["bbox_2d"]
        np.testing.assert_allclose(row, rect(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)), atol=1e-9)
    assert out.num_unparsed == 0
    # truncated when cut after the first object opened and before the list closed
    started = cut > text.find("{")
    closed = cut > text.rindex("]")
    assert out.truncated is (bool(objects) and started and not closed)
