"""Shared by the text converters: LLaVA conversations to messages, JSON reading, image lookup.

One implementation of the LLaVA ``conversations`` -> :class:`~rsformat.records.Message`
conversion serves GeoChat, VHM, TEOChatlas, VRSBench and LLaVA-OneVision.
The rules follow RSCoVLM's ``get_messages_from_llava_style_conversations``:
``from`` ``human``/``gpt`` become ``user``/``assistant``, the ``\\n`` after an
``<image>`` or ``<video>`` token is dropped, and each token becomes image
parts (``<video>`` stands for every frame of the record).

Boxes in message text (:func:`tokenize_boxes`): a converter gives the
pattern of its source's box text and a reader of one match; every match in
every text part (user and assistant turns alike) becomes the placeholder
``<box:K>`` (:func:`rsformat.render.box_token`), and :func:`box_metadata`
stores the boxes in the record's ``metadata`` in the layout of
:class:`rsformat.render.TextBoxes` (canonical quads in original pixels, kinds,
image of each box, image sizes) plus ``box_messages``, ``box_angles`` and
``box_source_format``. :func:`rsformat.render.render` writes the boxes back in
the model's frame; the source's text is recoverable from the metadata
(:func:`rsformat.converters.geochat.restore_source_text`). A source text that
already holds ``<box:N>`` is refused (``box_token_in_source``): it would be
read as a placeholder.

Record-level problems raise :class:`RecordError`; the converters catch it and
count the record as skipped under ``reason``.

Example:
    >>> msgs = llava_messages([{"from": "human", "value": "<image>\\nWhat is it?"},
    ...                        {"from": "gpt", "value": "A ship."}], num_images=1)
    >>> [(m.role, [(p.type, p.text, p.image) for p in m.content]) for m in msgs]
    [('user', [('image', None, 0), ('text', 'What is it?', None)]), ('assistant', [('text', 'A ship.', None)])]
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from rsformat.converters.base import ConversionReport, UnsafePathError, safe_join
from rsformat.records import ContentPart, Message
from rsformat.render import BOX_TOKEN_PATTERN, box_token

__all__ = [
    "ROLE_MAP",
    "RecordError",
    "SourceBox",
    "box_metadata",
    "find_file",
    "image_size",
    "iter_json_items",
    "iter_jsonl",
    "llava_messages",
    "note",
    "read_json",
    "relative",
    "resolve_image",
    "tokenize_boxes",
]

Role = Literal["system", "user", "assistant", "tool"]

ROLE_MAP: dict[str, Role] = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}
"""LLaVA ``from`` values (and the OpenAI names some re-exports use) -> roles."""

_TOKENS = re.compile(r"(<image>|<video>)")


class RecordError(ValueError):
    """A source record that cannot be converted; ``reason`` is the report's skip reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def note(report: ConversionReport | None, where: str, name: str, detail: str = "") -> None:
    """Count a fix ``name`` in ``report`` and keep a message naming ``where`` (while room is left).

    Example:
        >>> r = ConversionReport("demo")
        >>> note(r, "a.json[3]", "turns_without_from", "turn 2")
        >>> r.counters, r.messages
        ({'turns_without_from': 1}, ['a.json[3]: turns_without_from: turn 2'])
    """
    if report is None:
        return
    report.count(name)
    if len(report.messages) < report.max_messages:
        report.messages.append(f"{where}: {name}" + (f": {detail}" if detail else ""))


