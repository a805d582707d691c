"""Token-index inputs: the gradient checks differentiate one zero leaf in the caller's layout, whose rows every
embedding call that reads the input gets added (the input itself, a view of part of it, a copy of all of it in
another axis order or flipped), so what the model computes is unchanged. Each case here was a false alarm, a
missed bug or wrong values found by a stranger helper, checked against the model's own behaviour."""

import pytest
import torch
from torch import nn

from rnnshapes.testing import CheckFailed, check_batch_independence, check_causal
from rnnshapes.testing._gradients import _probe
from rnnshapes.testing._influence import every_row

torch.manual_seed(0)
VOCAB, EMBED, HIDDEN = 13, 5, 6


class LM(nn.Module):
    """A batch-first GRU language model; ``feed`` says how the ids reach the embedding."""

    def __init__(self, feed: str = "as is"):
        super().__init__()
        self.feed = feed
        self.emb = nn.Embedding(VOCAB, EMBED)
        self.rnn = nn.GRU(EMBED, HIDDEN, batch_first=True)
        self.rnn_t = nn.GRU(EMBED, HIDDEN)  # time-first, for the transposed feeds
        self.gate = nn.Embedding(VOCAB, 1)
        self.back = nn.GRU(EMBED, HIDDEN, batch_first=True)

    def forward(self, ids):
        batch, time = ids.shape
        if self.feed == "transposed copy":  # the model's own layout is time-first, fed a contiguous copy
            return self.rnn_t(self.emb(ids.t().contiguous()))[0].transpose(0, 1)
        if self.feed == "flattened copy":
            return self.rnn_t(self.emb(ids.t().reshape(-1)).view(time, batch, -1))[0].transpose(0, 1)
        if self.feed == "int32":
            return self.rnn(self.emb(ids.long()))[0]
        out = self.rnn(self.emb(ids))[0]
        if self.feed == "flip copy":  # a hand-made backward direction: step t reads every later step
            return out + self.back(self.emb(ids.flip(1)))[0].flip(1)
        if self.feed == "gate over the batch":  # a second embedding, mixing the batch
            return out * torch.sigmoid(self.gate(ids).mean(0))
        return out


def test_overlapping_windows_from_unfold_are_read_per_example():
    ids = torch.randint(0, VOCAB, (12,)).unfold(0, 6, 1)[:4]  # (4, 6), windows sharing storage
    model = LM()
    assert check_batch_independence(model, ids).shape == (4, 4)
    assert check_causal(model, ids).shape == (6, 6)


@pytest.mark.parametrize("feed", ["transposed copy", "flattened copy", "int32"])
def test_a_copy_of_the_whole_input_is_placed_in_the_callers_layout(feed):
    for batch, time in ((4, 4), (3, 5)):  # square, where axes could be confused, and not
        ids = torch.randint(0, VOCAB, (batch, time))
        if feed == "int32":
            ids = ids.int()
        model = LM(feed)
        assert check_batch_independence(model, ids).shape == (batch, batch)
        assert check_batch_independence(model, ids, wrt=0).shape == (batch, batch)
        assert check_causal(model, ids).shape == (time, time)


def test_a_flipped_copy_read_is_seen_and_fails_causality():
    ids = torch.randint(0, VOCAB, (3, 6))
    with pytest.raises(CheckFailed, match=r"every output step reads EVERY later step"):
        check_causal(LM("flip copy"), ids)


def test_a_second_embedding_of_the_same_ids_is_differentiated_in_its_own_slice():
    ids = torch.randint(0, VOCAB, (4, 5))
    with pytest.raises(
        CheckFailed,
        match=r"the embedding by model\.emb \(Embedding\) and model\.gate \(Embedding\) of input 0",
    ):
        check_batch_independence(LM("gate over the batch"), ids)


