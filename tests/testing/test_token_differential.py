"""Differential fuzz of the gradient checks on token-index models against the models themselves.

The truth comes from torch, not from rnnshapes: output slice i depends on input slice j when changing a token
of slice j (to a few other tokens) changes output slice i. A model that passes by that truth must pass the
check (no false alarm), a model that fails by it must fail (no miss), and the check's matrix must be zero
exactly where the truth says "no dependence". The models feed their ids to the embedding in the ways real code
does: as they are, transposed (a view), flattened (a copy), one step at a time, twice, through a second
nn.EmbeddingBag, in a teacher-forced decoder loop; and carry the bugs the checks exist for (a mean over the
batch, a .view instead of a transpose, a bidirectional layer, a decoder that reads the next token).

Written from a stranger helper's fuzzer, which found false alarms and misses in the token path before it was
reworked (900 random models agree since). Runs:
    fast (part of the suite): 25 derandomized examples per test, a few CPU-seconds;
    long: ``RNNSHAPES_FUZZ_EXAMPLES=500 pytest tests/testing/test_token_differential.py -p no:randomly -q``
"""

import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from rnnshapes.testing import CheckFailed, check_batch_independence, check_causal

VOCAB, EMBED, HIDDEN = 11, 6, 7
_LONG = os.environ.get("RNNSHAPES_FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(_LONG) if _LONG else 25,
    deadline=None,
    derandomize=not _LONG,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)


class Tagger(nn.Module):
    """Token ids in the caller's layout -> embedding (fed as ``feed`` says) -> GRU/LSTM -> per-step head."""

    def __init__(self, cell: str, rnn_batch_first: bool, caller_batch_first: bool, feed: str, bug: str):
        super().__init__()
        self.rnn_bf, self.caller_bf, self.feed, self.bug = rnn_batch_first, caller_batch_first, feed, bug
        self.emb = nn.Embedding(VOCAB, EMBED)
        kind = {"GRU": nn.GRU, "LSTM": nn.LSTM}[cell]
        self.rnn = kind(EMBED, HIDDEN, batch_first=rnn_batch_first, bidirectional=bug == "bidirectional")
        self.head = nn.Linear(HIDDEN * (2 if bug == "bidirectional" else 1), 5)
        self.bag = nn.EmbeddingBag(VOCAB, EMBED, mode="mean") if feed == "bag of the sequence" else None

    def forward(self, ids):
        x_ids = ids if self.caller_bf == self.rnn_bf else ids.t()  # a view either way
        time_axis = 1 if self.rnn_bf else 0
        if self.feed == "flattened copy":
            x = self.emb(x_ids.reshape(-1)).view(*x_ids.shape, -1)
        elif self.feed == "contiguous copy":
            x = self.emb(x_ids.contiguous())
        elif self.feed == "twice":
            x = self.emb(x_ids) + 0.5 * self.emb(x_ids)
        elif self.feed == "one step at a time":
            steps = [self.emb(x_ids.select(time_axis, t)) for t in range(x_ids.shape[time_axis])]
            x = torch.stack(steps, time_axis)
        else:
            x = self.emb(x_ids)
        if self.bag is not None:  # one bag of the whole sequence per example: every step reads the future
            bags = self.bag(ids if self.caller_bf else ids.t())
            x = x + bags.unsqueeze(time_axis)
        if self.bug == "mean over the batch":
            x = x + x.mean(1 - time_axis, keepdim=True)
        out = self.rnn(x)[0]
        if self.rnn_bf != self.caller_bf:  # back to the caller's layout (the bug: a view, not a transpose)
            bad = self.bug == "view instead of transpose"
            out = out.reshape(out.shape[1], out.shape[0], -1) if bad else out.transpose(0, 1)
        return self.head(out)


class TeacherForced(nn.Module):
    """model(source, target): a shared embedding, a GRUCell decoder fed target[:, t] (or the next token)."""

    def __init__(self, read: str, bug: str):
        super().__init__()
        self.read, self.bug = read, bug
        self.emb, self.enc, self.dec = (
            nn.Embedding(VOCAB, EMBED),
            nn.GRU(EMBED, HIDDEN, batch_first=True),
            None,
        )
        self.dec = nn.GRUCell(EMBED, HIDDEN)
        self.out = nn.Linear(HIDDEN, VOCAB)

    def forward(self, source, target):
        h = self.enc(self.emb(source))[1][0]
        batch, time = target.shape
        outs = []
        for t in range(time):
            s = min(t + 1, time - 1) if self.bug == "reads the next token" else t
            if self.read == "unsqueeze":
                x = self.emb(target[:, s].unsqueeze(1)).squeeze(1)
            elif self.read == "slice":
                x = self.emb(target[:, s : s + 1])[:, 0]
            else:
                x = self.emb(target[:, s])
            if self.bug == "mean over the batch":
                x = x + x.mean(0, keepdim=True)
            h = self.dec(x, h)
            outs.append(self.out(h))
        return torch.stack(outs, 1)


