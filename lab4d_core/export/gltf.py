"""A skinned, animated glTF 2.0 binary (.glb) of a reconstruction, and a reader that poses it.

The file holds the rest mesh with vertex colours, a skin with one joint per bone (the top 4
skinning weights per vertex, renormalised), and one animation: per frame, the object's root
motion on an ``object`` node and each bone's pose (``t_articulation``) on its joint, whose inverse
bind matrix is the bone's rest pose. A skeleton's joints are nested as its tree (named as its joints,
each a child of its parent): the root joint moves, every other joint only turns, by ``joint_so3``, so
the file opens as a rigged character. The root motion is ``field2cam`` (object -> camera) levelled:
turned, about the camera, by the smallest rotation that takes the object's up axis to the
camera's up (:func:`~lab4d_core.geometry.up.levelling_rotations`), so a camera filming from above
does not tilt the object. A static parent node turns these camera coordinates (OpenCV: y down,
z forward) into glTF's (y up, z backward), so the object's up axis is glTF's +Y in every frame and
viewers show it standing upright. glTF skins blend linearly; the model blends dual quaternions,
which the exported per-frame meshes (camera coordinates) follow, so :func:`pose_glb` and
:func:`scene_to_camera` measure how close the two stay.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from lab4d_core.export.motion import Motion
from lab4d_core.geometry.transforms import make_transform
from lab4d_core.geometry.up import levelling_rotations
from lab4d_core.utils.io import atomic_write

INFLUENCES = 4
"""Joints per vertex in the skin (glTF's JOINTS_0 / WEIGHTS_0 hold four)."""
OPENCV_TO_GLTF = np.diag([1.0, -1.0, -1.0, 1.0])
_FLOAT, _USHORT, _UINT = 5126, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_COMPONENTS = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def top_weights(weights: np.ndarray, count: int = INFLUENCES) -> tuple[np.ndarray, np.ndarray]:
    """(V, count) joint indices and weights: the largest ``count`` of (V, B) weights, summing to 1."""
    count = min(count, weights.shape[1])
    joints = np.argsort(-weights, axis=1)[:, :count]
    kept = np.take_along_axis(weights, joints, axis=1).astype(np.float64)
    kept /= np.maximum(kept.sum(1, keepdims=True), 1e-12)
    if count < INFLUENCES:
        pad = INFLUENCES - count
        joints = np.pad(joints, ((0, 0), (0, pad)))
        kept = np.pad(kept, ((0, 0), (0, pad)))
    return joints.astype(np.uint16), kept.astype(np.float32)


class _Builder:
    """Accumulates binary data and the accessors / buffer views that describe it."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add(self, array: np.ndarray, kind: str, target: int | None = None, bounds: bool = False) -> int:
        component = {np.float32: _FLOAT, np.uint16: _USHORT, np.uint32: _UINT}[array.dtype.type]
        data = np.ascontiguousarray(array).tobytes()
        self.blob.extend(b"\0" * (-len(self.blob) % 4))
        view = {"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.views.append(view)
        self.blob.extend(data)
        accessor = {
            "bufferView": len(self.views) - 1,
            "componentType": component,
            "count": int(array.shape[0]),
            "type": kind,
        }
        if bounds:
            flat = array.reshape(array.shape[0], -1)
            accessor["min"] = flat.min(0).astype(float).tolist()
            accessor["max"] = flat.max(0).astype(float).tolist()
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def srgb_to_linear(colors: np.ndarray) -> np.ndarray:
    """sRGB values (the field's, as in the videos) -> linear ones, which glTF's COLOR_0 holds;
    viewers convert back for display, so written as is the colours would show washed out."""
    return np.where(colors <= 0.04045, colors / 12.92, ((colors + 0.055) / 1.055) ** 2.4)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit normals: the area-weighted mean of the adjacent faces' normals, along their winding
    (an isolated vertex gets +z, since glTF requires unit length)."""
    corners = vertices[faces].astype(np.float64)
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])  # length = 2 area
    normals = np.zeros((len(vertices), 3))
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.where(length > 0, normals / np.maximum(length, 1e-300), [0.0, 0.0, 1.0])


