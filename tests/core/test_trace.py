"""rnnshapes.trace: every layer call of one forward, with named axes, folded counts and notes, never a false raise."""

import json

import pytest
import torch
from jaxtyping import Float
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnshapes
from rnnshapes import Trace, lessons, shapecheck, trace
from rnnshapes.core._trace_format import MARKDOWN_HEADER
from rnnshapes.models import PackedEncoder
from rnnshapes.testing import cuda_unavailable_reason

from ._models import Seed13_1


def axes(t: Trace, path: str, name: str, row: int = 0) -> str:
    """The axes of one tensor of one row, as the trace prints them."""
    call = t.rows(path)[row]
    found = [x for x in (*call.inputs, *call.outputs) if x.name == name]
    assert len(found) == 1, (path, name, call)
    return found[0].describe_axes()


def returned(t: Trace) -> list[str]:
    return [r.describe_axes() for r in t.returned]


# --- the lessons -------------------------------------------------------------------------------------------


def names_batch() -> tuple[Tensor, Tensor]:
    torch.manual_seed(0)
    return torch.randint(1, 128, (4, 9)), torch.tensor([9, 3, 6, 1])


def test_names_basic_lesson_shows_the_packed_batch_and_h_n():
    t = trace(lessons.get("names-basic").build_model(), *names_batch())
    assert [c.path for c in t.calls] == ["embedding", "rnn", "head"]
    assert t.calls[1].layer == "GRU(input=64, hidden=128, layers=1, dirs=1, batch_first)"
    assert [a.describe_axes() for a in t.arguments] == ["batch=4 time=9", "batch=4"]  # from the annotations
    rnn = t.rows("rnn")[0]
    assert rnn.inputs[0].kind == "packed" and rnn.inputs[0].batch_sizes == (4, 3, 3, 2, 2, 2, 1, 1, 1)
    assert axes(t, "rnn", "input").startswith("total=19 input=64, batch_sizes=[4, 3, 3")
    assert axes(t, "rnn", "output").startswith("total=19 hidden=128")
    assert axes(t, "rnn", "h_n") == "layers*dirs=1 batch=4 hidden=128"
    assert axes(t, "embedding", "input") == "batch=4 time=9"  # the model's argument, named by its annotation
    assert returned(t) == ["batch=4 classes=18"]
    assert all(c.calls == 1 and not c.notes for c in t.calls) and not t.notes and not t.error


def test_names_lesson_is_bidirectional():
    model = lessons.get("names").build_model()
    e, h = model.embedding.embedding_dim, model.rnn.hidden_size  # the recipe's sizes (64 and 192 today)
    t = trace(model, *names_batch())
    assert t.calls[1].layer == f"GRU(input={e}, hidden={h}, layers=1, dirs=2, batch_first)"
    assert axes(t, "rnn", "output").startswith(f"total=19 dirs*hidden={2 * h}")
    assert axes(t, "rnn", "h_n") == f"layers*dirs=2 batch=4 hidden={h}"
    assert axes(t, "head", "input") == f"batch=4 input={2 * h}"


@pytest.mark.parametrize("name", ["hello-sequence", "hello-embedding"])
def test_hello_lessons(name: str):
    model = lessons.get(name).build_model()
    x = torch.randn(3, 6, 5) if name == "hello-sequence" else torch.randint(0, 5, (3, 6))
    t = trace(model, x)
    assert axes(t, "rnn", "input") == "batch=3 time=6 input=" + ("5" if name == "hello-sequence" else "8")
    assert axes(t, "rnn", "h_n") == "layers*dirs=1 batch=3 hidden=16"
    assert returned(t) == ["batch=3 time=6 classes=5", "layers*dirs=1 batch=3 hidden=16"]


def test_hello_step_traces_a_bound_method():
    model = lessons.get("hello-step").build_model()
    t = trace(model.step, torch.randn(3, 5), torch.zeros(1, 3, 16))
    assert t.model == "HelloRNN.step"
    assert [a.name for a in t.arguments] == ["x_t", "hidden"]
    assert axes(t, "rnn", "input") == "batch=3 time=1 input=5"  # a step is a one-step sequence
    assert returned(t) == ["batch=3 classes=5", "layers*dirs=1 batch=3 hidden=16"]


