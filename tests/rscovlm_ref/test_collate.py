"""Collation: padding-free packing is exact and leak-free on the tiny Qwen2.5-VL (eager and sdpa)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import torch
from PIL import Image
from rscovlm_fixtures import Rendered

from rscovlm_ref.data.collate import Collator, collate_packed, collate_padded
from rscovlm_ref.data.encode import IGNORE_INDEX, EncodedSample, encode_sample
from rsformat.records import Message

ATOL = 1e-5
IMPLS = ["eager", "sdpa"]


@pytest.fixture(scope="module")
def samples(zoom_chain: Rendered, detection: Rendered, processor: Any) -> list[EncodedSample]:
    """A detection sample, a text-only one and a zoom chain (two images): three kinds in one row."""
    text = [Message.text("user", "Name a harbour."), Message.text("assistant", "Victoria Harbour.")]
    out = [
        encode_sample(detection.messages, detection.images, processor),
        encode_sample(text, [], processor),
        encode_sample(zoom_chain.messages, zoom_chain.images, processor),
    ]
    assert all(s is not None for s in out)
    return out  # type: ignore[return-value]


def _single(s: EncodedSample) -> dict[str, Any]:
    return collate_packed([s])


@torch.no_grad()
def _hidden(model: Any, batch: dict[str, Any]) -> torch.Tensor:
    """The final hidden states, ``(B, L, d)``; the logits are ``model.lm_head`` of them."""
    return model.model(**{k: v for k, v in batch.items() if k != "labels"}).last_hidden_state


def _positions(s: EncodedSample) -> torch.Tensor:
    """Where the logits matter: every position that predicts a supervised token, and both ends."""
    predicting = torch.nonzero(s.labels[1:] != IGNORE_INDEX).flatten()
    return torch.unique(torch.cat([predicting, torch.tensor([0, len(s) - 1])]))


@torch.no_grad()
def assert_same_outputs(model: Any, got: torch.Tensor, want: torch.Tensor, positions: torch.Tensor) -> None:
    """Hidden states equal everywhere, and full-vocabulary logits equal where they matter (atol 1e-5).

    (Logits at every position of a 151k vocabulary would cost seconds per test; they are a
    linear map of the hidden states compared here.)
    """
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    torch.testing.assert_close(model.lm_head(got[positions]), model.lm_head(want[positions]), atol=ATOL, rtol=0)


def _slices(samples: list[EncodedSample]) -> list[slice]:
    out, at = [], 0
    for s in samples:
        out.append(slice(at, at + len(s)))
        at += len(s)
    return out


def test_packed_row_layout(samples: list[EncodedSample]) -> None:
    b = collate_packed(samples)
    n = sum(len(s) for s in samples)
    assert b["input_ids"].shape == (1, n) and b["position_ids"].shape == (4, 1, n)
    assert b["attention_mask"] is None and b["use_cache"] is False
    for s, sl in zip(samples, _slices(samples)):
        assert torch.equal(b["position_ids"][0, 0, sl], torch.arange(len(s)))
        assert torch.equal(b["position_ids"][1:, 0, sl], s.position_ids[1:])
        assert b["labels"][0, sl.start] == IGNORE_INDEX
    assert b["image_grid_thw"].shape[0] == 3 and b["pixel_values"].shape[0] == sum(
        s.pixel_values.shape[0] for s in samples if s.pixel_values is not None
    )
    with pytest.raises(ValueError, match="more than max_length"):
        collate_packed(samples, max_length=n - 1)


@pytest.mark.parametrize("impl", IMPLS)
def test_packed_logits_equal_per_sample_logits(impl: str, models: dict, samples: list[EncodedSample]) -> None:
    model = models[impl]
    packed = _hidden(model, collate_packed(samples))[0]
    for s, sl in zip(samples, _slices(samples)):
        assert_same_outputs(model, packed[sl], _hidden(model, _single(s))[0], _positions(s))


@pytest.mark.parametrize("impl", IMPLS)
def test_padded_logits_equal_per_sample_logits(impl: str, models: dict, samples: list[EncodedSample]) -> None:
    model = models[impl]
    tok_pad = 151643
    padded = _hidden(model, collate_padded(samples, pad_token_id=tok_pad))
    for i, s in enumerate(samples):
        assert_same_outputs(model, padded[i, : len(s)], _hidden(model, _single(s))[0], _positions(s))


def _perturbed(s: EncodedSample) -> EncodedSample:
    """The same sample with other text tokens (not the template's special tokens) and other pixels."""
    ids = s.input_ids.clone()
    text = (s.mm_token_type_ids == 0) & (ids < 151643)
    ids[text] = (ids[text] * 7 + 13) % 151643
    pixels = None if s.pixel_values is None else s.pixel_values.flip(0) + 0.5
    return replace(s, input_ids=ids, pixel_values=pixels)


@pytest.mark.parametrize("impl", IMPLS)
def test_perturbing_a_neighbour_changes_nothing(impl: str, models: dict, samples: list[EncodedSample]) -> None:
    # the zoom chain comes last: it sees both neighbours before it, if anything leaks
    model = models[impl]
    base = _hidden(model, collate_packed(samples))[0]
    changed = _hidden(model, collate_packed([_perturbed(samples[0]), _perturbed(samples[1]), samples[2]]))[0]
    sl = _slices(samples)
    assert (changed[sl[0]] - base[sl[0]]).abs().max() > 1e-3  # the perturbation is real
    assert_same_outputs(model, changed[sl[2]], base[sl[2]], _positions(samples[2]))


@pytest.mark.parametrize("impl", IMPLS)
def test_negative_control_without_the_text_position_row_samples_leak(
    impl: str, models: dict, samples: list[EncodedSample]
) -> None:
    model = models[impl]
    batch = collate_packed(samples)
    three_rows = {**batch, "position_ids": batch["position_ids"][1:]}
    sl = _slices(samples)[2]
    pos = _positions(samples[2])
    leaky = model.lm_head(_hidden(model, three_rows)[0, sl][pos])
    alone = model.lm_head(_hidden(model, _single(samples[2]))[0][pos])
    assert (leaky - alone).abs().max() > 1e-3
    # and the leak depends on the neighbours
    other = collate_packed([_perturbed(samples[0]), _perturbed(samples[1]), samples[2]])
    leaky_other = model.lm_head(_hidden(model, {**other, "position_ids": other["position_ids"][1:]})[0, sl][pos])
    assert (leaky_other - leaky).abs().max() > 1e-3


def test_packed_loss_equals_the_padded_loss(models: dict, samples: list[EncodedSample]) -> None:
    model = models["sdpa"]

    @torch.no_grad()
    def loss(batch: dict[str, Any]) -> torch.Tensor:
        # logits only where the next token is supervised (the trainer's selective-logits path)
        labels = batch["labels"]
        keep = labels[:, 1:] != IGNORE_INDEX
        logits = model.lm_head(_hidden(model, batch)[:, :-1][keep])
        return torch.nn.functional.cross_entropy(logits, labels[:, 1:][keep], reduction="sum")

    packed = loss(collate_packed(samples))
    padded = loss(collate_padded(samples, pad_token_id=151643))
    torch.testing.assert_close(packed, padded, atol=1e-3, rtol=1e-6)
    assert packed > 0


def test_collator_drops_and_counts_none(samples: list[EncodedSample]) -> None:
    c = Collator("packed")
    b = c([samples[1], None, samples[0], None])
    assert c.dropped == 2 and b["input_ids"].shape[1] == len(samples[1]) + len(samples[0])
    p = Collator("padded", pad_token_id=151643)([samples[1], samples[0]])
    assert p["attention_mask"].sum() == len(samples[0]) + len(samples[1])
    assert "pixel_values" not in Collator("packed")([samples[1]])
    with pytest.raises(ValueError, match="mode"):
        Collator("sorted")  # type: ignore[arg-type]


def test_image_only_sample_order_is_kept(processor: Any) -> None:
    # two images in one user turn, shown in the opposite order of the record's list; sizes outside
    # the processor's pixel budget are kept (only rounded to multiples of 28)
    from rsformat.records import ContentPart

    red, blue = Image.new("RGB", (112, 112), (255, 0, 0)), Image.new("RGB", (228, 110), (0, 0, 255))
    msgs = [
        Message("user", (ContentPart("image", image=1), ContentPart("image", image=0), ContentPart("text", text="?"))),
        Message.text("assistant", "blue then red"),
    ]
    s = encode_sample(msgs, [red, blue], processor)
    assert s is not None
    assert s.image_grid_thw.tolist() == [[1, 8, 16], [1, 8, 8]]
    assert s.num_supervised == len(processor.tokenizer("blue then red<|im_end|>").input_ids)
