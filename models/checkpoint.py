"""Local pretrained weights, loaded into a built backbone (issue 16).

Only local files are read: nothing is downloaded. ``.safetensors`` files are read with
safetensors; anything else with ``torch.load(weights_only=True)``, which refuses a pickle that
needs more than tensors and containers (such a pickle could run code). The load is strict on
names and shapes but for the classifier, whose mismatching keys (a 1000-class checkpoint, a
10-class run) are left initialised and reported.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

#: Keys under which training checkpoints keep the weights, in the order they are tried: timm's
#: train checkpoints ("state_dict", "state_dict_ema"), torchvision's references ("model"),
#: Lightning ("state_dict") and others ("model_state").
WRAPPER_KEYS = ("state_dict", "model", "model_state", "state_dict_ema")
#: The prefix ``DistributedDataParallel`` puts on every key; stripped when every key has it.
DDP_PREFIX = "module."
#: How many keys of each kind an error names before "... and N more".
SHOWN = 8


class CheckpointError(ValueError):
    """The file, and what is wrong with it, in one line."""


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_checkpoint` did: tensors copied, classifier keys left initialised."""

    path: Path
    loaded: int
    reinitialised: tuple[str, ...]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _refusal(err: pickle.UnpicklingError) -> str:
    """torch's reason for refusing a pickle, without its advice to load it unsafely."""
    text = str(err)
    marker = "WeightsUnpickler error:"
    reason = text.split(marker, 1)[1] if marker in text else text
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    return (lines[0] if lines else "no reason given").split(" Please ")[0]


def _read(path: Path) -> object:
    """The file's contents as safetensors or ``torch.load(weights_only=True)`` returns them."""
    try:
        if path.suffix.lower() == ".safetensors":
            return load_file(path, device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: torch.load(weights_only=True) refused it ({_refusal(err)}); "
            "only tensors and containers are loaded, never arbitrary pickled objects"
        ) from None
    except Exception as err:  # any reader's failure on a corrupt file is the same problem
        detail = _one_line(str(err))[:200]
        raise CheckpointError(
            f"{path}: unreadable or corrupt ({type(err).__name__}: {detail})"
        ) from err


def _describe(value: object) -> str:
    name = type(value).__name__
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"


def _unwrap(path: Path, content: object) -> dict[str, torch.Tensor]:
    """The state dict inside ``content``: one wrapper level unwrapped, a DDP prefix stripped."""
    if not isinstance(content, Mapping):
        raise CheckpointError(
            f"{path}: holds {_describe(content)}, not a mapping of names to tensors"
        )
    for key in WRAPPER_KEYS:
        if isinstance(content.get(key), Mapping):
            content = content[key]
            break
    bad_keys = [k for k in content if not isinstance(k, str)]
    if bad_keys:
        raise CheckpointError(
            f"{path}: {len(bad_keys)} key(s) are not strings (first: {bad_keys[0]!r})"
        )
    bad = [k for k, v in content.items() if not isinstance(v, torch.Tensor)]
    if bad:
        found = ", ".join(f"{k!r} is {_describe(content[k])}" for k in bad[:SHOWN])
        more = f", ... and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
        raise CheckpointError(
            f"{path}: not a mapping of names to tensors: {len(bad)} value(s) are not tensors "
            f"({found}{more})"
        )
    if not content:
        raise CheckpointError(f"{path}: holds zero tensors")
    if all(k.startswith(DDP_PREFIX) for k in content):
        return {k[len(DDP_PREFIX) :]: v for k, v in content.items()}
    return dict(content)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a local weights file. Never downloads anything.

    ``.safetensors`` files are read with safetensors, anything else with
    ``torch.load(weights_only=True)`` (never falls back to ``weights_only=False``). A dict holding
    one of :data:`WRAPPER_KEYS` as a mapping is unwrapped (the first found), and a leading
    ``module.`` is stripped when every key has it. Raises :class:`CheckpointError` (one line, the
    path first) for a missing file, a directory, an unreadable, corrupt or refused file, a content
    that is not a mapping of names to tensors, or zero tensors.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a weights file")
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    return _unwrap(path, _read(path))


