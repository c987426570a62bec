"""The inference engine: prompts on original images in, answers out, with the Zoom-in Chain executed.

An :class:`InferenceItem` is a rendered prompt (:func:`rsformat.render.render_prompt`),
the record's *original* images and the :class:`~rsformat.render.RenderFrame`
they are shown in. :meth:`InferenceEngine.run` shows each image at its frame
size, asks the backend, and for items allowed to zoom executes the model's
``image_zoom_in`` calls round by round:

1. read the first ``<tool_call>`` of the answer (:func:`rsformat.tools.parse_tool_calls`)
   and check it against the tool schema;
2. map its box from the frame of image 0 to original pixels
   (:func:`rsformat.render.crop_box`, the mapping training used);
3. cut that region from the **original** image and smart-resize it
   (:func:`rscovlm_ref.data.encode.zoom_crop`, the function that made the
   training crops);
4. append the model's call and the crop with the training text
   (``Here's the zoomed-in image...``) and ask again.

Each item keeps its own images, so a batch never crops another item's image,
and every round batches all items still zooming (any backend, vLLM included).
The chain stops after ``max_zoom_rounds`` calls (training has one). What
RSCoVLM did differently: it cropped the already downsampled image, had no round
limit, and mixed up images in batches (see the project notes).

Outcomes (:attr:`InferenceAnswer.status`): ``"ok"``; ``"zoom_invalid"``: a call
that could not be executed (not JSON, another tool, a box outside the frame);
the full image is returned as the zoomed-in image, as RSCoVLM did, and the
chain goes on; ``"zoom_limit"``: still calling after the last round; the answer
is the text around the call.

Example:
    >>> from PIL import Image
    >>> from rsformat.records import ZoomRecord
    >>> from rsformat.render import RenderFrame, render_prompt
    >>> class Scripted:  # zooms once, then answers
    ...     def generate(self, requests):
    ...         return ["Red" if len(r.images) == 2 else
    ...                 '<tool_call>\\n{"name": "image_zoom_in", "arguments": {"bbox": [0, 0, 56, 56]}}\\n</tool_call>'
    ...                 for r in requests]
    >>> rec = ZoomRecord("z", "lrs", "test", "big.png", 4000, 3000, question="What color is the roof?")
    >>> frame = RenderFrame.smart()
    >>> item = InferenceItem("z", render_prompt(rec, frame), [Image.new("RGB", (4000, 3000))], frame, zoom=True)
    >>> answer = InferenceEngine(Scripted()).run([item])[0]
    >>> answer.text, answer.zooms, answer.status
    ('Red', [(0, 0, 196, 194)], 'ok')
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rscovlm_ref.data.encode import EncodeError, zoom_crop
from rscovlm_ref.infer.backends import Backend, GenerationRequest
from rsformat.records import ContentPart, Message
from rsformat.render import ZOOM_RESULT, RenderFrame, crop_box
from rsformat.tools import ZOOM_TOOL_NAME, parse_tool_calls

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["InferenceAnswer", "InferenceEngine", "InferenceItem", "show_image"]


def show_image(image: Image.Image, frame: RenderFrame) -> Image.Image:
    """``image`` as the model sees it in ``frame`` (a grid frame: smart-resized by its pixel budget)."""
    from PIL import Image as PILImage

    size = frame.input_size(image.width, image.height)
    if size is None:
        size = RenderFrame.smart(frame.min_pixels, frame.max_pixels, frame.factor).size(image.width, image.height)
    return image if size == image.size else image.resize(size, PILImage.Resampling.BICUBIC)


@dataclass
class InferenceItem:
    """One question: the prompt, the original images its image parts index, the frame they are shown in.

    ``zoom``: execute ``image_zoom_in`` calls (a Zoom-in Chain prompt).
    """

    id: str
    messages: Sequence[Message]
    images: Sequence[Image.Image]
    frame: RenderFrame
    zoom: bool = False


@dataclass
class InferenceAnswer:
    """The engine's answer to an :class:`InferenceItem`.

    Attributes:
        id: The item's id.
        text: The final answer (what is scored).
        turns: Every model output, in order (one per round).
        zooms: The regions cut, in original pixels of image 0, one per executed call.
        input_size: ``(width, height)`` image 0 was shown at (the frame of its boxes), or ``None``.
        status: ``"ok"``, ``"zoom_invalid"`` or ``"zoom_limit"`` (see the module doc).
        problems: Why calls could not be executed.
        truncated: Some output stopped at the backend's ``max_new_tokens``.
    """

    id: str
    text: str
    turns: list[str] = field(default_factory=list)
    zooms: list[tuple[int, int, int, int]] = field(default_factory=list)
    input_size: tuple[int, int] | None = None
    status: str = "ok"
    problems: list[str] = field(default_factory=list)
    truncated: bool = False


class _Chain:
    def __init__(self, item: InferenceItem) -> None:
        self.item = item
        self.messages = list(item.messages)
        self.shown = [show_image(im, item.frame) for im in item.images]
        self.answer = InferenceAnswer(item.id, "", input_size=self.shown[0].size if self.shown else None)
        self.done = False

    def request(self) -> GenerationRequest:
        return GenerationRequest(self.messages, self.shown)

    def zoom(self, output: str, call_end: int, box: tuple[int, int, int, int]) -> None:
        crop = zoom_crop(self.item.images[0], box, self.item.frame)
        self.answer.zooms.append(box)
        self.messages.append(Message.text("assistant", output[:call_end].strip()))
        self.messages.append(
            Message("user", (ContentPart("image", image=len(self.shown)), ContentPart("text", text=ZOOM_RESULT)))
        )
        self.shown.append(crop)


def _call_box(arguments: dict[str, Any], frame_size: tuple[int, int]) -> tuple[list[int] | None, str | None]:
    """The call's box clipped to the input frame, or ``None`` and why (a box starting outside it)."""
    bbox = arguments["bbox"]  # validated by the schema: four non-negative integers, x1 < x2, y1 < y2
    fw, fh = frame_size
    x1, y1, x2, y2 = bbox
    if x1 >= fw or y1 >= fh:
        return None, f"bbox {bbox} starts outside the {fw}x{fh} input image"
    return [x1, y1, min(x2, fw), min(y2, fh)], None


