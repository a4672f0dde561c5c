import numpy as np
import pytest
import trimesh

from lab4d_core.data.synthetic.groundtruth import View, surface_points
from lab4d_core.data.synthetic.renderer import Mesh, Renderer
from lab4d_core.geometry.raycast import pixel_rays


def _sphere_frame(intrinsics, size=(80, 64), radius=0.5, distance=3.0, supersample=1, palette=None):
    sphere = trimesh.creation.icosphere(subdivisions=6, radius=radius)
    verts = np.asarray(sphere.vertices, np.float32) + [0.0, 0.0, distance]
    faces = np.asarray(sphere.faces, np.int32)
    palette = np.full((3, 3), 0.5, np.float32) if palette is None else palette
    mesh = Mesh(1, verts, faces, verts, palette, 5.0)
    renderer = Renderer()
    uploaded = renderer.upload(mesh)
    frame = renderer.render([uploaded], np.eye(4), np.asarray(intrinsics), *size, supersample=supersample)
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


def test_supersampled_colour_is_the_pixel_mean_of_a_finer_render_and_geometry_its_centre_sample():
    # A textured sphere (three colours) seen off-centre: edges and texture both differ between samples.
    palette = np.array([[0.9, 0.2, 0.1], [0.1, 0.8, 0.3], [0.2, 0.3, 0.9]], np.float32)
    fx, fy, cx, cy = 40.0, 36.0, 37.3, 30.6
    frame, _, _ = _sphere_frame((fx, fy, cx, cy), supersample=3, palette=palette)
    # Array pixel x covers fine pixels 3x .. 3x+2, centred on fine pixel 3x+1.
    fine, _, _ = _sphere_frame((3 * fx, 3 * fy, 3 * cx + 1, 3 * cy + 1), size=(240, 192), palette=palette)
    np.testing.assert_allclose(frame.rgb, fine.rgb.reshape(64, 3, 80, 3, 3).mean(axis=(1, 3)), atol=1e-5)
    np.testing.assert_array_equal(frame.object_id, fine.object_id[1::3, 1::3])
    np.testing.assert_allclose(frame.depth, fine.depth[1::3, 1::3])
    # The centre samples are the pixel centres of the plain render: the mask is the same one.
    plain, _, _ = _sphere_frame((fx, fy, cx, cy), palette=palette)
    assert (frame.object_id != plain.object_id).sum() <= 2  # rasterisation ties on the silhouette
    edge = (frame.object_id == 1) & (frame.rgb.sum(-1) < 0.9 * plain.rgb.sum(-1))
    assert edge.any()  # pixels straddling the silhouette blend in the black background


def test_supersample_must_be_odd():
    with pytest.raises(ValueError, match="odd"):
        _sphere_frame((40.0, 40.0, 40.0, 32.0), supersample=2)


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
