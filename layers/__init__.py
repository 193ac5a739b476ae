"""Regularization layers and the code that places them into a backbone's groups.

- ``drop_block2d`` / ``DropBlock2d``: DropBlock (Ghiasi, Lin and Le 2018), reference
  implementation; the fused Triton kernel (``layers.drop_block_triton``) is picked on CUDA.
- ``CrossIterationBatchNorm2d`` / ``convert_to_cbn``: Cross-Iteration BN (Yao et al. 2021) and
  Darknet's CmBN, bound to the convolution that feeds each BatchNorm.
- ``place_in_groups``: a module after every BN and on every shortcut of a backbone's groups;
  which regularizer places what is ``regularizers/`` (``regularizers.placement``).
"""

from layers.cbn_convert import convert_to_cbn
from layers.cross_iteration_bn import CrossIterationBatchNorm2d
from layers.drop_block import DropBlock2d, drop_block2d
from layers.placement import place_in_groups
from layers.schedule import set_schedule_step

__all__ = [
    "CrossIterationBatchNorm2d",
    "DropBlock2d",
    "convert_to_cbn",
    "drop_block2d",
    "place_in_groups",
    "set_schedule_step",
]
