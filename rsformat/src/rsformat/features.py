"""Arrow layouts (``datasets.Features``) of the four record families.

Boxes are float64 lists; objects, messages and content parts are lists of
structs (``datasets.List``), so a row reads back as the dict that
``Record.to_row`` wrote. The image column is either embedded bytes
(``datasets.Image()``) or a relative path string, chosen when writing.

Example:
    >>> sorted(features_for("grounding", embed_images=False))[:4]
    ['category', 'expression', 'hbb', 'height']
"""

from __future__ import annotations

import datasets
from datasets import Features, List, Value

__all__ = ["features_for"]

_BASE = {
    "id": Value("string"),
    "source": Value("string"),
    "split": Value("string"),
    "width": Value("int32"),
    "height": Value("int32"),
}
_FLOATS = List(Value("float64"))

_OBJECT = {
    "category": Value("string"),
    "quad": _FLOATS,
    "hbb": _FLOATS,
    "obb": _FLOATS,
    "difficult": Value("int8"),
}
_PART = {"type": Value("string"), "text": Value("string"), "image": Value("int32")}
_TOOL_CALL = {
    "id": Value("string"),
    "type": Value("string"),
    "function": {"name": Value("string"), "arguments": Value("string")},
}
_MESSAGE = {
    "role": Value("string"),
    "content": List(_PART),
    "tool_calls": List(_TOOL_CALL),
    "tool_call_id": Value("string"),
}


def _image(embed: bool) -> datasets.Image | Value:
    return datasets.Image() if embed else Value("string")


def features_for(family: str, *, embed_images: bool = True) -> Features:
    """The ``datasets.Features`` of a record family.

    Args:
        family: ``"detection"``, ``"grounding"``, ``"zoom"`` or ``"conversation"``.
        embed_images: image bytes in the dataset (``datasets.Image()``), or
            paths relative to the dataset root (for UHR images).
    """
    if family == "detection":
        return Features({**_BASE, "image": _image(embed_images), "objects": List(_OBJECT)})
    if family == "grounding":
        return Features(
            {
                **_BASE,
                "image": _image(embed_images),
                "expression": Value("string"),
                "hbb": _FLOATS,
                "quad": _FLOATS,
                "mask": Value("string"),
                "category": Value("string"),
            }
        )
    if family == "zoom":
        return Features(
            {
                **_BASE,
                "image": _image(embed_images),
                "question": Value("string"),
                "answer": Value("string"),
                "rois": List(_FLOATS),
                "choices": List(Value("string")),
                "category": Value("string"),
            }
        )
    if family == "conversation":
        return Features(
            {
                "id": Value("string"),
                "source": Value("string"),
                "split": Value("string"),
                "images": List(_image(embed_images)),
                "messages": List(_MESSAGE),
                "task": Value("string"),
                "tools": Value("string"),
                "metadata": Value("string"),
            }
        )
    raise ValueError(
        f"Expected a record family among ['conversation', 'detection', 'grounding', 'zoom'], but got {family!r}"
    )
