"""The pytest-plugin page's example file (docs/examples/test_tagger.py) passes under the plugin, as the page says.

It runs in a fresh pytest process in a temporary folder, with only the installed rnnshapes plugin.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "test_tagger.py"


def test_the_example_test_file_passes_and_reports_its_training(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / EXAMPLE.name)
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "RNNSHAPES_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", EXAMPLE.name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "rnnshapes: 1 trainings, 1 reached their target" in out
    assert "test_memorises_one_batch (overfit one batch)" in out
    import torch

    if torch.cuda.is_available():
        assert "4 passed" in out
    else:
        assert "3 passed, 1 skipped" in out and "CUDA not available" in out
