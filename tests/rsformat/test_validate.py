"""validate_dataset catches every class of corruption, naming the record."""

from __future__ import annotations

import dataclasses
import json

import pyarrow as pa
import pyarrow.parquet as pq
from rsformat_fixtures import family_records, make_image

from rsformat.hub import write_dataset
from rsformat.records import ContentPart, ConversationRecord, DetectionObject, GroundingRecord, Message, ToolCall
from rsformat.render import RenderFrame, render_conversation
from rsformat.validate import validate_dataset


def _write(tmp_path, image_root, family, by_split, embed=True, name="cfg"):
    out = tmp_path / "ds"
    write_dataset(by_split, out, family=family, config_name=name, embed_images=embed, image_root=image_root)
    return out


def test_clean_datasets_validate(tmp_path, image_root):
    for family, by_split in family_records().items():
        for embed in (True, False):
            out = tmp_path / f"{family}-{embed}"
            write_dataset(by_split, out, family=family, config_name="c", embed_images=embed, image_root=image_root)
            report = validate_dataset(out, image_root=None if embed else image_root)
            assert report.ok, report.to_text()
            assert report.records == sum(len(v) for v in by_split.values())


def test_wrong_size_image(tmp_path, image_root):
    rec = dataclasses.replace(family_records()["grounding"]["val"][0], width=100)
    report = validate_dataset(_write(tmp_path, image_root, "grounding", {"val": [rec]}))
    assert report.problems == {"image_size_mismatch": 1}
    assert report.examples["image_size_mismatch"][0].startswith("cfg/val/g1:")
    assert report.exit_code == 1


def test_missing_corrupt_and_unsafe_images_in_path_mode(tmp_path, image_root):
    (image_root / "images" / "broken.png").write_bytes(b"\x89PNG not really")
    base = family_records()["grounding"]["val"][1]
    recs = [
        dataclasses.replace(base, id="missing", image="images/nowhere.png"),
        dataclasses.replace(base, id="corrupt", image="images/broken.png"),
        dataclasses.replace(base, id="escape", image="../../secret.png"),
    ]
    report = validate_dataset(
        _write(tmp_path, image_root, "grounding", {"val": recs}, embed=False), image_root=image_root
    )
    assert report.problems == {"missing_image": 1, "corrupt_image": 1, "unsafe_path": 1}
    assert "cfg/val/missing" in report.examples["missing_image"][0]


