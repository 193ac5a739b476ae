"""A CIFAR-style ResNet small enough to train on two CPU cores in minutes.

Deep Residual Learning for Image Recognition (He et al., CVPR 2016, arXiv 1512.03385), with the
3x3 stride-1 stem of the paper's CIFAR-10 experiments so that at 32x32 input groups 1..4 see
32x32, 16x16, 8x8 and 4x4 maps: groups 3 and 4 stay large enough for a DropBlock block to mean
something. The residual blocks are timm's ``BasicBlock``, so regularizers are placed into it
exactly as into timm's ResNet-18/50.
"""

from __future__ import annotations

import torch
from timm.models.resnet import BasicBlock
from torch import nn

__all__ = ["TinyResNet"]


class TinyResNet(nn.Module):
    """Stem conv3x3 (stride ``stem_stride``) -> four groups of BasicBlocks (strides 1, 2, 2, 2) -> global pool -> fc."""

    def __init__(
        self,
        num_classes: int = 10,
        widths: tuple[int, int, int, int] = (16, 32, 64, 128),
        depths: tuple[int, int, int, int] = (1, 1, 1, 1),
        in_chans: int = 3,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        if stem_stride not in (1, 2, 4):
            raise ValueError(f"stem_stride must be 1, 2 or 4, got {stem_stride}")
        # Stride 4 (conv stride 2 + 3x3 max-pool stride 2) is ResNet's ImageNet stem: groups 2..4
        # then sit at strides 8, 16, 32, where RetinaNet's FPN expects C3..C5.
        self.conv1 = nn.Conv2d(
            in_chans, widths[0], 3, stride=min(stem_stride, 2), padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem_stride == 4 else nn.Identity()
        in_width = widths[0]
        for index, (width, depth) in enumerate(zip(widths, depths, strict=True)):
            stride = 1 if index == 0 else 2
            blocks = []
            for block_index in range(depth):
                block_stride = stride if block_index == 0 else 1
                downsample = None
                if block_stride != 1 or in_width != width:
                    downsample = nn.Sequential(
                        nn.Conv2d(in_width, width, 1, stride=block_stride, bias=False),
                        nn.BatchNorm2d(width),
                    )
                blocks.append(
                    BasicBlock(in_width, width, stride=block_stride, downsample=downsample)
                )
                in_width = width
            self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_width, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # Zero-init the last BN of each residual branch (Goyal et al. 2017): each block starts
        # as the identity, which stabilises the large-batch arms of a study.
        for module in self.modules():
            if isinstance(module, BasicBlock):
                nn.init.zeros_(module.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.global_pool(x), 1))