def test_char_rnn_generation_folds_the_step_loop():
    model = lessons.get("char-rnn").build_model()
    t = trace(model.generate, "tobe", 7, generator=torch.Generator().manual_seed(0))
    assert t.arguments[0].describe_shape() == "'tobe'"
    prime, *steps = t.rows("rnn")
    assert axes(t, "rnn", "input") == "batch=1 time=4 input=32"  # the prime, read in one call
    assert [r.calls for r in steps] == [6]  # then one character per call, folded
    assert axes(t, "rnn", "input", row=1) == "batch=1 time=1 input=32"


def test_pack_pad_lesson_lstm_state_pairs():
    torch.manual_seed(0)
    x, lengths = torch.randn(4, 7, 3), torch.tensor([5, 2, 7, 1])
    t = trace(PackedEncoder(input=3, hidden=5, layers=2, bidirectional=True), x, lengths)
    assert t.calls[0].layer == "LSTM(input=3, hidden=5, layers=2, dirs=2, batch_first)"
    assert axes(t, "lstm", "h_n") == "layers*dirs=4 batch=4 hidden=5"
    assert axes(t, "lstm", "c_n") == "layers*dirs=4 batch=4 cell=5"
    assert axes(t, "lstm", "output") == "total=15 dirs*hidden=10, batch_sizes=[4, 3, 2, 2, 2, 1, 1]"


# --- held-out models ---------------------------------------------------------------------------------------


def test_the_course_13_1_classifier_returns_layers_dirs_batch_classes():
    x, _ = names_batch()
    t = trace(Seed13_1(), x)
    assert not any(c.notes for c in t.calls)  # correct code: no false alarm for the transposed interface
    assert [a.describe_axes() for a in t.arguments] == ["batch=4 time=9"]  # named back through .t()
    assert axes(t, "embedding", "input") == "time=9 batch=4"
    assert axes(t, "gru", "h_n") == "layers*dirs=1 batch=4 hidden=100"
    assert axes(t, "fc", "input") == "layers*dirs=1 batch=4 input=100"
    assert returned(t) == ["layers*dirs=1 batch=4 18"]


class PackedLSTMTagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(10, 4)

    def forward(self, x, lengths, state=None):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, (h, c) = self.rnn(packed, state)
        steps, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.head(steps), (h, c)


def test_packed_bidirectional_lstm_with_an_initial_state():
    x, lengths = torch.randn(3, 6, 3), torch.tensor([6, 2, 4])
    state = (torch.zeros(4, 3, 5), torch.zeros(4, 3, 5))
    t = trace(PackedLSTMTagger(), x, lengths, state)
    assert [i.name for i in t.calls[0].inputs] == ["input", "h_0", "c_0"]
    assert axes(t, "rnn", "c_0") == "layers*dirs=4 batch=3 cell=5"
    assert axes(t, "rnn", "input") == "total=12 input=3, batch_sizes=[3, 3, 2, 2, 1, 1]"
    assert [a.describe_axes() for a in t.arguments[2:]] == [
        "layers*dirs=4 batch=3 hidden=5",
        "layers*dirs=4 batch=3 cell=5",
    ]  # the argument is the tensor the LSTM named
    assert returned(t)[1:] == ["layers*dirs=4 batch=3 hidden=5", "layers*dirs=4 batch=3 cell=5"]


class CellDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(7, 4)
        self.cell = nn.GRUCell(4, 6)
        self.out = nn.Linear(6, 7)

    def forward(self, start, steps: int):
        h, token, logits = None, start, []
        for _ in range(steps):
            h = self.cell(self.embedding(token), h)
            logits.append(self.out(h))
            token = logits[-1].argmax(-1)
        return torch.stack(logits, 1)


