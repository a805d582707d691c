"""Issue 17: the gradient probes' batched vector-Jacobian products give the matrix one backward pass per row gives.

The reference is the loop the checks ran before: one backward pass per output slice (``every_row`` with
``chunk_size=1``). The checks' own paths (group products for batch independence, vmap chunks for causality)
must find the same zero pairs, the same values to float rounding, and the same verdict.
"""

import itertools

import pytest
import torch
from rnn_zoo import (
    BatchFirstMismatch,
    CellLoopTagger,
    CumsumOverBatch,
    EmbedTagger,
    LSTMNet,
    PackedClassifier,
    PackedInput,
    PackedTokenTagger,
    Tagger,
    ViewLeakTagger,
    features,
    tokens,
)
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from rnnshapes.testing import CheckFailed, InfluenceMatrix, _influence, check_batch_independence, check_causal
from rnnshapes.testing._gradients import _probe
from rnnshapes.testing._influence import every_row, separating_groups

LENGTHS = torch.tensor([6, 3, 5, 2, 6])


def _packed_features():
    return pack_padded_sequence(features(batch=5, time=6), LENGTHS, batch_first=True, enforce_sorted=False)


def _packed_tokens():
    x = tokens(batch=5, time=6)
    return pack_padded_sequence(x, LENGTHS, batch_first=True, enforce_sorted=False)


# name -> (model, inputs, keyword arguments of both checks)
MODELS = {
    "gru": (Tagger(), features(batch=6, time=5), {}),
    "gru, view leak": (ViewLeakTagger(), features(batch=6, time=2), {}),
    "gru, cumsum over the batch": (CumsumOverBatch(), features(batch=6, time=5), {}),
    "gru, batch_first mismatch": (BatchFirstMismatch(), features(batch=6, time=5), {}),
    "bidirectional gru": (Tagger(bidirectional=True), features(batch=6, time=5), {}),
    "lstm, 2 layers, bidirectional": (LSTMNet(3, 4, 2), features(batch=6, time=5), {}),
    "lstm cell in a loop": (CellLoopTagger(), features(batch=6, time=5), {}),
    "lstm cell in a loop, batch mean": (CellLoopTagger(mean_over_batch=True), features(batch=6, time=5), {}),
    "packed input": (PackedInput(), _packed_features(), {}),
    "packed inside, (x, lengths)": (
        PackedClassifier(),
        (features(batch=5, time=6), LENGTHS),
        {"output": lambda r: r[1]},
    ),
    "token indices": (EmbedTagger(), tokens(batch=6, time=5), {}),
    "token indices, view leak": (EmbedTagger(leak=True), tokens(batch=6, time=2), {}),
    "packed token indices": (PackedTokenTagger(), _packed_tokens(), {}),
    "packed token indices, bidirectional": (PackedTokenTagger(bidirectional=True), _packed_tokens(), {}),
}


def _looped(model, inputs, *, batch: bool, **kwargs):
    """The matrix as the checks computed it before issue 17: one backward pass per output slice."""
    axis = 0 if batch else 1
    p = _probe(
        model,
        inputs,
        call=None,
        output=kwargs.get("output"),
        wrt=None,
        in_axis=axis,
        out_axis=axis,
        out_batch_first=True,
        in_batch_first=True,
        seed=0,
        what="reference",
        column=0 if batch else 1,
        chunk_size=1,
    )
    return every_row(p.engine, p.n_out)


def _verdict(check, model, inputs, **kwargs):
    try:
        return "passed", check(model, inputs, **kwargs)
    except CheckFailed as e:
        return str(e).splitlines()[0], None


PACKING = [name for name in MODELS if "pack" in name and "token" not in name]
"""The models that call pack_padded_sequence: looped as shipped (vmap has no batching rule for its backward)."""

CASES = [(name, False) for name in MODELS] + [(name, True) for name in PACKING]


@pytest.mark.parametrize(
    ("name", "vmap_everything"), CASES, ids=[f"{n}{', vmap even packing' if v else ''}" for n, v in CASES]
)
@pytest.mark.parametrize("check", [check_batch_independence, check_causal], ids=["batch", "causal"])
def test_batched_and_looped_paths_agree(name, check, vmap_everything, monkeypatch):
    model, inputs, kwargs = MODELS[name]
    packs = name in PACKING
    if vmap_everything:  # vmap's own path on packing too, to compare it with the loop
        monkeypatch.setattr(_influence, "UNBATCHED_NODES", {})
        monkeypatch.setattr(_influence, "LOOP_ON_FALLBACK", False)
    batch = check is check_batch_independence
    reference = _looped(model, inputs, batch=batch, **kwargs)
    verdicts = {}
    for chunk in (None, 1, 2, 3):  # 3: causality tries the first chunk on a rerun (test_causal_prefix.py)
        verdict, found = _verdict(check, model, inputs, chunk_size=chunk, **kwargs)
        verdicts[chunk] = verdict
        if found is None:
            continue
        assert isinstance(found, InfluenceMatrix)
        batched = chunk != 1 and (vmap_everything or not packs)
        assert found.how.startswith("batched" if batched else "looped"), found.how
        if packs and chunk != 1 and not vmap_everything:
            assert "_pack_padded_sequence_backward" in found.how  # the fallback says why
        n = min(reference.shape)
        want = reference[:n, :n]
        assert torch.equal(found == 0, want == 0), f"{name}: the zero pairs differ ({found.how})"
        torch.testing.assert_close(found.as_subclass(torch.Tensor), want, rtol=1e-5, atol=0)
    assert len(set(verdicts.values())) == 1, verdicts
    # the verdict is the reference's: a leak is a nonzero pair off the diagonal (batch) or above it (causal)
    n = min(reference.shape)
    square = reference[:n, :n]
    leaks = bool((square - torch.diag(square.diagonal())).any()) if batch else bool(square.triu(1).any())
    assert (verdicts[None] != "passed") == leaks


