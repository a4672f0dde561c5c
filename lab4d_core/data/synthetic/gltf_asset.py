"""Skinned, animated glTF 2.0 binary assets (.glb) as synthetic characters.

Reads the first skinned mesh primitive, its skin and a named animation, and
converts everything to our object coordinates (OpenCV axes: glTF's y-up,
z-forward becomes y-down, z-forward) scaled to a target size.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from lab4d_core.data.synthetic.characters import Character
from lab4d_core.errors import Lab4dError
from lab4d_core.geometry.skeletons import Skeleton
from lab4d_core.geometry.transforms import make_transform, so3_log

_COMPONENT = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_GLTF_TO_OBJECT = np.diag([-1.0, -1.0, 1.0])  # 180 degrees about z: y up -> y down, keeps +z forward


def read_glb(path: Path) -> tuple[dict, bytes]:
    path = Path(path)
    if not path.is_file():
        raise Lab4dError(f"{path}: asset not found; pass --asset PATH to an existing .glb file")
    data = path.read_bytes()
    if len(data) < 20 or data[:4] != b"glTF":
        raise Lab4dError(
            f"{path}: not a binary glTF (.glb) file; convert it with e.g. `npx gltf-pipeline -i in.gltf -o out.glb`"
        )
    json_length, _ = struct.unpack_from("<II", data, 12)
    doc = json.loads(data[20 : 20 + json_length])
    offset = 20 + json_length
    binary = b""
    if offset + 8 <= len(data):
        bin_length, _ = struct.unpack_from("<II", data, offset)
        binary = data[offset + 8 : offset + 8 + bin_length]
    return doc, binary


def _accessor(doc: dict, binary: bytes, index: int) -> np.ndarray:
    acc = doc["accessors"][index]
    view = doc["bufferViews"][acc["bufferView"]]
    dtype = np.dtype(_COMPONENT[acc["componentType"]])
    width = _WIDTH[acc["type"]]
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    stride = view.get("byteStride", dtype.itemsize * width)
    rows = np.ndarray((acc["count"], width), dtype=dtype, buffer=binary, offset=start, strides=(stride, dtype.itemsize))
    out = rows.astype(np.float64 if dtype == np.float32 else dtype)
    if acc.get("normalized"):
        out = out / np.iinfo(dtype).max
    return out


def _quat_to_matrix(q: np.ndarray) -> np.ndarray:
    x, y, z, w = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def _slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin = np.sin(theta)
    linear = sin < 1e-6
    wa = np.where(linear, 1 - t, np.sin((1 - t) * theta) / np.where(linear, 1, sin))
    wb = np.where(linear, t, np.sin(t * theta) / np.where(linear, 1, sin))
    return wa * a + wb * b


def _sample_channel(
    times: np.ndarray, keys: np.ndarray, values: np.ndarray, path: str, interpolation: str
) -> np.ndarray:
    if interpolation == "CUBICSPLINE":
        values = values[1::3]  # keep the values, drop in/out tangents
    index = np.clip(np.searchsorted(keys, times, side="right") - 1, 0, len(keys) - 1)
    following = np.minimum(index + 1, len(keys) - 1)
    span = np.maximum(keys[following] - keys[index], 1e-12)
    t = np.clip((times - keys[index]) / span, 0.0, 1.0)[:, None]
    if interpolation == "STEP":
        return values[index]
    if path == "rotation":
        return _slerp(values[index], values[following], t)
    return values[index] + t * (values[following] - values[index])


@dataclass
class AnimatedAsset:
    """A glTF character plus one of its animations, in object coordinates."""

    character: Character
    joint_nodes: list[int]
    duration: float
    _doc: dict
    _binary: bytes
    _animation: dict
    _to_object: np.ndarray
    _inverse_bind: np.ndarray

    def _local_matrices(self, times: np.ndarray) -> np.ndarray:
        nodes = self._doc["nodes"]
        trs = []
        for node in nodes:
            if "matrix" in node:
                trs.append(None)
                continue
            trs.append(
                {
                    "translation": np.tile(np.asarray(node.get("translation", [0, 0, 0]), float), (len(times), 1)),
                    "rotation": np.tile(np.asarray(node.get("rotation", [0, 0, 0, 1]), float), (len(times), 1)),
                    "scale": np.tile(np.asarray(node.get("scale", [1, 1, 1]), float), (len(times), 1)),
                }
            )
        for channel in self._animation["channels"]:
            target = channel["target"]
            if trs[target["node"]] is None or target["path"] not in ("translation", "rotation", "scale"):
                continue
            sampler = self._animation["samplers"][channel["sampler"]]
            keys = _accessor(self._doc, self._binary, sampler["input"])[:, 0]
            values = _accessor(self._doc, self._binary, sampler["output"])
            trs[target["node"]][target["path"]] = _sample_channel(
                times, keys, values, target["path"], sampler.get("interpolation", "LINEAR")
            )
        local = np.empty((len(nodes), len(times), 4, 4))
        for n, node in enumerate(nodes):
            if trs[n] is None:
                local[n] = np.asarray(node["matrix"], float).reshape(4, 4).T
                continue
            rs = _quat_to_matrix(trs[n]["rotation"]) * trs[n]["scale"][:, None, :]
            local[n] = make_transform(rs, trs[n]["translation"])
        return local

    def _global_matrices(self, times: np.ndarray) -> np.ndarray:
        local = self._local_matrices(times)
        parents = _node_parents(self._doc)
        world = np.empty_like(local)
        for n in _topological_order(parents):
            world[n] = local[n] if parents[n] < 0 else world[parents[n]] @ local[n]
        return world

    def skinning_transforms(self, times: np.ndarray) -> np.ndarray:
        """(N, J, 4, 4) transforms taking rest-pose object points to posed object points."""
        times = np.mod(times, max(self.duration, 1e-6))
        world = self._global_matrices(times)[self.joint_nodes]  # (J, N, 4, 4)
        to_obj = self._to_object
        transforms = to_obj @ world @ self._inverse_bind[:, None] @ np.linalg.inv(to_obj)
        return np.swapaxes(transforms, 0, 1)

    def joint_so3(self, times: np.ndarray) -> np.ndarray:
        """(N, J, 3) rotation of each joint relative to its parent, minus the bind pose's."""
        transforms = self.skinning_transforms(times)
        parents = np.asarray(self.character.skeleton.parents)
        relative = transforms.copy()
        has_parent = parents >= 0
        relative[:, has_parent] = np.linalg.inv(transforms[:, parents[has_parent]]) @ transforms[:, has_parent]
        return so3_log(_orthonormal(relative[..., :3, :3]))


