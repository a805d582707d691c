"""Helpers for the pages' executed code blocks (markdown-exec): everything here runs while the site is built.

- ``cell_tour_table`` and ``checks_table``: the shape lessons' results (12_1's tour, a lesson's checks).
- ``run_figures`` and ``runs_table``: the training runs recorded in ``docs/runs/*.json`` by
  ``scripts/record_runs.py`` (the build never trains; it only reads these files).
- ``example_blocks_problems``: the pages write the example files of ``docs/examples`` out in their Markdown (a
  reader of the repository sees the code), in fenced blocks titled ``docs/examples/<name>``; the build
  (``hooks.py``) fails when a block is not the file, or one of its ``--8<--`` sections, word for word, or when
  a section is missing from the page.
- ``example``, ``example_sections``, ``failure_report`` and ``training_table``: the example files, shown whole
  or section by section, pytest's real output for the one that fails on purpose, and the end-of-run table of
  the one that passes.
- ``Catalogue``: runs one mistake per entry of the error catalogue and prints the code with the real
  ``ShapeError`` text; a mistake that raises nothing, or the wrong hint, fails the build.

``hooks.py`` puts this folder on ``sys.path``.
"""

import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

RUNS = Path(__file__).resolve().parents[1] / "runs"
RECORD_COMMAND = "python scripts/record_runs.py && python scripts/plot_runs.py"
RUN_FORMAT = 1  # scripts/record_runs.py's FORMAT


# --- Markdown ----------------------------------------------------------------------------------------------