def llava_messages(
    conversations: Any,
    num_images: int,
    *,
    video: bool = False,
    clean: Callable[[str, Role], str] | None = None,
    report: ConversionReport | None = None,
    where: str = "",
    count_inserted: bool = True,
) -> tuple[Message, ...]:
    """Convert LLaVA ``[{"from", "value"}, ...]`` turns into messages over ``num_images`` images.

    ``<image>`` tokens take the images in order; with ``video=True`` a
    ``<video>`` token stands for all ``num_images`` frames. When the record has
    images but no token (a LLaVA-OneVision quirk), the image parts are put at
    the start of the first user message (counted ``image_token_inserted`` when
    ``count_inserted``). Turns without ``from`` (a TEOChatlas quirk) are
    dropped and counted ``turns_without_from``. ``clean(text, role)`` rewrites
    each text part.

    Args:
        conversations: The record's ``conversations`` value.
        num_images: Images (or frames) of the record.
        video: Whether ``<video>`` tokens are expected.
        clean: Text rewrite applied to every text part.
        report: Where fixes are counted.
        where: The file and record, for messages.
        count_inserted: Count the insertion of missing image tokens.

    Returns:
        The messages.

    Raises:
        RecordError: ``bad_conversations``, ``unknown_role``,
            ``image_token_mismatch``, ``empty_turn`` or ``no_assistant_turn``.

    Example:
        >>> msgs = llava_messages([{"from": "human", "value": "<video> changed?"}, {"from": "gpt", "value": "No"}],
        ...                       2, video=True)
        >>> [p.image for p in msgs[0].content]
        [0, 1, None]
    """
    if not isinstance(conversations, list) or not conversations:
        raise RecordError("bad_conversations", "expected a non-empty list of turns")
    messages: list[Message] = []
    next_image = 0
    for t, turn in enumerate(conversations):
        if not isinstance(turn, dict):
            raise RecordError("bad_conversations", f"turn {t} is not an object")
        if "from" not in turn:
            note(report, where, "turns_without_from", f"turn {t} dropped")
            continue
        role = ROLE_MAP.get(str(turn["from"]).strip().lower())
        if role is None:
            raise RecordError("unknown_role", f"turn {t}: from={turn['from']!r}")
        value = turn.get("value")
        if not isinstance(value, str):
            raise RecordError("bad_conversations", f"turn {t}: value is not a string")
        # RSCoVLM's rule: the newline after a vision token belongs to the token
        value = value.replace("<image>\n", "<image>").replace("<video>\n", "<video>").strip()
        parts: list[ContentPart] = []
        for piece in _TOKENS.split(value):
            if piece == "<image>":
                if next_image >= num_images:
                    raise RecordError("image_token_mismatch", f"turn {t}: more <image> tokens than {num_images} images")
                parts.append(ContentPart("image", image=next_image))
                next_image += 1
            elif piece == "<video>" and video:
                if next_image != 0:
                    raise RecordError("image_token_mismatch", f"turn {t}: <video> after other images")
                parts.extend(ContentPart("image", image=i) for i in range(num_images))
                next_image = num_images
            else:
                # stripped before cleaning, so the rules count real repairs, not token margins
                text = piece.strip()
                text = clean(text, role).strip() if clean is not None and text else text
                if text:
                    parts.append(ContentPart("text", text=text))
        if not parts:
            raise RecordError("empty_turn", f"turn {t} has no text and no image")
        messages.append(Message(role, tuple(parts)))
    if next_image == 0 and num_images:
        first_user = next((i for i, m in enumerate(messages) if m.role == "user"), None)
        if first_user is None:
            raise RecordError("image_token_mismatch", "images but no user turn to hold them")
        m = messages[first_user]
        images = tuple(ContentPart("image", image=i) for i in range(num_images))
        messages[first_user] = Message(m.role, images + m.content)
        if count_inserted:
            note(report, where, "image_token_inserted")
    elif next_image != num_images:
        raise RecordError("image_token_mismatch", f"{next_image} image tokens for {num_images} images")
    if not any(m.role == "assistant" for m in messages):
        raise RecordError("no_assistant_turn")
    return tuple(messages)


# --------------------------------------------------------------------------- boxes in text


@dataclass(frozen=True)
class SourceBox:
    """One box read from a source's text.

    Attributes:
        quad: Canonical quad in original pixels of image ``image``.
        kind: How the source wrote it: ``"hbb"``, ``"quad"`` or ``"obb"``.
        image: Index of the record image the box lies on.
        angle: The source's own angle (GeoChat's ``|<θ>``), kept because a
            quad alone does not tell ``θ`` from ``θ ± 90`` with swapped sides.
    """

    quad: tuple[float, ...]
    kind: str
    image: int = 0
    angle: float | None = None


