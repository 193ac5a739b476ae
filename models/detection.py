"""RetinaNet on any registered backbone: an FPN over the backbone's groups 2..4.

Focal Loss for Dense Object Detection (Lin et al., ICCV 2017, arXiv 1708.02002), the detector of
the DropBlock paper's COCO experiment (Table 6: 36.8 -> 38.4 AP). The detector is torchvision's
``RetinaNet``; only the body is ours: :class:`GroupFeatures` returns the outputs of groups 2, 3
and 4 (C3, C4, C5 on a ResNet), torchvision's ``FeaturePyramidNetwork`` builds P3..P5 and
``LastLevelP6P7`` adds P6 and P7 from P5 (as torchvision's RetinaNet v2 does). Because the body
is the very module the registry built, a regularizer placed in its groups (DropBlock in groups 3
and 4, CBN on its BNs) acts in the detector exactly as in the classifier.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelP6P7

from models.registry import group_paths

__all__ = [
    "FEATURE_GROUPS",
    "BackboneWithFPN",
    "GroupFeatures",
    "build_retinanet",
    "group_output_paths",
]

#: Groups whose outputs feed the FPN (C3, C4, C5 in the RetinaNet paper).
FEATURE_GROUPS = (2, 3, 4)


class _Stop(Exception):
    """Raised by the hook of the last group: nothing after it (the classifier head) runs."""


class GroupFeatures(nn.Module):
    """Run ``backbone`` up to its last wanted group and return each group's output.

    Forward hooks on the group modules collect the maps, so this works for any backbone whose
    groups the registry names, without knowing how its forward is written.
    """

    def __init__(self, backbone: nn.Module, group_paths: dict[int, str]) -> None:
        super().__init__()
        self.body = backbone
        self.group_paths = dict(group_paths)
        self._maps: dict[int, torch.Tensor] = {}
        last = max(self.group_paths)
        for group, path in self.group_paths.items():
            module = backbone.get_submodule(path)
            module.register_forward_hook(self._hook(group, stop=group == last))

    def _hook(self, group: int, stop: bool):
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            self._maps[group] = output
            if stop:
                raise _Stop

        return hook

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        self._maps = {}
        with contextlib.suppress(_Stop):
            self.body(x)
        maps, self._maps = self._maps, {}
        missing = set(self.group_paths) - set(maps)
        if missing:
            raise RuntimeError(f"backbone forward never reached group(s) {sorted(missing)}")
        return OrderedDict((str(g), maps[g]) for g in sorted(self.group_paths))


class BackboneWithFPN(nn.Module):
    """:class:`GroupFeatures` then an FPN with P6/P7; ``out_channels`` is what RetinaNet reads."""

    def __init__(
        self, backbone: nn.Module, group_paths: dict[int, str], image_size: int, out_channels: int
    ) -> None:
        super().__init__()
        self.features = GroupFeatures(backbone, group_paths)
        in_channels = self._channels(image_size)
        self.fpn = FeaturePyramidNetwork(
            in_channels, out_channels, extra_blocks=LastLevelP6P7(out_channels, out_channels)
        )
        self.out_channels = out_channels

    @torch.no_grad()
    def _channels(self, image_size: int) -> list[int]:
        was_training = self.training
        self.features.eval()
        maps = self.features(torch.zeros(1, 3, image_size, image_size))
        self.features.train(was_training)
        return [m.shape[1] for m in maps.values()]

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return self.fpn(self.features(x))


def group_output_paths(model: nn.Module, backbone_name: str) -> dict[int, str]:
    """The module whose output is each group's output: the group's own module for a registered
    backbone; the group's last layer for a Darknet cfg network (its groups are layer ranges)."""
    if callable(getattr(model, "group_layers", None)):
        return {g: f"layers.{max(indices)}" for g, indices in model.group_layers().items()}
    return group_paths(model, backbone_name)


def build_retinanet(
    backbone: nn.Module,
    backbone_name: str,
    *,
    num_classes: int,
    image_size: int,
    fpn_channels: int,
    anchor_sizes: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    detections_per_img: int = 100,
    score_thresh: float = 0.05,
) -> RetinaNet:
    """torchvision's RetinaNet with ``backbone``'s groups 2..4 as C3..C5.

    ``anchor_sizes`` are the base anchor side for P3..P7 (the paper uses 32..512 at 800 px); each
    level has three scales (2^0, 2^(1/3), 2^(2/3)) and three aspect ratios, as in the paper.
    Images are expected at ``image_size`` square (letterboxed by the data pipeline), so the
    detector's own transform only normalises (``min_size = max_size = image_size``).
    """
    groups = group_output_paths(backbone, backbone_name)
    body = BackboneWithFPN(
        backbone, {g: groups[g] for g in FEATURE_GROUPS}, image_size, fpn_channels
    )
    if len(anchor_sizes) != 5:
        raise ValueError(f"anchor_sizes needs 5 values (P3..P7), got {list(anchor_sizes)}")
    anchors = AnchorGenerator(
        tuple((s, round(s * 2 ** (1 / 3)), round(s * 2 ** (2 / 3))) for s in anchor_sizes),
        ((0.5, 1.0, 2.0),) * 5,
    )
    return RetinaNet(
        body,
        num_classes=num_classes,
        min_size=image_size,
        max_size=image_size,
        image_mean=list(mean),
        image_std=list(std),
        anchor_generator=anchors,
        detections_per_img=detections_per_img,
        score_thresh=score_thresh,
    )
