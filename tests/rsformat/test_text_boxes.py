"""Boxes in conversation text: converter placeholders, rendering in the model frame, round trip, restoring."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from rsformat.converters import get_converter
from rsformat.converters.base import ConversionReport
from rsformat.converters.geochat import _BRACKET_BOX, _GRID, _geochat_tokens, restore_source_text
from rsformat.records import ContentPart, ConversationRecord, Message
from rsformat.render import RenderFrame, RenderStyle, TextBoxes, render, render_conversation
from rsmetrics.geometry import quad_to_hbb
from rsmetrics.parsers import parse_response

FRAMES = [
    RenderFrame.smart(),
    RenderFrame.pixels(1008, 1008),
    RenderFrame.pixels(500, 252),
    RenderFrame.grid(1000),
    RenderFrame.grid(100),
]


def _convert(name: str, root: Path, split: str) -> list[ConversationRecord]:
    return list(get_converter(name)(root).records(split, ConversionReport(name)))


def _geochat_record(tmp_path: Path, answer: str, size: tuple[int, int] = (504, 504)) -> ConversationRecord:
    (tmp_path / "images").mkdir(exist_ok=True)
    Image.new("RGB", size).save(tmp_path / "images/P1.png")
    item = {
        "id": "r",
        "image": "P1.png",
        "conversations": [
            {"from": "human", "value": "<image>\n[refer] Give me the location of <p>the plane</p>"},
            {"from": "gpt", "value": answer},
        ],
    }
    (tmp_path / "GeoChat_Instruct.json").write_text(json.dumps([item]))
    (rec,) = _convert("geochat_instruct", tmp_path, "train")
    return rec


# --------------------------------------------------------------------------- hand-computed renders


def test_geochat_refer_rendered_in_1008_frame(tmp_path: Path) -> None:
    rec = _geochat_record(tmp_path, "{<12><46><32><66>|<0>}")
    assert rec.messages[1].text_content == "<box:0>"
    # 0-100 grid on 504 px: 60.48, 231.84, 161.28, 332.64; times 1008 / 504 = 2:
    # 120.96, 463.68, 322.56, 665.28, rounded once, half up
    frame = RenderFrame.pixels(1008, 1008)
    assert render(rec, frame, RenderStyle("plain", "hbb"))[1].text_content == "121,464,323,665"
    assert render(rec, frame, RenderStyle("plain", "quad"))[1].text_content == "121,464,323,464,323,665,121,665"
    assert render(rec, frame, RenderStyle("json", "hbb"))[1].text_content == (
        '```json\n[\n\t{"bbox_2d": [121, 464, 323, 665]}\n]\n```'
    )
    # the smart frame of a 504x504 image is 504x504 itself: 60.48 -> 60, 231.84 -> 232 ...
    assert render(rec, RenderFrame.smart(), RenderStyle())[1].text_content == "60,232,161,333"
    # the question is untouched; the record keeps its placeholders
    assert render(rec, frame)[0] == rec.messages[0]
    assert rec.messages[1].text_content == "<box:0>"


def test_inline_boxes_in_prose_and_questions() -> None:
    meta = {
        "boxes": [[10.0, 20.0, 30.0, 20.0, 30.0, 40.0, 10.0, 40.0]],
        "box_kinds": ["hbb"],
        "image_sizes": [[100, 100]],
    }
    rec = ConversationRecord(
        "c",
        "demo",
        "train",
        ("a.png",),
        (
            Message("user", (ContentPart("image", image=0), ContentPart("text", text="What is at <box:0>?"))),
            Message.text("assistant", "A car <box:0>, parked."),
        ),
        metadata=json.dumps(meta),
    )
    frame = RenderFrame.pixels(200, 50)  # x * 2, y / 2
    plain = [m.text_content for m in render(rec, frame, RenderStyle("plain", "hbb"))]
    assert plain == ["What is at 20,10,60,20?", "A car 20,10,60,20, parked."]
    js = [m.text_content for m in render(rec, frame, RenderStyle("json", "quad"))]
    assert js == ["What is at [20, 10, 60, 10, 60, 20, 20, 20]?", "A car [20, 10, 60, 10, 60, 20, 20, 20], parked."]
    conv = render_conversation(rec, frame, RenderStyle())
    out = json.loads(conv.metadata)
    assert out["input_sizes"] == [[200, 50]] and out["input_size"] == [200, 50] and out["boxes"] == meta["boxes"]
    assert conv.messages[1].text_content == "A car 20,10,60,20, parked."
    # a rendered record has no placeholders left: rendering it again changes nothing
    assert render_conversation(conv, RenderFrame.grid(), RenderStyle()) is conv


def test_teochat_multi_box_answer(tmp_path: Path) -> None:
    for name in ("pre", "post"):
        (tmp_path / "eval/xBD").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (400, 200)).save(tmp_path / f"eval/xBD/{name}.png")
    item = {
        "video": ["eval/xBD/pre.png", "eval/xBD/post.png"],
        "conversations": [
            {"from": "human", "value": "<video> Which buildings changed?"},
            {"from": "gpt", "value": "[10, 20, 30, 40], [50, 50, 60, 60]"},
        ],
    }
    (tmp_path / "eval/xBD_Loc.json").write_text(json.dumps([item]))
    (rec,) = _convert("teochatlas", tmp_path, "eval_xBD_Loc")
    # smart frame of 400x200: 392x196, a factor 0.98 on both axes
    # [10, 20, 30, 40] -> 40, 40, 120, 80 px -> 39.2, 39.2, 117.6, 78.4
    # [50, 50, 60, 60] -> 200, 100, 240, 120 px -> 196, 98, 235.2, 117.6
    answer = render(rec, RenderFrame.smart(), RenderStyle("plain", "hbb"))[1].text_content
    assert answer == "39,39,118,78\n196,98,235,118"
    js = render(rec, RenderFrame.smart(), RenderStyle("json", "hbb"))[1].text_content
    assert js == '```json\n[\n\t{"bbox_2d": [39, 39, 118, 78]},\n\t{"bbox_2d": [196, 98, 235, 118]}\n]\n```'


def test_each_box_scaled_with_its_own_image() -> None:
    quad = [10.0, 10.0, 20.0, 10.0, 20.0, 20.0, 10.0, 20.0]
    meta = {
        "boxes": [quad, quad],
        "box_kinds": ["hbb", "hbb"],
        "box_images": [0, 1],
        "image_sizes": [[56, 56], [112, 112]],
    }
    rec = ConversationRecord(
        "m",
        "demo",
        "train",
        ("a.png", "b.png"),
        (Message.text("assistant", "<box:0> then <box:1>"),),
        metadata=json.dumps(meta),
    )
    # min_pixels 224²: image 0 is scaled up 4x, image 1 2x
    assert render(rec, RenderFrame.smart())[0].text_content == "40,40,80,80 then 20,20,40,40"


def test_missing_box_raises() -> None:
    rec = ConversationRecord("x", "d", "t", (), (Message.text("assistant", "<box:0>"),))
    with pytest.raises(ValueError, match="holds 0 boxes"):
        render(rec, RenderFrame.grid())
    with pytest.raises(ValueError, match="image_sizes"):
        TextBoxes.from_metadata({"boxes": [[0, 0, 1, 0, 1, 1, 0, 1]]}, num_images=1)


# --------------------------------------------------------------------------- render -> parse round trip


@st.composite
def geochat_answers(draw):
    w = draw(st.integers(100, 3000))
    h = draw(st.integers(100, 3000))
    n = draw(st.integers(1, 4))
    boxes = []
    for _ in range(n):
        x1 = draw(st.integers(5, 60))
        y1 = draw(st.integers(5, 60))
        # at least 8 grid units: rounding in a 0-100 frame keeps the box's shape
        boxes.append((x1, y1, x1 + draw(st.integers(8, 35)), y1 + draw(st.integers(8, 35))))
    angled = draw(st.booleans())
    text = ", ".join("{" + "".join(f"<{v}>" for v in b) + ("|<0>" if angled else "") + "}" for b in boxes)
    return w, h, text


def _tokens(text: str, w: int, h: int) -> ConversationRecord:
    messages, meta = _geochat_tokens(
        (Message.text("assistant", text),), lambda: (w, h), "here", ConversionReport("geochat_instruct")
    )
    return ConversationRecord("r", "geochat_instruct", "train", ("a.png",), messages, metadata=json.dumps(meta))


@settings(max_examples=60, deadline=None)
@given(
    answer=geochat_answers(),
    frame=st.sampled_from(FRAMES),
    style=st.sampled_from([RenderStyle(o, b) for o in ("plain", "json") for b in ("hbb", "quad")]),
)
def test_render_parse_round_trip(answer, frame, style) -> None:
    w, h, text = answer
    rec = _tokens(text, w, h)
    stored = np.array(json.loads(rec.metadata)["boxes"])
    rendered = render(rec, frame, style)[0].text_content
    out = parse_response(rendered, style.dialect, frame=frame.parser_frame(w, h), image_size=(w, h))
    assert out.num_unparsed == 0 and len(out) == len(stored), (rendered, out.errors)
    fw, fh = frame.size(w, h)
    # at most half a frame unit per coordinate, scaled back to the image
    err = np.abs(out.boxes - stored) / np.tile([w / fw, h / fh], 4)
    assert err.max() <= 0.5 + 1e-6, (rendered, err.max())


def test_teochat_round_trip_every_frame() -> None:
    w, h = 640, 480
    text = "[10, 20, 30, 40], [55, 5, 95, 45]"

    def read(match: re.Match[str]):
        from rsformat.converters._llava import SourceBox
        from rsmetrics.geometry import hbb_to_quad

        px = _GRID.to_image(np.array([[float(v) for v in match.groups()]]), "hbb", (w, h))
        return SourceBox(tuple(hbb_to_quad(px)[0].tolist()), "hbb")

    from rsformat.converters._llava import box_metadata, tokenize_boxes

    messages, boxes, owners = tokenize_boxes((Message.text("assistant", text),), _BRACKET_BOX, read)
    rec = ConversationRecord(
        "t",
        "teochatlas",
        "train",
        ("a.png",),
        messages,
        metadata=json.dumps(box_metadata(boxes, owners, [(w, h)], "teochat")),
    )
    expected = np.array([[64.0, 96.0, 192.0, 192.0], [352.0, 24.0, 608.0, 216.0]])
    for frame in FRAMES:
        fw, fh = frame.size(w, h)
        for style in (RenderStyle("plain", "hbb"), RenderStyle("json", "hbb")):
            rendered = render(rec, frame, style)[0].text_content
            out = parse_response(rendered, style.dialect, frame=frame.parser_frame(w, h), image_size=(w, h))
            err = np.abs(out.hbb - expected) / [w / fw, h / fh, w / fw, h / fh]
            assert err.max() <= 0.5 + 1e-6, (frame, style, rendered)
    assert restore_source_text(rec).messages[0].text_content == text


# --------------------------------------------------------------------------- restoring the source text


@settings(max_examples=100, deadline=None)
@given(
    w=st.integers(50, 5000),
    h=st.integers(50, 5000),
    boxes=st.lists(
        st.tuples(
            st.integers(0, 100), st.integers(0, 100), st.integers(0, 100), st.integers(0, 100),
            st.none() | st.integers(-90, 90),
        ),
        min_size=1,
        max_size=4,
    ),
)  # fmt: skip
def test_restore_geochat_text_exactly(w, h, boxes) -> None:
    pieces = []
    for x1, y1, x2, y2, angle in boxes:
        x1, x2 = sorted((x1, x2))
        y1, y2 = sorted((y1, y2))
        pieces.append(f"{{<{x1}><{y1}><{x2}><{y2}>" + ("" if angle is None else f"|<{angle}>") + "}")
    text = "the plane " + pieces[0] + " and " + ", ".join(pieces[1:]) + "."
    rec = _tokens(text, w, h)
    assert "{<" not in rec.messages[0].text_content
    assert restore_source_text(rec).messages[0].text_content == text


def test_restore_is_identity_without_boxes() -> None:
    rec = ConversationRecord("x", "d", "t", (), (Message.text("user", "hi"), Message.text("assistant", "ho")))
    assert restore_source_text(rec) is rec


def test_stored_boxes_are_original_pixels(tmp_path: Path) -> None:
    rec = _geochat_record(tmp_path, "{<12><46><32><66>|<0>}", size=(1000, 500))
    meta = json.loads(rec.metadata)
    assert quad_to_hbb(np.array(meta["boxes"][0])).tolist() == pytest.approx([120.0, 230.0, 320.0, 330.0])
    assert meta["box_kinds"] == ["obb"] and meta["box_angles"] == [0.0] and meta["image_sizes"] == [[1000, 500]]


def test_teochat_frames_of_different_sizes(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    Image.new("RGB", (400, 200)).save(tmp_path / "train/pre.png")
    Image.new("RGB", (200, 100)).save(tmp_path / "train/post.png")
    item = {
        "video": ["train/pre.png", "train/post.png"],
        "conversations": [
            {"from": "human", "value": "<video> Where?"},
            {"from": "gpt", "value": "[0, 0, 50, 50]"},
        ],
    }
    (tmp_path / "train/a.json").write_text(json.dumps([item]))
    report = ConversionReport("teochatlas")
    (rec,) = get_converter("teochatlas")(tmp_path).records("train", report)
    meta = json.loads(rec.metadata)
    # boxes lie on frame 0 and are scaled with frame 0's size; every frame's size is kept
    assert meta["box_images"] == [0] and meta["image_sizes"] == [[400, 200], [200, 100]]
    assert quad_to_hbb(np.array(meta["boxes"][0])).tolist() == [0.0, 0.0, 200.0, 100.0]
    assert report.counters == {"frame_sizes_differ": 1}
    assert render(rec, RenderFrame.pixels(800, 400))[1].text_content == "0,0,400,200"