def cell(value: Any) -> str:
    """One table cell: pipes escaped, newlines shown as ``\\n``."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", "\\n")


def table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def fence(language: str, code: str) -> str:
    return f"```{language}\n{code.rstrip()}\n```\n"


def cell_tour_table(rows: Iterable[Any]) -> str:
    """12_1: one row per ``CellShapes`` that ``cell_tour()`` returned."""

    def shape(s: tuple[int, ...] | None) -> str:
        return "" if s is None else "(" + ", ".join(map(str, s)) + ")"

    return table(
        ("cell", "batch_first", "case", "input", "output", "h_n", "c_n"),
        (
            [
                r.cell,
                r.batch_first,
                r.case,
                shape(r.input),
                shape(r.output),
                shape(r.hidden),
                shape(r.cell_state),
            ]
            for r in rows
        ),
    )


def checks_table(lesson_name: str) -> str:
    """A shape lesson's checks, run now: one row per check, and the lesson's verdict."""
    from rnnshapes import lessons

    lesson = lessons.get(lesson_name)
    assert lesson.run_checks is not None, f"{lesson_name} is not a shape lesson"
    result = lesson.run(progress=False)
    checks = lesson.run_checks(torch.device("cpu"))
    md = table(("check", "passed"), ([name, "yes" if ok else "**NO**"] for name, ok in checks.items()))
    md += (
        f"\n`lessons.get({lesson_name!r}).run()` reports `reached={result.reached}` and "
        f"`final={result.final}` (target `{lesson.target.describe()}`), in {result.seconds * 1000:.0f} ms.\n"
    )
    return md


_SCRIPT = re.compile(r"\b1[23]_\d\b")  # a course script: 12_1 ... 13_4


def course_notes(obj: Any, script: str | None = None) -> str:
    """The ``What the course code got wrong:`` block of a lesson model's docstring, as Markdown.

    The docs' Griffe extension leaves that block out of the API entry, so it appears once, here. With
    ``script`` (``"12_2"``), only the bullets about that course script, and those that name no script (they
    hold for every lesson of the model): a model shared by two lessons gets one page per lesson.
    """
    from torch_docstrings import split_course_notes

    _, remark, notes = split_course_notes(inspect.getdoc(obj) or "")
    if not notes:
        raise ValueError(f"{obj.__qualname__}'s docstring has no 'What the course code got wrong:' block")
    if script is not None:
        bullets = re.split(r"\n(?=\* )", notes)
        kept = [b for b in bullets if script in _SCRIPT.findall(b) or not _SCRIPT.search(b)]
        if not any(script in _SCRIPT.findall(b) for b in kept):
            raise ValueError(f"{obj.__qualname__}'s course notes say nothing about {script}")
        notes = "\n".join(kept)
    intro = f"{remark[0].upper()}{remark[1:]}.\n\n" if remark else ""
    return intro + notes + "\n"


# --- recorded runs -----------------------------------------------------------------------------------------


def load_run(lesson: str) -> dict[str, Any]:
    path = RUNS / f"{lesson}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: record it with `{RECORD_COMMAND}`")
    run = json.loads(path.read_text(encoding="utf-8"))
    if run.get("format") != RUN_FORMAT:
        raise ValueError(f"{path} has format {run.get('format')!r}, not {RUN_FORMAT}: record it again")
    return run


def _value(metric: str, value: Any) -> str:
    if metric == "accuracy" and isinstance(value, (int, float)):
        return f"{value:.2%}"
    return repr(value) if isinstance(value, str) else f"{value:g}"


def _recipe(run: dict[str, Any]) -> str:
    r = run["recipe"]
    model = {k: v for k, v in r["model"].items() if k != "alphabet"}
    if "alphabet" in r["model"]:
        model["alphabet"] = f"{len(r['model']['alphabet'])} symbols"
    parts = [f"{run['model']}({', '.join(f'{k}={v}' for k, v in model.items())})"]
    parts.append(f"{r['optimizer']} lr={r['lr']:g}, batch {r['batch_size']}")
    if r["schedule"]:
        parts.append(f"{r['schedule']} schedule")
    if r["clip"]:
        parts.append(f"gradient norm clipped at {r['clip']:g}")
    parts += [f"{k}={v}" for k, v in r["extra"].items()]
    return "; ".join(parts)


def _budget(run: dict[str, Any]) -> str:
    b = run["budget"]
    limit = f"{b['max_steps']} steps" + (f" or {b['max_seconds']:g} s" if b["max_seconds"] else "")
    every = "every step" if b["eval_every"] == 1 else f"every {b['eval_every']} steps"
    start = f" from step {b['eval_from']} on" if b.get("eval_from") else ""
    return f"{limit}, evaluated {every}{start} and at the last step"


def run_figures(lesson: str, prefix: str = "../") -> str:
    """The lesson's recorded curve (docs/runs/<lesson>.png) and its figures, quoted from the JSON."""
    run = load_run(lesson)
    metric = run["target"]["metric"]
    hit = run["reached_at"]
    if hit is not None:
        reached = f"yes, first at step {hit['step']} ({hit['seconds']:.2f} s)"
    else:
        reached = "**no**: the budget ran out first"
    how = "the whole budget" if not run["stop_at_target"] else "stopped at the target or the budget"
    m = run["machine"]
    rows = [
        ("target", f"`{run['target']['text']}`"),
        ("reached", reached),
        ("trained", f"{run['steps']} steps in {run['seconds']:.2f} s ({how})"),
        (f"final {metric}", _value(metric, run["final"].get(metric))),
        ("recipe", _recipe(run)),
        ("budget", _budget(run)),
        (
            "machine",
            f"{m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch thread, torch {m['torch']}, "
            f"Python {m['python']}; recorded {m['date']}, seed {run['seed']}",
        ),
    ]
    # what the plot draws (scripts/plot_runs.py): the training loss, and the target metric on its own curve
    if isinstance(run["target"]["goal"], str):
        what = f"training loss and the number of characters of {run['target']['goal']!r} predicted right"
    elif metric == "loss":
        what = "training loss and validation loss"
    else:
        what = f"training loss and test {metric}"
    alt = f"Training curve of lesson {lesson}: {what}, against the step"
    md = f"![{alt}]({prefix}runs/{lesson}.png)\n\n"
    md += table((f"`{lesson}` ({run['course']})", "recorded run"), rows)
    md += f"\nThe numbers are read from [runs/{lesson}.json]({prefix}runs/{lesson}.json) when this page is built.\n"
    return md


