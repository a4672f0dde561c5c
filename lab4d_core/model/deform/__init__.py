"""Deformations between canonical space and each frame; importing the package fills the registry."""

from lab4d_core.model.deform.base import DEFORMATIONS, Deformation, build_deformation
from lab4d_core.model.deform.bob import BagOfBones
from lab4d_core.model.deform.dense import DenseDeformation
from lab4d_core.model.deform.rigid import RigidDeformation
from lab4d_core.model.deform.skel import ComposedDeformation, SkeletonDeformation

__all__ = [
    "DEFORMATIONS",
    "BagOfBones",
    "ComposedDeformation",
    "Deformation",
    "DenseDeformation",
    "RigidDeformation",
    "SkeletonDeformation",
    "build_deformation",
]
