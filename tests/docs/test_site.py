"""The documentation site builds strictly and offline, and carries what its pages promise.

Run with ``python -m pytest tests/docs -m docs -q``. The build runs ``mkdocs build --strict`` in a subprocess
with this interpreter (see conftest.py); mkdocs itself is in pyproject's ``docs`` dependency group.
"""

import html
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytest.importorskip(
    "mkdocs",
    reason="mkdocs is not installed, so the documentation site cannot be built; "
    "install the docs group: pip install -e . --group docs",
)

from _docsite import SiteBuild  # noqa: E402

import rnnshapes  # noqa: E402
from rnnshapes import _errors  # noqa: E402
from rnnshapes._vocab import DIMENSIONS  # noqa: E402

pytestmark = pytest.mark.docs

# The build is a few seconds today; this only catches a page that starts doing real work (training a model)
# at build time. Measured build times are reported in the docs' own notes, not asserted tightly here.
BUILD_SECONDS_LIMIT = 120.0


@dataclass(frozen=True)
class LessonPage:
    path: str  # built page, relative to the site root
    title: str  # the page's <h1>
    models: tuple[str, ...]  # names in rnnshapes.models whose API the page documents


LESSON_PAGES = (
    LessonPage("lessons/12_1_cell_basics.html", "12-1 Cell basics", ("cell_tour", "CellShapes")),
    LessonPage("lessons/12_2_3_hello_rnn.html", "12-2/3 Hello RNN", ("HelloRNN",)),
    LessonPage("lessons/12_4_hello_embedding.html", "12-4 Hello embedding", ("HelloEmbedding",)),
    LessonPage("lessons/13_1_2_names_classifier.html", "13-1/2 Names classifier", ("NamesClassifier",)),
    LessonPage("lessons/13_3_char_rnn.html", "13-3 Char-RNN", ("CharRNN", "ASCII")),
    LessonPage("lessons/13_4_pack_pad.html", "13-4 Pack and pad", ("PackedEncoder",)),
)

PAGES = (
    "index.html",
    "shapes.html",
    "lessons/index.html",
    *(lesson.path for lesson in LESSON_PAGES),
    "pytest-plugin.html",
    "errors.html",
    "benchmarks.html",
    "api.html",
    "changelog.html",
)


# --- reading the built HTML ------------------------------------------------------------------------------


def article(page_html: str) -> str:
    """The page's content (Material's <article>), without the navigation around it."""
    match = re.search(r"<article\b[^>]*>(.*)</article>", page_html, re.S)
    assert match, "the page has no <article>: is the theme still Material?"
    return match.group(1)


def text(fragment: str) -> str:
    """Visible text of an HTML fragment, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def h1(content: str) -> str:
    titles = re.findall(r"<h1\b[^>]*>(.*?)</h1>", content, re.S)
    assert len(titles) == 1, f"expected exactly one <h1>, found {len(titles)}"
    return text(titles[0]).removesuffix("¶").strip()


class _Tables(HTMLParser):
    """Collects every <table> as a list of rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.tables and self.tables[-1]:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(content: str) -> list[list[list[str]]]:
    parser = _Tables()
    parser.feed(content)
    return parser.tables


