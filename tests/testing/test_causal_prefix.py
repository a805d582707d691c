"""Issue 17: ``check_causal`` computes chunks of rows on the model rerun on the input's first steps.

The reference is the whole sequence's matrix (``_prefix.RERUN`` off: every row's VJP on the whole sequence, itself
checked against one backward pass per row in test_influence.py). With reruns on, the check must return that
matrix (the same zero pairs, values to float rounding) and the same verdict, and leave the model, and the random
number generators, as the whole-sequence check leaves them; where a rerun is not the same model (it reads the
sequence's length, keeps state, fails on fewer steps) it must say so and use the whole sequence.
"""

import abc
import enum
import functools
import logging
import os
import re
import types
import warnings
import weakref
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from beartype import beartype
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rnn_zoo import H_IN, VOCAB, features, tokens
from torch import Tensor, nn

from rnnshapes.testing import CheckFailed, _prefix, _twin, check_causal

RERUN = "chunks on the model rerun"


def _whole(monkeypatch, *args, **kwargs):
    """The check with every row on the whole sequence."""
    with monkeypatch.context() as m:
        m.setattr(_prefix, "RERUN", False)
        return check_causal(*args, **kwargs)


def _verdict(*args, **kwargs):
    try:
        return "passed", check_causal(*args, **kwargs)
    except CheckFailed as e:
        return str(e), None


def _same(found, want):
    assert torch.equal(found == 0, want == 0), found.how
    torch.testing.assert_close(found.as_subclass(Tensor), want.as_subclass(Tensor), rtol=1e-5, atol=0)


WIDTH, CLASSES = 32, 10
"""Wider than the zoo's (5 hidden, 4 classes): torch's CPU kernels compute these models' outputs and gradients on
a prefix of the steps bit for bit as on the whole sequence, which a rerun must show (the zoo's 5 -> 4 head rounds
some rows differently on fewer rows)."""


