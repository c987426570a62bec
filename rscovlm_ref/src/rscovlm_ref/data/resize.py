"""Random resizing (paper Sec. III-C3) that moves the boxes with the image, for every task.

RSCoVLM drew a uniform *area ratio* but applied it to the side lengths, so about
half of its draws hit the maximum size, and for conversation data the resize was
silently dropped. Here the input **area** is drawn log-uniformly between the
bounds, the side scale is its square root, Qwen2.5-VL's ``smart_resize`` rounds to
multiples of 28, and the result is a render frame: the same frame places the
image and renders the boxes, so they cannot disagree.

Example:
    >>> import numpy as np
    >>> frame = random_resize_frame(512, 512, np.random.default_rng(0))
    >>> w, h = frame.size(512, 512)
    >>> w % 28 == 0 and h % 28 == 0 and 224 * 224 <= w * h <= 1008 * 1008
    True
"""

from __future__ import annotations

import math

import numpy as np

from rsformat.render import RenderFrame, smart_resize

__all__ = ["draw_input_size", "random_resize_frame"]


def draw_input_size(
    width: int,
    height: int,
    rng: np.random.Generator,
    *,
    min_pixels: int = 224 * 224,
    max_pixels: int = 1008 * 1008,
    factor: int = 28,
) -> tuple[int, int]:
    """A random model input size ``(width, height)`` for an image, keeping its aspect ratio.

    The area is log-uniform in ``[min_pixels, max_pixels]``; ``smart_resize`` then
    rounds each side to a multiple of ``factor`` inside the same bounds.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"Expected a positive image size, but got {width}x{height}")
    if not 0 < min_pixels <= max_pixels:
        raise ValueError(f"Expected 0 < min_pixels <= max_pixels, but got {min_pixels} and {max_pixels}")
    area = math.exp(rng.uniform(math.log(min_pixels), math.log(max_pixels)))
    scale = math.sqrt(area / (width * height))
    h, w = smart_resize(
        max(1, round(height * scale)),
        max(1, round(width * scale)),
        factor,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
    )
    return w, h


def random_resize_frame(
    width: int,
    height: int,
    rng: np.random.Generator,
    *,
    probability: float = 1.0,
    min_pixels: int = 224 * 224,
    max_pixels: int = 1008 * 1008,
    factor: int = 28,
) -> RenderFrame:
    """The render frame of one training sample: random with ``probability``, else smart-resized."""
    if rng.random() < probability:
        w, h = draw_input_size(width, height, rng, min_pixels=min_pixels, max_pixels=max_pixels, factor=factor)
        return RenderFrame.pixels(w, h)
    return RenderFrame.smart(min_pixels=min_pixels, max_pixels=max_pixels, factor=factor)