class _Assets(HTMLParser):
    """Collects the URLs a browser loads by itself (scripts, stylesheets, icons, images, frames)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "link" and a.get("rel") != "canonical":
            self.urls.append(a.get("href") or "")
        elif tag in ("script", "img", "iframe", "source", "audio", "video", "embed"):
            self.urls.append(a.get("src") or "")


def remote(url: str) -> bool:
    return url.startswith(("http://", "https://", "//"))


def assert_lesson_page(page_html: str, lesson: LessonPage) -> None:
    """What every lesson page must carry. Today: its title and a summary paragraph of what it teaches.

    To be extended as the lessons land: the lesson's plot and its table of shapes.
    """
    content = article(page_html)
    assert h1(content) == lesson.title
    summary = re.search(r"</h1>\s*<p>(.*?)</p>", content, re.S)
    assert summary, f"{lesson.path}: the title must be followed by a summary paragraph"
    words = text(summary.group(1)).split()
    assert len(words) >= 40, f"{lesson.path}: the summary has {len(words)} words; say what the lesson teaches"


# --- the tests -------------------------------------------------------------------------------------------


def test_strict_build_succeeds_without_warnings(site_build: SiteBuild) -> None:
    assert site_build.returncode == 0, site_build.output
    noisy = [
        line for line in site_build.output.splitlines() if line.startswith("WARNING") or "Warning:" in line
    ]
    assert not noisy, "the build printed warnings:\n" + "\n".join(noisy)
    assert site_build.seconds < BUILD_SECONDS_LIMIT, (
        f"the docs build took {site_build.seconds:.1f} s (limit {BUILD_SECONDS_LIMIT:.0f} s): "
        "is a page training a model at build time? Precompute its results instead."
    )


@pytest.mark.parametrize("path", PAGES)
def test_page_is_built(site: SiteBuild, path: str) -> None:
    content = article(site.page(path))
    assert h1(content), f"{path} has an empty title"


def test_vocabulary_table_is_executed_from_the_code(site: SiteBuild) -> None:
    content = article(site.page("shapes.html"))
    found = [t for t in tables(content) if t and t[0] == ["name", "torch", "meaning"]]
    assert len(found) == 1, "shapes.html must show the vocabulary table rendered from markdown_table()"
    rows = found[0][1:]
    assert rows == [[d.name, d.torch_symbol, d.meaning] for d in DIMENSIONS]


def test_shapes_page_prints_the_shapes_it_explains(site: SiteBuild) -> None:
    # The prose on packing relies on these results of the executed examples; if PyTorch ever disagreed,
    # the page would be wrong, so the build's real output is checked here.
    content = text(article(site.page("shapes.html")))
    assert "h_n: (4, 3, 8) # layers*dirs batch hidden: unchanged" in content
    assert "packed: h_n[0] equals the last real step: True" in content
    assert "unpacked: h_n[0] equals the last real step, per sequence: [True, False, False]" in content


@pytest.mark.parametrize("lesson", LESSON_PAGES, ids=lambda lesson: Path(lesson.path).stem)
def test_lesson_page(site: SiteBuild, lesson: LessonPage) -> None:
    assert_lesson_page(site.page(lesson.path), lesson)


@pytest.mark.parametrize("lesson", LESSON_PAGES, ids=lambda lesson: Path(lesson.path).stem)
def test_lesson_page_documents_its_models(site: SiteBuild, lesson: LessonPage) -> None:
    content = article(site.page(lesson.path))
    missing = [name for name in lesson.models if f'id="rnnshapes.models.{name}"' not in content]
    assert not missing, f"{lesson.path} lacks the API of rnnshapes.models.{missing}"


def test_every_model_is_documented_on_a_lesson_page() -> None:
    import rnnshapes.models as models

    documented = {name for lesson in LESSON_PAGES for name in lesson.models}
    assert set(models.__all__) <= documented, "add the new model to its lesson page and to LESSON_PAGES"


def test_api_reference_documents_every_public_name(site: SiteBuild) -> None:
    api = site.page("api.html")
    exceptions = [n for n, v in vars(_errors).items() if isinstance(v, type) and issubclass(v, Exception)]
    assert set(exceptions) <= set(rnnshapes.__all__)
    missing = [n for n in rnnshapes.__all__ if f'id="rnnshapes.{n}"' not in api]
    assert not missing, f"api.html lacks an entry for {missing}"


def test_docstrings_render_as_markdown(site: SiteBuild) -> None:
    # Sphinx roles and torch-style bullet lists are rewritten by docs/_ext/torch_docstrings.py; a docstring
    # it does not understand would show them raw, or swallow a bullet list into one paragraph.
    problems = []
    for page in site.pages():
        content = article(site.page(page))
        problems += [
            f"{page}: {m}" for m in re.findall(r":(?:meth|func|class|attr|mod|math):`[^`]*`", content)
        ]
        for paragraph in re.findall(r"<p>(.*?)</p>", content, re.S):
            if re.search(r"\n\s*[*-] ", paragraph):
                problems.append(f"{page}: a list inside a paragraph: {text(paragraph)[:100]}")
    assert not problems, "docstrings that do not render:\n" + "\n".join(problems)


def test_site_loads_nothing_from_other_hosts(site: SiteBuild) -> None:
    offenders = []
    for page in site.pages():
        parser = _Assets()
        parser.feed(site.page(page))
        offenders += [f"{page}: {url}" for url in parser.urls if remote(url)]
    for css in site.site.rglob("*.css"):
        body = css.read_text(encoding="utf-8", errors="replace")
        for url in re.findall(r"""(?:@import\s+|url\()\s*["']?([^"')\s;]+)""", body):
            if remote(url):
                offenders.append(f"{css.relative_to(site.site)}: {url}")
    assert not offenders, "the site must work offline, but loads:\n" + "\n".join(offenders)
