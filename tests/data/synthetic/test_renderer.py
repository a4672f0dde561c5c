import numpy as np
import trimesh

from lab4d_core.data.synthetic.groundtruth import View, surface_points
from lab4d_core.data.synthetic.renderer import Mesh, Renderer
from lab4d_core.geometry.raycast import pixel_rays


def _sphere_frame(intrinsics, size=(80, 64), radius=0.5, distance=3.0):
    sphere = trimesh.creation.icosphere(subdivisions=6, radius=radius)
    verts = np.asarray(sphere.vertices, np.float32) + [0.0, 0.0, distance]
    faces = np.asarray(sphere.faces, np.int32)
    mesh = Mesh(1, verts, faces, verts, np.full((3, 3), 0.5, np.float32), 5.0)
    renderer = Renderer()
    uploaded = renderer.upload(mesh)
    frame = renderer.render([uploaded], np.eye(4), np.asarray(intrinsics), *size)
    uploaded.release()
    return frame, verts, faces


def test_a_sphere_renders_as_a_disc_of_the_analytic_radius_centred_on_the_principal_point():
    fx, fy, cx, cy = 40.0, 40.0, 37.3, 30.6  # off-grid centre: checks the pixel-centre convention
    frame, _, _ = _sphere_frame((fx, fy, cx, cy))
    mask = frame.object_id == 1
    expected_radius = fx * 0.5 / np.sqrt(3.0**2 - 0.5**2)
    assert abs(mask.sum() - np.pi * expected_radius**2) < 0.03 * np.pi * expected_radius**2
    ys, xs = np.nonzero(mask)
    assert abs(xs.mean() - cx) < 0.1 and abs(ys.mean() - cy) < 0.1  # row 0 is the top, integers are centres
    centre_depth = frame.depth[int(round(cy)), int(round(cx))]
    assert abs(centre_depth - 2.5) < 2e-3


def test_triangle_ids_and_barycentrics_reconstruct_the_visible_surface():
    intrinsics = (40.0, 40.0, 40.0, 32.0)
    frame, verts, faces = _sphere_frame(intrinsics)
    view = View(frame, np.eye(4), np.asarray(intrinsics), np.ones(frame.depth.shape, bool))
    points = surface_points(view, {1: (verts, faces)}, {})
    ys, xs = np.nonzero(frame.object_id == 1)
    expected = pixel_rays(np.stack([xs, ys], -1), intrinsics) * frame.depth[ys, xs][:, None]
    np.testing.assert_allclose(points[ys, xs], expected, atol=1e-4)
    assert np.isnan(points[frame.object_id == 0]).all()


def test_missing_opengl_gives_one_clear_error_saying_what_to_install(monkeypatch, tmp_path, capsys):
    import moderngl

    from lab4d_core.cli import main

    def no_egl(**kwargs):
        raise Exception("libEGL.so.1: cannot open shared object file")

    monkeypatch.setattr(moderngl, "create_context", no_egl)
    assert main(["synth", "--num-frames", "9", "--out", str(tmp_path / "d")]) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "libEGL.so.1" in message and "apt-get install libegl1" in message
    assert not (tmp_path / "d").exists() and list(tmp_path.iterdir()) == []