def tokenize_boxes(
    messages: Sequence[Message], pattern: re.Pattern[str], read: Callable[[re.Match[str]], SourceBox]
) -> tuple[tuple[Message, ...], list[SourceBox], list[int]]:
    """Replace every ``pattern`` match of the text parts by ``<box:K>``; ``read`` turns a match into its box.

    Boxes are numbered in reading order (message, part, position).

    Returns:
        The new messages, the boxes, and the message index of each box.

    Raises:
        RecordError: ``box_token_in_source`` if a text already holds a
            placeholder; whatever ``read`` raises.

    Example:
        >>> msgs = (Message.text("user", "Where is it?"), Message.text("assistant", "[1, 2] and [3, 4]"))
        >>> read = lambda m: SourceBox((0.0,) * 8, "hbb")
        >>> out, boxes, owners = tokenize_boxes(msgs, re.compile(r"\\[\\d+, \\d+\\]"), read)
        >>> out[1].text_content, owners
        ('<box:0> and <box:1>', [1, 1])
    """
    boxes: list[SourceBox] = []
    owners: list[int] = []
    out = []
    for i, m in enumerate(messages):
        parts = []
        for p in m.content:
            if p.type != "text" or not p.text:
                parts.append(p)
                continue
            if BOX_TOKEN_PATTERN.search(p.text):
                raise RecordError("box_token_in_source", f"message {i} already holds a <box:N> placeholder")

            def swap(match: re.Match[str], owner: int = i) -> str:
                boxes.append(read(match))
                owners.append(owner)
                return box_token(len(boxes) - 1)

            parts.append(replace(p, text=pattern.sub(swap, p.text)))
        out.append(replace(m, content=tuple(parts)))
    return tuple(out), boxes, owners


def box_metadata(
    boxes: Sequence[SourceBox],
    owners: Sequence[int],
    image_sizes: Sequence[tuple[int, int] | None],
    source_format: str,
) -> dict[str, Any]:
    """The ``metadata`` keys of the boxes (:class:`rsformat.render.TextBoxes` layout); ``{}`` without boxes.

    Example:
        >>> box_metadata([SourceBox((0.0, 0.0, 2.0, 0.0, 2.0, 1.0, 0.0, 1.0), "hbb")], [1], [(4, 4)], "teochat")
        ... # doctest: +NORMALIZE_WHITESPACE
        {'boxes': [[0.0, 0.0, 2.0, 0.0, 2.0, 1.0, 0.0, 1.0]], 'box_kinds': ['hbb'], 'box_images': [0],
         'box_messages': [1], 'box_angles': [None], 'image_sizes': [[4, 4]], 'box_source_format': 'teochat'}
    """
    if not boxes:
        return {}
    return {
        "boxes": [list(b.quad) for b in boxes],
        "box_kinds": [b.kind for b in boxes],
        "box_images": [b.image for b in boxes],
        "box_messages": list(owners),
        "box_angles": [b.angle for b in boxes],
        "image_sizes": [None if s is None else [int(s[0]), int(s[1])] for s in image_sizes],
        "box_source_format": source_format,
    }


# --------------------------------------------------------------------------- JSON reading


def read_json(path: Path, report: ConversionReport) -> Any:
    """The decoded JSON of ``path``, or ``None`` (counted ``bad_json``) when it cannot be read.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "x.json"
        >>> _ = p.write_text("{broken")
        >>> r = ConversionReport("demo")
        >>> read_json(p, r) is None, r.skipped
        (True, {'bad_json': 1})
    """
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        report.skip(path.name, "bad_json", str(e)[:200])
        return None


