"""guard(model): checks inside existing models, without editing their code."""

import copy
import io
import pickle
import warnings
from collections import namedtuple

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from rnnshapes import ShapeError, checks, guard

from ._models import Seed13_1, Seq


class Transposing(nn.Module):
    """A real silent bug: the embedding output is transposed before a batch_first GRU. torch runs it."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(10, 4)
        self.rnn = nn.GRU(4, 6, batch_first=True)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        out, _ = self.rnn(self.embedding(x).transpose(0, 1))
        return self.head(out[:, -1])


def test_torch_runs_the_transposed_input_silently_and_a_declared_batch_axis_catches_it():
    model, x = Transposing(), torch.randint(0, 10, (3, 7))
    assert model(x).shape == (7, 3)  # torch: no complaint, wrong batch
    with guard(model):  # nothing declared: the layer's own call is consistent, so nothing can be proved
        assert model(x).shape == (7, 3)
    with guard(model, batch_axis=0) as handle:
        assert handle.modules == ["embedding", "rnn", "head"]
        with pytest.raises(
            ShapeError,
            match=r"(?s)rnn \(GRU\)\.forward\(\): argument 'input'.*batch=3 from the model's input axis 0.*\[layout\]",
        ):
            model(x)
    assert model(x).shape == (7, 3)  # removed: the model runs as before


class ShrinkingDecoder(nn.Module):
    """The decoder loop of sgrvinod's image-captioning tutorial (models.py, DecoderWithAttention), cut down:
    captions sorted by length, the LSTMCell runs at step t on the batch_t captions still going."""

    def __init__(self, unsliced_state=False):
        super().__init__()
        self.embedding, self.cell, self.fc = nn.Embedding(20, 6), nn.LSTMCell(6, 12), nn.Linear(12, 20)
        self.unsliced_state = unsliced_state

    def forward(self, captions, lengths):  # (batch, time) indices, lengths sorted in decreasing order
        batch, time = captions.shape
        embeddings = self.embedding(captions)
        h, c = torch.zeros(batch, 12), torch.zeros(batch, 12)
        scores = torch.zeros(batch, time, 20)
        for t in range(int(lengths[0])):
            batch_t = int((lengths > t).sum())
            state = (h, c) if self.unsliced_state else (h[:batch_t], c[:batch_t])
            h, c = self.cell(embeddings[:batch_t, t], state)
            scores[:batch_t, t] = self.fc(h)
        return scores


class DropsEmpty(nn.Module):
    """AllenNLP's sort_and_run_forward, cut down: empty sequences are left out of the packed batch, and their
    rows come back as zeros."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(4, 6, batch_first=True)

    def forward(self, x, lengths):
        keep = lengths > 0
        packed = pack_padded_sequence(x[keep], lengths[keep], batch_first=True, enforce_sorted=False)
        _, h_n = self.rnn(packed)
        out = torch.zeros(x.shape[0], 6)
        out[keep] = h_n[-1]
        return out


@pytest.mark.parametrize("batch_axis", [None, 0])
def test_layers_run_on_fewer_examples_on_purpose_pass_under_a_declared_batch_axis(batch_axis):
    torch.manual_seed(0)
    decoder, captions, lengths = ShrinkingDecoder(), torch.randint(0, 20, (4, 7)), torch.tensor([7, 5, 3, 2])
    dropper, x, with_empty = DropsEmpty(), torch.randn(3, 5, 4), torch.tensor([5, 0, 3])
    expected = decoder(captions, lengths), dropper(x, with_empty)
    with guard(decoder, batch_axis=batch_axis), guard(dropper, batch_axis=batch_axis):
        assert torch.equal(decoder(captions, lengths), expected[0])
        assert torch.equal(dropper(x, with_empty), expected[1])


