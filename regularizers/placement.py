"""From a ``regularizer`` config to changes made to a backbone, driven by the registry.

:func:`apply_regularizer` runs the named regularizer's placement steps (its registry entry's
``steps``) and returns what they changed, ``kind:path`` per change, for the run record. The
steps a regularizer is made of come from two builders: :func:`in_groups` (a module after every
BN and on the shortcut of each block of a group with p > 0, ``layers.placement``; on a network
whose blocks are found generically, a timm model, after each block and its conv-fed BNs,
``layers.block_placement``) and whatever
a regularizer's own file defines (Cross-Iteration BN's conversion, ``regularizers/cbn.py``).

The backbone's group map (group -> stage module and its path) comes in as arguments: the caller
looks it up in ``models``, so neither ``layers`` nor ``regularizers`` imports ``models``. Light
to import: torch and the layers are imported when something is placed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from regularizers.base import defaults
from regularizers.registry import Step, get

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["Target", "apply_regularizer", "in_groups"]

#: Builds one module for one position: (the group's effective settings ``p``, ``block_size``,
#: ``size_mode``; the regularizer's options) -> the module.
Layer = Callable[[Mapping[str, Any], Mapping[str, Any]], "nn.Module"]


@dataclass(frozen=True)
class Target:
    """What a placement step changes: the model, its groups and the per-group settings."""

    model: nn.Module
    #: Group number (1..4) -> the stage module of ``model`` (``models.group_modules``).
    groups: Mapping[int, nn.Module]
    #: Group number -> the dotted path of that stage (``models.group_paths``).
    group_paths: Mapping[int, str]
    #: ``regularizer.groups``: group key ``"1"``..``"4"`` -> its p and block size.
    group_settings: Mapping[str, Any]
    #: The side of the example image a step may trace the model with.
    input_size: int
    #: Group number -> its block paths, for a backbone whose blocks are found in the model
    #: (``models.group_blocks``: a timm model); None: the blocks are the stages' children.
    group_blocks: Mapping[int, Sequence[str]] | None = None

    def example_input(self) -> torch.Tensor:
        """One zero image of ``input_size`` on the model's device."""
        import torch

        device = next(self.model.parameters()).device
        return torch.zeros(1, 3, self.input_size, self.input_size, device=device)


def in_groups(kind: str, layer: Layer, needs_maps: bool = False) -> Step:
    """A step placing ``layer(group, options)`` after every BN and on every shortcut of each
    group with p > 0 (after each block and its conv-fed BNs on a generic network); each position
    is recorded as ``<kind>:<path>``. ``needs_maps``: the layer drops from N x C x H x W maps, so
    a group of token blocks (a ViT) is an error naming ``kind``."""

    def step(target: Target, options: Mapping[str, Any]) -> list[str]:
        from layers.block_placement import place_after_blocks
        from layers.placement import place_in_groups
        from layers.regularizer import effective_group_settings

        factories = {}
        for group_key, settings in target.group_settings.items():
            group = effective_group_settings(settings)
            if group["p"] > 0:
                factories[int(group_key)] = partial(layer, group, options)
        if target.group_blocks is None:
            placed = place_in_groups(target.groups, target.group_paths, factories)
        else:
            placed = place_after_blocks(
                target.model, target.group_blocks, factories, target.example_input(), needs_maps
            )
        return [f"{kind}:{path}" for path in placed]

    return step


def apply_regularizer(
    model: nn.Module,
    groups: Mapping[int, nn.Module],
    group_paths: Mapping[int, str],
    name: str,
    group_settings: Mapping[str, Any],
    options: Mapping[str, Any] | None = None,
    input_size: int = 64,
    group_blocks: Mapping[int, Sequence[str]] | None = None,
) -> list[str]:
    """Place the regularizer ``name`` into ``model`` in place.

    Args:
        model: the backbone; CBN conversion traces it with one ``input_size`` image.
        groups: group number (1..4) -> the stage module of ``model`` (``models.group_modules``).
        group_paths: group number -> the dotted path of that stage (``models.group_paths``).
        name: a registered regularizer (``regularizers.registry.names()``).
        group_settings: ``regularizer.groups``: group key ``"1"``..``"4"`` -> its p and size.
        options: its other keys (DropBlock's scope, rescale, ...; CBN's window, burnin,
            cbn_mode); missing ones take the schema's defaults.
        input_size: the side of the example image CBN conversion traces the model with.
        group_blocks: group number -> its block paths (``models.group_blocks``) for a network
            whose blocks are found in the model (a timm model); None for the curated ones.

    Returns ``kind:path`` for every change: ``dropblock:layer3.0.bn1`` (a layer placed after
    that BN), ``cbn:layer1.0.bn2`` (that BN became Cross-Iteration BN), preceded by what the model
    placed itself, if it says so through a ``placements()`` method (a Darknet cfg network).
    """
    spec = get(name)
    settings = {**defaults(spec.schema), **(options or {})}
    target = Target(model, groups, group_paths, group_settings, input_size, group_blocks)
    # What the model's own definition placed comes first (a Darknet cfg's [dropout] and
    # batch_normalize=2 layers: ``dropblock:layers.12``, ``cmbn:layers.3.bn``).
    changes = list(model.placements()) if callable(getattr(model, "placements", None)) else []
    for step in spec.steps:
        changes += step(target, settings)
    return changes
