"""The documentation site builds strictly and offline, and carries what its pages promise.

Run with ``python -m pytest tests/docs -m docs -q``. The build runs ``mkdocs build --strict`` in a subprocess
with this interpreter (see conftest.py); mkdocs itself is in pyproject's ``docs`` dependency group.
"""

import html
import json
import re
import struct
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
from rnnshapes.core import _errors  # noqa: E402
from rnnshapes.core._trace_format import MARKDOWN_HEADER  # noqa: E402
from rnnshapes.core._vocab import DIMENSIONS  # noqa: E402

pytestmark = pytest.mark.docs

# The build takes 4-5 s on an idle 2-core machine: pages read recorded runs and do tiny forward passes only.
RUNS = Path(__file__).resolve().parents[2] / "docs" / "runs"
SHAPE_TABLE_HEADER = list(MARKDOWN_HEADER)  # rnnshapes.trace(...).markdown()
CELL_TOUR_HEADER = ["cell", "batch_first", "case", "input", "output", "h_n", "c_n"]
CHECKS_HEADER = ["check", "passed"]
# The modules whose ShapeError messages the error catalogue must cover, kind by kind.
MESSAGE_SOURCES = ("_messages.py", "_guard.py", "_pack.py")


@dataclass(frozen=True)
class LessonPage:
    path: str  # built page, relative to the site root
    title: str  # the page's <h1>
    models: tuple[str, ...]  # names in rnnshapes.models whose API the page documents
    lessons: tuple[str, ...]  # registry names of the lessons it covers
    table: list[str]  # header of the executed table of shapes the page must show


LESSON_PAGES = (
    LessonPage(
        "lessons/12_1_cell_basics.html",
        "12-1 Cell basics",
        ("cell_tour", "CellShapes"),
        ("cell-basics",),
        CELL_TOUR_HEADER,
    ),
    LessonPage(
        "lessons/12_2_hello_step.html",
        "12-2 Hello RNN, one step at a time",
        ("HelloRNN",),
        ("hello-step",),
        SHAPE_TABLE_HEADER,
    ),
    LessonPage(
        "lessons/12_3_hello_sequence.html",
        "12-3 Hello RNN, the whole sequence",
        ("HelloRNN",),
        ("hello-sequence",),
        SHAPE_TABLE_HEADER,
    ),
    LessonPage(
        "lessons/12_4_hello_embedding.html",
        "12-4 Hello embedding",
        ("HelloEmbedding",),
        ("hello-embedding",),
        SHAPE_TABLE_HEADER,
    ),
    LessonPage(
        "lessons/13_1_names_basic.html",
        "13-1 Names classifier",
        ("NamesClassifier",),
        ("names-basic",),
        SHAPE_TABLE_HEADER,
    ),
    LessonPage(
        "lessons/13_2_names.html",
        "13-2 Names classifier, both directions",
        ("NamesClassifier",),
        ("names",),
        SHAPE_TABLE_HEADER,
    ),
    LessonPage(
        "lessons/13_3_char_rnn.html", "13-3 Char-RNN", ("CharRNN", "ASCII"), ("char-rnn",), SHAPE_TABLE_HEADER
    ),
    LessonPage(
        "lessons/13_4_pack_pad.html",
        "13-4 Pack and pad",
        ("PackedEncoder",),
        ("pack-pad",),
        SHAPE_TABLE_HEADER,
    ),
    LessonPage("lessons/14_1_seq2seq.html", "14-1 Seq2seq", ("Seq2Seq",), ("seq2seq",), SHAPE_TABLE_HEADER),
    LessonPage(
        "lessons/14_2_seq2seq_attention.html",
        "14-2 Seq2seq with attention",
        ("Seq2SeqAttention",),
        ("seq2seq-attention",),
        SHAPE_TABLE_HEADER,
    ),
)
"""One page per lesson of the course, 12_1 ... 14_2 in order, each covering its one lesson of the registry."""

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


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.alts: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            a = dict(attrs)
            self.alts[a.get("src") or ""] = a.get("alt") or ""


