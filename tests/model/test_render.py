import math

import torch

from lab4d_core.model.render import (
    box_bounds,
    composite,
    importance_depths,
    occupied_interval,
    pixel_directions,
    project,
    stratified_depths,
    volsdf_weights,
)


def _laplace_density(sdf: torch.Tensor, beta: float) -> torch.Tensor:
    decay = torch.exp(-sdf.abs() / beta)
    return torch.where(sdf >= 0, 0.5 * decay, 1.0 - 0.5 * decay) / beta


def test_a_sphere_sdf_renders_a_disc_of_the_analytic_radius_and_depth():
    radius, distance, focal, res = 0.5, 3.0, 60.0, 64
    ys, xs = torch.meshgrid(
        torch.arange(res, dtype=torch.float32), torch.arange(res, dtype=torch.float32), indexing="ij"
    )
    xy = torch.stack([xs, ys], -1).reshape(1, -1, 2)
    intrinsics = torch.tensor([[focal, focal, 31.5, 31.5]])
    directions = pixel_directions(xy, intrinsics)
    centre = torch.tensor([[0.0, 0.0, distance]])
    reach = torch.full((1, 3), 1.2 * radius)
    near, far, hit = box_bounds(directions, torch.eye(3)[None], centre, -reach, reach)
    depths = stratified_depths(near, far, 256)
    points = directions[..., None, :] * depths[..., None]
    sdf = (points - centre[:, None, None]).norm(dim=-1) - radius
    weights = volsdf_weights(_laplace_density(sdf, 0.002), depths, far) * hit[..., None]
    opacity = weights.sum(-1).reshape(res, res)
    expected = focal * radius / math.sqrt(distance**2 - radius**2)
    area = (opacity > 0.5).sum().item()
    assert abs(area - math.pi * expected**2) < 0.03 * math.pi * expected**2
    depth = ((weights * depths).sum(-1) / weights.sum(-1).clamp(min=1e-6)).reshape(res, res)
    centre_depth = depth[31:33, 31:33].mean().item()  # the principal point sits between these four pixels
    assert abs(centre_depth - (distance - radius)) < 0.01
    assert torch.all(opacity <= 1.0 + 1e-5)


def test_rays_project_back_to_their_pixels():
    xy = torch.rand(2, 10, 2) * 64
    intrinsics = torch.tensor([[50.0, 60.0, 30.0, 20.0], [70.0, 65.0, 33.0, 31.0]])
    points = pixel_directions(xy, intrinsics) * torch.rand(2, 10, 1) * 5
    torch.testing.assert_close(project(points, intrinsics), xy, atol=1e-4, rtol=0)


def test_importance_samples_concentrate_where_the_weights_are():
    depths = torch.linspace(0, 1, 64).expand(1, 1, 64)
    weights = torch.zeros(1, 1, 64)
    weights[..., 40] = 1.0
    fine = importance_depths(depths, weights, 32)
    assert ((fine - depths[..., 40:41]).abs() < 1.5 / 64).float().mean() > 0.9
    values = torch.rand(1, 1, 64, 3)
    torch.testing.assert_close(composite(weights, values), values[:, :, 40])


def test_rays_enter_and_leave_a_rotated_box_at_its_corners():
    from lab4d_core.geometry.rotation import so3_exp

    directions = torch.tensor([[[0.0, 0.0, 1.0], [2.0, 0.0, 1.0]]])
    rotation = so3_exp(torch.tensor([[0.0, math.pi / 4, 0.0]]))
    translation = torch.tensor([[0.0, 0.0, 3.0]])
    lo, hi = torch.full((1, 3), -0.5), torch.full((1, 3), 0.5)
    near, far, hit = box_bounds(directions, rotation, translation, lo, hi)
    assert hit.tolist() == [[True, False]]
    half_diagonal = 0.5 * math.sqrt(2.0)  # the ray runs along the box's xz diagonal
    torch.testing.assert_close(near[0, 0], torch.tensor(3.0 - half_diagonal))
    torch.testing.assert_close(far[0, 0], torch.tensor(3.0 + half_diagonal))
    assert near[0, 1] == far[0, 1]


def test_occupied_interval_keeps_only_the_occupied_cells_a_ray_crosses():
    res = 8
    grid = torch.zeros(1, res, res, res, dtype=torch.bool)
    grid[0, 3, 3, 5] = True  # the cell z in [0.25, 0.5) of a [-1, 1] box, on the +z axis side
    # The first ray runs along the centre of column (3, 3), the second misses it.
    origin = torch.tensor([[-0.125, -0.125, -3.0], [0.9, 0.9, -3.0]])
    direction = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    near, far = torch.tensor([2.0, 2.0]), torch.tensor([4.0, 4.0])
    lo, hi = torch.full((2, 3), -1.0), torch.full((2, 3), 1.0)
    index = torch.zeros(2, dtype=torch.long)
    new_near, new_far, hit = occupied_interval(origin, direction, near, far, lo, hi, grid, index, 64)
    assert hit.tolist() == [True, False]
    step = 2.0 / 64
    assert 3.25 - 2 * step <= new_near[0] <= 3.25 and 3.5 <= new_far[0] <= 3.5 + 2 * step
    assert new_near[1] == new_far[1]
