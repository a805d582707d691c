"""The pytest-plugin page's example file (docs/examples/test_tagger.py) passes under the plugin, as the page says.

It runs in a fresh pytest process in a temporary folder, with only the installed rnnshapes plugin: every test
must pass, except the CUDA ones on a machine without CUDA, which must be skipped with the reason.
"""

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "test_tagger.py"
# the tests of the file that need CUDA: skipped (with the reason) where torch finds none
CUDA_TESTS = {"test_examples_stay_apart[cuda]", "test_same_on_cpu_and_cuda"}
TRAININGS = ("test_learns_to_tag_the_previous_step", "test_memorises_one_batch (overfit one batch)")


def test_the_example_test_file_passes_and_reports_its_training(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / EXAMPLE.name)
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "RNNSHAPES_"))}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "--junitxml=report.xml",
            EXAMPLE.name,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    outcomes: dict[str, tuple[str, str]] = {}
    for case in ET.parse(tmp_path / "report.xml").getroot().iter("testcase"):
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
