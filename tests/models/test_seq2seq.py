"""Lessons 14_1 and 14_2: seq2seq with and without attention (untrained models: shapes and mechanics)."""

import pytest
import torch

from rnnshapes import ShapeError
from rnnshapes.data._pairs import BOS, EOS, PAD, PAIRS_ALPHABET, Pair, encode_pairs
from rnnshapes.models import Seq2Seq, Seq2SeqAttention

MODELS = [Seq2Seq, Seq2SeqAttention]
SMALL = {"embed": 8, "hidden": 16, "max_target": 20}

PAIRS = [
    Pair("thisis.", "This is."),
    Pair("a", "A"),
    Pair("romeo:", "ROMEO:"),
    Pair("goodmorrow,sir.", "Good morrow, sir."),
]


def logits_of(out):
    return out[0] if isinstance(out, tuple) else out


@pytest.fixture(params=MODELS, ids=lambda c: c.__name__)
def model(request):
    return request.param(**SMALL).eval()


@pytest.fixture
def batch():
    return encode_pairs(PAIRS)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_forward_shapes(cls, bidirectional, batch):
    m = cls(**SMALL, bidirectional=bidirectional, layers=2)
    out = m(batch.source, batch.source_lengths, batch.target_in)
    n, t = batch.target_in.shape
    vocab = len(PAIRS_ALPHABET) + 3
    assert logits_of(out).shape == (n, t, vocab)
    if cls is Seq2SeqAttention:
        weights = out[1]
        assert weights.shape == (n, t, batch.source.shape[1])  # (batch, target time, source time)
        torch.testing.assert_close(weights.sum(-1), torch.ones(n, t))
    memory, hidden = m.encode(batch.source, batch.source_lengths)
    assert memory.shape == (n, batch.source.shape[1], (2 if bidirectional else 1) * 16)
    assert hidden.shape == (2, n, 16)


def test_the_batch_tensors_line_up(batch):
    assert (batch.target_in[:, 0] == BOS).all()
    assert batch.target_out[torch.arange(len(PAIRS)), batch.target_lengths - 1].eq(EOS).all()
    assert (
        batch.target_in[:, 1:].eq(batch.target_out[:, :-1]).logical_or(batch.target_out[:, :-1] == EOS).all()
    )
    assert batch.source_lengths.tolist() == [len(p.source) for p in PAIRS]


def test_teacher_forcing_equals_step_by_step_decoding(model, batch):
    with torch.no_grad():
        whole = logits_of(model(batch.source, batch.source_lengths, batch.target_in))
        memory, hidden = model.encode(batch.source, batch.source_lengths)
        steps = []
        for t in range(batch.target_in.shape[1]):  # one step per call, the state carried
            logits, hidden = model.step(batch.target_in[:, t : t + 1], hidden, memory, batch.source_lengths)
            steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), whole, rtol=1e-5, atol=1e-5)


class CountingDecoder(Seq2Seq):
    """A stand-in decoder for the greedy loop: it writes "x" and ends each row after as many steps as its
    source is long (a step counter in the hidden state), so the rows end at known, different steps."""

    def _decode(self, target_in, hidden, memory, mask):
        logits, out_hidden = [], hidden
        for _ in range(target_in.shape[1]):
            out_hidden = out_hidden + 1  # the count of steps so far, in every feature
            count = out_hidden[0, :, 0]
            step = torch.full((target_in.shape[0], self.head.out_features), -1.0)
            step[:, 3 + PAIRS_ALPHABET.index("x")] = 0.0
            step[count > mask.sum(1), EOS] = 1.0
            logits.append(step[:, None])
        return torch.cat(logits, dim=1), out_hidden, None

    def encode(self, source, lengths):
        memory, _ = super().encode(source, lengths)
        return memory, torch.zeros(1, source.shape[0], self.decoder.hidden_size)


def test_greedy_stops_each_row_at_its_own_eos():
    sources = ["abc", "a", "abcdefgh", "ab", "abcde"]
    batch = encode_pairs([Pair(s, s) for s in sources])
    m = CountingDecoder(**SMALL).eval()
    with torch.no_grad():
        tokens, lengths = m.greedy(batch.source, batch.source_lengths)
    assert lengths.tolist() == [3, 1, 8, 2, 5]
    assert tokens.shape == (5, 9)  # the loop ends with the last row's EOS
    assert m.restore(sources) == ["xxx", "x", "xxxxxxxx", "xx", "xxxxx"]
    with torch.no_grad():
        capped, capped_lengths = m.greedy(batch.source, batch.source_lengths, max_length=4)
    assert capped.shape == (5, 4) and capped_lengths.tolist() == [3, 1, 4, 2, 4]  # 4: no EOS came


class EndlessDecoder(CountingDecoder):
    """Writes "x" forever: a model that has not learned where lines end."""

    def _decode(self, target_in, hidden, memory, mask):
        logits, hidden, weights = super()._decode(target_in, hidden, memory, mask)
        logits[..., EOS] = -1.0
        return logits, hidden, weights


