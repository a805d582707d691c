"""rnnshapes trace: a lesson's model on its example batch, or a user's model from package.module:factory."""

import json
import textwrap

import pytest

from rnnshapes import lessons
from rnnshapes.cli import main

USER_MODULE = """
import torch
from torch import nn


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(5, 8, batch_first=True, bidirectional=True)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out)


class Transposing(Tagger):
    def forward(self, x):
        out, _ = self.rnn(x.transpose(0, 1))
        return self.head(out)


def build():
    return Tagger()


def transposing():
    return Transposing()


def example():
    return Tagger(), (torch.randn(2, 4, 5),)


def broken():
    return Tagger(), (torch.randn(2, 4, 6),)
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "usermodels.py").write_text(textwrap.dedent(USER_MODULE), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    yield "usermodels"


@pytest.mark.parametrize("name", lessons.names())
def test_every_lesson_traces(name, capsys):
    assert main(["trace", name]) == 0
    out = capsys.readouterr().out
    assert "layers*dirs=" in out and "batch=" in out


def test_names_lesson_text(capsys):
    from rnnshapes import lessons

    model = lessons.get("names").build_model()
    e, h = model.embedding.embedding_dim, model.rnn.hidden_size  # the recipe's sizes
    assert main(["trace", "names"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "NamesClassifier  (eval, no_grad, cpu)"
    assert f"rnn  GRU(input={e}, hidden={h}, layers=1, dirs=2, batch_first)" in lines
    assert any(
        line.split()[:2] == ["out", "h_n"] and line.endswith(f"layers*dirs=2 batch=4 hidden={h}")
        for line in lines
    )


def test_a_user_model_with_named_input_axes(user_module, capsys):
    assert main(["trace", f"{user_module}:build", "--input", "batch=4 time=9 input=5"]) == 0
    out = capsys.readouterr().out
    assert "x           (4, 9, 5)   float32  batch=4 time=9 input=5" in out
    assert "out output  (4, 9, 16)  float32  batch=4 time=9 dirs*hidden=16" in out


def test_the_named_batch_axis_is_declared(user_module, capsys):
    assert main(["trace", f"{user_module}:transposing", "--input", "batch=4 time=9 input=5"]) == 0
    assert "! batch=9 here, but the model was called with batch=4 (axis 0 of x)" in capsys.readouterr().out


def test_a_factory_with_its_own_inputs_and_json(user_module, capsys):
    assert main(["trace", f"{user_module}:example", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == "Tagger" and [c["path"] for c in data["calls"]] == ["rnn", "head"]
    assert data["calls"][0]["outputs"][1]["axes"] == ["layers*dirs", "batch", "hidden"]


def test_markdown(user_module, capsys):
    assert main(["trace", f"{user_module}:example", "--format", "markdown"]) == 0
    assert capsys.readouterr().out.startswith("| call | tensor | shape | dtype | axes |")


def test_a_model_that_raises_prints_the_trace_up_to_the_call(user_module, capsys):
    assert main(["trace", f"{user_module}:broken"]) == 1
    out, err = capsys.readouterr()
    assert "! input has 6 features per step, but the layer has input=5" in out
    assert "rnnshapes trace: the model raised RuntimeError" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trace", "usermodels:build"], "returned a model without inputs"),
        (["trace", "usermodels:build", "--input", "batch=4 time=x"], "'x' is not a size >= 1"),
        (["trace", "usermodels:build", "--input", "batch=4 oops"], "neither name=size nor int<V"),
        (["trace", "usermodels:nothing", "--input", "batch=4"], "has no callable 'nothing'"),
        (["trace", "no_such_module:build", "--input", "batch=4"], "cannot import 'no_such_module'"),
        (["trace", "names", "--input", "batch=4"], "a lesson brings its own example batch"),
        (["trace", "no-such-lesson"], "no-such-lesson"),
    ],
)
def test_bad_arguments_one_line_exit_2(user_module, argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnshapes trace: error:") and message in err


def test_input_literals_and_indices():
    import torch

    from rnnshapes.cli._trace import parse_input

    g = torch.Generator().manual_seed(0)
    lengths, axis = parse_input("[9, 3, 6, 1]", g)
    assert lengths.tolist() == [9, 3, 6, 1] and axis is None
    x, axis = parse_input("time=9 batch=4 int<128", g)
    assert x.shape == (9, 4) and x.dtype == torch.int64 and int(x.max()) < 128 and axis == 1
