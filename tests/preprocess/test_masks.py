"""Object masks from the segmenters of ``lab4d_core.preprocess.masks``, on tiny videos the tests draw."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lab4d_core.errors import Lab4dError
from lab4d_core.preprocess import masks as masks_module
from lab4d_core.preprocess.masks import BOX_MARGIN, SEGMENTERS, MaskRequest, clean_mask, segment

SIZE = 96
RADIUS = 16
FRAMES = 12


def _texture(rng: np.random.Generator, height: int, width: int, colours: np.ndarray) -> np.ndarray:
    """A blotchy texture of the given colours (blurred noise, quantised), for flow and colour models to work on."""
    noise = cv2.GaussianBlur(rng.random((height, width)).astype(np.float32), (0, 0), 2.0)
    levels = np.digitize(noise, np.quantile(noise, np.linspace(0, 1, len(colours) + 1)[1:-1]))
    return colours[levels].astype(np.uint8)


def _disc_video(moving_background: bool = False, speed: int = 3, start: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """A textured disc gliding right over a textured background (optionally panning): frames and exact masks."""
    rng = np.random.default_rng(0)
    background = _texture(rng, SIZE + 40, SIZE + 40, np.array([[40, 90, 40], [70, 120, 60], [110, 150, 90]]))
    disc = _texture(rng, SIZE, SIZE, np.array([[200, 90, 40], [230, 140, 60], [160, 60, 30]]))
    yy, xx = np.mgrid[:SIZE, :SIZE]
    frames, truth = [], []
    for t in range(FRAMES):
        shift = 2 * t if moving_background else 0
        frame = background[20 : 20 + SIZE, shift : shift + SIZE].copy()
        cx, cy = start + speed * t, 40 + t
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= RADIUS**2
        frame[inside] = np.roll(disc, (cy, cx), (0, 1))[inside]  # the disc's texture moves with it
        frames.append(frame)
        truth.append(inside)
    return np.stack(frames), np.stack(truth)


def _grazing_video() -> tuple[np.ndarray, np.ndarray]:
    """A plain orange disc gliding right along the lower edge of a plain patch of its own colour, on a textured
    green background: no colour, edge or motion tells the two apart where they touch. Frames and exact masks."""
    rng = np.random.default_rng(0)
    orange = (230, 140, 60)
    frame = _texture(rng, SIZE, SIZE, np.array([[40, 90, 40], [70, 120, 60], [110, 150, 90]]))
    frame[14:42, 36:66] = orange
    yy, xx = np.mgrid[:SIZE, :SIZE]
    frames, truth = [], []
    for t in range(FRAMES):
        inside = (xx - (20 + 5 * t)) ** 2 + (yy - 56) ** 2 <= RADIUS**2
        frames.append(np.where(inside[..., None], np.array(orange, np.uint8), frame))
        truth.append(inside)
    return np.stack(frames), np.stack(truth)


def _iou(mask: np.ndarray, truth: np.ndarray) -> float:
    return float(((mask == 1) & truth).sum() / max(((mask == 1) | truth).sum(), 1))


def _request(frames: np.ndarray, **kwargs) -> MaskRequest:
    return MaskRequest(frames=frames, raw_ids=np.arange(len(frames)), source="tiny.mp4", **kwargs)


def _box(mask: np.ndarray) -> tuple[float, float, float, float]:
    rows, cols = np.nonzero(mask)
    return float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)


def test_every_method_is_registered_and_an_unknown_one_lists_them():
    assert set(SEGMENTERS) == {"given", "mediapipe", "track", "motion", "onnx"}
    frames, _ = _disc_video()
    with pytest.raises(Lab4dError, match="unknown mask segmenter 'sam'.*given.*track"):
        segment("sam", _request(frames))


def test_clean_mask_keeps_the_largest_component_with_its_holes_filled():
    mask = np.zeros((20, 20), dtype=bool)
    mask[2:12, 2:12] = True
    mask[5:8, 5:8] = False  # a hole
    mask[15:17, 15:17] = True  # a speck
    cleaned = clean_mask(mask)
    assert cleaned[2:12, 2:12].all() and cleaned.sum() == 100


# --- given ----------------------------------------------------------------------------------------------------------


def test_given_masks_are_picked_by_raw_id_and_resized_nearest(tmp_path):
    frames, truth = _disc_video()
    for k, mask in enumerate(truth):  # twice the video's size, as png (0/255) and npy
        big = np.kron(mask, np.ones((2, 2), dtype=bool))
        if k % 2:
            np.save(tmp_path / f"{k:05d}.npy", big.astype(np.int8))
        else:
            cv2.imwrite(str(tmp_path / f"{k:05d}.png"), big.astype(np.uint8) * 255)
    kept = np.array([1, 4, 7])
    request = MaskRequest(frames=frames[kept], raw_ids=kept, source="tiny.mp4", masks_dir=tmp_path)
    masks = segment("given", request)
    assert masks.shape == (3, SIZE, SIZE) and masks.dtype == np.int8
    np.testing.assert_array_equal(masks, truth[kept].astype(np.int8))


def test_given_masks_check_the_count_the_files_and_the_aspect_ratio(tmp_path):
    frames, truth = _disc_video()
    for k, mask in enumerate(truth[:5]):
        cv2.imwrite(str(tmp_path / f"{k:05d}.png"), mask.astype(np.uint8) * 255)
    with pytest.raises(Lab4dError, match=rf"{tmp_path}.* 5 masks .* at least {FRAMES} frames"):
        segment("given", _request(frames, masks_dir=tmp_path))
    # With the video's frame count known, the folder must hold exactly one mask per frame: 5 masks for the
    # first 3 of 6 frames would pass the lower bound, but each mask might then be another frame's.
    with pytest.raises(Lab4dError, match=rf"mask folder {tmp_path} holds 5 masks .* has 6 frames.* exactly one"):
        segment("given", MaskRequest(frames[:3], np.arange(3), "tiny.mp4", masks_dir=tmp_path, num_frames=6))
    assert (
        segment("given", MaskRequest(frames[:3], np.arange(3), "tiny.mp4", masks_dir=tmp_path, num_frames=5)).shape[0]
        == 3
    )
    (tmp_path / "00001.png").write_bytes(b"not an image")
    with pytest.raises(Lab4dError, match=rf"cannot read mask .*00001.png in folder {tmp_path}"):
        segment("given", MaskRequest(frames[:3], np.arange(3), "tiny.mp4", masks_dir=tmp_path))
    cv2.imwrite(str(tmp_path / "00001.png"), np.zeros((SIZE, SIZE * 2), np.uint8))
    with pytest.raises(Lab4dError, match=f"is {2 * SIZE}x{SIZE} but the video is {SIZE}x{SIZE}"):
        segment("given", MaskRequest(frames[:3], np.arange(3), "tiny.mp4", masks_dir=tmp_path))


def test_empty_and_tiny_masks_become_not_found_and_all_of_them_is_an_error(tmp_path):
    frames, truth = _disc_video()
    for k, mask in enumerate(truth):
        if k == 2:
            mask = np.zeros_like(mask)
        elif k == 3:
            mask = np.zeros_like(mask)
            mask[0, 0] = True  # one pixel: below MIN_AREA_FRACTION
        np.save(tmp_path / f"{k:05d}.npy", mask.astype(np.int8))
    masks = segment("given", _request(frames, masks_dir=tmp_path))
    assert (masks[2] == -1).all() and (masks[3] == -1).all()
    assert (masks[[0, 1, 4]] >= 0).all()
    for k in range(FRAMES):
        np.save(tmp_path / f"{k:05d}.npy", np.zeros((SIZE, SIZE), np.int8))
    with pytest.raises(Lab4dError, match="found the object in no frame of tiny.mp4"):
        segment("given", _request(frames, masks_dir=tmp_path))


# --- track ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("moving_background", [False, True])
def test_track_follows_a_textured_disc_from_one_box(moving_background):
    frames, truth = _disc_video(moving_background)
    prompt = (4, *_box(truth[4]))  # a box on a middle frame: tracked both ways
    masks = segment("track", _request(frames, prompts=[prompt]))
    ious = [_iou(mask, disc) for mask, disc in zip(masks, truth)]
    assert min(ious) >= 0.9, np.round(ious, 3)


def test_track_with_two_boxes_keeps_out_of_background_of_the_objects_colour():
    """From one box the mask creeps into the patch the disc grazes (measured: IoU down to 0.69 by frame 10); a
    second box, on the last frame, bounds every frame between the two to the interpolated box."""
    frames, truth = _grazing_video()
    first, last = np.array(_box(truth[0])), np.array(_box(truth[-1]))
    masks = segment("track", _request(frames, prompts=[(FRAMES - 1, *last), (0, *first)]))  # in any order
    ious = [_iou(mask, disc) for mask, disc in zip(masks, truth)]
    assert min(ious) >= 0.85, np.round(ious, 3)
    for k, mask in enumerate(masks):
        box = first + k / (FRAMES - 1) * (last - first)
        x0, y0, x1, y1 = box + BOX_MARGIN * np.tile(box[2:] - box[:2], 2) * np.array([-1, -1, 1, 1])
        rows, cols = np.nonzero(mask == 1)
        assert cols.min() >= np.floor(x0) and cols.max() < np.ceil(x1), k
        assert rows.min() >= np.floor(y0) and rows.max() < np.ceil(y1), k


def test_track_rejects_bad_prompts():
    frames, _ = _disc_video()
    box = (10.0, 10.0, 30.0, 30.0)
    with pytest.raises(Lab4dError, match=f"frame 0 of tiny.mp4 .* inside the {SIZE}x{SIZE} frame"):
        segment("track", _request(frames, prompts=[(0, SIZE + 5, 10, SIZE + 30, 40)]))
    with pytest.raises(Lab4dError, match=f"frame 3 of tiny.mp4 .* inside the {SIZE}x{SIZE} frame"):
        segment("track", _request(frames, prompts=[(0, *box), (3, 20, 20, 20, 40)]))  # empty: every box is checked
    with pytest.raises(Lab4dError, match=f"tiny.mp4 is not on one of its {FRAMES} frames"):
        segment("track", _request(frames, prompts=[(0, *box), (FRAMES, *box)]))
    with pytest.raises(Lab4dError, match="two prompt boxes on frame 2 of tiny.mp4"):
        segment("track", _request(frames, prompts=[(2, *box), (2, *box)]))
    with pytest.raises(Lab4dError, match="needs a prompt"):
        segment("track", _request(frames))


def test_track_marks_frames_the_object_has_left_as_not_found():
    frames, truth = _disc_video(speed=5, start=62)  # gone through the right edge by frame 10
    gone = ~truth.any(axis=(1, 2))
    assert gone[-2:].all()
    masks = segment("track", _request(frames, prompts=[(0, *_box(truth[0]))]))
    assert all(_iou(mask, disc) >= 0.8 for mask, disc, out in zip(masks, truth, gone) if not out)
    assert (masks[gone] == -1).all()


# --- motion ---------------------------------------------------------------------------------------------------------


def test_motion_finds_a_moving_square_and_warns():
    rng = np.random.default_rng(1)
    background = _texture(rng, SIZE, SIZE, np.array([[60, 60, 60], [120, 110, 100], [180, 170, 150]]))
    square = _texture(rng, 24, 24, np.array([[220, 40, 40], [240, 200, 30], [30, 40, 220]]))
    frames, truth = [], []
    for t in range(FRAMES):
        frame, mask = background.copy(), np.zeros((SIZE, SIZE), dtype=bool)
        x, y = 10 + 5 * t, 30 + 2 * t
        frame[y : y + 24, x : x + 24] = square
        mask[y : y + 24, x : x + 24] = True
        frames.append(frame)
        truth.append(mask)
    with pytest.warns(UserWarning, match="unreliable|slow"):
        masks = segment("motion", _request(np.stack(frames)))
    ious = [_iou(mask, square) for mask, square in zip(masks, truth)]
    assert np.mean(ious) >= 0.6 and min(ious) >= 0.5, np.round(ious, 3)


# --- onnx -----------------------------------------------------------------------------------------------------------


def _red_minus_green_model(path, size: int) -> None:
    """An ONNX model whose output is sigmoid(20 * (R - G)) of its (normalised) input: red things are objects."""
    onnx = pytest.importorskip("onnx", reason="building the test model needs the onnx package")
    helper, tensor = onnx.helper, onnx.TensorProto
    nodes = [
        helper.make_node("Slice", ["x", "s0", "e0", "ax"], ["r"]),
        helper.make_node("Slice", ["x", "s1", "e1", "ax"], ["g"]),
        helper.make_node("Sub", ["r", "g"], ["d"]),
        helper.make_node("Mul", ["d", "k"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["y"]),
    ]
    constants = [
        helper.make_tensor("s0", tensor.INT64, [1], [0]),
        helper.make_tensor("e0", tensor.INT64, [1], [1]),
        helper.make_tensor("s1", tensor.INT64, [1], [1]),
        helper.make_tensor("e1", tensor.INT64, [1], [2]),
        helper.make_tensor("ax", tensor.INT64, [1], [1]),
        helper.make_tensor("k", tensor.FLOAT, [], [20.0]),
    ]
    graph = helper.make_graph(
        nodes,
        "red",
        [helper.make_tensor_value_info("x", tensor.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("y", tensor.FLOAT, [1, 1, size, size])],
        constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_onnx_runs_a_user_model_and_checks_its_input_size(tmp_path):
    pytest.importorskip("onnxruntime", reason="the 'onnx' segmenter needs onnxruntime")
    model = tmp_path / "red.onnx"
    _red_minus_green_model(model, 32)
    frames = np.full((2, 64, 64, 3), (40, 160, 40), dtype=np.uint8)
    truth = np.zeros((2, 64, 64), dtype=bool)
    truth[:, 16:48, 8:40] = True
    frames[truth] = (200, 30, 30)
    masks = segment("onnx", _request(frames, onnx_model=model, onnx_size=(32, 32)))
    np.testing.assert_array_equal(masks, truth.astype(np.int8))
    with pytest.raises(Lab4dError, match=r"red.onnx takes input x of shape \[1, 3, 32, 32\].*\[1, 3, 64, 64\]"):
        segment("onnx", _request(frames, onnx_model=model, onnx_size=(64, 64)))
    with pytest.raises(Lab4dError, match="missing.onnx for tiny.mp4 does not exist"):
        segment("onnx", _request(frames, onnx_model=tmp_path / "missing.onnx"))


# --- mediapipe ------------------------------------------------------------------------------------------------------


def _figure() -> tuple[np.ndarray, np.ndarray]:
    """A crude person (skin-coloured head and arms, shirt, trousers) on a plain wall: pose detects no one in it,
    selfie segmentation (the fallback) covers it."""
    image = np.full((256, 192, 3), (200, 205, 210), dtype=np.uint8)
    skin, shirt, trousers = (224, 172, 140), (40, 80, 160), (50, 50, 60)
    cv2.ellipse(image, (96, 50), (20, 25), 0, 0, 360, skin, -1)
    cv2.rectangle(image, (70, 78), (122, 150), shirt, -1)
    cv2.line(image, (72, 85), (45, 145), skin, 12)
    cv2.line(image, (120, 85), (147, 145), skin, 12)
    cv2.rectangle(image, (72, 150), (94, 240), trousers, -1)
    cv2.rectangle(image, (98, 150), (120, 240), trousers, -1)
    truth = np.any(image != (200, 205, 210), axis=-1)
    return image, truth


def test_mediapipe_segments_a_person_and_loses_an_empty_room():
    pytest.importorskip(
        "mediapipe", reason=f"the 'mediapipe' segmenter needs mediapipe: {masks_module.MEDIAPIPE_INSTALL}"
    )
    image, truth = _figure()
    masks = segment("mediapipe", _request(np.stack([image, image]), category="human"))
    assert all(_iou(mask, truth) >= 0.5 for mask in masks), [_iou(mask, truth) for mask in masks]
    empty = np.full((2, 256, 192, 3), (200, 205, 210), dtype=np.uint8)
    with pytest.raises(Lab4dError, match="'mediapipe' segmenter found the object in no frame of tiny.mp4"):
        segment("mediapipe", _request(empty, category="human"))
    with pytest.warns(UserWarning, match="people only"):
        segment("mediapipe", _request(np.stack([image]), category="quad"))
