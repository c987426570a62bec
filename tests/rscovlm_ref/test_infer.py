"""The inference engine: prompt encoding, the HF backend, the Zoom-in Chain driver, evaluation runs and scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from rscovlm_fixtures import FRAME, detection_record, zoom_record

from rscovlm_ref import testing
from rscovlm_ref.data.encode import EncodeError, chat_messages, encode_prompt, prompt_text
from rscovlm_ref.infer.backends import GenerationRequest, HFBackend, VLLMBackend
from rscovlm_ref.infer.engine import InferenceEngine, InferenceItem
from rscovlm_ref.infer.evaluate import EvalRecord, predict, read_predictions, score
from rsformat.records import DetectionObject, DetectionRecord, GroundingRecord, Message, ZoomRecord
from rsformat.render import RenderFrame, RenderStyle, render, render_conversation, render_prompt, smart_resize
from rsformat.tools import format_tool_call

# --------------------------------------------------------------------------- prompts


def _image(w: int, h: int, color: tuple[int, int, int] = (10, 200, 30)) -> Image.Image:
    return Image.new("RGB", (w, h), color)


def test_prompt_text_equals_the_stock_template_with_generation_prompt(processor: Any) -> None:
    zoom = render_conversation(zoom_record(), FRAME, RenderStyle("plain", "hbb", tool_format="qwen")).messages
    det = render_conversation(detection_record(), FRAME, RenderStyle("json", "quad")).messages
    prompts = [
        [Message.text("user", "Hi")],
        list(det[:2]),  # system + user with an image
        list(zoom[:4]),  # system, user, assistant tool call, user with the crop
    ]
    for messages in prompts:
        chat, _ = chat_messages(messages)
        stock = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        assert prompt_text(messages) == stock


def test_encode_prompt_equals_the_processor(processor: Any) -> None:
    messages = render_prompt(detection_record(), FRAME, RenderStyle("plain", "quad"))
    image = _image(*FRAME.size(300, 200))
    ours = encode_prompt(messages, [image], processor)
    chat, _ = chat_messages(messages)
    text = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    stock = processor(text=[text], images=[image], return_tensors="pt")
    assert torch.equal(ours.input_ids, stock["input_ids"][0])
    assert torch.equal(ours.image_grid_thw, stock["image_grid_thw"])
    assert torch.allclose(ours.pixel_values, stock["pixel_values"])
    assert int(ours.mm_token_type_ids.sum()) == int((stock["input_ids"] == 151655).sum())  # <|image_pad|>


def test_prompts_are_refused_when_malformed(processor: Any) -> None:
    with pytest.raises(EncodeError, match="empty prompt"):
        prompt_text([])
    with pytest.raises(EncodeError, match="must not end with an assistant"):
        prompt_text([Message.text("user", "a"), Message.text("assistant", "b")])
    messages = render_prompt(detection_record(), FRAME, RenderStyle("plain", "quad"))
    with pytest.raises(EncodeError, match="shows image 0, but 0 images"):
        encode_prompt(messages, [], processor)


def test_render_prompt_is_the_training_prefix() -> None:
    style = RenderStyle("plain", "hbb", tool_format="qwen")
    for record in (zoom_record(), detection_record()):
        full = render(record, FRAME, style)
        prompt = render_prompt(record, FRAME, style)
        assert full[: len(prompt)] == prompt and full[len(prompt)].role == "assistant"
    # a benchmark question has no regions: with zoom on it still gets the chain's prompt, as trained
    bench = ZoomRecord("q", "lrs", "test", "a.png", 4000, 3000, question="Q?", answer="A", category="color")
    prompt = render_prompt(bench, FRAME, style)
    trained = render(zoom_record(), FRAME, style)
    assert [m.role for m in prompt] == ["system", "user"] and prompt[0] == trained[0]
    assert prompt[1].content[0].type == "image"
    assert prompt[1].text_content == "Q?\nZoom in to the region of interest and answer the question."
    assert render_prompt(bench, FRAME, RenderStyle(zoom=False))[0].text_content == "Q?"


# --------------------------------------------------------------------------- HF backend


def test_hf_backend_batched_answers_equal_one_by_one(processor: Any, tiny_config: Any) -> None:
    model = testing.tiny_qwen25vl(seed=0, attn_implementation="sdpa", config=tiny_config)
    requests = [
        GenerationRequest(render_prompt(detection_record(), FRAME, RenderStyle("plain", "quad")), [_image(224, 140)]),
        GenerationRequest([Message.text("user", "What is shown in this picture of a harbour?")], []),
        GenerationRequest(
            render_prompt(zoom_record(), FRAME, RenderStyle(tool_format="qwen")), [_image(224, 168, (200, 0, 0))]
        ),
    ]
    batched = HFBackend(model, processor, max_new_tokens=12, batch_size=3).generate(requests)
    single = [HFBackend(model, processor, max_new_tokens=12, batch_size=1).generate([r])[0] for r in requests]
    assert batched == single
    assert all(isinstance(t, str) and t for t in batched)


def test_vllm_backend_explains_when_vllm_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    with pytest.raises(RuntimeError, match="needs the vllm package"):
        VLLMBackend("some/checkpoint")


def test_vllm_request_keeps_image_sizes_and_order() -> None:
    a, b = _image(224, 168), _image(112, 84)
    messages = render_conversation(zoom_record(), FRAME, RenderStyle(tool_format="qwen")).messages[:4]
    entry = VLLMBackend.request_input(GenerationRequest(messages, [a, b]))
    assert entry["prompt"].endswith("<|im_start|>assistant\n") and entry["prompt"].count("<|image_pad|>") == 2
    assert entry["multi_modal_data"]["image"] == [a, b]
    # bounds that smart_resize maps both sizes onto themselves
    low, high = entry["mm_processor_kwargs"]["min_pixels"], entry["mm_processor_kwargs"]["max_pixels"]
    assert (low, high) == (112 * 84, 224 * 168)
    for im in (a, b):
        assert smart_resize(im.height, im.width, 28, low, high) == (im.height, im.width)


# --------------------------------------------------------------------------- zoom chain driver


def _call(bbox: list[int]) -> str:
    return format_tool_call("image_zoom_in", {"bbox": bbox})


class Scripted:
    """Answers by a rule on the request; records every request."""

    def __init__(self, rule: Any) -> None:
        self.rule = rule
        self.requests: list[GenerationRequest] = []
        self.calls = 0

    def generate(self, requests: list[GenerationRequest]) -> list[str]:
        self.calls += 1
        self.requests.extend(requests)
        return [self.rule(r) for r in requests]


def _gradient(w: int, h: int) -> Image.Image:
    yy, xx = np.mgrid[0:h, 0:w]
    return Image.fromarray(np.stack([xx % 256, yy % 256, (xx // 256 + 7 * (yy // 256)) % 256], -1).astype(np.uint8))


def _zoom_item(item_id: str, image: Image.Image, frame: RenderFrame = FRAME) -> InferenceItem:
    rec = ZoomRecord(item_id, "lrs", "test", "x.png", image.width, image.height, question="What is it?")
    return InferenceItem(item_id, render_prompt(rec, frame, RenderStyle(tool_format="qwen")), [image], frame, zoom=True)


def test_zoom_crops_the_original_image_of_each_item() -> None:
    big = _gradient(2000, 1000)
    other = Image.new("RGB", (2000, 1000), (255, 0, 255))  # same size, one colour: a mix-up would show
    backend = Scripted(lambda r: "done" if len(r.images) == 2 else _call([56, 28, 112, 56]))
    answers = InferenceEngine(backend).run([_zoom_item("a", big), _zoom_item("b", other)])
    assert backend.calls == 2  # round 1: both items together; round 2: both crops together
    a, b = answers
    # by hand: smart_resize(1000, 2000) in 112^2..224^2: beta = sqrt(2e6 / 50176) = 6.3135,
    # h = floor(1000 / beta / 28) * 28 = 140, w = floor(2000 / beta / 28) * 28 = 308
    assert a.input_size == (308, 140)
    # x1 = floor(56 * 2000 / 308) = 363, y1 = floor(28 * 1000 / 140) = 200,
    # x2 = ceil(112 * 2000 / 308) = 728, y2 = ceil(56 * 1000 / 140) = 400
    assert a.zooms == b.zooms == [(363, 200, 728, 400)]
    crop_a, crop_b = backend.requests[2].images[1], backend.requests[3].images[1]
    # the 365x200 region of the ORIGINAL pixels, smart-resized: beta = sqrt(365 * 200 / 50176) = 1.2062,
    # h = floor(200 / beta / 28) * 28 = 140, w = floor(365 / beta / 28) * 28 = 280
    assert crop_a.size == (280, 140)
    expected = big.crop((363, 200, 728, 400)).resize((280, 140), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(crop_a), np.asarray(expected))
    assert (np.asarray(crop_b) == [255, 0, 255]).all()
    # the second-round prompt is the training chain: the call, then the crop with the training text
    second = backend.requests[2].messages
    assert [m.role for m in second] == ["system", "user", "assistant", "user"]
    assert second[2].text_content == _call([56, 28, 112, 56])
    assert second[3].content[0].image == 1 and second[3].text_content.startswith("Here's the zoomed-in image.")
    assert a.text == "done" and a.status == "ok" and len(a.turns) == 2


def test_zoom_round_limit_and_invalid_calls_are_counted() -> None:
    image = _gradient(800, 600)
    always = Scripted(lambda r: "Looking. " + _call([10, 10, 60, 60]) + " then")
    engine = InferenceEngine(always, max_zoom_rounds=2)
    answer = engine.run([_zoom_item("a", image)])[0]
    assert always.calls == 3 and len(answer.zooms) == 2
    assert answer.status == "zoom_limit" and answer.text == "Looking.  then"
    assert engine.stats == {"items": 1, "zooms": 2, "zoom_limit": 1}

    bad = Scripted(
        lambda r: (
            "A"
            if len(r.images) == 2
            else '<tool_call>\n{"name": "image_zoom_in", "arguments": {"bbox": [5, 5, 1]}}\n</tool_call>'
        )
    )
    engine = InferenceEngine(bad)
    answer = engine.run([_zoom_item("b", image)])[0]
    assert answer.status == "zoom_invalid" and answer.text == "A"
    assert answer.zooms == [(0, 0, 800, 600)]  # the whole image comes back
    assert "bbox" in answer.problems[0]
    outside = Scripted(lambda r: "B" if len(r.images) == 2 else _call([500, 10, 600, 60]))
    answer = InferenceEngine(outside).run([_zoom_item("c", image)])[0]
    assert answer.status == "zoom_invalid" and "outside" in answer.problems[0]

    # no zoom allowed: a tool call is just text, and the backend is asked once
    plain = Scripted(lambda r: _call([1, 1, 5, 5]))
    item = _zoom_item("d", image)
    item.zoom = False
    answer = InferenceEngine(plain).run([item])[0]
    assert plain.calls == 1 and answer.zooms == [] and answer.text == _call([1, 1, 5, 5])


# --------------------------------------------------------------------------- predict and score


def _det_records() -> list[DetectionRecord]:
    boat = DetectionObject.from_quad("ship", [100, 100, 200, 100, 200, 150, 100, 150])
    plane = DetectionObject.from_quad("plane", [300, 300, 400, 300, 400, 400, 300, 400])
    return [
        DetectionRecord("i0", "dota", "val", "i0.png", 560, 560, (boat, plane)),
        DetectionRecord("i1", "dota", "val", "i1.png", 560, 420, (boat,)),
        DetectionRecord("i2", "dota", "val", "i2.png", 420, 560, ()),
    ]


def _entries(records: list[Any], broken: set[str] = frozenset()) -> list[EvalRecord]:
    def opener(record: Any) -> Any:
        def open_image(k: int) -> Any:
            if record.id in broken:
                raise EncodeError(f"cannot read image {record.image!r}")
            return _gradient(record.width, record.height)

        return open_image

    return [EvalRecord(r, opener(r)) for r in records]


def _truth_answer(
    entries: list[EvalRecord], frame: RenderFrame, style: RenderStyle, categories: Any = None, *, first: bool = False
) -> Any:
    """A backend rule that answers each prompt with its record's own rendered answer (a perfect model).

    Records are told apart by their prompt and the pixels of the image the model is shown; records
    that cannot be told apart raise, or (``first``) all get the first one's answer.
    """
    import hashlib

    from rscovlm_ref.infer.engine import show_image

    def key(texts: list[str], image: Image.Image) -> str:
        return json.dumps(texts) + hashlib.sha256(image.tobytes()).hexdigest() + str(image.size)

    by_prompt = {}
    for e in entries:
        msgs = render(e.record, frame, style, categories=categories)
        k = key([m.text_content for m in msgs[:-1]], show_image(e.open_image(0), frame))
        if k in by_prompt and first:
            continue
        assert k not in by_prompt, f"{e.record.id}: two records the rule cannot tell apart"
        by_prompt[k] = msgs[-1].text_content

    def rule(request: GenerationRequest) -> str:
        return by_prompt[key([m.text_content for m in request.messages], request.images[0])]

    return rule


def test_detection_run_scores_a_perfect_and_a_half_model(tmp_path: Path) -> None:
    records = _det_records()
    frame = RenderFrame.smart(112 * 112, 224 * 224)
    style = RenderStyle("plain", "quad")
    classes = ["plane", "ship"]
    perfect = Scripted(_truth_answer(_entries(records), frame, style, classes))
    report = predict(
        _entries(records), InferenceEngine(perfect), tmp_path / "p", frame=frame, categories=classes, quiet=True
    )
    assert report.written == 3 and report.errors == {}
    # every prompt asks for both classes, also on the empty image
    assert all("find the plane, ship" in r.messages[-1].text_content for r in perfect.requests)
    metrics = score(records, read_predictions(tmp_path / "p"), classes=classes, plot_dir=tmp_path / "p")
    assert metrics["detection"]["map"] == pytest.approx(1.0) and metrics["detection"]["mf1"] == pytest.approx(1.0)
    if metrics["detection"]["plot"] is not None:  # matplotlib installed
        assert (tmp_path / "p" / "detection_per_class.png").read_bytes()[:4] == b"\x89PNG"

    # a model that finds nothing but the ships: plane AP 0, ship AP 1 -> mAP 0.5; plane F1 0, ship F1 1
    truth = _truth_answer(_entries(records), frame, style, classes)

    def ships(request: GenerationRequest) -> str:
        text = truth(request)
        return "\n".join(line for line in text.splitlines() if line.endswith("ship")) or "There are none."

    ships_only = Scripted(ships)
    predict(_entries(records), InferenceEngine(ships_only), tmp_path / "s", frame=frame, categories=classes, quiet=True)
    det = score(records, read_predictions(tmp_path / "s"), classes=classes)["detection"]
    assert det["per_class"]["plane"]["ap"] == 0.0 and det["per_class"]["ship"]["ap"] == pytest.approx(1.0)
    assert det["map"] == pytest.approx(0.5) and det["mf1"] == pytest.approx(0.5)


def test_predict_resumes_after_a_kill_and_counts_bad_records(tmp_path: Path) -> None:
    records = [
        ZoomRecord(f"STAR_{i}", "lrs", "test", f"{i}.png", 900, 700, question=f"Q{i}?", answer=ans, category=cat)
        for i, (ans, cat) in enumerate([("red", "color"), ("3", "count"), ("yes", "status"), ("plane", "category")])
    ]
    frame = RenderFrame.smart(112 * 112, 224 * 224)
    answers = {"Q0?": "Red.", "Q1?": "3", "Q2?": "no", "Q3?": "plane"}

    def rule(r: GenerationRequest) -> str:
        question = r.messages[1].text_content if r.messages[0].role == "system" else r.messages[0].text_content
        if len(r.images) == 1 and r.messages[0].role == "system":
            return _call([0, 0, 56, 56])
        return answers[question.split("\n")[0]]

    out = tmp_path / "run"
    first = Scripted(rule)
    report = predict(_entries(records[:2]), InferenceEngine(first), out, frame=frame, batch_size=1, quiet=True)
    assert report.written == 2
    path = out / "predictions.jsonl"
    # a kill mid-write leaves half a line behind
    with path.open("a") as fh:
        fh.write('{"id": "STAR_2", "predic')
    again = Scripted(rule)
    report = predict(
        _entries(records, broken={"STAR_3"}), InferenceEngine(again), out, frame=frame, batch_size=2, quiet=True
    )
    assert (report.skipped_done, report.written, report.truncated_lines) == (2, 2, 1)
    assert report.errors == {"EncodeError": 1}
    lines = read_predictions(out)
    assert sorted(lines) == ["STAR_0", "STAR_1", "STAR_2", "STAR_3"]
    assert lines["STAR_3"]["prediction"] is None and "cannot read image" in lines["STAR_3"]["error"]
    # counting questions are asked without zooming (as trained); the others zoom once
    assert lines["STAR_1"]["zoom"] is False and lines["STAR_0"]["zooms"] == [[0, 0, 200, 200]]
    m = score(records, lines)
    zoom = m["zoom"]["open_ended"]
    # by hand: 900x700 is shown at 252x196, so [0, 0, 56, 56] is [0, 0, 200, 200] in original pixels;
    # STAR_0 "Red." == "red" after normalisation, STAR_1 right, STAR_2 wrong, STAR_3 unreadable (wrong)
    assert zoom["num_total"] == 4 and zoom["overall_accuracy"] == pytest.approx(0.5)
    assert m["errors"] == 1 and m["missing"] == 0


def test_grounding_scores_by_hand(tmp_path: Path) -> None:
    recs = [
        GroundingRecord("g0", "dior_rsvg", "test", "a.png", 800, 800, "the red car", (100.0, 100.0, 300.0, 300.0)),
        GroundingRecord("g1", "dior_rsvg", "test", "b.png", 800, 800, "the ship", (400.0, 400.0, 600.0, 600.0)),
    ]
    frame = RenderFrame.smart(112 * 112, 224 * 224)  # 800x800 -> 224x224: one unit is 800/224 pixels
    replies = {"red car": "28,28,84,84 the red car", "ship": "112,112,140,140 the ship"}

    def rule(r: GenerationRequest) -> str:
        return next(v for k, v in replies.items() if k in r.messages[-1].text_content)

    predict(_entries(recs), InferenceEngine(Scripted(rule)), tmp_path, frame=frame, quiet=True)
    m = score(recs, read_predictions(tmp_path))["grounding"]
    # g0: (28..84)*800/224 = 100..300 exactly, IoU 1; g1: 400..500 vs 400..600, IoU 0.25 -> wrong
    assert m["accuracy"]["0.5"] == pytest.approx(0.5)


def test_resuming_with_another_setup_is_refused(tmp_path: Path) -> None:
    from rscovlm_ref.infer.evaluate import SetupMismatchError

    records = _det_records()[:1]
    frame = RenderFrame.smart(112 * 112, 224 * 224)
    engine = InferenceEngine(Scripted(lambda r: "There are none."))
    predict(_entries(records), engine, tmp_path, frame=frame, setup={"model": "a"}, quiet=True)
    again = predict(_entries(records), engine, tmp_path, frame=frame, setup={"model": "a"}, quiet=True)
    assert again.skipped_done == 1 and again.written == 0
    with pytest.raises(SetupMismatchError, match=r"differs in \['model'\]"):
        predict(_entries(records), engine, tmp_path, frame=frame, setup={"model": "b"}, quiet=True)
    fresh = predict(_entries(records), engine, tmp_path, frame=frame, setup={"model": "b"}, overwrite=True, quiet=True)
    assert fresh.written == 1 and fresh.skipped_done == 0


def test_cli_eval_runs_resumes_and_refuses_a_retrained_model(
    tmp_path: Path, example_data: Path, processor: Any, tiny_config: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from rscovlm_ref.cli import main

    ckpt = tmp_path / "ckpt"
    model = testing.tiny_qwen25vl(seed=0, attn_implementation="sdpa", config=tiny_config)
    model.save_pretrained(ckpt)
    processor.save_pretrained(ckpt)
    out = tmp_path / "eval"
    args = ["eval", str(ckpt), str(example_data / "dataset"), "--config", "lrs_vqa", "--split", "test",
            "--out", str(out), "--limit", "3", "--max-new-tokens", "6", "--min-pixels", "12544",
            "--max-pixels", "50176", "--batch-size", "2"]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "3/3 records predicted" in text and "LRS-VQA OA: " in text
    lines = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and all(x["family"] == "zoom" and x["target"] for x in lines)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["zoom"]["open_ended"]["num_total"] == 3 and metrics["setup"]["config"] == "lrs_vqa"
    assert list(metrics["setup"]["data_files"]) == ["test-00000-of-00001.parquet"]
    assert set(metrics["versions"]) == {"rsmetrics", "rsformat", "rscovlm-ref"}

    assert main(args) == 0
    assert "0 now, 3 from an earlier run" in capsys.readouterr().out
    # retrained: the weights change, the old predictions must not be resumed
    model.save_pretrained(ckpt)
    assert main(args) == 2
    assert "another setup" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert "3 now, 0 from an earlier run" in capsys.readouterr().out

    # the same model through a suite file (relative paths resolve next to it)
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"model: ckpt\nout: suite_out\nmin_pixels: 12544\nmax_pixels: 50176\nmax_new_tokens: 6\nbenchmarks:\n"
        f"  - {{name: lrs, dataset: {example_data / 'dataset'}, config: lrs_vqa, limit: 2}}\n"
    )
    assert main(["eval-suite", str(suite)]) == 0
    assert "| lrs | LRS-VQA OA |" in capsys.readouterr().out
    assert (tmp_path / "suite_out" / "summary.md").is_file() and (
        tmp_path / "suite_out" / "lrs" / "metrics.json"
    ).is_file()


def test_sharded_evaluation_equals_one_process(
    tmp_path: Path,
    example_data: Path,
    processor: Any,
    tiny_config: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from rscovlm_ref.cli import main

    ckpt = tmp_path / "ckpt"
    testing.tiny_qwen25vl(seed=0, attn_implementation="sdpa", config=tiny_config).save_pretrained(ckpt)
    processor.save_pretrained(ckpt)

    def args(out: Path) -> list[str]:
        return ["eval", str(ckpt), str(example_data / "dataset"), "--config", "lrs_vqa", "--split", "test",
                "--out", str(out), "--limit", "5", "--max-new-tokens", "6", "--min-pixels", "12544",
                "--max-pixels", "50176"]  # fmt: skip

    assert main(args(tmp_path / "one")) == 0
    capsys.readouterr()
    sharded = tmp_path / "sharded"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(args(sharded)) == 0
    assert "shard 1 of 2 done (2 records now)" in capsys.readouterr().out  # positions 1 and 3
    assert not (sharded / "metrics.json").exists()
    monkeypatch.setenv("RANK", "0")
    assert main(args(sharded)) == 0
    assert "5/5 records predicted" in capsys.readouterr().out  # the last shard scores all
    assert sorted(p.name for p in sharded.glob("predictions*")) == [
        "predictions-00000-of-00002.jsonl",
        "predictions-00001-of-00002.jsonl",
    ]
    one, both = read_predictions(tmp_path / "one"), read_predictions(sharded)
    assert {k: v["prediction"] for k, v in one.items()} == {k: v["prediction"] for k, v in both.items()}
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((sharded / "metrics.json").read_text())
    assert m1["zoom"] == m2["zoom"]
    # one process resumes the sharded run: nothing left to answer
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert main(args(sharded)) == 0
    assert "0 now, 5 from an earlier run" in capsys.readouterr().out


def test_patch_detections_merge_into_task1_files(tmp_path: Path) -> None:
    from rscovlm_ref.infer.evaluate import write_merged_task1

    # a 1000x600 image cut into two 600x600 patches at x = 0 and x = 400; the ship lies in both
    plane = DetectionObject.from_quad("plane", [100, 100, 200, 100, 200, 150, 100, 150])
    ship_left = DetectionObject.from_quad("ship", [450, 300, 550, 300, 550, 350, 450, 350])
    ship_right = DetectionObject.from_quad("ship", [50, 300, 150, 300, 150, 350, 50, 350])
    patches = [
        DetectionRecord("P0001__600__0___0", "dota", "test", "a.png", 600, 600, (plane, ship_left)),
        DetectionRecord("P0001__600__400___0", "dota", "test", "b.png", 600, 600, (ship_right,)),
    ]
    frame, style, classes = RenderFrame.pixels(600, 600), RenderStyle("plain", "quad"), ["plane", "ship"]
    answers = {r.id: render(r, frame, style, categories=classes)[-1].text_content for r in patches}
    by_colour = {0: answers[patches[0].id], 9: answers[patches[1].id]}  # the patches' images differ in colour
    engine = InferenceEngine(Scripted(lambda r: by_colour[r.images[0].getpixel((0, 0))[0]]))
    entries = [
        EvalRecord(patches[0], lambda k: Image.new("RGB", (600, 600), (0, 0, 0))),
        EvalRecord(patches[1], lambda k: Image.new("RGB", (600, 600), (9, 9, 9))),
    ]
    predict(entries, engine, tmp_path, frame=frame, categories=classes, quiet=True)
    info = write_merged_task1(patches, read_predictions(tmp_path), classes, tmp_path / "task1")
    assert (info["patches"], info["images"], info["detections_before_nms"], info["detections"]) == (2, 1, 3, 2)
    ship = (tmp_path / "task1" / "Task1_ship.txt").read_text().split()
    plane_line = (tmp_path / "task1" / "Task1_plane.txt").read_text().split()
    # the ship once, at its full-image place (patch 1's copy is 400 px to the right of its patch coordinates)
    assert ship[0] == "P0001" and [float(v) for v in ship[2:]] == [450, 300, 550, 300, 550, 350, 450, 350]
    assert len(ship) == 10 and [float(v) for v in plane_line[2:]] == [100, 100, 200, 100, 200, 150, 100, 150]
    with pytest.raises(ValueError, match="needs split patches"):
        write_merged_task1(_det_records(), {r.id: {"prediction": ""} for r in _det_records()}, classes, tmp_path / "x")


# --------------------------------------------------------------------------- suites


def test_suite_config_errors_name_the_benchmark_and_field(tmp_path: Path) -> None:
    from rscovlm_ref.data.mixture import ConfigError
    from rscovlm_ref.infer.suite import SuiteConfig, load_suite

    base = {"model": "m", "out": "o", "benchmarks": [{"name": "a", "dataset": "d"}]}
    cases = [
        (
            {"benchmarks": [{"name": "a", "dataset": "d", "frame": 1}]},
            r"benchmarks\[0\] \(a\): unknown field\(s\) \['frame'\]",
        ),
        ({"benchmarks": [{"name": "a"}]}, r"benchmarks\[0\] \(a\): `dataset` is required"),
        ({"benchmarks": [{"name": "a", "dataset": "d"}, {"name": "a", "dataset": "e"}]}, "names must differ"),
        ({"benchmarks": [{"name": "a", "dataset": "d", "style": "fancy"}]}, r"\(a\): Expected a style like"),
        ({"benchmarks": [{"name": "a", "dataset": "d", "min_pixels": 9, "max_pixels": 4}]}, "is above `max_pixels`"),
        ({"backend": "tgi"}, "`backend` must be 'hf' or 'vllm'"),
        ({"benchmarks": []}, "non-empty list"),
    ]
    for change, message in cases:
        with pytest.raises(ConfigError, match=message):
            SuiteConfig.from_dict({**base, **change}, source="s.yaml")
    # shared defaults reach every benchmark unless it sets its own
    suite = SuiteConfig.from_dict({**base, "max_pixels": 50176, "benchmarks": [
        {"name": "a", "dataset": "d"}, {"name": "b", "dataset": "d", "max_pixels": 12544, "min_pixels": 12544}]})  # fmt: skip
    assert [b.max_pixels for b in suite.benchmarks] == [50176, 12544]
    (tmp_path / "s.yaml").write_text("model: m\nout: o\nbenchmarks:\n  - {name: a, dataset: data/x}\n")
    loaded = load_suite(tmp_path / "s.yaml")
    assert loaded.benchmarks[0].dataset == str(tmp_path / "data" / "x") and loaded.out == str(tmp_path / "o")
    assert loaded.model == "m"  # not a folder next to the suite: a Hub id, left as it is


def test_suite_runs_every_benchmark_with_one_backend_and_tabulates(tmp_path: Path, example_data: Path) -> None:
    from rscovlm_ref.infer.evaluate import open_records
    from rscovlm_ref.infer.suite import SuiteConfig, run_suite

    dataset = str(example_data / "dataset")
    frame = RenderFrame.smart(12544, 50176)
    grounding, _ = open_records(dataset, config="refgeo", split="train", limit=6)
    # the synthetic refGeo data asks "the small vehicle on the right" twice on two images (records 0 / 1
    # and 4 / 5, disjoint boxes): one answer per prompt and image can be right for only one of each pair
    truth = _truth_answer(grounding, frame, RenderStyle("plain", "hbb"), first=True)

    def rule(r: GenerationRequest) -> str:
        if r.messages[0].role == "system" and "image_zoom_in" in r.messages[0].text_content:
            return _call([0, 0, 56, 56]) if len(r.images) == 1 else "harbor"
        if "How many" in r.messages[-1].text_content:
            return "harbor"
        return truth(r)

    suite = SuiteConfig.from_dict({
        "model": "scripted", "out": str(tmp_path / "out"), "min_pixels": 12544, "max_pixels": 50176,
        "benchmarks": [
            {"name": "lrs", "dataset": dataset, "config": "lrs_vqa", "split": "test"},
            {"name": "refgeo", "dataset": dataset, "config": "refgeo", "split": "train", "limit": 6},
        ],
    })  # fmt: skip
    backend = Scripted(rule)
    result = run_suite(suite, backend=backend, quiet=True)
    table = (tmp_path / "out" / "summary.md").read_text()
    # by hand: "harbor" is right for STAR_0, STAR_2, STAR_4 of the 7 questions: OA 3/7; categories
    # "object category" 3/6 and "count" 0/1: AA 0.25. Grounding: records 1 and 5 get their twin's box, 4/6.
    assert "| lrs | LRS-VQA OA | 42.86 | 7 | 0 |" in table
    assert "| lrs | LRS-VQA AA | 25.00 | 7 | 0 |" in table
    assert "| refgeo | Acc@0.5 | 66.67 | 6 | 0 |" in table
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["benchmarks"]["refgeo"]["headline"]["Acc@0.5"] == pytest.approx(4 / 6)
    assert (tmp_path / "out" / "lrs" / "metrics.json").is_file() and result["results"]["lrs"]["complete"]
    # the zoom questions zoomed (6), the counting one did not
    assert result["results"]["lrs"]["zoom"]["zoom"]["zoomed"] == 6


# --------------------------------------------------------------------------- predictor


def _x_coded(width: int, height: int) -> Image.Image:
    """Red channel = x // 4: the top-left pixel of a window tells where the window starts."""
    xx = np.broadcast_to(np.arange(width)[None, :], (height, width))
    return Image.fromarray(np.stack([xx // 4, np.full_like(xx, 90), np.full_like(xx, 40)], -1).astype(np.uint8))


def test_detect_tiles_a_large_image_and_merges_the_windows(tmp_path: Path) -> None:
    from rscovlm_ref.infer.predictor import Predictor, draw_detections

    # 1000 x 600 image, windows of 600 with a 200 overlap: x = 0 and x = 400 (sliding_windows).
    # A ship at [450, 300, 550, 350] (full image) is seen by both windows, a plane at [100, 100, 200, 150]
    # only by the first. The scripted model answers each window in its own frame (its input size).
    full_objects = {
        0: [("plane", (100, 100, 200, 150)), ("ship", (450, 300, 550, 350))],
        400: [("ship", (450, 300, 550, 350))],
    }

    def rule(r: GenerationRequest) -> str:
        shown = r.images[0]
        x0 = 0 if shown.getpixel((0, 0))[0] < 50 else 400
        sx, sy = shown.width / 600, shown.height / 600
        lines = []
        for label, (x1, y1, x2, y2) in full_objects[x0]:
            q = [x1 - x0, y1, x2 - x0, y1, x2 - x0, y2, x1 - x0, y2]
            lines.append(",".join(str(round(v * (sx if i % 2 == 0 else sy))) for i, v in enumerate(q)) + f" {label}")
        return "\n".join(lines)

    backend = Scripted(rule)
    predictor = Predictor(backend, min_pixels=112 * 112, max_pixels=224 * 224)
    out = predictor.detect(_x_coded(1000, 600), ["plane", "ship"], patch_size=600, gap=200)
    assert out.windows == [(0, 0), (400, 0)] and backend.calls == 1  # both windows in one batch
    assert all("find the plane, ship" in req.messages[-1].text_content for req in backend.requests)
    dets = out.detections
    assert sorted(dets.labels) == ["plane", "ship"]  # the ship once: the second copy fell to NMS
    # 600 px shown at 224 px: one frame unit is 600 / 224 = 2.68 px, so rounding moves a corner <= 1.34 px
    boxes = {label: np.asarray(box) for label, box in zip(dets.labels, dets.boxes)}
    np.testing.assert_allclose(boxes["ship"].reshape(4, 2).min(0), [450, 300], atol=1.4)
    np.testing.assert_allclose(boxes["ship"].reshape(4, 2).max(0), [550, 350], atol=1.4)
    np.testing.assert_allclose(boxes["plane"].reshape(4, 2).min(0), [100, 100], atol=1.4)
    plot = draw_detections(_x_coded(1000, 600), dets.boxes, list(dets.labels), tmp_path / "dets.png")
    drawn = np.asarray(Image.open(plot).convert("RGB"))
    assert drawn.shape == (600, 1000, 3)
    assert not np.array_equal(drawn, np.asarray(_x_coded(1000, 600)))
    # a small image is not tiled
    assert predictor.detect(_x_coded(500, 400), ["ship"], patch_size=600).windows == [(0, 0)]
    with pytest.raises(ValueError, match="at least one class"):
        predictor.detect(_x_coded(500, 400), [])
    empty = draw_detections(_x_coded(50, 40), np.zeros((0, 8)), [], tmp_path / "empty.png")
    assert np.array_equal(np.asarray(Image.open(empty).convert("RGB")), np.asarray(_x_coded(50, 40)))


def test_ask_zooms_into_the_original_and_ground_maps_back(tmp_path: Path) -> None:
    from rscovlm_ref.infer.predictor import Predictor

    backend = Scripted(lambda r: "Red" if len(r.images) == 2 else _call([0, 0, 56, 56]))
    predictor = Predictor(backend, min_pixels=112 * 112, max_pixels=224 * 224)
    path = tmp_path / "scene.png"
    _gradient(900, 700).save(path)
    answer = predictor.ask(path, "What color is the roof?", zoom=True)
    # 900x700 is shown at 252x196 (see the resume test): [0, 0, 56, 56] is [0, 0, 200, 200] in the original
    assert answer.text == "Red" and answer.zooms == [(0, 0, 200, 200)]
    plain = Scripted(lambda r: "A harbour.")
    assert Predictor(plain).ask(path, "What is this?").text == "A harbour." and len(plain.requests[0].images) == 1

    grounder = Predictor(Scripted(lambda r: "28,28,84,84 the roof"), min_pixels=112 * 112, max_pixels=224 * 224)
    out = grounder.ground(Image.new("RGB", (800, 800)), "the roof")
    assert out.hbb == (100.0, 100.0, 300.0, 300.0)  # 800 shown at 224: x * 800 / 224
    none = Predictor(Scripted(lambda r: "I cannot see it.")).ground(Image.new("RGB", (800, 800)), "the roof")
    assert none.hbb is None
    with pytest.raises(FileNotFoundError, match="cannot read image"):
        grounder.ground(tmp_path / "missing.png", "x")


def test_cli_detect_ground_ask_on_a_checkpoint(
    tmp_path: Path, processor: Any, tiny_config: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from rscovlm_ref.cli import main

    ckpt = tmp_path / "ckpt"
    testing.tiny_qwen25vl(seed=0, attn_implementation="sdpa", config=tiny_config).save_pretrained(ckpt)
    processor.save_pretrained(ckpt)
    image = tmp_path / "scene.png"
    _gradient(700, 500).save(image)
    common = ["--min-pixels", "12544", "--max-pixels", "50176", "--max-new-tokens", "6"]
    code = main(["detect", str(ckpt), str(image), "--classes", "plane,ship", "--patch-size", "400",
                 "--json", str(tmp_path / "d.json"), "--plot", str(tmp_path / "d.png"), *common])  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0 and "window(s)" in text and (tmp_path / "d.png").is_file()
    saved = json.loads((tmp_path / "d.json").read_text())
    # 700 x 500 in 400-px windows 200 apart: x at 0, 200 and 300 (the last moved back inside), y at 0 and 100
    assert saved["windows"] == [[0, 0], [0, 100], [200, 0], [200, 100], [300, 0], [300, 100]]
    assert len(saved["answers"]) == 6
    # the CLI warns exactly when some window's answer was cut at the token limit
    assert 0 <= saved["truncated"] <= 6
    assert (f"warning: {saved['truncated']} window answers stopped" in text) == (saved["truncated"] > 0)
    assert main(["ask", str(ckpt), str(image), "What is this?", "--zoom", *common]) == 0
    assert "[zoomed into nothing; status ok]" in capsys.readouterr().err  # a random model does not zoom
    assert main(["ground", str(ckpt), str(image), "the roof", *common]) in (0, 1)  # a random model may give no box
    assert main(["ground", str(ckpt), str(tmp_path / "nope.png"), "x", *common]) == 2
    assert "cannot read image" in capsys.readouterr().err


def test_evaluating_a_dataset_with_repeated_ids_is_refused(tmp_path: Path) -> None:
    from rscovlm_ref.infer.evaluate import evaluate_dataset
    from rsformat.hub import write_dataset

    rec = GroundingRecord("same", "x", "test", "a.png", 64, 64, "the car", (1.0, 1.0, 9.0, 9.0))
    write_dataset({"test": [rec, rec]}, tmp_path / "ds", family="grounding", config_name="g", embed_images=False)
    engine = InferenceEngine(Scripted(lambda r: "1,1,9,9 the car"))
    with pytest.raises(ValueError, match=r"1 record ids occur more than once, e.g. \['same'\]"):
        evaluate_dataset(engine, tmp_path / "ds", tmp_path / "out", split="test", quiet=True)


def test_the_paper_evaluation_suite_validates() -> None:
    from rscovlm_ref.infer.suite import load_suite
    from rsformat.converters.rscovlm_bundle import BUNDLE_LAYOUT

    configs = Path(__file__).resolve().parents[2] / "rscovlm_ref" / "configs"
    suite = load_suite(configs / "eval_paper.yaml")
    names = [b.name for b in suite.benchmarks]
    assert {"dota_val512", "dota_val512_max", "lrsvqa", "lrsvqa_zoom", "geoground_224", "cls_aid"} <= set(names)
    written = {"rscovlm": set(BUNDLE_LAYOUT), "eval": {"dota_ss512"}, "mme": {"mme_realworld"}}
    for b in suite.benchmarks:  # every config is one that the rsformat commands in the file's header write
        assert b.config in written[Path(b.dataset).name], b.name
    by_name = {b.name: b for b in suite.benchmarks}
    # Max Mode: a 512 px patch is shown at the 1008^2 limit (512 * sqrt(1008^2 / 512^2) = 1008, a multiple of 28)
    assert by_name["dota_val512_max"].frame().size(512, 512) == (1008, 1008)
    assert by_name["dota_val512"].frame().size(512, 512) == (504, 504)  # round(512 / 28) * 28
    assert by_name["geoground_224"].frame().size(800, 800) == (224, 224)
    assert not by_name["lrsvqa"].zoom and by_name["lrsvqa_zoom"].zoom
    assert by_name["mme_rs_zoom"].no_zoom_categories == ["count", "position"]
    assert suite.out.endswith("outputs/eval/paper") and suite.backend == "vllm"


def test_vllm_backend_plumbing_with_a_stand_in_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """vLLM needs a GPU; a stand-in module with its API checks what we send and how we read it back."""
    import importlib.util
    import sys
    import types

    seen: dict[str, Any] = {"prompts": []}

    class SamplingParams:
        def __init__(self, **kw: Any) -> None:
            seen["sampling"] = kw

    class LLM:
        def __init__(self, **kw: Any) -> None:
            seen["engine"] = kw

        def generate(self, prompts: list[dict[str, Any]], params: Any, use_tqdm: bool = True) -> list[Any]:
            seen["prompts"].extend(prompts)
            out = []
            for p in prompts:
                images = p.get("multi_modal_data", {}).get("image", [])
                text = "Red" if len(images) == 2 else _call([0, 0, 56, 56])
                out.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(text=text)]))
            return out

    fake = types.ModuleType("vllm")
    fake.LLM, fake.SamplingParams = LLM, SamplingParams  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", fake)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else real(name, *a))

    backend = VLLMBackend("ckpt", max_new_tokens=64, max_images=2, tensor_parallel_size=2)
    assert seen["engine"] == {"model": "ckpt", "max_model_len": 8192, "limit_mm_per_prompt": {"image": 2},
                              "tensor_parallel_size": 2}  # fmt: skip
    assert seen["sampling"] == {"temperature": 0.0, "max_tokens": 64, "skip_special_tokens": True}
    answer = InferenceEngine(backend).run([_zoom_item("a", _gradient(900, 700))])[0]
    assert answer.text == "Red" and answer.zooms == [(0, 0, 200, 200)]
    first, second = seen["prompts"]
    assert first["prompt"].count("<|image_pad|>") == 1 and second["prompt"].count("<|image_pad|>") == 2
    assert second["prompt"].endswith("Here's the zoomed-in image. You can complete your task now.<|im_end|>\n"
                                     "<|im_start|>assistant\n")  # fmt: skip
    # the 200 x 200 crop: round(200 / 28) * 28 = 196 per side, inside the 112^2..224^2 budget
    assert [im.size for im in second["multi_modal_data"]["image"]] == [(252, 196), (196, 196)]
    assert second["mm_processor_kwargs"] == {"min_pixels": 196 * 196, "max_pixels": 252 * 196}


def test_captions_are_scored_as_captions_not_by_exact_match() -> None:
    from rsformat.records import ConversationRecord

    def conv(i: int, answer: str) -> ConversationRecord:
        user = Message("user", (Message.text("user", "x").content[0],))
        return ConversationRecord(
            f"c{i}", "vrsbench", "test", (), (user, Message.text("assistant", answer)), task="caption"
        )

    records = [
        conv(0, "A large white ship is docked at the harbor."),
        conv(1, "Two planes are parked near the runway."),
    ]
    lines = {
        "c0": {
            "task": "caption",
            "prediction": "a large white ship is docked at the harbor",
            "target": records[0].messages[1].text_content,
        },
        "c1": {
            "task": "caption",
            "prediction": "Two planes near a runway.",
            "target": records[1].messages[1].text_content,
        },
    }
    caption = score(records, lines)["conversation"]["caption"]
    # by hand: c0 is its reference once tokenized (ROUGE-L 1); c1 shares "two planes ... near ... runway":
    # LCS 4 of 5 candidate and 7 reference tokens: P 4/5, R 4/7, F = 2.44 P R / (R + 1.44 P)
    p, r = 4 / 5, 4 / 7
    assert caption["rouge_l"] == pytest.approx((1.0 + 2.44 * p * r / (r + 1.44 * p)) / 2)
    assert caption["num_samples"] == 2 and "accuracy" not in caption


def test_answers_cut_at_the_token_limit_are_flagged(processor: Any, tiny_config: Any, tmp_path: Path) -> None:
    from rscovlm_ref.infer.backends import GeneratedText

    model = testing.tiny_qwen25vl(seed=0, attn_implementation="sdpa", config=tiny_config)
    request = GenerationRequest([Message.text("user", "Describe the harbour.")], [])
    out = HFBackend(model, processor, max_new_tokens=3).generate([request])[0]
    # independently: the model's own greedy continuation, and whether a stop token came within 3 tokens
    prompt = processor.tokenizer(prompt_text(request.messages), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        ids = model.generate(**prompt, max_new_tokens=3, do_sample=False)[0, prompt["input_ids"].shape[1] :]
    stops = {processor.tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}
    assert isinstance(out, GeneratedText) and out.truncated == (not stops & set(ids.tolist()))

    engine = InferenceEngine(Scripted(lambda r: GeneratedText("1,2,3,4 ship\n5,6", truncated=True)))
    item = InferenceItem("a", [Message("user", (Message.text("user", "x").content[0],))], [], FRAME)
    answer = engine.run([item])[0]
    assert answer.truncated and answer.text == "1,2,3,4 ship\n5,6" and engine.stats["truncated"] == 1


def test_a_record_that_cannot_be_rendered_is_written_with_its_error(tmp_path: Path) -> None:
    from rsformat.records import ContentPart, ConversationRecord

    user = Message("user", (ContentPart("image", image=0), ContentPart("text", text="Where is <box:3>?")))
    bad = ConversationRecord("bad", "x", "test", ("a.png",), (user, Message.text("assistant", "Here.")), task="vqa")
    good = ConversationRecord(
        "good", "x", "test", ("a.png",),
        (Message("user", (ContentPart("image", image=0), ContentPart("text", text="Color?"))), Message.text("assistant", "Red")),
        task="vqa",
    )  # fmt: skip
    entries = [EvalRecord(r, lambda i: Image.new("RGB", (64, 64))) for r in (bad, good)]
    report = predict(entries, InferenceEngine(Scripted(lambda r: "red")), tmp_path, frame=FRAME, quiet=True)
    lines = read_predictions(tmp_path)
    assert report.written == 2 and report.errors == {"ValueError": 1}
    assert lines["bad"]["prediction"] is None and "box" in lines["bad"]["error"] and lines["bad"]["target"] is None
    m = score([bad, good], lines)
    # the bad record has no reference to score against; it is reported, the good one is right
    assert m["errors"] == 1 and m["conversation"]["vqa"]["overall_accuracy"] == 1.0
    assert m["conversation"]["without_reference"] == 1


def test_mme_realworld_multiple_choice_with_zoom_end_to_end(tmp_path: Path) -> None:
    """rsformat converts MME-RealWorld, the engine zooms (not on count / position), rsmetrics scores letters."""
    from rscovlm_ref.infer.evaluate import evaluate_dataset
    from rsformat.converters.base import ConversionReport, get_converter
    from rsformat.hub import write_dataset

    src = tmp_path / "mme"
    (src / "rs").mkdir(parents=True)
    _gradient(1400, 1000).save(src / "rs" / "a.png")
    items = []
    for i, (category, truth) in enumerate([("color", "B"), ("color", "A"), ("count", "C"), ("position", "D")]):
        items.append({
            "Question_id": f"perception/remote_sensing/{category}/{i:04d}", "Image": "rs/a.png", "Text": f"Q{i}?",
            "Answer choices": ["(A) one", "(B) two", "(C) three", "(D) four", "(E) none"], "Ground truth": truth,
            "Subtask": "Remote Sensing", "Category": category,
        })  # fmt: skip
    (src / "MME_RealWorld.json").write_text(json.dumps(items))
    report = ConversionReport("mme_realworld")
    records = list(get_converter("mme_realworld")(src).records("test", report))
    write_dataset({"test": records}, tmp_path / "ds", family="zoom", config_name="mme", embed_images=True,
                  image_root=src)  # fmt: skip

    def rule(r: GenerationRequest) -> str:
        zooming = r.messages[0].role == "system"
        if zooming and len(r.images) == 1:
            return _call([0, 0, 112, 112])
        question = (r.messages[1] if zooming else r.messages[0]).text_content
        # Q0 right (B), Q1 wrong (says B, truth A), Q2 right (C), Q3 answers with no letter
        return {"Q0?": "The best answer is: B", "Q1?": "B", "Q2?": "(C)", "Q3?": "I cannot tell."}[question[:3]]

    backend = Scripted(rule)
    metrics = evaluate_dataset(InferenceEngine(backend), tmp_path / "ds", tmp_path / "out", config="mme",
                               split="test", frame=FRAME, no_zoom_categories=("count", "position"), quiet=True)  # fmt: skip
    mcq = metrics["zoom"]["multiple_choice"]
    assert (mcq["num_correct"], mcq["num_total"], mcq["num_unparsed"]) == (2, 4, 1)
    assert mcq["per_category"] == {
        "color": {"accuracy": 0.5, "num_total": 2},
        "count": {"accuracy": 1.0, "num_total": 1},
        "position": {"accuracy": 0.0, "num_total": 1},
    }
    assert metrics["zoom"]["zoom"] == {"asked": 2, "zoomed": 2, "status": {"ok": 2}}  # the two color questions
    lines = read_predictions(tmp_path / "out")
    assert "The choices are listed below" in backend.requests[0].messages[1].text_content
    assert lines["perception/remote_sensing/count/0002"]["zoom"] is False


def test_evaluate_dataset_merges_patches_into_task1_files(tmp_path: Path) -> None:
    from rscovlm_ref.infer.evaluate import evaluate_dataset
    from rsformat.hub import write_dataset

    ship = DetectionObject.from_quad("ship", [50, 300, 150, 300, 150, 350, 50, 350])
    patches = [
        DetectionRecord("P0001__600__0___0", "dota", "test", "a.png", 600, 600, ()),
        DetectionRecord("P0001__600__400___0", "dota", "test", "b.png", 600, 600, (ship,)),
    ]
    for r in patches:
        Image.new("RGB", (600, 600)).save(tmp_path / r.image)
    write_dataset({"test": patches}, tmp_path / "ds", family="detection", config_name="dota_ss600",
                  embed_images=True, image_root=tmp_path)  # fmt: skip
    engine = InferenceEngine(Scripted(lambda r: "There are none."))
    metrics = evaluate_dataset(engine, tmp_path / "ds", tmp_path / "out", split="test", merge_patches=True,
                               frame=RenderFrame.smart(112 * 112, 224 * 224), quiet=True)  # fmt: skip
    assert metrics["merged"]["images"] == 1 and metrics["merged"]["detections"] == 0
    assert (tmp_path / "out" / "task1" / "Task1_ship.txt").read_text() == ""
    assert metrics["detection"]["per_class"]["ship"]["num_gt"] == 1 and metrics["detection"]["map"] == 0.0


def test_grounding_protocols_differ_only_where_they_should() -> None:
    # a 224 x 224 image is shown at its size, so the answer is in original pixels; GT (0, 0, 100, 100),
    # answer (0, 0, 100, 50): continuous IoU exactly 0.5; with the +1 pixel convention 101*51 / 101^2 = 0.505
    rec = GroundingRecord("g", "x", "test", "a.png", 224, 224, "the car", (0.0, 0.0, 100.0, 100.0))
    lines = {"g": {"prediction": "0,0,100,50 the car", "input_width": 224, "input_height": 224}}
    acc = {
        p: score([rec], lines, grounding_preset=p)["grounding"]["accuracy"]["0.5"]
        for p in ("rscovlm", "vhm", "vrsbench")
    }
    assert acc == {"rscovlm": 0.0, "vhm": 1.0, "vrsbench": 1.0}  # IoU > 0.5 vs >= 0.5


def test_suite_refuses_unknown_presets() -> None:
    from rscovlm_ref.data.mixture import ConfigError
    from rscovlm_ref.infer.suite import SuiteConfig

    base = {"model": "m", "out": "o"}
    with pytest.raises(ConfigError, match="`grounding_preset` must be one of"):
        SuiteConfig.from_dict({**base, "benchmarks": [{"name": "a", "dataset": "d", "grounding_preset": "x"}]})
    with pytest.raises(ConfigError, match="`preset` must be one of"):
        SuiteConfig.from_dict({**base, "preset": "voc", "benchmarks": [{"name": "a", "dataset": "d"}]})


def test_vqa_is_scored_per_question_type_from_the_metadata(tmp_path: Path) -> None:
    from rscovlm_ref.infer.suite import headline
    from rsformat.records import ContentPart, ConversationRecord

    def conv(i: int, qtype: str, answer: str) -> ConversationRecord:
        user = Message("user", (ContentPart("image", image=0), ContentPart("text", text=f"Q{i}?")))
        return ConversationRecord(f"q{i}", "rsvqa_lr", "test", ("a.png",), (user, Message.text("assistant", answer)),
                                  task="vqa", metadata=json.dumps({"question_type": qtype}))  # fmt: skip

    records = [conv(0, "presence", "yes"), conv(1, "presence", "no"), conv(2, "count", "3")]
    entries = [EvalRecord(r, lambda i: Image.new("RGB", (64, 64))) for r in records]
    answers = {"Q0?": "Yes.", "Q1?": "yes", "Q2?": "3"}
    out = tmp_path
    predict(entries, InferenceEngine(Scripted(lambda r: answers[r.messages[0].text_content])), out, frame=FRAME,
            quiet=True)  # fmt: skip
    vqa = score(records, read_predictions(out))["conversation"]["vqa"]
    # by hand: presence 1 of 2, count 1 of 1: OA 2/3, AA (0.5 + 1) / 2
    assert vqa["overall_accuracy"] == pytest.approx(2 / 3) and vqa["average_accuracy"] == pytest.approx(0.75)
    assert vqa["per_type"]["presence"]["num_total"] == 2
    assert dict(headline({"conversation": {"vqa": vqa}})) == {"vqa accuracy": pytest.approx(2 / 3), "vqa AA": 0.75}
