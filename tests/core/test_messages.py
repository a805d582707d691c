"""Every hint a ShapeError can give, pinned by its message (the docs' error catalogue runs the same mistakes)."""

import re

import pytest
import torch
from jaxtyping import Float
from torch import Tensor, nn

from rnnshapes import ShapeError, guard, pack, shapecheck
from rnnshapes.core._messages import HINTS

from ._models import Indexed, Seq


def test_hidden_given_batch_first_names_axis_values_origin_and_hint():
    model = Seq("gru", layers=2, bidirectional=True)  # layers*dirs = 4
    x = torch.randn(3, 6, 5)
    with pytest.raises(ShapeError) as info:
        model(x, torch.zeros(3, 4, 7))
    msg = str(info.value)
    assert msg.startswith("Seq.forward(): argument 'hidden' has the wrong shape.")
    assert "expected: (layers*dirs=4, batch=3, hidden=7)" in msg
    assert "actual:   (3, 4, 7) float32 on cpu" in msg
    assert "mismatch: axis 1 (batch) should be 3, got 4" in msg
    assert "layers=2 dirs=2 hidden=7 input=5 from self.rnn" in msg
    assert "batch=3 from x axis 0" in msg
    assert "[hidden-batch-first]" in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize("batch", [3, 4])  # 4: the batch equals layers*dirs, as in pytorch/examples' snli
def test_a_state_of_one_row_per_layer_for_a_bidirectional_lstm_is_told_to_count_directions(batch):
    lstm, x = nn.LSTM(6, 10, num_layers=2, bidirectional=True), torch.randn(7, batch, 6)
    h = torch.zeros(2, batch, 10)  # num_layers rows: the directions forgotten
    with guard(lstm):
        with pytest.raises(ShapeError) as info:
            lstm(x, (h, h))
        msg = str(info.value)
        assert "mismatch: axis 0 (layers*dirs) should be 4, got 2" in msg
        assert (
            "[hidden-dirs] this layer is bidirectional: it keeps one state per layer and direction, "
            "num_layers * 2 = 4 (layer by layer, forward then backward), where 'hx[0]' has one per layer (2). "
            "Build it as torch.zeros(4, batch, hidden); the cell state hx[1] needs the same." in msg
        )
        # never the batch-first hint: transposing (2, 4, 10) would not fit (4, 4, 10) either
        assert "[hidden-batch-first]" not in msg
        h = torch.zeros(4, batch, 10)
        assert lstm(x, (h, h))[0].shape == (7, batch, 20)  # the hint's fix runs


def test_a_state_of_two_rows_per_layer_for_a_unidirectional_gru_is_told_it_has_one_direction():
    gru, x = nn.GRU(6, 10, num_layers=2, batch_first=True), torch.randn(3, 7, 6)
    with guard(gru):
        with pytest.raises(
            ShapeError,
            match=r"\[hidden-dirs\] this layer is not bidirectional: it keeps one state "
            r"per layer, num_layers = 2, where 'hx' has two per layer \(4\), as if it were\. "
            r"Build it as torch.zeros\(2, batch, hidden\)\.$",
        ):
            gru(x, torch.zeros(4, 3, 10))
        assert gru(x, torch.zeros(2, 3, 10))[1].shape == (2, 3, 10)


def test_input_in_the_other_layout():
    model = Seq("gru", layers=1, bidirectional=False, batch_first=True)
    with pytest.raises(
        ShapeError, match=r"\[layout\] the module has batch_first=True, so 'x' must be \(batch, time"
    ):
        model(torch.randn(6, 3, 5), torch.zeros(1, 3, 7))


def test_input_in_the_other_layout_sequence_first_module():
    model = Seq("rnn", layers=1, bidirectional=False, batch_first=False)
    with pytest.raises(ShapeError, match=r"batch_first=False, so 'x' must be \(time, batch, \.\.\.\)"):
        model(torch.randn(3, 6, 5), torch.zeros(1, 3, 7))


