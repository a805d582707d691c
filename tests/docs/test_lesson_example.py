"""The pytest-plugin page's `rnn_lesson` example runs as written, and its lesson table is the registry's.

The block titled ``test_trained_lessons.py`` is read from docs/pytest-plugin.md and executed into this module,
so pytest collects its tests and runs them with this suite's own ``rnn_lesson``: the lessons they ask for are
the ones tests/lessons trains in the same run, so the example costs no training of its own (the run's lesson
cache hands them over).
"""

import re
from pathlib import Path

from rnnshapes import lessons

PAGE = Path(__file__).resolve().parents[2] / "docs" / "pytest-plugin.md"
_TEXT = PAGE.read_text(encoding="utf-8")
_BLOCK = re.search(r'^```python title="test_trained_lessons\.py"\n(.*?)^```$', _TEXT, re.S | re.M)
assert _BLOCK is not None, f"{PAGE} lost its test_trained_lessons.py block"
EXAMPLE = _BLOCK.group(1)
# line numbers of the page in tracebacks: the block's own lines, offset to where it sits in the page
_OFFSET = _TEXT[: _BLOCK.start(1)].count("\n")
exec(compile("\n" * _OFFSET + EXAMPLE, str(PAGE), "exec"))  # defines the example's test_* functions here


def test_the_example_defines_tests_of_rnn_lesson() -> None:
    tests = re.findall(r"^def (test_\w+)\(rnn_lesson\):", EXAMPLE, re.M)
    assert len(tests) == 2 and all(name in globals() for name in tests)
    assert "encode_names" in EXAMPLE and "COUNTRIES" in EXAMPLE


def test_the_pages_lesson_table_is_the_registry() -> None:
    section = _TEXT[_TEXT.index("**The lessons.**") : _TEXT.index("**Device, seed, budget.**")]
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
