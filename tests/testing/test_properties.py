"""Issue 18: a property test over random CORRECT recurrent models (every applicable check passes) and the same
models with one realistic bug each (the check that targets it fails).

The models: taggers and classifiers over features or token indices, padded and packed with their lengths,
GRU / LSTM (with proj_size) / RNN layers or an LSTMCell stepped in a loop, 1 or 2 layers with dropout left on
between them, uni- or bidirectional, float32 or float64. Small and seeded: the default run takes seconds.
A longer run: ``RNNSHAPES_PROPERTY_MODELS=500 python -m pytest tests/testing/test_properties.py``.
"""

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnshapes.testing import (
    CheckFailed,
    check_batch_independence,
    check_causal,
    check_init_loss,
    check_packed_matches_unbatched,
    check_padding_invariance,
    check_state_dict_roundtrip,
)

MODELS = int(os.environ.get("RNNSHAPES_PROPERTY_MODELS", "12"))
BUGS = ("view", "batch mean", "bidirectional stream", "softmax", "last padded step", "unregistered head")


@dataclass
class Config:
    layer: str  # GRU, LSTM, RNN, cell
    tokens: bool
    packed: bool
    tagger: bool  # per-step logits, else one per sequence
    bidirectional: bool
    layers: int
    proj: bool
    dtype: torch.dtype
    hidden: int
    classes: int
    batch: int
    time: int
    bug: str | None = None
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def random_config(seed: int) -> Config:
    rng = random.Random(seed)
    layer = rng.choice(["GRU", "LSTM", "RNN", "cell"])
    packed = layer != "cell" and rng.random() < 0.5
    return Config(
        layer=layer,
        tokens=rng.random() < 0.4,
        packed=packed,
        tagger=rng.random() < 0.6,
        bidirectional=layer != "cell" and rng.random() < 0.3,
        layers=1 if layer == "cell" else rng.choice([1, 2]),
        proj=layer == "LSTM" and rng.random() < 0.5,
        dtype=rng.choice([torch.float32, torch.float64]),
        hidden=rng.choice([4, 6, 8]),
        classes=rng.choice([2, 3, 5]),
        batch=rng.choice([2, 3, 5]),
        time=rng.choice([3, 4, 6]),
        seed=seed,
    )


class RandomRNN(nn.Module):
    """One configurable user model; ``config.bug`` plants one bug."""

    def __init__(self, c: Config) -> None:
        super().__init__()
        self.c = c
        width = 3
        if c.tokens:
            self.embed = nn.Embedding(11, width)
        bidirectional = c.bidirectional or c.bug == "bidirectional stream"
        if c.layer == "cell":
            self.cell = nn.LSTMCell(width, c.hidden)
            out = c.hidden
        else:
            kwargs: dict[str, Any] = {"num_layers": c.layers, "bidirectional": bidirectional}
            if c.layers > 1:
                kwargs["dropout"] = 0.3
            if c.proj:
                kwargs["proj_size"] = c.hidden // 2
            self.rnn = getattr(nn, c.layer)(width, c.hidden, batch_first=True, **kwargs)
            out = (c.hidden // 2 if c.proj else c.hidden) * (2 if bidirectional else 1)
        head = nn.Linear(out, c.classes).to(c.dtype)
        if c.bug == "unregistered head":
            self.heads = [head]  # a plain list: not in the state_dict
        else:
            self.head = head
        self.to(c.dtype)

    def _head(self, h: Tensor) -> Tensor:
        head = self.heads[0] if self.c.bug == "unregistered head" else self.head
        logits = head(h)
        return logits.softmax(dim=-1) if self.c.bug == "softmax" else logits

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        c = self.c
        x = self.embed(x) if c.tokens else x
        if c.layer == "cell":
            h = s = x.new_zeros(x.shape[0], c.hidden)
            steps = []
            for t in range(x.shape[1]):
                h, s = self.cell(x[:, t], (h, s))
                steps.append(h)
            out = torch.stack(steps, dim=1)
            last = out[:, -1]
        elif c.packed:
            assert lengths is not None
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            packed_out, state = self.rnn(packed)
            out, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=x.shape[1])
            h_n = state[0] if isinstance(state, tuple) else state
            last = torch.cat([h_n[-2], h_n[-1]], dim=-1) if self.rnn.bidirectional else h_n[-1]
            if c.bug == "last padded step":
                last = out[:, -1]
        elif c.bug == "view":  # a time-first tensor fed to the batch_first layer, .reshape'd back
            out, _ = self.rnn(x.transpose(0, 1).contiguous())
            out = out.reshape(x.shape[0], x.shape[1], -1)
            last = out[:, -1]
        else:
            out, _ = self.rnn(x)
            last = out[:, -1]
        if c.bug == "batch mean":
            out, last = out - out.mean(dim=0, keepdim=True), last - last.mean(dim=0, keepdim=True)
        return self._head(out if c.tagger else last)