def test_under_a_declared_batch_axis_a_state_not_sliced_with_its_input_is_named():
    decoder = ShrinkingDecoder(unsliced_state=True)
    captions, lengths = torch.randint(0, 20, (4, 7)), torch.tensor([7, 5, 3, 2])
    with pytest.raises(RuntimeError, match="doesn't match hidden0 batch size"):
        decoder(captions, lengths)  # torch refuses too
    for batch_axis in (None, 0):  # the state, not the input, is the argument at fault
        with (
            guard(decoder, batch_axis=batch_axis),
            pytest.raises(ShapeError, match=r"(?s)argument 'hx\[0\]'.*axis 0 \(batch\) should be 3, got 4"),
        ):
            decoder(captions, lengths)


def test_a_state_with_its_batch_from_the_time_axis_is_offered_as_the_other_cause():
    # pytorch/examples' snli encoder with a batch-first habit: batch_size = inputs.size()[0] on a (time, batch,
    # input) input. The input is right; the state is not. The hint names both causes, the state's fix last.
    lstm, x = nn.LSTM(6, 10, num_layers=2), torch.randn(7, 4, 6)
    h0 = torch.zeros(2, 7, 10)
    with guard(lstm), pytest.raises(ShapeError) as info:
        lstm(x, (h0, h0))
    msg = str(info.value)
    assert "[layout] the module has batch_first=False, so 'input' must be (time, batch, ...)" in msg
    assert (
        "[layout] or: 'input' is laid out right and 'hx[0]' took its batch from input's other leading axis "
        "(axis 0, which is time for batch_first=False): build it with input.size(1) = 4 on axis 1." in msg
    )
    h0 = torch.zeros(2, x.size(1), 10)
    assert lstm(x, (h0, h0))[0].shape == (7, 4, 10)  # that fix runs


def test_guard_passes_correct_calls_and_sequence_first_models():
    rnn = nn.LSTM(4, 5, num_layers=2, bidirectional=True)  # sequence-first
    with guard(rnn):
        out, (h, c) = rnn(torch.randn(7, 3, 4), (torch.zeros(4, 3, 5), torch.zeros(4, 3, 5)))
        assert out.shape == (7, 3, 10)
        with pytest.raises(ShapeError, match=r"argument 'hx\[1\]'.*|mismatch: axis 1 \(batch\)"):
            rnn(torch.randn(7, 3, 4), (torch.zeros(4, 3, 5), torch.zeros(4, 2, 5)))


def test_guard_checks_packed_input_and_binds_batch_from_it():
    gru = nn.GRU(4, 5, batch_first=True)
    packed = pack_padded_sequence(
        torch.randn(3, 6, 4), torch.tensor([6, 2, 4]), batch_first=True, enforce_sorted=False
    )
    with guard(gru):
        out, h = gru(packed)
        assert h.shape == (1, 3, 5)
        with pytest.raises(ShapeError, match=r"(?s)argument 'hx'.*axis 1 \(batch\) should be 3, got 2"):
            gru(packed, torch.zeros(1, 2, 5))
        with pytest.raises(ShapeError, match=r"argument 'input\.data'.*|axis 1 \(input\) should be 4, got 3"):
            gru(
                pack_padded_sequence(
                    torch.randn(3, 6, 3), torch.tensor([6, 2, 4]), batch_first=True, enforce_sorted=False
                )
            )


def test_guard_cells_and_linear():
    cell = nn.GRUCell(4, 5)
    head = nn.Linear(5, 2)
    model = nn.ModuleDict({"cell": cell, "head": head})
    with guard(model, batch_axis=None):
        h = cell(torch.randn(3, 4), torch.zeros(3, 5))
        head(h)
        with pytest.raises(ShapeError, match=r"cell \(GRUCell\)\.forward\(\): argument 'hx'.*"):
            cell(torch.randn(3, 4), torch.zeros(2, 5))
        with pytest.raises(ShapeError, match=r"(?s)head \(Linear\).*axis 1 \(input\) should be 5, got 4"):
            head(torch.randn(3, 4))


