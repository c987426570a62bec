"""Encoding: the real tokenizer, the chat template, labels, images and M-RoPE positions without the model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import transformers
from packaging.version import Version
from PIL import Image
from rscovlm_fixtures import FRAME, Rendered

from rscovlm_ref import testing
from rscovlm_ref.data.encode import (
    IGNORE_INDEX,
    EncodeError,
    chat_messages,
    encode_sample,
    materialize_images,
    mrope_position_ids,
    template_segments,
)
from rsformat.records import ContentPart, Message
from rsformat.render import RenderFrame, smart_resize

# --------------------------------------------------------------------------- tokenizer and template


def test_real_tokenizer_reproduces_published_qwen25_ids(processor: Any) -> None:
    tok = processor.tokenizer
    head = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|image_pad|><|vision_end|>"
    )
    expected = [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198]
    expected += [151644, 872, 198, 151652, 151655, 151653]
    assert tok(head, add_special_tokens=False).input_ids == expected
    assert tok("What is this?", add_special_tokens=False).input_ids == [3838, 374, 419, 30]
    assert tok("Describe this image.", add_special_tokens=False).input_ids == [74785, 419, 2168, 13]
    assert tok("assistant", add_special_tokens=False).input_ids == [77091]
    assert len(tok) == 151665
    for i, (token, _) in enumerate(testing.QWEN25_ADDED_TOKENS):
        assert tok.convert_tokens_to_ids(token) == 151643 + i
    assert (tok.eos_token, tok.pad_token) == ("<|im_end|>", "<|endoftext|>")
    text = 'Zoom: <tool_call>\n{"bbox": [1, 2]}\n</tool_call> 飞机 ✈'
    assert tok.decode(tok(text, add_special_tokens=False).input_ids) == text


def _image_chat(r: Rendered) -> list[dict[str, Any]]:
    """The chat dicts with the PIL images placed in their image parts (what apply_chat_template loads)."""
    chat, order = chat_messages(r.messages)
    shown = iter([r.images[k] for k in order])
    return [
        {**m, "content": [{**p, "image": next(shown)} if p["type"] == "image" else p for p in m["content"]]}
        for m in chat
    ]


@pytest.mark.parametrize("name", ["zoom_chain", "detection", "detection_plain"])
def test_our_rendering_equals_the_stock_template(name: str, processor: Any, request: pytest.FixtureRequest) -> None:
    r: Rendered = request.getfixturevalue(name)
    chat, _ = chat_messages(r.messages)
    stock = processor.apply_chat_template(chat, chat_template=testing.QWEN25_VL_CHAT_TEMPLATE, tokenize=False)
    assert "".join(text for text, _ in template_segments(chat)) == stock
    # the template with {% generation %} markers renders the same bytes
    assert processor.apply_chat_template(chat, tokenize=False) == stock
    for gen in (True, False):
        a = processor.apply_chat_template(chat[:2], tokenize=False, add_generation_prompt=gen)
        b = processor.apply_chat_template(
            chat[:2], chat_template=testing.QWEN25_VL_CHAT_TEMPLATE, tokenize=False, add_generation_prompt=gen
        )
        assert a == b


def test_string_content_and_default_system_prompt_render_like_the_stock_template(processor: Any) -> None:
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    stock = processor.apply_chat_template(chat, chat_template=testing.QWEN25_VL_CHAT_TEMPLATE, tokenize=False)
    assert stock.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    assert (
        "".join(t for t, _ in template_segments(chat)) == stock == processor.apply_chat_template(chat, tokenize=False)
    )


@pytest.mark.parametrize("name", ["zoom_chain", "detection"])
def test_encoding_equals_the_processor(name: str, processor: Any, request: pytest.FixtureRequest) -> None:
    r: Rendered = request.getfixturevalue(name)
    s = encode_sample(r.messages, r.images, processor)
    assert s is not None
    out = processor.apply_chat_template(
        _image_chat(r), tokenize=True, return_dict=True, return_assistant_tokens_mask=True, return_tensors="pt"
    )
    assert torch.equal(out["input_ids"][0], s.input_ids)
    assert torch.equal(out["mm_token_type_ids"][0], s.mm_token_type_ids)
    assert torch.equal(out["image_grid_thw"], s.image_grid_thw)
    assert torch.equal(out["pixel_values"], s.pixel_values)
    # our labeler agrees with the template's {% generation %} mask (which transformers 5.16.1 returned
    # all-zero as soon as images were present; 5.24 is the version checked)
    if Version(transformers.__version__) >= Version("5.24"):
        assert torch.equal(torch.as_tensor(out["assistant_masks"][0]).bool(), s.labels != IGNORE_INDEX)


# --------------------------------------------------------------------------- labels


def _supervised_runs(s: Any, tok: Any) -> list[str]:
    mask = (s.labels != IGNORE_INDEX).numpy()
    assert np.array_equal(s.labels.numpy()[mask], s.input_ids.numpy()[mask])
    runs, start = [], None
    for i, m in enumerate([*mask.tolist(), False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            runs.append(tok.decode(s.input_ids[start:i]))
            start = None
    return runs


def test_zoom_chain_trains_both_assistant_turns_and_nothing_else(zoom_chain: Rendered, processor: Any) -> None:
    s = encode_sample(zoom_chain.messages, zoom_chain.images, processor)
    assert s is not None
    answers = [m.text_content for m in zoom_chain.messages if m.role == "assistant"]
    assert len(answers) == 2 and answers[0].startswith("<tool_call>\n")
    assert _supervised_runs(s, processor.tokenizer) == [a + "<|im_end|>" for a in answers]
    # the newline after <|im_end|> and the assistant header are not trained
    im_end = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    for i in torch.nonzero(s.labels == im_end).flatten().tolist():
        assert i + 1 == len(s) or s.labels[i + 1] == IGNORE_INDEX
    assert s.num_supervised == int((s.labels != IGNORE_INDEX).sum())


def test_detection_label_is_the_answer_and_im_end(detection: Rendered, processor: Any) -> None:
    s = encode_sample(detection.messages, detection.images, processor)
    assert s is not None
    assert _supervised_runs(s, processor.tokenizer) == [detection.messages[-1].text_content + "<|im_end|>"]


def test_multi_turn_conversation_trains_every_assistant_turn(processor: Any) -> None:
    msgs = [
        Message("user", (ContentPart("image", image=0), ContentPart("text", text="What is this?"))),
        Message.text("assistant", "An airport."),
        Message.text("user", "How many planes?"),
        Message.text("assistant", "\n\nThree."),  # a leading newline merges with the header's: not trained
    ]
    s = encode_sample(msgs, [Image.new("RGB", (112, 112), (9, 99, 199))], processor)
    assert s is not None
    runs = _supervised_runs(s, processor.tokenizer)
    assert runs[0] == "An airport.<|im_end|>"
    assert runs[1].endswith("Three.<|im_end|>")


def test_both_tool_formats_encode_the_same(zoom_chain: Rendered, zoom_chain_openai: Rendered, processor: Any) -> None:
    a = encode_sample(zoom_chain.messages, zoom_chain.images, processor)
    b = encode_sample(zoom_chain_openai.messages, zoom_chain_openai.images, processor)
    assert a is not None and b is not None
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.labels, b.labels)
    assert torch.equal(a.pixel_values, b.pixel_values)


def test_a_sample_over_max_length_is_dropped_not_truncated(zoom_chain: Rendered, processor: Any) -> None:
    s = encode_sample(zoom_chain.messages, zoom_chain.images, processor, max_length=None)
    assert s is not None
    assert encode_sample(zoom_chain.messages, zoom_chain.images, processor, max_length=len(s)) is not None
    assert encode_sample(zoom_chain.messages, zoom_chain.images, processor, max_length=len(s) - 1) is None


def test_bad_samples_raise_clear_errors(processor: Any, zoom_chain: Rendered) -> None:
    with pytest.raises(EncodeError, match="empty assistant turn"):
        encode_sample([Message.text("user", "hi"), Message.text("assistant", " ")], [], processor)
    with pytest.raises(EncodeError, match="no supervised token"):
        encode_sample([Message.text("user", "hi")], [], processor)
    with pytest.raises(EncodeError, match="empty conversation"):
        encode_sample([], [], processor)
    with pytest.raises(EncodeError, match=r"2 images were given|shows image"):
        msgs = [Message("user", (ContentPart("image", image=2),)), Message.text("assistant", "x")]
        encode_sample(msgs, zoom_chain.images, processor)


# --------------------------------------------------------------------------- images


def test_materialize_resizes_to_the_frame_and_crops_the_original(zoom_chain: Rendered) -> None:
    root = zoom_chain.root
    images = materialize_images(zoom_chain.record_images, root, FRAME)
    full = Image.open(root / "zoom.png").convert("RGB")
    assert images[0].size == FRAME.size(640, 480)
    assert zoom_chain.record_images[1].startswith("crop:")
    x1, y1, x2, y2 = (int(v) for v in zoom_chain.record_images[1][5:].split(","))
    h, w = smart_resize(y2 - y1, x2 - x1, 28, FRAME.min_pixels, FRAME.max_pixels)
    expected = full.crop((x1, y1, x2, y2)).resize((w, h), Image.Resampling.BICUBIC)
    assert images[1].size == (w, h)
    assert np.array_equal(np.asarray(images[1]), np.asarray(expected))
    # the crop comes from the original: resizing first would give other pixels
    small = full.resize(images[0].size, Image.Resampling.BICUBIC)
    sx, sy = small.width / 640, small.height / 480
    from_small = small.crop((round(x1 * sx), round(y1 * sy), round(x2 * sx), round(y2 * sy))).resize((w, h))
    assert not np.array_equal(np.asarray(images[1]), np.asarray(from_small))


def test_materialize_reports_bad_images(tmp_path: Any) -> None:
    (tmp_path / "bad.png").write_bytes(b"not a png")
    Image.new("RGB", (50, 40)).save(tmp_path / "ok.png")
    frame = RenderFrame.smart()
    with pytest.raises(EncodeError, match="cannot read image"):
        materialize_images(["bad.png"], tmp_path, frame)
    with pytest.raises(EncodeError, match="cannot read image"):
        materialize_images(["missing.png"], tmp_path, frame)
    with pytest.raises(EncodeError, match="outside"):
        materialize_images(["ok.png", "crop:0,0,60,10"], tmp_path, frame)
    # a grid frame has no input size: the image is smart-resized
    assert materialize_images(["ok.png"], tmp_path, RenderFrame.grid(1000))[0].size == (252, 224)


# --------------------------------------------------------------------------- M-RoPE


def test_position_ids_equal_the_models_get_rope_index(zoom_chain: Rendered, processor: Any, models: dict) -> None:
    s = encode_sample(zoom_chain.messages, zoom_chain.images, processor)
    assert s is not None and s.image_grid_thw.shape[0] == 2
    ref, _ = models["sdpa"].model.get_rope_index(
        s.input_ids[None], s.mm_token_type_ids[None], image_grid_thw=s.image_grid_thw
    )
    assert torch.equal(s.position_ids[1:], ref[:, 0])
    assert torch.equal(s.position_ids[0], torch.arange(len(s)))


def test_mrope_of_text_only_is_arange_and_mismatches_raise() -> None:
    assert mrope_position_ids([1, 2, 3], [0, 0, 0]).tolist() == [[0, 1, 2]] * 3
    with pytest.raises(EncodeError, match="grid"):
        mrope_position_ids([5, 5, 5], [1, 1, 1], [[1, 4, 4]])
    with pytest.raises(EncodeError, match="image grids"):
        mrope_position_ids([1], [0], [[1, 4, 4]])


def test_huge_scenes_are_not_refused_as_decompression_bombs(tmp_path, monkeypatch) -> None:
    import io

    from PIL import Image

    from rscovlm_ref.data.encode import materialize_images, open_image_bytes
    from rsformat.render import RenderFrame

    # Pillow refuses images over 2 x MAX_IMAGE_PIXELS; here the limit is 1,000 px and the scene 10,000 px,
    # as a real 27k x 27k LRS-VQA scene is to the default limit
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    buf = io.BytesIO()
    Image.new("RGB", (100, 100), (1, 2, 3)).save(buf, format="PNG")
    (tmp_path / "big.png").write_bytes(buf.getvalue())
    with pytest.raises(Image.DecompressionBombError):
        Image.open(tmp_path / "big.png").load()
    assert open_image_bytes(buf.getvalue(), "big.png").size == (100, 100)
    shown = materialize_images(["big.png"], tmp_path, RenderFrame.smart(28 * 28, 56 * 56))
    assert shown[0].size == (56, 56)
    assert Image.MAX_IMAGE_PIXELS == 1000  # the limit is lifted only while the image is read
