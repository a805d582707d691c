"""Every lesson reaches its target, on CPU and on CUDA where present, through the plugin's fixtures."""

import os

import pytest

from rnnshapes import lessons

SLOW = {"seq2seq", "seq2seq-attention"}  # ~100 CPU s each: see tests/lessons/test_seq2seq_lessons.py
TRAINABLE = [
    pytest.param(name, marks=pytest.mark.rnnshapes_slow) if name in SLOW else name
    for name in lessons.names()
    if lessons.get(name).trainable
]
SHAPE_LESSONS = [name for name in lessons.names() if not lessons.get(name).trainable]


@pytest.mark.rnnshapes_convergence
@pytest.mark.parametrize("name", TRAINABLE)
def test_lesson_reaches_its_target(rnn_lesson, rnn_device, name):
    if name in SLOW and rnn_device == "cpu" and not os.environ.get("RNNSHAPES_SLOW_LESSONS"):
        pytest.skip(f"{name} trains ~100 CPU s to its target on the CPU; RNNSHAPES_SLOW_LESSONS=1 runs it")
    trained = rnn_lesson(name, rnn_device)
    trained.assert_reached()
    lesson = lessons.get(name)
    # the model handed over (trained here or loaded from the run's cache) meets the target when evaluated afresh
    metrics = lesson.evaluate(trained.model, rnn_device)
    assert lesson.target.met(metrics), f"{name}: {metrics} does not meet {lesson.target.describe()}"
    assert next(trained.model.parameters()).device.type == rnn_device


@pytest.mark.parametrize("name", SHAPE_LESSONS)
def test_shape_lesson_checks_pass(rnn_device, name):
    result = lessons.get(name).run(device=rnn_device)
    assert result.reached, result.final
    assert result.final["count"] >= 4


def test_registry_is_in_course_order_with_documented_targets():
    courses = [lessons.get(n).course for n in lessons.names()]
    assert courses == sorted(courses)
    assert lessons.get("names").target.describe() == "accuracy >= 0.85"
    assert lessons.get("char-rnn").target.describe() == "loss <= 2"
    with pytest.raises(KeyError, match="no lesson 'nope'; known lessons: cell-basics"):
        lessons.get("nope")
