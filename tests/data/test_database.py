"""Round trip and validation of lab4d's processed layout on a tiny random dataset."""

from __future__ import annotations

import configparser

import numpy as np
import pytest

from lab4d_core.data import database as db
from lab4d_core.data.database import (
    FLOW_DELTAS,
    PREFIXES,
    Database,
    PrefixArrays,
    VideoRecord,
    write_config,
    write_video,
)
from lab4d_core.errors import Lab4dError
from lab4d_core.geometry.cameras import crop_intrinsics, k2mat

RES = 16
RAW_H, RAW_W = 20, 24
COLLECTION = "tiny"
# Video 0 keeps all 5 raw frames; video 1 drops raw frame 3 of 7 (the frame filter).
KEPT = [np.arange(5), np.array([0, 1, 2, 4, 5, 6])]
NUM_RAW = [5, 7]


def _prefix_arrays(rng: np.random.Generator, n: int, with_extras: bool) -> PrefixArrays:
    def flows() -> dict[int, np.ndarray]:
        return {d: rng.normal(size=((n - 1) // d, RES, RES, 3)).astype(np.float32) for d in FLOW_DELTAS}

    return PrefixArrays(
        rgb=rng.random((n, RES, RES, 3)),
        mask=rng.random((n, RES, RES)) > 0.5,
        vis2d=rng.random((n, RES, RES)) > 0.2,
        crop2raw=rng.random((n, 4)) * 10,
        is_detected=rng.random(n) > 0.3,
        flow_fw=flows(),
        flow_bw=flows(),
        depth=rng.random((n, RES, RES)) * 5 if with_extras else None,
        features={"dinov2": rng.normal(size=(n, 112, 112, 16))} if with_extras else {},
    )


def _record(rng: np.random.Generator, index: int) -> VideoRecord:
    kept, n = KEPT[index], len(KEPT[index])
    return VideoRecord(
        seqname=f"{COLLECTION}-{index:04d}",
        frames_raw=rng.integers(0, 256, (NUM_RAW[index], RAW_H, RAW_W, 3), dtype=np.uint8),
        kept_ids=kept,
        masks_raw=rng.integers(-1, 2, (n, RAW_H, RAW_W)).astype(np.int8),
        ks=(30.5 + index, 31.25, 12.0, 10.125),
        # Only video 0 has the optional depth/features, as some real downloads.
        arrays={p: _prefix_arrays(rng, n, with_extras=index == 0) for p in PREFIXES},
        cameras={"00": rng.normal(size=(n, 4, 4)), "01-canonical": rng.normal(size=(n, 4, 4))},
    )


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.default_rng(0)
    records = [_record(rng, 0), _record(rng, 1)]
    for record in records:
        write_video(tmp_path, record)
    write_config(tmp_path, COLLECTION, records)
    return tmp_path, records


def _open(root) -> Database:
    return Database(root, COLLECTION, resolution=RES)


def _path(root, folder: str, seq: int, filename: str):
    return db.processed_dir(root, folder, f"{COLLECTION}-{seq:04d}") / filename


def test_round_trip_is_exact(dataset):
    root, records = dataset
    data = _open(root)
    assert len(data) == 2
    for video, record in zip(data.videos, records):
        assert video.seqname == record.seqname
        np.testing.assert_array_equal(video.kept_ids, record.kept_ids)
        assert video.num_frames_raw == len(record.frames_raw)
        assert video.ks.tolist() == list(record.ks)
        assert video.shape == (RAW_H, RAW_W)
        for prefix, given in record.arrays.items():
            rgb = video.array("rgb", prefix)
            assert rgb.dtype == np.float16
            np.testing.assert_array_equal(rgb, given.rgb.astype(np.float16))
            np.testing.assert_array_equal(video.array("mask", prefix)[..., 0], given.mask)
            np.testing.assert_array_equal(video.array("mask", prefix)[..., 1], given.vis2d)
            np.testing.assert_array_equal(video.array("crop2raw", prefix), given.crop2raw)
            np.testing.assert_array_equal(video.array("is_detected", prefix), given.is_detected)
            for delta in FLOW_DELTAS:
                for direction, flows in (("fw", given.flow_fw), ("bw", given.flow_bw)):
                    stored = video.flow(delta, direction, prefix)
                    np.testing.assert_array_equal(stored, flows[delta].astype(np.float16))
            assert video.has("depth", prefix) == (given.depth is not None)
            if given.depth is not None:
                np.testing.assert_array_equal(video.array("depth", prefix), given.depth.astype(np.float16))
                features = video.array("features-dinov2", prefix)
                np.testing.assert_array_equal(features, given.features["dinov2"].astype(np.float16))
            assert not video.has("features-cse", prefix)
        for name, cameras in record.cameras.items():
            np.testing.assert_array_equal(video.camera(name), cameras)
        assert video.camera("01") is None
        for raw_id, mask in zip(record.kept_ids, record.masks_raw):
            np.testing.assert_array_equal(video.raw_mask(raw_id), mask)
            assert video.frame_path(raw_id).read_bytes() == video.frame_path(raw_id, raw=True).read_bytes()
    # Raw frame 3 of video 1 was filtered out: only its raw jpg exists.
    assert data.videos[1].frame_path(3, raw=True).exists()
    assert not data.videos[1].frame_path(3).exists()


def test_frame_indexing_matches_lab4d(dataset):
    data = _open(dataset[0])
    np.testing.assert_array_equal(data.frame_offset, [0, 5, 11])
    np.testing.assert_array_equal(data.frame_offset_raw, [0, 5, 12])
    np.testing.assert_array_equal(data.frame_mapping, [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11])
    assert data.num_frames == 11


def test_config_is_lab4d_ini(dataset):
    root, records = dataset
    config = configparser.RawConfigParser()
    config.read(db.config_path(root, COLLECTION))
    assert config.sections() == ["data", "data_0", "data_1"]
    assert config["data"]["init_frame"] == "0"
    assert config["data"]["end_frame"] == "-1"
    for i, record in enumerate(records):
        section = config[f"data_{i}"]
        assert [float(v) for v in section["ks"].split(" ")] == list(record.ks)
        assert section["shape"] == f"{RAW_H} {RAW_W}"
        assert section["img_path"] == f"database/processed/JPEGImages/Full-Resolution/{record.seqname}/"


def test_config_accepts_absolute_img_path(dataset):
    root, records = dataset
    path = db.config_path(root, COLLECTION)
    text = path.read_text().replace("img_path = database/", f"img_path = {root}/database/")
    path.write_text(text)
    assert _open(root).videos[1].kept_ids.tolist() == KEPT[1].tolist()


def test_missing_array_names_file(dataset):
    root, _ = dataset
    missing = _path(root, "Annotations", 1, f"full-{RES}-crop2raw.npy")
    missing.unlink()
    with pytest.raises(Lab4dError, match="missing") as err:
        _open(root)
    assert str(missing) in str(err.value)
    # A prefix that is not requested is not required.
    assert Database(root, COLLECTION, resolution=RES, prefixes=("crop",)).num_frames == 11


def test_features_under_lab4d_loader_name_are_read(dataset):
    # lab4d's extractor writes "crop-256-dinov2-01.npy", its loader reads "crop-dinov2-01.npy".
    root, records = dataset
    written = _path(root, "Features", 0, f"crop-{RES}-dinov2-01.npy")
    written.rename(written.with_name("crop-dinov2-01.npy"))
    video = _open(root).videos[0]
    assert video.has("features-dinov2")
    expected = records[0].arrays["crop"].features["dinov2"].astype(np.float16)
    np.testing.assert_array_equal(video.array("features-dinov2"), expected)


def test_wrong_flow_count_names_file_and_expected_shape(dataset):
    root, _ = dataset
    path = _path(root, "FlowFW_2", 0, f"crop-{RES}.npy")
    np.save(path, np.zeros((3, RES, RES, 3), np.float16))  # (5-1)//2 = 2 expected
    with pytest.raises(Lab4dError) as err:
        _open(root)
    message = str(err.value)
    expected = f"expected shape (2, {RES}, {RES}, 3) float16, found (3, {RES}, {RES}, 3) float16"
    assert f"{path}: {expected}" in message


def test_wrong_dtype_names_file(dataset):
    root, _ = dataset
    path = _path(root, "JPEGImages", 1, f"crop-{RES}.npy")
    np.save(path, np.zeros((6, RES, RES, 3), np.float32))
    with pytest.raises(Lab4dError) as err:
        _open(root)
    expected = f"expected shape (6, {RES}, {RES}, 3) float16, found (6, {RES}, {RES}, 3) float32"
    assert f"{path}: {expected}" in str(err.value)


def test_all_problems_reported_at_once(dataset):
    root, _ = dataset
    first = _path(root, "Depth", 0, f"crop-{RES}.npy")
    second = _path(root, "FlowBW_8", 1, f"full-{RES}.npy")
    np.save(first, np.zeros((4, RES, RES), np.float16))  # optional, but present so checked
    second.unlink()
    with pytest.raises(Lab4dError) as err:
        _open(root)
    assert "2 problem(s)" in str(err.value)
    assert str(first) in str(err.value) and str(second) in str(err.value)


def test_missing_config_names_path_and_lists_collections(dataset):
    root, _ = dataset
    with pytest.raises(Lab4dError) as err:
        Database(root, "nope", resolution=RES)
    assert str(db.config_path(root, "nope")) in str(err.value)
    assert COLLECTION in str(err.value)


def test_config_section_missing_key(dataset):
    root, _ = dataset
    path = db.config_path(root, COLLECTION)
    config = configparser.RawConfigParser()
    config.read(path)
    config.remove_option("data_1", "ks")
    with open(path, "w") as f:
        config.write(f)
    with pytest.raises(Lab4dError, match=r"\[data_1\] is missing ks"):
        _open(root)


def test_open_maps_nothing_until_read(dataset, monkeypatch):
    loads = []
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: loads.append(a[0]) or real_load(*a, **k))
    data = _open(dataset[0])
    assert loads == []
    assert all(not video._cache for video in data.videos)
    frame = data.videos[1].array("rgb")[2]
    assert frame.shape == (RES, RES, 3)
    assert len(loads) == 1 and list(data.videos[1]._cache) == [("rgb", "crop")]
    assert isinstance(data.videos[1].array("rgb"), np.memmap)
    data.videos[1].array("rgb")
    assert len(loads) == 1  # cached


def test_writer_rejects_bad_input_and_writes_nothing(tmp_path):
    record = _record(np.random.default_rng(1), 1)
    record.arrays["crop"].flow_fw[4] = np.zeros((2, RES, RES, 3), np.float32)  # (6-1)//4 = 1
    record.arrays["full"].rgb = record.arrays["full"].rgb.astype(np.uint8)
    with pytest.raises(Lab4dError) as err:
        write_video(tmp_path, record)
    message = str(err.value)
    assert "crop flow_fw[4]" in message and "expected shape (1, 16, 16, 3), found (2, 16, 16, 3)" in message
    assert str(_path(tmp_path, "FlowFW_4", 1, f"crop-{RES}.npy")) in message
    assert "full rgb" in message and "expected a float array, found uint8" in message
    assert not (tmp_path / "database").exists()


def test_rewrite_removes_stale_frames(dataset):
    root, records = dataset
    shorter = _record(np.random.default_rng(2), 0)
    shorter.frames_raw = shorter.frames_raw[:4]
    shorter.kept_ids = np.arange(4)
    shorter.masks_raw = shorter.masks_raw[:4]
    shorter.cameras = {}
    for arrays in shorter.arrays.values():
        for name in ("rgb", "mask", "vis2d", "crop2raw", "is_detected", "depth"):
            setattr(arrays, name, getattr(arrays, name)[:4])
        arrays.features = {}
        arrays.flow_fw = {d: v[: 3 // d] for d, v in arrays.flow_fw.items()}
        arrays.flow_bw = {d: v[: 3 // d] for d, v in arrays.flow_bw.items()}
    write_video(root, shorter)
    for name in ("00", "01-canonical"):
        _path(root, "Cameras", 0, f"{name}.npy").unlink()
    for prefix in PREFIXES:
        _path(root, "Features", 0, f"{prefix}-{RES}-dinov2-01.npy").unlink()
    data = _open(root)
    assert data.videos[0].num_frames == data.videos[0].num_frames_raw == 4
    assert not _path(root, "Annotations", 0, "00004.npy").exists()


def test_crop_intrinsics_full_frame():
    # lab4d's "full" crop of a 256^2 frame: 255 // 2 * 2 = 254 raw pixels over 256 array pixels.
    crop2raw = np.array([254 / 256, 254 / 256, 0.0, 0.0])
    ks_raw = np.array([256.0, 256.0, 128.0, 128.0])
    expected = [256 * 256 / 254, 256 * 256 / 254, 128 * 256 / 254, 128 * 256 / 254]
    np.testing.assert_allclose(crop_intrinsics(ks_raw, crop2raw), expected)


def test_crop_intrinsics_project_consistently():
    rng = np.random.default_rng(3)
    ks_raw = np.array([500.0, 480.0, 320.0, 240.0])
    crop2raw = np.column_stack([rng.uniform(0.5, 3, (8, 2)), rng.uniform(-50, 300, (8, 2))])
    k_arr = crop_intrinsics(ks_raw, crop2raw)  # (8, 4): one per frame
    points = rng.normal(size=(8, 3)) + [0, 0, 5]
    raw = k2mat(ks_raw) @ points[..., None]
    arr = k2mat(k_arr) @ points[..., None]
    np.testing.assert_allclose(raw / raw[:, 2:], k2mat(crop2raw) @ (arr / arr[:, 2:]))
