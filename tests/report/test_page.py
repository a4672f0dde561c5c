"""The results page: training curves from TensorBoard logs, an inlined offline page, and the page
drawn by headless Chromium with the model in its 3D viewer."""

import base64
import html
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from lab4d_core.errors import Lab4dError
from lab4d_core.eval.consistency import combine_videos, score_video
from lab4d_core.export.export import export_video
from lab4d_core.render.video import write_video
from lab4d_core.report import page as page_module
from lab4d_core.report.curves import read_scalars, write_curves
from lab4d_core.report.page import VIEWER_BACKGROUND, ReportInputs, build_page, write_report

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / ".venv" / "node" / "node_modules"


def _log(logdir: Path, steps: range, value) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(logdir))
    for step in steps:
        writer.add_scalar("loss/total", value(step), step)
        writer.add_scalar("loss/mask", 0.5 * value(step), step)
    writer.close()


def test_curves_of_a_resumed_run_hold_each_step_once_with_the_resumed_values(tmp_path):
    logdir = tmp_path / "tensorboard"
    # A run killed at step 30 after its last checkpoint at 20, resumed from 20 with other losses.
    _log(logdir, range(1, 31), lambda step: 1.0 / step)
    _log(logdir, range(21, 41), lambda step: 2.0 / step)
    scalars = read_scalars(logdir)
    steps, values = scalars["loss/total"]
    np.testing.assert_array_equal(steps, np.arange(1, 41))
    np.testing.assert_allclose(values[:20], 1.0 / steps[:20], rtol=1e-6)
    np.testing.assert_allclose(values[20:], 2.0 / steps[20:], rtol=1e-6)
    out = tmp_path / "curves.png"
    write_curves(logdir, out, "run")
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape == (450, 800, 3)
    assert (image.std(-1) > 30).mean() > 0.001  # coloured curve pixels, not a blank canvas


def test_curves_without_logs_name_the_folder(tmp_path):
    with pytest.raises(Lab4dError, match=f"{tmp_path}: no TensorBoard event files"):
        read_scalars(tmp_path)


@pytest.fixture(scope="module")
def results(untrained_bob, tmp_path_factory):
    """A results folder as the workflow leaves it: a video, an export, metrics and curves."""
    model, database = untrained_bob
    root = tmp_path_factory.mktemp("results")
    export_video(model, database, 0, root / "export" / "0", grid=32)
    frames = (np.full((8, 40, 3), 40 * i, np.uint8) for i in range(4))
    write_video(root / "reference-0.mp4", frames, 4)
    metrics = {
        "views": {
            "mask_iou": 0.8861,
            "psnr": 19.93,
            "resolution": 64,
            "videos": {"a": {"mask_iou": 0.9, "psnr": 20.0, "frames": 2}},
        },
        "meshes": {"protocol": "sim3", "points": "surface", "mean": {"cd": 0.012, "fscore@10%bbox": 0.9981}},
    }
    (root / "eval").mkdir()
    (root / "eval" / "metrics.json").write_text(json.dumps(metrics))
    _log(root / "train" / "tensorboard", range(1, 20), lambda step: 1.0 / step)
    write_curves(root / "train" / "tensorboard", root / "train" / "curves.png")
    return ReportInputs(
        "tiny",
        videos=[root / "reference-0.mp4"],
        glb=root / "export" / "0" / "animated.glb",
        curves=root / "train" / "curves.png",
        metrics=root / "eval" / "metrics.json",
        links=[root / "export" / "0"],
    )


def _data_uris(text: str) -> dict[str, bytes]:
    return {mime: base64.b64decode(data) for mime, data in re.findall(r"data:([\w/-]+);base64,([A-Za-z0-9+/=]+)", text)}


def test_the_page_inlines_every_input_byte_for_byte_and_links_files_relatively(results, tmp_path):
    script = tmp_path / "viewer.js"
    script.write_text("window.viewer = '</script>';\n//# sourceMappingURL=viewer.js.map\n")
    text = build_page(results, results.glb.parents[2], script)
    uris = _data_uris(text)
    assert uris["video/mp4"] == results.videos[0].read_bytes()
    assert uris["model/gltf-binary"] == results.glb.read_bytes()
    assert uris["image/png"] == results.curves.read_bytes()
    assert "0.886" in text and "19.93" in text and "0.9981" in text
    assert "href='export/0'" in text
    # The script is inlined whole, but for its source map, and cannot close its element early.
    assert "window.viewer = '<\\/script>'" in text and "sourceMappingURL" not in text
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", text), "nothing may be fetched from the network"


