"""True reanimation: B's body driven by A's joint rotations and root pose, seen by A's cameras."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lab4d_core.config import SynthConfig, from_dict
from lab4d_core.data.database import Database
from lab4d_core.data.synthetic.synthesize import synthesize
from lab4d_core.errors import Lab4dError
from lab4d_core.geometry.skeletons import Skeleton
from lab4d_core.geometry.transforms import apply_transform

# Four humans of different morphology; video 3 is the longest.
PEOPLE = SynthConfig(
    character="human",
    single_inst=False,
    num_videos=4,
    num_frames=[9, 9, 9, 17],
    resolution=48,
    train_res=32,
    prefixes=["crop"],
    supersample=1,
    voxel=0.03,
    reanimate=[[3, 0], [0, 3], [1, 1]],
)


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    root = tmp_path_factory.mktemp("reanimate") / "people"
    synthesize(PEOPLE, root)
    return root


def _load(folder) -> dict:
    out = {path.stem: np.load(path) for path in folder.glob("*.npy")}
    out["meta"] = json.loads((folder / "meta.json").read_text())
    return out


def _skeleton(folder) -> Skeleton:
    info = json.loads((folder / "skeleton.json").read_text())
    rest = np.load(folder / "rest_joints.npy").astype(np.float64)
    return Skeleton(info["name"], tuple(info["joint_names"]), tuple(info["parents"]), rest)


def test_reanimating_a_video_onto_its_own_instance_reproduces_its_ground_truth(people):
    own = _load(people / "GroundTruth" / "people-0001")
    again = _load(people / "GroundTruth" / "reanimate" / "1-to-1")
    np.testing.assert_allclose(again["verts_cam"], own["verts_cam"], atol=1e-6)
    for key in ("faces", "field2cam", "world2cam", "intrinsics", "joint_so3"):
        np.testing.assert_array_equal(again[key], own[key])
    # The same renderer with the same cameras: the silhouettes are the video's own raw masks.
    video = Database(people, "people", resolution=32, prefixes=("crop",)).videos[1]
    raw = np.stack([video.raw_mask(f) > 0 for f in range(video.num_frames)])
    assert again["masks"].dtype == bool and again["masks"].shape == raw.shape == (9, 48, 48)
    assert (again["masks"] != raw).mean() < 1e-3 and raw.sum() > 100


@pytest.mark.parametrize("pair", [(3, 0), (0, 3)])
def test_a_reanimation_poses_b_by_a_joint_rotations_and_root_for_every_frame_of_a(people, pair):
    a, b = pair
    motion = _load(people / "GroundTruth" / f"people-000{a}")
    body_folder = people / "GroundTruth" / f"people-000{b}"
    body = _load(body_folder)
    result = _load(people / "GroundTruth" / "reanimate" / f"{a}-to-{b}")
    n = len(motion["joint_so3"])
    assert n == (17 if a == 3 else 9)
    meta = result["meta"]
    assert (meta["motion_id"], meta["inst_id"], meta["num_frames"], meta["instance"]) == (a, b, n, b)
    assert result["masks"].shape == (n, 48, 48) and result["masks"].reshape(n, -1).any(axis=1).all()
    video = Database(people, "people", resolution=32, prefixes=("crop",)).videos[a]
    assert (result["masks"] != np.stack([video.raw_mask(f) > 0 for f in range(n)])).any()  # another body
    np.testing.assert_array_equal(result["joint_so3"], motion["joint_so3"])
    np.testing.assert_array_equal(result["field2cam"], motion["field2cam"])
    np.testing.assert_array_equal(result["intrinsics"], motion["intrinsics"])
    np.testing.assert_array_equal(result["faces"], body["faces"])

    # B's own skeleton (bone lengths) under A's rotations, placed by A's root pose.
    skeleton = _skeleton(body_folder)
    np.testing.assert_allclose(skeleton.bone_lengths(), body["bone_lengths"], atol=1e-6)
    field2cam = motion["field2cam"].astype(np.float64)
    joints = skeleton.forward_kinematics(motion["joint_so3"].astype(np.float64))[..., :3, 3]
    np.testing.assert_allclose(result["joints_cam"], apply_transform(field2cam, joints), atol=1e-4)
    skinning = skeleton.skinning_transforms(motion["joint_so3"].astype(np.float64))
    blended = np.einsum("vj,njab->nvab", body["skin_weights"], skinning)
    posed = np.einsum("nvab,vb->nva", blended[..., :3, :3], body["rest_verts"]) + blended[..., :3, 3]
    np.testing.assert_allclose(result["verts_cam"], apply_transform(field2cam, posed), atol=1e-4)

    # It is B's body, not A's: another mesh and other limb lengths, posed alike.
    assert result["verts_cam"].shape[1] == len(body["rest_verts"]) != len(motion["verts_cam"][0])
    assert np.abs(body["bone_lengths"] - motion["bone_lengths"]).max() > 0.03


def test_reanimation_needs_procedural_characters_and_valid_videos():
    with pytest.raises(Lab4dError, match="procedural characters only"):
        from_dict(SynthConfig, {"character": "asset", "asset": "fox.glb", "reanimate": [[0, 1]]})
    with pytest.raises(Lab4dError, match=r"\[0, 2\] names a video outside 0..1"):
        from_dict(SynthConfig, {"num_videos": 2, "reanimate": [[0, 2]]})
    with pytest.raises(Lab4dError, match="not a pair"):
        from_dict(SynthConfig, {"num_videos": 2, "reanimate": [[0, 1, 1]]})