def test_bare_tensor_where_lstm_wants_pair():
    lstm = nn.LSTM(5, 7, batch_first=True)
    with guard(lstm), pytest.raises(ShapeError, match=r"\[lstm-pair\] an LSTM's state is a pair \(h, c\)"):
        lstm(torch.randn(2, 4, 5), torch.zeros(1, 2, 7))


@pytest.mark.parametrize("slip", ["h with hidden_size", "(c, h)"])
def test_an_lstm_with_proj_size_given_h_of_hidden_size_is_told_h_has_proj_size_features(slip):
    lstm, x = nn.LSTM(5, 7, num_layers=2, bidirectional=True, proj_size=3), torch.randn(6, 3, 5)
    h, c = torch.zeros(4, 3, 3), torch.zeros(4, 3, 7)
    state = (c, c) if slip == "h with hidden_size" else (c, h)
    with guard(lstm):
        with pytest.raises(
            ShapeError, match=r"argument 'hx\[0\]'(.|\n)*\[lstm-proj\] this LSTM has proj_size=3: h "
        ):
            lstm(x, state)
        assert lstm(x, (h, c))[0].shape == (6, 3, 6)  # the hint's fix runs


@pytest.mark.parametrize("batch", [(3,), ()])
def test_bare_tensor_where_lstm_cell_wants_pair_gets_the_cells_shapes_and_a_fix_that_runs(batch):
    cell, x, h = nn.LSTMCell(5, 7), torch.randn(*batch, 5), torch.zeros(*batch, 7)
    with guard(cell):
        with pytest.raises(
            ShapeError, match=r"\[lstm-pair\] an LSTMCell's state is a pair \(h, c\), each \(batch, hidden\)"
        ):
            cell(x, h)
        hx = h
        assert cell(x, (hx, torch.zeros_like(hx)))[0].shape == (*batch, 7)  # the hint's fix runs