def _trs(matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 4, 4) rigid transforms -> translations (..., 3) and unit quaternions (..., 4) in glTF's xyzw."""
    flat = matrices.reshape(-1, 4, 4)
    quats = Rotation.from_matrix(flat[:, :3, :3]).as_quat()
    # Consecutive keys on the same hemisphere, so linear interpolation takes the short way.
    for i in range(1, len(quats)):
        if np.dot(quats[i], quats[i - 1]) < 0:
            quats[i] = -quats[i]
    return flat[:, :3, 3].reshape(*matrices.shape[:-2], 3), quats.reshape(*matrices.shape[:-2], 4)


def root_motion(motion: Motion) -> np.ndarray:
    """(T, 4, 4) the ``object`` node's transform per frame: ``field2cam`` followed by the levelling
    rotation that takes the object's up axis to the camera's up (-y)."""
    levels = levelling_rotations(motion.field2cam[:, :3, :3], motion.up_axis)
    return make_transform(levels) @ motion.field2cam


def scene_to_camera(points: np.ndarray, motion: Motion) -> np.ndarray:
    """(T, V, 3) points of the glb's scene at each frame (e.g. :func:`pose_glb`'s) -> the camera
    coordinates of that frame, where the exported per-frame meshes are: undoes the axis flip and
    the levelling."""
    levels = levelling_rotations(motion.field2cam[:, :3, :3], motion.up_axis)
    # The flip is its own inverse; row vectors times L are L^T (the inverse levelling) applied.
    return (points @ OPENCV_TO_GLTF[:3, :3]) @ levels


