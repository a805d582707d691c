"""``--rnnshapes-lesson-cache``: ``run`` trains in every run; ``persistent`` keeps trained lessons in pytest's
cache, so a second run trains nothing. A stale, foreign or damaged entry is trained again, never trusted; two
runs that share the cache at once, and the xdist workers of one run, train a lesson once between them.

Every run here is a fresh pytest process (the plugin loaded from its entry point) on the hello lesson, which
trains in well under a second: what costs is the start-up of each process.
"""

import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rnnshapes import lessons
from rnnshapes.pytest_plugin._lessons import PERSISTENT_FOLDER, persistent_key
from rnnshapes.train import load_checkpoint

LESSON = "hello-sequence"
PERSISTENT = "--rnnshapes-lesson-cache=persistent"
SLIM = ("-p", "no:hypothesispytest", "-p", "no:jaxtyping", "-p", "no:randomly")
"""Plugins an inner pytest does not need (the cache provider stays: it is where the lessons are kept)."""

USER_TESTS = """
import os
from pathlib import Path

import pytest


@pytest.mark.parametrize("i", range(4))
def test_wants_the_trained_lesson(rnn_lesson, rnn_lesson_dir, i):
    trained = rnn_lesson("hello-sequence")
    trained.assert_reached()
    assert trained.value == "ihello"
    assert not trained.model.training
    # the run's folder holds the checkpoint in every mode (RNNSHAPES_CHECKPOINTS for a subprocess)
    assert Path(trained.checkpoint).parent == rnn_lesson_dir
    expected = os.environ.get("EXPECT_EARLIER_RUN")
    if expected is not None:
        assert trained.earlier_run is (expected == "1")
"""


@pytest.fixture(autouse=True)
def _hide_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)


def _entries(pytester: pytest.Pytester) -> list[Path]:
    folder = pytester.path / ".pytest_cache" / "d" / PERSISTENT_FOLDER
    return sorted(folder.glob(f"{LESSON}-*.pt")) if folder.is_dir() else []


def _title(result: pytest.RunResult) -> str:
    """The end-of-run table's title line: ``N trainings, N reached their target[, N ... earlier run]``."""
    found = re.findall(r"rnnshapes: (\d+ trainings, .*?) =+$", result.stdout.str(), re.M)
    assert len(found) == 1, result.stdout.str()
    return found[0]


def _run(pytester: pytest.Pytester, *args: str, earlier: bool) -> pytest.RunResult:
    """An inner run whose tests check ``trained.earlier_run`` against ``earlier``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EXPECT_EARLIER_RUN", "1" if earlier else "0")
        return pytester.runpytest_subprocess(*SLIM, *args)


def test_a_second_persistent_run_trains_nothing_also_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    first = _run(pytester, PERSISTENT, "-n", "2", earlier=False)
    first.assert_outcomes(passed=4)
    assert _title(first) == "1 trainings, 1 reached their target"
    assert len(_entries(pytester)) == 1

    # the ini twin, and two xdist workers asking for it at once: loaded, not trained, and listed once
    pytester.makeini("[pytest]\nrnnshapes_lesson_cache = persistent\n")
    second = _run(pytester, "-n", "2", earlier=True)
    second.assert_outcomes(passed=4)
    assert "lesson-cache=persistent" in second.stdout.str()
    assert _title(second) == "0 trainings, 0 reached their target, 1 lesson reused from an earlier run"
    second.stdout.fnmatch_lines([f"lesson {LESSON} (from an earlier run) *cpu*yes*"])
    assert second.stdout.str().count(f"lesson {LESSON}") == 1


THREE_LESSONS = """
import pytest


@pytest.mark.parametrize("name", ["hello-step", "hello-sequence", "hello-embedding"])
def test_lesson(rnn_lesson, name):
    trained = rnn_lesson(name)
    trained.assert_reached()
    assert trained.value == "ihello"
