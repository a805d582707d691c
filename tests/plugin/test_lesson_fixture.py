"""The lesson fixture end to end: a lesson is trained once per run, also when two xdist workers ask for it,
and a lesson that misses its target fails with its curve and a rerun line."""

import pytest

USER_TESTS = """
import pytest


@pytest.mark.parametrize("i", range(4))
def test_wants_the_trained_lesson(rnn_lesson, i):
    trained = rnn_lesson("hello-sequence")
    trained.assert_reached()
    assert trained.value == "ihello"
    assert next(trained.model.parameters()).device.type == "cpu"
"""


def test_a_lesson_is_trained_once_per_run_across_xdist_workers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=4)
    # the end-of-run table lists trainings; models reused from the run's cache are not trainings
    result.stdout.fnmatch_lines(
        ["*rnnshapes: 1 trainings, 1 reached their target*", "lesson hello-sequence *cpu*yes*"]
    )
    assert result.stdout.str().count("lesson hello-sequence") == 1
    assert "tests by device" not in result.stdout.str()  # no test was tied to a device


def test_a_lesson_that_misses_its_target_fails_with_curve_and_rerun_line(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
import dataclasses

from rnnshapes import lessons
from rnnshapes.train import Budget

# a lesson whose budget is too small to converge: one step
lessons.LESSONS["hello-sequence"] = dataclasses.replace(lessons.LESSONS["hello-sequence"], budget=Budget(max_steps=1))
"""
    )
    pytester.makepyfile(
        test_user="def test_lesson(rnn_lesson):\n    rnn_lesson('hello-sequence').assert_reached()\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--rnnshapes-seed=3")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*lesson 'hello-sequence' on cpu did not reach text == 'ihello' in 1 steps*",
            "*rerun: rnnshapes train hello-sequence --device cpu --seed 3*",
            "*rnnshapes: 1 trainings, 0 reached their target*",
        ]
    )


def test_a_pytest_started_inside_an_xdist_worker_keeps_its_lesson_cache_in_its_own_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a pytest started by an xdist worker (pytester, a subprocess) inherits PYTEST_XDIST_WORKER, but is no
    # worker: its cache belongs in its own basetemp, not in the folder above, where other runs would find it
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw5")
    pytester.makepyfile(
        test_user="""
def test_where(rnn_lesson_dir, tmp_path_factory):
    assert rnn_lesson_dir == tmp_path_factory.getbasetemp() / "rnnshapes-lessons"
"""
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:xdist"
    )
    result.assert_outcomes(passed=1)
