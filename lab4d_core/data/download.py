"""``source: {url: ...}``: download a zipped processed database, check it and unpack it safely.

lab4d's pre-processed datasets are zips (Dropbox share links) whose root is ``database/``; its
scripts/download_unzip.sh is wget + unzip into the repository. Here the transfer resumes where an
interrupted one stopped (HTTP Range), is checked against its SHA-256, and is unpacked only when every
entry is a plain file or folder inside the output, into a temporary folder renamed into place when
complete: a failed download never leaves a half dataset that a later stage would take for a whole one.
The unpacked database is validated by :func:`lab4d_core.data.manifest.link_database`, as ``source: path`` is.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from urllib.request import Request, urlopen

from lab4d_core import __version__
from lab4d_core.errors import Lab4dError
from lab4d_core.utils.progress import progress

CHUNK = 1 << 20
TIMEOUT_S = 60
"""Seconds without a byte before a transfer counts as interrupted."""


def direct_url(url: str) -> str:
    """The address that serves the file itself: a Dropbox share link (``dl=0``, a web page) with ``dl=1``.

    Other query parameters stay as they are: newer share links need their ``rlkey``.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host != "dropbox.com" and not host.endswith(".dropbox.com"):
        return url
    query = parse_qsl(parts.query, keep_blank_values=True)
    direct = [(key, "1" if key == "dl" else value) for key, value in query]
    if all(key != "dl" for key, _ in query):
        direct.append(("dl", "1"))
    return urlunsplit(parts._replace(query=urlencode(direct)))


def download(url: str, out: str | os.PathLike, sha256: str | None = None) -> str:
    """Download the zip at ``url``, check it and unpack it as ``out`` (which then contains database/).

    The transfer goes to ``<out>-<key>.zip.part`` beside ``out`` (the key is a hash of the address, so a
    part of another url is never resumed) and stays there when interrupted, so that a rerun resumes it.
    Returns the zip's SHA-256.
    """
    out = Path(out)
    if out.exists():
        raise Lab4dError(f"{out}: already exists; delete it to download {url} again")
    if urlsplit(url).scheme not in ("http", "https"):
        raise Lab4dError(f"{url!r} is not an http:// or https:// address; give the zip's url")
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise Lab4dError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}")
    address = direct_url(url)
    parent = out.parent
    created = [folder for folder in (parent, *parent.parents) if not folder.exists()]  # deepest first
    parent.mkdir(parents=True, exist_ok=True)
    archive = parent / f"{out.name}-{hashlib.sha256(address.encode()).hexdigest()[:12]}.zip"
    try:
        if not archive.exists():
            _fetch(address, archive, url)
        digest = _checksum(archive, url, sha256)
        _unpack(archive, out, url)
    except BaseException:
        for folder in created:  # a failed first download leaves no dataset folder
            if any(folder.iterdir()):
                break
            folder.rmdir()
        raise
    archive.unlink()
    return digest


