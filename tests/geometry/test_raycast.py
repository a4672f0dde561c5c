import numpy as np
import trimesh

from lab4d_core.geometry.raycast import pixel_rays, raycast


def test_rays_hit_a_sphere_at_the_analytic_distance():
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
    rng = np.random.default_rng(0)
    offsets = rng.uniform(-0.5, 0.5, size=(50, 2))
    origins = np.stack([offsets[:, 0], offsets[:, 1], np.full(50, -5.0)], axis=-1)
    hits = raycast(origins, np.tile([0.0, 0.0, 1.0], (50, 1)), sphere.vertices, sphere.faces)
    expected = 5.0 - np.sqrt(1.0 - (offsets**2).sum(axis=1))
    assert hits.hit.all()
    np.testing.assert_allclose(hits.distance, expected, atol=2e-3)  # the icosphere's facets sit inside the sphere
    points = np.einsum("rc,rcd->rd", hits.barycentric, sphere.vertices[sphere.faces[hits.triangle]])
    np.testing.assert_allclose(points, origins + hits.distance[:, None] * [0, 0, 1], atol=1e-9)


def test_rays_that_miss_report_no_triangle():
    tri = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    hits = raycast(
        np.zeros((2, 3)),
        pixel_rays(np.array([[0.2, 0.2], [5.0, 5.0]]), (1.0, 1.0, 0.0, 0.0)),
        tri,
        np.array([[0, 1, 2]]),
    )
    assert hits.triangle.tolist() == [0, -1]
    np.testing.assert_allclose(hits.distance[0], 1.0)
    np.testing.assert_allclose(hits.barycentric[0], [0.6, 0.2, 0.2])
