"""Version floors (issue 11): the declared minimum of every dependency, installed together and tested.

    nox -f scripts/noxfile.py -s floors          (or: make floors)

The ``floors`` session reads the floors from ``pyproject.toml`` itself (``NAME>=VERSION`` in
``[project] dependencies`` and in the ``pytest`` extra), installs each at exactly that version in a fresh
virtual environment, installs rnnshapes without dependencies, and runs the core and plugin tests. A floor
that fails here is raised in ``pyproject.toml`` to the oldest version that passes.

torch is the exception: the session installs the CPU build ``torch==2.13.0`` that lies on this project's
machines (seconds to install; older torch wheels are multi-GB CUDA builds). The declared ``torch>=`` is the
oldest torch that has actually run the suite (see the comment in ``pyproject.toml``), not one installed here.

The test tools that are not floors (hypothesis) come at their pinned versions from the ``test`` group.
"""

import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parents[1]
CPU_TORCH = "torch==2.13.0"
TESTS = ("tests/core", "tests/plugin")

nox.options.sessions = ["floors"]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def declared_floors() -> list[str]:
    """``NAME==FLOOR`` for every ``NAME>=FLOOR`` of the dependencies and the ``pytest`` extra (torch: the CPU
    build)."""
    project = _pyproject()["project"]
    pins = []
    for requirement in [*project["dependencies"], *project["optional-dependencies"]["pytest"]]:
        name, sep, floor = requirement.partition(">=")
        if not sep or any(c in floor for c in ",;<=!~"):
            raise ValueError(f"{requirement!r}: the floors session reads plain NAME>=VERSION requirements")
        name = name.strip()
        pins.append(CPU_TORCH if name == "torch" else f"{name}=={floor.strip()}")
    return pins


def test_tools() -> list[str]:
    """The pinned test tools of the ``test`` group that the core and plugin tests need besides the floors."""
    group = _pyproject()["dependency-groups"]["test"]
    return [pin for pin in group if pin.partition("==")[0] in ("hypothesis",)]


@nox.session
def floors(session: nox.Session) -> None:
    """Install the declared floors (torch: the CPU 2.13.0) and run the core and plugin tests."""
    pins = declared_floors()
    session.install("--no-compile", *pins, *test_tools())
    session.install("--no-compile", "--no-deps", str(ROOT))
    session.chdir(str(ROOT))
    names = [pin.partition("==")[0] for pin in pins]
    session.run(
        "python",
        "-c",
        "import importlib.metadata as m, sys; "
        "print('installed:', ', '.join(f'{n} {m.version(n)}' for n in sys.argv[1:]))",
        *names,
    )
    session.run("python", "-m", "pytest", *TESTS, "-q", "-n", "2", "-p", "no:cacheprovider", *session.posargs)