def _fetch(address: str, archive: Path, url: str) -> None:
    """Stream ``address`` into ``archive``.part, resuming from its size, then rename it to ``archive``."""
    part = archive.with_name(archive.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"lab4d_core/{__version__}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        response = urlopen(Request(address, headers=headers), timeout=TIMEOUT_S)
    except HTTPError as error:
        if error.code == 416 and start:  # the part is as long as the file or longer: it cannot be resumed
            part.unlink()
            return _fetch(address, archive, url)
        raise Lab4dError(_http_problem(url, error)) from None
    except (URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        raise Lab4dError(f"cannot reach {url} ({reason}); check the url and the network connection") from None
    with response:
        if response.status != 206:
            start = 0  # a server that ignores Range sends the whole file: start over
        length = response.headers.get("Content-Length")
        total = start + int(length) if length else None
        if length:
            _check_space(parent=archive.parent, needed=int(length), what=f"the download of {url}")
        received, problem = start, None
        with (
            open(part, "ab" if start else "wb") as file,
            progress(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, desc="download") as bar,
        ):
            try:
                while chunk := response.read(CHUNK):
                    file.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as error:
                problem = error
    # http.client ends a body cut short without an error, so the count is what tells.
    if problem is not None or (total is not None and received < total):
        size = f" of {_size(total)}" if total else ""
        raise Lab4dError(
            f"the download of {url} stopped after {_size(received)}{size} ({problem or 'connection closed'}); "
            f"run the same command again to resume it from {part}"
        )
    os.replace(part, archive)


def _http_problem(url: str, error: HTTPError) -> str:
    if error.code in (404, 410):
        fix = "check the url (for Dropbox, the file's share link)"
    elif error.code in (401, 403):
        fix = "the file is not shared publicly: check the url or its sharing settings"
    elif error.code >= 500:
        fix = "the server failed; try again later (a partial download resumes)"
    else:
        fix = "check the url"
    return f"the download of {url} failed: HTTP {error.code} {error.reason}; {fix}"


def _checksum(archive: Path, url: str, expected: str | None) -> str:
    """The SHA-256 of ``archive``; a file that does not match ``expected`` is deleted."""
    digest = hashlib.sha256()
    with open(archive, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    found = digest.hexdigest()
    if expected is not None and found != expected.lower():
        archive.unlink()
        raise Lab4dError(
            f"the download of {url} has SHA-256 {found}, not the expected {expected.lower()}; the file was deleted: "
            "run again to download it again, or, if the dataset was republished, set sha256 to the new checksum"
        )
    return found


def _check_space(parent: Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(parent).free
    if needed > free:
        raise Lab4dError(
            f"{what} needs {_size(needed)} but {parent} has {_size(free)} free; free some space and run again"
        )


def _size(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"


def _unsafe(info: zipfile.ZipInfo) -> str | None:
    """Why an entry may not be unpacked: anything that could land outside the folder or is not a plain file."""
    name = info.filename
    mode = info.external_attr >> 16  # unix mode bits, as zip tools store them
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return "an absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "a '..' component"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "a device or other special file"
    return None


def _unpack(archive: Path, out: Path, url: str) -> None:
    """Unpack ``archive`` to ``out`` through a temporary folder; a bad archive is deleted."""

    def reject(problem: str, fix: str) -> Lab4dError:
        archive.unlink()
        return Lab4dError(f"the download of {url} {problem}; the file was deleted: {fix}")

    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:
                problem = _unsafe(info)
                if problem:
                    raise reject(
                        f"has an entry {info.filename!r} with {problem}", "a lab4d dataset has none; check the url"
                    )
            size = sum(info.file_size for info in members)
            # A complete zip stays when space is short: freeing some and rerunning needs no new download.
            _check_space(out.parent, size, f"unpacking {archive}")
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-unpack-", dir=out.parent))
            try:
                with progress(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc="unpack") as bar:
                    for info in members:
                        zf.extract(info, tmp)
                        bar.update(info.file_size)
                root = _database_root(tmp)
                if root is None:
                    found = ", ".join(sorted(p.name for p in tmp.iterdir())) or "nothing"
                    raise reject(
                        f"has no database/ folder at its root or in its single top folder (found: {found})",
                        "check that the url is a lab4d processed dataset",
                    )
                root.rename(out)
            except OSError as error:
                raise Lab4dError(f"unpacking {archive} to {out} failed ({error}); fix that and run again") from None
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise reject(
            f"is not a valid zip ({error})",
            "run again to download it again (a link that is not shared publicly serves a web page instead)",
        ) from None


def _database_root(folder: Path) -> Path | None:
    """The folder holding database/: ``folder`` itself or its single top folder (a zip of the folder)."""
    if (folder / "database").is_dir():
        return folder
    entries = [p for p in folder.iterdir() if p.name != "__MACOSX"]  # macOS's zip adds resource forks beside
    if len(entries) == 1 and (entries[0] / "database").is_dir():
        return entries[0]
    return None
