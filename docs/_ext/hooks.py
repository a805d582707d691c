"""mkdocs hooks of the docs build: make docs/_ext importable from the pages' executed code blocks.

The pages run Python at build time (markdown-exec); their shared helpers live in ``docs/_ext/docs_support.py``
(tables of shapes, the recorded training runs, the error catalogue's mistakes). mkdocs loads this file
through ``hooks:`` in mkdocs.yml, so the helpers are found whatever the working directory of the build.
"""

import sys
from pathlib import Path
from typing import Any

_EXT = str(Path(__file__).resolve().parent)


def on_config(config: Any) -> Any:
    if _EXT not in sys.path:
        sys.path.insert(0, _EXT)
    return config
