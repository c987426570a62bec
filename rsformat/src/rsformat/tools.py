"""The tools a model may call, defined once: schema, validation, Qwen text form.

There is one tool, ``image_zoom_in`` (the Zoom-in Chain of RSCoVLM): the model
names a region of interest as ``{"bbox": [x1, y1, x2, y2]}``, integers in the
coordinate frame of the model's input image (the frame its boxes are rendered
in, see :mod:`rsformat.render`), and receives a crop of the *original* image.
The same schema is what an inference engine executes, so training data and
inference cannot drift apart.

Two encodings of a call exist:

* OpenAI style, stored in datasets: an assistant :class:`~rsformat.records.ToolCall`
  whose ``arguments`` is a JSON string, answered by a ``tool`` message.
* Qwen text style, what a Qwen2.5 chat template shows the model:
  ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``.
  :func:`format_tool_call` writes it and :func:`parse_tool_calls` reads it back
  with a regular expression (RSCoVLM used ``lstrip``/``rstrip`` with character
  sets, which only works by accident).

Example:
    >>> text = format_tool_call("image_zoom_in", {"bbox": [10, 20, 110, 220]})
    >>> print(text)
    <tool_call>
    {"name": "image_zoom_in", "arguments": {"bbox": [10, 20, 110, 220]}}
    </tool_call>
    >>> [(c.name, c.arguments) for c in parse_tool_calls("Let me look." + text)]
    [('image_zoom_in', {'bbox': [10, 20, 110, 220]})]
    >>> validate_tool_call(ToolCall("call_0", "image_zoom_in", '{"bbox": [10, 20, 5, 220]}'))
    ['image_zoom_in: expected x1 < x2 and y1 < y2 in bbox, but got [10, 20, 5, 220]']
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rsformat.records import ToolCall

__all__ = [
    "IMAGE_ZOOM_IN",
    "TOOLS",
    "ZOOM_TOOL_NAME",
    "ParsedToolCall",
    "format_tool_call",
    "parse_tool_calls",
    "tool_system_prompt",
    "tools_json",
    "validate_arguments",
    "validate_tool_call",
]

ZOOM_TOOL_NAME = "image_zoom_in"

IMAGE_ZOOM_IN: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": ZOOM_TOOL_NAME,
        "description": (
            "Zoom in to the region of interest on the given image. Input the bounding box of the region of "
            "interest and return the zoomed-in image to help to focus and view more clearly."
        ),
        # a real JSON Schema (RSCoVLM's {"name": "bbox", "type": "list[int]"} is not one)
        "parameters": {
            "type": "object",
            "properties": {
                "bbox": {
                    "type": "array",
                    "description": (
                        "The region of interest as [x1, y1, x2, y2]: (x1, y1) is its top-left and (x2, y2) its "
                        "bottom-right corner, in the coordinates of the input image as you see it."
                    ),
                    "items": {"type": "integer", "minimum": 0},
                    "minItems": 4,
                    "maxItems": 4,
                }
            },
            "required": ["bbox"],
            "additionalProperties": False,
        },
    },
}
"""The ``image_zoom_in`` tool as an OpenAI function schema."""

TOOLS: dict[str, dict[str, Any]] = {ZOOM_TOOL_NAME: IMAGE_ZOOM_IN}
"""Tool name -> schema, every tool a record may call."""


def tools_json(names: Sequence[str] = (ZOOM_TOOL_NAME,)) -> str:
    """The JSON list of tool schemas stored in ``ConversationRecord.tools``.

    Example:
        >>> json.loads(tools_json())[0]["function"]["name"]
        'image_zoom_in'
    """
    return json.dumps([TOOLS[n] for n in names], ensure_ascii=False)


def tool_system_prompt(tools: Sequence[Mapping[str, Any]] = (IMAGE_ZOOM_IN,)) -> str:
    """The Qwen2.5 tool-calling system prompt listing ``tools`` (RSCoVLM's zoom system prompt).

    Example:
        >>> tool_system_prompt().splitlines()[0]
        '# Tools'
    """
    listed = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
    return (
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n"
        f"<tools>\n{listed}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    )


# --------------------------------------------------------------------------- validation

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "number": (int, float),
    "integer": (int, float),
}


def _check(value: Any, schema: Mapping[str, Any], where: str, out: list[str]) -> None:
    """The subset of JSON Schema our tools use: type, properties, required, items, bounds."""
    kind = schema.get("type")
    if kind is not None:
        ok = isinstance(value, _JSON_TYPES[kind]) and not (kind in ("number", "integer") and isinstance(value, bool))
        # JSON Schema: an integer is any number with a zero fractional part (2.0 is one)
        if ok and kind == "integer" and isinstance(value, float):
            ok = value.is_integer()
        if not ok:
            out.append(f"expected {where} to be {kind}, but got {json.dumps(value)}")
            return
    if "minimum" in schema and value < schema["minimum"]:
        out.append(f"expected {where} >= {schema['minimum']}, but got {value}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                out.append(f"missing required {where}.{key}")
        for key, item in value.items():
            if key in props:
                _check(item, props[key], f"{where}.{key}", out)
            elif schema.get("additionalProperties", True) is False:
                out.append(f"unexpected {where}.{key}")
    if isinstance(value, list):
        lo, hi = schema.get("minItems"), schema.get("maxItems")
        if (lo is not None and len(value) < lo) or (hi is not None and len(value) > hi):
            want = lo if lo == hi else f"{lo}..{hi}"
            out.append(f"expected {want} items in {where}, but got {len(value)}")
        if "items" in schema:
            for i, item in enumerate(value):
                _check(item, schema["items"], f"{where}[{i}]", out)


def validate_arguments(name: str, arguments: Any) -> list[str]:
    """Problems with decoded ``arguments`` of a call to tool ``name`` (empty when valid).

    Beyond the schema, a zoom box must have ``x1 < x2`` and ``y1 < y2``.

    Example:
        >>> validate_arguments("image_zoom_in", {"bbox": [0, 0, 10]})
        ['image_zoom_in: expected 4 items in arguments.bbox, but got 3']
        >>> validate_arguments("crop", {})
        ["unknown tool 'crop' (known: ['image_zoom_in'])"]
    """
    tool = TOOLS.get(name)
    if tool is None:
        return [f"unknown tool {name!r} (known: {sorted(TOOLS)})"]
    problems: list[str] = []
    _check(arguments, tool["function"]["parameters"], "arguments", problems)
    if not problems and name == ZOOM_TOOL_NAME:
        x1, y1, x2, y2 = arguments["bbox"]
        if not (x1 < x2 and y1 < y2):
            problems.append(f"expected x1 < x2 and y1 < y2 in bbox, but got {json.dumps(arguments['bbox'])}")
    return [f"{name}: {p}" for p in problems]


def validate_tool_call(call: ToolCall) -> list[str]:
    """Problems with an OpenAI-style call: its ``arguments`` must be a JSON object matching the schema.

    Example:
        >>> validate_tool_call(ToolCall("call_0", "image_zoom_in", "{bbox: [1, 2, 3, 4]}"))[0][:40]
        'image_zoom_in: arguments are not valid J'
    """
    try:
        arguments = json.loads(call.arguments)
    except (TypeError, ValueError) as err:
        return [f"{call.name}: arguments are not valid JSON ({err})"]
    return validate_arguments(call.name, arguments)


# --------------------------------------------------------------------------- Qwen text form


def format_tool_call(name: str, arguments: Mapping[str, Any]) -> str:
    """A call in the Qwen text form ``<tool_call>\\n{json}\\n</tool_call>`` (always ``json.dumps``)."""
    body = json.dumps({"name": name, "arguments": dict(arguments)}, ensure_ascii=False)
    return f"<tool_call>\n{body}\n</tool_call>"


@dataclass(frozen=True)
class ParsedToolCall:
    """One ``<tool_call>`` block read from model text.

    Attributes:
        name: The function name (``""`` if unreadable).
        arguments: The decoded arguments (``None`` if unreadable).
        error: Why the block could not be read (``None`` when it could).
        span: ``(start, end)`` of the block in the text.
    """

    name: str
    arguments: Any
    error: str | None
    span: tuple[int, int]

    def problems(self) -> list[str]:
        """Parse error or schema problems of the call (empty when valid)."""
        if self.error is not None:
            return [self.error]
        return validate_arguments(self.name, self.arguments)


# A tempered token: the body may not contain another opening or closing tag, so a
# block that never closes fails at the next tag and the scan stays linear.
_TOOL_CALL = re.compile(r"<tool_call>((?:(?!</?tool_call>).)*)</tool_call>", re.DOTALL)


def parse_tool_calls(text: str) -> list[ParsedToolCall]:
    """Every complete ``<tool_call>...</tool_call>`` block of ``text``, in order.

    The body must be a JSON object ``{"name": str, "arguments": object}``;
    ``arguments`` may also be a JSON-encoded string (OpenAI habit). A block
    that cannot be read is returned with ``error`` set rather than dropped.

    Example:
        >>> parse_tool_calls("<tool_call>\\nnot json\\n</tool_call>")[0].error[:22]
        'tool call is not JSON:'
    """
    out: list[ParsedToolCall] = []
    for match in _TOOL_CALL.finditer(text):
        span = match.span()
        body = match.group(1).strip()
        try:
            obj = json.loads(body)
        except ValueError as err:
            out.append(ParsedToolCall("", None, f"tool call is not JSON: {err}", span))
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or "arguments" not in obj:
            out.append(ParsedToolCall("", None, 'expected {"name": ..., "arguments": ...} in the tool call', span))
            continue
        arguments = obj["arguments"]
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError as err:
                out.append(ParsedToolCall(obj["name"], None, f"arguments are not valid JSON ({err})", span))
                continue
        out.append(ParsedToolCall(obj["name"], arguments, None, span))
    return out