def test_unbatched_input_is_accepted_and_checked_and_can_be_refused():
    rnn = nn.RNN(4, 5, num_layers=2)
    with guard(rnn):
        assert rnn(torch.randn(6, 4))[0].shape == (6, 5)
        assert rnn(torch.randn(6, 4), torch.zeros(2, 5))[0].shape == (6, 5)
        with pytest.raises(ShapeError, match=r"(?s)argument 'input'.*axis 1 \(input\) should be 4, got 3"):
            rnn(torch.randn(6, 3))
        with pytest.raises(
            ShapeError, match=r"(?s)argument 'hx'.*axis 0 \(layers\*dirs\) should be 2, got 1"
        ):
            rnn(torch.randn(6, 4), torch.zeros(1, 5))
        with pytest.raises(
            ShapeError, match=r"(?s)argument 'hx'.*\[unbatched\] the input is 2-D.*hx\[:, 0\]"
        ):
            rnn(torch.randn(6, 4), torch.zeros(2, 1, 5))
    with guard(rnn, allow_unbatched=False), pytest.raises(ShapeError, match=r"allow_unbatched=True"):
        rnn(torch.randn(6, 4))
    lstm = nn.LSTM(4, 5)
    with guard(lstm, allow_unbatched=True), pytest.raises(ShapeError, match=r"argument 'hx'.*wrong type"):
        lstm(torch.randn(6, 4), (torch.zeros(1, 5), torch.zeros(1, 5), torch.zeros(1, 5)))
    cell = nn.LSTMCell(4, 5)
    with guard(cell):
        h, c = cell(torch.randn(4), (torch.zeros(5), torch.zeros(5)))
        assert h.shape == (5,)
        with pytest.raises(ShapeError, match=r"(?s)argument 'input'.*axis 0 \(input\) should be 4, got 3"):
            cell(torch.randn(3))


def test_checks_off_turns_guard_off_too():
    model, x = Transposing(), torch.randint(0, 10, (3, 7))
    with guard(model), checks(False):
        assert model(x).shape == (7, 3)


def test_a_model_that_transposes_its_input_on_purpose_is_never_refused():
    model, x = Seed13_1(), torch.randint(0, 128, (4, 7))
    with guard(model):
        assert model(x).shape == (1, 4, 18)
    packer = nn.GRU(3, 5)  # a batch-first padded batch packed with batch_first=True for a time-first GRU
    packed = pack_padded_sequence(
        torch.randn(4, 6, 3), torch.tensor([6, 2, 4, 1]), batch_first=True, enforce_sorted=False
    )
    with guard(packer):
        assert packer(packed)[1].shape == (1, 4, 5)


def test_batch_axis_must_be_an_axis_or_none():
    with pytest.raises(TypeError, match=r"0 or 1\) or None; got 'auto'"):
        guard(Seed13_1(), batch_axis="auto")  # type: ignore[arg-type]


def test_autocast_casts_per_op_and_guard_follows_it():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj, self.rnn, self.head = nn.Linear(5, 8), nn.GRU(8, 6, batch_first=True), nn.Linear(6, 3)

        def forward(self, x):
            out, _ = self.rnn(self.proj(x))
            return self.head(out)

    model, cell = Net(), nn.GRUCell(8, 6)
    with guard(model), guard(cell), torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(torch.randn(2, 3, 5)).dtype == torch.bfloat16
        assert cell(torch.randn(2, 8), torch.zeros(2, 6, dtype=torch.bfloat16)).shape == (2, 6)
    with guard(model), pytest.raises(ShapeError, match=r"\[dtype\]"):  # outside autocast the rule is back
        model(torch.randn(2, 3, 5, dtype=torch.float64))


