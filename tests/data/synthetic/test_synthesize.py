"""The synthesizer's ground truth checked against an independent exact ray caster."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lab4d_core.config import SynthConfig
from lab4d_core.data import database as database_module
from lab4d_core.data.database import FLOW_DELTAS, Database
from lab4d_core.data.manifest import read_manifest
from lab4d_core.data.sampler import frame_table
from lab4d_core.data.synthetic.synthesize import synthesize
from lab4d_core.geometry.cameras import crop_intrinsics
from lab4d_core.geometry.raycast import pixel_rays, raycast
from lab4d_core.geometry.transforms import apply_transform
from tests.conftest import shared_file


def _truth(root, seq):
    folder = root / "GroundTruth" / seq
    return {
        key: np.load(folder / f"{key}.npy")
        for key in ("verts_cam", "faces", "intrinsics", "rest_verts", "skin_weights", "bone_transforms", "field2cam")
    }


def _intrinsics(video, frame, prefix="crop"):
    return crop_intrinsics(video.ks, video.array("crop2raw", prefix)[frame])


def test_dataset_passes_the_reader_and_the_manifest_describes_it(tiny_quad):
    manifest = read_manifest(tiny_quad / "manifest.json")
    database = manifest.database()
    assert [v.seqname for v in database.videos] == ["tiny-quad-0000", "tiny-quad-0001"]
    assert database.frame_offset.tolist() == [0, 12, 24]
    assert manifest.ground_truth and manifest.train_res == 64
    for video in database.videos:
        truth = _truth(tiny_quad, video.seqname)
        np.testing.assert_allclose(video.ks, truth["intrinsics"][0])
        # Every frame shows the character and lab4d's loader finds both prefixes.
        assert video.array("is_detected").all()
        assert video.array("mask", "full")[..., 0].reshape(12, -1).any(axis=1).all()


def test_crops_follow_lab4d_compute_crop_params(tiny_quad):
    video = Database(tiny_quad, "tiny-quad", resolution=64).videos[0]
    full = video.array("crop2raw", "full")
    np.testing.assert_allclose(full, np.tile([94 / 64, 94 / 64, 0, 0], (12, 1)))
    for frame in range(12):
        ys, xs = np.nonzero(video.raw_mask(frame) > 0)
        half_x, half_y = int(1.2 * ((xs.max() - xs.min()) // 2)), int(1.2 * ((ys.max() - ys.min()) // 2))
        centre_x, centre_y = (xs.max() + xs.min()) // 2, (ys.max() + ys.min()) // 2
        expected = [2 * half_x / 64, 2 * half_y / 64, centre_x - half_x, centre_y - half_y]
        np.testing.assert_allclose(video.array("crop2raw")[frame], expected)


@pytest.mark.parametrize("delta,direction", [(1, "fw"), (1, "bw"), (4, "fw"), (8, "bw")])
def test_flow_carries_visible_surface_points_onto_themselves(tiny_quad, delta, direction):
    rng = np.random.default_rng(delta)
    video = Database(tiny_quad, "tiny-quad", resolution=64).videos[1]
    truth = _truth(tiny_quad, video.seqname)
    flows = video.flow(delta, direction)
    mask = video.array("mask")[..., 0]
    reprojection, landing = [], []
    for k in range(len(flows)):
        src, dst = (k * delta, k * delta + delta) if direction == "fw" else (k * delta + delta, k * delta)
        flow = flows[k].astype(np.float64)
        ys, xs = np.nonzero(mask[src] & (flow[..., 2] > 0))
        pick = rng.choice(len(xs), size=min(60, len(xs)), replace=False)
        pixels = np.stack([xs[pick], ys[pick]], axis=-1).astype(np.float64)
        k_src, k_dst = _intrinsics(video, src), _intrinsics(video, dst)
        seen = raycast(np.zeros(3), pixel_rays(pixels, k_src), truth["verts_cam"][src], truth["faces"])
        ok = seen.hit
        moved = np.einsum(
            "pc,pcd->pd", seen.barycentric[ok], truth["verts_cam"][dst][truth["faces"][seen.triangle[ok]]]
        )
        expected = np.stack(
            [k_dst[0] * moved[:, 0] / moved[:, 2] + k_dst[2], k_dst[1] * moved[:, 1] / moved[:, 2] + k_dst[3]], -1
        )
        warped = pixels[ok] + flow[ys[pick][ok], xs[pick][ok], :2]
        reprojection.append(np.linalg.norm(warped - expected, axis=-1))
        # The warped pixel must see that very point at the other time (it is visible there).
        there = raycast(np.zeros(3), pixel_rays(warped, k_dst), truth["verts_cam"][dst], truth["faces"])
        landed = pixel_rays(warped, k_dst) * there.distance[:, None]
        landing.append(np.linalg.norm(landed - moved, axis=-1) / moved[:, 2] * k_dst[0])
    reprojection, landing = np.concatenate(reprojection), np.concatenate(landing)
    assert len(reprojection) > 50
    assert reprojection.mean() < 0.5 and np.median(reprojection) < 0.05  # float16 storage of the flow
    landed = np.isfinite(landing)
    assert landed.mean() > 0.98
    assert landing[landed].mean() < 0.5
    assert (landing[landed] > 1.0).mean() < 0.01  # confidence 1 really means visible


def test_depth_and_mask_equal_the_projected_ground_truth_mesh(tiny_quad):
    rng = np.random.default_rng(0)
    video = Database(tiny_quad, "tiny-quad", resolution=64).videos[0]
    truth = _truth(tiny_quad, video.seqname)
    depth, mask = video.array("depth"), video.array("mask")
    for frame in (0, 5, 11):
        pixels = rng.integers(0, 64, size=(400, 2)).astype(np.float64)
        hits = raycast(
            np.zeros(3), pixel_rays(pixels, _intrinsics(video, frame)), truth["verts_cam"][frame], truth["faces"]
        )
        rows, cols = pixels[:, 1].astype(int), pixels[:, 0].astype(int)
        inside = mask[frame, rows, cols, 1]
        assert (hits.hit[inside] == mask[frame, rows, cols, 0][inside]).mean() > 0.99
        both = hits.hit & mask[frame, rows, cols, 0]
        # Directions have z = 1, so the ray parameter is the camera-space z.
        np.testing.assert_allclose(depth[frame, rows, cols][both], hits.distance[both], rtol=3e-3, atol=1e-3)


def test_ground_truth_bones_skinning_and_root_pose_reproduce_the_meshes(tiny_quad):
    truth = _truth(tiny_quad, "tiny-quad-0000")
    blended = np.einsum("vj,njab->nvab", truth["skin_weights"], truth["bone_transforms"].astype(np.float64))
    posed = np.einsum("nvab,vb->nva", blended[..., :3, :3], truth["rest_verts"]) + blended[..., :3, 3]
    in_camera = apply_transform(truth["field2cam"].astype(np.float64), posed)
    np.testing.assert_allclose(in_camera, truth["verts_cam"], atol=1e-4)
    skeleton = json.loads((tiny_quad / "GroundTruth" / "tiny-quad-0000" / "skeleton.json").read_text())
    assert skeleton["name"] == "quad" and len(skeleton["parents"]) == truth["bone_transforms"].shape[1] == 25


def test_instances_differ_in_shape_when_not_single_inst(tmp_path):
    cfg = SynthConfig(
        character="human",
        num_videos=2,
        num_frames=9,
        resolution=48,
        train_res=32,
        prefixes=["crop"],
        single_inst=False,
        voxel=0.03,
    )
    synthesize(cfg, tmp_path / "people")
    lengths = [np.load(tmp_path / "people" / "GroundTruth" / f"people-000{k}" / "bone_lengths.npy") for k in range(2)]
    assert np.abs(lengths[0] - lengths[1]).max() > 0.01


def test_videos_of_different_lengths_reach_every_array_the_manifest_and_the_reader(tmp_path):
    cfg = SynthConfig(
        num_videos=3,
        num_frames=[9, 17],  # cycled: 9, 17, 9
        resolution=48,
        train_res=32,
        prefixes=["crop", "full"],
        supersample=1,
        voxel=0.04,
    )
    manifest = synthesize(cfg, tmp_path / "mixed")
    assert manifest["num_frames"] == cfg.frame_counts == [9, 17, 9]
    database = read_manifest(tmp_path / "mixed" / "manifest.json").database()
    assert database.frame_offset.tolist() == [0, 9, 26, 35]
    assert frame_table(database, "crop")["video_of_frame"].bincount().tolist() == [9, 17, 9]
    for video, n in zip(database.videos, [9, 17, 9]):
        assert video.num_frames == video.num_frames_raw == n
        for prefix in ("crop", "full"):
            assert video.array("rgb", prefix).shape[0] == video.array("mask", prefix).shape[0] == n
            assert video.array("crop2raw", prefix).shape == (n, 4)
            assert video.array("is_detected", prefix).shape == (n,)
            for delta in FLOW_DELTAS:
                assert len(video.flow(delta, "fw", prefix)) == len(video.flow(delta, "bw", prefix)) == (n - 1) // delta
        assert video.camera("01-canonical").shape == (n, 4, 4)
        truth = _truth(tmp_path / "mixed", video.seqname)
        assert len(truth["verts_cam"]) == len(truth["field2cam"]) == len(truth["intrinsics"]) == n
        assert np.load(tmp_path / "mixed" / "GroundTruth" / video.seqname / "joint_so3.npy").shape[0] == n


def test_an_interrupted_synthesis_leaves_the_previous_dataset_untouched(tmp_path, monkeypatch):
    cfg = SynthConfig(num_videos=1, num_frames=9, resolution=48, train_res=32, prefixes=["crop"], voxel=0.03)
    out = tmp_path / "d"
    synthesize(cfg, out)
    before = (out / "manifest.json").read_text()

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("lab4d_core.data.synthetic.synthesize.write_video", crash)
    with pytest.raises(RuntimeError):
        synthesize(SynthConfig(**{**cfg.__dict__, "seed": 5}), out)
    assert (out / "manifest.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    assert database_module.Database(out, "d", resolution=32, prefixes=("crop",)).num_frames == 9


def test_a_gltf_asset_becomes_a_dataset_with_its_own_skeleton(tmp_path):
    fox = shared_file("Fox.glb")
    cfg = SynthConfig(
        character="asset",
        asset=str(fox),
        animations=["Walk"],
        num_videos=1,
        num_frames=9,
        resolution=64,
        train_res=32,
        prefixes=["crop"],
    )
    synthesize(cfg, tmp_path / "fox")
    video = Database(tmp_path / "fox", "fox", resolution=32, prefixes=("crop",)).videos[0]
    assert video.array("mask")[..., 0].reshape(9, -1).sum(axis=1).min() > 50
    truth = _truth(tmp_path / "fox", "fox-0000")
    assert truth["bone_transforms"].shape[1] == 24
    # Textured: the fox's orange dominates its pixels.
    rgb = video.array("rgb").astype(np.float64)[video.array("mask")[..., 0]]
    assert rgb[:, 0].mean() > rgb[:, 2].mean() + 0.2
