"""Feature-map sizes per group, measured on the meta device."""

from __future__ import annotations

from models.feature_maps import group_map_sizes


def test_resnet50_groups_at_224_are_the_papers_strides():
    sizes = group_map_sizes("resnet50", 224)
    # The first block of groups 2-4 sees the previous stride before its strided conv.
    assert sizes == {
        1: [(56, 56)],
        2: [(28, 28), (56, 56)],
        3: [(14, 14), (28, 28)],
        4: [(7, 7), (14, 14)],
    }


def test_tinyresnet_keeps_cifar_resolution_in_group_1():
    assert group_map_sizes("tinyresnet", 32) == {
        1: [(32, 32)],
        2: [(16, 16)],
        3: [(8, 8)],
        4: [(4, 4)],
    }
