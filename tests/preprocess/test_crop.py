"""lab4d's crops: sampling an array from a raw frame through crop2raw."""

from __future__ import annotations

import numpy as np

from lab4d_core.preprocess.crop import crop_image, crop_params, inside_raw

CROP2RAW = np.array([0.7, 1.3, 5.2, -3.4])


def test_crop_samples_the_raw_image_at_the_mapped_pixel_centres():
    height, width, res = 40, 50, 32
    ys, xs = np.mgrid[:height, :width].astype(np.float32)
    ramp = np.stack([2 * xs + 3 * ys, xs - ys], axis=-1)
    out = crop_image(ramp, CROP2RAW, res)
    assert out.shape == (res, res, 2) and out.dtype == np.float32

    x, y = np.meshgrid(np.arange(res), np.arange(res))
    raw_x, raw_y = CROP2RAW[0] * x + CROP2RAW[2], CROP2RAW[1] * y + CROP2RAW[3]
    inside = (raw_x >= 0) & (raw_x <= width - 1) & (raw_y >= 0) & (raw_y <= height - 1)
    outside = (raw_x <= -1) | (raw_x >= width) | (raw_y <= -1) | (raw_y >= height)
    assert inside.any() and outside.any()
    # OpenCV interpolates at 1/32 pixel: the ramp of slope 3 is exact to 0.1.
    np.testing.assert_allclose(out[..., 0][inside], (2 * raw_x + 3 * raw_y)[inside], atol=0.1)
    np.testing.assert_allclose(out[..., 1][inside], (raw_x - raw_y)[inside], atol=0.1)
    assert not out[outside].any()


def test_nearest_keeps_masks_binary_and_matches_lab4ds_vis2d():
    mask = np.ones((40, 50), bool)
    cropped = crop_image(mask, CROP2RAW, 32, nearest=True)
    assert cropped.dtype == bool
    np.testing.assert_array_equal(cropped, inside_raw(CROP2RAW, 32, mask.shape))


def test_crop_handles_more_channels_than_opencv_remaps_at_once():
    image = np.random.default_rng(0).random((20, 20, 7)).astype(np.float32)
    out = crop_image(image, np.array([1.0, 1.0, 0.0, 0.0]), 20)
    np.testing.assert_allclose(out, image, atol=1e-6)


def test_full_crop_follows_lab4d_to_the_letter():
    np.testing.assert_allclose(crop_params(np.zeros((256, 256), bool), 256, full=True), [254 / 256, 254 / 256, 0, 0])


def test_crop_keeps_lab4ds_dtypes():
    identity = np.array([1.0, 1.0, 0.0, 0.0])
    raw_mask = np.random.default_rng(1).integers(-1, 2, (16, 16)).astype(np.int8)  # -1 = not detected
    np.testing.assert_array_equal(crop_image(raw_mask, identity, 16, nearest=True), raw_mask)
    rgb = np.random.default_rng(2).random((16, 16, 3)).astype(np.float16)
    out = crop_image(rgb, identity, 16)
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, rgb)