def make(c: Config) -> RandomRNN:
    torch.manual_seed(c.seed)
    model = RandomRNN(c)
    model.train()  # dropout left on: every check must switch it off itself
    return model


def inputs(c: Config) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(c.seed)
    lengths = torch.randint(1, c.time + 1, (c.batch,), generator=g)
    lengths[0] = c.time
    if c.tokens:
        x = torch.randint(1, 11, (c.batch, c.time), generator=g)
        x = torch.where(torch.arange(c.time) < lengths.unsqueeze(1), x, torch.zeros((), dtype=x.dtype))
    else:
        x = torch.randn(c.batch, c.time, 3, generator=g, dtype=c.dtype)
        x = torch.where(torch.arange(c.time).view(1, -1, 1) < lengths.view(-1, 1, 1), x, torch.zeros(()))
    return x, lengths


def checks(c: Config) -> dict[str, Callable[[], Any]]:
    """Every check that applies to a model of this configuration (with the bug, when there is one)."""
    model, (x, lengths) = make(c), inputs(c)
    args: Any = (x, lengths) if c.packed else x
    g = torch.Generator().manual_seed(c.seed + 1)
    shape = (c.batch, c.time) if c.tagger else (c.batch,)
    targets = torch.randint(0, c.classes, shape, generator=g)
    found: dict[str, Callable[[], Any]] = {
        "batch independence": lambda: check_batch_independence(model, args),
        "init loss": lambda: check_init_loss(model, args, targets, c.classes),
        "state_dict": lambda: check_state_dict_roundtrip(model, lambda: RandomRNN(c), args),
    }
    if c.tagger and not c.bidirectional and not c.packed and c.bug != "view":
        found["causal"] = lambda: check_causal(model, args)
    if c.packed:
        found["packed == unbatched"] = lambda: check_packed_matches_unbatched(model, x, lengths)
        found["padding invariance"] = lambda: check_padding_invariance(model, x, lengths)
    return found


TARGETS = {
    "view": "batch independence",
    "batch mean": "batch independence",
    "bidirectional stream": "causal",
    "softmax": "init loss",
    "last padded step": "padding invariance",
    "unregistered head": "state_dict",
}


def bugs_for(c: Config) -> list[str]:
    found = ["batch mean", "softmax", "unregistered head"]
    if c.layer != "cell" and not c.packed and c.batch > 1:
        found.append("view")
    if c.tagger and not c.bidirectional and not c.packed and c.layer != "cell":
        found.append("bidirectional stream")
    if c.packed and not c.tagger and c.batch > 1:
        found.append("last padded step")
    return found


def _describe(c: Config) -> str:
    kind = "tagger" if c.tagger else "classifier"
    over = "tokens" if c.tokens else "features"
    flags = [c.layer, f"{c.layers} layer(s)", kind, over, str(c.dtype).removeprefix("torch.")]
    flags += [
        f for f, on in (("packed", c.packed), ("bidirectional", c.bidirectional), ("proj", c.proj)) if on
    ]
    return ", ".join(flags) + f", batch {c.batch}, time {c.time}, seed {c.seed}"


@pytest.mark.parametrize("seed", range(MODELS))
def test_every_applicable_check_passes_a_random_correct_model(seed):
    c = random_config(seed)
    failures = []
    for name, run in checks(c).items():
        try:
            run()
        except CheckFailed as e:
            failures.append(f"{name}: {str(e).splitlines()[0]}")
    assert not failures, f"a correct model ({_describe(c)}) failed: {failures}"


@pytest.mark.parametrize("seed", range(MODELS))
def test_one_bug_each_fails_the_check_that_targets_it(seed):
    c = random_config(seed)
    rng = random.Random(seed)
    bug = rng.choice(bugs_for(c))
    target = TARGETS[bug]
    bugged = Config(**{**c.__dict__, "bug": bug})
    with pytest.raises(CheckFailed):
        checks(bugged)[target]()
