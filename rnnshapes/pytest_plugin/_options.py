"""Options (``--rnnshapes-*`` and their ini twins), their resolved ``Settings``, markers and the header line."""

import argparse
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest

from ..core._argtypes import choice, int_at_least

DEVICE_CHOICES = ("auto", "cpu", "cuda", "all")
"""Values of ``--rnnshapes-device``."""

DEVICES = ("cpu", "cuda")
"""The fixed order in which ``rnn_device`` is parametrised (filtered by ``--rnnshapes-device``)."""

MARKERS = (
    "rnnshapes_cuda: the test needs CUDA: skipped when it is absent under --rnnshapes-device=auto, an error "
    "under cuda/all, skipped under cpu",
    "rnnshapes_slow: the test trains for long; deselect with -m 'not rnnshapes_slow'",
    "rnnshapes_convergence: the test trains a model to a target (reported in the end-of-run table)",
)


class Budget(NamedTuple):
    """A training budget profile: multipliers of the step and time budgets that training fixtures use."""

    name: str
    steps: float
    seconds: float
    description: str

    def scale_steps(self, steps: int) -> int:
        """``steps`` scaled by the profile (at least 1)."""
        return max(1, round(steps * self.steps))

    def scale_seconds(self, seconds: float) -> float:
        """``seconds`` scaled by the profile."""
        return seconds * self.seconds


BUDGETS = {
    "ci": Budget("ci", 1.0, 1.0, "the step and time budgets as written (sized for CI on a small CPU)"),
    "full": Budget("full", 10.0, 10.0, "ten times the steps and time (full training on a real machine)"),
}
"""The ``--rnnshapes-budget`` profiles."""

LESSON_CACHES = ("run", "persistent")
"""Values of ``--rnnshapes-lesson-cache``."""


SEED_MAX = 2**63 - 1
"""The largest ``--rnnshapes-seed``: a seed plus a test's offset wraps round below 2**63 (torch's int64)."""
_positive_int = int_at_least(1)
_choice = choice


# name -> (type check, default, help)
_OPTIONS: dict[str, tuple[Callable[[str], Any], str, str]] = {
    "device": (
        _choice(DEVICE_CHOICES),
        "auto",
        "devices for rnn_device-parametrised tests: auto = cpu, plus cuda when torch finds it (else those tests "
        "are skipped with the reason); cpu; cuda; all = cpu and cuda. cuda and all make a missing CUDA an "
        "error, never a skip.",
    ),
    "seed": (
        int_at_least(0, SEED_MAX),
        "0",
        f"base random seed, 0 to {SEED_MAX} (what torch.manual_seed takes); each test adds a stable offset from "
        "its node id (rnn_seed), wrapping round at the top.",
    ),
    "budget": (
        _choice(tuple(BUDGETS)),
        "ci",
        "training budget profile, scaling the step and time budgets of training fixtures (rnn_lesson, "
        "rnn_checks.check_converges and check_overfits_batch): "
        + "; ".join(f"{b.name} = steps x{b.steps:g}, time x{b.seconds:g}" for b in BUDGETS.values())
        + ".",
    ),
    "threads": (
        _positive_int,
        "1",
        "CPU threads (torch.set_num_threads) that rnn_threads and training fixtures (rnn_lesson, "
        "rnn_checks.check_converges and check_overfits_batch) set for a test, restored after.",
    ),
    "lesson_cache": (
        _choice(LESSON_CACHES),
        "run",
        "where rnn_lesson keeps the lessons it trained: run = this run's temporary folder (every run trains "
        "again); persistent = also pytest's cache (.pytest_cache/d/rnnshapes-lessons), so a later run loads "
        "a lesson trained for the same key instead of training it (pytest --cache-clear empties it).",
    ),
}


