"""mkdocs hooks of the docs build: make docs/_ext importable from the pages' executed code blocks, and start
the pytest run whose failure report the pytest-plugin page shows.

The pages run Python at build time (markdown-exec); their shared helpers live in ``docs/_ext/docs_support.py``
(tables of shapes, the recorded training runs, the error catalogue's mistakes). mkdocs loads this file
through ``hooks:`` in mkdocs.yml, so the helpers are found whatever the working directory of the build.

The pytest-plugin page prints pytest's real output for ``docs/examples/test_counter_fails.py`` and the end-of-run
table of ``docs/examples/test_tagger.py``; those runs take a few seconds (fresh processes importing torch), so
they start here, in the background, and overlap with the rest of the build. The page writes the examples' code
out in its Markdown: ``on_page_markdown`` fails the build when that code is not the files' own.
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
PASSING_EXAMPLE = "test_tagger.py"  # its end-of-run table too


def on_pre_build(config: Any) -> None:
    import docs_support

    docs_support.start_example_pytest(FAILING_EXAMPLE)
    docs_support.start_example_pytest(PASSING_EXAMPLE)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """The example code a page writes out must be the example files' own, word for word (tests/docs runs the
    files; the reader reads the page)."""
    import docs_support
    from mkdocs.exceptions import PluginError

    problems = docs_support.example_blocks_problems(markdown)
    if problems:
        raise PluginError(f"{page.file.src_uri}: " + "; ".join(problems))
    return markdown


def on_post_build(config: Any) -> None:
    import docs_support

    docs_support.stop_example_pytests()  # a run that no page read (the page was left out): nothing left behind


def on_build_error(error: Exception) -> None:
    if "docs_support" in sys.modules:
        sys.modules["docs_support"].stop_example_pytests()
