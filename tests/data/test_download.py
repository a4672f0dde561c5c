"""``source: {url: ...}``: download, resume, checksum and safe unpacking against a local HTTP server.

The server (threaded ``http.server``) serves zips in lab4d's layout built from a tiny synthetic
database at train_res 128; it honours Range, can cut a transfer halfway and can answer 404 or 500.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import stat
import threading
import zipfile
from collections import namedtuple
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from lab4d_core.cli import main
from lab4d_core.config import SourceConfig, SynthConfig, from_dict
from lab4d_core.data.download import direct_url, download
from lab4d_core.data.manifest import link_database, read_manifest
from lab4d_core.errors import Lab4dError

TINY = SynthConfig(
    num_videos=1,
    num_frames=9,
    resolution=128,
    train_res=128,
    prefixes=["crop"],
    supersample=1,
    motions=["walk"],
    cameras=["orbit"],
    voxel=0.03,
)


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> Path:
    """A lab4d root with collection "tiny": one video of 9 frames, arrays at 128."""
    from lab4d_core.data.synthetic.synthesize import synthesize

    root = tmp_path_factory.mktemp("download") / "tiny"
    synthesize(TINY, root)
    return root


def zip_of(root: Path, top: str = "") -> bytes:
    """``root/database`` zipped as lab4d's downloads are (database/ at the root), or inside folder ``top``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in sorted((root / "database").rglob("*")):
            archive.write(path, top + path.relative_to(root).as_posix())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tiny_zip(database) -> bytes:
    return zip_of(database)


