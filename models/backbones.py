"""The registered backbones: the project's small CPU nets and timm's ResNets.

Each builder takes ``num_classes`` and returns a randomly initialised classifier; pretrained
weights are never downloaded (the harness compares regularizers trained from scratch).
"""

from __future__ import annotations

import timm
from torch import nn

from models.registry import register_backbone
from models.tinyresnet import TinyResNet

_RESNET_GROUPS = {1: "layer1", 2: "layer2", 3: "layer3", 4: "layer4"}


@register_backbone(groups=_RESNET_GROUPS)
def tinyresnet(num_classes: int, **kwargs: object) -> nn.Module:
    """CIFAR-style ResNet (widths 16-128, one BasicBlock per group): trains on a CPU in minutes."""
    return TinyResNet(num_classes=num_classes, **kwargs)


@register_backbone(groups=_RESNET_GROUPS)
def resnet18(num_classes: int, **kwargs: object) -> nn.Module:
    """ResNet-18 (He et al. 2016), timm's implementation."""
    return timm.create_model("resnet18", pretrained=False, num_classes=num_classes, **kwargs)


@register_backbone(groups=_RESNET_GROUPS)
def resnet50(num_classes: int, **kwargs: object) -> nn.Module:
    """ResNet-50 (He et al. 2016), timm's implementation: the DropBlock paper's backbone."""
    return timm.create_model("resnet50", pretrained=False, num_classes=num_classes, **kwargs)
