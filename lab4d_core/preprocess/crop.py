"""lab4d's crops: the box around the object that every training array is sampled in, and the sampling itself.

A crop is ``crop2raw = (fx, fy, cx, cy)``: array pixel (x, y) sits at raw pixel (fx*x + cx, fy*y + cy), integer
coordinates being pixel centres on both sides (lab4d's ``K2mat(crop2raw) @ [x, y, 1]`` fed to ``cv2.remap``).
"""

from __future__ import annotations

import cv2
import numpy as np

_REMAP_CHANNELS = 4
"""cv2.remap samples at most four channels at once."""


def crop_params(mask: np.ndarray, train_res: int, full: bool) -> np.ndarray:
    """lab4d's ``compute_crop_params``: crop2raw (fx, fy, cx, cy) of a ``train_res`` array.

    The box is the mask's (or, for ``full``, the whole frame's) integer centre and
    integer half-lengths, enlarged 1.2x for crops separately in x and y, so crops
    are anisotropic exactly as lab4d makes them.
    """
    if full or not mask.any():
        ys, xs = np.array([0, mask.shape[0] - 1]), np.array([0, mask.shape[1] - 1])
    else:
        ys, xs = np.nonzero(mask)
    centre = ((xs.max() + xs.min()) // 2, (ys.max() + ys.min()) // 2)
    half = [(xs.max() - xs.min()) // 2, (ys.max() - ys.min()) // 2]
    if not full:
        # A box of zero width (a one-pixel sliver) would give a degenerate crop.
        half = [max(int(1.2 * h), 4) for h in half]
    return np.array(
        [2 * half[0] / train_res, 2 * half[1] / train_res, centre[0] - half[0], centre[1] - half[1]], dtype=np.float64
    )


def inside_raw(crop2raw: np.ndarray, train_res: int, raw_shape: tuple[int, int]) -> np.ndarray:
    """(R, R) bool: array pixels whose nearest raw pixel lies inside the raw frame (lab4d's vis2d)."""
    coords = np.arange(train_res)
    raw_x = crop2raw[0] * coords + crop2raw[2]
    raw_y = crop2raw[1] * coords + crop2raw[3]
    in_x = (raw_x >= -0.5) & (raw_x < raw_shape[1] - 0.5)
    in_y = (raw_y >= -0.5) & (raw_y < raw_shape[0] - 0.5)
    return in_y[:, None] & in_x[None, :]


def crop_maps(crop2raw: np.ndarray, train_res: int) -> tuple[np.ndarray, np.ndarray]:
    """(R, R) float32 raw x and y of every array pixel, the maps ``cv2.remap`` takes."""
    coords = np.arange(train_res, dtype=np.float64)
    map_x = np.broadcast_to(crop2raw[0] * coords + crop2raw[2], (train_res, train_res))
    map_y = np.broadcast_to((crop2raw[1] * coords + crop2raw[3])[:, None], (train_res, train_res))
    return map_x.astype(np.float32), map_y.astype(np.float32)


def remap(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, nearest: bool = False) -> np.ndarray:
    """``image`` sampled at (map_x, map_y), zero outside it (lab4d's constant border), any channel count.

    The result has the image's dtype; bool (masks) and float16 (lab4d's stored arrays), which OpenCV
    cannot remap, go through uint8 and float32.
    """
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    map_x, map_y = np.asarray(map_x, np.float32), np.asarray(map_y, np.float32)
    source = image
    if image.dtype == bool:
        source = image.astype(np.uint8)
    elif image.dtype == np.float16:
        source = image.astype(np.float32)
    if source.ndim == 2 or source.shape[2] <= _REMAP_CHANNELS:
        out = cv2.remap(source, map_x, map_y, interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if source.ndim == 3 and out.ndim == 2:  # cv2 drops a single channel axis
            out = out[..., None]
    else:
        out = np.concatenate(
            [
                remap(source[..., i : i + _REMAP_CHANNELS], map_x, map_y, nearest)
                for i in range(0, source.shape[2], _REMAP_CHANNELS)
            ],
            axis=-1,
        )
    return out.astype(image.dtype, copy=False)


def crop_image(image: np.ndarray, crop2raw: np.ndarray, train_res: int, nearest: bool = False) -> np.ndarray:
    """The (R, R, ...) array whose pixel (x, y) samples ``image`` at (fx*x + cx, fy*y + cy).

    Bilinear, or nearest for masks and labels; zero where the array leaves the raw frame, as lab4d's
    ``cv2.remap`` with its default constant border gives.
    """
    return remap(image, *crop_maps(np.asarray(crop2raw, np.float64), train_res), nearest=nearest)
