"""Generation backends: prompts in, answer texts out, greedy, in the training template.

A backend has one method, ``generate(requests) -> list[str]``: each
:class:`GenerationRequest` is a prompt (rsformat messages whose image parts
index ``images``) and the images at their model input size. Both backends
build the prompt with :func:`rscovlm_ref.data.encode.prompt_text`, the
template the model was trained on, and keep every image at the size it is
given (the boxes the model writes are in that frame).

* :class:`HFBackend`: ``transformers`` ``generate`` on batches with left
  padding (runs anywhere, the tests use it on a CPU);
* :class:`VLLMBackend`: vLLM's offline ``LLM.generate`` (a GPU; an optional
  extra, imported only when built, with a clear error when it is missing).

The Zoom-in Chain (:mod:`rscovlm_ref.infer.engine`) drives either one round by
round, so zooming works on vLLM too (RSCoVLM's zoom loop was HF-only).

Example:
    >>> class Echo:  # any object with this method is a backend
    ...     def generate(self, requests):
    ...         return ["Red" for _ in requests]
    >>> Echo().generate([GenerationRequest([], [])])
    ['Red']
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rscovlm_ref.data.encode import chat_messages, encode_prompt, keep_size_pixels, prompt_text
from rsformat.records import Message

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["Backend", "GeneratedText", "GenerationRequest", "HFBackend", "VLLMBackend", "stop_token_ids"]


class GeneratedText(str):
    """An answer (a ``str``) that also says whether it stopped at ``max_new_tokens`` (``truncated``).

    A dense detection answer cut at the token limit loses its last objects; the
    engine and the evaluation count such answers so the limit can be raised.
    """

    truncated: bool

    def __new__(cls, text: str, truncated: bool = False) -> GeneratedText:
        obj = super().__new__(cls, text)
        obj.truncated = bool(truncated)
        return obj


@dataclass
class GenerationRequest:
    """One prompt: messages (no final assistant turn) and the images their image parts index."""

    messages: Sequence[Message | Mapping[str, Any]]
    images: Sequence[Image.Image] = field(default_factory=list)


class Backend(Protocol):
    """Greedy generation for a batch of prompts (see the module doc)."""

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """One answer per request; a :class:`GeneratedText` when the backend knows whether it was truncated."""
        ...


def stop_token_ids(tokenizer: Any) -> list[int]:
    """``<|im_end|>`` (the end of an assistant turn) and ``<|endoftext|>``, those the tokenizer has."""
    ids = []
    for token in ("<|im_end|>", "<|endoftext|>"):
        i = tokenizer.convert_tokens_to_ids(token)
        if isinstance(i, int) and i >= 0 and i != tokenizer.unk_token_id:
            ids.append(i)
    return ids


class HFBackend:
    """``model.generate`` on left-padded batches (greedy).

    Args:
        model: A ``Qwen2_5_VLForConditionalGeneration`` (any device, eval mode is set).
        processor: Its processor (tokenizer and image processor).
        max_new_tokens: Tokens per answer (RSCoVLM allowed up to 16,384; dense
            detection answers of a 1008² image stay below 4,096).
        batch_size: Prompts per ``generate`` call.

    Batched answers equal one-by-one answers (left padding, masked; the tests
    check it on the tiny model).
    """

    def __init__(self, model: Any, processor: Any, *, max_new_tokens: int = 1024, batch_size: int = 8) -> None:
        if max_new_tokens <= 0 or batch_size <= 0:
            raise ValueError(f"Expected positive max_new_tokens and batch_size, got {max_new_tokens}, {batch_size}")
        self.model = model.eval()
        self.processor = processor
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        tok = processor.tokenizer
        self.pad_token_id = int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
        self.stop_ids = stop_token_ids(tok)

    @classmethod
    def from_pretrained(
        cls,
        path: str,
        *,
        device: str | None = None,
        dtype: str = "auto",
        attn_implementation: str = "auto",
        min_pixels: int = 224 * 224,
        max_pixels: int = 1008 * 1008,
        **kwargs: Any,
    ) -> HFBackend:
        """Load a checkpoint (a trained ``final/`` folder, or a Hub id already in the cache).

        A LoRA adapter folder is loaded onto its base model and merged.

        ``device`` defaults to ``cuda:$LOCAL_RANK`` when a GPU is present, else the CPU.
        """
        import torch
        from transformers import Qwen2_5_VLForConditionalGeneration

        from rscovlm_ref.testing import ImageOnlyQwen2_5_VLProcessor
        from rscovlm_ref.train.deepspeed import resolve_attn_implementation

        # under torchrun each process takes its own GPU
        device = device or (f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu")
        if dtype == "auto":
            torch_dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        else:
            torch_dtype = getattr(torch, dtype)
        load = {"dtype": torch_dtype, "attn_implementation": resolve_attn_implementation(attn_implementation)}
        if (Path(path) / "adapter_config.json").is_file():  # a LoRA run's final/: base + adapter, merged
            from rscovlm_ref.train.lora import load_adapter_merged

            model = load_adapter_merged(path, **load).to(device)
        else:
            model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path, **load).to(device)
        processor = ImageOnlyQwen2_5_VLProcessor.from_pretrained(path)
        processor.image_processor.size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
        return cls(model, processor, **kwargs)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        out: list[str] = []
        for start in range(0, len(requests), self.batch_size):
            out.extend(self._generate_batch(requests[start : start + self.batch_size]))
        return out

    def _generate_batch(self, requests: Sequence[GenerationRequest]) -> list[str]:
        import torch

        prompts = [encode_prompt(r.messages, r.images, self.processor) for r in requests]
        n, length = len(prompts), max(len(p) for p in prompts)
        input_ids = torch.full((n, length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((n, length), dtype=torch.long)
        types = torch.zeros((n, length), dtype=torch.long)
        for i, p in enumerate(prompts):
            input_ids[i, length - len(p) :] = p.input_ids
            attention_mask[i, length - len(p) :] = 1
            types[i, length - len(p) :] = p.mm_token_type_ids
        device = next(self.model.parameters()).device
        inputs: dict[str, Any] = {
            "input_ids": input_ids.to(device),
            "attention_mask": attention_mask.to(device),
            "mm_token_type_ids": types.to(device),
        }
        pixels = [p.pixel_values for p in prompts if p.pixel_values is not None]
        if pixels:
            dtype = next(self.model.parameters()).dtype
            inputs["pixel_values"] = torch.cat(pixels).to(device=device, dtype=dtype)
            inputs["image_grid_thw"] = torch.cat([p.image_grid_thw for p in prompts if p.image_grid_thw is not None])
            inputs["image_grid_thw"] = inputs["image_grid_thw"].to(device)
        with torch.inference_mode():
            generated = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                eos_token_id=self.stop_ids or None,
                pad_token_id=self.pad_token_id,
                use_cache=True,
            )
        new = generated[:, length:].cpu()
        texts = self.processor.tokenizer.batch_decode(new, skip_special_tokens=True)
        stops = torch.tensor(self.stop_ids or [-1])
        # a row without a stop token among its new tokens ran into max_new_tokens
        ended = torch.isin(new, stops).any(dim=1).tolist()
        return [GeneratedText(t, truncated=not e and new.shape[1] >= self.max_new_tokens) for t, e in zip(texts, ended)]


class VLLMBackend:
    """vLLM offline generation (greedy), one engine per process.

    Args:
        model: A checkpoint folder or Hub id.
        max_new_tokens: Tokens per answer.
        max_images: Images per prompt (2 for a one-round Zoom-in Chain); bounds
            vLLM's memory profiling (without it, it reserves the worst case).
        max_model_len: Context length of the engine.
        **engine_kwargs: Passed to ``vllm.LLM`` (``tensor_parallel_size``,
            ``gpu_memory_utilization``, ``dtype``...).

    Each request's images keep their size: the request carries the pixel
    bounds that make vLLM's Qwen2.5-VL processor leave them as they are.

    Raises:
        RuntimeError: if vllm is not installed.
    """

    def __init__(
        self,
        model: str,
        *,
        max_new_tokens: int = 1024,
        max_images: int = 2,
        max_model_len: int = 8192,
        **engine_kwargs: Any,
    ) -> None:
        if importlib.util.find_spec("vllm") is None:
            raise RuntimeError(
                "the vLLM backend needs the vllm package, which runs on a CUDA GPU in its own environment "
                "(it pins its own torch and transformers): pip install vllm; or use --backend hf"
            )
        import vllm

        self.llm = vllm.LLM(
            model=model, max_model_len=max_model_len, limit_mm_per_prompt={"image": max_images}, **engine_kwargs
        )
        self.params = vllm.SamplingParams(temperature=0.0, max_tokens=max_new_tokens, skip_special_tokens=True)

    @staticmethod
    def request_input(request: GenerationRequest) -> dict[str, Any]:
        """The vLLM prompt dict of a request: template text, images in order of appearance, pixel bounds."""
        _, order = chat_messages(request.messages)
        shown = [request.images[k] for k in order]
        entry: dict[str, Any] = {"prompt": prompt_text(request.messages)}
        if shown:
            low, high = keep_size_pixels(shown)
            entry["multi_modal_data"] = {"image": shown}
            entry["mm_processor_kwargs"] = {"min_pixels": low, "max_pixels": high}
        return entry

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        outputs = self.llm.generate([self.request_input(r) for r in requests], self.params, use_tqdm=False)
        return [
            GeneratedText(o.outputs[0].text, truncated=getattr(o.outputs[0], "finish_reason", None) == "length")
            for o in outputs
        ]
