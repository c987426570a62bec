"""Zoom-in Chain inference: our round-batched engine against RSCoVLM's one-sample-at-a-time loop.

The tiny Qwen2.5-VL (real Qwen2.5 vocabulary, sdpa, fp32, one CPU thread) is
first trained on one Zoom-in Chain (a 640x480 image, one region of interest,
rendered in a 224^2 frame) until greedy decoding replays it, so that on any
image of that size it calls ``image_zoom_in`` and then answers: every item
takes the two rounds of a real chain. ``--items`` items on different random
images are then answered twice in one run:

* baseline, RSCoVLM's evaluation (``--batch_size 1`` for zoom benchmarks, its
  batching bug): each item alone, call -> crop -> answer, with our own backend
  and engine at batch size 1 (so the comparison is of scheduling only);
* ours: :class:`~rscovlm_ref.infer.engine.InferenceEngine` over all items,
  every round batched (``--batch-size``) by the HF backend (left padding).

Both must give identical answers and crops (checked); the script writes items/s
and the ratio to BENCHMARKS.md between the ``bench_infer`` markers.

Run: ``.venv/bin/python benchmarks/bench_infer.py`` (``--quick``: a smoke run
that leaves BENCHMARKS.md alone).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import copy
import platform
import sys
import time

import numpy as np
import torch
from _common import cpu_name, markers, write_section  # benchmarks/ is on sys.path when a script runs
from PIL import Image

from rscovlm_ref import testing
from rscovlm_ref.data.collate import collate_packed
from rscovlm_ref.data.encode import IGNORE_INDEX, encode_sample, materialize_images
from rscovlm_ref.infer.backends import HFBackend
from rscovlm_ref.infer.engine import InferenceEngine, InferenceItem
from rscovlm_ref.train.trainer import selective_logits, token_sum_loss
from rsformat.records import ZoomRecord
from rsformat.render import RenderFrame, RenderStyle, render_conversation, render_prompt

FRAME = RenderFrame.smart(224 * 224, 224 * 224)
STYLE = RenderStyle("plain", "hbb", tool_format="qwen")
SIZE = (640, 480)


def _image(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : SIZE[1], 0 : SIZE[0]]
    base = np.stack([xx * 255 // SIZE[0], yy * 255 // SIZE[1], (xx + yy) * 255 // sum(SIZE)], axis=-1)
    return Image.fromarray(np.clip(base + rng.integers(0, 40, (SIZE[1], SIZE[0], 3)), 0, 255).astype(np.uint8))


def _record(i: int) -> ZoomRecord:
    return ZoomRecord(f"z{i}", "bench", "test", f"{i}.png", *SIZE, question="What color is the car?",
                      answer="The car is red.", rois=((400.0, 300.0, 520.0, 380.0),))  # fmt: skip


def trained_model(processor: object, max_steps: int = 300) -> tuple[object, int]:
    """The tiny model trained on one chain until the engine replays it (the steps it took)."""
    record = _record(0)
    conv = render_conversation(record, FRAME, STYLE)
    image = _image(0)
    sample = encode_sample(
        conv.messages, materialize_images(conv.images, None, FRAME, opener=lambda i: image), processor
    )
    batch = collate_packed([sample])
    model = testing.tiny_qwen25vl(seed=0, attn_implementation="sdpa",
                                  config=copy.deepcopy(testing.tiny_qwen25vl_config(processor.tokenizer)))  # fmt: skip
    model.get_input_embeddings().weight.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3, weight_decay=0.0)
    item = InferenceItem("z0", render_prompt(record, FRAME, STYLE), [image], FRAME, zoom=True)
    for step in range(1, max_steps + 1):
        model.train()
        inputs = dict(batch)
        labels = inputs.pop("labels")
        keep = torch.zeros_like(labels, dtype=torch.bool)
        keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
        loss = token_sum_loss(selective_logits(model, inputs, keep), labels[:, 1:][keep[:, :-1]], None)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 10 == 0 and float(loss.detach()) < 0.1:
            answer = InferenceEngine(HFBackend(model, processor, max_new_tokens=48)).run([item])[0]
            if answer.zooms and answer.text == record.answer:
                return model.eval(), step
    raise RuntimeError(f"the tiny model did not learn the chain in {max_steps} steps")


def run(items: int, batch_size: int, max_new_tokens: int) -> dict[str, object]:
    torch.set_num_threads(1)
    processor = testing.tiny_qwen25vl_processor(min_pixels=112 * 112, max_pixels=224 * 224)
    t0 = time.perf_counter()
    model, steps = trained_model(processor)
    train_s = time.perf_counter() - t0
    work = [InferenceItem(f"z{i}", render_prompt(_record(i), FRAME, STYLE), [_image(1000 + i)], FRAME, zoom=True)
            for i in range(items)]  # fmt: skip

    single = InferenceEngine(HFBackend(model, processor, max_new_tokens=max_new_tokens, batch_size=1))
    single.run(work[:1])  # warm-up
    t0 = time.perf_counter()
    baseline = [single.run([item])[0] for item in work]
    base_s = time.perf_counter() - t0

    batched = InferenceEngine(HFBackend(model, processor, max_new_tokens=max_new_tokens, batch_size=batch_size))
    t0 = time.perf_counter()
    ours = batched.run(work)
    ours_s = time.perf_counter() - t0

    same = all(a.text == b.text and a.zooms == b.zooms and a.turns == b.turns for a, b in zip(baseline, ours))
    return {
        "items": items, "batch_size": batch_size, "train_steps": steps, "train_s": train_s,
        "zoomed": sum(1 for a in ours if a.zooms), "answered": sum(1 for a in ours if a.text == "The car is red."),
        "base_s": base_s, "ours_s": ours_s, "same": same, "engine": dict(batched.stats),
    }  # fmt: skip


def section(r: dict[str, object]) -> str:
    start, end = markers("bench_infer")
    base_rate, ours_rate = r["items"] / r["base_s"], r["items"] / r["ours_s"]  # type: ignore[operator]
    return "\n".join(
        [
            start,
            "## Inference: Zoom-in Chain, round-batched engine vs one item at a time (`benchmarks/bench_infer.py`)",
            "",
            f"Machine: {cpu_name()}, 1 thread; Python {platform.python_version()}, torch {torch.__version__}. "
            f"The tiny Qwen2.5-VL (real Qwen2.5 vocabulary, sdpa, fp32) trained on one chain until it replays it "
            f"({r['train_steps']} steps, {r['train_s']:.0f} s), then {r['items']} items on different 640x480 images, "
            "shown at 224x168 (224^2 frame); each zooms once and answers from the crop of the original image.",
            "",
            "| | items/s | wall s | ratio |",
            "|---|---|---|---|",
            f"| RSCoVLM's scheduling: one item at a time, call -> crop -> answer | {base_rate:.2f} | {r['base_s']:.1f} | 1.00 |",
            f"| ours: every round batched ({r['batch_size']} per generate) | {ours_rate:.2f} | {r['ours_s']:.1f} | "
            f"{ours_rate / base_rate:.2f}x |",
            "",
            f"Items that zoomed: {r['zoomed']}/{r['items']}; gave the trained answer: {r['answered']}/{r['items']}; "
            f"engine counts {r['engine']}. Identical answers, turns and crops in both runs: **{r['same']}** "
            "(greedy decoding with left padding). Measured on a CPU only; the same engine drives vLLM "
            "(`VLLMBackend`), which RSCoVLM could not use for zooming (its loop was HF-only).",
            end,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, BENCHMARKS.md left alone")
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args(argv)
    items = 4 if args.quick else args.items
    r = run(items, min(args.batch_size, items), args.max_new_tokens)
    text = section(r)
    print(text)
    if not r["same"]:
        print("error: batched and one-by-one answers differ", file=sys.stderr)
        return 1
    if not args.quick:
        from _common import BENCHMARKS_MD

        write_section("bench_infer", text)
        print(f"updated {BENCHMARKS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