def recorded_lessons() -> list[str]:
    return sorted(p.stem for p in RUNS.glob("*.json"))


def runs_table(prefix: str = "") -> str:
    """One row per recorded run, in course order."""
    from rnnshapes import lessons

    rows = []
    for name in lessons.names():
        if not lessons.get(name).trainable:
            continue
        run = load_run(name)
        metric = run["target"]["metric"]
        hit = run["reached_at"]
        rows.append(
            [
                f"[{name}]({prefix}runs/{name}.png)",
                run["course"],
                f"`{run['target']['text']}`",
                f"step {hit['step']}, {hit['seconds']:.2f} s" if hit else "**no**",
                f"{run['steps']} / {run['seconds']:.1f} s",
                _value(metric, run["final"].get(metric)),
                run["machine"]["date"],
            ]
        )
    return table(("lesson", "course", "target", "reached at", "trained steps / s", "final", "recorded"), rows)


def machines() -> str:
    """The distinct machines the recorded runs ran on."""
    seen = {json.dumps(load_run(n)["machine"], sort_keys=True) for n in recorded_lessons()}
    lines = []
    for blob in sorted(seen):
        m = json.loads(blob)
        lines.append(
            f"- {m['cpu']}, {m['cores']} cores usable, {m['torch_threads']} torch thread; torch {m['torch']}, "
            f"Python {m['python']}, {m['platform']}"
        )
    return "\n".join(lines) + "\n"


# --- example files -----------------------------------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
_SECTION = re.compile(r"^# --8<-- \[(start|end):([\w-]+)\]\n", re.M)


def example_sections(name: str) -> dict[str, str]:
    """The sections of an example file, marked ``# --8<-- [start:NAME]`` ... ``# --8<-- [end:NAME]`` (the
    markers of pymdownx.snippets), by name, in the order of the file."""
    source = (EXAMPLES / name).read_text(encoding="utf-8")
    sections: dict[str, str] = {}
    opened: tuple[str, int] | None = None
    for match in _SECTION.finditer(source):
        kind, section = match.groups()
        if kind == "start":
            if opened is not None:
                raise ValueError(f"{name}: section {section!r} starts inside {opened[0]!r}")
            opened = (section, match.end())
        else:
            if opened is None or opened[0] != section:
                raise ValueError(f"{name}: section {section!r} ends without its start")
            sections[section] = source[opened[1] : match.start()].strip("\n") + "\n"
            opened = None
    if opened is not None:
        raise ValueError(f"{name}: section {opened[0]!r} never ends")
    return sections


def example(name: str, section: str | None = None) -> str:
    """An example file of docs/examples (or one of its sections) as a fenced code block (tests/docs runs these
    files)."""
    path = EXAMPLES / name
    language = "python" if path.suffix == ".py" else "text"
    if section is not None:
        sections = example_sections(name)
        if section not in sections:
            raise KeyError(f"docs/examples/{name} has no section {section!r}; it has {list(sections)}")
        return fence(language, sections[section])
    return f"`docs/examples/{name}`:\n\n" + fence(language, path.read_text(encoding="utf-8"))


_BLOCK = re.compile(
    r'^(?P<fence>`{3,})python[^\n]*?\btitle="docs/examples/(?P<name>[\w.-]+)"[^\n]*\n(?P<code>.*?)^(?P=fence)[ \t]*$',
    re.M | re.S,
)