def test_lstm_state_as_a_list_and_as_a_namedtuple():
    lstm = nn.LSTM(3, 4, num_layers=2)
    state = namedtuple("State", "h c")(torch.zeros(2, 5, 4), torch.zeros(2, 5, 4))
    with guard(lstm):
        assert lstm(torch.randn(7, 5, 3), [state.h, state.c])[0].shape == (7, 5, 4)
        assert lstm(torch.randn(7, 5, 3), state)[0].shape == (7, 5, 4)
        with pytest.raises(ShapeError, match=r"argument 'hx\[1\]'"):
            lstm(torch.randn(7, 5, 3), [state.h, torch.zeros(2, 4, 4)])


def test_a_subclass_with_its_own_forward_is_skipped_and_said_so():
    class PackedGRU(nn.GRU):
        def forward(self, x, lengths):
            return super().forward(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))

    model = nn.Sequential()
    model.add_module("rnn", PackedGRU(3, 4, batch_first=True))
    handle = guard(model.rnn)
    assert handle.modules == [] and handle.skipped == {
        "model": "PackedGRU redefines forward: its arguments are not GRU's"
    }
    assert model.rnn(torch.randn(2, 5, 3), torch.tensor([5, 3]))[1].shape == (1, 2, 4)


def test_vmap_over_guarded_embedding_and_cell():
    emb, cell = nn.Embedding(10, 4), nn.GRUCell(3, 4)
    with guard(emb), guard(cell), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: no batching rule for gru_cell (a slow fallback)
        assert torch.func.vmap(emb)(torch.randint(0, 10, (3, 5))).shape == (3, 5, 4)
        assert torch.func.vmap(cell)(torch.randn(6, 3)).shape == (6, 4)


def test_complex_linear_runs_and_a_real_input_to_it_is_a_dtype_error():
    lin = nn.Linear(3, 2, dtype=torch.complex64)
    with guard(lin):
        assert lin(torch.randn(4, 3, dtype=torch.complex64)).dtype == torch.complex64
        with pytest.raises(ShapeError, match=r"different dtype from the weights"):
            lin(torch.randn(4, 3))


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.uint8])
def test_embedding_indices_of_a_dtype_torch_refuses(dtype):
    emb = nn.Embedding(10, 4)
    with guard(emb), pytest.raises(ShapeError, match=r"\[index-dtype\].*pass input\.long\(\)"):
        emb(torch.randint(0, 10, (3,)).to(dtype))
    with guard(emb):
        assert emb(torch.randint(0, 10, (3,), dtype=torch.int32)).shape == (3, 4)


def test_a_layer_state_without_batch_axis_gets_a_fix_that_works():
    gru = nn.GRU(3, 4, num_layers=2)
    with (
        guard(gru),
        pytest.raises(ShapeError, match=r"\[cell-hidden\] a 2-D \(layers\*dirs, hidden\) state") as e,
    ):
        gru(torch.randn(6, 5, 3), torch.zeros(2, 4))
    fix = "hx.unsqueeze(1).expand(-1, batch, -1).contiguous()"
    assert fix in str(e.value)
    hx = torch.zeros(2, 4)
    assert gru(torch.randn(6, 5, 3), hx.unsqueeze(1).expand(-1, 5, -1).contiguous())[0].shape == (6, 5, 4)
    with guard(gru), pytest.raises(ShapeError, match=r"torch.zeros\(2, 5, hidden\)"):
        gru(torch.randn(6, 5, 3), torch.zeros(5, 4))  # (batch, hidden): a cell's state


def test_a_wrong_hidden_state_gets_one_hint_not_a_second_guard_batch_one():
    model = Transposing()
    model.rnn = nn.GRU(4, 6, batch_first=True)

    def forward(x):
        emb = model.embedding(x)
        return model.rnn(emb, torch.zeros(emb.shape[0], 1, 6))  # (batch, layers*dirs, hidden)

    with guard(model, batch_axis=0):
        model.forward = forward  # type: ignore[method-assign]
        with pytest.raises(ShapeError, match=r"\[hidden-batch-first\]") as e:
            model(torch.randint(0, 10, (3, 7)))
    assert "[guard-batch]" not in str(e.value)


def _guarded_twin(model):
    guard(model)
    return model


