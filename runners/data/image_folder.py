"""Listing an ImageFolder split (``<split>/<class>/**/<image>``) without hanging on symlink loops.

torchvision's ``ImageFolder`` walks each class folder with ``os.walk(followlinks=True)``, which
has no cycle detection: a link back to an ancestor (``train/a/loop -> ..``) makes it walk ever
longer paths until the OS refuses them, and several such links multiply the work until the job
looks hung. :func:`scan_split` lists the same samples in the same order, but remembers the real
directory (``st_dev``, ``st_ino``) of every folder it enters, and refuses a folder reached twice:

- a symlink that leads back to a folder on its own path (a loop), or
- two paths that lead to the same real folder (its images would count twice, and a chain of
  such links grows exponentially).

Either is one :class:`~runners.data.images.DataError` naming both paths; the tree is not walked
further. Image files may be symlinks to anywhere (a subset of a larger set built with links).

An empty split is an error too: no class folder, or a class folder without an image file.
"""

from __future__ import annotations

import os
from pathlib import Path

from torchvision.datasets.folder import IMG_EXTENSIONS

from runners.data.images import DataError

__all__ = ["IMG_EXTENSIONS", "scan_split"]


def _walk(top: str, seen: dict[tuple[int, int], str]) -> list[tuple[str, list[str]]]:
    """``(folder, sorted file names)`` of ``top`` and every folder below it, links followed."""
    found: list[tuple[str, list[str]]] = []
    pending = [top]
    while pending:
        folder = pending.pop()
        try:
            info = os.stat(folder)
        except OSError as err:
            raise DataError(f"{folder}: cannot read the folder ({err.strerror})") from None
        key = (info.st_dev, info.st_ino)
        if key in seen:
            first = seen[key]
            loop = folder.startswith(first + os.sep)
            what = "a symlink loop" if loop else "one folder reached twice through a symlink"
            raise DataError(
                f"{folder}: {what}: it is the folder {first} again (remove the link, or point "
                "data.root at a tree where each folder appears once)"
            )
        seen[key] = folder
        files, folders = [], []
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    (folders if entry.is_dir() else files).append(entry.name)
        except OSError as err:
            raise DataError(f"{folder}: cannot read the folder ({err.strerror})") from None
        found.append((folder, sorted(files)))
        pending += [os.path.join(folder, name) for name in sorted(folders, reverse=True)]
    return found


def scan_split(split_dir: str | os.PathLike[str]) -> tuple[list[str], list[tuple[str, int]]]:
    """The classes and ``(path, class index)`` samples of one ImageFolder split.

    Classes are the sub-folders of ``split_dir`` in sorted order; samples are their image files
    (torchvision's ``IMG_EXTENSIONS``, any case) in torchvision's order, so a data set lists
    exactly as ``datasets.ImageFolder`` would list it.

    Raises:
        DataError: no class folder, a class without images, a symlink loop or a folder reached
            twice, or a folder that cannot be read; the message starts with the path at fault.
    """
    root = os.path.expanduser(os.fspath(split_dir))
    try:
        with os.scandir(root) as entries:
            classes = sorted(entry.name for entry in entries if entry.is_dir())
    except OSError as err:
        raise DataError(f"{root}: cannot read the folder ({err.strerror})") from None
    if not classes:
        raise DataError(f"{root}: no class folders (expected {root}/<class>/<image>)")
    info = os.stat(root)
    seen: dict[tuple[int, int], str] = {(info.st_dev, info.st_ino): root}
    samples: list[tuple[str, int]] = []
    for index, name in enumerate(classes):
        before = len(samples)
        for folder, files in sorted(_walk(os.path.join(root, name), seen)):
            samples += [
                (os.path.join(folder, file), index)
                for file in files
                if file.lower().endswith(IMG_EXTENSIONS)
            ]
        if len(samples) == before:
            raise DataError(
                f"{Path(root) / name}: no image files in class folder {name!r} "
                f"(expected {', '.join(IMG_EXTENSIONS)})"
            )
    return classes, samples
