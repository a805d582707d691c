"""The rnnshapes pytest plugin (registered through the ``pytest11`` entry point ``rnnshapes``).

Loading it imports neither torch nor jaxtyping and creates no files: pytest loads every installed plugin in
every run, so torch is imported only inside fixtures and hooks that a test actually uses (``rnn_device`` when
it checks for CUDA, ``rnn_seed``, ``rnn_threads``, ``rnn_checks``...). Disable it with ``-p no:rnnshapes``.

Options (group "rnnshapes"; each has an ini twin, the command line wins):

=========================  =====================  =============================================================
option                     ini                    meaning (default)
=========================  =====================  =============================================================
``--rnnshapes-device``     ``rnnshapes_device``   ``auto`` (cpu, plus cuda when present, else skipped), ``cpu``,
                                                  ``cuda`` or ``all`` (cpu and cuda; CUDA absent is an error)
``--rnnshapes-seed``       ``rnnshapes_seed``     base seed (0); each test adds a stable offset from its node id
``--rnnshapes-budget``     ``rnnshapes_budget``   ``ci`` (x1 steps and time) or ``full`` (x10)
``--rnnshapes-threads``    ``rnnshapes_threads``  CPU threads set by training fixtures (1)
=========================  =====================  =============================================================

Fixtures: ``rnn_device`` (parametrised over the fixed, ordered list ``cpu``, ``cuda`` filtered by the option,
so every xdist worker sees the same test ids), ``rnn_seed``, ``rnn_threads``, ``rnn_budget``,
``rnn_train_record``, ``rnn_checks`` (``rnnshapes.testing`` bound to the test). Markers: ``rnnshapes_cuda``,
``rnnshapes_slow``, ``rnnshapes_convergence``.

Reporting: the header line shows the resolved options and the rnnshapes and torch versions (the devices as
asked for: what ``auto`` finds needs torch, which loading must not import). A failed test that trained gets a
"rnnshapes convergence" report section (curve sparkline, budget, copy-paste rerun line). The run ends with a
table of the tests tied to a device (``rnn_device``, ``rnnshapes_cuda``): how many ran, were skipped or erred
on each, and what CUDA was found to be; and a table of everything that was trained. Both are printed once, by
the xdist controller (records travel from the workers in ``report.user_properties``).
"""

import argparse
import importlib.metadata
import itertools
import os
import random
import shlex
import sys
import zlib
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest

from ._argtypes import choice, int_at_least

DEVICE_CHOICES = ("auto", "cpu", "cuda", "all")
"""Values of ``--rnnshapes-device``."""

DEVICES = ("cpu", "cuda")
"""The fixed order in which ``rnn_device`` is parametrised (filtered by ``--rnnshapes-device``)."""

RECORD_KEY = "rnnshapes_train"
"""The key of training records in ``report.user_properties``."""

DEVICE_KEY = "rnnshapes_device"
"""The key of a device-bound test's device (and the CUDA state found) in ``report.user_properties``."""

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


_nonnegative_int = int_at_least(0)
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
        _nonnegative_int,
        "0",
        "base random seed; each test adds a stable offset from its node id (rnn_seed).",
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
}


@dataclass(frozen=True)
class Settings:
    """The resolved options of a run (command line, else ini, else default)."""

    device: str
    device_source: str
    seed: int
    budget: Budget
    threads: int

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
        metavar = {"device": "{auto,cpu,cuda,all}", "budget": "{" + ",".join(BUDGETS) + "}"}.get(name, "N")
        group.addoption(
            f"--rnnshapes-{name}",
            dest=f"rnnshapes_{name}",
            type=check,
            default=None,
            metavar=metavar,
            help=f"{text} Default: {default}; ini: rnnshapes_{name}.",
        )
        parser.addini(f"rnnshapes_{name}", f"{text} Default: {default}.", default=default)


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
    )