@pytest.mark.parametrize("how", ["torch.save", "pickle", "deepcopy"])
def test_guarded_and_checked_models_save_pickle_and_copy_with_their_checks(how):
    from rnnshapes.models import HelloRNN

    for model in (_guarded_twin(Seed13_1()), HelloRNN()):
        x = torch.randint(0, 128, (2, 5)) if isinstance(model, Seed13_1) else torch.randn(2, 6, 5)
        model(x)  # a call first: the checks remember its signature
        if how == "torch.save":
            buf = io.BytesIO()
            torch.save(model, buf)
            buf.seek(0)
            copy_ = torch.load(buf, weights_only=False)  # our own object, just written
        elif how == "pickle":
            copy_ = pickle.loads(pickle.dumps(model))
        else:
            copy_ = copy.deepcopy(model)
        out, want = copy_(x), model(x)
        out, want = (out[0], want[0]) if isinstance(out, tuple) else (out, want)
        assert torch.equal(out, want)
        with pytest.raises(ShapeError):  # the copy keeps its checks
            copy_(
                torch.randn(2, 6, 4) if isinstance(model, HelloRNN) else torch.randint(0, 128, (2, 5)).float()
            )


@pytest.mark.filterwarnings(
    "ignore:The tensor attributes self.gru._flat_weights:UserWarning"
)  # torch's own GRU
def test_guard_under_torch_export_and_compile():
    model = Seed13_1()
    guard(model)
    x = torch.randint(0, 128, (2, 5))
    exported = torch.export.export(model, (x,))
    assert torch.equal(exported.module()(x), model(x))
    compiled = torch.compile(model, backend="eager")
    assert torch.equal(compiled(x), model(x))
    if tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 13):
        with pytest.raises(ShapeError, match=r"\[index-dtype\]|wrong dtype"):
            compiled(x.to(torch.int16))
    else:  # seen on torch 2.11 (the GPU machine): guard's hook runs while dynamo traces the recompiled call but
        # its check does not stop it, so torch's own error stands (a miss under compile, never a false alarm)
        with pytest.raises((ShapeError, RuntimeError)):
            compiled(x.to(torch.int16))


def test_the_index_range_is_checked_on_every_call_not_only_a_new_signature():
    emb = nn.Embedding(10, 4)
    with guard(emb):
        emb(torch.tensor([[1, 2]]))
        with pytest.raises(ShapeError, match=r"(?s)model \(Embedding\)\.forward\(\).*\[index-range\]"):
            emb(torch.tensor([[1, 12]]))  # the same signature as the call that passed


def test_an_empty_sequence_and_a_packed_batch_longer_than_its_data_are_shape_errors():
    gru = nn.GRU(3, 4, batch_first=True)
    with guard(gru), pytest.raises(ShapeError, match=r"axis 1 \(time\) should be at least 1"):
        gru(torch.randn(2, 0, 3))
    inconsistent = pack_padded_sequence(
        torch.randn(2, 2, 3), torch.tensor([4, 1]), batch_first=True, enforce_sorted=False
    )
    with (
        guard(gru),
        pytest.raises(
            ShapeError,
            match=r"(?s)does not match its batch_sizes.*total=sum\(batch_sizes\)=5.*\[lengths-range\]",
        ),
    ):
        gru(inconsistent)


