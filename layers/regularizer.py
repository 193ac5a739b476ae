"""From a ``regularizer`` config to modules placed in a backbone's groups.

``none`` places nothing. ``cbn`` turns every BatchNorm fed by a convolution into Cross-Iteration
BN (Yao et al. 2021) bound to that convolution; ``dropblock_cbn`` is DropBlock's placement plus
CBN everywhere BN was. ``dropblock`` places ``DropBlock2d`` (Ghiasi et al. 2018) after every BN
and on the shortcut of each block of a group with p > 0 (``layers.placement``). ``dropout``
places element-wise ``nn.Dropout(p)`` (Srivastava et al., JMLR 2014) at the same positions with
the same rates, so the two compare like for like.

The backbone's group map (group -> stage module and its path) comes in as arguments: the caller
looks it up in ``models`` (``group_modules``, ``group_paths``), so ``layers`` never imports
``models``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from layers.placement import LayerFactory, place_in_groups

__all__ = ["apply_regularizer", "effective_group_settings", "regularizer_factories"]

#: Regularizer-wide DropBlock options and their defaults (the paper's).
DROPBLOCK_OPTIONS = {
    "scope": "channel",
    "rescale": "batch",
    "gamma": "paper",
    "schedule": "linear",
    "kernel": "auto",
}


def effective_group_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A group's ``p``, ``block_size`` and ``size_mode`` with Darknet's aliases applied.

    ``probability`` -> ``p``; ``dropblock_size_abs`` -> ``block_size``, ``size_mode=abs``;
    ``dropblock_size_rel`` or ``dropblock_size`` -> ``block_size``, ``size_mode=rel``
    (Darknet's parser ignores rel when abs is also given, and so does this).
    """
    get = settings.get
    p = get("probability") if get("probability") is not None else get("p", 0.0)
    block_size, size_mode = get("block_size", 7), get("size_mode", "abs")
    if get("dropblock_size_abs") is not None:
        block_size, size_mode = get("dropblock_size_abs"), "abs"
    elif get("dropblock_size_rel") is not None:
        block_size, size_mode = get("dropblock_size_rel"), "rel"
    elif get("dropblock_size") is not None:
        block_size, size_mode = get("dropblock_size"), "rel"
    if size_mode == "abs" and float(block_size).is_integer():
        block_size = int(block_size)
    return {"p": float(p), "block_size": block_size, "size_mode": size_mode}


def regularizer_factories(
    name: str, groups: Mapping[str, Any], options: Mapping[str, Any] | None = None
) -> dict[int, LayerFactory]:
    """One module builder per group that has something to place (p > 0).

    ``options`` holds the regularizer-wide DropBlock settings (scope, rescale, gamma, schedule,
    kernel); missing ones take the paper's defaults.
    """
    from layers.drop_block import DropBlock2d

    factories: dict[int, LayerFactory] = {}
    if name in ("none", "cbn"):
        return factories
    dropblock_options = {
        k: (options or {}).get(k, default) for k, default in DROPBLOCK_OPTIONS.items()
    }
    for group_key, settings in groups.items():
        group = effective_group_settings(settings)
        if group["p"] <= 0:
            continue
        if name == "dropout":
            factories[int(group_key)] = lambda p=group["p"]: nn.Dropout(p)
        elif name in ("dropblock", "dropblock_cbn"):
            factories[int(group_key)] = lambda g=group: DropBlock2d(
                g["p"], g["block_size"], size_mode=g["size_mode"], **dropblock_options
            )
        else:
            raise ValueError(f"regularizer.name {name!r} has no layer to place")
    return factories


def apply_regularizer(
    model: nn.Module,
    groups: Mapping[int, nn.Module],
    group_paths: Mapping[int, str],
    name: str,
    group_settings: Mapping[str, Any],
    options: Mapping[str, Any] | None = None,
    input_size: int = 64,
) -> list[str]:
    """Place the named regularizer into ``model`` in place.

    Args:
        model: the backbone; CBN conversion traces it with one ``input_size`` image.
        groups: group number (1..4) -> the stage module of ``model`` (``models.group_modules``).
        group_paths: group number -> the dotted path of that stage (``models.group_paths``).
        name: ``none``, ``dropout``, ``dropblock``, ``cbn`` or ``dropblock_cbn``.
        group_settings: ``regularizer.groups``: group key ``"1"``..``"4"`` -> its p and size.
        options: regularizer-wide settings (DropBlock's scope, rescale, ...; CBN's window,
            burnin, cbn_mode).
        input_size: the side of the example image CBN conversion traces the model with.

    Returns ``kind:path`` for every change: ``dropblock:layer3.0.bn1`` (a layer placed after
    that BN), ``cbn:layer1.0.bn2`` (that BN became Cross-Iteration BN), preceded by what the model
    placed itself, if it says so through a ``placements()`` method (a Darknet cfg network).
    """
    kind = {"dropblock_cbn": "dropblock"}.get(name, name)
    placed = place_in_groups(
        groups, group_paths, regularizer_factories(name, group_settings, options)
    )
    # What the model's own definition placed comes first (a Darknet cfg's [dropout] and
    # batch_normalize=2 layers: ``dropblock:layers.12``, ``cmbn:layers.3.bn``).
    own = model.placements() if callable(getattr(model, "placements", None)) else []
    changes = [*own, *(f"{kind}:{path}" for path in placed)]
    if name in ("cbn", "dropblock_cbn"):
        from layers.cbn_convert import convert_to_cbn

        options = options or {}
        device = next(model.parameters()).device
        converted = convert_to_cbn(
            model,
            window=int(options.get("window", 4)),
            burnin=int(options.get("burnin", 0)),
            mode=str(options.get("cbn_mode", "cbn")),
            example_input=torch.zeros(1, 3, input_size, input_size, device=device),
        )
        changes += [f"cbn:{path}" for path in converted]
    return changes