def example_blocks_problems(markdown: str) -> list[str]:
    """What is wrong with the example code written out in a page: each fenced block titled
    ``docs/examples/<name>`` must be that file (when it has no ``--8<--`` sections) or one of its sections,
    word for word; every section of a file the page shows must be there, in the file's order. Empty when all is
    well."""
    shown: dict[str, list[str]] = {}
    for match in _BLOCK.finditer(markdown):
        shown.setdefault(match["name"], []).append(match["code"].strip("\n") + "\n")
    problems = []
    for name, blocks in shown.items():
        path = EXAMPLES / name
        if not path.is_file():
            problems.append(f"a block is titled docs/examples/{name}, which does not exist")
            continue
        sections = example_sections(name)
        if not sections:
            whole = path.read_text(encoding="utf-8").strip("\n") + "\n"
            if blocks != [whole]:
                problems.append(f"docs/examples/{name} has no sections: the page must show it whole, once")
            continue
        names = []
        for code in blocks:
            found = [section for section, text in sections.items() if text == code]
            if not found:
                first = code.splitlines()[0] if code.strip() else "(empty)"
                problems.append(
                    f"a block titled docs/examples/{name} (starting {first!r}) is none of the file's sections: "
                    "copy the section from the file again"
                )
            names += found
        if names != list(sections) and not any("none of the file" in p for p in problems):
            problems.append(
                f"the page shows the sections of docs/examples/{name} as {names}; the file has {list(sections)}"
            )
    return problems


# pytest runs of example files, started in the background when the build starts (hooks.py), so that they overlap
# with the rest of the build: example name -> (process, its temporary folder)
_PYTEST_RUNS: dict[str, tuple[subprocess.Popen[str], Path]] = {}
PYTEST_TIMEOUT_S = 120


def start_example_pytest(name: str) -> None:
    """Start ``pytest`` on a copy of ``docs/examples/<name>`` in a temporary folder, in a fresh process that loads
    the rnnshapes plugin by its entry point (no pytest or rnnshapes settings of this environment leak in)."""
    if name in _PYTEST_RUNS:
        return
    folder = Path(tempfile.mkdtemp(prefix="rnnshapes-docs-"))
    shutil.copy(EXAMPLES / name, folder / name)
    (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "RNNSHAPES_"))}
    root = str(EXAMPLES.parents[1])  # the tree's rnnshapes, as the rest of the build uses
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    env["COLUMNS"] = "100"  # pytest's separator lines, sized for the page
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--color=no", name],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _PYTEST_RUNS[name] = (process, folder)