def test_the_groups_separate_every_pair_with_few_products():
    for n in (5, 8, 17, 64, 128, 300):
        member = separating_groups(n)
        assert member is not None
        for i, j in itertools.permutations(range(n), 2):
            if n > 20 and (i + j) % 7:  # every pair for the small ones, a sample of the large ones
                continue
            assert bool((member[:, i] & ~member[:, j]).any()), (n, i, j)
    assert len(separating_groups(128)) == 10  # comb(10, 5) = 252 >= 128 > comb(9, 4)
    assert separating_groups(4) is None  # not fewer than one product per example


def test_a_clean_batch_of_128_takes_10_products_and_a_leaking_one_adds_only_its_leaking_rows():
    x = features(batch=128, time=3)
    clean = check_batch_independence(Tagger(), x)
    assert clean.how.startswith("batched: 10 vector-Jacobian products")
    assert "settled 128 of 128 rows" in clean.how

    class LeakFromZero(nn.Module):  # only example 5 reads another example (0)
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(3, 4, batch_first=True)

        def forward(self, x):
            out = self.rnn(x)[0]
            return torch.cat([out[:5], out[5:6] + out[0:1], out[6:]])

    with pytest.raises(CheckFailed, match=r"1 of 16256 pairs \(i <- j\) are not.*\(i=5 <- j=0\)"):
        check_batch_independence(LeakFromZero(), x)


class _NoVmap(torch.autograd.Function):
    """Identity whose backward reads a Python number from the gradient: vmap cannot batch that."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        scale = 1.0 + 0.0 * float(grad.sum().item())
        return grad * scale


class NoVmapTagger(Tagger):
    def forward(self, x):
        out, h = super().forward(x)
        return _NoVmap.apply(out), h


@pytest.mark.parametrize("check", [check_batch_independence, check_causal], ids=["batch", "causal"])
def test_a_backward_vmap_refuses_falls_back_to_one_pass_per_product_and_says_so(check):
    x = features(batch=6, time=5)
    model = NoVmapTagger()
    found = check(model, x)
    assert found.how.startswith("looped:") and "batching failed" in found.how
    assert torch.equal(found, check(model, x, chunk_size=1))
    plain = Tagger()
    plain.load_state_dict(model.state_dict())
    torch.testing.assert_close(found.as_subclass(torch.Tensor), check(plain, x).as_subclass(torch.Tensor))


def test_chunk_size_bounds_each_backward_pass():
    x = features(batch=2, time=7)
    found = check_causal(Tagger(), x, chunk_size=3)
    assert "7 vector-Jacobian products in 3 backward passes (chunks of up to 3)" in found.how
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        check_causal(Tagger(), x, chunk_size=0)


@pytest.mark.parametrize("check", [check_causal, check_batch_independence])
def test_an_empty_batch_is_a_clear_error(check):
    # it was an IndexError from amax (causality) and a "saw nothing" failure (batch independence)
    with pytest.raises(
        ValueError, match=r"shape \(0, 5, 4\)\)\) is empty: nothing to check; pass at least one"
    ):
        check(Tagger(), features(batch=0, time=5))


def test_a_missing_batching_rule_seen_in_a_batched_pass_turns_the_rest_into_one_pass_each(monkeypatch):
    # vmap's per-product fallback costs many times a backward pass each (a packed LSTM tagger: 14 s against 2.5 s);
    # with packing unlisted, the first pass (chunks of 4) shows the fallback and the rest run one pass each
    monkeypatch.setattr(_influence, "UNBATCHED_NODES", {})
    model = MODELS["packed input"][0]
    lengths = torch.tensor([10, 3, 7, 2, 10])
    inputs = pack_padded_sequence(features(batch=5, time=10), lengths, batch_first=True, enforce_sorted=False)
    found = check_causal(model, inputs, chunk_size=4)
    assert found.how.startswith("looped: 10 vector-Jacobian products")
    assert "no batching rule for aten::_pack_padded_sequence_backward" in found.how
    assert "(seen in a pass of 4)" in found.how
    torch.testing.assert_close(
        found.as_subclass(torch.Tensor), check_causal(model, inputs, chunk_size=1).as_subclass(torch.Tensor)
    )