def images(content: str) -> dict[str, str]:
    """The page's images: src -> alt text."""
    parser = _Images()
    parser.feed(content)
    return parser.alts


def h2s(content: str) -> list[str]:
    return [text(t).removesuffix("¶").strip() for t in re.findall(r"<h2\b[^>]*>(.*?)</h2>", content, re.S)]


def trainable_lessons() -> list[str]:
    from rnnshapes import lessons

    return [name for name in lessons.names() if lessons.get(name).trainable]


def assert_lesson_page(page_html: str, lesson: LessonPage) -> None:
    """What every lesson page must carry: its title, a summary of what it teaches, an executed table of
    shapes, the course's mistakes, and its sections in order."""
    content = article(page_html)
    assert h1(content) == lesson.title
    summary = re.search(r"</h1>\s*<p>(.*?)</p>", content, re.S)
    assert summary, f"{lesson.path}: the title must be followed by a summary paragraph"
    words = text(summary.group(1)).split()
    assert len(words) >= 40, f"{lesson.path}: the summary has {len(words)} words; say what the lesson teaches"
    found = [t for t in tables(content) if t and t[0] == lesson.table]
    assert found and all(len(t) > 1 for t in found), (
        f"{lesson.path}: no executed table headed {lesson.table} (a markdown-exec block printing one)"
    )
    sections = h2s(content)
    assert "What the course code got wrong" in sections, f"{lesson.path}: sections are {sections}"
    assert sections[-1] == "The model", f"{lesson.path}: the API reference comes last, sections: {sections}"


# --- the tests -------------------------------------------------------------------------------------------


def test_strict_build_succeeds_without_warnings(site_build: SiteBuild) -> None:
    assert site_build.returncode == 0, site_build.output
    noisy = [
        line for line in site_build.output.splitlines() if line.startswith("WARNING") or "Warning:" in line
    ]
    assert not noisy, "the build printed warnings:\n" + "\n".join(noisy)


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


# --- lesson pages: shapes, plots, recorded numbers ---------------------------------------------------------


# What each plot of scripts/plot_runs.py draws besides the training loss, as its alt text must say.
PLOTTED_METRIC = {
    "text": "characters of 'ihello' predicted right",
    "accuracy": "test accuracy",
    "loss": "validation loss",
    "cer": "test cer",
}


def test_lesson_pages_cover_the_course_one_lesson_each() -> None:
    from rnnshapes import lessons

    covered = [name for page in LESSON_PAGES for name in page.lessons]
    assert covered == lessons.names(), "one page per lesson of the registry, in course order"
    for page in LESSON_PAGES:
        (name,) = page.lessons
        course = lessons.get(name).course  # "12_2"
        assert page.title.startswith(course.replace("_", "-") + " "), (page.title, course)
        assert Path(page.path).name.startswith(course + "_"), (page.path, course)


@pytest.mark.parametrize("lesson", LESSON_PAGES, ids=lambda lesson: Path(lesson.path).stem)
def test_lesson_page_shows_its_curve_or_says_why_there_is_none(site: SiteBuild, lesson: LessonPage) -> None:
    content = article(site.page(lesson.path))
    alts = images(content)
    page_dir = (site.site / lesson.path).parent
    for name in lesson.lessons:
        if name not in trainable_lessons():
            # 12_1 and 13_4 train nothing: the page says so, and shows the lesson's checks instead (below)
            assert not [src for src in alts if "runs/" in src], f"{lesson.path} shows a curve of no training"
            assert "No training curve" in h2s(content), f"{lesson.path}: say why there is no curve"
            assert "nothing to train" in text(content)
            continue
        src = f"../runs/{name}.png"
        assert src in alts, f"{lesson.path} lacks the plot {src}; its images: {list(alts)}"
        assert (page_dir / src).resolve().is_file(), f"{src} is not in the built site"
        run = json.loads((RUNS / f"{name}.json").read_text(encoding="utf-8"))
        alt = alts[src]
        assert alt.startswith(f"Training curve of lesson {name}: training loss and "), alt
        assert PLOTTED_METRIC[run["target"]["metric"]] in alt, alt
        assert "loss and loss" not in alt


