"""The names task's recipe options: length-bucketed batches and the screened training evaluation."""

import dataclasses

import torch

from rnnshapes import lessons
from rnnshapes.lessons._tasks import names_task


def _task(**extra):
    lesson = lessons.get("names")
    assert lesson.recipe is not None
    recipe = dataclasses.replace(lesson.recipe, extra=extra)
    return names_task(
        dataclasses.replace(lesson, recipe=recipe), torch.device("cpu"), torch.Generator().manual_seed(0)
    )


def test_bucketed_batches_are_of_nearly_one_length_and_fill_an_epoch():
    task = _task(bucket=True)
    per_epoch = 13_374 // 128
    names, padded, letters = 0, 0, 0
    for _ in range(per_epoch):
        inputs, lengths, labels = next(task.batches)
        assert inputs.shape == (128, int(lengths.max())) and labels.shape == (128,)
        names, padded, letters = names + len(lengths), padded + inputs.numel(), letters + int(lengths.sum())
    assert names == per_epoch * 128
    assert padded < 1.05 * letters, "a batch's names are (nearly) one length: little padding"


def test_the_screen_evaluates_the_whole_test_set_only_near_the_target():
    task = _task(screen=(500, 0.015))
    assert task.train_evaluate is not None
    untrained = task.train_evaluate(task.model.eval())
    assert set(untrained) == {"subset_accuracy"}, "far from 85%: the subset only"
    full = task.evaluate(task.model)
    assert set(full) == {"accuracy"}, "evaluating a trained model is never screened"
    near = _task(screen=(500, 1.0))  # a margin that always passes: the whole test set as well
    assert near.train_evaluate is not None and "accuracy" in near.train_evaluate(near.model.eval())
