"""mkdocs hooks of the docs build: make docs/_ext importable from the pages' executed code blocks, and start
the pytest run whose failure report the pytest-plugin page shows.

The pages run Python at build time (markdown-exec); their shared helpers live in ``docs/_ext/docs_support.py``
(tables of shapes, the recorded training runs, the error catalogue's mistakes). mkdocs loads this file
through ``hooks:`` in mkdocs.yml, so the helpers are found whatever the working directory of the build.

The pytest-plugin page prints pytest's real output for ``docs/examples/test_counter_fails.py``; that run takes a
few seconds (a fresh process importing torch), so it starts here, in the background, and overlaps with the
rest of the build.
"""

import sys
from pathlib import Path
from typing import Any

_EXT = str(Path(__file__).resolve().parent)


def on_config(config: Any) -> Any:
    if _EXT not in sys.path:
        sys.path.insert(0, _EXT)
    return config


FAILING_EXAMPLE = "test_counter_fails.py"  # shown by docs/pytest-plugin.md


def on_pre_build(config: Any) -> None:
    import docs_support

    docs_support.start_example_pytest(FAILING_EXAMPLE)


def on_post_build(config: Any) -> None:
    import docs_support

    docs_support.stop_example_pytests()  # a run that no page read (the page was left out): nothing left behind


def on_build_error(error: Exception) -> None:
    if "docs_support" in sys.modules:
        sys.modules["docs_support"].stop_example_pytests()