def zip_with(entries: dict[str, int]) -> bytes:
    """A zip of the entries ``{name: unix mode}`` (a symbolic link's content is its target)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, mode in entries.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def small_zip(name: str, mode: int = stat.S_IFREG | 0o644) -> bytes:
    """A lab4d-like zip with one more entry ``name`` of unix ``mode``."""
    return zip_with({"database/configs/tiny.config": stat.S_IFREG | 0o644, name: mode})


def corrupt(data: bytes) -> bytes:
    """The zip with bytes in the middle of its file data flipped (the directory at its end intact)."""
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server = self.server
        path = urlsplit(self.path).path
        server.requests.append((self.path, self.headers.get("Range")))
        if path in ("/404", "/500") or path not in server.files:
            self.send_error(500 if path == "/500" else 404)
            return
        body = server.files[path]
        start = 0
        if self.headers.get("Range") and not server.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", self.headers["Range"])[1])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if path in server.cut:  # once: half the body, then the connection closes
            server.cut.discard(path)
            self.wfile.write(body[start : start + (len(body) - start) // 2])
            self.close_connection = True
            return
        self.wfile.write(body[start:])

    def log_message(self, *args) -> None:
        pass


Server = namedtuple("Server", "url files requests cut http")


@pytest.fixture
def server():
    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    http.files, http.requests, http.cut, http.ignore_range = {}, [], set(), False
    thread = threading.Thread(target=http.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield Server(f"http://127.0.0.1:{http.server_address[1]}", http.files, http.requests, http.cut, http)
    http.shutdown()
    http.server_close()


def fails(capsys, args: list[str], *expected: str) -> str:
    """Run ``lab4d`` and check it fails with one error line that contains ``expected``."""
    assert main(args) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"lab4d {args[0]}: error:") and "Traceback" not in line, line
    for text in expected:
        assert text in line, line
    return line


def test_a_download_links_without_train_res_and_trains(server, tiny_zip, tmp_path, capsys):
    server.files["/tiny.zip"] = tiny_zip
    url = f"{server.url}/tiny.zip"
    out = tmp_path / "data" / "tiny" / "download"
    assert main(["download", "--url", url, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"sha256: {hashlib.sha256(tiny_zip).hexdigest()}" in printed and "collections: tiny" in printed
    assert sorted(p.name for p in out.parent.iterdir()) == ["download"]  # the zip is gone once unpacked

    # The database is at 128, not lab4d's 256, and nobody said so.
    manifest = tmp_path / "data" / "tiny" / "manifest.json"
    assert main(["link", "--root", str(out), "--collection", "tiny", "--out", str(manifest)]) == 0
    linked = read_manifest(manifest)
    assert linked.train_res == 128 and linked.videos == ["tiny-0000"] and linked.num_frames == [9]
    assert linked.root == out.resolve()

    config = tmp_path / "tiny.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "source": {"url": url, "collection": "tiny"},
                "model": {"hash_log2_size": 12, "hash_levels": 8, "hash_max_res": 64},
                "train": {"imgs_per_gpu": 4, "num_samples": 16, "preset": "cpu", "eval_res": 16},
            }
        )
    )
    train = tmp_path / "train"
    command = ["train", "--config", str(config), "--data", str(manifest), "--out", str(train)]
    assert main([*command, "--set", "num_rounds=1", "--set", "iters_per_round=2"]) == 0
    assert (train / "ckpt_final.pth").is_file()


def test_an_interrupted_transfer_resumes_where_it_stopped(server, tiny_zip, tmp_path):
    server.files["/tiny.zip"] = tiny_zip
    server.cut.add("/tiny.zip")
    out = tmp_path / "tiny" / "download"
    with pytest.raises(Lab4dError, match=r"stopped after .* MiB .*run the same command again to resume"):
        download(f"{server.url}/tiny.zip", out)
    (part,) = out.parent.glob("*.zip.part")
    assert part.stat().st_size == len(tiny_zip) // 2 and not out.exists()

    download(f"{server.url}/tiny.zip", out, hashlib.sha256(tiny_zip).hexdigest())
    assert server.requests[-1][1] == f"bytes={len(tiny_zip) // 2}-"
    assert (out / "database" / "configs" / "tiny.config").is_file() and not part.exists()


def test_a_server_that_ignores_range_sends_the_file_again(server, tiny_zip, tmp_path):
    server.files["/tiny.zip"] = tiny_zip
    server.cut.add("/tiny.zip")
    server.http.ignore_range = True
    out = tmp_path / "tiny" / "download"
    with pytest.raises(Lab4dError, match="resume"):
        download(f"{server.url}/tiny.zip", out)
    assert download(f"{server.url}/tiny.zip", out) == hashlib.sha256(tiny_zip).hexdigest()
    assert server.requests[-1][1] is not None  # asked to resume, answered 200 with the whole file


def test_a_part_longer_than_a_republished_file_starts_over(server, tiny_zip, tmp_path):
    server.files["/tiny.zip"] = tiny_zip
    server.cut.add("/tiny.zip")
    out = tmp_path / "tiny" / "download"
    with pytest.raises(Lab4dError, match="resume"):
        download(f"{server.url}/tiny.zip", out)
    server.files["/tiny.zip"] = republished = small_zip("database/README")
    assert download(f"{server.url}/tiny.zip", out) == hashlib.sha256(republished).hexdigest()
    assert [headers for _, headers in server.requests[1:]] == [f"bytes={len(tiny_zip) // 2}-", None]  # 416, then all
    assert (out / "database" / "README").is_file()


def test_a_zip_that_wraps_database_in_one_folder_unpacks(server, database, tmp_path):
    server.files["/wrapped.zip"] = zip_of(database, top="tiny-pikachu/")
    out = tmp_path / "tiny" / "download"
    download(f"{server.url}/wrapped.zip", out)
    assert sorted(p.name for p in out.iterdir()) == ["database"]
    assert link_database(out, "tiny", tmp_path / "manifest.json")["train_res"] == 128


@pytest.mark.parametrize(
    "case, expected",
    [
        ("404", ["HTTP 404", "check the url"]),
        ("500", ["HTTP 500", "try again later"]),
        ("unreachable", ["cannot reach", "check the url"]),
        ("corrupt", ["is not a valid zip", "the file was deleted"]),
        ("web page", ["is not a valid zip", "shared publicly"]),
        ("wrong checksum", ["has SHA-256", "not the expected " + "0" * 64, "the file was deleted"]),
        ("dotdot", ["'database/../../evil'", "'..' component"]),
        ("absolute", ["'/tmp/evil'", "absolute path"]),
        ("symlink", ["'database/link'", "symbolic link"]),
        ("device", ["'database/tty'", "device or other special file"]),
        ("not lab4d", ["has no database/ folder", "found: cat, dog"]),
    ],
)
def test_each_failure_is_one_clear_error_that_leaves_no_dataset_folder(
    case, expected, server, tiny_zip, tmp_path, capsys
):
    payloads = {
        "corrupt": corrupt(tiny_zip),
        "web page": b"<!DOCTYPE html><html>Sign in to Dropbox</html>",
        "wrong checksum": tiny_zip,
        "dotdot": small_zip("database/../../evil"),
        "absolute": small_zip("/tmp/evil"),
        "symlink": small_zip("database/link", stat.S_IFLNK | 0o777),
        "device": small_zip("database/tty", stat.S_IFCHR | 0o666),
        "not lab4d": zip_with({"cat/readme.txt": stat.S_IFREG | 0o644, "dog/readme.txt": stat.S_IFREG | 0o644}),
    }
    server.files["/data.zip"] = payloads.get(case, b"")
    url = {"404": f"{server.url}/404", "500": f"{server.url}/500", "unreachable": "http://127.0.0.1:9/x.zip"}.get(
        case, f"{server.url}/data.zip"
    )
    checksum = ["--sha256", "0" * 64] if case == "wrong checksum" else []
    dataset = tmp_path / "data" / "mine"
    fails(capsys, ["download", "--url", url, *checksum, "--out", str(dataset / "download")], url, *expected)
    assert not dataset.exists() and list(tmp_path.iterdir()) == []


def test_a_zip_too_large_for_the_disk_is_kept_for_a_rerun(server, monkeypatch, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("database/configs/tiny.config", "[data]\n")
        archive.writestr("database/processed/zeros.bin", bytes(4 << 20))  # 4 MiB, a few KiB zipped
    server.files["/big.zip"] = buffer.getvalue()
    url, out = f"{server.url}/big.zip", tmp_path / "big" / "download"
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1 << 20))
    with pytest.raises(Lab4dError, match=r"unpacking .*big/download-\w+\.zip needs 4\.0 MiB but .* has 1\.0 MiB free"):
        download(url, out)
    assert not out.exists() and len(list(out.parent.glob("download-*.zip"))) == 1
    monkeypatch.undo()
    download(url, out)
    assert len(server.requests) == 1 and (out / "database" / "processed" / "zeros.bin").stat().st_size == 4 << 20


def test_dropbox_share_links_download_the_file():
    assert direct_url("https://www.dropbox.com/s/abc/cat-pikachu.zip?dl=0") == (
        "https://www.dropbox.com/s/abc/cat-pikachu.zip?dl=1"
    )
    assert direct_url("https://www.dropbox.com/scl/fi/xyz/dog-98.zip?rlkey=k3y&dl=0") == (
        "https://www.dropbox.com/scl/fi/xyz/dog-98.zip?rlkey=k3y&dl=1"
    )
    assert direct_url("https://dropbox.com/s/abc/a.zip") == "https://dropbox.com/s/abc/a.zip?dl=1"
    assert direct_url("https://example.org/a.zip?dl=0") == "https://example.org/a.zip?dl=0"


def test_train_res_on_disk_must_be_one(database, tmp_path):
    root = tmp_path / "tiny"
    shutil.copytree(database / "database", root / "database")
    rgb = root / "database" / "processed" / "JPEGImages" / "Full-Resolution" / "tiny-0000"
    shutil.copy(rgb / "crop-128.npy", rgb / "crop-64.npy")
    with pytest.raises(Lab4dError, match=r"several resolutions \(64, 128\); choose one with --train-res"):
        link_database(root, "tiny", tmp_path / "manifest.json")
    assert link_database(root, "tiny", tmp_path / "manifest.json", train_res=128)["train_res"] == 128
    for path in rgb.glob("crop-*.npy"):
        path.unlink()
    with pytest.raises(Lab4dError, match=r"no resolution R at which every video has its rgb arrays \(crop-<R>\.npy"):
        link_database(root, "tiny", tmp_path / "manifest.json")


def test_a_source_is_one_kind_and_only_a_url_has_a_checksum():
    source = from_dict(SourceConfig, {"url": "https://x/y.zip", "sha256": "A" * 64, "train_res": 128})
    assert source.url == "https://x/y.zip" and source.train_res == 128
    with pytest.raises(Lab4dError, match="exactly one of synthetic, path, url"):
        from_dict(SourceConfig, {"url": "https://x/y.zip", "path": "/data"})
    with pytest.raises(Lab4dError, match="sha256 is the checksum of a url's download"):
        from_dict(SourceConfig, {"path": "/data", "sha256": "a" * 64})
    with pytest.raises(Lab4dError, match="64 hexadecimal digits"):
        from_dict(SourceConfig, {"url": "https://x/y.zip", "sha256": "abc"})
    with pytest.raises(Lab4dError, match="http:// or https://"):
        from_dict(SourceConfig, {"url": "data/cat.zip"})
    with pytest.raises(Lab4dError, match="collection and train_res belong to path and url sources"):
        from_dict(SourceConfig, {"synthetic": {}, "train_res": 128})