def iter_json_items(
    path: Path, report: ConversionReport, key: str | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, item)`` for each object of the JSON array in ``path`` (or of ``data[key]``).

    Each item counts in ``records_in``; a non-object item is skipped
    (``not_an_object``). JSON arrays are read whole: the json module cannot
    stream them.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "a.json"
        >>> _ = p.write_text('[{"id": 1}, 3]')
        >>> r = ConversionReport("demo")
        >>> [w for w, _ in iter_json_items(p, r)], r.skipped
        (['a.json[0]'], {'not_an_object': 1})
    """
    data = read_json(path, report)
    if data is None:
        return
    if key is not None:
        data = data.get(key) if isinstance(data, dict) else None
    if not isinstance(data, list):
        report.skip(path.name, "bad_json", f"expected a JSON array{f' under {key!r}' if key else ''}")
        return
    for i, item in enumerate(data):
        report.records_in += 1
        where = f"{path.name}[{i}]"
        if not isinstance(item, dict):
            report.skip(where, "not_an_object", type(item).__name__)
            continue
        yield where, item


def iter_jsonl(path: Path, report: ConversionReport) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, record)`` for each JSON object line of ``path``, streamed.

    Blank lines are ignored; each other line counts in ``records_in``; a line
    that is not JSON (``bad_json``) or not an object (``not_an_object``) is
    skipped and named by its line number.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "a.jsonl"
        >>> _ = p.write_text('{"a": 1}\\n\\n{oops\\n[1]\\n')
        >>> r = ConversionReport("demo")
        >>> [w for w, _ in iter_jsonl(p, r)], r.skipped
        (['a.jsonl:1'], {'bad_json': 1, 'not_an_object': 1})
    """
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        report.skip(path.name, "unreadable_file", str(e))
        return
    with f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            report.records_in += 1
            where = f"{path.name}:{n}"
            try:
                item = json.loads(line)
            except ValueError as e:
                report.skip(where, "bad_json", str(e)[:200])
                continue
            if not isinstance(item, dict):
                report.skip(where, "not_an_object", type(item).__name__)
                continue
            yield where, item


def find_file(
    root: Path, candidates: Sequence[str], option: str | None = None, *, only_match: str | None = None
) -> Path | None:
    """The first of ``option`` (if given) or ``candidates`` that exists under ``root``.

    ``only_match``: without ``option`` and when no candidate exists, the file
    matching this glob in ``root`` if it is the only one (several: ``None``,
    never an arbitrary pick).

    Raises:
        UnsafePathError: if ``option`` escapes ``root``.
    """
    if option is not None:
        path = safe_join(root, option)
        return path if path.exists() else None
    for c in candidates:
        path = root / c
        if path.exists():
            return path
    if only_match is not None:
        matches = sorted(root.glob(only_match))
        return matches[0] if len(matches) == 1 else None
    return None


# --------------------------------------------------------------------------- images

_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def resolve_image(
    root: Path,
    relative_path: str,
    *,
    report: ConversionReport | None = None,
    where: str = "",
    check: bool = True,
) -> Path:
    """The image file ``root / relative_path``, refusing paths that escape ``root``.

    When the file is missing, the same stem with another image extension is
    tried (GeoChat and refGeo name ``.jpg`` files that are ``.png`` on disk);
    a hit is counted ``image_extension_fixed``.

    Raises:
        RecordError: ``unsafe_path`` or, with ``check``, ``missing_image``.

    Example:
        >>> resolve_image(Path("/data"), "../x.png")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        ...
        rsformat.converters._llava.RecordError: unsafe_path: '../x.png' escapes the dataset root /data
    """
    if not isinstance(relative_path, str) or not relative_path.strip():
        raise RecordError("missing_image", "no image path")
    try:
        path = safe_join(root, relative_path.strip())
    except UnsafePathError as e:
        raise RecordError("unsafe_path", str(e)) from None
    if not check or path.is_file():
        return path
    for ext in _EXTENSIONS:
        other = path.with_suffix(ext)
        if other != path and other.is_file():
            note(report, where, "image_extension_fixed", f"{path.name} -> {other.name}")
            return other
    raise RecordError("missing_image", relative_path)


def relative(root: Path, path: Path) -> str:
    """``path`` relative to ``root`` in POSIX form (the records' image paths).

    Example:
        >>> relative(Path("/data"), Path("/data/images/a.png"))
        'images/a.png'
    """
    return Path(os.path.relpath(path, Path(root).resolve())).as_posix()


def image_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` read from the image header only, or ``None`` if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None
    return (int(w), int(h)) if w > 0 and h > 0 else None
