"""scripts/record_runs.py and scripts/plot_runs.py: one real (tiny) lesson recorded, plotted, and read back.

The hello lessons train a few dozen tiny steps in well under a second, so the whole path runs here for real.
"""

import importlib.util
import json
import shutil
import struct
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    record_runs = load("record_runs")
    out = tmp_path_factory.mktemp("runs")
    assert record_runs.main(["--lesson", "hello-sequence", "--out", str(out)]) == 0
    return out


def test_record_writes_the_run_with_its_machine(recorded: Path) -> None:
    from rnnshapes import lessons

    files = sorted(p.name for p in recorded.iterdir())
    assert files == ["hello-sequence.json"], "one JSON file and no temporary leftovers"
    run = json.loads((recorded / "hello-sequence.json").read_text(encoding="utf-8"))
    lesson = lessons.get("hello-sequence")
    assert run["lesson"] == "hello-sequence" and run["course"] == lesson.course
    assert run["budget"]["max_seconds"] is None  # no time limit: JSON has no infinity
    assert not run["stop_at_target"], "a budget without a time limit is trained in full, for the curve"
    assert run["steps"] == lesson.budget.max_steps == len(run["curve"])
    assert [p["step"] for p in run["curve"]] == list(range(1, run["steps"] + 1))
    hit = run["reached_at"]
    assert hit is not None, "hello-sequence reaches 'ihello' with seed 0"
    first = next(p for p in run["curve"] if p["metrics"]["text"] == "ihello")
    assert hit == {"step": first["step"], "seconds": first["seconds"]}
    assert run["machine"]["torch_threads"] == 1 and run["machine"]["cpu"]
    assert (recorded / "hello-sequence.json").stat().st_mode & 0o044 == 0o044, "readable by all"


def test_plot_draws_a_small_png_of_the_run(recorded: Path, tmp_path: Path) -> None:
    plot_runs = load("plot_runs")
    shutil.copy(
        recorded / "hello-sequence.json", tmp_path
    )  # a folder of its own: the record test lists its one
    assert plot_runs.main(["--runs", str(tmp_path)]) == 0
    png = tmp_path / "hello-sequence.png"
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == (600, 350)
    assert png.stat().st_size < 60_000


def test_plot_refuses_an_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot_runs = load("plot_runs")
    assert plot_runs.main(["--runs", str(tmp_path)]) == 1
    assert "run scripts/record_runs.py first" in capsys.readouterr().err


def test_text_targets_are_plotted_as_matching_characters() -> None:
    plot_runs = load("plot_runs")
    run = {
        "target": {"metric": "text", "goal": "ihello"},
        "curve": [
            {"metrics": {"text": "llllll"}},
            {"metrics": {"text": "ihelll"}},
            {"metrics": {"text": "ihello"}},
        ],
    }
    values, goal, _ = plot_runs.metric_series(run)
    assert values == [2.0, 5.0, 6.0] and goal == 6.0


def test_write_json_is_atomic_and_leaves_nothing_on_failure(tmp_path: Path) -> None:
    record_runs = load("record_runs")
    path = tmp_path / "x.json"
    record_runs.write_json(path, {"a": 1})
    with pytest.raises(ValueError):
        record_runs.write_json(path, {"a": float("nan")})  # allow_nan=False
    assert json.loads(path.read_text()) == {"a": 1}, "the old file survives a failed write"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]