def _listed(kind: str, items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    more = f", ... and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return f"{len(items)} {kind} ({shown}{more})"


def _classifiers(model: nn.Module, classifier: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """The classifier's module paths: the argument, checked, or timm's ``pretrained_cfg``'s."""
    if classifier is not None:
        names = (classifier,) if isinstance(classifier, str) else tuple(classifier)
        for name in names:
            try:
                model.get_submodule(name)
            except AttributeError:
                raise ValueError(
                    f"classifier {name!r} is not a module of {type(model).__name__}"
                ) from None
        return names
    cfg = getattr(model, "pretrained_cfg", None)
    found = cfg.get("classifier") if isinstance(cfg, Mapping) else None
    if not found:
        return ()
    names = (found,) if isinstance(found, str) else tuple(found)
    modules = dict(model.named_modules())
    return tuple(name for name in names if name in modules)


def _in_classifier(key: str, classifiers: tuple[str, ...]) -> bool:
    return any(key.startswith(name + ".") for name in classifiers if name)


def _shape(tensor: torch.Tensor) -> str:
    return str(list(tensor.shape))


def fit_checkpoint(
    model: nn.Module, path: str | Path, classifier: str | tuple[str, ...] | None = None
) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    """The file's tensors that ``model`` takes, and the classifier keys left initialised; any
    other missing, unexpected or mis-shaped key is one :class:`CheckpointError` (see
    :func:`load_checkpoint`). Copies nothing, so it also checks a ``meta``-device model."""
    path = Path(path)
    state = read_state_dict(path)
    expected = model.state_dict()
    classifiers = _classifiers(model, classifier)
    missing = [k for k in expected if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched, reinitialised = [], []
    for key, tensor in state.items():
        if key not in expected or tensor.shape == expected[key].shape:
            continue
        if _in_classifier(key, classifiers):
            reinitialised.append(key)
        else:
            mismatched.append(f"{key}: file {_shape(tensor)} vs model {_shape(expected[key])}")
    if missing or unexpected or mismatched:
        problems = [
            _listed(kind, items)
            for kind, items in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("mis-shaped", mismatched),
            )
            if items
        ]
        raise CheckpointError(f"{path}: does not fit {type(model).__name__}: {'; '.join(problems)}")
    return {k: v for k, v in state.items() if k not in reinitialised}, tuple(reinitialised)


def load_checkpoint(
    model: nn.Module, path: str | Path, classifier: str | tuple[str, ...] | None = None
) -> LoadReport:
    """Load the file's tensors into ``model``, strict on names and shapes, before regularizers.

    ``classifier`` is the classifier's dotted module path (timm's
    ``model.pretrained_cfg["classifier"]``: "fc", "head.fc", ...); None takes it from the model's
    ``pretrained_cfg`` when there is one. Classifier keys whose shapes differ from the file's are
    left initialised and listed in :attr:`LoadReport.reinitialised`. Any other missing key (but
    ``num_batches_tracked``, which older files lack), unexpected key or shape mismatch is one
    :class:`CheckpointError` listing them all with counts. Buffers (BatchNorm statistics) are
    loaded too; dtypes are converted to the model's.
    """
    path = Path(path)
    filtered, reinitialised = fit_checkpoint(model, path, classifier)
    try:  # names and shapes fit (checked above); copy_ converts dtypes
        model.load_state_dict(filtered, strict=False)
    except RuntimeError as err:
        raise CheckpointError(
            f"{path}: could not copy into {type(model).__name__} ({_one_line(str(err))[:200]})"
        ) from err
    return LoadReport(path=path, loaded=len(filtered), reinitialised=reinitialised)