def truth(model, args, position, in_axis, out_axis):
    """``(n_out, n_in)``: output slice i changes when a token of input slice j changes (torch's own answer)."""
    ids = args[position]
    with torch.no_grad():
        base = model(*args)
        n_in, n_out = ids.shape[in_axis], base.shape[out_axis]
        found = torch.zeros(n_out, n_in, dtype=torch.bool)
        for j in range(n_in):
            for k in range(ids.shape[1 - in_axis]):
                for shift in (1, 4, 7):
                    changed = ids.clone()
                    where = (j, k) if in_axis == 0 else (k, j)
                    changed[where] = (changed[where] + shift) % VOCAB
                    other = list(args)
                    other[position] = changed
                    diff = (model(*other) - base).abs().movedim(out_axis, 0).reshape(n_out, -1).amax(1)
                    found[:, j] |= diff > 0
    return found


def agree(check, model, args, position, in_axis, out_axis, leak, **kwargs):
    """The check's verdict and zero pattern against the truth, also with one backward pass per product."""
    want = truth(model, args, position, in_axis, out_axis)
    leaks = (
        bool((want & ~torch.eye(len(want), dtype=torch.bool)).any())
        if leak == "batch"
        else bool(want.triu(1).any())
    )
    for chunk in (None, 1):
        try:
            found = check(model, args, chunk_size=chunk, **kwargs)
        except CheckFailed as e:
            assert leaks, f"false alarm (chunk_size={chunk}): torch says no leak\n{e}"
            continue
        assert not leaks, f"missed (chunk_size={chunk}): torch says\n{want.int()}\nthe check says\n{found}"
        assert torch.equal(found > 0, want), f"zero pattern (chunk_size={chunk})\n{want.int()}\n{found}"


@FUZZ
@given(
    cell=st.sampled_from(["GRU", "LSTM"]),
    rnn_bf=st.booleans(),
    caller_bf=st.booleans(),
    feed=st.sampled_from(
        ["as is", "flattened copy", "contiguous copy", "twice", "one step at a time", "bag of the sequence"]
    ),
    bug=st.sampled_from(
        ["none", "none", "mean over the batch", "view instead of transpose", "bidirectional"]
    ),
    batch=st.integers(2, 4),
    time=st.integers(2, 5),
    seed=st.integers(0, 1000),
)
def test_taggers_by_token_perturbation(cell, rnn_bf, caller_bf, feed, bug, batch, time, seed):
    torch.manual_seed(seed)
    model = Tagger(cell, rnn_bf, caller_bf, feed, bug).eval()
    ids = torch.randint(0, VOCAB, (batch, time) if caller_bf else (time, batch))
    b_axis, t_axis = (0, 1) if caller_bf else (1, 0)
    agree(check_batch_independence, model, (ids,), 0, b_axis, b_axis, "batch", batch_axis=b_axis)
    if bug != "view instead of transpose":  # a view across the batch has no per-step output to compare
        agree(check_causal, model, (ids,), 0, t_axis, t_axis, "causal", time_axis=t_axis)


@FUZZ
@given(
    read=st.sampled_from(["select", "unsqueeze", "slice"]),
    bug=st.sampled_from(["none", "reads the next token", "mean over the batch"]),
    batch=st.integers(2, 4),
    time=st.integers(2, 5),
    seed=st.integers(0, 1000),
)
def test_teacher_forced_decoders_by_token_perturbation(read, bug, batch, time, seed):
    torch.manual_seed(seed)
    model = TeacherForced(read, bug).eval()
    source, target = torch.randint(0, VOCAB, (batch, 3)), torch.randint(0, VOCAB, (batch, time))
    agree(check_causal, model, (source, target), 1, 1, 1, "causal", wrt=1)
    agree(check_batch_independence, model, (source, target), 1, 0, 0, "batch", wrt=1)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_truth_itself_sees_a_planted_leak(seed):
    # the reference must be able to fail, or the fuzz above would prove nothing
    torch.manual_seed(seed)
    model = Tagger("GRU", True, True, "as is", "mean over the batch").eval()
    want = truth(model, (torch.randint(0, VOCAB, (3, 4)),), 0, 0, 0)
    assert bool((want & ~torch.eye(3, dtype=torch.bool)).any())