def test_meta_device_dry_runs_are_checked_and_never_refused():
    # meta tensors size a model without memory; torch.is_autocast_enabled("meta") raises, guard must not
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.rnn, self.head = (
                nn.Embedding(10, 4),
                nn.LSTM(4, 6, batch_first=True),
                nn.Linear(6, 3),
            )

        def forward(self, ids):
            return self.head(self.rnn(self.embed(ids))[0])

    model = Net().to("meta")
    ids = torch.zeros(2, 5, dtype=torch.long, device="meta")
    with guard(model, batch_axis=0):
        assert model(ids).shape == (2, 5, 3) and model(ids).is_meta
        with pytest.raises(ShapeError, match=r"argument 'hx\[0\]'(.|\n)*axis 1 \(batch\) should be 2, got 3"):
            model.rnn(torch.zeros(2, 5, 4, device="meta"), (torch.zeros(1, 3, 6, device="meta"),) * 2)
    checked = Seq(cell="lstm").to("meta")  # and a @shapecheck model
    assert checked(torch.zeros(3, 6, 5, device="meta"))[0].shape == (3, 6, 3)
    with pytest.raises(ShapeError, match=r"argument 'hidden\[0\]'(.|\n)*axis 1 \(batch\) should be 3, got 2"):
        checked(torch.zeros(3, 6, 5, device="meta"), (torch.zeros(4, 2, 7, device="meta"),) * 2)


def test_jit_script_of_a_guarded_model_says_what_to_do():
    # (a failed torch.jit.script leaves torch's type cache unusable for that class in this process, so the
    # test scripts a class of its own and does not script again)
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(3, 4)

        def forward(self, x):
            return self.rnn(x)[0]

    model = Net()
    guard(model)
    with pytest.raises(
        AttributeError, match=r"torch\.jit\.script cannot compile(.|\n)*handle\.remove\(\) first"
    ):
        torch.jit.script(model)
    hooks = [*model._forward_pre_hooks.values(), *model.rnn._forward_pre_hooks.values()]
    assert hooks and all(getattr(h, "__name__", None) is None for h in hooks)  # getattr's default works


# --- guard beside the rest of PyTorch (found by a stranger's sweep; each call runs in torch unguarded) ---


def test_a_pre_hook_registered_after_guard_runs_before_the_check_from_the_next_call_on():
    lin, gru = nn.Linear(4, 3), nn.GRU(4, 5, batch_first=True)
    with guard(lin), guard(gru):
        lin.register_forward_pre_hook(lambda mod, args: (args[0].float(),))  # a cast the layer relies on
        gru.register_forward_pre_hook(
            lambda mod, args, kwargs: ((args[0].transpose(0, 1), *args[1:]), kwargs), with_kwargs=True
        )
        for _ in range(2):
            assert lin(torch.randn(2, 4, dtype=torch.float64)).dtype == torch.float32
            assert gru(torch.randn(6, 2, 4), torch.zeros(1, 2, 5))[0].shape == (2, 6, 5)
        with pytest.raises(ShapeError, match=r"argument 'hx'(.|\n)*axis 1 \(batch\) should be 2, got 3"):
            gru(torch.randn(6, 2, 4), torch.zeros(1, 3, 5))  # still checked, after the hook


