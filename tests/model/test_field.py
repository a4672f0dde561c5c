"""The canonical neural SDF: sphere initialisation, VolSDF density, eikonal gradients, codes."""

import pytest
import torch

from lab4d_core.model.field import OUTSIDE_SDF, NeuralSDF
from lab4d_core.model.mlp import MLP

SMALL_FOURIER = {"encoding": "fourier", "hidden": 64, "depth": 4, "skips": (2,), "init_steps": 100}


@pytest.fixture(scope="module")
def sphere() -> NeuralSDF:
    """The default (hash grid) field, sphere-initialised as built."""
    torch.manual_seed(0)
    return NeuralSDF()


def sphere_error(field: NeuralSDF, radius: float, bound: float) -> float:
    x = (torch.rand(20000, 3) * 2 - 1) * bound
    with torch.no_grad():
        return (field.sdf(x) - (x.norm(dim=-1) - radius)).abs().mean().item()


def shell_points(radius: float, n: int = 2000, width: float = 0.05) -> torch.Tensor:
    direction = torch.nn.functional.normalize(torch.randn(n, 3), dim=-1)
    return direction * (radius + width * (torch.rand(n, 1) * 2 - 1))


def test_hashgrid_field_starts_as_a_sphere(sphere):
    assert sphere_error(sphere, 0.25, 1.0) < 0.02


def test_fourier_field_starts_as_a_sphere():
    torch.manual_seed(0)
    assert sphere_error(NeuralSDF(**SMALL_FOURIER), 0.25, 1.0) < 0.02


def test_sphere_follows_bound_and_radius():
    torch.manual_seed(0)
    field = NeuralSDF(bound=2.0, init_radius=0.8, init_steps=100)
    assert field.scale.item() == pytest.approx(2.0)
    assert sphere_error(field, 0.8, 2.0) < 0.04  # twice the units


def test_sphere_gradient_is_eikonal_and_radial(sphere):
    x = shell_points(0.25)
    sdf, grad = sphere.gradient(x)
    assert sdf.shape == (2000,) and grad.shape == (2000, 3)
    assert (grad.norm(dim=-1) - 1).abs().mean() < 0.1
    assert torch.nn.functional.cosine_similarity(grad, x, dim=-1).mean() > 0.95


def test_gradient_keeps_a_graph_only_when_training():
    torch.manual_seed(0)
    field = NeuralSDF(init_steps=0)
    x = torch.rand(64, 3) - 0.5
    _, grad = field.gradient(x)
    assert grad.requires_grad  # eikonal loss can backpropagate
    (grad.norm(dim=-1) - 1).square().mean().backward()
    assert field.encoding.table.grad is not None and field.trunk.output.weight.grad is not None
    field.eval()
    with torch.no_grad():
        sdf, grad = field.gradient(x)
    assert not sdf.requires_grad and not grad.requires_grad


def test_outside_the_bound_is_empty(sphere):
    x = torch.tensor([[1.2, 0.0, 0.0], [0.0, -3.0, 0.0], [0.0, 0.0, 0.99]])
    with torch.no_grad():
        sdf = sphere.sdf(x)
    assert (sdf[:2] == OUTSIDE_SDF).all() and sdf[2] < OUTSIDE_SDF
    assert (sphere.density(sdf[:2]) == 0).all()


def test_density_is_a_laplace_cdf(sphere):
    beta = sphere.beta.item()
    assert beta == pytest.approx(0.1)
    sdf = torch.linspace(-1.0, 1.0, 201)
    density = sphere.density(sdf)
    assert (density > 0).all()
    assert (density.diff() < 0).all()
    assert sphere.density(torch.zeros(1)).item() == pytest.approx(0.5 / beta)
    assert sphere.density(torch.tensor([-1.0])).item() == pytest.approx(1 / beta, rel=1e-3)
    with torch.no_grad():
        sphere.log_beta.fill_(-20.0)
    try:
        assert sphere.beta.item() == pytest.approx(1e-4)  # clamped
    finally:
        with torch.no_grad():
            sphere.log_beta.fill_(torch.tensor(0.1).log().item())


