"""Finding the lesson data files: a data folder, the user cache, or a verified download.

The data files of the PyTorchZeroToAll lessons are never part of the package. :func:`find_data_file` looks for
one of them, in this order:

1. the folder named by ``RNNSHAPES_DATA``;
2. the user cache folder :func:`cache_dir` (``RNNSHAPES_CACHE``, else ``$XDG_CACHE_HOME/rnnshapes``, else
   ``~/.cache/rnnshapes``);
3. a download from the course's repository (base URL :data:`DATA_URL`, overridable by ``RNNSHAPES_DATA_URL``)
   into the cache folder, unless ``RNNSHAPES_OFFLINE`` is set to ``1``/``true``/``yes``.

Every file is checked against the sha256 in :data:`DATA_FILES` before it is used, wherever it was found: a
file that fails the check is an error, never silently used. A download goes to a temporary file in the cache
folder, is checked (complete gzip stream, then sha256) and only then renamed into place, under a file lock,
so that concurrent processes never see a half-written file and download it only once.
"""

import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import filelock

from ..core._errors import DataError

DATA_FILES: dict[str, str] = {
    "names_train.csv.gz": "49b4bf41dce5bfeac989b46ca37cf7baccd9a0d2a855df82f86de67a9376268f",
    "names_test.csv.gz": "57d7758db533a42c99d513b2341a7e7b0f55c1e0e7d233b1ef6a4fa2f1adf753",
    "shakespeare.txt.gz": "2eb872a1b46dca57ec6c55bbf528df9ab53a564f803ba17d8b7e8267c66c1e10",
}
"""The lesson data files this package knows, and the sha256 of each (as published with the course)."""

DATA_URL = "https://raw.githubusercontent.com/hunkim/PyTorchZeroToAll/master/data/"
"""Where the files are downloaded from (``<DATA_URL><file>``) unless ``RNNSHAPES_DATA_URL`` says otherwise."""

ENV_DATA = "RNNSHAPES_DATA"
ENV_CACHE = "RNNSHAPES_CACHE"
ENV_URL = "RNNSHAPES_DATA_URL"
ENV_OFFLINE = "RNNSHAPES_OFFLINE"

_MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024  # the largest lesson file is 0.4 MiB; anything far bigger is wrong
_CHUNK = 1 << 16
_LOCK_TIMEOUT_S = 600.0
_TRUE = {"1", "true", "yes", "on"}


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def cache_dir() -> Path:
    """The user cache folder of rnnshapes (it may not exist yet).

    ``RNNSHAPES_CACHE`` if set, else ``$XDG_CACHE_HOME/rnnshapes``, else ``~/.cache/rnnshapes``. Downloaded
    data files land here; the training layer keeps its checkpoints here too.

    Returns:
        The folder, with ``~`` expanded. It is not created.
    """
    explicit = _env(ENV_CACHE)
    if explicit is not None:
        return Path(explicit).expanduser()
    xdg = _env("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg is not None else Path.home() / ".cache"
    return base / "rnnshapes"


def data_url(name: str) -> str:
    """The URL that :func:`find_data_file` downloads the data file ``name`` from.

    The base is ``RNNSHAPES_DATA_URL`` if set (for mirrors and tests), else :data:`DATA_URL`.
    """
    base = _env(ENV_URL) or DATA_URL
    if not base.endswith("/"):
        base += "/"
    return base + name


def offline() -> bool:
    """Whether downloads are forbidden by the environment (``RNNSHAPES_OFFLINE=1``, ``true`` or ``yes``)."""
    return (_env(ENV_OFFLINE) or "").lower() in _TRUE


def data_search_dirs() -> list[tuple[Path, str]]:
    """The folders :func:`find_data_file` searches, in order, each with where it came from.

    Returns:
        ``[(folder, origin), ...]``: the ``RNNSHAPES_DATA`` folder when that variable is set, then the cache
        folder. Folders that do not exist are listed too.
    """
    dirs: list[tuple[Path, str]] = []
    data = _env(ENV_DATA)
    if data is not None:
        dirs.append((Path(data).expanduser(), ENV_DATA))
    cache = cache_dir()
    source = ENV_CACHE if _env(ENV_CACHE) is not None else "user cache"
    dirs.append((cache, source))
    return dirs


def _expected_sha256(name: str) -> str:
    try:
        return DATA_FILES[name]
    except KeyError:
        known = ", ".join(sorted(DATA_FILES))
        raise DataError(f"unknown lesson data file {name!r}; the known files are: {known}.") from None


def file_sha256(path: Path) -> str:
    """The sha256 of a file, as hex (about 1 ms for the largest lesson file)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_data_file(path: Path, name: str | None = None) -> Path:
    """Check a data file against its known sha256 and return its path.

    Args:
        path: the file.
        name: which lesson file it should be (default: ``path.name``).

    Raises:
        DataError: the name is unknown, or the content does not match (a corrupt, truncated or edited file).
    """
    name = path.name if name is None else name
    expected = _expected_sha256(name)
    actual = file_sha256(path)
    if actual != expected:
        raise DataError(
            f"lesson data file {str(path)!r} is corrupt or a different version: its sha256 is {actual}, "
            f"expected {expected}. Delete it or replace it with the course's file from {data_url(name)}."
        )
    return path


def _check_gzip(path: Path) -> None:
    """Read a gzip file to its end: a truncated or damaged stream raises DataError."""
    try:
        with gzip.open(path, "rb") as f:
            while f.read(_CHUNK):
                pass
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(
            f"not a complete gzip file ({type(err).__name__}: {err}); the download was cut short"
        ) from None


def download_data_file(name: str, dest_dir: Path | None = None, *, timeout: float = 30.0) -> Path:
    """Download one lesson data file into a folder, verified and atomically.

    The file is fetched from :func:`data_url` into a temporary file in ``dest_dir``, checked (a complete
    gzip stream, then the sha256 of :data:`DATA_FILES`) and renamed into place. On any failure nothing is left
    behind. A file lock makes concurrent calls download the file once; a file that is already there and
    verifies is returned without a download.

    Args:
        name: a file of :data:`DATA_FILES`, e.g. ``"names_train.csv.gz"``.
        dest_dir: where to put it (default: :func:`cache_dir`); created if needed.
        timeout: seconds for the connection and each read.

    Returns:
        The path of the verified file.

    Raises:
        DataError: the name is unknown, the folder cannot be written, the download fails (the message names
            the URL and the reason), or the content does not verify.
    """
    expected = _expected_sha256(name)
    dest_dir = cache_dir() if dest_dir is None else dest_dir
    url = data_url(name)
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"cannot create the folder {str(dest_dir)!r} to download {name!r} into: {err}"
        ) from None
    target = dest_dir / name
    lock_dir = dest_dir / ".locks"  # lock files stay after use (deleting them races); keep them out of sight
    try:
        lock_dir.mkdir(exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create the lock folder {str(lock_dir)!r}: {err}") from None
    lock = filelock.FileLock(str(lock_dir / f"{name}.lock"), timeout=_LOCK_TIMEOUT_S)
    try:
        with lock:
            if target.is_file():  # another process finished the download while we waited
                return verify_data_file(target, name)
            _download_locked(name, url, expected, target, timeout)
    except filelock.Timeout:
        raise DataError(
            f"timed out after {_LOCK_TIMEOUT_S:.0f} s waiting for another process to download {name!r} into "
            f"{str(dest_dir)!r} (lock file {lock.lock_file}); if no other process is running, delete the "
            "lock file."
        ) from None
    return target


def _download_locked(name: str, url: str, expected: str, target: Path, timeout: float) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    announced = response.headers.get("Content-Length")
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        size += len(chunk)
                        if size > _MAX_DOWNLOAD_BYTES:
                            raise DataError(
                                f"downloading {name!r} from {url} failed: more than "
                                f"{_MAX_DOWNLOAD_BYTES} bytes, far more than the lesson file; wrong URL?"
                            )
                        h.update(chunk)
                        out.write(chunk)
                    if announced is not None and announced.isdigit() and size != int(announced):
                        raise DataError(
                            f"downloading {name!r} from {url} failed: the connection closed after {size} of "
                            f"{announced} bytes; try again"
                        )
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
                raise DataError(f"downloading {name!r} from {url} failed: {_reason(err)}") from None
            out.flush()
            os.fsync(out.fileno())
        if name.endswith(".gz"):
            try:
                _check_gzip(tmp)
            except DataError as err:
                raise DataError(f"downloading {name!r} from {url} failed: {err}") from None
        actual = h.hexdigest()
        if actual != expected:
            raise DataError(
                f"downloading {name!r} from {url} failed: sha256 {actual} does not match the expected "
                f"{expected}; the server holds a different file (check RNNSHAPES_DATA_URL)."
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a cached data file is not a secret
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        if isinstance(err.reason, OSError):
            return f"{type(err.reason).__name__}: {err.reason}"
        return str(err.reason)
    return f"{type(err).__name__}: {err}"


def find_data_file(name: str, *, download: bool | None = None, timeout: float = 30.0) -> Path:
    """Find a lesson data file, downloading it into the cache when it is nowhere else.

    Looks in ``RNNSHAPES_DATA`` (a folder), then in :func:`cache_dir`, then downloads from :func:`data_url`
    into the cache folder (see :func:`download_data_file`). The first folder that holds the file wins; the
    file must match its sha256, or this raises instead of looking further.

    Args:
        name: a file of :data:`DATA_FILES`, e.g. ``"shakespeare.txt.gz"``.
        download: ``False`` forbids the download, ``True`` allows it even when ``RNNSHAPES_OFFLINE`` is set;
            ``None`` (default) downloads unless ``RNNSHAPES_OFFLINE`` is ``1``, ``true`` or ``yes``.
        timeout: seconds for the download's connection and each read.

    Returns:
        The path of the verified file.

    Raises:
        DataError: the name is unknown; a file was found but fails its sha256; or the file is nowhere and
            could not be downloaded: then one message names the file, every folder searched, the URL tried
            and why it failed, and what to do.
    """
    _expected_sha256(name)
    searched: list[str] = []
    for folder, origin in data_search_dirs():
        candidate = folder / name
        if candidate.is_file():
            return verify_data_file(candidate, name)
        state = "no such file" if folder.is_dir() else "folder does not exist"
        searched.append(f"  - {folder} ({origin}): {state}")
    if _env(ENV_DATA) is None:
        searched.insert(0, f"  - {ENV_DATA} is not set")

    allowed = (not offline()) if download is None else download
    url = data_url(name)
    if allowed:
        try:
            return download_data_file(name, cache_dir(), timeout=timeout)
        except DataError as err:
            attempt = f"download from {url} failed: {_strip_prefix(str(err), name, url)}"
    else:
        why = f"{ENV_OFFLINE} is set" if download is None else "download=False"
        attempt = f"download from {url} not tried: {why}"
    folders = "\n".join(searched)
    raise DataError(
        f"lesson data file {name!r} not found.\n"
        f"Searched:\n{folders}\n"
        f"{attempt[0].upper()}{attempt[1:]}\n"
        f"To fix: set {ENV_DATA} to a folder holding {name} (e.g. export {ENV_DATA}=/path/to/data), or copy "
        f"the file into {cache_dir()}, or allow the download ({ENV_OFFLINE} unset, network reachable)."
    )


def _strip_prefix(message: str, name: str, url: str) -> str:
    prefix = f"downloading {name!r} from {url} failed: "
    return message[len(prefix) :] if message.startswith(prefix) else message