@pytest.mark.parametrize("lesson", LESSON_PAGES, ids=lambda lesson: Path(lesson.path).stem)
def test_lesson_page_quotes_the_recorded_runs(site: SiteBuild, lesson: LessonPage) -> None:
    content = text(article(site.page(lesson.path)))
    for name in lesson.lessons:
        if name not in trainable_lessons():
            continue
        run = json.loads((RUNS / f"{name}.json").read_text(encoding="utf-8"))
        assert f"{run['steps']} steps in {run['seconds']:.2f} s" in content, f"{name}: steps and seconds"
        assert run["machine"]["cpu"] in content and run["machine"]["torch"] in content, f"{name}: the machine"
        assert run["target"]["text"] in content


def test_shape_lessons_show_their_checks(site: SiteBuild) -> None:
    shape_lessons = [p for p in LESSON_PAGES if not any(n in trainable_lessons() for n in p.lessons)]
    assert [p.lessons for p in shape_lessons] == [("cell-basics",), ("pack-pad",)]
    for lesson in shape_lessons:
        content = article(site.page(lesson.path))
        found = [t for t in tables(content) if t and t[0] == CHECKS_HEADER]
        assert len(found) == 1, f"{lesson.path}: a shape lesson shows its checks"
        assert found[0][1:] and all(row[1] == "yes" for row in found[0][1:]), found[0]
        assert "reached=True" in text(content)


def test_names_shape_table_shows_the_packed_batch(site: SiteBuild) -> None:
    # The names pages promise that the GRU reads total = 9 + 3 + 6 + 1 rows, no padding.
    for page in ("lessons/13_1_names_basic.html", "lessons/13_2_names.html"):
        content = article(site.page(page))
        rows = [row for t in tables(content) if t and t[0] == SHAPE_TABLE_HEADER for row in t[1:]]
        packed = [row for row in rows if row[0].startswith("rnn GRU(") and row[1] == "input (in)"]
        assert len(packed) == 1 and packed[0][2] in ("packed (19, 64)", "packed (19, 128)"), page
        assert packed[0][4].startswith("total=19 input="), packed


def test_shapes_page_traces_a_user_model_and_the_course_13_1_classifier(site: SiteBuild) -> None:
    content = article(site.page("shapes.html"))
    body = text(content)
    assert "Summarizer (eval, no_grad, cpu)" in body  # the plain-text trace, executed at build
    assert "out h_n (2, 4, 32) float32 layers*dirs=2 batch=4 hidden=32" in body
    assert "out attn_weights (4, 1, 9) float32 batch=4 target=1 source=9" in body
    traced = [t for t in tables(content) if t and t[0] == SHAPE_TABLE_HEADER]
    assert len(traced) == 1, "the 13-1 classifier's trace, as a Markdown table"
    rows = traced[0][1:]
    assert rows[-1] == ["RNNClassifier", "returned", "(1, 4, 18)", "float32", "layers*dirs=1 batch=4 18"]
    assert ["", "h_n (out)", "(1, 4, 100)", "float32", "layers*dirs=1 batch=4 hidden=100"] in rows
    assert "batch=4 18 Disagreements are notes" in body  # the fixed classifier: one row per name
    assert "! batch=9 here, but the model was called with batch=4 (axis 0 of x)" in body


def test_pack_pad_page_shows_packed_equals_alone(site: SiteBuild) -> None:
    content = text(article(site.page("lessons/13_4_pack_pad.html")))
    for n in (5, 2, 7, 1):
        assert f"length {n}: output equal True, h_n and c_n equal True, zeros after True" in content


# --- the recorded runs themselves ---------------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


