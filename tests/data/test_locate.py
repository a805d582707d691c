"""Finding data files: search order, the clear error when they are missing, and the verified download
(against a local HTTP server on 127.0.0.1)."""

import gzip
import hashlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rnnshapes import DataError
from rnnshapes.data import (
    DATA_FILES,
    DATA_URL,
    cache_dir,
    data_search_dirs,
    data_url,
    download_data_file,
    find_data_file,
    offline,
)

NAME = "names_train.csv.gz"


def make_gzip(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake_file(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """A small valid gzip standing in for names_train.csv.gz (its sha256 patched into the table)."""
    data = make_gzip('"Adsit","Czech"\r\n"Abl","Czech"\r\n')
    monkeypatch.setitem(DATA_FILES, NAME, sha(data))
    return data


@dataclass
class Server:
    root: Path
    url: str
    requests: list[str] = field(default_factory=list)
    cut_after: int | None = None  # send only this many bytes of a file, then close the connection

    def put(self, name: str, data: bytes) -> None:
        (self.root / name).write_bytes(data)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A static HTTP server on 127.0.0.1 (a free port) serving tmp_path/www/data/ at <url>."""
    root = tmp_path / "www" / "data"
    root.mkdir(parents=True)
    srv = Server(root, "")

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(tmp_path / "www"), **kwargs)

        def do_GET(self) -> None:
            srv.requests.append(self.path)
            if srv.cut_after is None:
                super().do_GET()
                return
            body = (tmp_path / "www" / self.path.lstrip("/")).read_bytes()
            self.send_response(200)  # announce the whole file, send only its start, hang up
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: srv.cut_after])
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:  # keep the test output clean
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.url = f"http://127.0.0.1:{httpd.server_port}/data/"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server: Server) -> Path:
    """Downloads allowed from the local server, RNNSHAPES_DATA unset; returns the (empty) cache folder."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RNNSHAPES_CACHE", str(cache))
    monkeypatch.delenv("RNNSHAPES_DATA", raising=False)
    monkeypatch.delenv("RNNSHAPES_OFFLINE", raising=False)
    monkeypatch.setenv("RNNSHAPES_DATA_URL", server.url)
    return cache


def leftovers(folder: Path) -> list[str]:
    """Files in a folder, lock folder excepted (lock files stay by design)."""
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name != ".locks")


# --- folders --------------------------------------------------------------------------------------------


def test_cache_dir_prefers_rnnshapes_cache_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNSHAPES_CACHE", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("RNNSHAPES_CACHE")
    assert cache_dir() == tmp_path / "xdg" / "rnnshapes"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "rnnshapes"


def test_data_url_default_and_override(monkeypatch):
    monkeypatch.delenv("RNNSHAPES_DATA_URL", raising=False)
    assert data_url(NAME) == f"https://raw.githubusercontent.com/hunkim/PyTorchZeroToAll/master/data/{NAME}"
    assert DATA_URL + NAME == data_url(NAME)
    monkeypatch.setenv("RNNSHAPES_DATA_URL", "http://mirror.example/d")  # a missing slash is added
    assert data_url(NAME) == f"http://mirror.example/d/{NAME}"


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("yes", True), ("TRUE", True), ("0", False)])
def test_offline_switch(monkeypatch, value, expected):
    monkeypatch.setenv("RNNSHAPES_OFFLINE", value)
    assert offline() is expected
    monkeypatch.delenv("RNNSHAPES_OFFLINE")
    assert offline() is False


def test_search_order_env_folder_beats_cache(monkeypatch, tmp_path, fake_file):
    data, cache = tmp_path / "data", tmp_path / "cache"
    for folder in (data, cache):
        folder.mkdir()
        (folder / NAME).write_bytes(fake_file)
    monkeypatch.setenv("RNNSHAPES_DATA", str(data))
    monkeypatch.setenv("RNNSHAPES_CACHE", str(cache))
    assert data_search_dirs() == [(data, "RNNSHAPES_DATA"), (cache, "RNNSHAPES_CACHE")]
    assert find_data_file(NAME) == data / NAME
    (data / NAME).unlink()  # not in the data folder: the cache is next
    assert find_data_file(NAME) == cache / NAME
    monkeypatch.delenv("RNNSHAPES_DATA")
    assert find_data_file(NAME) == cache / NAME