def test_corrupt_embedded_bytes(tmp_path, image_root):
    make_image(image_root / "images" / "t.png", 8, 8)
    data = (image_root / "images" / "t.png").read_bytes()
    (image_root / "images" / "t.png").write_bytes(data[: len(data) // 2])
    rec = GroundingRecord("t", "d", "val", "images/t.png", 8, 8, expression="x", hbb=(0.0, 0.0, 2.0, 2.0))
    report = validate_dataset(_write(tmp_path, image_root, "grounding", {"val": [rec]}))
    assert report.problems == {"corrupt_image": 1}


def test_boxes_outside_degenerate_and_non_canonical(tmp_path, image_root):
    det = family_records()["detection"]["train"][0]
    good = det.objects[0]
    ccw = (10.25, 5.5, 10.25, 20.75, 30.125, 20.75, 30.125, 5.5)  # the same box, counter-clockwise
    objects = (
        good,
        DetectionObject.from_quad("plane", [60, 10, 66, 10, 66, 20, 60, 20]),  # 66 > 64 + 1
        DetectionObject.from_quad("plane", [60, 10, 64.9, 10, 64.9, 20, 60, 20]),  # inside the tolerance
        dataclasses.replace(good, quad=ccw),
        dataclasses.replace(good, hbb=(0.0, 0.0, 1.0, 1.0)),
        DetectionObject("plane", (5.0, 5.0) * 4, (5.0, 5.0, 5.0, 5.0), (5.0, 5.0, 0.0, 0.0, 0.0)),
    )
    report = validate_dataset(
        _write(tmp_path, image_root, "detection", {"train": [dataclasses.replace(det, objects=objects)]})
    )
    assert report.problems == {
        "box_outside_image": 1,
        "non_canonical_quad": 1,
        "inconsistent_box": 1,
        "degenerate_box": 1,
    }
    assert report.examples["box_outside_image"][0].startswith("cfg/train/a object 1:")
    assert report.examples["non_canonical_quad"][0].startswith("cfg/train/a object 3:")


def test_grounding_and_zoom_boxes(tmp_path, image_root):
    g = family_records()["grounding"]["val"][0]
    z1, z2 = family_records()["zoom"]["test"]
    out = tmp_path / "ds"
    write_dataset(
        {"val": [dataclasses.replace(g, hbb=(30.0, 2.0, 10.0, 40.0))]},
        out,
        family="grounding",
        config_name="g",
        image_root=image_root,
    )
    write_dataset(
        {"test": [dataclasses.replace(z1, rois=((0.0, 0.0, 500.0, 60.0),)), dataclasses.replace(z2, answer="E")]},
        out,
        family="zoom",
        config_name="z",
        image_root=image_root,
    )
    report = validate_dataset(out)
    assert report.problems == {"degenerate_box": 1, "box_outside_image": 1, "answer_not_a_choice": 1}


def test_messages_and_tool_calls(tmp_path, image_root):
    conv = family_records()["conversation"]["train"][0]
    msgs = list(conv.messages)
    bad_json = dataclasses.replace(msgs[2], tool_calls=(ToolCall("call_0", "image_zoom_in", "{bbox: [1,2,3,4]}"),))
    bad_schema = dataclasses.replace(msgs[2], tool_calls=(ToolCall("call_0", "image_zoom_in", '{"bbox": [1, 2, 3]}'),))
    recs = [
        dataclasses.replace(conv, id="json", messages=(msgs[0], msgs[1], bad_json, *msgs[3:])),
        dataclasses.replace(conv, id="schema", messages=(msgs[0], msgs[1], bad_schema, *msgs[3:])),
        dataclasses.replace(
            conv, id="orphan", messages=(msgs[0], msgs[1], dataclasses.replace(msgs[3], tool_call_id="call_9"), msgs[4])
        ),
        dataclasses.replace(conv, id="index", images=("images/a.png",)),
        dataclasses.replace(conv, id="role", messages=(Message.text("robot", "beep"), msgs[4])),  # type: ignore[arg-type]
        dataclasses.replace(
            conv, id="text", messages=(msgs[0], Message.text("assistant", "<tool_call>\n{oops}\n</tool_call>"))
        ),
        dataclasses.replace(conv, id="tools", tools="[not json"),
    ]
    report = validate_dataset(_write(tmp_path, image_root, "conversation", {"train": recs}))
    assert report.problems == {
        "bad_tool_call": 3,
        "unknown_tool_call_id": 1,
        "image_index_out_of_range": 1,
        "malformed_messages": 1,
        "bad_tools_json": 1,
    }
    assert any("cfg/train/json" in e for e in report.examples["bad_tool_call"])
    assert any("cfg/train/text" in e for e in report.examples["bad_tool_call"])


def test_rendered_zoom_conversation_validates(tmp_path, image_root):
    z = family_records()["zoom"]["test"][0]
    conv = render_conversation(z, RenderFrame.smart())
    assert conv.images[1].startswith("crop:")
    out = tmp_path / "ds"
    write_dataset({"train": [conv]}, out, family="conversation", embed_images=False)
    assert validate_dataset(out, image_root=image_root).ok
    bad = dataclasses.replace(conv, images=(conv.images[0], "crop:0,0,9999,10"))
    write_dataset({"train": [bad]}, out, family="conversation", embed_images=False)
    assert validate_dataset(out, image_root=image_root).problems == {"bad_crop_ref": 1}


def test_duplicate_ids_across_splits(tmp_path, image_root):
    g = family_records()["grounding"]["val"][0]
    report = validate_dataset(_write(tmp_path, image_root, "grounding", {"train": [g], "val": [g]}))
    assert report.problems == {"duplicate_id": 1}
    assert report.examples["duplicate_id"] == ["cfg/val/g1: id seen before in this config"]


def test_schema_shard_and_count_problems(tmp_path, image_root):
    out = _write(tmp_path, image_root, "grounding", family_records()["grounding"], embed=False)
    shard = out / "cfg" / "val-00000-of-00001.parquet"
    table = pq.read_table(shard).drop_columns(["mask"]).append_column("extra", pa.array([1, 2]))
    pq.write_table(table, shard)
    report = validate_dataset(out)
    assert report.problems["schema"] == 1
    assert "missing ['mask']" in report.examples["schema"][0] and "unexpected ['extra']" in report.examples["schema"][0]
    shard.unlink()
    report = validate_dataset(out)
    assert report.problems == {"missing_shard": 1, "split_count_mismatch": 1}


def test_not_a_dataset(tmp_path):
    report = validate_dataset(tmp_path)
    assert report.problems == {"not_a_dataset": 1} and report.exit_code == 1
    assert json.loads(json.dumps(report.summary()))["problems"] == {"not_a_dataset": 1}


def test_conversation_without_images_is_fine(tmp_path):
    rec = ConversationRecord("c", "d", "t", (), (Message.text("user", "q"), Message.text("assistant", "a")))
    out = tmp_path / "ds"
    write_dataset({"train": [rec]}, out, family="conversation", embed_images=False)
    assert validate_dataset(out).ok


def test_boxes_in_conversation_text(tmp_path, image_root):
    quad = [10.0, 5.0, 30.0, 5.0, 30.0, 20.0, 10.0, 20.0]
    meta = {"boxes": [quad], "box_kinds": ["hbb"], "box_images": [0], "image_sizes": [[64, 48], None]}

    def conv(rid, text, **changes):
        m = {**meta, **changes}
        return ConversationRecord(
            rid,
            "geochat_instruct",
            "train",
            ("images/a.png", "images/b.png"),
            (
                Message(
                    "user",
                    (ContentPart("image", image=0), ContentPart("image", image=1), ContentPart("text", text="Where?")),
                ),
                Message.text("assistant", text),
            ),
            metadata=json.dumps(m),
        )

    outside = [10.0, 5.0, 90.0, 5.0, 90.0, 20.0, 10.0, 20.0]  # x 90 > width 64
    recs = [
        conv("ok", "<box:0>"),
        conv("range", "<box:0> and <box:3>"),
        conv("outside", "<box:0>", boxes=[outside]),
        conv("sizes", "<box:0>", image_sizes=[[64, 40], None]),
        conv("meta", "<box:0>", box_images=[1]),  # image 1's size is not in image_sizes
        ConversationRecord(
            "nometa", "d", "train", (), (Message.text("user", "q"), Message.text("assistant", "<box:0>"))
        ),
    ]
    report = validate_dataset(
        _write(tmp_path, image_root, "conversation", {"train": recs}, embed=False), image_root=image_root
    )
    assert report.problems == {
        "box_token_out_of_range": 3,  # "range", and "meta" and "nometa" whose boxes cannot be read
        "box_outside_image": 1,
        "image_size_mismatch": 1,
        "bad_box_metadata": 1,
    }
    assert report.examples["box_token_out_of_range"][0].startswith("cfg/train/range message 1: <box:3>")
    assert report.examples["box_outside_image"][0].startswith("cfg/train/outside box 0 (image 0)")
    assert report.examples["image_size_mismatch"][0].startswith("cfg/train/sizes image 0")


def test_converted_geochat_validates(tmp_path, image_root):
    from rsformat.converters.base import ConversionReport
    from rsformat.converters.geochat import _geochat_tokens

    messages, meta = _geochat_tokens(
        (Message.text("user", "What is at {<10><20><50><40>}?"), Message.text("assistant", "{<0><0><50><50>|<0>}")),
        lambda: (64, 48),
        "here",
        ConversionReport("geochat_instruct"),
    )
    rec = ConversationRecord("g", "geochat_instruct", "train", ("images/a.png",), messages, metadata=json.dumps(meta))
    out = _write(tmp_path, image_root, "conversation", {"train": [rec]}, embed=False)
    assert validate_dataset(out, image_root=image_root).ok