def settings(config: pytest.Config) -> Settings:
    """The run's resolved rnnshapes options."""
    return config.stash[SETTINGS]


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    config.stash[SETTINGS] = _resolve(config)
    config.stash[_PENDING] = []
    if not hasattr(config, "workerinput"):  # the xdist controller, or a run without xdist
        config.pluginmanager.register(_TrainingSummary(), "rnnshapes-training-summary")


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
    from . import __version__

    return (
        f"rnnshapes: devices={s.describe_devices()} seed={s.seed} budget={s.budget.name} "
        f"(steps x{s.budget.steps:g}, time x{s.budget.seconds:g}) threads={s.threads} "
        f"version={_version('rnnshapes') or __version__} torch={_version('torch') or 'not installed'}"
    )


# ---------------------------------------------------------------------------------------------------------------
# Devices


_CUDA_REASON: list[str | None] = []  # cached per process: None = CUDA usable


def _cuda_unavailable_reason() -> str | None:
    if not _CUDA_REASON:
        from rnnshapes.testing import cuda_unavailable_reason  # imports torch: only when CUDA matters

        _CUDA_REASON.append(cuda_unavailable_reason())
    return _CUDA_REASON[0]


def _cuda_state() -> str | None:
    """What this process found out about CUDA, when it had to (None: not looked at; torch is not imported)."""
    if not _CUDA_REASON:
        return None
    if _CUDA_REASON[0] is not None:
        return _CUDA_REASON[0]
    import torch  # imported already: the reason was resolved

    return f"CUDA available: {torch.cuda.device_count()} GPU(s), torch {torch.__version__} (CUDA {torch.version.cuda})"


def _device_entry(item: pytest.Item) -> dict[str, Any] | None:
    """The device of a test that ``rnn_device`` or the ``rnnshapes_cuda`` marker ties to one, for the summary."""
    callspec = getattr(item, "callspec", None)
    device = callspec.params.get("rnn_device") if callspec is not None else None
    if device is None and item.get_closest_marker("rnnshapes_cuda") is not None:
        device = "cuda"
    if device is None:
        return None
    return {"device": str(device), "cuda": _cuda_state()}


def _skip_reason(config: pytest.Config) -> str | None:
    """Why a CUDA test is skipped in this run (None: it runs, or fails when CUDA was demanded but is absent)."""
    s = settings(config)
    if s.device == "cpu":
        return "needs CUDA, but --rnnshapes-device=cpu runs on the CPU only"
    if s.cuda_demanded:
        return None
    reason = _cuda_unavailable_reason()
    if reason is None:
        return None
    return f"{reason}; skipped under --rnnshapes-device=auto (--rnnshapes-device=cuda makes this an error)"


def _require_cuda(config: pytest.Config) -> None:
    """Skip (auto, cpu) or fail (cuda/all demanded) the current test when CUDA is absent."""
    __tracebackhide__ = True
    skip = _skip_reason(config)
    if skip is not None:
        pytest.skip(skip)
    reason = _cuda_unavailable_reason()
    if reason is not None:
        s = settings(config)
        pytest.fail(
            f"{reason}; but CUDA was demanded by rnnshapes device={s.device} ({s.device_source}). Run on a "
            "machine with a GPU, or use --rnnshapes-device=auto to skip CUDA tests where it is absent",
            pytrace=False,
        )


