"""True reanimation: one character's body driven by another video's motion, as exact ground truth.

Reanimation ``A-to-B`` (lab4d's ``--motion_id A --inst_id B``) shows instance B performing
video A: B's rest mesh, skeleton (bone lengths) and skin weights, posed by A's local joint
rotations, placed by A's root pose and seen by A's cameras. That is what a model that
separates morphology (per instance) from motion (per video) should render.

The root: B's skeleton is posed about its own root joint (the pelvis), which sits where A's
root joint sits (A's object-to-world pose); nothing re-grounds the body. B's feet therefore
float above A's floor, or sink below it, by the difference in leg length, exactly as a
reanimation with the model does, since lab4d's reanimation also moves the root by A's root pose.
"""

from __future__ import annotations

import numpy as np

from lab4d_core.data.synthetic.characters import Character
from lab4d_core.data.synthetic.renderer import Mesh, Renderer
from lab4d_core.geometry.transforms import apply_transform


def true_reanimation(
    body: Character,
    joint_so3: np.ndarray,
    object_to_world: np.ndarray,
    world2cam: np.ndarray,
    ks: np.ndarray,
    shape: tuple[int, int],
    renderer: Renderer,
    object_id: int = 1,
    progress=None,
) -> dict:
    """Ground truth of ``body`` performing a motion, per frame of the motion's video.

    Args:
        body: the character to drive (instance B).
        joint_so3: (N, J, 3) local joint rotations of the motion (video A), on a skeleton of the same tree.
        object_to_world: (N, 4, 4) root pose of video A.
        world2cam: (N, 4, 4) cameras of video A.
        ks: (4,) raw intrinsics fx, fy, cx, cy of video A.
        shape: (height, width) of A's raw frames.
        renderer: the synthesizer's renderer; the silhouettes are its object ids at pixel centres,
            the body alone (no scene occludes it).
        progress: optional tqdm, advanced once per frame.

    Returns:
        Arrays ``verts_cam`` (N, V, 3), ``joints_cam`` (N, J, 3), ``faces``, ``masks`` (N, H, W) bool,
        ``field2cam``, ``world2cam``, ``intrinsics`` (N, 4), ``joint_so3``, and ``meta``.
    """
    joint_so3 = np.asarray(joint_so3)
    if joint_so3.shape[-2] != body.skeleton.num_joints:
        raise ValueError(
            f"motion has {joint_so3.shape[-2]} joints, the body's skeleton {body.skeleton.name!r} has "
            f"{body.skeleton.num_joints}: reanimation needs one skeleton tree"
        )
    num_frames = len(joint_so3)
    skinning = body.skeleton.skinning_transforms(joint_so3)
    # The same sequence of operations as the video's own ground truth: A-to-A reproduces it to the bit.
    world_verts = apply_transform(object_to_world, body.pose(skinning)).astype(np.float32)
    joints_object = body.skeleton.forward_kinematics(joint_so3)[..., :3, 3]
    field2cam = world2cam @ object_to_world
    height, width = shape
    masks = np.zeros((num_frames, height, width), bool)
    for f in range(num_frames):
        uploaded = renderer.upload(
            Mesh(
                object_id,
                world_verts[f],
                body.faces,
                body.rest_verts,
                body.palette,
                body.pattern_scale,
                body.uv,
                body.texture,
                body.colors,
            )
        )
        masks[f] = renderer.render([uploaded], world2cam[f], ks, width, height).object_id == object_id
        uploaded.release()
        if progress is not None:
            progress.update(1)
    return {
        "verts_cam": apply_transform(world2cam, world_verts.astype(np.float64)).astype(np.float32),
        "joints_cam": apply_transform(field2cam, joints_object).astype(np.float32),
        "faces": body.faces.astype(np.int32),
        "masks": masks,
        "field2cam": field2cam.astype(np.float32),
        "world2cam": world2cam.astype(np.float32),
        "intrinsics": np.tile(np.asarray(ks, dtype=np.float64), (num_frames, 1)).astype(np.float32),
        "joint_so3": joint_so3.astype(np.float32),
        "meta": {
            "num_frames": num_frames,
            "skeleton": body.skeleton.name,
            "root": "B's root joint follows A's root pose; B's feet float or sink by the difference in leg length",
        },
    }
