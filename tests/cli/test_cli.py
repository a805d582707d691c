"""The rnnshapes command: one clear line and a non-zero exit for bad input, never a traceback."""

import os
import subprocess
import sys

import pytest

from rnnshapes import lessons
from rnnshapes.cli import main


def test_lessons_lists_every_lesson_with_its_target(capsys):
    assert main(["lessons"]) == 0
    out = capsys.readouterr().out
    for name in lessons.names():
        assert name in out
    assert "accuracy >= 0.85" in out and "loss <= 2" in out
    assert "525 steps (stop at 600 s)" in out and "50 steps " in out and "inf" not in out
    assert "15 s cpu, 5 s cuda" in out and "60 s cpu" in out  # the time goals, shown next to the budgets


def test_time_goals_are_reported_against_the_device_type():
    from rnnshapes.cli import _time_goal

    names = lessons.get("names")
    assert _time_goal(names, "cpu", 14.9) == "<= 15 s: yes"
    assert _time_goal(names, "cpu", 21.9) == "<= 15 s: no"
    assert _time_goal(names, "cuda", 1.9) == "<= 5 s: yes"
    assert _time_goal(lessons.get("hello-step"), "cpu", 0.1) == "-"


def test_train_one_lesson_prints_the_table(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("RNNSHAPES_CHECKPOINTS", str(tmp_path))
    assert main(["train", "hello-sequence", "--no-progress"]) == 0
    out = capsys.readouterr().out
    row = next(line.split() for line in out.splitlines() if line.startswith("hello-sequence  cpu"))
    assert row[4] == "text=ihello" and row[-2:] == ["yes", "-"]  # met; no time goal for the hello lessons
    assert list(tmp_path.glob("hello-sequence-*.pt")), "a trained lesson is checkpointed"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "nope"], "rnnshapes train: error: no lesson 'nope'; known lessons: cell-basics"),
        (["train", "--seed", "x"], "argument --seed: expected a whole number >= 0, got 'x'"),
        (["train", "names", "--threads", "0"], "argument --threads: expected a whole number >= 1, got 0"),
        (["generate", "--prime", "x", "--temperature", "-1"], "expected a number between 0 and 10, got -1"),
        (["train", "names", "--device", "cuda"], "--device cuda, but torch.cuda.is_available() is False"),
        (["train", "hello-step", "--nproc", "2"], "--nproc trains the names lesson only"),
        (["generate", "--prime", "x", "--length", "100000000"], "expected a whole number from 1 to 100000"),
        (["restore", ""], "cannot restore '': the text is empty"),
        (["restore", "ok", "   "], "cannot restore '   ': the text is empty"),
        (["restore", "Straße"], "cannot restore 'Straße': characters 'ß' are not in the model's vocabulary"),
        (["restore", "x" * 41], "the text has 41 characters without spaces; the model reads at most 40"),
    ],
)
def test_bad_arguments_one_line_exit_2(argv, message, capsys):
    if "cuda" in argv:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA: the error under test cannot happen")
    with pytest.raises(SystemExit) as info:
        code = main(argv)
        raise SystemExit(code)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("extra", [[], ["--nproc", "2"]], ids=["one-process", "ddp"])
def test_missing_data_is_one_clear_error_not_a_traceback(tmp_path, extra):
    env = {
        "PATH": "/usr/bin:/bin",
        "RNNSHAPES_DATA": str(tmp_path / "empty"),
        "RNNSHAPES_CACHE": str(tmp_path / "cache"),
        "RNNSHAPES_OFFLINE": "1",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }
    (tmp_path / "empty").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "rnnshapes.cli", "train", "names", "--no-progress", *extra],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith("rnnshapes train: error:") and "names_train.csv.gz" in first
    assert "RNNSHAPES_DATA" in proc.stderr


def test_predict_uses_the_trained_names_model(rnn_lesson, rnn_lesson_dir, monkeypatch, capsys):
    rnn_lesson("names").assert_reached()  # trained once per run; predict then loads its checkpoint
    monkeypatch.setenv("RNNSHAPES_CHECKPOINTS", str(rnn_lesson_dir))
    assert main(["predict", "Nakamura", "Dostoevsky", "Jürgen", "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Nakamura: Japanese ")
    assert lines[1].startswith("Dostoevsky: Russian ")
    assert lines[2].startswith("Jürgen: ") and lines[2].count("%") == 2  # normalised to Jurgen, two guesses


def test_generate_uses_the_trained_char_rnn(rnn_lesson, rnn_lesson_dir, monkeypatch, capsys):
    rnn_lesson("char-rnn").assert_reached()
    monkeypatch.setenv("RNNSHAPES_CHECKPOINTS", str(rnn_lesson_dir))
    assert main(["generate", "--prime", "Romeo:", "--length", "60", "--temperature", "0"]) == 0
    text = capsys.readouterr().out.rstrip("\n")
    assert text.startswith("romeo:") and len(text) == len("romeo:") + 60
    assert main(["generate", "--prime", "Romeo:", "--length", "60", "--temperature", "0"]) == 0
    assert capsys.readouterr().out.rstrip("\n") == text, "greedy generation is deterministic"
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(["generate", "--prime", "héllo"]))
    assert info.value.code == 2
    assert "unknown: ['é']" in capsys.readouterr().err


def test_restore_uses_the_lessons_cached_model(tmp_path, monkeypatch, capsys):
    """``restore`` loads the seq2seq-attention checkpoint from the cache (here a small, untrained stand-in
    saved under the lesson's key: the real model takes ~100 CPU s to train, see tests/lessons)."""
    from rnnshapes.models import Seq2SeqAttention
    from rnnshapes.train import save_checkpoint

    monkeypatch.setenv("RNNSHAPES_CHECKPOINTS", str(tmp_path))
    lesson = lessons.get("seq2seq-attention")
    model = Seq2SeqAttention(**lesson.recipe.model)
    save_checkpoint(lessons.checkpoint_path(lesson, "cpu", 0), model, {"reached": True})
    trained = lesson.trained  # the command must not train when the checkpoint is there

    def no_training(**kwargs):
        model, meta = trained(**kwargs)
        assert meta == {"reached": True}, "restore trained instead of loading the cached model"
        return model, meta

    monkeypatch.setattr(type(lesson), "trained", lambda self, **kw: no_training(**kw))
    assert main(["restore", "thisissungkim.iloveyou."]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert main(["restore", "romeo:", "Good Morrow"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" -> ")[0] for line in lines] == ["romeo:", "Good Morrow"]
