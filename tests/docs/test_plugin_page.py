"""The pytest-plugin page writes its examples out in its Markdown (a reader of the repository sees the code),
word for word the example files that the build and tests/docs run; and it shows, executed while the site was
built, what rnnshapes.testing says beyond pass/fail: parameters that never learn, checks that prove nothing,
failures cut to the worst differences, state that the state_dict does not hold."""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "pytest-plugin.md"
_spec = importlib.util.spec_from_file_location("docs_support", ROOT / "docs" / "_ext" / "docs_support.py")
assert _spec is not None and _spec.loader is not None
docs_support = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docs_support)


def test_the_page_writes_out_every_example_word_for_word() -> None:
    markdown = PAGE.read_text(encoding="utf-8")
    assert "print(example(" not in markdown, "a reader of the repository would see a call, not code"
    assert docs_support.example_blocks_problems(markdown) == []
    titled = re.findall(r'^```python title="docs/examples/([\w.]+)"$', markdown, re.M)
    sections = docs_support.example_sections("test_tagger.py")
    assert titled.count("test_tagger.py") == len(sections) and titled.count("test_counter_fails.py") == 1


def test_a_block_that_drifts_from_its_file_fails_the_build() -> None:
    markdown = PAGE.read_text(encoding="utf-8")
    drifted = markdown.replace(
        "rnn_checks.check_causal(Tagger(), torch.randn(4, 6, 5), time_axis=1)", "pass", 1
    )
    assert drifted != markdown
    assert docs_support.example_blocks_problems(drifted) == [
        "a block titled docs/examples/test_tagger.py (starting 'def test_no_peeking_ahead(rnn_checks):') is "
        "none of the file's sections: copy the section from the file again"
    ]
    first = re.search(r'```python title="docs/examples/test_tagger.py"\n.*?\n```\n', markdown, re.S)
    assert first is not None
    missing = markdown.replace(first.group(0), "", 1)
    assert docs_support.example_blocks_problems(missing) == [
        "the page shows the sections of docs/examples/test_tagger.py as "
        f"{list(docs_support.example_sections('test_tagger.py'))[1:]}; the file has "
        f"{list(docs_support.example_sections('test_tagger.py'))}"
    ]
    whole = markdown.replace('"""Fails on purpose:', '"""Fails on purpose, edited:', 1)
    assert docs_support.example_blocks_problems(whole) == [
        "docs/examples/test_counter_fails.py has no sections: the page must show it whole, once"
    ]


@pytest.mark.docs
def test_the_page_shows_what_the_checks_say_beyond_pass_and_fail(site) -> None:
    from test_site import article, text

    body = text(article(site.page("pytest-plugin.html")))
    # the course's 13_2 head: trains and passes, says what never learned; check_every_parameter_learns fails
    assert re.search(r"overfit one batch reached metric <= 0\.05 in \d+ steps", body)
    assert (
        "4 parameters never received a non-zero gradient (never learned): rnn (GRU) layer 1, forward "
        "direction: weight_ih_l1, weight_hh_l1, bias_ih_l1, bias_hh_l1" in body
    )
    assert "every parameter learns failed: 4 of 19 parameters get no gradient" in body
    assert "hint: h_n[-1] of a bidirectional GRU is only the BACKWARD direction of its last layer" in body
    # a check that proved nothing, and how CI makes that an error
    assert "VacuousCheckWarning: check_batch_independence: the batch holds 1 example" in body
    assert "VacuousCheckWarning: check_causal: the sequence has 1 time step" in body
    assert 'filterwarnings = ["error::rnnshapes.testing.VacuousCheckWarning"]' in body
    # a long table cut to the worst, the rest counted
    assert (
        "padding changes the results: 5 of 6 (variant, example) pairs differ. hint: the model reads" in body
    )
    assert "... and 2 more pairs (largest |difference|): [3 more padding steps of value 0] example" in body
    # the state the state_dict does not hold, by name
    assert "hint: the state_dict does not hold self.query, so the loaded model keeps" in body
    assert "self.query: Tensor(float32, shape (5,)), a plain attribute" in body
    # the end-of-run table of the example file, from the build's own run, with its no-grad column
    assert re.search(
        r"=+ rnnshapes: 2 trainings, 2 reached their target =+ name device steps seconds metric target reached "
        r"no grad test_learns_to_tag_the_previous_step cpu \d+ [\d.]+ [\d.]+ >= 0\.9 yes 0 ",
        body,
    )
