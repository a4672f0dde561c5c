import numpy as np

from lab4d_core.tools.preview import colorize_depth, colorize_flow


def test_flow_colours_encode_direction_and_hide_unconfident_pixels():
    flow = np.zeros((1, 4, 3))
    flow[0, 0] = [2.0, 0.0, 1.0]  # right
    flow[0, 1] = [-2.0, 0.0, 1.0]  # left: the opposite hue
    flow[0, 2] = [0.0, 0.0, 1.0]  # still: white
    flow[0, 3] = [2.0, 0.0, 0.0]  # no confidence: black
    rgb = colorize_flow(flow, max_magnitude=2.0)
    np.testing.assert_allclose(rgb[0, 0] + rgb[0, 1], [1.0, 1.0, 1.0])  # complementary colours
    np.testing.assert_allclose(rgb[0, 2], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(rgb[0, 3], [0.0, 0.0, 0.0])


def test_depth_colours_make_near_brighter_and_ignore_invalid_pixels():
    depth = np.array([[1.0, 2.0, 4.0, 0.0]])
    valid = depth > 0
    rgb = colorize_depth(depth, valid)
    brightness = rgb.sum(axis=-1)[0]
    assert brightness[0] > brightness[1] > brightness[2]
    np.testing.assert_allclose(rgb[0, 3], 0.0)
