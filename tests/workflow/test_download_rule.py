"""A url dataset in the DAG: download -> link_database -> train ..., and what reruns after an edit."""

from __future__ import annotations

import functools
import json
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.workflow.test_workflow import overlay, snakemake, write_yaml


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def served(tiny_quad, tmp_path):
    """The URL of tiny_quad's database/ zipped as lab4d's downloads are, from a local HTTP server."""
    folder = tmp_path / "served"
    folder.mkdir()
    with zipfile.ZipFile(folder / "tiny-quad.zip", "w") as archive:
        for path in sorted((tiny_quad / "database").rglob("*")):
            archive.write(path, path.relative_to(tiny_quad).as_posix())
    http = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    threading.Thread(target=http.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{http.server_address[1]}/tiny-quad.zip"
    http.shutdown()
    http.server_close()


def test_a_url_dataset_downloads_links_and_reruns_only_for_its_url(served, tmp_path):
    work = tmp_path / "work"
    dataset = tmp_path / "datasets" / "web.yaml"
    source = {"url": served, "collection": "tiny-quad"}
    write_yaml(dataset, {"source": source})
    config = overlay(tmp_path, ["web"], dataset.parent)

    plan = snakemake("-n", "-p", "--configfile", str(config), workdir=work)
    assert plan.returncode == 0, plan.stdout
    for rule in ("download", "link_database", "train", "evaluate_without_ground_truth", "report"):
        assert f"rule {rule}:" in plan.stdout
    assert f"lab4d download --config {dataset} --out data/web/download" in plan.stdout
    assert "lab4d link --root data/web/download --collection tiny-quad --out data/web/manifest.json" in plan.stdout

    target = "data/web/manifest.json"
    run = snakemake(target, "--cores", "1", "--configfile", str(config), workdir=work)
    assert run.returncode == 0, run.stdout
    manifest = json.loads((work / target).read_text())
    assert manifest["train_res"] == 64 and manifest["num_frames"] == [12, 12]  # 64 as found on disk
    printed = (work / "logs" / "download" / "web.log").read_text()
    (checksum,) = [line.split()[1] for line in printed.splitlines() if line.startswith("sha256:")]

    # Pinning the printed checksum neither downloads again nor relinks (which would retrain).
    write_yaml(dataset, {"source": {**source, "sha256": checksum}})
    pinned = snakemake(target, "-n", "--configfile", str(config), workdir=work)
    assert "Nothing to be done" in pinned.stdout, pinned.stdout

    write_yaml(dataset, {"source": {**source, "sha256": checksum, "train_res": 64}})
    relinked = snakemake(target, "-n", "--configfile", str(config), workdir=work)
    assert "rule link_database:" in relinked.stdout and "rule download:" not in relinked.stdout, relinked.stdout

    write_yaml(dataset, {"source": {**source, "url": served + "?v=2"}})
    moved = snakemake(target, "-n", "--configfile", str(config), workdir=work)
    assert "rule download:" in moved.stdout and "rule link_database:" in moved.stdout, moved.stdout
