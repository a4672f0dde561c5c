"""lab4d_core: 4D reconstruction of deformable objects from monocular videos."""

__version__ = "0.1.0"