@pytest.mark.filterwarnings("ignore:`torch.nn.utils.weight_norm` is deprecated:FutureWarning")
def test_weight_norm_applied_after_guard_then_moved_to_another_dtype():
    lin = nn.Linear(4, 3)
    with guard(lin):
        torch.nn.utils.weight_norm(lin)  # its own pre-hook recomputes lin.weight at each call
        lin.double()
        assert lin(torch.randn(2, 4, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_dynamic_quantization_before_or_after_guard():
    def model():
        return nn.ModuleDict({"rnn": nn.LSTM(4, 5), "head": nn.Linear(5, 3)})

    def run(m):
        return m["head"](m["rnn"](torch.ones(6, 2, 4))[0])

    guarded = model()
    guard(guarded)  # then quantized: torch copies guard's pre-hooks onto its own layers without their kwargs
    quantized = torch.ao.quantization.quantize_dynamic(guarded, {nn.LSTM, nn.Linear}, dtype=torch.qint8)
    assert run(quantized).shape == (6, 2, 3)
    handle = guard(torch.ao.quantization.quantize_dynamic(model(), {nn.LSTM, nn.Linear}, dtype=torch.qint8))
    assert handle.modules == [] and set(handle.skipped) == {"rnn", "head"}
    assert "a quantized LSTM" in handle.skipped["rnn"]


@pytest.mark.filterwarnings("ignore:Complex modules are a new feature:UserWarning")
@pytest.mark.parametrize("layer", [nn.GRU(4, 3), nn.LSTM(4, 3), nn.LSTMCell(4, 3), nn.RNNCell(4, 3)])
def test_layers_with_complex_weights_take_complex_inputs(layer):
    layer = layer.to(torch.cfloat)
    x = (
        torch.randn(2, 4, dtype=torch.cfloat)
        if "Cell" in type(layer).__name__
        else torch.randn(5, 2, 4, dtype=torch.cfloat)
    )
    expected = layer(x)
    with guard(layer):
        got = layer(x)
    assert torch.equal(
        got[0] if isinstance(got, tuple) else got, expected[0] if isinstance(expected, tuple) else expected
    )


def test_a_linear_s_sizes_are_its_weight_s_as_torch_reads_them():
    lin = nn.Linear(4, 3)
    with guard(lin):
        assert lin(torch.randn(2, 4)).shape == (2, 3)
        lin.weight = nn.Parameter(torch.randn(3, 6))  # in_features still says 4: torch reads the weight
        assert lin(torch.randn(2, 6)).shape == (2, 3)
        with pytest.raises(ShapeError, match=r"axis 1 \(input\) should be 6, got 4"):
            lin(torch.randn(2, 4))


def test_remove_leaves_nothing_on_the_layers():
    model = Seq("gru")
    with guard(model):
        model(torch.randn(3, 6, 5))
    assert not [m for m in model.modules() if "_rnnshapes_info" in m.__dict__ and m is not model]
    assert b"rnnshapes.core._guard" not in pickle.dumps(model.rnn)


def test_meta_tables_devices_and_jit_trace():
    emb = nn.Embedding(10, 4).to("meta")
    with guard(emb):
        assert emb(torch.tensor([[1, 2, 3]])).is_meta  # torch looks CPU indices up in a meta table
    lin = nn.Linear(4, 3)
    with guard(lin):
        lin(torch.randn(2, 4))
        lin.to("meta")  # after a CPU call that passed: the device is part of what the check remembers
        with pytest.raises(ShapeError, match="on the wrong device"):
            lin(torch.randn(2, 4))
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 3))
    with guard(model), warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)  # guard's checks add none
        traced = torch.jit.trace(model, torch.tensor([[1, 2, 3]]))
    assert torch.equal(traced(torch.tensor([[4, 5, 6]])), model(torch.tensor([[4, 5, 6]])))


# --- a second attack on the same (round four): each call runs in torch unguarded ---


class BeamStep(nn.Module):
    """A batch-1 beam search: the decoder step is (beam, 1, embed) with a state for the beam."""

    def __init__(self, beam: int):
        super().__init__()
        self.beam, self.emb, self.enc, self.dec = (
            beam,
            nn.Embedding(20, 6),
            nn.GRU(6, 8, batch_first=True),
            nn.GRU(6, 8, batch_first=True),
        )

    def forward(self, src):  # (batch, time) ids
        _, h = self.enc(self.emb(src))
        h = h.repeat_interleave(self.beam, dim=1)  # (1, batch*beam, 8)
        tok = torch.zeros(src.shape[0] * self.beam, 1, dtype=torch.long)
        return self.dec(self.emb(tok), h)[0]


