"""Overfit smoke test: the tiny Qwen2.5-VL learns one zoom-in chain and greedy generation replays its tool call.

One rsformat ZoomRecord (a 640x480 image, one region of interest) is rendered in
a 224^2 frame (Qwen tool format) and encoded; the tiny model (real Qwen2.5
vocabulary, sdpa) is trained on it with the trainer's loss (logits only where
labels exist, token mean) at lr 3e-3. Then the prompt is built the inference way
(the processor's chat template and image processor, checked to equal the
training prefix) and ``model.generate`` (greedy) must reproduce the first
assistant turn, the ``<tool_call>`` with the bbox text, exactly.

Then the whole chain runs through the inference engine (HF backend): the model
calls the tool, the engine maps the box back and cuts the region from the
original image (it must be the training crop), and the model, shown the crop,
gives the trained answer.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import torch
from rscovlm_fixtures import zoom_record

from rscovlm_ref import testing
from rscovlm_ref.data.collate import collate_packed
from rscovlm_ref.data.encode import IGNORE_INDEX, chat_messages, encode_sample, materialize_images
from rscovlm_ref.infer.backends import HFBackend
from rscovlm_ref.infer.engine import InferenceAnswer, InferenceEngine, InferenceItem
from rscovlm_ref.train.trainer import selective_logits, token_sum_loss
from rsformat.render import RenderFrame, RenderStyle, parse_crop_ref, render_conversation, render_prompt

FRAME_224 = RenderFrame.smart(min_pixels=224 * 224, max_pixels=224 * 224)
MAX_STEPS = 200


def _loss(model: Any, batch: dict[str, Any]) -> torch.Tensor:
    inputs = dict(batch)
    labels = inputs.pop("labels")
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    targets = labels[:, 1:][keep[:, :-1]]
    return token_sum_loss(selective_logits(model, inputs, keep), targets, None)


def test_tiny_model_overfits_one_zoom_chain(image_root: Path, tiny_config: Any, processor: Any) -> None:
    # the session processor's pixel budget (112^2..224^2) keeps the 224^2-frame image at its size
    style = RenderStyle("plain", "hbb", tool_format="qwen")
    conv = render_conversation(zoom_record(), FRAME_224, style)
    images = materialize_images(conv.images, image_root, FRAME_224)
    sample = encode_sample(conv.messages, images, processor)
    assert sample is not None
    tool_turn = next(m for m in conv.messages if m.role == "assistant").content[0].text
    bbox = re.search(r'"bbox": \[[0-9, ]+\]', tool_turn)
    assert bbox is not None

    config = copy.deepcopy(tiny_config)
    model = testing.tiny_qwen25vl(seed=0, attn_implementation="sdpa", config=config).train()
    # the input embedding (151,680 x 64, half the parameters) is frozen: AdamW over it dominated the step
    model.get_input_embeddings().weight.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3, weight_decay=0.0)
    batch = collate_packed([sample])

    # the inference prompt: stock template + processor, up to the first assistant turn
    chat, order = chat_messages(conv.messages)
    first_assistant = next(i for i, m in enumerate(chat) if m["role"] == "assistant")
    text = processor.apply_chat_template(chat[:first_assistant], add_generation_prompt=True, tokenize=False)
    prompt = processor(text=[text], images=[images[k] for k in order[:1]], return_tensors="pt")
    n = prompt["input_ids"].shape[1]
    assert torch.equal(prompt["input_ids"][0], sample.input_ids[:n])  # inference prefix == training prefix
    expected = tool_turn + "<|im_end|>"

    def generate() -> str:
        model.eval()
        with torch.no_grad():
            out = model.generate(**prompt, max_new_tokens=48, do_sample=False, use_cache=True)
        model.train()
        return processor.tokenizer.decode(out[0, n:], skip_special_tokens=False)

    from PIL import Image

    with Image.open(image_root / "zoom.png") as im:
        original = im.convert("RGB")
    item = InferenceItem("z1", render_prompt(zoom_record(), FRAME_224, style), [original], FRAME_224, zoom=True)

    def engine_answer() -> InferenceAnswer:
        answer = InferenceEngine(HFBackend(model, processor, max_new_tokens=48, batch_size=1)).run([item])[0]
        model.train()
        return answer

    losses = []
    got = ""
    answer = InferenceAnswer("z1", "")
    for step in range(MAX_STEPS):
        loss = _loss(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if step % 5 == 4 and losses[-1] < 0.1:
            got = generate()
            if got.startswith(expected):
                answer = engine_answer()
                if answer.text == zoom_record().answer:
                    break
    else:
        got = generate()
        answer = engine_answer()
    assert losses[-1] < losses[0] / 20, losses[::10]
    assert got.startswith(expected), (got, expected, len(losses))
    assert bbox.group(0) in got
    # the engine executed the call as training cut the crop, and the model answered from it
    assert answer.turns[0] == tool_turn and answer.status == "ok"
    assert answer.zooms == [parse_crop_ref(conv.images[1])]
    assert answer.text == zoom_record().answer, answer
    print(f"steps {len(losses)}, loss {losses[0]:.3f} -> {losses[-1]:.4f}")