@dataclass(frozen=True)
class Settings:
    """The resolved options of a run (command line, else ini, else default)."""

    device: str
    device_source: str
    seed: int
    budget: Budget
    threads: int
    lesson_cache: str = "run"

    @property
    def devices(self) -> tuple[str, ...]:
        """The devices ``rnn_device`` is parametrised over, in the fixed order of ``DEVICES``."""
        wanted = {"auto": DEVICES, "all": DEVICES, "cpu": ("cpu",), "cuda": ("cuda",)}[self.device]
        return tuple(d for d in DEVICES if d in wanted)

    @property
    def cuda_demanded(self) -> bool:
        """CUDA was asked for explicitly: its absence is an error, not a skip."""
        return self.device in ("cuda", "all")

    def describe_devices(self) -> str:
        return {
            "auto": "cpu,cuda (auto: cuda tests skipped when torch finds no CUDA)",
            "all": "cpu,cuda (all: CUDA required)",
            "cuda": "cuda (CUDA required)",
            "cpu": "cpu",
        }[self.device]


SETTINGS = pytest.StashKey[Settings]()
_PENDING = pytest.StashKey[list[dict[str, Any]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rnnshapes", "rnnshapes: recurrent-model checks and lesson training")
    for name, (check, default, text) in _OPTIONS.items():
        metavar = {
            "device": "{auto,cpu,cuda,all}",
            "budget": "{" + ",".join(BUDGETS) + "}",
            "lesson_cache": "{" + ",".join(LESSON_CACHES) + "}",
        }.get(name, "N")
        group.addoption(
            option_flag(name),
            dest=f"rnnshapes_{name}",
            type=check,
            default=None,
            metavar=metavar,
            help=f"{text} Default: {default}; ini: rnnshapes_{name}.",
        )
        parser.addini(f"rnnshapes_{name}", f"{text} Default: {default}.", default=default)


def option_flag(name: str) -> str:
    """The command-line spelling of option ``name`` of ``_OPTIONS`` (``lesson_cache``: ``--rnnshapes-lesson-cache``)."""
    return "--rnnshapes-" + name.replace("_", "-")


def _resolve(config: pytest.Config) -> Settings:
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, (check, default, _) in _OPTIONS.items():
        given = config.getoption(f"rnnshapes_{name}")
        if given is not None:
            values[name], sources[name] = given, "command line"
            continue
        raw = str(config.getini(f"rnnshapes_{name}")).strip()
        try:
            values[name] = check(raw)
        except argparse.ArgumentTypeError as e:
            raise pytest.UsageError(f"rnnshapes_{name} = {raw!r} in the ini file: {e}") from None
        sources[name] = "default" if raw == default else "ini"
    return Settings(
        device=values["device"],
        device_source=sources["device"],
        seed=values["seed"],
        budget=BUDGETS[values["budget"]],
        threads=values["threads"],
        lesson_cache=values["lesson_cache"],
    )


def settings(config: pytest.Config) -> Settings:
    """The run's resolved rnnshapes options."""
    return config.stash[SETTINGS]


def _version(distribution: str) -> str | None:
    """An installed distribution's version, from its metadata (nothing is imported)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def pytest_report_header(config: pytest.Config) -> str:
    """The settings the run resolved, rnnshapes' and torch's versions. The devices are the ones asked for:
    whether ``auto`` finds CUDA needs torch, so the tests-by-device summary at the end of the run says it."""
    s = settings(config)
    from .. import __version__

    return (
        f"rnnshapes: devices={s.describe_devices()} seed={s.seed} budget={s.budget.name} "
        f"(steps x{s.budget.steps:g}, time x{s.budget.seconds:g}) threads={s.threads} "
        f"version={_version('rnnshapes') or __version__} torch={_version('torch') or 'not installed'}"
        f" lesson-cache={s.lesson_cache}"
    )


# ---------------------------------------------------------------------------------------------------------------
# Devices


_CUDA_REASON: list[str | None] = []  # cached per process: None = CUDA usable
