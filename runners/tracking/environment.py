"""Facts about where a run executes: code version, package versions, device and peak memory."""

from __future__ import annotations

import hashlib
import platform
import resource
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

from runners.core.record import CodeVersion

__all__ = ["code_version", "package_versions", "peak_memory_mb", "resolve_device"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_PACKAGES = ("torch", "torchvision", "timm", "hydra-core", "omegaconf", "wandb", "numpy", "pillow")


def code_version(root: Path = PROJECT_ROOT) -> CodeVersion:
    """The project's git commit, whether tracked files differ from it, and a fingerprint of
    those edits (``None`` fields outside git)."""

    def git(*args: str) -> bytes | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, timeout=30, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout

    commit = (git("rev-parse", "HEAD") or b"").decode().strip()
    if not commit:
        return CodeVersion()
    status = git("status", "--porcelain", "--untracked-files=no")
    if status is None:
        return CodeVersion(commit=commit)
    if not status.strip():
        return CodeVersion(commit=commit, dirty=False)
    diff = git("diff", "HEAD", "--binary", "--no-color", "--no-ext-diff")
    edits = None if diff is None else hashlib.sha256(diff).hexdigest()[:16]
    return CodeVersion(commit=commit, dirty=True, edits=edits)


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide a run's numbers, plus Python's."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def resolve_device(requested: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda was requested but torch.cuda.is_available() is False")
    return torch.device(requested)


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak allocated by the caching allocator. CPU: the process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024
