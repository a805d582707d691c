"""The pytest-plugin page's example file (docs/examples/test_tagger.py) passes under the plugin, as the page says.

It runs in a fresh pytest process in a temporary folder, with only the installed rnnshapes plugin: every test
must pass, except the CUDA ones on a machine without CUDA, which must be skipped with the reason.
"""

import re
import xml.etree.ElementTree as ET

from _docsite import EXAMPLE, ExampleRun

# the tests of the file that need CUDA: skipped (with the reason) where torch finds none
CUDA_TESTS = {"test_examples_stay_apart[cuda]", "test_same_on_cpu_and_cuda"}
TRAININGS = ("test_learns_to_tag_the_previous_step", "test_memorises_one_batch (overfit one batch)")


def test_the_example_test_file_passes_and_reports_its_training(example_run: ExampleRun) -> None:
    # the run started with the first test of tests/docs (conftest.py), beside the docs build
    code, out = example_run.result()
    assert code == 0, out
    outcomes: dict[str, tuple[str, str]] = {}
    for case in ET.parse(example_run.folder / "report.xml").getroot().iter("testcase"):
        children = [c for c in case if c.tag in ("skipped", "failure", "error")]
        outcome = children[0].tag if children else "passed"
        outcomes[case.attrib["name"]] = (outcome, children[0].attrib.get("message", "") if children else "")
    defined = re.findall(r"^def (test_\w+)\(", EXAMPLE.read_text(encoding="utf-8"), re.M)
    assert {name.partition("[")[0] for name in outcomes} == set(defined), "every test of the file ran"
    assert len(defined) >= 10, "a worked example of every check"

    import torch

    for name, (outcome, message) in outcomes.items():
        if name in CUDA_TESTS and not torch.cuda.is_available():
            assert outcome == "skipped" and "CUDA not available" in message, (name, outcome, message)
        else:
            assert outcome == "passed", (name, outcome, message)
    assert "rnnshapes: 2 trainings, 2 reached their target" in out
    assert all(name in out for name in TRAININGS), out
