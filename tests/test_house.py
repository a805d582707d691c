"""The house: the public face stays where users import it, the layers hold, no import cycles, no long modules.

The layer contract itself is import-linter's (``[tool.importlinter]`` in pyproject.toml, run by ``make lint``);
these tests pin what it does not: the public names, the import graph being acyclic, and module length.
"""

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

import rnnshapes

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(rnnshapes.__file__).parent

# What users import today. New names may join; none of these may move or disappear.
PUBLIC = {
    "rnnshapes": [
        "CheckpointError", "DIMENSIONS", "DataError", "GuardHandle", "Hidden", "LSTMState", "Packed", "SEQ",
        "ShapeError", "TrainingError", "checks", "checks_enabled", "guard", "pack", "shapecheck",
    ],
    "rnnshapes.models": [
        "ASCII", "CellShapes", "CharRNN", "HelloEmbedding", "HelloRNN", "NamesClassifier", "PackedEncoder",
        "cell_tour",
    ],
    "rnnshapes.testing": [
        "CheckFailed", "ConvergenceFailed", "ConvergenceResult", "DeviceUnavailable",
        "check_batch_independence", "check_causal", "check_converges", "check_device_parity",
        "check_init_loss", "check_overfits_batch", "check_packed_matches_unbatched",
        "check_padding_invariance", "check_shape_contract", "check_state_dict_roundtrip", "coincidences",
        "cuda_unavailable_reason", "distinct_sizes", "sparkline", "tf32_disabled",
    ],
    "rnnshapes.lessons": ["LESSONS", "Lesson", "Recipe", "Task", "checkpoint_path", "get", "names"],
    "rnnshapes.train": [
        "Budget", "CurvePoint", "Target", "TrainResult", "fit", "load_checkpoint", "save_checkpoint",
        "seed_everything", "torch_threads",
    ],
}  # fmt: skip


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_the_public_names_stay_where_users_import_them(module: str) -> None:
    mod = importlib.import_module(module)
    missing = [n for n in PUBLIC[module] if n not in mod.__all__]
    assert not missing, f"{module} no longer exports {missing}"
    for name in mod.__all__:
        assert getattr(mod, name) is not None, f"{module}.{name} does not resolve"


def test_the_entry_points_and_commands_stay() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["entry-points"]["pytest11"] == {"rnnshapes": "rnnshapes.pytest_plugin"}
    assert project["scripts"] == {"rnnshapes": "rnnshapes.cli:main"}
    from rnnshapes.cli import main

    assert callable(main)


def test_python_dash_m_runs_the_command_line_and_the_ddp_worker() -> None:
    for module in ("rnnshapes.cli", "rnnshapes.cli.distributed"):
        out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert "usage:" in out.stdout


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(m: str) -> None:
        index[m] = low[m] = len(index)
        stack.append(m)
        on_stack.add(m)
        for n in graph.find_modules_directly_imported_by(m) & modules:
            if n not in index:
                visit(n)
                low[m] = min(low[m], low[n])
            elif n in on_stack:
                low[m] = min(low[m], index[n])
        if low[m] == index[m]:
            component = []
            while True:
                n = stack.pop()
                on_stack.discard(n)
                component.append(n)
                if n == m:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for m in sorted(modules):
        if m not in index:
            visit(m)
    return found


def test_no_import_cycles() -> None:
    graph = grimp.build_graph("rnnshapes", cache_dir=None)
    assert _cycles(graph, set(graph.modules)) == []


def test_no_module_is_longer_than_600_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600
    }
    assert long == {}