def test_instance_codes_condition_the_shape():
    torch.manual_seed(0)
    field = NeuralSDF(num_inst=2, init_steps=0)
    x = torch.rand(100, 3) - 0.5
    zeros, ones = torch.zeros(100, dtype=torch.long), torch.ones(100, dtype=torch.long)
    with torch.no_grad():
        before = field.sdf(x, zeros), field.sdf(x, ones)
        field.inst_codes.weight[1] += torch.randn(32)
        after = field.sdf(x, zeros), field.sdf(x, ones)
    torch.testing.assert_close(after[0], before[0])
    assert (after[1] - before[1]).abs().max() > 1e-3
    with torch.no_grad():  # no instance id: the mean code
        mean = field.sdf(x)
    assert not torch.allclose(mean, after[0]) and not torch.allclose(mean, after[1])


def test_shape_deviation_is_zero_for_equal_codes_and_its_penalty_draws_individuals_to_the_mean_body():
    torch.manual_seed(0)
    field = NeuralSDF(num_inst=2, init_steps=0, **{k: v for k, v in SMALL_FOURIER.items() if k != "init_steps"})
    x = torch.rand(200, 3) - 0.5
    inst = torch.arange(200) % 2
    with torch.no_grad():
        field.inst_codes.weight.copy_(torch.randn(32).expand(2, -1))
    assert field.shape_deviation(x, inst).max().item() < 1e-6
    with torch.no_grad():
        field.inst_codes.weight[1] += torch.randn(32)
    start = field.shape_deviation(x, inst).mean().item()
    assert start > 1e-3
    optimizer = torch.optim.Adam([field.inst_codes.weight], lr=1e-2)
    for _ in range(50):
        optimizer.zero_grad()
        field.shape_deviation(x, inst).mean().backward()
        optimizer.step()
    assert field.shape_deviation(x, inst).mean().item() < 0.3 * start


def test_appearance_codes_change_rgb_per_frame(sphere):
    torch.manual_seed(0)
    field = NeuralSDF(num_frames=3, init_steps=0)
    x = torch.rand(4, 8, 3) - 0.5
    frame = torch.tensor([0, 1, 2, 1])[:, None]  # broadcast over the samples of each ray
    with torch.no_grad():
        field.appr_codes.weight[1] = torch.randn(32)
        out = field(x, frame=frame)
        reference = field(x, frame=torch.tensor(0))
    assert out["sdf"].shape == (4, 8) and out["rgb"].shape == (4, 8, 3)
    assert ((out["rgb"] >= 0) & (out["rgb"] <= 1)).all()
    torch.testing.assert_close(out["sdf"], reference["sdf"])  # appearance never changes geometry
    torch.testing.assert_close(out["rgb"][0], reference["rgb"][0])
    torch.testing.assert_close(out["rgb"][2], reference["rgb"][2])  # frames 0 and 2 share the zero init
    assert (out["rgb"][1] - reference["rgb"][1]).abs().max() > 1e-3


def test_alpha_forwards_to_the_encoding():
    field = NeuralSDF(init_steps=0)
    field.alpha = 0.3
    assert field.encoding.alpha == 0.3 and field.alpha == 0.3


def test_unknown_encoding_is_an_error():
    with pytest.raises(ValueError, match="fourier.*hashgrid"):
        NeuralSDF(encoding="triplane", init_steps=0)


def test_mlp_skips_condition_and_zero_output():
    mlp = MLP(10, 4, hidden=32, depth=8, skips=(4,), cond_dim=3, out_init="zero")
    assert [layer.in_features for layer in mlp.layers] == [13, 32, 32, 32, 45, 32, 32, 32]  # lab4d's skip at 4
    x, code = torch.randn(5, 7, 10), torch.randn(3)
    assert (mlp(x, code) == 0).all() and mlp(x, code).shape == (5, 7, 4)
    with pytest.raises(ValueError, match="pass cond"):
        mlp(x)
    with pytest.raises(ValueError, match="relu"):
        MLP(3, 1, activation="swish")