class Tagger(nn.Module):
    """Batch-first features -> per-step logits, plus h_n."""

    def __init__(self, bidirectional: bool = False) -> None:
        super().__init__()
        self.rnn = nn.GRU(H_IN, WIDTH, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(WIDTH * (2 if bidirectional else 1), CLASSES)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out, h_n = self.rnn(x)  # (batch, time, D * WIDTH)
        return self.head(out), h_n


class TimeFirstTagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(H_IN, WIDTH)
        self.head = nn.Linear(WIDTH, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.rnn(x)[0])  # (time, batch, CLASSES)


class LSTMTagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(H_IN, WIDTH, num_layers=2, batch_first=True)
        self.head = nn.Linear(WIDTH, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.rnn(x)[0])


class CellLoopTagger(nn.Module):
    """An LSTMCell stepped in a Python loop."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(H_IN, WIDTH)
        self.head = nn.Linear(WIDTH, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        state = None
        steps = []
        for t in range(x.shape[1]):
            state = self.cell(x[:, t], state)
            steps.append(state[0])
        return self.head(torch.stack(steps, dim=1))  # (batch, time, CLASSES)


class EmbedTagger(nn.Module):
    """Token indices (batch time) -> per-step logits, through a time-first GRU."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, H_IN)
        self.rnn = nn.GRU(H_IN, WIDTH)
        self.head = nn.Linear(WIDTH, CLASSES)

    def forward(self, tokens: Tensor) -> Tensor:
        out, _ = self.rnn(self.embed(tokens).transpose(0, 1))  # (time, batch, WIDTH)
        return self.head(out.transpose(0, 1))  # (batch, time, CLASSES)


class CausalConv(nn.Module):
    """Dilated convolutions padded on the left only (a TCN): causal without a recurrence."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, 6, 3, dilation=2)
        self.conv2 = nn.Conv1d(6, 4, 2)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.conv(nn.functional.pad(x.transpose(1, 2), (4, 0))))  # (batch, channels, time)
        return self.conv2(nn.functional.pad(h, (1, 0))).transpose(1, 2)  # (batch, time, 4)


CORRECT = {
    "gru": (Tagger, lambda: features(batch=3, time=10), {}),
    "gru, time first": (
        TimeFirstTagger,
        lambda: features(batch=3, time=10).transpose(0, 1),
        {"time_axis": 0},
    ),
    "lstm, 2 layers": (LSTMTagger, lambda: features(batch=3, time=10), {}),
    "lstm cell in a loop": (CellLoopTagger, lambda: features(batch=3, time=10), {}),
    "token indices": (EmbedTagger, lambda: tokens(batch=3, time=10), {}),
    "causal convolutions": (CausalConv, lambda: features(batch=3, time=10), {}),
}


@pytest.mark.parametrize("name", list(CORRECT))
def test_a_causal_model_gets_the_whole_sequence_matrix_from_reruns(name, monkeypatch):
    make, inputs, kwargs = CORRECT[name]
    model, x = make(), inputs()
    found = check_causal(model, x, chunk_size=4, **kwargs)
    if name == "causal convolutions":  # its outputs are the same bits on fewer steps, its input gradients not
        assert f"0 of 3 {RERUN}" in found.how and "2 on the whole sequence" in found.how, found.how
    else:
        assert f"2 of 3 {RERUN}" in found.how, found.how
    passes = "batched: 10 vector-Jacobian products in 3 backward passes"  # 2 groups beside the last 2 rows
    assert found.how.startswith(passes), found.how
    _same(found, _whole(monkeypatch, model, x, chunk_size=4, **kwargs))
    looped = check_causal(model, x, chunk_size=1, **kwargs)  # one backward pass per row, as before issue 17
    assert looped.how.startswith("looped"), looped.how
    _same(found, looped)


class LookAhead(nn.Module):
    """BUG: output step t reads the input of step t + 1 (a target shifted the wrong way); ``scale`` sets how
    much, down to far below the float rounding of the output's values."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.rnn = nn.GRU(3, 5, batch_first=True)
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        ahead = torch.cat([x[:, 1:], torch.zeros_like(x[:, :1])], dim=1)
        return self.rnn(x)[0] + self.scale * ahead.sum(-1, keepdim=True)


LEAKING = {
    "bidirectional gru": lambda: Tagger(bidirectional=True),
    "look-ahead": LookAhead,
    "look-ahead by 1e-12 (below the values' rounding)": lambda: LookAhead(1e-12),
}


@pytest.mark.parametrize("name", list(LEAKING))
def test_a_leak_fails_with_the_whole_sequence_message(name, monkeypatch):
    model, x = LEAKING[name](), features(batch=3, time=10)
    verdict, _ = _verdict(model, x, chunk_size=4)
    assert verdict.startswith("causality failed"), verdict
    with monkeypatch.context() as m:
        m.setattr(_prefix, "RERUN", False)
        assert _verdict(model, x, chunk_size=4)[0] == verdict
    if "look-ahead" in name:  # every step reads the next one, inside a chunk's steps or across its end
        assert "9 of 45 pairs (t <- t') are not, the first at output step 0" in verdict


class OverLength(nn.Module):
    """Causal in its gradients, but its values read the sequence's length (a mean divided by all steps)."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(3, 5, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(x)[0].cumsum(dim=1) / x.shape[1]


class ExactlyTenSteps(Tagger):
    def forward(self, x: Tensor):
        if x.shape[1] != 10:
            raise ValueError("this model takes 10 steps")
        return super().forward(x)


@pytest.mark.parametrize(
    "make", [OverLength, ExactlyTenSteps], ids=["reads the length", "fails on fewer steps"]
)
def test_a_rerun_that_is_not_the_same_model_leaves_the_rows_to_the_whole_sequence(make, monkeypatch):
    model, x = make(), features(batch=3, time=10)
    found = check_causal(model, x, chunk_size=4)
    assert f"0 of 3 {RERUN}" in found.how and "2 on the whole sequence" in found.how, found.how
    _same(found, _whole(monkeypatch, model, x, chunk_size=4))


class Recorder(nn.Module):
    """Changes itself at every call in the ways models do (written from a stranger's repros): a hidden state
    kept in a buffer and reassigned, a causal mask cached in an attribute for the last length, a call counter in
    a buffer, lengths appended to a list, a dict of stats, a tensor attribute bumped in place."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(3, 5, batch_first=True)
        self.register_buffer("h", torch.zeros(1, 3, 5))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.mask: Tensor | None = None
        self.lengths: list[int] = []
        self.stats = {"calls": 0}
        self.seen = torch.zeros((), dtype=torch.long)

    def forward(self, x: Tensor) -> Tensor:
        if self.mask is None or self.mask.shape[0] != x.shape[1]:
            self.mask = torch.ones(x.shape[1], x.shape[1]).tril()
        self.calls = self.calls + 1
        self.lengths.append(x.shape[1])
        self.stats["calls"] += 1
        self.seen += x.shape[1]
        out, h = self.rnn(x, self.h)
        self.h = h.detach()
        return out


def _recorded(model: Recorder):
    return (
        model.h.clone(),
        int(model.calls),
        model.mask.shape,
        list(model.lengths),
        dict(model.stats),
        int(model.seen),
    )


def test_a_model_that_changes_at_every_call_is_left_as_one_call_leaves_it(monkeypatch):
    x = features(batch=3, time=10)
    torch.manual_seed(0)
    model = Recorder()
    found = check_causal(model, x, chunk_size=4)
    assert f"0 of 3 {RERUN}" in found.how, (
        found.how
    )  # a rerun starts from the whole call's state: not the model
    torch.manual_seed(0)
    fresh = Recorder()
    want = _whole(monkeypatch, fresh, x, chunk_size=4)
    _same(found, want)
    got, expected = _recorded(model), _recorded(fresh)
    torch.testing.assert_close(got[0], expected[0])
    assert got[1:] == expected[1:] == (1, (10, 10), [10], {"calls": 1}, 10)


class InPlace(nn.Module):
    """Writes into its own tensors in place (a stranger's repros): a state kept in a non-trainable Parameter,
    through ``copy_`` or through ``.data``, or a large pre-allocated cache buffer (a KV cache)."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.rnn = nn.GRU(3, 5, batch_first=True)
        self.h = nn.Parameter(torch.zeros(1, 3, 5), requires_grad=False)
        self.register_buffer("cache", torch.zeros(3, 20000, 5))  # 1.2 MB: a copy of the model would share it

    def forward(self, x: Tensor) -> Tensor:
        out, h = self.rnn(x, self.h if self.how != "cache" else None)
        with torch.no_grad():
            if self.how == "copy_":
                self.h.copy_(h)
            elif self.how == ".data":
                self.h.data.copy_(h)
            else:
                self.cache[:, : x.shape[1]] = out
        return out


@pytest.mark.parametrize("how", ["copy_", ".data", "cache"])
def test_a_model_that_writes_into_its_tensors_is_left_as_one_call_leaves_it(how, monkeypatch):
    x = features(batch=3, time=10)
    torch.manual_seed(0)
    model = InPlace(how)
    found = check_causal(model, x, chunk_size=4)
    if how == ".data":  # no version bump to see: the copy holds its own state, so the rerun does not match
        assert f"0 of 3 {RERUN}" in found.how, found.how
    else:  # the call bumped a version: no reruns at all
        assert RERUN not in found.how, found.how
    torch.manual_seed(0)
    fresh = InPlace(how)
    _same(found, _whole(monkeypatch, fresh, x, chunk_size=4))
    for mine, theirs in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(mine, theirs)


def test_a_table_is_copied_for_the_reruns_and_their_warnings_are_not_shown(monkeypatch):
    class Tabled(Tagger):
        def __init__(self):
            super().__init__()
            self.register_buffer("table", torch.randn(1 << 18, 3))  # 3 MiB: copied, as everything

        def forward(self, x):
            if x.shape[1] < 10:
                warnings.warn(f"a short sequence of {x.shape[1]} steps", UserWarning, stacklevel=2)
            return super().forward(x + self.table[: x.shape[1]])

    model, x = Tabled(), features(batch=3, time=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = check_causal(model, x, chunk_size=4)
    assert f"2 of 3 {RERUN}" in found.how, found.how
    assert not [w for w in caught if "short sequence" in str(w.message)]
    _same(found, _whole(monkeypatch, model, x, chunk_size=4))


class Reports(nn.Module):
    """A head that reports to its owner through a weakref (a stranger's repro): a copy would report to the
    original."""

    def __init__(self, owner: nn.Module) -> None:
        super().__init__()
        self.lin = nn.Linear(5, 4)
        self._owner = weakref.ref(owner)

    def forward(self, h: Tensor) -> Tensor:
        self._owner().steps_seen += h.shape[1]
        return self.lin(h)


class SharedStats:
    def __init__(self) -> None:
        self.calls = 0

    def __deepcopy__(self, memo):
        return self  # meant to be shared by copies


class ReachesOut(nn.Module):
    """What a copy of the model still shares with it (a stranger's repros): a weakref to its owner, a closure
    over ``self``, an object whose ``__deepcopy__`` returns itself."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how, self.steps_seen, self.maps, self.stats = how, 0, [], SharedStats()
        self.rnn = nn.GRU(3, 5, batch_first=True)
        self.head = Reports(self) if how == "weakref" else nn.Linear(5, 4)
        self.on_features = lambda h: self.maps.append(tuple(h.shape))

    def forward(self, x: Tensor) -> Tensor:
        h = self.rnn(x)[0]
        if self.how == "closure":
            self.on_features(h)
        elif self.how == "__deepcopy__":
            self.stats.calls += 1
        return self.head(h)


@pytest.mark.parametrize("how", ["weakref", "closure", "__deepcopy__"])
def test_no_rerun_where_a_copy_would_still_share_what_the_forward_changes(how, monkeypatch):
    x = features(batch=3, time=10)
    torch.manual_seed(0)
    model = ReachesOut(how)
    found = check_causal(model, x, chunk_size=4)
    assert "no reruns: its copy would share" in found.how, found.how
    assert (model.steps_seen, model.maps, model.stats.calls) == {
        "weakref": (10, [], 0),
        "closure": (0, [(3, 10, 5)], 0),
        "__deepcopy__": (0, [], 1),
    }[how]
    torch.manual_seed(0)
    _same(found, _whole(monkeypatch, ReachesOut(how), x, chunk_size=4))


def test_a_data_assignment_is_a_write_and_the_copy_shares_no_tensor(monkeypatch):
    class AssignsData(Tagger):
        def __init__(self):
            super().__init__()
            self.h = nn.Parameter(torch.zeros(1, 3, WIDTH))

        def forward(self, x):
            out, h = self.rnn(x, self.h)
            self.h.data = h.detach()  # a trainable Parameter as a carried state: no version bump
            return self.head(out)

    found = check_causal(AssignsData(), features(batch=3, time=10), chunk_size=4)
    assert "no reruns: its call writes into its own parameters or buffers" in found.how, found.how
    tabled = Tagger()
    tabled.table = nn.Embedding.from_pretrained(torch.randn(1 << 16, 4))  # 1 MiB, frozen
    twin, why = _twin.twin(tabled)
    assert twin is not None, why
    copied = dict(twin.named_parameters())
    for name, p in tabled.named_parameters():
        assert copied[name] is not p and torch.equal(copied[name], p), name
    monkeypatch.setattr(_twin, "COPY_BYTES", 2**20)
    found = check_causal(tabled, features(batch=3, time=10), chunk_size=4)
    assert "no reruns: its tensors (1 MiB) are more than the reruns copy (1 MiB)" in found.how, found.how


def test_a_leak_inside_the_rerun_chunks_is_reported_with_the_whole_sequence_numbers(monkeypatch):
    model, x = FrameStacked(), features(batch=3, time=16)
    assert _prefix.plan(16, 6) == ([(0, 6), (6, 12), (12, 16)], True)  # even ends: no group sees the leak
    reran = []
    rerun_chunk = _prefix._rerun_chunk
    monkeypatch.setattr(_prefix, "_rerun_chunk", lambda *a: reran.append(a[5]) or rerun_chunk(*a))
    verdict, _ = _verdict(model, x, chunk_size=6)
    assert reran == [6, 12] and verdict.startswith("causality failed"), (reran, verdict)
    with monkeypatch.context() as m:
        m.setattr(_prefix, "RERUN", False)
        assert _verdict(model, x, chunk_size=6)[0] == verdict


def test_reruns_leave_torch_python_and_numpy_random_where_one_call_leaves_them(monkeypatch):
    import random

    import numpy as np

    class Noisy(Tagger):
        def forward(self, x):
            jitter = random.random() + float(np.random.rand())
            return super().forward(x + 0.01 * jitter * torch.randn_like(x))

    x = features(batch=3, time=10)
    model = Noisy()

    def draws():
        return torch.rand(2).tolist(), random.random(), float(np.random.rand())

    def seeded(check):
        torch.manual_seed(5), random.seed(5), np.random.seed(5)
        check()
        return draws()

    with_reruns = seeded(lambda: check_causal(model, x, chunk_size=4))
    assert with_reruns == seeded(lambda: _whole(monkeypatch, model, x, chunk_size=4))


class ScriptedConv(nn.Module):
    calls: int

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, 4, 3)
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        return self.conv(nn.functional.pad(x.transpose(1, 2), (2, 0))).transpose(1, 2)


def _hooked():
    model, seen = Tagger(), {}
    model.rnn.register_forward_hook(lambda m, i, o: seen.__setitem__("rnn", o[0].shape))
    return model


def _around(model):
    return lambda x: model(x)


UNSAFE = {
    "a forward hook that records activations": (_hooked, {}),
    "a function around a module": (lambda: _around(Tagger()), {}),
    "call=": (Tagger, {"call": lambda m, x: m(x)}),
    "torch.jit.script": (lambda: torch.jit.script(ScriptedConv()), {}),
}


@pytest.mark.parametrize("name", list(UNSAFE))
def test_no_rerun_where_its_effects_could_reach_beyond_the_model(name, monkeypatch):
    make, kwargs = UNSAFE[name]
    x = features(batch=3, time=10)
    torch.manual_seed(0)
    found = check_causal(make(), x, chunk_size=4, **kwargs)
    assert RERUN not in found.how, found.how
    torch.manual_seed(0)
    _same(found, _whole(monkeypatch, make(), x, chunk_size=4, **kwargs))


def test_a_guarded_model_is_rerun_and_a_buffer_made_in_inference_mode_is_fine(monkeypatch):
    from rnnshapes import guard

    class Positional(Tagger):
        def __init__(self):
            super().__init__()
            with torch.inference_mode():
                self.register_buffer("pe", torch.linspace(0, 1, 64).unsqueeze(-1))

        def forward(self, x):
            return super().forward(x + self.pe[: x.shape[1]])

    model, x = Positional(), features(batch=3, time=10)
    guard(model)
    found = check_causal(model, x, chunk_size=4)
    assert f"2 of 3 {RERUN}" in found.how, found.how
    _same(found, _whole(monkeypatch, model, x, chunk_size=4))


class FrameStacked(nn.Module):
    """BUG (a stranger's repro): stacks pairs of frames, runs at half rate and repeats the output back to the
    input's rate, so output step 2k reads input step 2k+1, inside every chunk of even length."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(6, 5, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        b, t, f = x.shape
        out = self.rnn(x.reshape(b, t // 2, 2 * f))[0]  # (batch, time/2, 5)
        return out.repeat_interleave(2, dim=1)  # (batch, time, 5)


def test_a_leak_inside_the_chunks_fails_with_the_whole_sequence_message(monkeypatch):
    model, x = FrameStacked(), features(batch=3, time=12)
    verdict, _ = _verdict(model, x, chunk_size=5)
    assert verdict.startswith("causality failed") and "6 of 66 pairs" in verdict, verdict
    with monkeypatch.context() as m:
        m.setattr(_prefix, "RERUN", False)
        assert _verdict(model, x, chunk_size=5)[0] == verdict


def test_no_rerun_where_another_input_has_the_steps_too(monkeypatch):
    class Masked(Tagger):
        def forward(self, x, mask):
            return self.head(self.rnn(x)[0] * mask.unsqueeze(-1))

    x, mask = features(batch=3, time=10), torch.ones(3, 10)
    found = check_causal(Masked(), (x, mask), chunk_size=4)
    assert RERUN not in found.how, found.how


class BlockAttention(nn.Module):
    """BUG (a stranger's repro): attention within blocks of 4 steps, masked exactly (``-inf`` before the softmax)
    on up to 8 steps but, on longer inputs, by renormalizing a full softmax: that leaks about 1e-8 from later steps
    of each block, and only at the whole sequence's length."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(H_IN, 3 * 4)

    def forward(self, x: Tensor) -> Tensor:
        batch, time, _ = x.shape
        q, k, v = self.qkv(x).chunk(3, -1)
        pad = (-time) % 4
        q, k, v = (nn.functional.pad(t, (0, 0, 0, pad)).view(batch, -1, 4, 4) for t in (q, k, v))
        scores = q @ k.transpose(-1, -2) / 2  # (batch, blocks, 4, 4)
        tril = torch.ones(4, 4, dtype=torch.bool).tril()
        if time <= 8:
            p = scores.masked_fill(~tril, float("-inf")).softmax(-1)
        else:
            p = scores.softmax(-1) * tril
            p = p / p.sum(-1, keepdim=True)
        return (p @ v).view(batch, -1, 4)[:, :time]  # (batch, time, 4)


def test_a_leak_that_only_the_whole_length_has_fails_as_on_the_whole_sequence(monkeypatch):
    torch.manual_seed(0)  # the stranger's weights and input: reruns within 16 ulps passed it
    model, x = BlockAttention(), features(batch=2, time=10, seed=1)
    verdict, _ = _verdict(model, x, chunk_size=4)
    with monkeypatch.context() as m:
        m.setattr(_prefix, "RERUN", False)
        assert _verdict(model, x, chunk_size=4)[0] == verdict
    assert verdict.startswith("causality failed") and "(1<-2)" in verdict, verdict


class ShortInputs(nn.Module):
    """Causal models whose shorter calls give what a rerun cannot use (strangers' repros): a summary that is
    None before 6 steps, or a constant without a gradient before the convolution's 5-step window fits."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.rnn = nn.GRU(H_IN, WIDTH, batch_first=True)
        self.conv = nn.Conv1d(H_IN, 4, 5)

    def forward(self, x: Tensor) -> Any:
        batch, time, _ = x.shape
        if self.how == "summary":
            y = self.rnn(x)[0]
            return y, (y.cumsum(1) if time >= 6 else None)
        if time < 5:
            return x.new_zeros(batch, time, 4)
        return nn.functional.pad(self.conv(x.transpose(1, 2)), (4, 0)).transpose(1, 2)  # (batch, time, 4)


@pytest.mark.parametrize("how", ["summary", "no gradient"])
def test_a_rerun_output_that_is_no_tensor_or_has_no_gradient_leaves_the_rows_to_the_whole(how, monkeypatch):
    model, x = ShortInputs(how), features(batch=2, time=10)
    output = (lambda r: r[1]) if how == "summary" else None
    found = check_causal(model, x, chunk_size=4, output=output)
    _same(found, _whole(monkeypatch, model, x, chunk_size=4, output=output))


class Writes(Tagger):
    """Writes into a large buffer (strangers' repros): through ``.data`` in place (no version bump) at every
    call, or only on short calls, which the whole sequence never makes; and into its input."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.register_buffer("bank", torch.zeros(128, 4096))  # 2 MiB
        self.embed = nn.Embedding(64, H_IN)

    def forward(self, x: Tensor) -> Any:
        if self.how == "ids":
            x = self.embed(x.add_(1))  # shifts the caller's ids
        y, _ = super().forward(x)
        if self.how == ".data":
            self.bank.data.mul_(0.9).add_(y.detach().mean())
        elif self.how == "short" and y.shape[1] <= 8:
            with torch.no_grad():
                self.bank[: y.shape[1], : y.shape[0] * CLASSES] = y.detach().transpose(0, 1).flatten(1)
        return y


@pytest.mark.parametrize("how", [".data", "short", "ids"])
def test_reruns_leave_the_model_and_the_input_as_one_check_leaves_them(how, monkeypatch):
    def after(rerun: bool) -> tuple[dict[str, Tensor], Tensor, str]:
        torch.manual_seed(0)
        model = Writes(how)
        x = tokens(batch=3, time=10).clamp(max=40) if how == "ids" else features(batch=3, time=10)
        with monkeypatch.context() as m:
            m.setattr(_prefix, "RERUN", rerun)
            found = check_causal(model, x, chunk_size=4)
        return model.state_dict(), x, found.how

    (state, x, how_found), (want, want_x, _) = after(True), after(False)
    if how != "ids":  # the caller's ids were shifted by the check's call: a rerun on them does not match it
        assert f"2 of 3 {RERUN}" in how_found, how_found
    assert torch.equal(x, want_x)
    for key in want:
        assert torch.equal(state[key], want[key]), key


class KVCache:
    """A transformers-style cache: each call appends its keys."""

    def __init__(self) -> None:
        self.keys: Tensor | None = None

    def update(self, k: Tensor) -> Tensor:
        self.keys = k if self.keys is None else torch.cat([self.keys, k], dim=1)
        return self.keys


class TakesState(Tagger):
    """Writes into its other inputs (strangers' repros): a cache it appends to, a carried state it copies its
    h_n into (truncated backpropagation through time), a generator it draws noise from."""

    def forward(self, x: Tensor, other: Any) -> Tensor:
        if isinstance(other, KVCache):
            other.update(x)
        elif isinstance(other, torch.Generator):
            x = x + 0.1 * torch.randn(x.shape, generator=other)
        y, h_n = super().forward(x)
        if isinstance(other, Tensor):
            with torch.no_grad():
                other.copy_(h_n)
        return y


@pytest.mark.parametrize("how", ["cache", "state", "generator"])
def test_reruns_leave_the_other_inputs_as_one_check_leaves_them(how, monkeypatch):
    def after(rerun: bool) -> Any:
        torch.manual_seed(0)
        other = {"cache": KVCache, "state": lambda: torch.zeros(1, 3, WIDTH), "generator": torch.Generator}[
            how
        ]()
        with monkeypatch.context() as m:
            m.setattr(_prefix, "RERUN", rerun)
            check_causal(TakesState(), (features(batch=3, time=10), other), chunk_size=4)
        if how == "cache":
            return other.keys
        return other if how == "state" else torch.rand(3, generator=other)

    assert torch.equal(after(True), after(False))


NOISE = torch.Generator().manual_seed(0)
"""A module-level generator a model draws its noise from (a stranger's repro)."""


class ClassCache(Tagger):
    carried: dict[str, Tensor] = {"last": torch.zeros(1)}  # noqa: RUF012  # the pattern under test: a state

    def forward(self, x: Tensor) -> Any:
        return super().forward(x + self.carried.get("last", 0))


class DefaultCache(Tagger):
    def forward(self, x: Tensor, state: dict = {}) -> Any:  # noqa: B006  # the pattern under test
        state["calls"] = state.get("calls", 0) + 1
        return super().forward(x)


class Noise(Tagger):
    def forward(self, x: Tensor) -> Any:
        return super().forward(x + 0.1 * torch.randn(x.shape, generator=NOISE))


noise = types.ModuleType("noise")  # stands for a project's noise.py, imported here (a stranger's repro)
noise.GEN = torch.Generator().manual_seed(0)
noise.jitter = lambda x: x + 0.1 * torch.randn(x.shape, generator=noise.GEN)


class HelperNoise(Tagger):
    def forward(self, x: Tensor) -> Any:
        return super().forward(noise.jitter(x))


def test_no_rerun_where_state_lives_on_the_class_and_module_generators_are_put_back(monkeypatch):
    x = features(batch=3, time=10)
    found = check_causal(ClassCache(), x, chunk_size=4)
    assert "no reruns: ClassCache.carried is a mutable class attribute, which every copy shares" in found.how
    found = check_causal(DefaultCache(), x, chunk_size=4)
    assert (
        "no reruns: DefaultCache.forward keeps mutable state in a default argument or a closure" in found.how
    )
    for model, generator in ((Noise, NOISE), (HelperNoise, noise.GEN)):
        draws, hows = [], []
        for rerun in (True, False):
            generator.manual_seed(0)
            with monkeypatch.context() as m:
                m.setattr(_prefix, "RERUN", rerun)
                hows.append(check_causal(model(), x, chunk_size=4).how)
            draws.append(torch.rand(3, generator=generator))
        assert f"0 of 3 {RERUN}" in hows[0], hows[0]  # tried: the noise differs, so none matched
        assert torch.equal(draws[0], draws[1]), model.__name__


def test_no_rerun_where_the_copy_would_cost_more_than_the_reruns_save(monkeypatch):
    class Vocabulary(Tagger):
        def __init__(self) -> None:
            super().__init__()
            self.itos = [f"word{i}" for i in range(50_000)]  # a vocabulary kept on the model

    class Vectors(Tagger):
        def __init__(self) -> None:
            super().__init__()
            self.vectors = torch.zeros(4, 1 << 20)  # 16 MiB, a plain attribute, not a buffer

    x = features(batch=3, time=10)
    found = check_causal(Vocabulary(), x, chunk_size=4)
    assert "no reruns: its attributes hold more than 20,000 objects (a vocabulary?)" in found.how, found.how
    monkeypatch.setattr(_twin, "COPY_BYTES", 8 * 2**20)
    found = check_causal(Vectors(), x, chunk_size=4)
    assert "no reruns: its tensors (16 MiB) are more than the reruns copy (8 MiB)" in found.how, found.how


class Rotary:
    """A helper (not a module) that memoizes its tables on its class (a stranger's repro)."""

    tables: dict[int, Tensor] = {}  # noqa: RUF012  # the pattern under test

    def table(self, n: int) -> Tensor:
        return self.tables.setdefault(n, torch.ones(n, 1))


def scale_of(n: int, _seen: dict = {}) -> Tensor:  # noqa: B006  # the pattern under test
    return _seen.setdefault(n, torch.ones(n, 1))


class Helped(Tagger):
    """State the copy would still reach through what the model holds (strangers' repros)."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.seen: list[tuple[int, ...]] = []
        if how == "helper class":
            self.rotary = Rotary()
            self.helper = lambda y: y * self.rotary.table(y.shape[1])
        elif how == "default argument":
            self.scale = scale_of  # a function kept on the model, with a mutable default
            self.helper = None
        else:
            self.taps = {
                "hidden": lambda y: self.seen.append(tuple(y.shape))
            }  # a closure over self, in a dict
            self.helper = lambda y: self.taps["hidden"](y) or y

    def forward(self, x: Tensor) -> Any:
        y = super().forward(x)[0]
        return y * self.scale(y.shape[1]) if self.helper is None else self.helper(y)


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("helper class", "Rotary.tables is a mutable class attribute"),
        ("default argument", "its copy would share dict {10: tensor"),
        ("closure in a dict", "its copy would share Helped Helped with it"),
    ],
)
def test_no_rerun_where_the_copy_would_reach_state_through_what_the_model_holds(how, reason):
    found = check_causal(Helped(how), features(batch=3, time=10), chunk_size=4)
    assert f"no reruns: {reason}" in found.how, found.how


def test_a_getstate_that_edits_the_model_is_undone_and_refused():
    import threading

    class Locked(Tagger):
        def __init__(self) -> None:
            super().__init__()
            self._lock = threading.Lock()

        def __getstate__(self) -> dict:
            state = self.__dict__  # the slip (a stranger's repro): should be .copy()
            state.pop("_lock", None)
            return state

    model = Locked()
    found = check_causal(model, features(batch=3, time=10), chunk_size=4)
    assert "no reruns: copying it changed it (Locked.__getstate__)" in found.how, found.how
    assert isinstance(model._lock, type(threading.Lock()))


def test_a_lazy_module_and_a_wrapper_subclass_buffer_are_checked_as_without_reruns(monkeypatch):
    from torch.testing._internal.two_tensor import TwoTensor

    class Lazy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(H_IN, WIDTH, batch_first=True)
            self.head = nn.LazyLinear(CLASSES)

        def forward(self, x: Tensor) -> Tensor:
            return self.head(self.rnn(x)[0])

    class Wrapped(Tagger):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("scale", TwoTensor(torch.ones(1), torch.ones(1)))

    x = features(batch=3, time=10)
    for make in (Lazy, Wrapped):
        torch.manual_seed(0)
        found = check_causal(make(), x, chunk_size=4)  # a ValueError and a RuntimeError before
        torch.manual_seed(0)
        _same(found, _whole(monkeypatch, make(), x, chunk_size=4))


class Activation(enum.Enum):
    TANH = "tanh"


class Sizes(NamedTuple):
    hidden: int = WIDTH


@dataclass
class Config:
    layers: list[int] = field(default_factory=lambda: [WIDTH])


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(lambda: logging.getLogger("rnnshapes.test"), id="logger"),
        pytest.param(lambda: re.compile("[a-z]+"), id="regex"),
        pytest.param(lambda: Activation.TANH, id="enum"),
        pytest.param(Sizes, id="named tuple"),
        pytest.param(Config, id="dataclass config"),
        pytest.param(lambda: types.SimpleNamespace(dropout=0.1, widths=[WIDTH]), id="namespace"),
        pytest.param(lambda: functools.partial(nn.functional.dropout, p=0.0), id="partial"),
        pytest.param(lambda: torch.nn.functional.gelu, id="function"),
        pytest.param(torch.Generator, id="generator of its own"),
        pytest.param(lambda: np.int64(WIDTH), id="numpy scalar"),
        pytest.param(lambda: [f"word{i}" for i in range(5000)], id="vocabulary of 5000 words"),
    ],
)
def test_what_models_commonly_keep_does_not_stop_the_reruns(extra):
    model = Tagger()
    model.extra = extra()
    found = check_causal(model, features(batch=3, time=10), chunk_size=4)
    assert f"2 of 3 {RERUN}" in found.how, found.how


class Looked(Tagger):
    """A class-level lookup table and memo (strangers' repros): what the reruns add to the memo is put back."""

    ACTIVATIONS = {"tanh": torch.tanh, "identity": lambda y: y}  # noqa: RUF012  # the pattern under test
    lengths: list[int] = []  # noqa: RUF012  # the pattern under test: a memo filled by every call

    def forward(self, x: Tensor) -> Any:
        self.lengths.append(x.shape[1])
        return self.ACTIVATIONS["tanh"](super().forward(x)[0])


class Typed(Tagger):
    """A forward checked by beartype, whose wrapper keeps its machinery as default arguments."""

    @beartype
    def forward(self, x: Tensor) -> Any:
        return super().forward(x)[0]


class Normed(Tagger):
    """torch's weight_norm, a forward pre-hook that computes the weight (locuslab's TCN)."""

    def __init__(self) -> None:
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # weight_norm is deprecated for parametrize; its models are not
            self.head = nn.utils.weight_norm(self.head)


@pytest.mark.parametrize("make", [Looked, Typed, Normed], ids=["class tables", "beartype", "weight_norm"])
def test_tables_typed_forwards_and_weight_norm_do_not_stop_the_reruns(make, monkeypatch):
    Looked.lengths.clear()
    found = check_causal(make(), features(batch=3, time=10), chunk_size=4)
    assert f"2 of 3 {RERUN}" in found.how, found.how
    assert Looked.lengths == ([10] if make is Looked else []), Looked.lengths  # the reruns' 4 and 8 put back


class FrozenDict(dict):
    def __setitem__(self, key: Any, value: Any) -> None:
        raise TypeError("frozen")


def by_length(method: Any) -> Any:
    """A hand-rolled cache decorator: its cache lives in the wrapper's closure."""
    cache: dict[int, Tensor] = {}

    @functools.wraps(method)
    def wrapper(self: Any, n: int) -> Tensor:
        if n not in cache:
            cache[n] = method(self, n)
        return cache[n]

    return wrapper


class Sinusoid:
    """A class kept on the model as a value, with a class-level cache of tensors."""

    tables: dict[int, Tensor] = {}  # noqa: RUF012  # the pattern under test

    @classmethod
    def of(cls, n: int) -> Tensor:
        return cls.tables.setdefault(n, torch.ones(n, 1))


class Options:
    """An input whose class keeps a warn-once registry."""

    warned: set[str] = set()  # noqa: RUF012  # the pattern under test

    def note(self, message: str) -> None:
        self.warned.add(message)


class Stateful(Tagger):
    """Class state the reruns must not leave behind, or must not share (a stranger's fifth round)."""

    TABLE = FrozenDict(tanh="tanh")
    short_seen = False  # a warn-once flag set on the class

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.built: list[int] = []
        if how == "class value":
            self.positions = Sinusoid
        elif how == "factory":
            self.masks = defaultdict(lambda: self.built.append(1) or 0)  # a factory closing over self

    def forward(self, x: Tensor, options: Any = None) -> Any:
        y = super().forward(x)[0]
        n = y.shape[1]
        if self.how == "flag" and n < 10:
            type(self).short_seen = True
        elif self.how == "decorator":
            y = y * self.ones(n)  # type: ignore[attr-defined]  # Decorated's
        elif self.how == "class value":
            y = y * self.positions.of(n)
        elif self.how == "factory":
            y = y + self.masks[n]
        elif self.how == "input class" and n < 10:
            options.note(f"short input of {n} steps")
        return y


class Decorated(Stateful):
    @by_length
    def ones(self, n: int) -> Tensor:
        return torch.ones(n, 1)


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("frozen table", "Stateful.TABLE is a mutable class attribute"),
        ("decorator", "Decorated.ones keeps mutable state in a default argument or a closure"),
        ("class value", "Sinusoid.tables is a mutable class attribute"),
        ("factory", "its copy would share Stateful Stateful with it"),
        ("flag", ""),
        ("input class", ""),
    ],
)
def test_class_state_is_refused_or_put_back(how, reason, monkeypatch):
    monkeypatch.setattr(Stateful, "TABLE", {} if how != "frozen table" else Stateful.TABLE)
    monkeypatch.setattr(Stateful, "short_seen", False)
    Options.warned.clear()
    model, x = (Decorated if how == "decorator" else Stateful)(how), features(batch=3, time=10)
    found = check_causal(model, (x, Options()), wrt=0, chunk_size=4)
    if reason:
        assert f"no reruns: {reason}" in found.how, found.how
    else:
        assert f"2 of 3 {RERUN}" in found.how, found.how
    assert Stateful.short_seen is False and Options.warned == set()  # the whole call has 10 steps: not short
    assert model.built == ([1] if how == "factory" else [])  # the whole call's own miss, no rerun's


class AttrDict(dict):
    __getattr__ = (
        dict.__getitem__
    )  # the one-line config dict (a stranger's repro): a KeyError, not AttributeError


def test_a_config_dict_that_answers_every_attribute_is_no_crash(monkeypatch):
    model, x = Tagger(), features(batch=3, time=10)
    model.cfg = AttrDict(width=WIDTH)
    found = check_causal(model, x, chunk_size=4)
    assert "no reruns: the model could not be copied (KeyError)" in found.how, found.how  # deepcopy's own
    _same(found, _whole(monkeypatch, model, x, chunk_size=4))


@dataclass(frozen=True)
class FrozenConfig:
    width: int = WIDTH


class Abstract(Tagger, abc.ABC):
    default = FrozenConfig()
    act = functools.partial(nn.functional.leaky_relu, negative_slope=0.1)

    def forward(self, x: Tensor) -> Any:
        return self.act(super().forward(x)[0])


def warn_once(method: Any) -> Any:
    warned = False

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any) -> Any:
        nonlocal warned
        if args[0].shape[1] < 10 and not warned:
            warned = True
        wrapper.calls += 1  # type: ignore[attr-defined]
        return method(self, *args)

    wrapper.calls = 0  # type: ignore[attr-defined]
    return wrapper


class Once(Tagger):
    @warn_once
    def forward(self, x: Tensor) -> Any:
        return super().forward(x)[0]


def test_abstract_bases_frozen_configs_and_decorator_state_are_reran_and_put_back():
    x = features(batch=3, time=10)
    found = check_causal(Abstract(), x, chunk_size=4)
    assert f"2 of 3 {RERUN}" in found.how, found.how
    found = check_causal(Once(), x, chunk_size=4)
    assert f"2 of 3 {RERUN}" in found.how, found.how
    wrapper = vars(Once)["forward"]
    cells = dict(zip(wrapper.__code__.co_freevars, wrapper.__closure__, strict=True))
    assert (
        cells["warned"].cell_contents is False and wrapper.calls == 1
    )  # the check's one call; the reruns' undone


class Vocabulary(Tagger):
    WORDS = {f"word{i}": i for i in range(30_000)}  # noqa: RUF012  # more than COPY_OBJECTS: refused, not scanned


def test_a_large_class_table_is_refused():
    found = check_causal(Vocabulary(), features(batch=3, time=10), chunk_size=4)
    assert "no reruns: Vocabulary.WORDS is a mutable class attribute" in found.how, found.how


def test_the_plan_fits_the_group_products_beside_the_last_rows():
    assert _prefix.plan(200, 64) == ([(0, 48), (48, 96), (96, 144), (144, 200)], True)  # 3 groups + 56 rows
    assert _prefix.plan(400, 38)[0][:2] == [(0, 37), (37, 74)]  # 8-step blocks would not fit in 38 rows
    assert _prefix.plan(7, 3) == ([(0, 3), (3, 6), (6, 7)], True)
    assert _prefix.plan(10, 2)[1] is False  # 2 lanes cannot hold 4 groups: their own passes
    assert _prefix.plan(64, 64) is None  # one chunk holds every row
    for n in range(2, 260, 3):
        for chunk in range(2, 70, 3):
            found = _prefix.plan(n, chunk)
            if found is None:
                continue
            bounds, together = found
            assert bounds[0][0] == 0 and bounds[-1][1] == n, (n, chunk, bounds)
            assert all(bounds[i][1] == bounds[i + 1][0] for i in range(len(bounds) - 1)), (n, chunk, bounds)
            assert all(0 < b - a <= chunk for a, b in bounds), (n, chunk, bounds)
            if together:  # the groups fit beside the last chunk's rows
                assert bounds[-1][1] - bounds[-1][0] + len(bounds) - 1 <= chunk, (n, chunk, bounds)


_LONG = os.environ.get("RNNSHAPES_FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(_LONG) if _LONG else 20,
    deadline=None,
    derandomize=not _LONG,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)


class Random(nn.Module):
    """A small float64 model from the fuzzer's choices: a GRU/LSTM/cell loop, time first or batch first, with at
    most one planted reason for a rerun to differ (a leak, a length read, a mean over the batch)."""

    def __init__(self, cell: str, batch_first: bool, bug: str) -> None:
        super().__init__()
        self.cell, self.bf, self.bug = cell, batch_first, bug
        if cell == "LSTMCell":
            self.rnn: nn.Module = nn.LSTMCell(3, 4)
        else:
            kind = {"GRU": nn.GRU, "LSTM": nn.LSTM}[cell]
            self.rnn = kind(3, 4, batch_first=batch_first, bidirectional=bug == "bidirectional")
        self.head = nn.Linear(8 if bug == "bidirectional" else 4, 2)

    def forward(self, x: Tensor) -> Tensor:
        t_axis = 1 if self.bf else 0
        if self.cell == "LSTMCell":
            steps, state = [], None
            for step in x.unbind(t_axis):
                state = self.rnn(step, state)
                steps.append(state[0])
            out = torch.stack(steps, dim=t_axis)
        else:
            out = self.rnn(x)[0]
        if self.bug == "look-ahead":
            out = out + out.roll(-1, dims=t_axis) * 1e-3
        elif self.bug == "over length":
            out = out / x.shape[t_axis]
        elif self.bug == "batch mean":
            out = out + out.mean(dim=1 - t_axis, keepdim=True)
        return self.head(out)


@FUZZ
@given(
    cell=st.sampled_from(["GRU", "LSTM", "LSTMCell"]),
    batch_first=st.booleans(),
    bug=st.sampled_from(["", "look-ahead", "over length", "batch mean", "bidirectional"]),
    time=st.integers(2, 16),
    batch=st.integers(1, 3),
    chunk=st.integers(2, 6),
    seed=st.integers(0, 2**16),
)
def test_fuzz_reruns_agree_with_the_whole_sequence_and_with_torch(
    cell, batch_first, bug, time, batch, chunk, seed
):
    if cell == "LSTMCell" and bug == "bidirectional":
        bug = ""
    torch.manual_seed(seed)
    model = Random(cell, batch_first, bug).double()
    x = torch.randn(batch, time, 3, dtype=torch.float64)
    if not batch_first:
        x = x.transpose(0, 1).contiguous()
    t_axis = 1 if batch_first else 0
    verdict, found = _verdict(model, x, time_axis=t_axis, chunk_size=chunk)
    old = _prefix.RERUN
    _prefix.RERUN = False
    try:
        want_verdict, want = _verdict(model, x, time_axis=t_axis, chunk_size=chunk)
    finally:
        _prefix.RERUN = old
    assert verdict == want_verdict
    # torch's own truth: a change of the input after step t changes the output at step t
    with torch.no_grad():
        model.eval()
        base = model(x)
        leaks = False
        for j in range(1, time):
            bumped = x.clone()
            bumped.narrow(t_axis, j, 1).add_(torch.randn_like(bumped.narrow(t_axis, j, 1)))
            changed = (model(bumped) - base).abs().amax(dim=[d for d in range(3) if d != t_axis])
            leaks |= bool((changed[:j] > 0).any())
    assert (verdict != "passed") == leaks, (verdict.splitlines()[0], leaks)
    if found is not None:
        _same(found, want)
