"""Conversation converters: LLaVA helper, GeoChat, VRSBench, TEOChatlas, VHM, LLaVA-OV, RSVQA, scene cls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from rsformat.converters import get_converter
from rsformat.converters._llava import RecordError, llava_messages
from rsformat.converters.base import ConversionReport
from rsformat.converters.geochat import restore_source_text
from rsformat.records import ConversationRecord, GroundingRecord

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "samples"


def _image(path: Path, size: tuple[int, int] = (200, 100)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size).save(path)


def _json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _run(name: str, root: Path, split: str, **options: object) -> tuple[list, ConversionReport]:
    report = ConversionReport(name)
    return list(get_converter(name)(root, **options).records(split, report)), report


def _turns(*values: str) -> list[dict[str, str]]:
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": v} for i, v in enumerate(values)]


def _parts(message) -> list[tuple[str, object]]:
    return [(p.type, p.text if p.type == "text" else p.image) for p in message.content]


# --------------------------------------------------------------------------- LLaVA helper


def test_llava_messages_tokens_roles_and_quirks() -> None:
    report = ConversionReport("x")
    msgs = llava_messages(
        [
            {"from": "human", "value": "<image>\nCompare <image>\n please"},
            {"value": "no from"},
            {"from": "gpt", "value": "Same."},
            {"from": "human", "value": "Sure?"},
            {"from": "assistant", "value": "Yes."},
        ],
        2,
        report=report,
        where="f.json[0]",
    )
    assert [m.role for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert _parts(msgs[0]) == [("image", 0), ("text", "Compare"), ("image", 1), ("text", "please")]
    assert report.counters == {"turns_without_from": 1}
    # images without a token go to the start of the first user turn
    msgs = llava_messages(_turns("Hi", "Hello"), 1, report=report)
    assert _parts(msgs[0]) == [("image", 0), ("text", "Hi")]
    assert report.counters["image_token_inserted"] == 1


@pytest.mark.parametrize(
    ("conversations", "num_images", "reason"),
    [
        (_turns("<image><image>", "a"), 1, "image_token_mismatch"),  # more tokens than images
        (_turns("<image>", "a"), 2, "image_token_mismatch"),  # fewer tokens than images
        ([{"from": "robot", "value": "x"}], 0, "unknown_role"),
        (_turns("only a question"), 0, "no_assistant_turn"),
        (_turns("q", ""), 0, "empty_turn"),
        ("not a list", 0, "bad_conversations"),
        ([{"from": "human", "value": 3}], 0, "bad_conversations"),
    ],
)
def test_llava_messages_errors(conversations: object, num_images: int, reason: str) -> None:
    with pytest.raises(RecordError) as info:
        llava_messages(conversations, num_images)
    assert info.value.reason == reason


# --------------------------------------------------------------------------- GeoChat_Instruct


@pytest.fixture
def geochat(tmp_path: Path) -> Path:
    _image(tmp_path / "images/P1.png", (200, 100))
    items = [
        {"id": "ref", "image": "P1.png", "conversations": _turns(
            "<image>\n[refer] Give me the location of <p> the small  white car </p>", "{<10><20><50><40>}")},
        {"id": "grd", "image": "P1.jpg", "conversations": _turns(
            "[grounding] Describe the image in detail. ?", "<p>a car</p> {<0><0><50><50>|<90>} and more,, cars")},
        {"id": "idf", "image": "P1.png", "conversations": _turns(
            "<image>[identify] {<10><20><50><40>|<0>}", "{<10><20><50><40>|<0>} a white car")},
        {"id": "cls", "image": "P1.png", "conversations": _turns("<image>\nClassify the image .. Pick one.", "forest")},
        {"id": "miss", "image": "P9.png", "conversations": _turns("<image>\nq", "a")},
        {"id": "esc", "image": "../../outside.png", "conversations": _turns("<image>\nq", "a")},
        {"id": "bad", "image": "P1.png", "conversations": _turns("<image>\nq", "{<1><2>|<3>} broken")},
        7,
    ]  # fmt: skip
    _json(tmp_path / "GeoChat_Instruct.json", items)
    return tmp_path


def test_geochat_instruct_cleaning_and_boxes(geochat: Path) -> None:
    recs, report = _run("geochat_instruct", geochat, "train")
    by_id = {r.id: r for r in recs}
    assert sorted(by_id) == ["cls", "grd", "idf", "ref"]  # "bad": a box that cannot be read
    ref = by_id["ref"]
    assert isinstance(ref, ConversationRecord) and ref.task == "grounding" and ref.images == ("images/P1.png",)
    assert _parts(ref.messages[0]) == [("image", 0), ("text", "Give me the location of the small white car")]
    assert ref.messages[1].text_content == "<box:0>"  # no 0-100 grid left in the text
    # 0-100 grid on a 200x100 image: x 20..100, y 20..40, a canonical quad from the top-left corner
    assert json.loads(ref.metadata) == {
        "boxes": [[20.0, 20.0, 100.0, 20.0, 100.0, 40.0, 20.0, 40.0]],
        "box_kinds": ["hbb"],
        "box_images": [0],
        "box_messages": [1],
        "box_angles": [None],
        "image_sizes": [[200, 100]],
        "box_source_format": "geochat",
    }
    grd = by_id["grd"]
    assert grd.task == "grounded_caption" and grd.images == ("images/P1.png",)  # .jpg listed, .png on disk
    assert (
        grd.messages[0].text_content == "Describe the image in detail and give the location of each object you mention."
    )
    assert grd.messages[1].text_content == "a car <box:0> and more, cars"
    # the 100x50 px box turned by 90 degrees about its centre (50, 25): 50 wide, 100 tall
    meta = json.loads(grd.metadata)
    (quad,) = meta["boxes"]
    xs, ys = quad[0::2], quad[1::2]
    assert (min(xs), max(xs), min(ys), max(ys)) == pytest.approx((25.0, 75.0, -25.0, 75.0))
    assert meta["box_kinds"] == ["obb"] and meta["box_angles"] == [90.0]
    assert restore_source_text(grd).messages[1].text_content == "a car {<0><0><50><50>|<90>} and more, cars"
    idf = by_id["idf"]
    assert idf.task == "region_caption"
    assert idf.messages[0].text_content == "What is the object present at <box:0>"  # user turns too
    assert idf.messages[1].text_content == "a white car"  # the echoed input box is dropped
    assert json.loads(idf.metadata)["box_messages"] == [0]
    assert restore_source_text(idf).messages[0].text_content == "What is the object present at {<10><20><50><40>|<0>}"
    assert by_id["cls"].messages[0].text_content == "Classify the image. Pick one." and by_id["cls"].metadata is None
    assert report.rules == {
        "double_dot_artefact": 1,
        "dot_question_artefact": 1,
        "grounding_tag": 1,
        "identify_tag": 1,
        "phrase_markers": 2,
        "refer_tag": 1,
        "repeated_input_box": 1,
        "repeated_punctuation": 1,
        "repeated_spaces": 1,
        "space_before_punctuation": 1,
    }
    assert report.skipped == {"missing_image": 1, "not_an_object": 1, "unparsed_box": 1, "unsafe_path": 1}
    # the rotated box reaches above the image: kept, counted
    assert report.counters == {"image_extension_fixed": 1, "image_token_inserted": 1, "boxes_outside_image": 1}
    assert report.records_in == 8 and report.records_out == 4


def test_geochat_refuses_placeholders_in_source(tmp_path: Path) -> None:
    _image(tmp_path / "images/P1.png")
    _json(
        tmp_path / "GeoChat_Instruct.json", [{"id": "x", "image": "P1.png", "conversations": _turns("q <box:0>", "a")}]
    )
    recs, report = _run("geochat_instruct", tmp_path, "train")
    assert recs == [] and report.skipped == {"box_token_in_source": 1}


# --------------------------------------------------------------------------- VRSBench


@pytest.fixture
def vrsbench(tmp_path: Path) -> Path:
    _image(tmp_path / "Images/a.png", (512, 256))
    items = [
        {"id": "a", "image": "a.png", "conversations": _turns(
            "<image>\nDescribe the image in detail.", "A harbor.",
            "[refer] give me the location of <p>the ship on the left</p>", "{<10><20><30><40>}",
            "How many ships?", "2",
            "<p>the crane</p>", "{<0><0><100><100>}")},
        {"id": "b", "image": "a.png", "conversations": _turns("<image>\nWhere is <p>x</p>?", "{<5><5><5><9>}")},
        {"id": "c", "image": "a.png", "conversations": _turns("<image>\nDescribe the image.", "Fields.")},
        {"id": "d", "image": "a.png", "conversations": _turns("<image>\nodd turns")[:1]},
    ]  # fmt: skip
    _json(tmp_path / "VRSBench_train.json", items)
    return tmp_path


def test_vrsbench_referring(vrsbench: Path) -> None:
    recs, report = _run("vrsbench_referring", vrsbench, "train")
    assert [r.id for r in recs] == ["a/ref0", "a/ref1"]
    ship = recs[0]
    assert isinstance(ship, GroundingRecord) and ship.source == "vrsbench"
    assert ship.expression == "the ship on the left"
    assert ship.hbb == (51.2, 51.2, 153.6, 102.4) and (ship.width, ship.height) == (512, 256)
    assert recs[1].hbb == (0.0, 0.0, 512.0, 256.0)
    assert report.skipped == {"bad_conversations": 1, "degenerate_box": 1}


def test_vrsbench_conversations(vrsbench: Path) -> None:
    recs, report = _run("vrsbench", vrsbench, "train")
    assert [(r.id, r.task) for r in recs] == [("a", "vqa"), ("c", "caption")]
    a = recs[0]
    assert [m.text_content for m in a.messages] == [
        "Describe the image in detail.",
        "A harbor.",
        "How many ships?",
        "2",
    ]
    assert _parts(a.messages[0])[0] == ("image", 0)
    assert report.counters == {"referring_only_records": 1}
    assert report.skipped == {"bad_conversations": 1}


# --------------------------------------------------------------------------- TEOChatlas


def test_teochatlas(tmp_path: Path) -> None:
    for name in ("pre", "post"):
        _image(tmp_path / f"eval/xBD/{name}.png", (400, 200))
    items = [
        {"video": ["TEOChatlas/eval/xBD/pre.png", "TEOChatlas/eval/xBD/post.png"], "timestamp": ["2019-01-01", "2019-02-01"],
         "task": "loc", "conversations": [
             {"from": "human", "value": "<video> Which buildings changed.. Include boxes. ?"},
             {"value": "orphan turn"},
             {"from": "gpt", "value": "[10, 20, 30, 40], [50, 50, 60, 60]"}]},
        {"video": ["eval/xBD/pre.png"], "conversations": _turns(
            "This is a satellite image: <video> What is at [10, 10, 20, 20]?", "[10, 10, 20, 20] a house")},
        {"video": ["eval/xBD/gone.png"], "conversations": _turns("<video> q", "a")},
    ]  # fmt: skip
    _json(tmp_path / "eval/xBD_Change_Detection_Localization.json", items)
    (tmp_path / "eval/xBD/unused.json").parent.mkdir(parents=True, exist_ok=True)
    conv = get_converter("teochatlas")(tmp_path)
    assert conv.splits() == ["eval_xBD_Change_Detection_Localization"]
    recs, report = _run("teochatlas", tmp_path, "eval_xBD_Change_Detection_Localization")
    assert len(recs) == 2
    temporal, single = recs
    assert temporal.task == "temporal" and temporal.images == ("eval/xBD/pre.png", "eval/xBD/post.png")
    assert _parts(temporal.messages[0]) == [
        ("image", 0),
        ("image", 1),
        ("text", "Which buildings changed. Include boxes."),
    ]
    meta = json.loads(temporal.metadata)
    assert meta["timestamp"] == ["2019-01-01", "2019-02-01"] and meta["task"] == "loc"
    assert temporal.messages[1].text_content == "<box:0>, <box:1>"
    assert meta["boxes"][0] == [40.0, 40.0, 120.0, 40.0, 120.0, 80.0, 40.0, 80.0]  # 0-100 on 400x200
    assert meta["box_messages"] == [1, 1] and meta["box_kinds"] == ["hbb", "hbb"]
    assert meta["box_images"] == [0, 0] and meta["image_sizes"] == [[400, 200], [400, 200]]
    assert meta["box_source_format"] == "teochat"
    assert restore_source_text(temporal).messages[1].text_content == "[10, 20, 30, 40], [50, 50, 60, 60]"
    assert single.task == "conversation" and single.messages[1].text_content == "a house"
    assert _parts(single.messages[0])[-1] == ("text", "What is at <box:0>?")
    assert report.counters == {"root_prefix_stripped": 2, "turns_without_from": 1}
    assert report.rules == {"dot_question_artefact": 1, "double_dot_artefact": 1, "repeated_input_box": 1}
    assert report.skipped == {"missing_image": 1}


# --------------------------------------------------------------------------- VHM


def test_vhm_sft_and_eval(tmp_path: Path) -> None:
    _image(tmp_path / "DOTA-train/P1.png")
    _image(tmp_path / "datasets_eval/cls/a.jpg")
    _json(
        tmp_path / "list_sft.json",
        [
            {"image": "P1.png", "source_dataset": "DOTA-train", "conversations": _turns("<image>\nWhat?", "A port.")},
            {"conversations": _turns("Text only?", "Yes.")},
            {"image": "P1.png", "source_dataset": "..", "conversations": _turns("<image>\nq", "a")},
            {"image": "P1.png", "conversations": _turns("<image>\nq", "a")},
            {"messages": [{"role": "user", "content": "x"}]},
        ],
    )
    _json(
        tmp_path / "datasets_eval/cls_AID.json",
        [{"image": "a.jpg", "image_path": "cls", "conversations": _turns("<image>\nClass?", "forest")}],
    )
    assert get_converter("vhm")(tmp_path).splits() == ["train", "eval_cls_AID"]
    recs, report = _run("vhm", tmp_path, "train")
    assert [(r.images, r.task) for r in recs] == [(("DOTA-train/P1.png",), "conversation"), ((), "text")]
    assert report.skipped == {"missing_field": 1, "unsafe_path": 1, "unsupported_layout": 1}
    recs, _ = _run("vhm", tmp_path, "eval_cls_AID")
    assert recs[0].images == ("datasets_eval/cls/a.jpg",) and recs[0].split == "eval_cls_AID"


# --------------------------------------------------------------------------- LLaVA-OneVision


def test_llava_onevision_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    _image(tmp_path / "sroie/img/x.png")
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table(
        {
            "id": ["t1", "i1", "e1", "bad"],
            "image": pa.array(
                [None, {"bytes": None, "path": "sroie/img/x.png"}, {"bytes": b"\x89PNG", "path": "x.png"}, None],
                type=image_type,
            ),
            "conversations": [_turns("Hi", "Hello"), _turns("What is it?", "A receipt."), _turns("<image>q", "a"),
                              _turns("<image>q", "a")],
            "data_source": ["text", "sroie", "sroie", "text"],
        }
    )  # fmt: skip
    (tmp_path / "sroie").mkdir(exist_ok=True)
    pq.write_table(table, tmp_path / "sroie/train-00000-of-00001.parquet")
    recs, report = _run("llava_onevision", tmp_path, "train")
    # the embedded image of row 2 is written once, byte for byte, beside the shards
    extracted = ".rsformat_images/sroie/train-00000-of-00001/0000002.png"
    assert [(r.id, r.task, r.images) for r in recs] == [
        ("t1", "text", ()),
        ("i1", "general", ("sroie/img/x.png",)),
        ("e1", "general", (extracted,)),
    ]
    assert (tmp_path / extracted).read_bytes() == b"\x89PNG"
    assert recs[0].source == "llava_onevision/sroie" and json.loads(recs[1].metadata) == {"data_source": "sroie"}
    assert report.skipped == {"image_token_mismatch": 1}
    assert report.counters == {"image_token_inserted": 1, "embedded_images_extracted": 1}
    # a rerun reuses the extracted file, and the extracted folder is not read as a shard
    recs_again, report_again = _run("llava_onevision", tmp_path, "train")
    assert recs_again == recs and "embedded_images_extracted" not in report_again.counters
    # without extraction, embedded rows are skipped and counted as before
    conv = get_converter("llava_onevision")(tmp_path, extract_images=False)
    rep = ConversionReport("llava_onevision")
    assert [r.id for r in conv.records("train", rep)] == ["t1", "i1"]
    assert rep.skipped == {"embedded_image_not_supported": 1, "image_token_mismatch": 1}


# --------------------------------------------------------------------------- RSVQA


def test_rsvqa_lr(tmp_path: Path) -> None:
    _image(tmp_path / "Images_LR/0.tif", (256, 256))
    q = [
        {"id": 0, "img_id": 0, "type": "presence", "question": "Is there a road?", "answers_ids": [0], "active": True},
        {"id": 1, "img_id": 0, "type": "count", "question": "How many roads?", "answers_ids": [1], "active": False},
        {
            "id": 2,
            "img_id": 0,
            "type": "comp",
            "question": "More roads than houses?",
            "answers_ids": [9],
            "active": True,
        },
        {"id": 3, "img_id": 5, "type": "presence", "question": "Is there water?", "answers_ids": [3], "active": True},
        {"id": 4, "img_id": 0, "type": "rural_urban", "question": "Rural?", "answers_ids": [4], "active": True},
    ]
    a = [
        {"id": 0, "question_id": 0, "answer": "yes", "active": True},
        {"id": 1, "question_id": 1, "answer": "2", "active": True},
        {"id": 2, "quesiton_id": 2, "answer": "no", "active": True},
        {"id": 3, "question_id": 3, "answer": "no", "active": True},
        {"id": 4, "question_id": 4, "answer": "rural", "active": False},
    ]
    _json(tmp_path / "LR_split_test_questions.json", {"questions": q})
    _json(tmp_path / "LR_split_test_answers.json", {"answers": a})
    _json(tmp_path / "LR_split_test_images.json", {"images": [{"id": 0, "active": True}, {"id": 5, "active": False}]})
    assert get_converter("rsvqa_lr")(tmp_path).splits() == ["test"]
    recs, report = _run("rsvqa_lr", tmp_path, "test")
    assert [r.id for r in recs] == ["test/0", "test/2"]
    first = recs[0]
    assert first.task == "vqa" and first.images == ("Images_LR/0.tif",)
    assert _parts(first.messages[0]) == [("image", 0), ("text", "Is there a road?")]
    assert first.messages[1].text_content == "yes"
    assert json.loads(first.metadata) == {"question_type": "presence", "question_id": 0, "img_id": 0}
    assert recs[1].messages[1].text_content == "no"  # found through the misspelled key
    assert report.skipped == {"inactive": 1, "inactive_image": 1, "missing_answer": 1}
    assert report.counters == {"answer_found_by_question_id": 1, "misspelled_quesiton_id": 1}
    assert report.records_in == 5


# --------------------------------------------------------------------------- scene classification


@pytest.mark.skipif(not (SAMPLES / "nwpu_resisc45").is_dir(), reason="shared samples absent")
def test_nwpu_real_sample() -> None:
    root = SAMPLES / "nwpu_resisc45"
    assert get_converter("nwpu_resisc45")(root).splits() == ["train", "val", "test"]
    recs, report = _run("nwpu_resisc45", root, "test")
    (rec,) = recs
    assert rec.task == "classification" and rec.images == ("NWPU-RESISC45/airplane/airplane_001.jpg",)
    prompt = rec.messages[0].content[1].text
    assert prompt.startswith("Classify the image within one of the given classes: airplane, airport, baseball diamond,")
    assert prompt.endswith("thermal power station, wetland.") and prompt.count(", ") == 44
    assert rec.messages[1].text_content == "airplane"
    # the split file lists 9 names; only airplane_001.jpg is on disk
    assert report.records_in == 9 and report.skipped == {"missing_image": 8}


@pytest.mark.skipif(not (SAMPLES / "ucmerced").is_dir(), reason="shared samples absent")
def test_ucmerced_real_sample() -> None:
    recs, report = _run("ucmerced", SAMPLES / "ucmerced", "train")
    (rec,) = recs
    assert rec.images == ("UCMerced_LandUse/Images/agricultural/agricultural00.tif",)
    assert rec.messages[1].text_content == "agricultural"
    assert "dense residential" in rec.messages[0].text_content
    assert report.skipped == {"missing_image": 3}


def test_aid_camelcase_and_unknown_class(tmp_path: Path) -> None:
    _image(tmp_path / "AID/DenseResidential/denseresidential_1.jpg")
    _image(tmp_path / "AID/StorageTanks/storagetanks_2.jpg")
    _image(tmp_path / "AID/Spaceport/spaceport_1.jpg")
    (tmp_path / "AID/StorageTanks/notes.txt").write_text("not an image")
    assert get_converter("aid")(tmp_path).splits() == ["train"]
    report = ConversionReport("aid")
    recs = list(get_converter("aid")(tmp_path, split="test").records("test", report))
    assert [r.messages[1].text_content for r in recs] == ["dense residential", "storage tanks"]
    assert recs[0].id == "DenseResidential/denseresidential_1" and recs[0].split == "test"
    assert report.skipped == {"unknown_class": 1}
    assert report.labels_mapped == {"DenseResidential -> dense residential": 1, "StorageTanks -> storage tanks": 1}
    assert len(get_converter("aid").classes) == 30


def test_whu_rs19_and_siri_classes() -> None:
    assert "football field" in get_converter("whu_rs19").classes and len(get_converter("whu_rs19").classes) == 19
    assert len(get_converter("siri_whu").classes) == 12


def test_scene_split_file_refuses_paths(tmp_path: Path) -> None:
    _image(tmp_path / "NWPU-RESISC45/airplane/airplane_001.jpg")
    (tmp_path / "resisc45-train.txt").write_text("airplane_001.jpg\n../../etc/passwd_1.jpg\nunicorn_001.jpg\n")
    recs, report = _run("nwpu_resisc45", tmp_path, "train")
    assert len(recs) == 1 and report.skipped == {"unknown_class": 1, "unsafe_path": 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("There are 2 objects..", "There are 2 objects."),  # a doubled period at the end
        ("a car.. b", "a car. b"),  # inside: the space stays
        ("wait...", "wait..."),  # an ellipsis is not an artefact
    ],
)
def test_double_period_rule(text, expected):
    from rsformat.converters.geochat import _DOUBLE_DOT

    assert _DOUBLE_DOT.apply(text) == expected


# --------------------------------------------------------------------------- MME-RealWorld


def test_mme_realworld_remote_sensing_questions(tmp_path: Path) -> None:
    _image(tmp_path / "remote_sensing/a.png", (3000, 2000))
    _image(tmp_path / "AutonomousDriving/b.jpg", (1600, 900))

    def item(qid: str, image: str, subtask: str, truth: object, category: str = "color") -> dict:
        return {
            "Question_id": qid, "Image": image, "Text": "What is the color of the roof?",
            "Answer choices": ["(A) red", "(B) blue", "(C) white", "(D) gray", "(E) The image does not feature it."],
            "Ground truth": truth, "Task": "Perception", "Subtask": subtask, "Category": category,
        }  # fmt: skip

    _json(
        tmp_path / "MME_RealWorld.json",
        [
            item("perception/remote_sensing/color/0001", "remote_sensing/a.png", "Remote Sensing", "B"),
            item("perception/remote_sensing/count/0002", "remote_sensing/a.png", "Remote Sensing", "(C)", "count"),
            item("perception/autonomous_driving/0003", "AutonomousDriving/b.jpg", "Autonomous_Driving", "A"),
            item("perception/remote_sensing/color/0004", "remote_sensing/a.png", "Remote Sensing", "Z"),
            item("perception/remote_sensing/color/0005", "remote_sensing/missing.png", "Remote Sensing", "A"),
        ],
    )
    assert get_converter("mme_realworld")(tmp_path).splits() == ["test"]
    recs, report = _run("mme_realworld", tmp_path, "test")
    assert [r.id for r in recs] == ["perception/remote_sensing/color/0001", "perception/remote_sensing/count/0002"]
    first = recs[0]
    assert (first.width, first.height) == (3000, 2000) and first.image == "remote_sensing/a.png"
    assert first.choices == ("red", "blue", "white", "gray", "The image does not feature it.")
    assert first.answer == "B" and recs[1].answer == "C" and recs[1].category == "count"
    assert first.rois == () and first.source == "mme_realworld/remote_sensing"
    assert report.skipped == {"other_subtask": 1, "bad_mcq": 1, "missing_image": 1}
    everything, _ = _run("mme_realworld", tmp_path, "test", subtask=None)
    assert len(everything) == 3  # the driving question too


def test_a_lone_annotation_file_is_found_but_never_one_of_several(tmp_path: Path) -> None:
    from rsformat.converters._llava import find_file

    _json(tmp_path / "questions.json", [])
    assert find_file(tmp_path, ("MME_RealWorld.json",), only_match="*.json") == tmp_path / "questions.json"
    _json(tmp_path / "other.json", [])
    assert find_file(tmp_path, ("MME_RealWorld.json",), only_match="*.json") is None
    assert get_converter("mme_realworld")(tmp_path).splits() == []  # ambiguous: name it with the annotation option
    assert get_converter("mme_realworld")(tmp_path, annotation="other.json").splits() == ["test"]