"""


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("UNPICKLED CODE RAN",))


def _plant(folder: Path, name: str, how: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put an entry where a run with the default options (seed 0, one thread, budget ci) looks for ``name``,
    or (``stale``) where an older rnnshapes would have put a sound one; return its path."""
    from rnnshapes.lessons import _registry
    from rnnshapes.train import save_checkpoint

    lesson = lessons.get(name)
    key = persistent_key(lesson, "cpu", 0, 1, 1.0)
    summary = {"reached": True, "steps": 3, "seconds": 0.1, "metric": "text", "value": "ihello"}
    summary |= {"target": lesson.target.describe(), "curve": [1.0]}
    sound = {"format": "rnnshapes-lesson-cache/1", "key": key, "lesson": summary}
    if how == "stale":  # written by another rnnshapes version: another key, so never looked up
        with monkeypatch.context() as mp:
            mp.setattr(_registry, "__version__", "0.0.0-older")
            sound["key"] = key = persistent_key(lesson, "cpu", 0, 1, 1.0)
    path = folder / f"{name}-{key}.pt"
    if how in ("stale", "foreign", "sound"):
        meta = sound if how != "foreign" else {**sound, "key": "0123456789abcdef"}  # copied from elsewhere
        save_checkpoint(path, lesson.build_model(), meta)
    elif how == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif how == "truncated":
        save_checkpoint(path, lesson.build_model(), sound)
        path.write_bytes(path.read_bytes()[:300])
    else:  # "code": a pickle that runs code when loaded without weights_only
        path.write_bytes(pickle.dumps(_Payload()))
    return path


@pytest.mark.parametrize(
    "plan",
    [
        {"hello-step": "stale", "hello-sequence": "garbage", "hello-embedding": "code"},
        {"hello-step": "foreign", "hello-sequence": "truncated", "hello-embedding": "sound"},
    ],
    ids=["stale-garbage-code", "foreign-truncated-sound"],
)
def test_stale_foreign_or_damaged_entries_are_trained_again_never_trusted(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, plan: dict[str, str]
) -> None:
    pytester.makepyfile(test_user=THREE_LESSONS)
    folder = pytester.path / ".pytest_cache" / "d" / PERSISTENT_FOLDER
    folder.mkdir(parents=True)
    planted = {name: _plant(folder, name, how, monkeypatch) for name, how in plan.items()}
    result = pytester.runpytest_subprocess(*SLIM, "-p", "no:xdist", "-s", PERSISTENT)
    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    assert "UNPICKLED CODE RAN" not in out
    for name, how in plan.items():
        if how == "sound":  # the one entry that is what it says: used (this also checks the key matches)
            result.stdout.fnmatch_lines([f"lesson {name} (from an earlier run) *cpu*yes*"])
        elif how == "stale":  # left alone, and the lesson trained under the current key
            result.stdout.fnmatch_lines([f"lesson {name}  *cpu*yes*"])
            assert planted[name].exists() and len(list(folder.glob(f"{name}-*.pt"))) == 2
        else:  # looked up, not trusted, trained again and replaced
            result.stdout.fnmatch_lines([f"lesson {name} (cache entry unusable) *cpu*yes*"])
            _, meta = load_checkpoint(planted[name])
            assert meta["key"] == planted[name].stem.rpartition("-")[2] and meta["lesson"]["steps"] > 0
    earlier = sum(how == "sound" for how in plan.values())
    assert _title(result) == f"{3 - earlier} trainings, {3 - earlier} reached their target" + (
        ", 1 lesson reused from an earlier run" if earlier else ""
    )


def test_two_runs_sharing_the_cache_at_once_train_the_lesson_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    # a training that takes a second, so that the second run comes while the first one trains
    pytester.makeconftest(
        """
import time

from rnnshapes.lessons import Lesson

_run = Lesson.run


def _slow_run(self, **kwargs):
    time.sleep(1.0)
    return _run(self, **kwargs)


Lesson.run = _slow_run
"""
    )
    runs = []
    for k in range(2):
        args = [sys.executable, "-m", "pytest", *SLIM, "-p", "no:xdist", PERSISTENT]
        runs.append(
            pytester.popen([*args, f"--basetemp={pytester.path / f'base{k}'}"], stdin=subprocess.DEVNULL)
        )
    outputs = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, (out, err)
        outputs.append(out.decode())
    titles = sorted(re.findall(r"rnnshapes: (\d+ trainings, .*?) =+$", "\n".join(outputs), re.M))
    assert titles == [
        "0 trainings, 0 reached their target, 1 lesson reused from an earlier run",
        "1 trainings, 1 reached their target",
    ], outputs
    assert len(_entries(pytester)) == 1


def test_persistent_without_pytests_cache_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = _run(pytester, PERSISTENT, "-p", "no:cacheprovider", "-p", "no:xdist", earlier=False)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--rnnshapes-lesson-cache=persistent keeps the lessons in pytest's cache*"])