def test_the_same_tensor_as_two_token_inputs_is_refused_with_the_fix():
    class CopyTask(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.rnn = nn.Embedding(VOCAB, EMBED), nn.GRU(EMBED, HIDDEN, batch_first=True)

        def forward(self, source, target):
            _, h = self.rnn(self.emb(source))
            return self.rnn(self.emb(target), h)[0]

    x = torch.randint(0, VOCAB, (3, 5))
    with pytest.raises(
        ValueError, match=r"inputs 0 and 1 hold the same token tensor(.|\n)*x\.clone\(\) for input 1"
    ):
        check_causal(CopyTask(), (x, x), wrt=1)
    assert check_causal(CopyTask(), (x, x.clone()), wrt=1).shape == (5, 5)  # equal values, two tensors


def test_the_matrix_is_the_models_own_jacobian_for_an_embedding_subclass_read_step_by_step():
    class Positional(nn.Embedding):  # adds a position term per call: per-step calls all get position 0
        def forward(self, ids):
            return super().forward(ids) + 0.5 * torch.arange(ids.shape[-1]).unsqueeze(-1)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.cell = Positional(VOCAB, EMBED), nn.GRUCell(EMBED, HIDDEN)

        def forward(self, target):
            h, outs = torch.zeros(target.shape[0], HIDDEN), []
            for t in range(target.shape[1]):
                h = self.cell(self.emb(target[:, t : t + 1])[:, 0], h)
                outs.append(h)
            return torch.stack(outs, 1)

    model, target = Decoder().eval(), torch.randint(0, VOCAB, (3, 4))
    found = check_causal(model, target)
    # the model's own Jacobian: d out[:, t] / d (embedding output of step s), weighted as the check weighs
    embedded = [model.emb(target[:, s : s + 1])[:, 0].detach().requires_grad_() for s in range(4)]
    h, outs = torch.zeros(3, HIDDEN), []
    for s in range(4):
        h = model.cell(embedded[s], h)
        outs.append(h)
    out = torch.stack(outs, 1)
    from rnnshapes.testing._calls import weights_like

    w = weights_like(out, 0)
    for t in range(4):
        grads = torch.autograd.grad(
            (out[:, t] * w[:, t]).sum(), embedded, retain_graph=True, allow_unused=True
        )
        row = [0.0 if g is None else float(g.abs().max()) for g in grads]
        torch.testing.assert_close(found[t].tolist(), row, rtol=1e-5, atol=1e-7)


def test_a_shifted_input_is_refused_as_other_steps_and_named_as_a_possible_look_ahead():
    class Shifted(nn.Module):  # embeds ids[:, 1:]: output step t reads token t + 1, and has one step fewer
        def __init__(self):
            super().__init__()
            self.emb, self.rnn = nn.Embedding(VOCAB, EMBED), nn.GRU(EMBED, HIDDEN, batch_first=True)

        def forward(self, ids):
            return self.rnn(self.emb(ids[:, 1:]))[0]

    with pytest.raises(
        CheckFailed, match=r"different sizes(.|\n)*reads ahead \(an input shifted with x\[:, 1:\]"
    ):
        check_causal(Shifted(), torch.randint(0, VOCAB, (3, 6)))


class BagContext(nn.Module):
    """A tagger plus one bag of the WHOLE sequence as context (reads the future), the bag as an nn.EmbeddingBag
    or, the same function, an nn.Embedding reduced by hand: the check must give both the same matrix."""

    def __init__(self, mode: str, by_hand: bool, weights: bool):
        super().__init__()
        self.mode, self.by_hand, self.weights = mode, by_hand, weights
        self.emb, self.rnn = nn.Embedding(VOCAB, EMBED), nn.GRU(EMBED, HIDDEN, batch_first=True)
        self.bag = nn.EmbeddingBag(VOCAB, HIDDEN, mode=mode, padding_idx=0)
        self.rows = nn.Embedding(VOCAB, HIDDEN, padding_idx=0)
        self.rows.weight = self.bag.weight  # the same table

    def forward(self, ids):
        weights = torch.linspace(0.5, 1.5, ids.numel()).view(ids.shape) if self.weights else None
        if not self.by_hand:
            context = self.bag(ids, per_sample_weights=weights)
        else:
            rows, keep = self.rows(ids), (ids != 0).unsqueeze(-1)
            if self.mode == "max":
                context = rows.masked_fill(~keep, float("-inf")).amax(1)
            else:
                w = keep.float() * (1.0 if weights is None else weights.unsqueeze(-1))
                context = (rows * w).sum(1) / (keep.sum(1).clamp(min=1) if self.mode == "mean" else 1)
        return self.rnn(self.emb(ids))[0] + context.unsqueeze(1)


@pytest.mark.parametrize(
    ("mode", "weights"), [("sum", False), ("sum", True), ("mean", False), ("max", False)]
)
def test_an_embedding_bag_over_the_input_is_differentiated_with_its_own_jacobian(mode, weights):
    torch.manual_seed(1)
    ids = torch.randint(1, VOCAB, (3, 5))
    ids[1, 3:] = 0  # padding_idx inside a bag
    bag, by_hand = BagContext(mode, False, weights), BagContext(mode, True, weights)
    by_hand.load_state_dict(bag.state_dict())
    with pytest.raises(CheckFailed, match=r"every output step reads EVERY later step"):
        check_causal(bag, ids)
    assert check_batch_independence(bag, ids).shape == (3, 3)

    def matrix(model):  # the whole causal matrix, failing or not
        p = _probe(model, ids, call=None, output=None, wrt=None, in_axis=1, out_axis=1, out_batch_first=True,
                   in_batch_first=True, seed=0, what="test", column=1, chunk_size=1)  # fmt: skip
        return every_row(p.engine, p.n_out)

    torch.testing.assert_close(matrix(bag), matrix(by_hand), rtol=1e-5, atol=1e-7)


class SortsByLength(nn.Module):
    """The NCRF++ / image-captioning pattern: ids sorted by length before the embedding, packed, un-sorted."""

    def __init__(self, unsort: bool = True):
        super().__init__()
        self.unsort = unsort
        self.emb, self.rnn, self.head = (
            nn.Embedding(VOCAB, EMBED),
            nn.LSTM(EMBED, HIDDEN, batch_first=True),
            nn.Linear(HIDDEN, 3),
        )

    def forward(self, words, lengths):
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        sorted_lengths, perm = lengths.sort(0, descending=True)
        out, _ = self.rnn(pack_padded_sequence(self.emb(words[perm]), sorted_lengths, batch_first=True))
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=words.shape[1])
        return self.head(out)[perm.argsort()] if self.unsort else self.head(out)