def test_a_cell_loop_folds_into_one_row_per_signature():
    t = trace(CellDecoder(), torch.zeros(3, dtype=torch.long), 10)
    first, rest = t.rows("cell")
    assert (first.calls, rest.calls) == (1, 9)  # the first step has no state yet
    assert first.inputs[1].kind == "none" and axes(t, "cell", "hx", row=1) == "batch=3 hidden=6"
    assert axes(t, "cell", "h'") == "batch=3 hidden=6"
    assert [r.calls for r in t.rows("out")] == [10] and [r.calls for r in t.rows("embedding")] == [10]
    assert str(t).count("×9") == 1 and "×10" in str(t)


class Attention(nn.Module):
    def __init__(self, batch_first: bool):
        super().__init__()
        self.encoder = nn.GRU(8, 8, batch_first=batch_first)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=batch_first)

    def forward(self, src, tgt, mask=None, average=True):
        memory, _ = self.encoder(src)
        return self.attn(tgt, memory, memory, key_padding_mask=mask, average_attn_weights=average)


@pytest.mark.parametrize("batch_first", [True, False])
def test_attention_both_layouts(batch_first: bool):
    def seq(batch: int, time: int) -> Tensor:
        return torch.randn(batch, time, 8) if batch_first else torch.randn(time, batch, 8)

    mask = torch.zeros(2, 7, dtype=torch.bool)
    t = trace(Attention(batch_first), seq(2, 7), seq(2, 3), mask, False)
    assert t.calls[1].layer == "MultiheadAttention(embed=8, heads=2" + (
        ", batch_first)" if batch_first else ")"
    )
    layout = "batch=2 {}" if batch_first else "{} batch=2"
    assert axes(t, "attn", "query") == layout.format("target=3") + " embed=8"
    assert axes(t, "attn", "key") == layout.format("source=7") + " embed=8"
    assert axes(t, "attn", "key_padding_mask") == "batch=2 source=7"
    assert axes(t, "attn", "attn_weights") == "batch=2 heads=2 target=3 source=7"  # always batch first
    assert axes(t, "encoder", "output") == layout.format("time=7") + " hidden=8"
    averaged = trace(Attention(batch_first), seq(2, 7), seq(2, 3))
    assert axes(averaged, "attn", "attn_weights") == "batch=2 target=3 source=7"


# --- disagreements: a note, not an error; torch's own errors carry the trace -----------------------------


class Transposing(nn.Module):
    """The silent bug: a batch-first input transposed before a batch_first GRU. torch runs it."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(5, 6, batch_first=True)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        out, _ = self.rnn(x.transpose(0, 1))
        return self.head(out[:, -1])


def test_a_declared_batch_axis_notes_the_transposed_call():
    x = torch.randn(4, 9, 5)
    assert trace(Transposing(), x).calls[0].notes == ()  # no evidence, no note
    t = trace(Transposing(), x, batch_axis=0)
    assert t.calls[0].notes == ("batch=9 here, but the model was called with batch=4 (axis 0 of x)",)
    assert axes(t, "rnn", "input") == "batch=9 time=4 input=5"
    assert "! batch=9 here" in str(t)
    md = t.markdown().splitlines()
    assert md[0] == "| " + " | ".join((*MARKDOWN_HEADER, "note")) + " |"
    assert any("batch=9 here" in line and "`rnn`" in line for line in md)


class Annotated(nn.Module):
    """The 13_1 mistake under an annotation: the return value promises (batch, classes)."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(5, 6)
        self.head = nn.Linear(6, 3)

    def shape_dims(self):
        return {"classes": 3}

    @shapecheck
    def forward(self, x: Float[Tensor, "*seq input"]) -> Float[Tensor, "batch classes"]:
        _, h_n = self.rnn(x)
        return self.head(h_n)


def test_an_annotation_mismatch_is_a_note_not_a_shape_error():
    model, x = Annotated(), torch.randn(9, 4, 5)
    with pytest.raises(rnnshapes.ShapeError):
        model(x)
    t = trace(model, x)  # rnnshapes' own checks are off during the trace
    assert len(t.notes) == 1 and "return value" in t.notes[0], t.notes
    assert returned(t) == ["layers*dirs=1 batch=4 3"]  # the annotation does not fit: names from h_n
    assert "! " + t.notes[0] in str(t)