def test_missing_everywhere_offline_gives_one_clear_error(monkeypatch, tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    monkeypatch.setenv("RNNSHAPES_DATA", str(data))
    monkeypatch.setenv("RNNSHAPES_CACHE", str(cache))
    url = data_url(NAME)
    with pytest.raises(DataError, match=r"lesson data file 'names_train\.csv\.gz' not found") as info:
        find_data_file(NAME)
    message = str(info.value)
    assert f"{data} (RNNSHAPES_DATA): no such file" in message
    assert f"{cache} (RNNSHAPES_CACHE): folder does not exist" in message
    assert f"Download from {url} not tried: RNNSHAPES_OFFLINE is set" in message
    assert f"set RNNSHAPES_DATA to a folder holding {NAME}" in message
    assert not cache.exists()  # looking does not create the cache folder


def test_missing_with_download_false_says_so(monkeypatch, tmp_path):
    monkeypatch.delenv("RNNSHAPES_DATA")
    monkeypatch.delenv("RNNSHAPES_OFFLINE")
    monkeypatch.setenv("RNNSHAPES_CACHE", str(tmp_path))
    with pytest.raises(DataError, match=r"RNNSHAPES_DATA is not set[\s\S]*not tried: download=False") as info:
        find_data_file("shakespeare.txt.gz", download=False)
    assert f"{tmp_path} (RNNSHAPES_CACHE): no such file" in str(info.value)


def test_unknown_file_name_is_refused():
    with pytest.raises(
        DataError, match=r"unknown lesson data file 'mnist\.gz'; the known files are: names_test"
    ):
        find_data_file("mnist.gz")


def test_corrupt_file_in_data_folder_is_an_error_not_skipped(monkeypatch, tmp_path, fake_file):
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    cache.mkdir()
    (data / NAME).write_bytes(fake_file[:-3])
    (cache / NAME).write_bytes(fake_file)  # a good copy later in the search order is NOT used instead
    monkeypatch.setenv("RNNSHAPES_DATA", str(data))
    monkeypatch.setenv("RNNSHAPES_CACHE", str(cache))
    expected = re.escape(f"lesson data file '{data / NAME}' is corrupt or a different version: its sha256 is")
    with pytest.raises(DataError, match=expected + r" [0-9a-f]{64}, expected " + DATA_FILES[NAME]):
        find_data_file(NAME)


# --- download -------------------------------------------------------------------------------------------


def test_download_lands_in_cache_verified(online, server, fake_file, monkeypatch):
    server.put(NAME, fake_file)
    path = find_data_file(NAME)
    assert path == online / NAME
    assert path.read_bytes() == fake_file
    assert leftovers(online) == [NAME]
    assert server.requests == [f"/data/{NAME}"]
    # Found in the cache from now on: no second request, even offline.
    monkeypatch.setenv("RNNSHAPES_OFFLINE", "1")
    assert find_data_file(NAME) == path
    assert len(server.requests) == 1


def test_download_true_overrides_offline(online, server, fake_file, monkeypatch):
    server.put(NAME, fake_file)
    monkeypatch.setenv("RNNSHAPES_OFFLINE", "1")
    assert find_data_file(NAME, download=True).read_bytes() == fake_file


def test_download_with_wrong_checksum_leaves_nothing(online, server, fake_file):
    other = make_gzip('"Abe","Japanese"\r\n')  # a valid gzip, but not the expected file
    server.put(NAME, other)
    url = server.url + NAME
    pattern = re.escape(f"Download from {url} failed: sha256 {sha(other)} does not match the expected ")
    with pytest.raises(DataError, match=pattern + DATA_FILES[NAME]):
        find_data_file(NAME)
    assert leftovers(online) == []


def test_download_of_truncated_gzip_leaves_nothing(online, server, monkeypatch):
    truncated = make_gzip("x" * 5000 + "".join(str(i) for i in range(3000)))[:-40]
    monkeypatch.setitem(DATA_FILES, NAME, sha(truncated))  # the checksum would pass: only gzip can tell
    server.put(NAME, truncated)
    with pytest.raises(DataError, match=r"failed: not a complete gzip file \(EOFError: .*cut short"):
        find_data_file(NAME)
    assert leftovers(online) == []


def test_connection_cut_mid_file_leaves_nothing(online, server, fake_file):
    server.put(NAME, fake_file)
    server.cut_after = len(fake_file) // 2
    expected = f"Download from {server.url}{NAME} failed: the connection closed after {server.cut_after} of "
    with pytest.raises(DataError, match=re.escape(expected + f"{len(fake_file)} bytes; try again")):
        find_data_file(NAME)
    assert leftovers(online) == []


def test_download_404_names_the_url(online, server):
    url = server.url + NAME
    with pytest.raises(DataError, match=re.escape(f"downloading '{NAME}' from {url} failed: HTTP 404")):
        download_data_file(NAME)
    with pytest.raises(DataError, match=re.escape(f"Download from {url} failed: HTTP 404")) as info:
        find_data_file(NAME)
    assert f"{online} (RNNSHAPES_CACHE): " in str(info.value)  # still the whole story in one message
    assert leftovers(online) == []


def test_download_unreachable_server_names_url_and_reason(online, monkeypatch, server):
    server_url = server.url
    import socket

    with socket.socket() as s:  # a port that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/data/"
    monkeypatch.setenv("RNNSHAPES_DATA_URL", url)
    assert url != server_url
    with pytest.raises(
        DataError, match=re.escape(f"Download from {url}{NAME} failed: ConnectionRefusedError")
    ):
        find_data_file(NAME, timeout=5)


def test_concurrent_downloads_fetch_once(online, server, fake_file):
    server.put(NAME, fake_file)
    results: list[Path] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait()
        try:
            results.append(download_data_file(NAME))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert results == [online / NAME] * 4
    assert server.requests == [f"/data/{NAME}"]
    assert leftovers(online) == [NAME]


def test_real_files_verify(data_dir):
    for name in DATA_FILES:
        assert find_data_file(name) == data_dir / name
