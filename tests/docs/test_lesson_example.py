"""The pytest-plugin page's `rnn_lesson` example runs as written, and its lesson table is the registry's.

docs/examples/test_trained_lessons.py (which the page writes out word for word: test_plugin_page.py) is
executed into this module, so pytest collects its tests and runs them with this suite's own ``rnn_lesson``:
the lessons they ask for are the ones tests/lessons trains in the same run, so the example costs no training
of its own (the run's lesson cache hands them over).
"""

import re
from pathlib import Path

from rnnshapes import lessons

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "pytest-plugin.md"
EXAMPLE_FILE = ROOT / "docs" / "examples" / "test_trained_lessons.py"
EXAMPLE = EXAMPLE_FILE.read_text(encoding="utf-8")
exec(compile(EXAMPLE, str(EXAMPLE_FILE), "exec"))  # defines the example's test_* functions here


def test_the_page_shows_the_example_and_it_defines_tests_of_rnn_lesson() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_support", ROOT / "docs" / "_ext" / "docs_support.py")
    assert spec is not None and spec.loader is not None
    docs_support = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(docs_support)
    markdown = PAGE.read_text(encoding="utf-8")
    assert '```python title="docs/examples/test_trained_lessons.py"' in markdown
    assert docs_support.example_blocks_problems(markdown) == []  # word for word
    tests = re.findall(r"^def (test_\w+)\(rnn_lesson\):", EXAMPLE, re.M)
    assert len(tests) == 2 and all(name in globals() for name in tests)
    assert "encode_names" in EXAMPLE and "COUNTRIES" in EXAMPLE


def test_the_pages_lesson_table_is_the_registry() -> None:
    text = PAGE.read_text(encoding="utf-8")
    section = text[text.index("**The lessons.**") : text.index("**Device, seed, budget.**")]
    rows = re.findall(r"^\| `([\w-]+)` \| (\S+) \| `(\w+)` \| (.+?) \|", section, re.M)
    trainable = [name for name in lessons.names() if lessons.get(name).trainable]
    assert [row[0] for row in rows] == trainable
    for name, course, model, target in rows:
        lesson = lessons.get(name)
        assert lesson.model_class is not None
        assert (course, model, target) == (
            lesson.course,
            lesson.model_class.__name__,
            lesson.target.describe(),
        )
    shape_lessons = [name for name in lessons.names() if not lessons.get(name).trainable]
    assert all(f"`{name}`" in section for name in shape_lessons)