def _orthonormal(matrices: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(matrices)
    return u @ vt


def _node_parents(doc: dict) -> np.ndarray:
    parents = np.full(len(doc["nodes"]), -1)
    for n, node in enumerate(doc["nodes"]):
        for child in node.get("children", []):
            parents[child] = n
    return parents


def _joint_parents(joint_nodes: list[int], node_parents: np.ndarray) -> list[int]:
    """Parent of each joint among the joints: the nearest ancestor node that is a joint."""
    joint_index = {node: j for j, node in enumerate(joint_nodes)}
    parents = []
    for node in joint_nodes:
        p = node_parents[node]
        while p >= 0 and p not in joint_index:
            p = node_parents[p]
        parents.append(joint_index.get(p, -1))
    return parents


def _topological_order(parents) -> list[int]:
    """Indices sorted so that every parent comes before its children."""
    parents = np.asarray(parents)
    depth = np.zeros(len(parents), int)
    for n in range(len(parents)):
        p = parents[n]
        while p >= 0:
            depth[n] += 1
            p = parents[p]
    return [int(k) for k in np.argsort(depth, kind="stable")]


def load_asset(path: Path, animation: str | None = None, target_size: float = 1.0) -> AnimatedAsset:
    """Load a skinned .glb and one of its animations by name (default: its first)."""
    path = Path(path)
    doc, binary = read_glb(path)
    names = [a.get("name", f"animation{k}") for k, a in enumerate(doc.get("animations", []))]
    animation = animation if animation is not None else (names[0] if names else None)
    if animation not in names:
        raise Lab4dError(f"{path}: no animation named {animation!r}; the asset has {names or 'none'}")
    mesh_node = next((n for n, node in enumerate(doc["nodes"]) if "skin" in node and "mesh" in node), None)
    if mesh_node is None:
        raise Lab4dError(f"{path}: no skinned mesh (a node with both 'mesh' and 'skin'); export the rig with the mesh")
    skin = doc["skins"][doc["nodes"][mesh_node]["skin"]]
    primitive = doc["meshes"][doc["nodes"][mesh_node]["mesh"]]["primitives"][0]
    attributes = primitive["attributes"]
    positions = _accessor(doc, binary, attributes["POSITION"])
    if "indices" in primitive:
        faces = _accessor(doc, binary, primitive["indices"]).reshape(-1, 3).astype(np.int32)
    else:
        faces = np.arange(len(positions), dtype=np.int32).reshape(-1, 3)
    joints = _accessor(doc, binary, attributes["JOINTS_0"]).astype(np.int64)
    weights = _accessor(doc, binary, attributes["WEIGHTS_0"]).astype(np.float64)
    weights = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    node_parents = _node_parents(doc)
    # Our skeletons list parents before children; glTF skins may not, so reorder.
    skin_joints = list(skin["joints"])
    order = [skin_joints[k] for k in _topological_order(_joint_parents(skin_joints, node_parents))]
    joint_nodes = order
    permutation = np.asarray([skin_joints.index(node) for node in joint_nodes])
    inverse_bind = _accessor(doc, binary, skin["inverseBindMatrices"]).reshape(-1, 4, 4).transpose(0, 2, 1)[permutation]
    parents = _joint_parents(joint_nodes, node_parents)

    lo, hi = positions.min(axis=0), positions.max(axis=0)
    scale = target_size / float((hi - lo).max())
    centre = (lo + hi) / 2
    to_object = make_transform(_GLTF_TO_OBJECT * scale, -(_GLTF_TO_OBJECT * scale) @ centre)

    rest_verts = positions @ to_object[:3, :3].T + to_object[:3, 3]
    new_index = np.argsort(permutation)  # skin joint index -> our joint index
    dense_weights = np.zeros((len(positions), len(joint_nodes)))
    np.add.at(dense_weights, (np.arange(len(positions))[:, None], new_index[joints]), weights)

    bind_frames = to_object @ np.linalg.inv(inverse_bind)
    skeleton = Skeleton(
        name=path.stem,
        joint_names=tuple(doc["nodes"][n].get("name", f"joint{n}") for n in joint_nodes),
        parents=tuple(parents),
        rest_joints=bind_frames[:, :3, 3],
    )
    character = Character(
        skeleton=skeleton,
        rest_verts=rest_verts.astype(np.float32),
        faces=faces,
        skin_weights=dense_weights.astype(np.float32),
        palette=np.full((3, 3), 0.5, np.float32),
        uv=_accessor(doc, binary, attributes["TEXCOORD_0"]).astype(np.float32) if "TEXCOORD_0" in attributes else None,
        texture=_base_color_texture(doc, binary, primitive),
        meta={"kind": "asset", "asset": str(path), "animation": animation},
    )
    anim = doc["animations"][names.index(animation)]
    duration = max(float(_accessor(doc, binary, s["input"]).max()) for s in anim["samplers"])
    return AnimatedAsset(character, joint_nodes, duration, doc, binary, anim, to_object, inverse_bind)


def _base_color_texture(doc: dict, binary: bytes, primitive: dict) -> np.ndarray | None:
    material = doc.get("materials", [{}])[primitive.get("material", 0)] if doc.get("materials") else {}
    info = material.get("pbrMetallicRoughness", {}).get("baseColorTexture")
    if info is None:
        return None
    image = doc["images"][doc["textures"][info["index"]]["source"]]
    if "bufferView" not in image:
        return None
    view = doc["bufferViews"][image["bufferView"]]
    start = view.get("byteOffset", 0)
    data = binary[start : start + view["byteLength"]]
    return np.asarray(Image.open(BytesIO(data)).convert("RGB"))