def _parametrized_by_user(metafunc: pytest.Metafunc) -> bool:
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", "")
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if "rnn_device" in names:
            return True
    return False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "rnn_device" not in metafunc.fixturenames or _parametrized_by_user(metafunc):
        return
    devices = list(settings(metafunc.config).devices)
    metafunc.parametrize("rnn_device", devices, indirect=True, ids=devices, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cuda_items = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("rnn_device") == "cuda":
            item.add_marker(pytest.mark.rnnshapes_cuda)
        if item.get_closest_marker("rnnshapes_cuda") is not None:
            cuda_items.append(item)
    if cuda_items:  # (torch is imported here only when some test needs CUDA)
        reason = _skip_reason(config)
        if reason is not None:  # a visible skip, reported at the test's own location
            for item in cuda_items:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("rnnshapes_cuda") is not None and settings(item.config).cuda_demanded:
        _require_cuda(item.config)  # fails when CUDA is absent: demanded, so never a skip


@pytest.fixture(scope="session")
def rnn_device(request: pytest.FixtureRequest) -> str:
    """The device of this test: ``"cpu"`` or ``"cuda"`` (parametrised by ``--rnnshapes-device``).

    A cuda test is skipped with the reason when CUDA is absent, or fails when CUDA was demanded
    (``--rnnshapes-device=cuda`` or ``all``)."""
    device = getattr(request, "param", None) or settings(request.config).devices[0]
    if device == "cuda":
        _require_cuda(request.config)
    return str(device)


# ---------------------------------------------------------------------------------------------------------------
# Seeds, threads, budget


def seed_for(config: pytest.Config, nodeid: str) -> int:
    """The seed of a test: the base seed plus a stable offset from its node id (crc32, below 100000)."""
    return settings(config).seed + zlib.crc32(nodeid.encode()) % 100_000


@pytest.fixture
def rnn_seed(request: pytest.FixtureRequest) -> int:
    """Seed python's ``random`` and torch (all devices) for this test; returns the seed.

    The seed is ``--rnnshapes-seed`` plus a stable per-test offset (crc32 of the node id), so a test gets
    the same seed on every run and every xdist worker, and different tests get different ones."""
    seed = seed_for(request.config, request.node.nodeid)
    random.seed(seed)
    import torch

    torch.manual_seed(seed)
    return seed


@pytest.fixture
def rnn_threads(request: pytest.FixtureRequest) -> Iterator[int]:
    """Set ``torch.set_num_threads(--rnnshapes-threads)`` for this test and restore the old count after."""
    import torch

    threads = settings(request.config).threads
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(old)


@pytest.fixture(scope="session")
def rnn_budget(request: pytest.FixtureRequest) -> Budget:
    """The ``--rnnshapes-budget`` profile (``budget.scale_steps(n)``, ``budget.scale_seconds(s)``)."""
    return settings(request.config).budget


# ---------------------------------------------------------------------------------------------------------------
# Training records and reports

_RECORD_IDS = itertools.count()


def _device_of(node: Any, config: pytest.Config) -> str:
    callspec = getattr(node, "callspec", None)
    if callspec is not None and "rnn_device" in callspec.params:
        return str(callspec.params["rnn_device"])
    return settings(config).device


def make_record(
    result: Any = None,
    *,
    name: str | None = None,
    device: str | None = None,
    steps: int | None = None,
    seconds: float | None = None,
    metric: float | str | None = None,
    target: float | str | None = None,
    reached: bool | None = None,
    mode: str | None = None,
    curve: list[float] | None = None,
) -> dict[str, Any]:
    """A training record (plain data that travels between xdist processes), from a ``ConvergenceResult``
    (anything with ``as_record()``) and/or fields given one by one (which win)."""
    record: dict[str, Any] = dict(result.as_record()) if result is not None else {}
    given = {
        "name": name,
        "device": device,
        "steps": steps,
        "seconds": seconds,
        "metric": metric,
        "target": target,
        "reached": reached,
        "mode": mode,
        "curve": curve,
    }
    record.update({k: v for k, v in given.items() if v is not None})
    record.setdefault("name", "training")
    record.setdefault("mode", ">=")
    record["curve"] = [float(v) for v in record.get("curve") or []]
    record["id"] = f"{os.getpid()}-{next(_RECORD_IDS)}"
    return record


def record_training(request: pytest.FixtureRequest, record: dict[str, Any]) -> None:
    """Attach a training record to the current test's report (or, from a fixture of a wider scope, to the next
    report made), for the end-of-run table and the failure section."""
    node = request.node
    record.setdefault("device", _device_of(node, request.config))
    if isinstance(node, pytest.Item):
        node.user_properties.append((RECORD_KEY, record))
    else:
        request.config.stash[_PENDING].append(record)


@pytest.fixture
def rnn_train_record(request: pytest.FixtureRequest) -> Callable[..., dict[str, Any]]:
    """``record(result=None, *, name, device, steps, seconds, metric, target, reached, mode, curve)``: record a
    training of this test for the end-of-run table (and the failure report section). Pass a
    ``ConvergenceResult`` or the fields; the device defaults to this test's ``rnn_device``."""

    def record(result: Any = None, **fields: Any) -> dict[str, Any]:
        rec = make_record(result, **fields)
        record_training(request, rec)
        return rec

    return record


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    pending = item.config.stash[_PENDING]
    while pending:  # records made by wider-scoped fixtures travel with the next report
        item.user_properties.append((RECORD_KEY, pending.pop(0)))
    if (
        call.when == "setup"
    ):  # the device, and what CUDA was found to be, travel with every report of the test
        entry = _device_entry(item)
        if entry is not None:
            item.user_properties.append((DEVICE_KEY, entry))
    report = yield
    if report.when == "call" and report.failed:
        section = _convergence_section(item, call, report)
        if section:
            report.sections.append(("rnnshapes convergence", section))
    return report


def _convergence_section(item: pytest.Item, call: pytest.CallInfo[None], report: Any) -> str | None:
    records = [r for k, r in report.user_properties if k == RECORD_KEY and not r.get("reached", True)]
    failure = getattr(call.excinfo, "value", None)
    result = getattr(failure, "result", None)
    if result is not None and hasattr(result, "as_record") and "rnnshapes.testing" in sys.modules:
        from rnnshapes.testing import ConvergenceFailed

        if isinstance(failure, ConvergenceFailed) and not records:
            records = [make_record(result, device=_device_of(item, item.config))]
    if not records:
        return None
    from rnnshapes.testing import sparkline

    s = settings(item.config)
    lines = []
    for r in records:
        curve = r.get("curve") or []
        lines.append(
            f"{r.get('name')} on {r.get('device')}: metric {r.get('mode')} {r.get('target')} not reached in "
            f"{r.get('steps')} steps ({_num(r.get('seconds'))} s); last {_num(r.get('metric'))}"
        )
        if curve:
            lines.append(
                f"curve: {sparkline(curve)}  {_num(curve[0])} -> {_num(curve[-1])} ({len(curve)} points)"
            )
        if r.get("budget") in BUDGETS:  # trained by rnn_checks: under the budget profile and thread count
            b = BUDGETS[r["budget"]]
            limits = [f"{r.get('max_steps')} steps"]
            if r.get("max_seconds") is not None:
                limits.append(f"{_num(r.get('max_seconds'))} s")
            threads = r.get("threads")
            lines.append(
                f"budget: {' / '.join(limits)} (--rnnshapes-budget={b.name}: x{b.steps:g} the steps and "
                f"x{b.seconds:g} the time the test wrote), {threads} CPU thread{'' if threads == 1 else 's'} "
                f"(--rnnshapes-threads={threads})"
            )
    device = _device_of(item, item.config)
    lines.append(
        f"rerun: pytest {shlex.quote(item.nodeid)} --rnnshapes-seed={s.seed} --rnnshapes-device={device} "
        f"--rnnshapes-budget={s.budget.name} --rnnshapes-threads={s.threads}"
    )
    return "\n".join(lines)


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return f"{value:.4g}"
    return str(value)


def _write_table(terminalreporter: Any, table: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[k]) for row in table) for k in range(len(table[0]))]
    for row in table:
        terminalreporter.write_line(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        )