def test_without_the_viewer_bundle_the_page_says_how_to_get_it(results, tmp_path, monkeypatch):
    monkeypatch.delenv("LAB4D_MODEL_VIEWER", raising=False)
    monkeypatch.setattr(page_module.sys, "prefix", str(tmp_path))
    out = tmp_path / "report.html"
    assert write_report(results, out) is None
    text = out.read_text()
    assert "<model-viewer" not in text and "make setup" in text and "animated.glb</a>" in text


def test_bad_metrics_and_missing_inputs_are_clear_errors(results, tmp_path):
    broken = tmp_path / "metrics.json"
    broken.write_text("{not json")
    bad = ReportInputs("x", metrics=broken)
    with pytest.raises(Lab4dError, match=f"{broken}: not valid JSON"):
        build_page(bad, tmp_path, None)
    with pytest.raises(Lab4dError, match="missing.mp4: cannot read it"):
        build_page(ReportInputs("x", videos=[tmp_path / "missing.mp4"]), tmp_path, None)


def _consistency_metrics(tmp_path: Path, turned: bool) -> Path:
    """A metrics file with only a consistency section: cat-0000 holds still and, if ``turned``,
    cat-0001 turns by up to 60 degrees over its frames."""
    rest = np.random.default_rng(0).normal(size=(300, 3))
    rotations = Rotation.from_rotvec(np.radians(np.linspace(0, 60, 8))[:, None] * [0.0, 0.0, 1.0]).as_matrix()
    videos = {"cat-0000": score_video(rest, np.repeat(rest[None], 8, axis=0))}
    if turned:
        videos["cat-0001"] = score_video(rest, rest @ rotations.transpose(0, 2, 1))
    path = tmp_path / f"metrics-{turned}.json"
    path.write_text(json.dumps({"consistency": combine_videos(videos)}))
    return path


def test_an_inconsistent_video_raises_a_banner_atop_the_page_and_a_consistent_model_none(tmp_path):
    good = build_page(ReportInputs("x", metrics=_consistency_metrics(tmp_path, False)), tmp_path, None)
    assert "class=alert" not in good and "Inconsistent" not in good
    assert "<td>cat-0000</td><td>0.0</td><td>0.0</td><td>1.000</td><td>1.000</td><td class=ok>yes</td>" in good
    path = _consistency_metrics(tmp_path, True)
    bad = build_page(ReportInputs("x", metrics=path), tmp_path, None)
    (warning,) = json.loads(path.read_text())["consistency"]["warnings"]
    assert warning.startswith(
        "cat-0001 is inconsistent across views: the deformation turns the whole body by 54.0 degrees"
    )
    assert f"<li>{html.escape(warning)}</li>" in bad and "check Cameras/ or train longer" in bad
    assert bad.index("class=alert") < bad.index("<h2>Metrics</h2>")  # seen before anything else
    assert "<td>cat-0001</td><td>30.0</td><td>54.0</td>" in bad and "<td class=bad>NO</td>" in bad
    assert "<td>all frames</td>" in bad and "limit 25" in bad


def test_the_makefile_installs_the_viewer_the_page_expects():
    assert page_module.VIEWER_PACKAGE in (ROOT / "Makefile").read_text()


def test_headless_chromium_draws_the_model_in_the_viewer(results, tmp_path, monkeypatch):
    chromium = shutil.which("chromium")
    needed = [NODE_MODULES / "playwright-core", NODE_MODULES / page_module.VIEWER_BUNDLE.relative_to("node_modules")]
    if chromium is None or shutil.which("node") is None:
        pytest.skip("Chromium or node is missing: .ci/run installs Debian's chromium; `make test` needs npm")
    if not all(path.exists() for path in needed):
        pytest.skip("playwright-core or model-viewer is missing: `make setup` installs them with npm into .venv/node")
    monkeypatch.setenv("LAB4D_MODEL_VIEWER", str(needed[1]))
    out = results.glb.parents[2] / "report.html"
    write_report(results, out)
    shot = tmp_path / "viewer.png"
    result = subprocess.run(
        ["node", str(Path(__file__).with_name("screenshot.js")), str(out), str(shot)],
        capture_output=True,
        text=True,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES), "CHROMIUM": chromium},
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout)
    assert seen["external"] == [] and seen["errors"] == []
    assert seen["videos"] == [{"width": 40, "height": 8}]
    assert seen["animations"] == ["motion"]
    image = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")).astype(int)
    assert abs(image.shape[0] - 480) <= 1 and abs(image.shape[1] - 640) <= 1  # the box may sit between pixels
    background = np.array([int(VIEWER_BACKGROUND[i : i + 2], 16) for i in (1, 3, 5)])
    drawn = np.abs(image - background).sum(-1) > 30
    assert drawn.mean() > 0.02, f"only {drawn.mean():.1%} of the viewer shows the model"
    assert drawn[0].mean() < 0.05 and drawn[:, 0].mean() < 0.05, "the model should be framed, not fill the viewer"
