#!/usr/bin/env python
"""GPU checks of the rscovlm_ref trainer (trainer-notes §7 item 4): one short script for a machine with a GPU.

On the tiny Qwen2.5-VL (real Qwen2.5 vocabulary, random weights, built offline),
with a few encoded image+text samples of different lengths, in bf16:

1. **Parity.** Per-sample logits under sdpa (one sample per forward) against the
   packed row (4-row position ids, no attention mask) under flash-attention-2
   (varlen) and under sdpa. bf16 tolerance: max |diff| <= ``--atol`` +
   ``--rtol`` * max |logit|, and the supervised-token loss within 1 %. A leak
   control (the packed row with positions that do not restart per sample) must
   *differ*, proving that the per-sample boundaries are what FA2 honours.
2. **Throughput.** Train steps (forward, backward, AdamW) on the same samples,
   packed rows (:func:`rscovlm_ref.data.pack.plan_packs`) vs padded batches, in
   real tokens per second, for each available attention implementation.
3. **Liger** (only if ``liger-kernel`` is installed): loss parity and step time
   with and without its kernels.
4. **Inference.** The HF backend on the GPU (fp32): batched answers must equal
   one-by-one answers; with vLLM installed, the same prompts through
   :class:`~rscovlm_ref.infer.backends.VLLMBackend` on the saved tiny model
   (agreement with HF reported, not required: random weights have near-tied
   logits) and the time of both.

Prints a table; exits 1 when a parity check fails, 2 when there is no CUDA GPU
(with a clear message, before touching anything heavy). Heavy imports are
lazy: ``python scripts/gpu_check.py`` on a CPU machine prints why it cannot run.

Run: ``.venv/bin/python scripts/gpu_check.py [--samples 12] [--steps 10]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEVICE = "cuda"
"""Where the checks run (the CPU smoke test of the functions sets ``"cpu"``; ``main`` needs CUDA)."""

NEEDS_GPU = (
    "gpu_check needs a GPU: torch.cuda.is_available() is False on this machine. "
    "Run it on a machine with a CUDA GPU (flash-attn and liger-kernel optional: pip install 'rscovlm-ref[gpu]')."
)


def cuda_or_exit() -> None:
    """Exit 2 with :data:`NEEDS_GPU` when torch is missing or has no CUDA device."""
    try:
        import torch
    except ModuleNotFoundError:
        print(NEEDS_GPU + " (torch is not installed)", file=sys.stderr)
        raise SystemExit(2) from None
    if not torch.cuda.is_available():
        print(NEEDS_GPU, file=sys.stderr)
        raise SystemExit(2)


def make_samples(processor: Any, n: int, seed: int = 0) -> list[Any]:
    """``n`` encoded samples: one image (224^2..672^2) and a question / answer of varied length."""
    import numpy as np
    from PIL import Image

    from rscovlm_ref.data.encode import encode_sample

    rng = np.random.default_rng(seed)
    words = "plane ship harbor tank vehicle bridge field road river roof court pool".split()
    out = []
    for i in range(n):
        side_w, side_h = (int(rng.integers(8, 25)) * 28 for _ in range(2))
        image = Image.fromarray(rng.integers(0, 255, size=(side_h, side_w, 3), dtype=np.uint8))
        q = " ".join(rng.choice(words, size=int(rng.integers(4, 40))))
        a = " ".join(rng.choice(words, size=int(rng.integers(3, 80))))
        chat = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"Q{i}: {q}?"}]},
            {"role": "assistant", "content": f"{a} [{i}, {2 * i}, {3 * i}, {4 * i}]"},
        ]
        out.append(encode_sample(chat, [image], processor, max_length=None))
    return out


def to_device(batch: dict[str, Any], device: str) -> dict[str, Any]:
    import torch

    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def build_model(config: Any, attn: str, state: dict[str, Any] | None, liger: bool = False) -> Any:
    import torch

    from rscovlm_ref import testing

    # built in bf16 (flash-attention-2 refuses or warns on fp32 at init), then given the shared weights
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        model = testing.tiny_qwen25vl(seed=0, attn_implementation=attn, config=config)
    finally:
        torch.set_default_dtype(previous)
    if state is not None:
        model.load_state_dict(state)
    if liger:
        from rscovlm_ref.train.deepspeed import apply_liger

        apply_liger(model)
    return model.to(DEVICE, dtype=torch.bfloat16)


def forward_logits(model: Any, batch: dict[str, Any]) -> Any:
    import torch

    with torch.no_grad():
        b = {k: v for k, v in batch.items() if k != "labels"}
        return model(**b).logits.float()


def supervised_loss(logits: Any, labels: Any) -> float:
    import torch

    shift = labels[..., 1:].reshape(-1)
    lg = logits[..., :-1, :].reshape(-1, logits.shape[-1])
    keep = shift != -100
    return float(torch.nn.functional.cross_entropy(lg[keep], shift[keep], reduction="mean"))


def check_parity(config: Any, state: dict[str, Any], samples: list[Any], impls: list[str], atol: float, rtol: float):
    """Rows of (name, max|diff|, tolerance, loss rel. diff, ok)."""
    import torch

    from rscovlm_ref.data.collate import collate_packed

    ref_model = build_model(config, "sdpa", state)
    ref = [forward_logits(ref_model, to_device(collate_packed([s]), DEVICE))[0] for s in samples]
    ref_cat = torch.cat(ref)
    scale = float(ref_cat.abs().max())
    packed = collate_packed(samples)
    labels = packed["labels"].to(DEVICE)
    ref_loss = supervised_loss(ref_cat[None], labels)
    rows = []
    for impl in impls:
        model = ref_model if impl == "sdpa" else build_model(config, impl, state)
        got = forward_logits(model, to_device(packed, DEVICE))[0]
        diff = float((got - ref_cat).abs().max())
        tol = atol + rtol * scale
        loss = supervised_loss(got[None], labels)
        rel = abs(loss - ref_loss) / max(abs(ref_loss), 1e-6)
        rows.append((f"packed {impl} vs per-sample sdpa", diff, tol, rel, diff <= tol and rel <= 1e-2))
        # leak control: positions that run on across samples must change the logits
        leak = dict(packed)
        pos = leak["position_ids"].clone()
        pos[0, 0] = torch.arange(pos.shape[-1])
        leak["position_ids"] = pos
        got_leak = forward_logits(model, to_device(leak, DEVICE))[0]
        ldiff = float((got_leak - ref_cat).abs().max())
        rows.append((f"leak control {impl} (must differ)", ldiff, tol, float("nan"), ldiff > tol))
        del model
    del ref_model
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
    return rows


def sync() -> None:
    import torch

    if DEVICE == "cuda":
        torch.cuda.synchronize()


def step_time(model: Any, batches: list[dict[str, Any]], steps: int) -> float:
    """Median seconds per train step (fwd + bwd + AdamW) over ``batches`` cycled, after one warm-up pass."""
    import statistics

    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model.train()
    times = []
    for k in range(steps + len(batches)):
        batch = to_device(batches[k % len(batches)], DEVICE)
        sync()
        t0 = time.perf_counter()
        out = model(**batch)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        if k >= len(batches):
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def throughput(config: Any, state: dict[str, Any], samples: list[Any], impls: list[str], steps: int, max_length: int):
    """Rows of (mode, impl, real tokens per step, step seconds, real tokens/s)."""
    from rscovlm_ref.data.collate import collate_packed, collate_padded
    from rscovlm_ref.data.pack import padded_batches, plan_packs

    lengths = [len(s) for s in samples]
    plan = plan_packs(lengths, max_length)
    k = max(1, round(len(samples) / len(plan)))
    packed = [collate_packed([samples[i] for i in row]) for row in plan]
    padded = [collate_padded([samples[i] for i in b], pad_token_id=0) for b in padded_batches(len(samples), k)]
    real = sum(lengths)
    rows = []
    for impl in impls:
        for mode, batches in (("packed", packed), ("padded", padded)):
            model = build_model(config, impl, state)
            t = step_time(model, batches, steps)
            per_step = real / len(batches)
            rows.append((mode, impl, per_step, t, per_step / t))
            del model
    return rows


def liger_rows(
    config: Any, state: dict[str, Any], samples: list[Any], steps: int
) -> list[tuple[str, float, float, bool]]:
    """Rows of (variant, loss, step seconds, ok) with and without Liger's kernels (packed rows, sdpa)."""
    from rscovlm_ref.data.collate import collate_packed

    batch = collate_packed(samples[: max(2, len(samples) // 2)])
    rows = []
    losses = {}
    for liger in (False, True):
        model = build_model(config, "sdpa", state, liger=liger)
        logits = forward_logits(model, to_device(batch, DEVICE))
        losses[liger] = supervised_loss(logits, batch["labels"].to(DEVICE))
        t = step_time(model, [batch], steps)
        rows.append(("liger on" if liger else "liger off", losses[liger], t))
        del model
    ok = abs(losses[True] - losses[False]) / max(abs(losses[False]), 1e-6) <= 1e-2
    return [(name, loss, t, ok) for name, loss, t in rows]


def inference_rows(processor: Any, config: Any, state: dict[str, Any], n: int) -> list[tuple[str, str, float, bool]]:
    """(check, detail, seconds, ok) rows of the inference checks (see the module doc, item 4)."""
    import tempfile

    from PIL import Image

    from rscovlm_ref import testing
    from rscovlm_ref.infer.backends import GenerationRequest, HFBackend
    from rsformat.records import ContentPart, Message

    model = testing.tiny_qwen25vl(seed=0, attn_implementation="sdpa", config=config)
    model.load_state_dict(state)
    model = model.to(DEVICE).float()
    requests = [
        GenerationRequest(
            [Message("user", (ContentPart("image", image=0), ContentPart("text", text=f"Describe region {i}.")))],
            [Image.new("RGB", (224 + 28 * (i % 3), 224), (40 * i % 255, 120, 30))],
        )
        for i in range(n)
    ]
    rows = []
    sync()
    t0 = time.perf_counter()
    batched = HFBackend(model, processor, max_new_tokens=16, batch_size=n).generate(requests)
    sync()
    t_batched = time.perf_counter() - t0
    single = [HFBackend(model, processor, max_new_tokens=16, batch_size=1).generate([r])[0] for r in requests]
    same = batched == single
    rows.append(("HF batched == one by one", f"{sum(a == b for a, b in zip(batched, single))}/{n}", t_batched, same))
    if importlib.util.find_spec("vllm") is None:
        print("vllm is not installed: vLLM rows skipped (pip install vllm, in its own environment)")
        return rows
    from rscovlm_ref.infer.backends import VLLMBackend

    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        try:
            engine = VLLMBackend(folder, max_new_tokens=16, max_images=1, max_model_len=4096, dtype="float32",
                                 gpu_memory_utilization=0.3, enforce_eager=True)  # fmt: skip
            t0 = time.perf_counter()
            answers = engine.generate(requests)
            t_vllm = time.perf_counter() - t0
        except Exception as err:  # report, do not hide: the row says what failed
            rows.append(("vLLM backend", f"failed: {type(err).__name__}: {err}"[:200], 0.0, False))
            return rows
    agree = sum(a == b for a, b in zip(answers, batched))
    rows.append(("vLLM backend runs; agreement with HF", f"{agree}/{n}", t_vllm, len(answers) == n))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=12)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--max-length", type=int, default=6144)
    ap.add_argument("--atol", type=float, default=2e-2)
    ap.add_argument("--rtol", type=float, default=2e-2)
    args = ap.parse_args(argv)

    cuda_or_exit()  # before any heavy import

    import torch

    from rscovlm_ref import testing
    from rscovlm_ref.train.deepspeed import flash_attention_available, liger_available

    torch.backends.cuda.matmul.allow_tf32 = False
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    processor = testing.tiny_qwen25vl_processor()
    config = testing.tiny_qwen25vl_config(processor.tokenizer)
    state = {k: v.clone() for k, v in testing.tiny_qwen25vl(seed=0, config=config).state_dict().items()}
    samples = make_samples(processor, args.samples)
    print(
        f"samples: {len(samples)}, tokens {sum(len(s) for s in samples)} ({min(map(len, samples))}..{max(map(len, samples))})"
    )

    impls = ["sdpa"]
    if flash_attention_available():
        impls.append("flash_attention_2")
    else:
        print("flash-attn is not installed: FA2 rows skipped (pip install flash-attn)")

    failed = False
    print("\n| parity (bf16) | max abs diff | tolerance | loss rel. diff | ok |\n|---|---:|---:|---:|---|")
    for name, diff, tol, rel, ok in check_parity(config, state, samples, impls, args.atol, args.rtol):
        failed |= not ok
        print(f"| {name} | {diff:.4g} | {tol:.4g} | {rel:.3g} | {'yes' if ok else 'NO'} |")

    print("\n| mode | attention | real tokens / step | step ms | real tokens/s |\n|---|---|---:|---:|---:|")
    for mode, impl, per_step, t, rate in throughput(config, state, samples, impls, args.steps, args.max_length):
        print(f"| {mode} | {impl} | {per_step:.0f} | {t * 1e3:.1f} | {rate:,.0f} |")

    if liger_available() and importlib.util.find_spec("liger_kernel") is not None:
        print("\n| Liger | loss | step ms | ok |\n|---|---:|---:|---|")
        for name, loss, t, ok in liger_rows(config, state, samples, args.steps):
            failed |= not ok
            print(f"| {name} | {loss:.5f} | {t * 1e3:.1f} | {'yes' if ok else 'NO'} |")
    else:
        print("\nliger-kernel is not installed: Liger rows skipped")

    print("\n| inference | detail | s | ok |\n|---|---|---:|---|")
    for name, detail, t, ok in inference_rows(processor, config, state, min(args.samples, 8)):
        failed |= not ok
        print(f"| {name} | {detail} | {t:.2f} | {'yes' if ok else 'NO'} |")

    print("\nPARITY FAILED" if failed else "\nall parity checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
