"""``python -m models <name> [--input N] [--json]``: parameters, FLOPs and groups of a backbone.

``<name>`` is a curated backbone (``--list``) or ``timm:<any timm model name>``, whose groups
come from its ``feature_info`` (the blocks of each group are listed too).

``python -m models darknet:path/to/net.cfg [--input N] [--json]`` prints the cfg network's layer
table in Darknet's style (index, type, filters, size/stride, input -> output, BFLOPs).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from models import (
    TIMM_PREFIX,
    create_backbone,
    get_spec,
    group_blocks,
    group_paths,
    list_backbones,
    measure_complexity,
)

DARKNET_PREFIX = "darknet:"


def _darknet(path: str, args: argparse.Namespace) -> int:
    import torch

    from models.darknet import DarknetCfgError, DarknetNet, parse_cfg
    from models.darknet.table import format_table, table_dict

    try:
        with torch.device("meta"):  # the table needs shapes only: nothing is allocated
            net = DarknetNet(parse_cfg(path), num_classes=args.num_classes, input_size=args.input)
    except DarknetCfgError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(table_dict(net)))
    else:
        print(format_table(net))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m models", description=__doc__)
    parser.add_argument(
        "name",
        nargs="?",
        help=f"one of: {', '.join(list_backbones())}; or {TIMM_PREFIX}<any timm model name>; "
        f"or {DARKNET_PREFIX}path/to/net.cfg",
    )
    parser.add_argument(
        "--input", type=int, default=None, help="square input side in pixels (224; a cfg's own)"
    )
    parser.add_argument(
        "--num-classes", type=int, default=None, help="classifier outputs (1000; a cfg's own)"
    )
    parser.add_argument("--json", action="store_true", help="emit JSON instead of text")
    parser.add_argument("--list", action="store_true", help="list the registered backbones")
    return parser


def _list() -> int:
    for name in list_backbones():
        print(f"{name:14s} {get_spec(name).description}")
    print(
        f"\nAny timm model: {TIMM_PREFIX}<name> here, backbone=timm backbone.name=<name> in "
        'run.py (names: python -c "import timm; print(timm.list_models())").'
    )
    return 0


def _report(name: str, args: argparse.Namespace, stats: Any, layout: tuple[dict, dict]) -> None:
    paths, blocks = layout
    if args.json:
        groups = {
            str(g): {"path": p, **({"blocks": list(blocks[g])} if g in blocks else {})}
            for g, p in paths.items()
        }
        fields = ("params", "weight_params", "flops")
        print(
            json.dumps(
                {
                    "name": name,
                    "input": args.input,
                    **{f: getattr(stats, f) for f in fields},
                    "groups": groups,
                }
            )
        )
        return
    print(f"{name} @ {args.input}x{args.input}, {args.num_classes} classes")
    print(f"  parameters: {stats.params:,} ({stats.params / 1e6:.2f} M)")
    print(
        f"  conv + classifier weights: {stats.weight_params:,} ({stats.weight_params / 1e6:.2f} M, Darknet's #Parameter)"
    )
    print(f"  FLOPs:      {stats.flops:,} ({stats.flops / 1e9:.3f} GFLOPs, 2 x MACs)")
    print(f"  groups:     {', '.join(f'{g}={p}' for g, p in paths.items())}")
    for g, names in blocks.items():
        print(f"  group {g} blocks ({len(names)}): {', '.join(names)}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.list or args.name is None:
        return _list()
    if args.name.startswith(DARKNET_PREFIX):
        return _darknet(args.name[len(DARKNET_PREFIX) :], args)
    try:
        spec = get_spec(args.name)
        if not spec.groups and spec.locate is None:
            raise ValueError(f"backbone {spec.name!r} needs a cfg: {DARKNET_PREFIX}path/to/net.cfg")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.input = args.input or 224
    args.num_classes = args.num_classes or 1000
    try:
        model = create_backbone(spec.name, num_classes=args.num_classes)
        layout = group_paths(model, spec.name), group_blocks(model, spec.name) or {}
        stats = measure_complexity(model, args.input)
    except (ValueError, TypeError, AssertionError, RuntimeError) as err:
        # a timm model fixed to one input size (a ViT at another --input) says so here
        print(f"error: {spec.name} at --input {args.input}: {err}", file=sys.stderr)
        return 2
    _report(spec.name, args, stats, layout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
