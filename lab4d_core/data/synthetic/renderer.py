"""Headless OpenGL rasteriser (moderngl + EGL, Mesa llvmpipe on CPU) for synthetic data.

One pass gives colour, object id, camera-space depth, triangle id and
perspective-correct barycentrics per pixel. Everything else (mask, flow,
correspondences) is derived exactly from triangle id + barycentrics on the
numpy side, so the ground truth never depends on an estimate.

Pixel convention matches lab4d: integer array coordinates are pixel centres,
u = fx * x / z + cx, and row 0 is the top of the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab4d_core.errors import Lab4dError

_VERTEX_SHADER = """
#version 330
uniform mat4 world2cam;
uniform vec4 intrinsics;  // fx fy cx cy
uniform vec2 size;        // width height
uniform vec2 clip;        // near far
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_canonical;
in vec2 in_uv;
in vec2 in_bary;
in vec4 in_color;
out vec3 v_normal;
out vec3 v_canonical;
out vec2 v_uv;
out vec3 v_bary;
out float v_depth;
out vec4 v_color;
void main() {
    vec4 pc = world2cam * vec4(in_pos, 1.0);
    float z = pc.z;
    // Window coordinates put pixel centres at integer + 0.5; lab4d's at integers.
    float u = intrinsics.x * pc.x + (intrinsics.z + 0.5) * z;
    float v = intrinsics.y * pc.y + (intrinsics.w + 0.5) * z;
    float a = (clip.y + clip.x) / (clip.y - clip.x);
    float b = -2.0 * clip.y * clip.x / (clip.y - clip.x);
    gl_Position = vec4(2.0 * u / size.x - z, z - 2.0 * v / size.y, a * z + b, z);
    v_normal = in_normal;
    v_canonical = in_canonical;
    v_uv = in_uv;
    v_bary = vec3(in_bary, 1.0 - in_bary.x - in_bary.y);
    v_depth = z;
    v_color = in_color;
}
"""

_FRAGMENT_SHADER = """
#version 330
uniform int object_id;
uniform int textured;
uniform sampler2D albedo;
uniform vec3 palette[3];
uniform float pattern_scale;
uniform vec3 light_dir;
in vec3 v_normal;
in vec3 v_canonical;
in vec2 v_uv;
in vec3 v_bary;
in float v_depth;
in vec4 v_color;
layout(location = 0) out vec4 out_color;
layout(location = 1) out vec4 out_geometry;