@pytest.mark.parametrize("name", trainable_lessons())
def test_every_trainable_lesson_has_a_recorded_run_and_plot(name: str) -> None:
    from rnnshapes import lessons

    path = RUNS / f"{name}.json"
    assert path.is_file(), (
        f"record it: python scripts/record_runs.py --lesson {name} && python scripts/plot_runs.py"
    )
    run = json.loads(path.read_text(encoding="utf-8"))
    lesson = lessons.get(name)
    assert run["lesson"] == name and run["course"] == lesson.course
    assert run["target"]["text"] == lesson.target.describe()
    assert run["curve"] and run["curve"][-1]["step"] == run["steps"]
    assert {"cpu", "cores", "torch", "date"} <= set(run["machine"])
    png = path.with_suffix(".png")
    assert png.is_file(), "draw it: python scripts/plot_runs.py"
    assert png_size(png) == (600, 350)
    assert png.stat().st_size < 60_000


def test_recorded_runs_are_of_the_current_recipes() -> None:
    # A recipe changed after its run was recorded: the pages would quote a run of another recipe.
    import dataclasses

    from rnnshapes import lessons

    stale = []
    for name in trainable_lessons():
        lesson = lessons.get(name)
        run = json.loads((RUNS / f"{name}.json").read_text(encoding="utf-8"))
        recipe = json.loads(json.dumps(dataclasses.asdict(lesson.recipe)))
        budget = dataclasses.asdict(lesson.budget)
        if budget["max_seconds"] == float("inf"):
            budget["max_seconds"] = None
        if (run["recipe"], run["budget"], run["target"]["text"]) != (
            recipe,
            budget,
            lesson.target.describe(),
        ):
            stale.append(name)
    assert not stale, (
        f"recorded with another recipe, budget or target: {stale}; re-record with "
        "python scripts/record_runs.py --lesson NAME && python scripts/plot_runs.py"
    )


def test_benchmarks_page_lists_every_recorded_run(site: SiteBuild) -> None:
    content = article(site.page("benchmarks.html"))
    found = [t for t in tables(content) if t and t[0][:4] == ["lesson", "course", "target", "reached at"]]
    assert len(found) == 1
    assert [row[0] for row in found[0][1:]] == trainable_lessons()
    assert "python scripts/record_runs.py && python scripts/plot_runs.py" in text(content)


# --- the error catalogue and the home page ------------------------------------------------------------------


def test_error_catalogue_runs_every_hint(site: SiteBuild) -> None:
    from rnnshapes.core._messages import HINTS

    content = article(site.page("errors.html"))
    body = text(content)
    missing = [key for key in HINTS if f'id="{key}"' not in content or f"[{key}]" not in body]
    assert not missing, (
        f"errors.html has no executed example for the hints {missing}: add one to docs/errors.md"
    )
    for key, description in HINTS.items():
        assert description.lower() in body.lower(), f"the description of [{key}] is not shown"


def message_kinds() -> list[str]:
    """The first-line phrases of every ShapeError the core composes ('has the wrong shape', ...)."""
    pattern = re.compile(r"""(?:head \+ f?"|argument '[^']*' )((?:has|is|holds) [^.{"\\]+)""")
    root = Path(rnnshapes.__file__).parent / "core"
    kinds = {k.strip().rstrip(",") for f in MESSAGE_SOURCES for k in pattern.findall((root / f).read_text())}
    assert len(kinds) >= 8, f"the message pattern found only {sorted(kinds)}: has the message format changed?"
    return sorted(kinds)


def test_error_catalogue_shows_every_kind_of_message(site: SiteBuild) -> None:
    body = text(article(site.page("errors.html")))
    messages = re.findall(r"ShapeError: [\w.() ]+?: argument '[^']*' ([^.]*)\.", body)
    missing = [kind for kind in message_kinds() if not any(m.startswith(kind) for m in messages)]
    assert not missing, f"errors.html shows no executed example of the messages {missing}"


def test_home_page_example_is_stopped_by_guard(site: SiteBuild) -> None:
    body = text(article(site.page("index.html")))
    assert "plain torch: (10, 3, 4)" in body  # PyTorch ran the wrong call
    assert "gru (GRU).forward(): argument 'input' has the wrong shape." in body
    assert "[layout] the module has batch_first=True" in body
    assert "make run" in body and "make test" in body


EXAMPLES = RUNS.parent / "examples"
_SECTION = re.compile(r"^# --8<-- \[start:([\w-]+)\]\n(.*?)^# --8<-- \[end:\1\]\n", re.M | re.S)