class _TrainingSummary:
    """Collects training records and device-bound tests from reports (the workers' too, under xdist) and prints
    the tests-by-device table and the trainings table."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.devices: dict[str, dict[str, Any]] = {}  # nodeid -> device, outcome
        self.cuda: str | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, value in report.user_properties:
            if key == RECORD_KEY and isinstance(value, dict):
                rid = str(value.get("id", len(self.records)))
                self.records.setdefault(rid, {**value, "nodeid": report.nodeid})
            elif key == DEVICE_KEY and isinstance(value, dict):
                self._device_report(report, value)

    def _device_report(self, report: pytest.TestReport, entry: dict[str, Any]) -> None:
        test = self.devices.setdefault(report.nodeid, {"device": str(entry.get("device")), "outcome": None})
        self.cuda = self.cuda or entry.get("cuda")
        if report.skipped:
            test["outcome"] = "skipped"
        elif report.when == "call":
            test["outcome"] = "ran"
        elif report.failed and test["outcome"] is None:
            test["outcome"] = "error"  # in setup (a teardown error after the call leaves "ran")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.devices:
            self._device_summary(terminalreporter)
        if self.records:
            self._training_summary(terminalreporter)

    def _device_summary(self, terminalreporter: Any) -> None:
        s = settings(terminalreporter.config)
        found = {t["device"] for t in self.devices.values()}
        devices = [d for d in DEVICES if d in found] + sorted(found - set(DEVICES))
        header = ("device", "ran", "skipped", "errors", "state")
        table = [header]
        for device in devices:
            outcomes = [t["outcome"] for t in self.devices.values() if t["device"] == device]
            state = ""
            if device == "cuda":
                state = self.cuda or f"not looked for (--rnnshapes-device={s.device})"
            counts = [str(outcomes.count(o)) for o in ("ran", "skipped", "error")]
            table.append((device, *counts, state))
        terminalreporter.write_sep("=", f"rnnshapes: tests by device (--rnnshapes-device={s.device})")
        _write_table(terminalreporter, table)

    def _training_summary(self, terminalreporter: Any) -> None:
        rows = sorted(
            self.records.values(), key=lambda r: (str(r.get("name")), str(r.get("device")), r["nodeid"])
        )
        header = ("name", "device", "steps", "seconds", "metric", "target", "reached")
        table = [header] + [
            (
                str(r.get("name")),
                str(r.get("device")),
                str(r.get("steps")),
                _num(r.get("seconds")),
                _num(r.get("metric")),
                f"{r.get('mode', '')} {_num(r.get('target'))}",
                "yes" if r.get("reached") else "NO",
            )
            for r in rows
        ]
        reached = sum(1 for r in rows if r.get("reached"))
        terminalreporter.write_sep("=", f"rnnshapes: {len(rows)} trainings, {reached} reached their target")
        _write_table(terminalreporter, table)


# ---------------------------------------------------------------------------------------------------------------
# Checks bound to a test


class RnnChecks:
    """``rnnshapes.testing`` bound to one test (the ``rnn_checks`` fixture).

    Every check of ``rnnshapes.testing`` is available as an attribute. On top of that:

    * ``check_converges`` / ``check_overfits_batch`` train with ``--rnnshapes-threads`` CPU threads (restored
      after), their step and time budgets (``max_steps``, ``max_seconds``, ``steps``) scaled by
      ``--rnnshapes-budget`` (write them for ``ci``; scaling them with ``rnn_budget`` too would scale twice),
      and record the training with its threads and scaled budgets (end-of-run table, failure section);
    * ``check_device_parity`` skips when CUDA is absent (fails when it was demanded);
    * checks that take a ``seed`` get this test's ``rnn_seed`` unless given one;
    * ``device`` and ``seed`` are this test's; ``to_device(obj)`` moves inputs there (lengths stay on the CPU).
    """

    def __init__(self, request: pytest.FixtureRequest, device: str, seed: int) -> None:
        import rnnshapes.testing

        self._request = request
        self._testing = rnnshapes.testing
        self.device = device
        self.seed = seed

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._testing, name)
        if not (name.startswith("check_") and callable(value)):
            return value
        import functools
        import inspect

        if "seed" not in inspect.signature(value).parameters:
            return value

        @functools.wraps(value)
        def seeded(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            kwargs.setdefault("seed", self.seed)
            return value(*args, **kwargs)

        return seeded

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._testing.__all__))

    def to_device(self, obj: Any) -> Any:
        import torch

        from rnnshapes.testing._calls import to_device

        return to_device(obj, torch.device(self.device))

    def _train(self, check: str, steps_arg: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run a training check under ``--rnnshapes-threads`` CPU threads, its step and time budgets scaled by
        ``--rnnshapes-budget``, and record the training with the threads and budgets it had."""
        __tracebackhide__ = True
        import inspect

        from rnnshapes.train import torch_threads

        s = settings(self._request.config)
        run = getattr(self._testing, check)
        param = inspect.signature(run).parameters.get(steps_arg)
        steps = kwargs.get(steps_arg, None if param is None else param.default)
        if isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1:  # else the check says why
            kwargs[steps_arg] = s.budget.scale_steps(steps)
        seconds = kwargs.get("max_seconds")
        if isinstance(seconds, (int, float)) and seconds > 0:
            kwargs["max_seconds"] = s.budget.scale_seconds(seconds)
        budget = {
            "budget": s.budget.name,
            "threads": s.threads,
            "max_steps": kwargs.get(steps_arg),
            "max_seconds": kwargs.get("max_seconds"),
        }
        try:
            with torch_threads(s.threads):
                result = run(*args, **kwargs)
        except self._testing.ConvergenceFailed as e:
            self._record(e.result, budget)
            raise
        self._record(result, budget)
        return result

    def _record(self, result: Any, budget: dict[str, Any]) -> None:
        record = make_record(result, device=self.device)
        record.update(budget)
        record_training(self._request, record)

    def check_converges(self, *args: Any, **kwargs: Any) -> Any:
        """``rnnshapes.testing.check_converges`` with ``max_steps`` and ``max_seconds`` scaled by the budget
        profile, run with ``--rnnshapes-threads`` CPU threads, and recorded."""
        __tracebackhide__ = True
        kwargs.setdefault("name", self._request.node.name)
        return self._train("check_converges", "max_steps", args, kwargs)

    def check_overfits_batch(self, *args: Any, **kwargs: Any) -> Any:
        """``rnnshapes.testing.check_overfits_batch`` with ``steps`` (given or default) scaled by the budget
        profile, run with ``--rnnshapes-threads`` CPU threads, and recorded."""
        __tracebackhide__ = True
        kwargs.setdefault("name", f"{self._request.node.name} (overfit one batch)")
        return self._train("check_overfits_batch", "steps", args, kwargs)

    def check_device_parity(self, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        kwargs.setdefault("seed", self.seed)
        try:
            return self._testing.check_device_parity(*args, **kwargs)
        except self._testing.DeviceUnavailable:
            _require_cuda(self._request.config)  # skips, or fails when CUDA was demanded
            raise


@pytest.fixture
def rnn_checks(request: pytest.FixtureRequest, rnn_seed: int) -> RnnChecks:
    """``rnnshapes.testing`` bound to this test (see :class:`RnnChecks`): seeded with ``rnn_seed``, on this
    test's ``rnn_device`` when the test uses it (else cpu), recording what it trains."""
    device = request.getfixturevalue("rnn_device") if "rnn_device" in request.fixturenames else "cpu"
    return RnnChecks(request, device, rnn_seed)


# ---------------------------------------------------------------------------------------------------------------
# Lesson training fixtures (their own module: the one part that trains; torch-free at import like this one)

from ._pytest_lessons import TrainedLesson as TrainedLesson  # noqa: E402
from ._pytest_lessons import rnn_lesson as rnn_lesson  # noqa: E402
from ._pytest_lessons import rnn_lesson_dir as rnn_lesson_dir  # noqa: E402