float hash(vec3 p) {
    p = fract(p * 0.3183099 + 0.1);
    p *= 17.0;
    return fract(p.x * p.y * p.z * (p.x + p.y + p.z));
}
float noise(vec3 x) {
    vec3 i = floor(x);
    vec3 f = fract(x);
    f = f * f * (3.0 - 2.0 * f);
    return mix(mix(mix(hash(i), hash(i + vec3(1, 0, 0)), f.x),
                   mix(hash(i + vec3(0, 1, 0)), hash(i + vec3(1, 1, 0)), f.x), f.y),
               mix(mix(hash(i + vec3(0, 0, 1)), hash(i + vec3(1, 0, 1)), f.x),
                   mix(hash(i + vec3(0, 1, 1)), hash(i + vec3(1, 1, 1)), f.x), f.y), f.z);
}
float fbm(vec3 p) {
    float sum = 0.0, amp = 0.5;
    for (int k = 0; k < 4; k++) { sum += amp * noise(p); p *= 2.03; amp *= 0.5; }
    return sum;
}
void main() {
    vec3 color;
    if (textured == 1) {
        color = texture(albedo, v_uv).rgb;
    } else if (textured == 2) {
        // Per-vertex colours (skin, clothes, hair) with a grain of strength v_color.a.
        vec3 p = v_canonical * pattern_scale;
        color = v_color.rgb * (1.0 + v_color.a * (smoothstep(0.3, 0.7, fbm(p)) - 0.5));
        color *= 0.88 + 0.24 * noise(p * 5.0 + 3.0);
    } else {
        vec3 p = v_canonical * pattern_scale;
        color = mix(palette[0], palette[1], smoothstep(0.42, 0.58, fbm(p)));
        color = mix(color, palette[2], 0.5 * smoothstep(0.62, 0.75, noise(p * 4.0 + 7.0)));
        color *= 0.8 + 0.4 * noise(p * 11.0);
    }
    vec3 n = normalize(v_normal);
    float shade = 0.6 + 0.4 * abs(dot(n, light_dir));
    out_color = vec4(clamp(color * shade, 0.0, 1.0), float(object_id));
    // Triangle ids are stored + 1 so that the cleared value 0 means "nothing".
    out_geometry = vec4(v_depth, float(gl_PrimitiveID + 1), v_bary.x, v_bary.y);
}
"""


@dataclass
class Frame:
    """Per-pixel outputs of one render, row 0 at the top."""

    rgb: np.ndarray
    """(H, W, 3) float32 in [0, 1]."""
    object_id: np.ndarray
    """(H, W) int32: 0 nothing, otherwise the id given to the drawn mesh."""
    depth: np.ndarray
    """(H, W) float32 camera-space z, 0 where nothing was drawn."""
    triangle: np.ndarray
    """(H, W) int64 triangle index within the mesh of ``object_id``, -1 where nothing."""
    barycentric: np.ndarray
    """(H, W, 3) float32 perspective-correct barycentric coordinates."""


@dataclass
class Mesh:
    """A mesh to draw: vertex positions in world coordinates plus per-vertex attributes."""

    object_id: int
    verts: np.ndarray
    faces: np.ndarray
    canonical: np.ndarray
    """(V, 3) coordinates the procedural texture is attached to (rest pose for characters)."""
    palette: np.ndarray
    pattern_scale: float
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None
    colors: np.ndarray | None = None
    """(V, 4) per-vertex RGB in [0, 1] and the strength of the procedural grain over it (0: plain); used instead
    of the palette's pattern when present (an image ``texture`` takes precedence)."""


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals, (V, 3)."""
    tri = verts[faces]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(verts)
    for k in range(3):
        for axis in range(3):
            normals[:, axis] += np.bincount(faces[:, k], weights=face_normals[:, axis], minlength=len(verts))
    return normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)


def create_gl_context():
    """A headless OpenGL 3.3+ context, or a clear error saying what to install."""
    try:
        import moderngl

        return moderngl.create_context(standalone=True, backend="egl")
    except Exception as error:  # moderngl raises plain Exceptions for missing EGL/drivers
        raise Lab4dError(
            f"cannot create a headless OpenGL context ({error}). Synthetic rendering needs EGL with "
            "Mesa: on Debian/Ubuntu run `apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1`, "
            "or on a conda env `conda install -c conda-forge mesalib`."
        ) from error


class Renderer:
    """Draws meshes into float framebuffers; reuses GPU buffers across frames."""

    def __init__(self, near: float = 0.05, far: float = 100.0):
        self.ctx = create_gl_context()
        self.program = self.ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        self.clip = (near, far)
        self._framebuffers: dict[tuple[int, int], object] = {}
        self._textures: dict[int, object] = {}
        self.light_dir = np.array([0.3, -0.8, -0.5]) / np.linalg.norm([0.3, -0.8, -0.5])

    def _framebuffer(self, width: int, height: int):
        key = (width, height)
        if key not in self._framebuffers:
            color = self.ctx.texture((width, height), 4, dtype="f4")
            geometry = self.ctx.texture((width, height), 4, dtype="f4")
            depth = self.ctx.depth_renderbuffer((width, height))
            self._framebuffers[key] = self.ctx.framebuffer(color_attachments=[color, geometry], depth_attachment=depth)
        return self._framebuffers[key]

    def _texture(self, image: np.ndarray):
        key = id(image)
        if key not in self._textures:
            texture = self.ctx.texture(
                (image.shape[1], image.shape[0]), 3, np.ascontiguousarray(image, dtype=np.uint8).tobytes()
            )
            texture.build_mipmaps()
            self._textures[key] = texture
        return self._textures[key]

    def upload(self, mesh: Mesh) -> UploadedMesh:
        """Send a mesh to the GPU once, to render it from several cameras."""
        # Unshared vertices per triangle: barycentrics and gl_PrimitiveID need them.
        corners = mesh.faces.reshape(-1)
        normals = vertex_normals(mesh.verts.astype(np.float64), mesh.faces)
        uv = mesh.uv if mesh.uv is not None else np.zeros((len(mesh.verts), 2))
        colors = mesh.colors if mesh.colors is not None else np.zeros((len(mesh.verts), 4))
        bary = np.tile(np.array([[1, 0], [0, 1], [0, 0]], np.float32), (len(mesh.faces), 1))
        interleaved = np.concatenate(
            [mesh.verts[corners], normals[corners], mesh.canonical[corners], uv[corners], bary, colors[corners]],
            axis=1,
        ).astype(np.float32)
        buffer = self.ctx.buffer(interleaved.tobytes())
        vao = self.ctx.vertex_array(
            self.program,
            [
                (
                    buffer,
                    "3f 3f 3f 2f 2f 4f",
                    "in_pos",
                    "in_normal",
                    "in_canonical",
                    "in_uv",
                    "in_bary",
                    "in_color",
                )
            ],
        )
        return UploadedMesh(mesh, buffer, vao, len(corners))

    def render(
        self,
        meshes: list[UploadedMesh],
        world2cam: np.ndarray,
        intrinsics: np.ndarray,
        width: int,
        height: int,
        supersample: int = 1,
    ) -> Frame:
        """Render uploaded meshes from one camera: (4, 4) world-to-camera and (fx, fy, cx, cy).

        ``supersample`` (odd) s renders s x s samples per pixel: the colour is their mean, as a
        camera integrates light over a pixel, while object id, depth, triangle and barycentrics
        come from the centre sample, the pixel centre itself, so masks, depth and flow stay exact.
        """
        if supersample % 2 != 1:
            raise ValueError(f"supersample must be odd (its centre sample is the pixel centre), got {supersample}")
        if supersample > 1:
            s = supersample
            fx, fy, cx, cy = (float(k) for k in intrinsics)
            # Array pixel x covers fine pixels s*x .. s*x + s - 1, centred on s*x + (s - 1) / 2.
            fine = np.array([s * fx, s * fy, s * cx + (s - 1) / 2, s * cy + (s - 1) / 2])
            frame = self.render(meshes, world2cam, fine, s * width, s * height)
            centre = (slice(s // 2, None, s), slice(s // 2, None, s))
            return Frame(
                rgb=frame.rgb.reshape(height, s, width, s, 3).mean(axis=(1, 3)),
                object_id=frame.object_id[centre],
                depth=frame.depth[centre],
                triangle=frame.triangle[centre],
                barycentric=frame.barycentric[centre],
            )
        import moderngl

        fbo = self._framebuffer(width, height)
        fbo.use()
        self.ctx.enable(moderngl.DEPTH_TEST)
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        prog = self.program
        prog["world2cam"].write(np.asarray(world2cam, dtype=np.float32).T.tobytes())
        prog["intrinsics"].value = tuple(float(k) for k in intrinsics)
        prog["size"].value = (float(width), float(height))
        prog["clip"].value = self.clip
        prog["light_dir"].value = tuple(self.light_dir)
        for uploaded in meshes:
            self._draw(uploaded)
        color = self._read(fbo, 0, width, height)
        geometry = self._read(fbo, 1, width, height)
        object_id = np.rint(color[..., 3]).astype(np.int32)
        bary = np.concatenate([geometry[..., 2:4], 1.0 - geometry[..., 2:3] - geometry[..., 3:4]], axis=-1)
        return Frame(
            rgb=color[..., :3],
            object_id=object_id,
            depth=np.where(object_id > 0, geometry[..., 0], 0.0).astype(np.float32),
            triangle=np.rint(geometry[..., 1]).astype(np.int64) - 1,
            barycentric=np.where(object_id[..., None] > 0, bary, 0.0).astype(np.float32),
        )

    @staticmethod
    def _read(fbo, attachment: int, width: int, height: int) -> np.ndarray:
        data = np.frombuffer(fbo.read(attachment=attachment, components=4, dtype="f4"), dtype=np.float32)
        return np.flipud(data.reshape(height, width, 4))

    def _draw(self, uploaded: UploadedMesh) -> None:
        mesh = uploaded.mesh
        self.program["object_id"].value = mesh.object_id
        self.program["textured"].value = 1 if mesh.texture is not None else 2 if mesh.colors is not None else 0
        self.program["palette"].write(np.asarray(mesh.palette, dtype=np.float32).tobytes())
        self.program["pattern_scale"].value = float(mesh.pattern_scale)
        if mesh.texture is not None:
            self._texture(mesh.texture).use(location=0)
            self.program["albedo"].value = 0
        uploaded.vao.render(vertices=uploaded.count)


@dataclass
class UploadedMesh:
    """GPU buffers of a mesh; release() them when the mesh is no longer drawn."""

    mesh: Mesh
    buffer: object
    vao: object
    count: int

    def release(self) -> None:
        self.vao.release()
        self.buffer.release()
