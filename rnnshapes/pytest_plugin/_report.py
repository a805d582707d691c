"""Reporting: training records (they travel from xdist workers in ``report.user_properties``), the
"rnnshapes convergence" section of a failed test, and the end-of-run tables (tests by device, trainings)."""

import itertools
import os
import shlex
import sys
from collections.abc import Generator, Sequence
from typing import Any

import pytest

from ._devices import _device_entry
from ._options import _PENDING, BUDGETS, DEVICES, settings

RECORD_KEY = "rnnshapes_train"
"""The key of training records in ``report.user_properties``."""

DEVICE_KEY = "rnnshapes_device"
"""The key of a device-bound test's device (and the CUDA state found) in ``report.user_properties``."""

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
    no_gradient: list[str] | None = None,
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
        "no_gradient": no_gradient,
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
        lines += _no_gradient_lines(r)
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


def _no_gradient_lines(record: dict[str, Any]) -> list[str]:
    """The parameters a training never gave a non-zero gradient, as the record carries them (grouped)."""
    groups = record.get("no_gradient") or []
    if not groups:
        return []
    lines = ["parameters that never received a non-zero gradient (they never learned):"]
    lines += [f"  {group}" for group in groups[:6]]
    if len(groups) > 6:
        lines.append(f"  ... and {len(groups) - 6} more groups")
    return lines


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return f"{value:.4g}"
    return str(value)


def _no_gradient_cell(record: dict[str, Any]) -> str:
    """How many parameter groups never learned: ``-`` when the training did not watch them (check_converges
    without ``model=``, or a record made by hand)."""
    groups = record.get("no_gradient")
    if groups is None:
        return "-"
    return str(len(groups)) if groups else "0"


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
        header = ("name", "device", "steps", "seconds", "metric", "target", "reached", "no grad")
        table = [header] + [
            (
                str(r.get("name")),
                str(r.get("device")),
                str(r.get("steps")),
                _num(r.get("seconds")),
                _num(r.get("metric")),
                f"{r.get('mode', '')} {_num(r.get('target'))}",
                "yes" if r.get("reached") else "NO",
                _no_gradient_cell(r),
            )
            for r in rows
        ]
        # lessons loaded from an earlier run (--rnnshapes-lesson-cache=persistent) are listed, not counted
        earlier = sum(1 for r in rows if r.get("earlier_run"))
        reached = sum(1 for r in rows if r.get("reached") and not r.get("earlier_run"))
        title = f"rnnshapes: {len(rows) - earlier} trainings, {reached} reached their target"
        if earlier:
            title += f", {earlier} lesson{'' if earlier == 1 else 's'} reused from an earlier run"
        terminalreporter.write_sep("=", title)
        _write_table(terminalreporter, table)
        for r in rows:  # passed or not: part of the model never learned
            lines = _no_gradient_lines(r)
            if lines:
                terminalreporter.write_line(f"{r.get('name')} ({r['nodeid']}): {lines[0]}")
                for line in lines[1:]:
                    terminalreporter.write_line(line)