def squeeze(s: str) -> str:
    return "".join(s.split())


def test_plugin_page_shows_a_worked_example_of_every_check(site: SiteBuild) -> None:
    import rnnshapes.testing

    content = article(site.page("pytest-plugin.html"))
    body = squeeze(text(content))
    source = (EXAMPLES / "test_tagger.py").read_text(encoding="utf-8")
    sections = dict(_SECTION.findall(source))
    assert "models" in sections
    shown = [name for name, code in sections.items() if squeeze(code) in body]
    assert shown == list(sections), (
        f"sections of test_tagger.py not on the page: {set(sections) - set(shown)}"
    )
    tests = re.findall(r"^def (test_\w+)\(", source, re.M)
    outside = [t for t in tests if not any(f"def {t}(" in code for code in sections.values())]
    assert not outside, f"tests of test_tagger.py shown in no section: {outside}"
    headings = [text(h) for h in re.findall(r"<h3\b[^>]*>(.*?)</h3>", content, re.S)]
    checks = [n for n in rnnshapes.testing.__all__ if n.startswith("check_")]
    for check in checks:
        section = check.removeprefix("check_")
        assert f"rnn_checks.{check}(" in sections.get(section, ""), f"no worked example of {check}"
        assert any(check in h for h in headings), f"no heading names {check}: {headings}"
    assert {"Installing", "Running under xdist", "GPUs", "What a failure report looks like"} <= set(
        h2s(content)
    )


def test_plugin_page_shows_a_real_failing_check(site: SiteBuild) -> None:
    body = text(article(site.page("pytest-plugin.html")))
    assert "batch independence failed: an example's output depends on OTHER examples' inputs." in body
    assert "examples whose output is clean: [0]" in body


def test_plugin_page_shows_a_real_failure_report(site: SiteBuild) -> None:
    # pytest's own output for docs/examples/test_counter_fails.py, run while the page was built
    content = article(site.page("pytest-plugin.html"))
    body = text(content)
    source = (EXAMPLES / "test_counter_fails.py").read_text(encoding="utf-8")
    assert squeeze(source) in squeeze(body), "the failing test is shown whole"
    assert re.search(r"=+ test session starts =+ platform ", body)
    assert "rnnshapes: devices=" in body, "the plugin's header line"
    assert re.search(r"_+ test_counts_positive_steps _+", body), "pytest's failure report"
    assert (
        "ConvergenceFailed: test_counts_positive_steps did not converge: metric >= 0.9 not reached within "
        in body
    )
    assert re.search(
        r"-{5,} rnnshapes convergence -{5,} test_counts_positive_steps on cpu: metric >= 0\.9 not", body
    )
    assert (
        "rerun: pytest test_counter_fails.py::test_counts_positive_steps --rnnshapes-seed=0 "
        "--rnnshapes-device=auto --rnnshapes-budget=ci" in body
    )
    assert re.search(r"=+ rnnshapes: 1 trainings, 0 reached their target =+", body), "the end-of-run table"
    assert re.search(
        r"name device steps seconds metric target reached no grad test_counts_positive_steps cpu 30 ", body
    )
    assert re.search(r"=+ 1 failed in [\d.]+s =+", body)


def test_plugin_page_documents_every_fixture_option_and_check(site: SiteBuild) -> None:
    from _pytest.fixtures import FixtureFunctionDefinition

    import rnnshapes.testing
    from rnnshapes import pytest_plugin

    content = article(site.page("pytest-plugin.html"))
    fixtures = [n for n, v in vars(pytest_plugin).items() if isinstance(v, FixtureFunctionDefinition)]
    assert "rnn_checks" in fixtures and "rnn_device" in fixtures
    missing = [n for n in fixtures if f'id="rnnshapes.pytest_plugin.{n}"' not in content]
    missing += [n for n in rnnshapes.testing.__all__ if f'id="rnnshapes.testing.{n}"' not in content]
    assert not missing, f"pytest-plugin.html lacks {missing}"
    body = text(content)
    assert all(pytest_plugin.option_flag(name) in body for name in pytest_plugin._OPTIONS)