class WrongState(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(5, 6, num_layers=2, batch_first=True)

    def forward(self, x):
        return self.rnn(x, torch.zeros(x.shape[0], 2, 6))  # batch-first state: torch refuses it


def test_torch_errors_propagate_with_the_trace_and_the_hooks_go():
    model = WrongState()
    with pytest.raises(RuntimeError, match="Expected hidden size") as info:
        trace(model, torch.randn(4, 9, 5))
    t = info.value.rnnshapes_trace  # type: ignore[attr-defined]
    assert t.error.startswith("RuntimeError: Expected hidden size")
    (row,) = t.calls
    assert row.raised.startswith("RuntimeError") and row.outputs == ()
    assert row.notes == (
        "h_0 is (4, 2, 6), but this call needs (layers*dirs, batch, hidden) = (2, 4, 6): it looks batch-first; "
        "a hidden state is always `layers*dirs batch hidden`",
    )
    assert any("rnnshapes.trace up to the failing call" in n for n in info.value.__notes__)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_an_error_in_the_models_own_code_is_said_so():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(5, 6)

        def forward(self, x):
            out, _ = self.rnn(x)
            return out.view(-1, 7)

    with pytest.raises(RuntimeError) as info:
        trace(Broken(), torch.randn(3, 2, 5))
    t = info.value.rnnshapes_trace  # type: ignore[attr-defined]
    assert t.calls[0].raised == "" and "in the model's own code" in t.error


# --- modes, forms, cost ----------------------------------------------------------------------------------


def test_eval_and_no_grad_by_default_and_the_flags_restored():
    model = PackedLSTMTagger()
    model.train()
    model.head.eval()  # a submodule's own flag survives too
    seen = []
    model.rnn.register_forward_hook(lambda m, a, out: seen.append((m.training, torch.is_grad_enabled())))
    x, lengths = torch.randn(2, 3, 3), torch.tensor([3, 1])
    t = trace(model, x, lengths)
    assert seen[-1] == (False, False) and t.mode == "eval, no_grad, cpu"
    assert model.training and model.rnn.training and not model.head.training
    trace(model, x, lengths, train=True, grad=True)
    assert seen[-1] == (True, True)
    trace(model, x, lengths, train=None)
    assert seen[-1] == (True, False)


def test_plain_text_markdown_and_json_forms():
    t = trace(lessons.get("names-basic").build_model(), *names_batch())
    text = str(t)
    assert repr(t) == text and t._repr_markdown_() == t.markdown()
    assert text.splitlines()[0] == "NamesClassifier  (eval, no_grad, cpu)"
    assert "rnn  GRU(input=64, hidden=128, layers=1, dirs=1, batch_first)" in text
    md = t.markdown().splitlines()
    assert md[0] == "| " + " | ".join(MARKDOWN_HEADER) + " |"
    assert (
        "| `rnn` GRU(input=64, hidden=128, layers=1, dirs=1, batch_first) | input (in) | packed (19, 64) |"
        in md[6]
    )
    data = json.loads(t.to_json())
    assert data == t.to_dict()
    rnn = data["calls"][1]
    assert rnn["outputs"][1] == {
        "name": "h_n",
        "kind": "tensor",
        "shape": [1, 4, 128],
        "dtype": "float32",
        "device": "cpu",
        "axes": ["layers*dirs", "batch", "hidden"],
        "batch_sizes": [],
        "value": "",
    }


def test_every_axis_name_is_in_the_vocabulary():
    words = {d.name for d in rnnshapes.DIMENSIONS} | {"dirs*hidden", "batch*heads"}
    x, lengths = torch.randn(3, 6, 3), torch.tensor([6, 2, 4])
    traces = [
        trace(PackedLSTMTagger(), x, lengths),
        trace(Attention(True), torch.randn(2, 7, 8), torch.randn(2, 3, 8), None, False),
        trace(CellDecoder(), torch.zeros(3, dtype=torch.long), 3),
        trace(lessons.get("names").build_model(), *names_batch()),
    ]
    used = {
        a
        for t in traces
        for tensor in (*t.arguments, *t.returned, *(x for c in t.calls for x in (*c.inputs, *c.outputs)))
        for a in tensor.axes
        if a
    }
    assert used <= words, used - words


def test_a_subclass_with_its_own_forward_is_recorded_without_guessing():
    class PackedGRU(nn.GRU):
        def forward(self, x, lengths):  # type: ignore[override]
            return super().forward(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))

    rnn = PackedGRU(3, 4, batch_first=True)
    t = trace(rnn, torch.randn(2, 5, 3), torch.tensor([5, 2]))
    assert [i.name for i in t.calls[0].inputs] == ["args[0]", "args[1]"] and not t.calls[0].notes


