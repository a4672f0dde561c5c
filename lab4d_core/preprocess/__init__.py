"""Turning what a video holds into lab4d's processed layout and the starting points of training."""