def test_greedy_ends_a_row_without_eos_at_twice_its_source_plus_one():
    sources = ["abc", "a", "abcdefghijklmnopqrstuvwxyzabcdef"]  # 3, 1, 32 characters; max_target 20
    batch = encode_pairs([Pair(s, s) for s in sources])
    m = EndlessDecoder(**SMALL).eval()
    with torch.no_grad():
        tokens, lengths = m.greedy(batch.source, batch.source_lengths)
    assert lengths.tolist() == [7, 3, 20]
    assert tokens.shape == (3, 20)
    assert (tokens[0, 7:] == PAD).all() and (tokens[1, 3:] == PAD).all()
    assert m.restore(["ab"]) == ["xxxxx"]


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_greedy_rows_end_at_eos_and_do_not_depend_on_the_batch(cls):
    g = torch.Generator().manual_seed(0)
    sources = [
        "".join(chr(97 + int(i)) for i in torch.randint(0, 26, (n,), generator=g)) for n in range(1, 13)
    ]
    batch = encode_pairs([Pair(s, s) for s in sources])
    m = cls(**SMALL).eval()
    with torch.no_grad():
        m.head.bias[EOS] += 1.0  # an untrained model: EOS now and then
        tokens, lengths = m.greedy(batch.source, batch.source_lengths)
    limits = (2 * batch.source_lengths + 1).clamp(max=m.max_target).tolist()
    columns = []
    for row, n, limit in zip(tokens, lengths.tolist(), limits, strict=True):
        assert n <= limit
        if n < limit:
            assert row[n] == EOS
            assert (row[n + 1 :] == PAD).all()  # nothing after a row's EOS
        assert (row[:n] != EOS).all() and (row[:n] != PAD).all()
        columns.append(n + 1 if n < limit else n)
    # the loop ends when the last row has ended: with its EOS, or at its length limit
    assert tokens.shape[1] == max(columns)
    # each row as decoded alone: batching changes nothing
    with torch.no_grad():
        for i in range(len(sources)):
            alone, n_alone = m.greedy(
                batch.source[i : i + 1, : batch.source_lengths[i]], batch.source_lengths[i : i + 1]
            )
            assert n_alone.item() == lengths[i].item()
            assert torch.equal(alone[0, : n_alone.item()], tokens[i, : lengths[i]])


def test_attention_gives_padding_zero_weight(batch):
    m = Seq2SeqAttention(**SMALL).eval()
    with torch.no_grad():
        _, weights = m(batch.source, batch.source_lengths, batch.target_in)
    for i, n in enumerate(batch.source_lengths.tolist()):
        assert (weights[i, :, n:] == 0).all()
        assert (weights[i, :, :n] > 0).all()


def test_outputs_do_not_depend_on_padding(model, batch):
    """Longer padding, filled with junk past each length, and another batch around a row change nothing."""
    with torch.no_grad():
        base = model(batch.source, batch.source_lengths, batch.target_in)
        junk = torch.randint(3, 40, (len(PAIRS), 7))
        padded = torch.cat([batch.source, junk], dim=1)
        for i, n in enumerate(batch.source_lengths.tolist()):
            padded[i, n:] = torch.randint(3, 40, (padded.shape[1] - n,))
        more = model(padded, batch.source_lengths, batch.target_in)
        alone = model(batch.source[1:2, :1], batch.source_lengths[1:2], batch.target_in[1:2, :2])
    torch.testing.assert_close(logits_of(more), logits_of(base), rtol=1e-5, atol=1e-6)
    if isinstance(base, tuple):  # the attention weights: the extra padded columns get zero weight
        width = base[1].shape[-1]
        torch.testing.assert_close(more[1][..., :width], base[1], rtol=1e-5, atol=1e-6)
        assert (more[1][..., width:] == 0).all()
    # row 1 ("a" -> "A", 2 decoder steps) alone equals its part of the batch
    torch.testing.assert_close(logits_of(alone)[0], logits_of(base)[1, :2], rtol=1e-5, atol=1e-6)


def test_checked_shapes_name_the_axis(model, batch):
    with pytest.raises(ShapeError, match="lengths"):
        model(batch.source, batch.source_lengths[:2], batch.target_in)
    with pytest.raises(ShapeError, match="target_in"):
        model(batch.source, batch.source_lengths, batch.target_in[:2])


def test_restore_reads_any_text_as_the_course_prepares_it(model):
    out = model.restore(["This is Sung Kim.", "thisissungkim."])
    assert len(out) == 2 and all(isinstance(s, str) for s in out)
    assert out[0] == out[1]  # case and spaces are removed before reading
    assert set("".join(out)) <= set(PAIRS_ALPHABET)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("héllo", "'é' are not in the model's vocabulary"),
        ("call 911", "'19' are not in the model's vocabulary"),
        ("a" * 41, "41 characters without spaces; the model reads at most 40"),
    ],
)
def test_restore_refuses_bad_text_with_one_clear_message(text, message):
    with pytest.raises(ValueError, match=message):
        Seq2SeqAttention(**SMALL).restore([text])


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_config_rebuilds_the_model(cls):
    m = cls(**SMALL)
    again = type(m)(**m.config)
    assert again.config == m.config
    assert [p.shape for p in again.parameters()] == [p.shape for p in m.parameters()]