class Chunks(nn.Module):
    """DPRNN-style: time cut into chunks of k steps folded into the batch, no state passed."""

    def __init__(self, k: int):
        super().__init__()
        self.k, self.intra = k, nn.GRU(3, 7, batch_first=True)

    def forward(self, x):  # (batch, time, 3)
        batch, time, features = x.shape
        return self.intra(x.reshape(batch * time // self.k, self.k, features))[0]


def test_layers_whose_sizes_coincide_with_a_transposition_are_not_refused():
    for model, x in (
        (BeamStep(beam=5), torch.randint(0, 20, (1, 5))),  # beam = source length, batch 1, a state given
        (Chunks(k=2), torch.randn(4, 8, 3)),  # time folded into the batch in chunks
    ):
        expected = model(x)
        with guard(model, batch_axis=0):
            assert torch.equal(model(x), expected)
    # what remains: chunks as long as the batch, without a state, fold to (time, batch, ...) exactly: the
    # signature of the swap. The docs say so; guard without batch_axis checks such a model.
    model, x = Chunks(k=4), torch.randn(4, 8, 3)
    with guard(model, batch_axis=0), pytest.raises(ShapeError, match=r"\[layout\]"):
        model(x)
    with guard(model):
        assert torch.equal(model(x), Chunks.forward(model, x))


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # torch's own RNN code, traced
def test_guard_twice_and_torch_jit_trace_with_a_hook_registered_after_guard():
    def cast(mod, args):
        return (args[0].double(),)

    gru = nn.GRU(3, 4, batch_first=True).double()
    guard(gru)
    guard(gru)
    gru.register_forward_pre_hook(cast)
    for _ in range(3):
        assert gru(torch.randn(2, 5, 3))[0].dtype == torch.float64
    fresh = nn.GRU(3, 4, batch_first=True).double()
    guard(fresh)
    fresh.register_forward_pre_hook(cast)
    x = torch.randn(2, 5, 3)
    assert torch.equal(torch.jit.trace(fresh, (x,))(x)[0], fresh(x)[0])


def test_sizes_follow_the_weights_torch_reads():
    emb = nn.Embedding(5, 3)
    emb.weight = nn.Parameter(torch.randn(10, 3))  # a vocabulary extended: num_embeddings still says 5
    cell = nn.GRUCell(3, 4)
    for name, shape in (
        ("weight_ih", (15, 3)),
        ("weight_hh", (15, 5)),
        ("bias_ih", (15,)),
        ("bias_hh", (15,)),
    ):
        setattr(cell, name, nn.Parameter(torch.randn(shape)))  # hidden 5: hidden_size still says 4
    with guard(emb), guard(cell):
        assert emb(torch.tensor([[8, 9, 1]])).shape == (1, 3, 3)
        assert cell(torch.randn(2, 3), torch.randn(2, 5)).shape == (2, 5)
        with pytest.raises(ShapeError, match=r"\[index-range\].*vocab=10"):
            emb(torch.tensor([[10]]))


def test_the_cell_state_is_said_to_need_the_same_fix_only_where_it_does():
    lstm, x = nn.LSTM(5, 7, num_layers=2, batch_first=True), torch.randn(3, 6, 5)
    h_bf, c_ok = torch.zeros(3, 2, 7), torch.zeros(2, 3, 7)
    with guard(lstm):
        with pytest.raises(ShapeError) as info:
            lstm(x, (h_bf, c_ok))  # h batch-first, c right
        assert "[hidden-batch-first]" in str(info.value) and "needs the same" not in str(info.value)
        with pytest.raises(ShapeError, match=r"the cell state hx\[1\] needs the same"):
            lstm(x, (h_bf, h_bf.clone()))
    gru = nn.GRU(5, 7, num_layers=2, batch_first=True)
    with guard(gru), pytest.raises(ShapeError) as info:
        gru(x, torch.zeros(3, 2, 9))  # batch-first AND of the wrong width: transposing alone would not fit
    assert "[hidden-batch-first]" not in str(info.value)


def test_an_unbatched_input_without_steps_is_a_shape_error_as_a_batched_one_is():
    rnn = nn.RNN(1, 3)
    with pytest.raises(RuntimeError, match="larger than 0"):
        rnn(torch.zeros(0, 1))  # torch refuses too
    with guard(rnn):
        for x in (torch.zeros(0, 1), torch.zeros(0, 2, 1)):
            with pytest.raises(ShapeError, match=r"axis 0 \(time\) should be at least 1 \(a recurrent layer"):
                rnn(x)
        assert rnn(torch.zeros(4, 1))[0].shape == (4, 3)
