"""Shared fixtures: tiny synthetic datasets generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab4d_core.config import SynthConfig

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_file(name: str) -> Path:
    """A file of ../shared/data, or skip: users' checkouts have no ../shared."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} not found: real test data lives in ../shared/data beside the checkout")
    return path


TINY_QUAD = SynthConfig(
    num_videos=2,
    num_frames=12,
    resolution=96,
    train_res=64,
    motions=["walk", "trot"],
    cameras=["orbit", "handheld"],
    voxel=0.02,
)


@pytest.fixture(scope="session")
def tiny_quad(tmp_path_factory) -> Path:
    """Root of a 2-video, 12-frame quadruped dataset (96x96 raw, 64x64 arrays)."""
    from lab4d_core.data.synthetic.synthesize import synthesize

    root = tmp_path_factory.mktemp("synth") / "tiny-quad"
    synthesize(TINY_QUAD, root)
    return root


@pytest.fixture(scope="session")
def untrained_bob(tiny_quad):
    """(model, database): a small bob model of tiny_quad as initialised (the sphere), proxies fitted."""
    import torch

    from lab4d_core.config import ModelConfig
    from lab4d_core.data.manifest import read_manifest
    from lab4d_core.model.dynamic import DynamicModel
    from lab4d_core.preprocess.scene import SceneInfo

    database = read_manifest(tiny_quad / "manifest.json").database()
    torch.manual_seed(0)
    small = {"hash_log2_size": 12, "hash_levels": 8, "hash_max_res": 64, "num_bones": 4}
    model = DynamicModel(ModelConfig(fg_motion="bob", **small), SceneInfo.from_database(database, "crop")).eval()
    model.update_proxy()
    return model, database


TINY_QUADS = SynthConfig(
    num_videos=2,
    num_frames=[14, 9],
    resolution=96,
    train_res=64,
    single_inst=False,
    motions=["walk", "trot"],
    cameras=["orbit", "handheld"],
    voxel=0.02,
    supersample=1,
    prefixes=["crop"],
    reanimate=[[0, 1]],
)


@pytest.fixture(scope="session")
def tiny_quads(tmp_path_factory) -> Path:
    """Root of a 2-video quadruped category dataset: two individuals, video 0 (14 frames) longer than video 1 (9)."""
    from lab4d_core.data.synthetic.synthesize import synthesize

    root = tmp_path_factory.mktemp("synth") / "tiny-quads"
    synthesize(TINY_QUADS, root)
    return root


@pytest.fixture(scope="session")
def untrained_skel(tiny_quads):
    """(model, database): a small skel-quad model of tiny_quads with one body per video, its joints turned by
    a small random motion, its two instances' bone lengths made to differ; proxies fitted."""
    import torch

    from lab4d_core.config import ModelConfig
    from lab4d_core.data.manifest import read_manifest
    from lab4d_core.model.dynamic import DynamicModel
    from lab4d_core.preprocess.scene import SceneInfo

    database = read_manifest(tiny_quads / "manifest.json").database()
    torch.manual_seed(0)
    small = {"hash_log2_size": 12, "hash_levels": 8, "hash_max_res": 64}
    cfg = ModelConfig(fg_motion="skel-quad", single_inst=False, **small)
    model = DynamicModel(cfg, SceneInfo.from_database(database, "crop")).eval()
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        model.deform.motion_net.output.weight.copy_(
            0.05 * torch.randn(model.deform.motion_net.output.weight.shape, generator=generator)
        )
        model.deform.length_net.output.weight.copy_(
            0.3 * torch.randn(model.deform.length_net.output.weight.shape, generator=generator)
        )
    model.update_proxy()
    return model, database
