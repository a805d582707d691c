"""Building the documentation site for tests/docs: the build record and the build itself; and the run of the
pytest-plugin page's example file."""

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 600
EXAMPLE = ROOT / "docs" / "examples" / "test_tagger.py"
EXAMPLE_TIMEOUT_S = 300


@dataclass(frozen=True)
class SiteBuild:
    site: Path
    returncode: int
    output: str
    seconds: float

    def page(self, path: str) -> str:
        """The HTML of one built page, e.g. ``shapes.html`` or ``lessons/index.html``."""
        file = self.site / path
        assert file.is_file(), f"the site has no page {path}; built pages: {sorted(self.pages())}"
        return file.read_text(encoding="utf-8")

    def pages(self) -> list[str]:
        return [p.relative_to(self.site).as_posix() for p in self.site.rglob("*.html")]


def build_site(out: Path) -> SiteBuild:
    site = out / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")  # Material's end-of-life banner, printed on every build
    config = str(ROOT / "mkdocs.yml")
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", config, "-d", str(site)]
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
    )
    seconds = time.perf_counter() - start
    return SiteBuild(site, proc.returncode, proc.stdout + proc.stderr, seconds)


class ExampleRun:
    """``pytest`` on a copy of docs/examples/test_tagger.py in a fresh process, with only the installed rnnshapes
    plugin (no pytest or rnnshapes settings of this run leak in); started at once, read with ``result()``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        shutil.copy(EXAMPLE, folder / EXAMPLE.name)
        (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "RNNSHAPES_"))}
        cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--junitxml=report.xml"]
        self.process = subprocess.Popen(
            [*cmd, EXAMPLE.name],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._output: str | None = None

    def result(self) -> tuple[int, str]:
        """The exit status and the output (stdout and stderr) of the run."""
        if self._output is None:
            try:
                self._output, _ = self.process.communicate(timeout=EXAMPLE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.communicate()
                raise AssertionError(f"pytest on {EXAMPLE.name} ran past {EXAMPLE_TIMEOUT_S} s") from None
        return self.process.returncode, self._output
