"""guard on nn.MultiheadAttention: the batch_first trap, key_padding_mask (batch, source), attn_mask
(target, source) or (batch*heads, target, source), unbatched calls, kdim/vdim; checked against torch."""

import itertools

import pytest
import torch
from torch import nn

from rnnshapes import ShapeError, guard


def _inputs(bf: bool, batch=3, target=5, source=7, e=8, k=8, v=8):
    def lay(n, steps, f):
        return torch.randn(n, steps, f) if bf else torch.randn(steps, n, f)

    return lay(batch, target, e), lay(batch, source, k), lay(batch, source, v)


@pytest.mark.parametrize(
    "bf, masks", itertools.product([True, False], ["none", "padding", "2d", "3d", "both"])
)
def test_every_call_torch_runs_passes_unchanged(bf, masks):
    torch.manual_seed(0)
    mha, plain = nn.MultiheadAttention(8, 2, batch_first=bf).eval(), None
    plain = nn.MultiheadAttention(8, 2, batch_first=bf).eval()
    plain.load_state_dict(mha.state_dict())
    q, k, v = _inputs(bf)
    kw = {
        "none": {},
        "padding": {"key_padding_mask": torch.tensor([[False] * 7, [False] * 5 + [True] * 2, [False] * 7])},
        "2d": {"attn_mask": torch.triu(torch.ones(5, 7, dtype=torch.bool), 1)},
        "3d": {"attn_mask": torch.zeros(6, 5, 7)},
        "both": {
            "key_padding_mask": torch.zeros(3, 7, dtype=torch.bool),
            "attn_mask": torch.zeros(5, 7, dtype=torch.bool),
        },
    }[masks]
    with guard(mha):
        out, weights = mha(q, k, v, **kw)
    want, want_w = plain(q, k, v, **kw)
    assert torch.equal(out, want) and torch.equal(weights, want_w)
    assert weights.shape == (3, 5, 7)  # (batch, target, source), whatever batch_first says


def test_unbatched_and_kdim_vdim_calls_pass():
    mha = nn.MultiheadAttention(8, 2, kdim=4, vdim=6, batch_first=True)
    with guard(mha):
        assert mha(torch.randn(3, 5, 8), torch.randn(3, 7, 4), torch.randn(3, 7, 6))[0].shape == (3, 5, 8)
        out, w = mha(
            torch.randn(5, 8),
            torch.randn(7, 4),
            torch.randn(7, 6),
            key_padding_mask=torch.zeros(7, dtype=torch.bool),
        )
        assert out.shape == (5, 8) and w.shape == (5, 7)
        with pytest.raises(ShapeError, match=r"(?s)argument 'key'.*axis 2 \(fixed\) should be 4, got 6"):
            mha(torch.randn(3, 5, 8), torch.randn(3, 7, 6), torch.randn(3, 7, 6))


def test_the_batch_first_trap_gets_its_hint():
    mha = nn.MultiheadAttention(8, 2)  # batch_first=False: (target, batch, embed)
    q, k, v = _inputs(bf=True)  # (batch, target, embed): the other layout
    with pytest.raises(RuntimeError):
        nn.MultiheadAttention(8, 2)(q, k, v)  # torch refuses it, deep inside
    with (
        guard(mha),
        pytest.raises(
            ShapeError,
            match=r"(?s)argument 'key'.*\[mha-layout\] this nn.MultiheadAttention has batch_first=False.*\.transpose\(0, 1\)",
        ),
    ):
        mha(q, k, v)


@pytest.mark.parametrize(
    "key, value",
    [
        ((7, 2, 8), (7, 2, 8)),  # key and value batch 2 against the query's 3
        ((7, 3, 8), (6, 3, 8)),  # value 6 steps against the key's 7
    ],
)
def test_a_true_batch_or_source_mismatch_gets_no_layout_advice(key, value):
    """Transposing or flipping batch_first would not make these calls run (and would break right ones)."""
    mha = nn.MultiheadAttention(8, 2)  # (target, batch, embed)
    args = torch.randn(5, 3, 8), torch.randn(*key), torch.randn(*value)
    with pytest.raises((RuntimeError, AssertionError)):
        nn.MultiheadAttention(8, 2)(*args)
    with guard(mha), pytest.raises(ShapeError) as info:
        mha(*args)
    assert "should be" in str(info.value) and "[mha-layout]" not in str(info.value)


@pytest.mark.parametrize(
    "kw",
    [
        {"key_padding_mask": torch.zeros(7, 3, dtype=torch.bool)},  # (source, batch)
        {"attn_mask": torch.zeros(5, 5)},  # (target, target)
        {"attn_mask": torch.zeros(3, 5, 7)},  # (batch, target, source): not repeated per head
    ],
)
def test_masks_of_the_wrong_shape_are_shape_errors_with_the_shapes_that_work(kw):
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    q, k, v = _inputs(bf=True)
    with pytest.raises((RuntimeError, AssertionError)):
        nn.MultiheadAttention(8, 2, batch_first=True)(q, k, v, **kw)
    with (
        guard(mha),
        pytest.raises(ShapeError, match=r"\[attention-mask\].*repeat_interleave\(heads, dim=0\)"),
    ):
        mha(q, k, v, **kw)


@pytest.mark.parametrize("dtype", [torch.int64, torch.uint8, torch.int32])
@pytest.mark.parametrize("name", ["key_padding_mask", "attn_mask"])
def test_an_integer_mask_is_a_dtype_error_whose_hint_keeps_its_meaning(name, dtype):
    """torch takes bool or floating masks; .float() of a 0/1 mask would add 1 to the scores and block nothing."""
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    q, k, v = _inputs(bf=True)
    mask = torch.zeros((3, 7) if name == "key_padding_mask" else (5, 7), dtype=dtype)
    with pytest.raises((RuntimeError, AssertionError)):
        nn.MultiheadAttention(8, 2, batch_first=True)(q, k, v, **{name: mask})
    with (
        guard(mha),
        pytest.raises(
            ShapeError,
            match=rf"(?s)'{name}' has the wrong dtype.*expected: torch.bool, or a floating dtype.*"
            rf"\[attention-mask\].*\({name} == 0\) if 1 marks the positions to keep.*{name}\.bool\(\) if 1 marks padding",
        ),
    ):
        mha(q, k, v, **{name: mask})


def test_query_key_value_take_the_weights_dtype_except_under_autocast():
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    q, k, v = (t.double() for t in _inputs(bf=True))
    with pytest.raises(RuntimeError):
        nn.MultiheadAttention(8, 2, batch_first=True)(q, k, v)
    with guard(mha):
        with pytest.raises(
            ShapeError, match=r"(?s)'query' has a different dtype from the weights.*model\.in_proj_weight"
        ):
            mha(q, k, v)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            b = tuple(t.bfloat16() for t in _inputs(bf=True))
            mha(*b)  # autocast casts per op: torch runs it, so guard does
