"""The registered backbones: the project's small CPU nets, timm's ResNets and CSPNets.

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


# The CSPNet backbones of the seed (Wang et al., CVPRW 2020, arXiv 1911.11929). Groups follow the
# DropBlock paper by output stride: group g is the stage at stride 2 ** (g + 1) (4, 8, 16, 32).
# CSPDarknet-53 has one more stage at stride 2 (``stages.0``), which belongs to no group.


@register_backbone(groups={1: "stages.0", 2: "stages.1", 3: "stages.2", 4: "stages.3"})
def cspresnext50(num_classes: int, **kwargs: object) -> nn.Module:
    """CSPResNeXt-50 (Wang et al. 2020), timm's implementation: one of the seed's networks."""
    return timm.create_model("cspresnext50", pretrained=False, num_classes=num_classes, **kwargs)


@register_backbone(groups={1: "stages.1", 2: "stages.2", 3: "stages.3", 4: "stages.4"})
def cspdarknet53(num_classes: int, **kwargs: object) -> nn.Module:
    """CSPDarknet-53 (Wang et al. 2020), timm's implementation: the seed's other network."""
    return timm.create_model("cspdarknet53", pretrained=False, num_classes=num_classes, **kwargs)
