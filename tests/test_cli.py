import json

import numpy as np
import trimesh

from lab4d_core.cli import main


def test_synth_with_a_missing_asset_fails_with_one_line_and_status_2(tmp_path, capsys):
    code = main(["synth", "--character", "asset", "--asset", str(tmp_path / "none.glb"), "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert err.startswith("lab4d synth: error:") and "none.glb" in err and "Traceback" not in err
    assert not (tmp_path / "d").exists()


def test_link_validates_in_place_and_preview_draws_it(tiny_quad, tmp_path):
    manifest = tmp_path / "linked" / "manifest.json"
    assert (
        main(
            [
                "link",
                "--root",
                str(tiny_quad),
                "--collection",
                "tiny-quad",
                "--out",
                str(manifest),
                "--train-res",
                "64",
                "--prefixes",
                "crop",
                "full",
            ]
        )
        == 0
    )
    data = json.loads(manifest.read_text())
    assert data["root"] == str(tiny_quad) and data["num_frames"] == [12, 12] and data["ground_truth"]
    png = tmp_path / "sheet.png"
    assert main(["preview", "--manifest", str(manifest), "--out", str(png), "--frames", "2"]) == 0
    from PIL import Image

    sheet = np.asarray(Image.open(png))
    assert sheet.shape == (18 + 2 * 2 * 64, 4 * 64, 3)  # header + 2 videos x 2 frames; rgb|mask|depth|flow


def test_link_of_a_wrong_collection_lists_the_existing_ones(tiny_quad, tmp_path, capsys):
    assert main(["link", "--root", str(tiny_quad), "--collection", "cat", "--out", str(tmp_path / "m.json")]) == 2
    assert "tiny-quad" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_evaluate_writes_mesh_and_mask_metrics(tiny_quad, tmp_path):
    gt = tiny_quad / "GroundTruth" / "tiny-quad-0000"
    verts, faces = np.load(gt / "verts_cam.npy"), np.load(gt / "faces.npy")
    pred = tmp_path / "meshes"
    pred.mkdir()
    for frame, v in enumerate(verts):
        trimesh.Trimesh(v, faces, process=False).export(pred / f"{frame:05d}.obj")
    masks = tiny_quad / "database" / "processed" / "Annotations" / "Full-Resolution" / "tiny-quad-0000"
    out = tmp_path / "metrics.json"
    assert (
        main(
            [
                "evaluate",
                "--out",
                str(out),
                "--pred-meshes",
                str(pred),
                "--gt",
                str(gt),
                "--num-samples",
                "2000",
                "--pred-masks",
                str(masks),
                "--gt-masks",
                str(masks),
            ]
        )
        == 0
    )
    metrics = json.loads(out.read_text())
    assert metrics["meshes"]["mean"]["fscore@0.10"] == 1.0 and metrics["meshes"]["mean"]["cd"] < 1e-3
    assert metrics["masks"]["mask_iou"] == 1.0