def _padded_words(lengths, seed=0):
    words = torch.randint(
        1, VOCAB, (len(lengths), int(max(lengths))), generator=torch.Generator().manual_seed(seed)
    )
    for i, n in enumerate(lengths):
        words[i, n:] = 0
    return words, torch.tensor(lengths)


def test_ids_sorted_before_the_embedding_are_placed_back_on_their_examples():
    words, lengths = _padded_words([3, 7, 5, 2])
    torch.manual_seed(0)
    assert check_batch_independence(SortsByLength().eval(), (words, lengths)) is not None
    with pytest.raises(
        CheckFailed, match="batch independence failed"
    ):  # the un-sort forgotten: a real mix-up
        check_batch_independence(SortsByLength(unsort=False).eval(), (words, lengths))


def test_sorted_ids_whose_order_cannot_be_recovered_are_refused_not_failed():
    words, lengths = _padded_words([3, 7, 3, 2])
    words[2] = words[0]  # two identical sequences: which embedding row is which example cannot be told
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=r"reads the sequences in another order of input 0 \(a copy sorted"):
        check_batch_independence(SortsByLength().eval(), (words, lengths))


class SortedChars(nn.Module):
    """allanj/pytorch_neural_crf's CharBiLSTM, cut down: (batch, words, chars) ids viewed as (batch*words, chars)
    and sorted by word length before the embedding; the order is put back after the LSTM."""

    def __init__(self):
        super().__init__()
        self.emb, self.rnn = nn.Embedding(VOCAB, EMBED), nn.GRU(EMBED, HIDDEN, batch_first=True)

    def forward(self, chars, lengths):  # (batch, words, chars), (batch, words)
        batch, words, _ = chars.shape
        flat_lengths, perm = lengths.view(-1).sort(descending=True)
        _, h_n = self.rnn(self.emb(chars.view(batch * words, -1)[perm]))
        return h_n[-1][perm.argsort()].view(batch, words, -1)  # (batch, words, hidden)


def test_char_ids_reshaped_and_sorted_before_the_embedding_are_refused_not_failed():
    chars = torch.randint(1, VOCAB, (3, 4, 5), generator=torch.Generator().manual_seed(1))
    chars[0, 1] = chars[2, 3]  # a word that repeats: the sorted rows cannot all be placed back
    lengths = torch.randint(1, 6, (3, 4), generator=torch.Generator().manual_seed(2))
    for check in (check_batch_independence, lambda m, x: check_causal(m, x, time_axis=1)):
        with pytest.raises(ValueError, match=r"reads the sequences in another order of input 0"):
            check(SortedChars().eval(), (chars, lengths))