def test_pair_where_gru_wants_one_tensor():
    class G(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(5, 7, batch_first=True)
            self.batch_first = True

        @shapecheck
        def forward(
            self, x: Float[Tensor, "*seq input"], hidden: Float[Tensor, "layers*dirs batch hidden"] | None
        ):
            return self.rnn(x, hidden)

    with pytest.raises(ShapeError, match=r"\[not-lstm-pair\] 'hidden' is a tuple of 2"):
        G()(torch.randn(2, 4, 5), (torch.zeros(1, 2, 7), torch.zeros(1, 2, 7)))


def test_unbatched_input():
    with pytest.raises(
        ShapeError,
        match=r"(?s)expected 3 axes \(batch, time, input=5\), got 2.*\[unbatched\].*x\.unsqueeze\(0\)",
    ):
        Seq()(torch.randn(6, 5))


def test_one_hot_where_indices_wanted():
    x = torch.nn.functional.one_hot(torch.randint(0, 11, (2, 5)), 11).float()
    with pytest.raises(ShapeError, match=r"\[one-hot-for-indices\].*x\.argmax\(-1\)"):
        Indexed()(x, torch.tensor([5, 3]))


def test_indices_where_one_hot_wanted():
    with pytest.raises(ShapeError, match=r"\[indices-for-one-hot\].*one_hot\(x, num_classes=5\)\.float\(\)"):
        Seq()(torch.randint(0, 5, (2, 6)))


def test_lengths_not_matching_batch():
    with pytest.raises(
        ShapeError, match=r"\[lengths-batch\] 'lengths' holds one length per sequence, so it needs batch=2"
    ):
        Indexed()(torch.randint(0, 11, (2, 5)), torch.tensor([5, 3, 1]))


def test_lengths_taken_along_time():
    with pytest.raises(ShapeError, match=r"It has time=5 entries"):
        Indexed()(torch.randint(0, 11, (2, 5)), torch.tensor([5, 3, 1, 1, 1]))


def test_lengths_that_fit_the_time_axis_blame_the_lengths_first():
    # x is right (batch=2, time=5); the lengths were taken per time step: the lengths hint comes first
    with pytest.raises(ShapeError) as info:
        Indexed()(torch.randint(0, 11, (2, 5)), torch.tensor([5, 4, 3, 2, 1]))
    hints = [line for line in str(info.value).splitlines() if "hint:" in line]
    assert "[lengths-batch]" in hints[0] and "[layout] or:" in hints[1]


def test_lengths_too_long_for_the_time_axis_blame_the_layout_first():
    # x is (time=2, batch=5) given to a batch_first model; lengths [5, 4] cannot count steps of a 2-step axis
    with pytest.raises(ShapeError) as info:
        Indexed(batch_first=False)(torch.randint(0, 11, (2, 5)), torch.tensor([5, 4]))
    hints = [line for line in str(info.value).splitlines() if "hint:" in line]
    assert "[layout] the module has batch_first=False" in hints[0] and "[lengths-batch]" in hints[1]


def test_float_lengths():
    with pytest.raises(
        ShapeError, match=r"(?s)wrong dtype.*\[lengths-dtype\] 'lengths' holds one length per"
    ):
        Indexed()(torch.randint(0, 11, (2, 5)), torch.tensor([5.0, 3.0]))


class WordsOfChars(nn.Module):
    """Characters of each word through one GRU: the inner batch is batch*words on purpose."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(30, 4)
        self.chars = nn.GRU(4, 6, batch_first=True)
        self.words = nn.GRU(6, 8, batch_first=True)

    def forward(self, x):  # x: (batch, words, chars) indices
        batch, words, chars = x.shape
        _, h_n = self.chars(self.embedding(x.reshape(batch * words, chars)))  # (batch*words, chars, embed)
        return self.words(h_n[-1].reshape(batch, words, 6))[0]  # (batch, words, hidden)


def test_under_batch_axis_a_layer_on_another_batch_on_purpose_passes():
    model, x = WordsOfChars(), torch.randint(0, 30, (2, 5, 7))  # words folded into the batch: (10, 7)
    for batch_axis in (0, None):
        with guard(model, batch_axis=batch_axis):
            assert model(x).shape == (2, 5, 8)


class SwappedAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(4, 8, batch_first=True)
        self.attention = nn.MultiheadAttention(8, 2)  # batch_first=False: (target, batch, embed)

    def forward(self, x):
        out, _ = self.rnn(x)  # (batch, time, 8)
        return self.attention(out, out, out)[0]  # needs out.transpose(0, 1): torch runs it as batch=time


def test_guard_says_where_batch_came_from_when_a_layer_holds_it_on_its_time_axis():
    model, x = SwappedAttention(), torch.randn(3, 7, 4)
    assert model(x).shape == (3, 7, 8)  # torch: no complaint
    with (
        guard(model, batch_axis=0),
        pytest.raises(
            ShapeError,
            match=r"(?s)axis 1 \(batch\) should be 3, got 7.*\[guard-batch\] guard took batch=3 from "
            r"the model's input axis 0 \(batch_axis\), and this layer's input holds 3 on its time axis",
        ),
    ):
        model(x)


def test_lengths_for_packing_must_be_on_cpu_and_in_range():
    x = torch.randn(2, 4, 3)
    with pytest.raises(ShapeError, match=r"\[lengths-range\].*"):
        pack(x, torch.tensor([4, 5]))
    with pytest.raises(ShapeError, match=r"\[lengths-range\]"):
        pack(x, torch.tensor([4, 0]))
    with pytest.raises(ShapeError, match=r"\[lengths-batch\]"):
        pack(x, torch.tensor([4, 2, 1]))
    lengths = torch.tensor([4, 2])
    fake_cuda = torch.empty(2, dtype=torch.long, device="meta")
    with pytest.raises(ShapeError, match=r"\[lengths-device\].*lengths\.cpu\(\)"):
        pack(x, fake_cuda)
    packed = pack(x, lengths)
    assert packed.data.shape == (6, 3)


def test_device_mismatch_names_the_weights():
    model = Seq("gru", 1, False)
    guard(model)  # the layer's own call proves it: shapecheck leaves devices to the forward
    x = torch.empty(2, 3, 5, device="meta")
    with pytest.raises(
        ShapeError,
        match=r"(?s)rnn \(GRU\)\.forward\(\): argument 'input' is on the wrong device.*expected: cpu \(where "
        r"rnn\.weight_ih_l0 is\).*\[device\]",
    ):
        model(x)


def test_dtype_mismatch_with_weights():
    model = Seq("gru", 1, False)
    guard(model)
    with pytest.raises(
        ShapeError,
        match=r"(?s)different dtype from the weights.*expected: float32 \(the dtype of rnn\.weight_ih_l0\).*\[dtype\]",
    ):
        model(torch.randn(2, 3, 5, dtype=torch.float64))


class _Casts(nn.Module):
    """Forwards that cast or move what they get before the layer: torch runs them (the stranger's repros)."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_first = True
        self.rnn = nn.GRU(5, 7, batch_first=True)

    @shapecheck
    def forward(
        self, x: Float[Tensor, "*seq input"], mask: Float[Tensor, "*seq"]
    ) -> Float[Tensor, "*seq hidden"]:
        out, _ = self.rnn(x.to(self.rnn.weight_ih_l0))
        return out * mask[..., None]


def test_shapecheck_leaves_dtypes_and_devices_to_the_forward():
    model = _Casts()
    x, mask = torch.randn(2, 3, 5), torch.ones(2, 3)
    assert model(x.double(), mask).dtype == torch.float32  # cast inside
    assert model(x, mask.double()).dtype == torch.float64  # a float64 mask promotes the output
    model.double()  # gradcheck's double model with a float mask
    assert model(x, mask).dtype == torch.float64
    with pytest.raises(ShapeError, match=r"argument 'mask' has the wrong shape"):
        model(x, torch.ones(3, 2))  # the shapes are still checked


def test_cell_hidden_given_to_a_layer():
    with pytest.raises(ShapeError, match=r"\[cell-hidden\] a 2-D \(batch, hidden\) state"):
        Seq("gru", 1, False)(torch.randn(2, 3, 5), torch.zeros(2, 7))


def test_embedding_index_range_under_guard():
    model = Indexed()
    with guard(model, batch_axis=None), pytest.raises(ShapeError, match=r"\[index-range\].*vocab=11"):
        model(torch.tensor([[3, 12]]), torch.tensor([2]))


def test_every_hint_is_exercised_by_this_file():
    source = open(__file__).read()
    missing = [key for key in HINTS if f"[{key}]" not in source and f"\\[{key}\\]" not in source]
    assert not missing, f"hints without a pinned message test: {missing}"


def test_return_value_is_checked():
    class Wrong(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(5, 7, batch_first=True)
            self.batch_first = True

        @shapecheck
        def forward(self, x: Float[Tensor, "*seq input"]) -> Float[Tensor, "batch hidden"]:
            out, h = self.rnn(x)
            return h  # (layers*dirs, batch, hidden): the classic hidden-as-features slip

    with pytest.raises(ShapeError, match=re.escape("argument 'return value' has the wrong shape")):
        Wrong()(torch.randn(2, 3, 5))


def test_guard_hints_of_index_dtype_attention_and_dataparallel():
    emb = nn.Embedding(10, 4)
    with (
        guard(emb),
        pytest.raises(ShapeError, match=r"\[index-dtype\] nn\.Embedding takes indices as torch\.long"),
    ):
        emb(torch.tensor([1, 2], dtype=torch.int8))
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    q, k = torch.randn(3, 5, 8), torch.randn(3, 7, 8)
    with (
        guard(mha),
        pytest.raises(ShapeError, match=r"\[attention-mask\] key_padding_mask is \(batch, source\)"),
    ):
        mha(q, k, k, key_padding_mask=torch.zeros(7, 3, dtype=torch.bool))
    with (
        guard(mha),
        pytest.raises(ShapeError, match=r"\[mha-layout\] this nn\.MultiheadAttention has batch_first=True"),
    ):
        mha(q.transpose(0, 1), k.transpose(0, 1), k.transpose(0, 1))
    gru = nn.GRU(3, 4, num_layers=2)
    replica = gru._replicate_for_data_parallel()  # marked _is_replica by torch
    with (
        guard(replica),
        pytest.raises(
            ShapeError, match=r"\[dataparallel-hidden\] this module runs in an nn\.DataParallel replica"
        ),
    ):
        replica(torch.randn(5, 2, 3), torch.zeros(1, 4, 4))  # h0 split on its layers axis


def test_a_returned_tensor_in_the_other_layout_gets_a_layout_hint():
    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(5, 7)  # time-first
            self.head = nn.Linear(7, 3)

        @shapecheck
        def forward(self, x: Float[Tensor, "batch time input"]) -> Float[Tensor, "batch time classes"]:
            out, _ = self.rnn(x.transpose(0, 1))
            return self.head(out)  # (time, batch, classes): the transpose back was forgotten

    with pytest.raises(
        ShapeError,
        match=r"(?s)argument 'return value'.*\[layout\] 'return value' looks like \(time, batch, \.\.\.\), but its "
        r"annotation says \(batch, time, \.\.\.\): transpose it before returning",
    ):
        Tagger()(torch.randn(3, 6, 5))


def test_hidden_batch_first_on_an_lstm_says_the_cell_state_needs_the_same_fix():
    lstm, x = nn.LSTM(5, 7, num_layers=2, batch_first=True), torch.randn(3, 4, 5)
    h, c = torch.zeros(3, 2, 7), torch.zeros(3, 2, 7)  # both built batch-first
    with guard(lstm):
        with pytest.raises(
            ShapeError, match=r"pass hx\[0\]\.transpose\(0, 1\)\.contiguous\(\); the cell state hx\[1\]"
        ):
            lstm(x, (h, c))
        fixed = (h.transpose(0, 1).contiguous(), c.transpose(0, 1).contiguous())
        assert lstm(x, fixed)[0].shape == (3, 4, 7)


def test_a_bidirectional_encoder_state_handed_to_a_unidirectional_decoder_is_told_to_join_the_directions():
    encoder, decoder = nn.GRU(5, 4, num_layers=2, bidirectional=True), nn.GRU(6, 8, num_layers=2)
    _, h_n = encoder(torch.randn(7, 3, 5))  # (layers*dirs=4, batch=3, hidden=4)
    with guard(decoder):
        with pytest.raises(
            ShapeError,
            match=r"\[hidden-dirs\] 'hx' looks like a bidirectional layer's state: two rows per layer \(forward "
            r"and backward\) of 4 features, where this layer keeps one row per layer of 8\. Join the directions "
            r"on the features: torch\.cat\(\[hx\[0::2\], hx\[1::2\]\], dim=2\)",
        ):
            decoder(torch.randn(4, 3, 6), h_n)
        hx = h_n
        assert decoder(torch.randn(4, 3, 6), torch.cat([hx[0::2], hx[1::2]], dim=2))[1].shape == (2, 3, 8)


def test_list_items_of_other_lengths_are_told_to_use_an_underscore_name():
    @shapecheck
    def pack_all(xs: list[Float[Tensor, "time input"]]) -> torch.nn.utils.rnn.PackedSequence:
        return torch.nn.utils.rnn.pack_sequence(xs, enforce_sorted=False)

    with pytest.raises(ShapeError, match=r"\[list-items\] .* name that axis with an underscore: _time"):
        pack_all([torch.randn(5, 3), torch.randn(2, 3)])
