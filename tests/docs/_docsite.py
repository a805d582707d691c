"""Building the documentation site for tests/docs: the build record and the build itself."""

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 600


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
