"""Fixtures of the data-layer tests.

Every test runs with its own empty cache folder and downloads forbidden, so no test touches the user's cache
or the network. The real lesson files are read through ``RNNSHAPES_DATA``; when it is unset, it defaults to
the repository's ``../shared/data`` (where CI and the project machines keep them).
"""

import os
from pathlib import Path

import pytest

from rnnshapes.data import DATA_FILES, read_names_file, verify_data_file

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"


def real_data_dir() -> Path | None:
    """The folder with the real lesson files, or None when they are not on this machine."""
    env = os.environ.get("RNNSHAPES_DATA", "").strip()
    folder = Path(env) if env else SHARED_DATA
    return folder if all((folder / name).is_file() for name in DATA_FILES) else None


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A private cache folder, no downloads, no URL override, RNNSHAPES_DATA pointing at the real data."""
    monkeypatch.setenv("RNNSHAPES_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("RNNSHAPES_OFFLINE", "1")
    monkeypatch.delenv("RNNSHAPES_DATA_URL", raising=False)
    folder = real_data_dir()
    if folder is not None:
        monkeypatch.setenv("RNNSHAPES_DATA", str(folder))


@pytest.fixture
def data_dir() -> Path:
    """The real data folder; the test is skipped (with the reason) when the files are missing."""
    folder = real_data_dir()
    if folder is None:
        pytest.skip(f"lesson data not found: set RNNSHAPES_DATA to a folder holding {sorted(DATA_FILES)}")
    return folder


@pytest.fixture(scope="session")
def names_rows() -> dict[str, list[tuple[str, int]]]:
    """Both names splits, read once per session straight from the real files."""
    folder = real_data_dir()
    if folder is None:
        pytest.skip("lesson data not found: set RNNSHAPES_DATA to the folder holding names_*.csv.gz")
    return {
        split: read_names_file(verify_data_file(folder / f"names_{split}.csv.gz"))
        for split in ("train", "test")
    }