def example_pytest(name: str) -> tuple[int, str]:
    """The exit status and output of pytest on ``docs/examples/<name>`` (started now if it was not yet)."""
    start_example_pytest(name)
    process, folder = _PYTEST_RUNS.pop(name)
    try:
        output, _ = process.communicate(timeout=PYTEST_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise RuntimeError(f"pytest on docs/examples/{name} ran past {PYTEST_TIMEOUT_S} s") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return process.returncode, output


def stop_example_pytests() -> None:
    """End the runs that were started and never read, and remove their folders."""
    while _PYTEST_RUNS:
        _, (process, folder) = _PYTEST_RUNS.popitem()
        process.kill()
        process.communicate()
        shutil.rmtree(folder, ignore_errors=True)


def training_table(name: str) -> str:
    """The end-of-run table of trainings from pytest's real run of an example file that passes (the build fails
    if the run does not pass or prints no such table)."""
    code, output = example_pytest(name)
    match = re.search(r"^=+ rnnshapes: \d+ trainings, .*?(?=^=+ )", output, re.M | re.S)
    if code != 0 or match is None:
        raise AssertionError(f"pytest on docs/examples/{name} should pass and print its trainings:\n{output}")
    return fence("text", match.group(0))


def failure_report(name: str) -> str:
    """pytest's real output for an example test that fails to converge, as a text block; the build fails if
    the run does not fail that way or lacks the plugin's convergence section or end-of-run table."""
    code, output = example_pytest(name)
    expected = ("rnnshapes convergence", "rerun: pytest", "trainings, 0 reached their target", "1 failed")
    missing = [part for part in expected if part not in output]
    if code != 1 or missing:
        raise AssertionError(
            f"pytest on docs/examples/{name} should fail one convergence test (exit 1) with {list(expected)}; "
            f"it exited {code} without {missing}:\n{output}"
        )
    return fence("text", output)


# --- the pytest plugin -------------------------------------------------------------------------------------


def plugin_options() -> str:
    """The plugin's command-line options with their ini twins and defaults, from the plugin itself."""
    from rnnshapes import pytest_plugin

    rows = [
        [f"`{pytest_plugin.option_flag(name)}`", f"`rnnshapes_{name}`", f"`{default}`", help_text]
        for name, (_, default, help_text) in pytest_plugin._OPTIONS.items()
    ]
    return table(("option", "ini", "default", "meaning"), rows)


def plugin_markers() -> str:
    from rnnshapes import pytest_plugin

    rows = [[f"`{line.partition(':')[0]}`", line.partition(":")[2].strip()] for line in pytest_plugin.MARKERS]
    return table(("marker", "meaning"), rows)


def plugin_fixtures() -> list[str]:
    """The names of the fixtures the plugin registers, in the order of its module."""
    from _pytest.fixtures import FixtureFunctionDefinition

    from rnnshapes import pytest_plugin

    return [
        name for name, value in vars(pytest_plugin).items() if isinstance(value, FixtureFunctionDefinition)
    ]


def document(names: Iterable[str], module: str, heading_level: int = 3) -> str:
    """mkdocstrings directives for ``module.name`` of every name (rendered by mkdocstrings afterwards)."""
    return "\n".join(
        f"::: {module}.{name}\n    options:\n      heading_level: {heading_level}\n" for name in names
    )


# --- benchmarks ---------------------------------------------------------------------------------------------

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def benchmark_results(folder: Path | None = None) -> str:
    """Every saved ``benchmarks/results/*.json``, rendered by the benchmarks' own ``render_markdown``.

    Quick (smoke-test) runs are left out: their budgets are too small to compare anything.
    """
    folder = folder or BENCHMARKS / "results"
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    runs = [(f, json.loads(f.read_text(encoding="utf-8"))) for f in files]
    runs = [(f, r) for f, r in runs if not r.get("config", {}).get("quick")]
    if not runs:
        return (
            "No full benchmark run has been saved yet (`benchmarks/results/` holds none), so this page shows "
            "no figures for it.\n"
        )
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    from run import render_markdown

    parts = []
    for f, results in runs:
        parts.append(f"Results file `benchmarks/results/{f.name}`.\n\n{render_markdown(results)}")
    return "\n".join(parts)


# --- the error catalogue -----------------------------------------------------------------------------------


class Catalogue:
    """Runs the catalogue's mistakes in the page's namespace and prints each with its real message."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.namespace = namespace
        self.shown: list[str] = []

    def mistake(self, code: str, hint: str | None = None, kind: str | None = None) -> None:
        """Run ``code``, which must raise ShapeError (carrying ``[hint]`` / ``kind`` when given); print both."""
        from rnnshapes import ShapeError
        from rnnshapes.core._messages import HINTS

        if hint is not None and hint not in HINTS:
            raise KeyError(f"{hint!r} is not a key of rnnshapes.core._messages.HINTS")
        source = textwrap.dedent(code).strip("\n")
        try:
            exec(compile(source, f"<catalogue: {hint or kind}>", "exec"), self.namespace)  # noqa: S102
        except ShapeError as error:
            message = str(error)
        else:
            raise AssertionError(
                f"the catalogue's mistake for {hint or kind!r} raised no ShapeError:\n{source}"
            )
        if hint is not None and f"[{hint}]" not in message:
            raise AssertionError(f"the mistake for [{hint}] raised another message:\n{message}")
        if kind is not None and kind not in message.splitlines()[0]:
            raise AssertionError(f"the mistake for {kind!r} raised another message:\n{message}")
        self.shown.append(hint or kind or "")
        # markdown-exec captures a block's output through the ``print`` it puts into the block's globals
        write = self.namespace.get("print", print)
        if hint is not None:
            write(f"*{HINTS[hint][0].upper()}{HINTS[hint][1:]}.*\n")
        write(fence("python", source))
        write(fence("text", "ShapeError: " + message))

    def missing_hints(self) -> list[str]:
        from rnnshapes.core._messages import HINTS

        return [key for key in HINTS if key not in self.shown]
