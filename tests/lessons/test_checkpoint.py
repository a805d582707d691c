"""Checkpoints: atomic writes, weights_only reads, clear errors for corrupt or mismatched files."""

import os
import pickle

import pytest
import torch

from rnnshapes import CheckpointError
from rnnshapes.models import HelloRNN, NamesClassifier
from rnnshapes.train import load_checkpoint, save_checkpoint


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model = NamesClassifier(embed=8, hidden=6, layers=1)
    path = save_checkpoint(tmp_path / "m.pt", model, {"accuracy": 0.9})
    loaded, meta = load_checkpoint(path, expect_class="NamesClassifier", expect_config={"hidden": 6})
    assert meta == {"accuracy": 0.9} and not loaded.training
    x, lengths = torch.randint(1, 128, (3, 5)), torch.tensor([5, 2, 4])
    model.eval()
    torch.testing.assert_close(loaded(x, lengths), model(x, lengths))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"], "no temporary file is left behind"


def test_truncated_file_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", HelloRNN())
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"not a readable checkpoint.*delete it and train again"):
        load_checkpoint(path)


def test_mismatched_class_or_config(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", HelloRNN(hidden=7))
    with pytest.raises(CheckpointError, match=r"holds a HelloRNN, not a NamesClassifier"):
        load_checkpoint(path, expect_class="NamesClassifier")
    with pytest.raises(CheckpointError, match=r"another configuration .*'hidden': \(7, 16\)"):
        load_checkpoint(path, expect_config={"hidden": 16})


# torch warns that a plain pickle (protocol 4) is not its own format: that is the point of the second file
@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_pickled_code_is_never_run(tmp_path):
    planted = tmp_path / "planted"

    class Boom:
        def __reduce__(self):
            return (os.mkdir, (str(planted),))

    path = tmp_path / "evil.pt"
    torch.save(
        {
            "format": "rnnshapes-checkpoint/1",
            "class": "HelloRNN",
            "config": {},
            "state_dict": {},
            "meta": Boom(),
        },
        path,
    )
    with pytest.raises(CheckpointError, match=r"not plain tensors and values|not a readable checkpoint"):
        load_checkpoint(path)
    assert not planted.exists(), "loading a checkpoint ran code from it"
    path.write_bytes(pickle.dumps({"x": Boom()}))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not planted.exists(), "loading a checkpoint ran code from it"


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*train first"):
        load_checkpoint(tmp_path / "nope.pt")


def test_an_empty_file_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(
        CheckpointError, match=r"empty\.pt is not a readable checkpoint \(EOFError: no message\)"
    ):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.pop("class"), r"is damaged: it lacks a model class, a config or the weights"),
        (lambda p: p.pop("state_dict"), r"is damaged"),
        (
            lambda p: p["config"].update(no_such_argument=1),
            r"holds a configuration a HelloRNN cannot be built",
        ),
    ],
    ids=["no-class", "no-weights", "unknown-config-key"],
)
def test_a_damaged_payload_is_a_clear_error(tmp_path, damage, message):
    path = tmp_path / "model.pt"
    save_checkpoint(path, HelloRNN(), {})
    payload = torch.load(path, weights_only=True)
    damage(payload)
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_a_corrupt_cached_checkpoint_is_replaced_by_training_again(tmp_path, monkeypatch):
    from rnnshapes import lessons

    monkeypatch.setenv("RNNSHAPES_CHECKPOINTS", str(tmp_path))
    lesson = lessons.get("hello-sequence")
    path = lessons.checkpoint_path(lesson, "cpu", 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")  # an interrupted copy, a full disk: the cache must heal, not crash
    model, summary = lesson.trained(device="cpu", seed=0, threads=1, progress=False)
    assert summary["reached"] and path.stat().st_size > 0
    assert load_checkpoint(path)[0].config == model.config
