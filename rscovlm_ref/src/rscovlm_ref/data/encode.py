"""Encode rendered messages into one training sample of Qwen2.5-VL, without the model object.

:func:`encode_sample` takes the messages of :func:`rsformat.render.render` (or
chat dicts) and the images they show, already at their model input size
(:func:`materialize_images`), and returns an :class:`EncodedSample`:

* ``input_ids``: the Qwen2.5-VL chat template (the stock text, rendered here
  segment by segment; the tests prove it equals ``apply_chat_template``), each
  ``<|image_pad|>`` expanded to the image's token count, tokenized once, so the
  ids are exactly the processor's;
* ``labels``: every assistant turn's content and its ``<|im_end|>``, nothing
  else (not the ``\\n`` after it, not the ``assistant\\n`` header); both
  assistant turns of a zoom chain are trained;
* ``pixel_values``, ``image_grid_thw`` from the image processor;
* ``mm_token_type_ids`` (1 on image tokens): transformers 5.x needs it for M-RoPE;
* ``position_ids`` ``(4, L)``: row 0 the text positions ``0..L-1``, rows 1-3
  the M-RoPE temporal/height/width positions, computed from the token ids and
  the image grids by :func:`mrope_position_ids`, a port of
  ``Qwen2_5_VLModel.get_rope_index`` that needs no model (RSCoVLM passed the
  live model into its dataset); the tests prove it equal to the model's.

A sample longer than ``max_length`` returns ``None`` (the caller counts it);
nothing is ever truncated (RSCoVLM cut answers and their ``<|im_end|>``). A
sample without a supervised token raises :class:`EncodeError`.

Tool calls: the stock Qwen2.5-VL template has no tool support, so an OpenAI
style zoom call (an assistant ``tool_calls`` entry answered by a ``tool``
message) is written as RSCoVLM trains it: the ``<tool_call>`` text in the
assistant turn, the tool result as a user turn. Both tool formats of
:class:`rsformat.render.RenderStyle` therefore encode to the same ids.

Example:
    >>> from rsformat.records import ContentPart, Message
    >>> msgs = [Message("user", (ContentPart("image", image=0), ContentPart("text", text="Count."))),
    ...         Message.text("assistant", "3")]
    >>> chat, order = chat_messages(msgs)
    >>> chat[0]["content"], order
    ([{'type': 'image'}, {'type': 'text', 'text': 'Count.'}], [0])
    >>> [(text, trained) for text, trained in template_segments(chat)][-3:]
    [('<|im_start|>assistant\\n', False), ('3<|im_end|>', True), ('\\n', False)]
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rsformat.records import Message
from rsformat.render import RenderFrame, parse_crop_ref, smart_resize
from rsformat.tools import format_tool_call

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = [
    "DEFAULT_SYSTEM",
    "GENERATION_PROMPT",
    "IGNORE_INDEX",
    "EncodeError",
    "EncodedPrompt",
    "EncodedSample",
    "chat_messages",
    "encode_prompt",
    "encode_sample",
    "keep_size_pixels",
    "materialize_images",
    "mrope_position_ids",
    "open_image_bytes",
    "prompt_text",
    "template_segments",
    "zoom_crop",
]

IGNORE_INDEX = -100
"""Label of a token that is not trained (PyTorch's cross-entropy ``ignore_index``)."""

DEFAULT_SYSTEM = "You are a helpful assistant."
"""The system prompt the Qwen2.5-VL template inserts when the first message is not a system one."""

_IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
_IMAGE_PAD = "<|image_pad|>"


class EncodeError(ValueError):
    """A sample that cannot be trained on (no supervised token, image count mismatch...)."""


@dataclass
class EncodedSample:
    """One encoded training sample (1-D tensors over its ``L`` tokens).

    ``pixel_values`` is ``(patches, 3 * 2 * 14 * 14)`` and ``image_grid_thw``
    ``(images, 3)``, both ``None`` for a text-only sample; ``position_ids`` is
    ``(4, L)`` (text row, then M-RoPE t, h, w). ``stats`` counts what the data
    engine skipped or fixed to produce this sample (bad records replaced, boxes
    clipped): it travels with the sample out of DataLoader worker processes, so
    the trainer's counts include the workers'.
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    mm_token_type_ids: torch.Tensor
    position_ids: torch.Tensor
    pixel_values: torch.Tensor | None = None
    image_grid_thw: torch.Tensor | None = None
    stats: dict[str, int] | None = None

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def num_supervised(self) -> int:
        """Tokens with a label."""
        return int((self.labels != IGNORE_INDEX).sum())


# --------------------------------------------------------------------------- messages and template


def chat_messages(messages: Sequence[Message | Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[int]]:
    """rsformat messages as chat-template dicts, and the record image index of each image part in order.

    Image parts become ``{"type": "image"}`` (the template and the processor
    take images in order of appearance, so ``order[k]`` is the record image the
    ``k``-th image part shows); tool calls become Qwen ``<tool_call>`` text and
    ``tool`` messages user messages (see the module doc). Dicts pass through
    (their image parts are numbered in order).
    """
    chat: list[dict[str, Any]] = []
    order: list[int] = []
    for m in messages:
        if isinstance(m, Mapping):
            content = m.get("content")
            if isinstance(content, list):
                for part in content:
                    if part.get("type") == "image" or "image" in part or "image_url" in part:
                        order.append(len(order))
            chat.append(dict(m))
            continue
        parts: list[dict[str, Any]] = []
        for p in m.content:
            if p.type == "image":
                if p.image is None:
                    raise EncodeError("an image part without an image index")
                order.append(p.image)
                parts.append({"type": "image"})
            elif p.text:
                parts.append({"type": "text", "text": p.text})
        if m.tool_calls:
            calls = "\n".join(format_tool_call(c.name, json.loads(c.arguments)) for c in m.tool_calls)
            text = "".join(part.get("text", "") for part in parts)
            if any(part["type"] == "image" for part in parts):
                raise EncodeError("an assistant message with tool calls cannot show an image")
            parts = [{"type": "text", "text": f"{text}\n{calls}" if text else calls}]
        role = "user" if m.role == "tool" else m.role
        chat.append({"role": role, "content": parts})
    return chat, order


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    out = []
    for part in content or ():
        if part.get("type") == "image" or "image" in part or "image_url" in part:
            out.append(_IMAGE)
        elif part.get("type") == "video" or "video" in part:
            raise EncodeError("video parts are not supported")
        elif "text" in part:
            out.append(str(part["text"]))
    return "".join(out)


def template_segments(chat: Sequence[Mapping[str, Any]]) -> list[tuple[str, bool]]:
    """The stock Qwen2.5-VL template as ``(text, trained)`` segments; their concatenation is the template's text.

    Trained: each assistant turn's content and ``<|im_end|>``.
    """
    segments: list[tuple[str, bool]] = []
    for i, m in enumerate(chat):
        role = m["role"]
        if i == 0 and role != "system":
            segments.append((f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n", False))
        segments.append((f"<|im_start|>{role}\n", False))
        body = _content_text(m.get("content"))
        if role == "assistant":
            segments.append((body + "<|im_end|>", True))
            segments.append(("\n", False))
        else:
            segments.append((body + "<|im_end|>\n", False))
    return segments


# --------------------------------------------------------------------------- M-RoPE


def mrope_position_ids(
    input_ids: Sequence[int] | np.ndarray | torch.Tensor,
    mm_token_type_ids: Sequence[int] | np.ndarray | torch.Tensor,
    image_grid_thw: Sequence[Sequence[int]] | np.ndarray | torch.Tensor | None = None,
    *,
    spatial_merge_size: int = 2,
) -> np.ndarray:
    """The ``(3, L)`` M-RoPE positions of one sequence: ``Qwen2_5_VLModel.get_rope_index`` without the model.

    Text tokens advance all three rows together; an image's tokens get
    ``(t, h, w)`` grid positions offset by the position where it starts, and the
    text after it resumes at ``start + max(h, w)`` (grid sides in merged tokens).
    Images only (``mm_token_type_ids`` 0 or 1); a run of image tokens must match
    its image's token count.

    Example:
        >>> ids = [10, 11, 5, 5, 5, 5, 12]           # 2 text tokens, a 2x2-token image, 1 text token
        >>> mrope_position_ids(ids, [0, 0, 1, 1, 1, 1, 0], [[1, 4, 4]]).tolist()
        [[0, 1, 2, 2, 2, 2, 4], [0, 1, 2, 2, 3, 3, 4], [0, 1, 2, 3, 2, 3, 4]]
    """
    types = np.asarray(mm_token_type_ids, dtype=np.int64).reshape(-1)
    n = int(np.asarray(input_ids).reshape(-1).shape[0])
    if types.shape[0] != n:
        raise EncodeError(f"mm_token_type_ids has {types.shape[0]} entries for {n} tokens")
    grids = np.zeros((0, 3), dtype=np.int64) if image_grid_thw is None else np.asarray(image_grid_thw, dtype=np.int64)
    grids = grids.reshape(-1, 3)
    if np.any((types != 0) & (types != 1)):
        raise EncodeError("only text (0) and image (1) tokens are supported")
    out = np.zeros((3, n), dtype=np.int64)
    # runs of equal token type
    edges = np.flatnonzero(np.diff(types)) + 1
    starts = np.concatenate([[0], edges]) if n else np.zeros(0, dtype=np.int64)
    ends = np.concatenate([edges, [n]]) if n else np.zeros(0, dtype=np.int64)
    pos = 0
    image = 0
    for s, e in zip(starts.tolist(), ends.tolist()):
        if types[s] == 0:
            out[:, s:e] = np.arange(pos, pos + e - s)
            pos += e - s
            continue
        if image >= len(grids):
            raise EncodeError(f"image token run {image} has no image_grid_thw row ({len(grids)} given)")
        t, h, w = (int(v) for v in grids[image])
        image += 1
        lh, lw = h // spatial_merge_size, w // spatial_merge_size
        if t * lh * lw != e - s:
            raise EncodeError(f"image token run of {e - s} tokens, but its grid {t}x{h}x{w} has {t * lh * lw}")
        tt, hh, ww = np.meshgrid(np.arange(t), np.arange(lh), np.arange(lw), indexing="ij")
        out[0, s:e] = tt.reshape(-1) + pos
        out[1, s:e] = hh.reshape(-1) + pos
        out[2, s:e] = ww.reshape(-1) + pos
        pos += max(h, w) // spatial_merge_size
    if image != len(grids):
        raise EncodeError(f"{len(grids)} image grids for {image} image token runs")
    return out


# --------------------------------------------------------------------------- images


def _load(path: Path) -> Image.Image:
    from PIL import Image, UnidentifiedImageError

    from rsformat.converters._shared import large_images

    try:
        with large_images(), Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise EncodeError(f"cannot read image {str(path)!r}: {err}") from err


def open_image_bytes(data: bytes, name: str = "<bytes>") -> Image.Image:
    """Decode image bytes (an embedded dataset cell) to RGB; :class:`EncodeError` if they are not an image."""
    import io

    from PIL import Image, UnidentifiedImageError

    from rsformat.converters._shared import large_images

    try:
        # remote-sensing scenes are genuinely huge (LRS-VQA up to 27k px a side): no decompression-bomb limit
        with large_images(), Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise EncodeError(f"cannot read image {name!r}: {err}") from err


def materialize_images(
    record_images: Sequence[str],
    image_root: str | os.PathLike[str] | None,
    frame: RenderFrame,
    *,
    opener: Callable[[int], Image.Image] | None = None,
) -> list[Image.Image]:
    """The record's images as the model sees them: RGB, resized to their input size in ``frame``.

    An ordinary entry is loaded from ``image_root`` and resized to
    ``frame.input_size`` (a grid frame has none: the image is smart-resized
    with the frame's pixel budget). A virtual ``crop:x1,y1,x2,y2`` entry (a zoom
    chain's tool result) crops the *original*, full-resolution first image and
    smart-resizes the crop (RSCoVLM's inference cropped the resized image, a
    train/inference mismatch).

    ``opener(i)``, when given, returns record image ``i`` (e.g. decoded from
    the bytes embedded in a dataset) instead of reading ``image_root / record_images[i]``.

    Raises:
        EncodeError: for an unreadable image or a crop outside the image.
    """
    from PIL import Image

    root = Path(image_root) if image_root is not None else Path(".")
    originals: dict[int, Image.Image] = {}

    def original(i: int) -> Image.Image:
        if i not in originals:
            originals[i] = opener(i) if opener is not None else _load(root / record_images[i])
        return originals[i]

    def smart(im: Image.Image) -> Image.Image:
        h, w = smart_resize(im.height, im.width, frame.factor, frame.min_pixels, frame.max_pixels)
        return im if (w, h) == im.size else im.resize((w, h), Image.Resampling.BICUBIC)

    out = []
    for i, entry in enumerate(record_images):
        crop = parse_crop_ref(entry)
        if crop is not None:
            if i == 0:
                raise EncodeError(f"the first image cannot be a crop: {entry!r}")
            try:
                out.append(zoom_crop(original(0), crop, frame))
            except EncodeError as err:
                raise EncodeError(f"{entry!r} of image {record_images[0]!r}: {err}") from None
            continue
        im = original(i)
        size = frame.input_size(im.width, im.height)
        if size is None:
            out.append(smart(im))
        elif size != im.size:
            out.append(im.resize(size, Image.Resampling.BICUBIC))
        else:
            out.append(im)
    return out


def zoom_crop(full: Image.Image, box: Sequence[int], frame: RenderFrame) -> Image.Image:
    """The Zoom-in Chain's tool result: ``box`` (original pixels) cut from the full image, smart-resized.

    One implementation for training (``crop:`` entries) and inference (the
    engine executing a zoom call), so the two cannot drift apart.

    Raises:
        EncodeError: if ``box`` is not a non-empty region inside the image.
    """
    from PIL import Image

    x1, y1, x2, y2 = (int(v) for v in box)
    if not (0 <= x1 < x2 <= full.width and 0 <= y1 < y2 <= full.height):
        raise EncodeError(f"the crop {[x1, y1, x2, y2]} is outside the {full.width}x{full.height} image")
    crop = full.crop((x1, y1, x2, y2))
    h, w = smart_resize(crop.height, crop.width, frame.factor, frame.min_pixels, frame.max_pixels)
    return crop if (w, h) == crop.size else crop.resize((w, h), Image.Resampling.BICUBIC)


def keep_size_pixels(images: Sequence[Image.Image], factor: int = 28) -> tuple[int, int]:
    """``(min_pixels, max_pixels)`` that make a Qwen2.5-VL image processor keep every image at its size.

    The images are already at their render-frame size (rounded to whole merged
    patches); a processor resizing them again by its own pixel budget would
    silently move them off the frame their boxes are written in.

    Example:
        >>> from PIL import Image
        >>> keep_size_pixels([Image.new("RGB", (56, 28)), Image.new("RGB", (112, 112))])
        (1568, 12544)
    """
    areas = [
        max(factor, round(im.height / factor) * factor) * max(factor, round(im.width / factor) * factor)
        for im in images
    ]
    return min(areas), max(areas)


# --------------------------------------------------------------------------- encoding


def _image_inputs(shown: Sequence[Image.Image], image_processor: Any) -> tuple[Any, Any, list[int]]:
    """``pixel_values``, ``image_grid_thw`` and the ``<|image_pad|>`` count of each image, at its own size."""
    if not shown:
        return None, None, []
    merge = int(image_processor.merge_size)
    low, high = keep_size_pixels(shown, int(image_processor.patch_size) * merge)
    try:
        out = image_processor(
            images=list(shown), size={"shortest_edge": low, "longest_edge": high}, return_tensors="pt"
        )
    except (OSError, ValueError) as err:
        raise EncodeError(f"the image processor cannot read an image: {err}") from err
    pixel_values, grid = out["pixel_values"], out["image_grid_thw"]
    return pixel_values, grid, [int(g.prod()) // (merge * merge) for g in grid]


def _expand_image_pads(
    segments: Sequence[tuple[str, bool]], counts: Sequence[int]
) -> tuple[str, list[tuple[int, int]]]:
    """The template text with each ``<|image_pad|>`` repeated its image's token count, and the trained spans."""
    pieces: list[str] = []
    spans: list[tuple[int, int]] = []
    at = 0
    image = 0
    for text, trained in segments:
        chunks = text.split(_IMAGE_PAD)
        if len(chunks) > 1:
            expanded = [chunks[0]]
            for chunk in chunks[1:]:
                if image >= len(counts):
                    raise EncodeError(f"the messages show more images than the {len(counts)} given")
                expanded.append(_IMAGE_PAD * counts[image] + chunk)
                image += 1
            text = "".join(expanded)
        if trained:
            spans.append((at, at + len(text)))
        pieces.append(text)
        at += len(text)
    if image != len(counts):
        raise EncodeError(f"{len(counts)} images given, but the messages show {image}")
    return "".join(pieces), spans


def encode_sample(
    messages: Sequence[Message | Mapping[str, Any]],
    images: Sequence[Image.Image],
    processor: Any,
    *,
    max_length: int | None = 6144,
) -> EncodedSample | None:
    """Encode one sample (see the module doc); ``None`` if it is longer than ``max_length`` tokens.

    Args:
        messages: rsformat messages (their image parts index ``images``) or
            chat dicts (their image parts take ``images`` in order).
        images: PIL images at their model input size (:func:`materialize_images`).
            The image processor keeps that size (only rounding a side that is not
            a multiple of 28), whatever its own pixel budget.
        processor: A Qwen2.5-VL processor (its tokenizer and image processor are used).
        max_length: The token budget; ``None`` for no limit.

    Raises:
        EncodeError: an empty conversation or assistant turn, no supervised token,
            an image part without its image, or an image the processor cannot read.
    """
    import torch

    tokenizer = processor.tokenizer
    image_processor = processor.image_processor
    chat, order = chat_messages(messages)
    if not chat:
        raise EncodeError("an empty conversation")
    for i, m in enumerate(chat):
        if m["role"] == "assistant" and not _content_text(m.get("content")).strip():
            raise EncodeError(f"message {i} is an empty assistant turn (it would teach an empty answer)")
    for k in order:
        if not 0 <= k < len(images):
            raise EncodeError(f"an image part shows image {k}, but {len(images)} images were given")
    shown = [images[k] for k in order]
    pixel_values, grid, counts = _image_inputs(shown, image_processor)
    full, spans = _expand_image_pads(template_segments(chat), counts)

    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = np.asarray(enc["input_ids"], dtype=np.int64)
    if max_length is not None and ids.shape[0] > max_length:
        return None
    offsets = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    trained = np.zeros(ids.shape[0], dtype=bool)
    for s, e in spans:
        trained |= (offsets[:, 0] >= s) & (offsets[:, 1] <= e) & (offsets[:, 1] > offsets[:, 0])
    if not trained.any():
        raise EncodeError("the sample has no supervised token (no assistant turn with content)")
    labels = np.where(trained, ids, IGNORE_INDEX)

    image_token_id = tokenizer.convert_tokens_to_ids(_IMAGE_PAD)
    types = (ids == image_token_id).astype(np.int64)
    merge_size = int(image_processor.merge_size)
    mrope = mrope_position_ids(ids, types, None if grid is None else grid.numpy(), spatial_merge_size=merge_size)
    position_ids = np.concatenate([np.arange(ids.shape[0], dtype=np.int64)[None], mrope], axis=0)

    return EncodedSample(
        input_ids=torch.from_numpy(ids),
        labels=torch.from_numpy(labels),
        mm_token_type_ids=torch.from_numpy(types),
        position_ids=torch.from_numpy(position_ids),
        pixel_values=pixel_values,
        image_grid_thw=grid,
    )


GENERATION_PROMPT = "<|im_start|>assistant\n"
"""What the template appends to a prompt so that the model writes the assistant turn."""


@dataclass
class EncodedPrompt:
    """A prompt for generation: the template text and, tokenized, what ``model.generate`` takes.

    ``text`` keeps one ``<|image_pad|>`` per image (what vLLM expands itself);
    ``input_ids`` and ``mm_token_type_ids`` are ``(L,)`` with the pads expanded.
    """

    text: str
    input_ids: torch.Tensor
    mm_token_type_ids: torch.Tensor
    pixel_values: torch.Tensor | None
    image_grid_thw: torch.Tensor | None
    images: list[Image.Image]

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


def prompt_text(messages: Sequence[Message | Mapping[str, Any]]) -> str:
    """The chat template text of a prompt, ending with the generation prompt (pads not expanded).

    Equal to ``processor.apply_chat_template(chat, add_generation_prompt=True)``
    (the tests prove it).

    Example:
        >>> print(prompt_text([Message.text("user", "Hi")]))
        <|im_start|>system
        You are a helpful assistant.<|im_end|>
        <|im_start|>user
        Hi<|im_end|>
        <|im_start|>assistant
        <BLANKLINE>
    """
    chat, _ = chat_messages(messages)
    if not chat:
        raise EncodeError("an empty prompt")
    if chat[-1]["role"] == "assistant":
        raise EncodeError("a prompt must not end with an assistant turn")
    return "".join(text for text, _ in template_segments(chat)) + GENERATION_PROMPT


def encode_prompt(
    messages: Sequence[Message | Mapping[str, Any]], images: Sequence[Image.Image], processor: Any
) -> EncodedPrompt:
    """Encode a prompt for generation with the training template and image handling of :func:`encode_sample`.

    Args:
        messages: The prompt (no final assistant turn); image parts index ``images``.
        images: PIL images at their model input size (:func:`materialize_images`).
        processor: A Qwen2.5-VL processor.

    Raises:
        EncodeError: an empty prompt, one ending with an assistant turn, or an
            image part without its image.
    """
    import torch

    text = prompt_text(messages)
    _, order = chat_messages(messages)
    for k in order:
        if not 0 <= k < len(images):
            raise EncodeError(f"an image part shows image {k}, but {len(images)} images were given")
    shown = [images[k] for k in order]
    pixel_values, grid, counts = _image_inputs(shown, processor.image_processor)
    full, _ = _expand_image_pads([(text, False)], counts)
    ids = processor.tokenizer(full, add_special_tokens=False)["input_ids"]
    input_ids = torch.tensor(ids, dtype=torch.long)
    image_token_id = processor.tokenizer.convert_tokens_to_ids(_IMAGE_PAD)
    return EncodedPrompt(
        text=text,
        input_ids=input_ids,
        mm_token_type_ids=(input_ids == image_token_id).long(),
        pixel_values=pixel_values,
        image_grid_thw=grid,
        images=shown,
    )