class InferenceEngine:
    """Answers :class:`InferenceItem` s with a :class:`~rscovlm_ref.infer.backends.Backend` (see the module doc).

    Args:
        backend: Greedy generation (``HFBackend``, ``VLLMBackend``, or any object with ``generate``).
        max_zoom_rounds: Zoom calls executed per item (training teaches one).

    :attr:`stats` counts items, zoom calls executed, invalid calls, items
    stopped at the round limit and outputs cut at the token limit over the engine's life.
    """

    def __init__(self, backend: Backend, *, max_zoom_rounds: int = 1) -> None:
        if max_zoom_rounds < 0:
            raise ValueError(f"Expected max_zoom_rounds >= 0, but got {max_zoom_rounds}")
        self.backend = backend
        self.max_zoom_rounds = max_zoom_rounds
        self.stats: Counter[str] = Counter()

    def run(self, items: Sequence[InferenceItem]) -> list[InferenceAnswer]:
        """Answer every item (in order); the backend sees all items still active, round by round.

        Raises:
            EncodeError: an item whose zoom chain has no image to crop.
        """
        chains = [_Chain(item) for item in items]
        for chain in chains:
            if chain.item.zoom and not chain.shown:
                raise EncodeError(f"item {chain.item.id!r}: a zoom chain needs an image")
        self.stats["items"] += len(chains)
        for round_ in range(self.max_zoom_rounds + 1):
            active = [c for c in chains if not c.done]
            if not active:
                break
            outputs = self.backend.generate([c.request() for c in active])
            if len(outputs) != len(active):
                raise RuntimeError(f"the backend answered {len(outputs)} of {len(active)} prompts")
            for chain, output in zip(active, outputs):
                self._step(chain, output, last=round_ == self.max_zoom_rounds)
        return [c.answer for c in chains]

    def _step(self, chain: _Chain, output: str, *, last: bool) -> None:
        answer = chain.answer
        if getattr(output, "truncated", False):
            answer.truncated = True
            self.stats["truncated"] += 1
        output = str(output)
        answer.turns.append(output)
        calls = parse_tool_calls(output) if chain.item.zoom else []
        if not calls:
            answer.text, chain.done = output.strip(), True
            return
        call = calls[0]
        if last:
            start, end = call.span
            answer.text = (output[:start] + output[end:]).strip()
            answer.status, chain.done = "zoom_limit", True
            self.stats["zoom_limit"] += 1
            return
        problems = call.problems()
        if not problems and call.name != ZOOM_TOOL_NAME:
            problems = [f"unknown tool {call.name!r}"]
        frame_size = chain.shown[0].size
        box = None
        if not problems:
            box, problem = _call_box(call.arguments, frame_size)
            problems = [problem] if problem else []
        full = chain.item.images[0]
        if box is None:
            # RSCoVLM's fallback: the whole image comes back as the "zoomed-in" image
            answer.status = "zoom_invalid"
            answer.problems.extend(problems)
            self.stats["zoom_invalid"] += 1
            region = (0, 0, full.width, full.height)
        else:
            region = crop_box(box, frame_size, full.size)
            self.stats["zooms"] += 1
        chain.zoom(output, call.span[1], region)
