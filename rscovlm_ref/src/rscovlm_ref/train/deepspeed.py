"""DeepSpeed ZeRO configs that keep our optimizer groups, and the optional GPU kernels.

RSCoVLM's ZeRO JSON defined ``"optimizer": {"type": "AdamW", ...}``; transformers
then hands DeepSpeed one parameter group (``DummyOptim``), so the trainer's
vision/merger learning rates and the no-decay group for norms and biases were
silently dropped. The configs built here have **no optimizer and no scheduler
block**: the Trainer builds our AdamW with its groups and DeepSpeed wraps it.
Batch sizes, clipping and precision are ``"auto"`` (filled in from the
training arguments).

flash-attention-2 and Liger are imported lazily, only when asked for, with
a clear message when they are missing (they are GPU-only extras).

Example:
    >>> cfg = zero_config(1)
    >>> cfg["zero_optimization"]["stage"], "optimizer" in cfg, "scheduler" in cfg
    (1, False, False)
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

__all__ = [
    "check_deepspeed_config",
    "flash_attention_available",
    "liger_available",
    "resolve_attn_implementation",
    "write_deepspeed_config",
    "zero_config",
]


def zero_config(stage: int, *, offload: bool = False, bucket_size: float = 1e9) -> dict[str, Any]:
    """A ZeRO-``stage`` config (1, 2 or 3) without optimizer or scheduler block (see the module doc).

    Stage 1 uses RSCoVLM's buckets (``1e9``, overlapped communication).
    ``offload`` moves optimizer states (and, for stage 3, parameters) to the CPU.
    """
    if stage not in (1, 2, 3):
        raise ValueError(f"Expected a ZeRO stage 1, 2 or 3, but got {stage!r}")
    zero: dict[str, Any] = {
        "stage": stage,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "reduce_bucket_size": bucket_size if stage < 3 else "auto",
    }
    if stage < 3:
        zero["allgather_bucket_size"] = bucket_size
        zero["allgather_partitions"] = True
        zero["reduce_scatter"] = True
    else:
        zero.update(
            {
                "stage3_prefetch_bucket_size": "auto",
                "stage3_param_persistence_threshold": "auto",
                "stage3_max_live_parameters": 1e9,
                "stage3_max_reuse_distance": 1e9,
                "stage3_gather_16bit_weights_on_model_save": True,
            }
        )
    if offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
        if stage == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    return {
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "zero_optimization": zero,
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "steps_per_print": 1000,
        "wall_clock_breakdown": False,
    }


def check_deepspeed_config(config: dict[str, Any], where: str = "the DeepSpeed config") -> None:
    """Refuse a config with an optimizer or scheduler block: it would override our parameter groups."""
    bad = [k for k in ("optimizer", "scheduler") if k in config]
    if bad:
        raise ValueError(
            f"{where} defines {bad}: DeepSpeed would then replace the trainer's AdamW parameter groups "
            "(separate vision/merger/LLM learning rates, no weight decay on norms and biases) by a single "
            "group, RSCoVLM's bug. Remove the block; the Trainer builds the optimizer and the schedule."
        )


def write_deepspeed_config(spec: str, output_dir: str | os.PathLike[str]) -> str:
    """The JSON path for ``spec`` ("zero1", "zero2", "zero3", "zero3_offload" or a JSON file, checked)."""
    if spec.endswith(".json"):
        config = json.loads(Path(spec).read_text(encoding="utf-8"))
        check_deepspeed_config(config, spec)
        return spec
    stage = int(spec[4])
    config = zero_config(stage, offload=spec.endswith("_offload"))
    out = Path(output_dir) / f"deepspeed_{spec}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return str(out)


def flash_attention_available() -> bool:
    """flash-attn is importable and a CUDA device is present."""
    if importlib.util.find_spec("flash_attn") is None:
        return False
    import torch

    return torch.cuda.is_available()


def liger_available() -> bool:
    return importlib.util.find_spec("liger_kernel") is not None


def resolve_attn_implementation(requested: str) -> str:
    """``auto`` -> flash_attention_2 when available, else sdpa; an explicit FA2 request must be satisfiable."""
    if requested == "auto":
        return "flash_attention_2" if flash_attention_available() else "sdpa"
    if requested == "flash_attention_2" and not flash_attention_available():
        raise RuntimeError(
            "attn_implementation flash_attention_2 needs the flash-attn package and a CUDA GPU "
            "(pip install 'rscovlm-ref[gpu]'); use 'sdpa' (or 'auto') on this machine"
        )
    return requested


def apply_liger(model: Any) -> None:
    """Liger's Qwen2.5-VL kernels (RMSNorm, SwiGLU, RoPE) on ``model``; a clear error when not installed.

    The fused linear cross-entropy is not used: our loss computes logits only
    where labels exist, which already avoids the full logits tensor.
    """
    if not liger_available():
        raise RuntimeError("use_liger needs the liger-kernel package (GPU only): pip install 'rscovlm-ref[gpu]'")
    from liger_kernel.transformers import _apply_liger_kernel_to_instance  # type: ignore[import-not-found]

    _apply_liger_kernel_to_instance(model=model, fused_linear_cross_entropy=False, cross_entropy=False)