def test_model_keywords_named_like_traces_own():
    class Dropping(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(3, 4)

        def forward(self, x, train=False):
            return self.rnn(x)[1] if train else self.rnn(x)[0]

    t = trace(Dropping(), torch.randn(5, 2, 3), forward_kwargs={"train": True})
    assert [a.name for a in t.arguments] == ["x", "train"] and returned(t) == [
        "layers*dirs=1 batch=2 hidden=4"
    ]


def test_trace_needs_a_module():
    with pytest.raises(TypeError, match="nn.Module or a bound method"):
        trace(lambda x: x, torch.zeros(1))


@pytest.mark.skipif(cuda_unavailable_reason() is not None, reason=f"CUDA: {cuda_unavailable_reason()}")
def test_on_cuda():
    model = lessons.get("names").build_model().cuda()
    x, lengths = names_batch()
    t = trace(model, x.cuda(), lengths)
    assert t.mode == "eval, no_grad, cpu/cuda:0"  # lengths stay on the CPU, where packing wants them
    assert axes(t, "rnn", "h_n") == f"layers*dirs=2 batch=4 hidden={model.rnn.hidden_size}"
    assert t.rows("rnn")[0].outputs[1].device == "cuda:0"


def test_a_tensor_reusing_a_dead_tensors_id_gets_axis_names_of_its_own():
    # torch frees the layer's temporaries; a new tensor may get a dead one's id(), and used to get its key too,
    # so the returned tensor's batch axis was named after an unrelated Linear's input ("7 input=4 50")
    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.TransformerEncoderLayer(16, 2, 32)
            self.decoder = nn.Linear(16, 50)

        def forward(self, x):
            return self.decoder(self.layer(x))

    torch.manual_seed(0)
    data = trace(Encoder(), torch.randn(7, 4, 16)).to_dict()
    keys = set()
    for call in data["calls"]:
        for slot in call["inputs"] + (call["outputs"] or []):
            if slot["kind"] != "tensor":
                continue
            for size, name in zip(slot["shape"], slot["axes"], strict=True):
                assert name in ("", "input") or size in (7, 4, 16), (call["path"], slot)
                if name == "input":  # a Linear's input names its last axis only, with the layer's in_features
                    keys.add(size)
    assert keys <= {16, 32}
    returned = data["calls"][-1]["outputs"][0]
    assert returned["shape"] == [7, 4, 50] and "input" not in returned["axes"]


def test_an_unbatched_call_is_named_time_input_and_carries_no_warning_mark():
    text = str(trace(nn.GRU(5, 7), torch.randn(4, 5)))
    assert "time=4 input=5" in text and "layers*dirs=1 hidden=7" in text
    assert "!" not in text  # a call torch runs correctly is not flagged


def test_an_object_argument_is_shown_by_its_type_and_plain_values_by_their_repr():
    import types

    class ReadsABatch(nn.Module):  # pytorch/examples' snli model takes a batch object
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(3, 4)

        def forward(self, batch, steps, mode):
            return self.rnn(batch.x)[0]

    t = trace(ReadsABatch(), types.SimpleNamespace(x=torch.randn(5, 2, 3)), (5, 2), "fast")
    text = str(t)
    assert "SimpleNamespace object" in text and "tensor(" not in text
    assert "(5, 2)" in text and "'fast'" in text