def write_glb(
    path: Path, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, weights: np.ndarray, motion: Motion
) -> None:
    """Write the skinned, animated .glb of canonical ``vertices`` (V, 3), ``faces`` (F, 3), vertex
    ``colors`` (V, 3) in [0, 1], skinning ``weights`` (V, B) and ``motion`` (T frames, B bones)."""
    num_bones = motion.t_articulation_rest.shape[0]
    if weights.shape != (len(vertices), num_bones):
        raise ValueError(f"weights {weights.shape} do not match {len(vertices)} vertices x {num_bones} bones")
    joints, joint_weights = top_weights(weights)
    builder = _Builder()
    attributes = {
        "POSITION": builder.add(vertices.astype(np.float32), "VEC3", _ARRAY_BUFFER, bounds=True),
        # Smooth shading in viewers; without normals they shade every face flat.
        "NORMAL": builder.add(vertex_normals(vertices, faces).astype(np.float32), "VEC3", _ARRAY_BUFFER),
        "COLOR_0": builder.add(srgb_to_linear(np.clip(colors, 0, 1)).astype(np.float32), "VEC3", _ARRAY_BUFFER),
        "JOINTS_0": builder.add(joints, "VEC4", _ARRAY_BUFFER),
        "WEIGHTS_0": builder.add(joint_weights, "VEC4", _ARRAY_BUFFER),
    }
    indices = builder.add(faces.astype(np.uint32).reshape(-1), "SCALAR", _ELEMENT_ARRAY_BUFFER, bounds=True)
    inverse_bind = np.linalg.inv(motion.t_articulation_rest.astype(np.float64))
    inverse_bind[:, 3] = [0.0, 0.0, 0.0, 1.0]  # exactly affine, as the validator checks
    # glTF matrices are column-major.
    bind_accessor = builder.add(inverse_bind.transpose(0, 2, 1).reshape(num_bones, 16).astype(np.float32), "MAT4")

    times = (np.arange(len(motion.frame_ids)) / motion.fps).astype(np.float32)
    time_accessor = builder.add(times, "SCALAR", bounds=True)
    samplers, channels = [], []

    def animate(node: int, matrices: np.ndarray) -> None:
        translation, rotation = _trs(matrices)
        for path_name, values, kind in (("translation", translation, "VEC3"), ("rotation", rotation, "VEC4")):
            output = builder.add(values.astype(np.float32), kind)
            samplers.append({"input": time_accessor, "output": output, "interpolation": "LINEAR"})
            channels.append({"sampler": len(samplers) - 1, "target": {"node": node, "path": path_name}})

    object_node, first_joint = 2, 3
    root = root_motion(motion)
    animate(object_node, root)
    local = joint_local_transforms(motion)
    parents = motion.parents if motion.parents is not None else (-1,) * num_bones
    for b in range(num_bones):
        if parents[b] < 0:
            animate(first_joint + b, local[:, b])
        else:  # a joint of a tree keeps its offset from its parent: only its rotation moves
            translation, rotation = _trs(local[:, b])
            output = builder.add(rotation.astype(np.float32), "VEC4")
            samplers.append({"input": time_accessor, "output": output, "interpolation": "LINEAR"})
            channels.append({"sampler": len(samplers) - 1, "target": {"node": first_joint + b, "path": "rotation"}})
    rest_translation, rest_rotation = _trs(local[0])
    root_translation, root_rotation = _trs(root[:1])
    names = motion.joint_names or tuple(f"bone_{b:02d}" for b in range(num_bones))
    nodes = [
        {"name": "opencv_to_gltf", "rotation": [1.0, 0.0, 0.0, 0.0], "children": [object_node]},
        {"name": "mesh", "mesh": 0, "skin": 0},
        {
            "name": "object",
            "translation": root_translation[0].tolist(),
            "rotation": root_rotation[0].tolist(),
            "children": [first_joint + b for b in range(num_bones) if parents[b] < 0],
        },
        *[
            {
                "name": names[b],
                "translation": rest_translation[b].tolist(),
                "rotation": rest_rotation[b].tolist(),
                **_children(parents, b, first_joint),
            }
            for b in range(num_bones)
        ],
    ]
    doc = {
        "asset": {"version": "2.0", "generator": "lab4d-workflow"},
        "scene": 0,
        "scenes": [{"nodes": [0, 1]}],
        "nodes": nodes,
        "meshes": [
            {"name": "reconstruction", "primitives": [{"attributes": attributes, "indices": indices, "material": 0}]}
        ],
        "materials": [
            {
                "name": "vertex_colors",
                "pbrMetallicRoughness": {"metallicFactor": 0.0, "roughnessFactor": 1.0},
                "doubleSided": True,
            }
        ],
        "skins": [
            {
                "joints": list(range(first_joint, first_joint + num_bones)),
                "inverseBindMatrices": bind_accessor,
                "skeleton": object_node,
            }
        ],
        "animations": [{"name": "motion", "samplers": samplers, "channels": channels}],
        "accessors": builder.accessors,
        "bufferViews": builder.views,
        "buffers": [{"byteLength": len(builder.blob)}],
    }
    _write(path, doc, bytes(builder.blob))


def joint_local_transforms(motion: Motion) -> np.ndarray:
    """(T, B, 4, 4) each joint node's transform relative to its parent joint (the ``object`` node for roots):
    ``t_articulation`` itself for bones without a hierarchy; for a skeleton, the parent's frame inverted
    times the joint's, i.e. the joint's offset and its local rotation (``joint_so3``)."""
    frames = motion.t_articulation.astype(np.float64)
    if motion.parents is None:
        return frames
    local = frames.copy()
    for b, parent in enumerate(motion.parents):
        if parent >= 0:
            local[:, b] = np.linalg.inv(frames[:, parent]) @ frames[:, b]
    return local


def _children(parents: Sequence[int], joint: int, first_joint: int) -> dict:
    children = [first_joint + c for c, p in enumerate(parents) if p == joint]
    return {"children": children} if children else {}


