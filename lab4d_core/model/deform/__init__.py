"""Deformations between canonical space and each frame; importing the package fills the registry."""

from lab4d_core.model.deform.base import DEFORMATIONS, Deformation, build_deformation
from lab4d_core.model.deform.bob import BagOfBones
from lab4d_core.model.deform.dense import DenseDeformation
from lab4d_core.model.deform.rigid import RigidDeformation

__all__ = ["DEFORMATIONS", "BagOfBones", "Deformation", "DenseDeformation", "RigidDeformation", "build_deformation"]