def _write(path: Path, doc: dict, blob: bytes) -> None:
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    blob += b"\0" * (-len(blob) % 4)
    total = 12 + 8 + len(text) + 8 + len(blob)
    data = struct.pack("<4sII", b"glTF", 2, total)
    data += struct.pack("<I4s", len(text), b"JSON") + text + struct.pack("<I4s", len(blob), b"BIN\0") + blob
    atomic_write(path, lambda handle: handle.write(data))


def read_glb(path: Path) -> tuple[dict, bytes]:
    """The JSON document and binary chunk of a .glb."""
    data = Path(path).read_bytes()
    magic, version, _ = struct.unpack_from("<4sII", data)
    if magic != b"glTF" or version != 2:
        raise ValueError(f"{path} is not a glTF 2.0 binary")
    length, _ = struct.unpack_from("<I4s", data, 12)
    doc = json.loads(data[20 : 20 + length])
    blob_length, _ = struct.unpack_from("<I4s", data, 20 + length)
    return doc, data[28 + length : 28 + length + blob_length]


def _accessor(doc: dict, blob: bytes, index: int) -> np.ndarray:
    accessor = doc["accessors"][index]
    view = doc["bufferViews"][accessor["bufferView"]]
    dtype = {_FLOAT: np.float32, _USHORT: np.uint16, _UINT: np.uint32}[accessor["componentType"]]
    width = _COMPONENTS[accessor["type"]]
    start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    array = np.frombuffer(blob, dtype=dtype, count=accessor["count"] * width, offset=start)
    return array.reshape(accessor["count"], width) if width > 1 else array


def _matrix(translation, rotation) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = Rotation.from_quat(np.asarray(rotation, dtype=np.float64)).as_matrix()
    out[:3, 3] = translation
    return out


def _world(node: int, parent: dict[int, int], local: list[np.ndarray]) -> np.ndarray:
    """A node's transform in the scene: its ancestors' local transforms composed with its own."""
    return _world(parent[node], parent, local) @ local[node] if node in parent else local[node]


def pose_glb(path: Path, keys: Sequence[int]) -> np.ndarray:
    """(K, V, 3) skinned vertex positions at animation keys ``keys``, in the file's scene
    coordinates, computed from the file alone as a glTF viewer does (linear blend skinning)."""
    doc, blob = read_glb(path)
    nodes, animation = doc["nodes"], doc["animations"][0]
    parent = {child: i for i, n in enumerate(nodes) for child in n.get("children", [])}
    tracks = [
        (
            channel["target"]["node"],
            channel["target"]["path"],
            _accessor(doc, blob, animation["samplers"][channel["sampler"]]["output"]),
        )
        for channel in animation["channels"]
    ]
    skin = doc["skins"][0]
    inverse_bind = _accessor(doc, blob, skin["inverseBindMatrices"]).reshape(-1, 4, 4).transpose(0, 2, 1)
    primitive = doc["meshes"][0]["primitives"][0]
    positions = _accessor(doc, blob, primitive["attributes"]["POSITION"]).astype(np.float64)
    joints = _accessor(doc, blob, primitive["attributes"]["JOINTS_0"]).astype(np.int64)
    weights = _accessor(doc, blob, primitive["attributes"]["WEIGHTS_0"]).astype(np.float64)
    posed = []
    for key in keys:
        trs = [
            {"translation": n.get("translation", [0, 0, 0]), "rotation": n.get("rotation", [0, 0, 0, 1])} for n in nodes
        ]
        for node, path_name, values in tracks:
            trs[node][path_name] = values[key]
        local = [_matrix(t["translation"], t["rotation"]) for t in trs]
        world = [_world(j, parent, local) for j in skin["joints"]]
        joint_matrices = np.stack([world[k] @ inverse_bind[k] for k in range(len(world))])
        blended = np.einsum("vk,vkij->vij", weights, joint_matrices[joints])
        posed.append(np.einsum("vij,vj->vi", blended[:, :3, :3], positions) + blended[:, :3, 3])
    return np.stack(posed)
