"""Checking a COCO instances file before anything trains on it: structure, types, ids, paths.

An annotation file is data, and data is not trusted: it may come from a converter with a bug, a
colleague's folder or a download. :func:`validate_coco_file` reads one and returns a clean copy
holding only what the harness uses, or raises :class:`~runners.data.images.DataError` with one line
naming the file and the entry (``images[3]``, ``annotations[17] (id 42)``). Checked:

- size: at most ``max_bytes`` (``data.max_annotation_mb``) before a byte is parsed; UTF-8 JSON;
  nesting deeper than Python's JSON reader can follow is an error, not a crash;
- structure: an object with lists ``images``, ``annotations``, ``categories`` of objects;
- types: ids are integers (not booleans, not strings; image and category ids in ``[0, 2^63)``,
  annotation ids in ``[1, 2^63)`` because COCOeval counts a match with ground truth id 0 as a
  miss), unique per list; ``bbox`` is 4 finite numbers within ±1e9 with ``w, h >= 0``;
  ``area`` a finite number >= 0 (``w * h`` when absent: COCOeval needs it); ``iscrowd`` 0 or 1
  (0 when absent); names are text;
- references: every annotation's ``image_id`` is an image and its ``category_id`` a category;
- paths: ``file_name`` is relative, has no ``..``, and its real path (symlinks followed) is a
  file inside the image folder's real path.

Fields the harness does not read (``segmentation``, ``info``, ``licenses``, ...) are left out of
the returned copy, so nothing unchecked reaches pycocotools, COCOeval or a DataLoader worker.

:func:`validated_coco` keeps the last validated copy of each file for the loader of the same
process, so the preflight's parse of a large file (COCO train2017: 448 MB) is not repeated.
"""

from __future__ import annotations

import json
import math
import os
import reprlib
import stat
from pathlib import Path
from typing import Any

from runners.data.images import DataError

__all__ = ["validate_coco_file", "validated_coco"]

_MAX_ID = 2**63
_MAX_COORD = 1e9
_LISTS = ("images", "annotations", "categories")

#: (file, image folder, limit) -> ((size, mtime_ns, inode), clean dataset) of the last validation.
_cache: dict[tuple[str, str | None, int | None], tuple[tuple[int, int, int], dict[str, Any]]] = {}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60


def _shown(value: Any) -> str:
    """A short repr, also of a value nested a thousand levels deep."""
    return _REPR.repr(value)


def _text(value: Any) -> bool:
    """A string that can be written back as UTF-8 (no lone surrogates from ``\\ud800`` escapes)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: Per list: the fields every entry must have.
_REQUIRED = {
    "images": ("id", "file_name"),
    "annotations": ("id", "image_id", "category_id", "bbox"),
    "categories": ("id",),
}


class _Checker:
    """The checks of one file. ``where`` is an entry (``images[3]``); errors name the field."""

    def __init__(self, path: Path, images_dir: Path | None) -> None:
        self.path = path
        self.images_dir = images_dir
        self.images_real = None if images_dir is None else os.path.realpath(images_dir)

    def fail(self, where: str, message: str) -> DataError:
        return DataError(f"{self.path}: {where} {message}")

    def entry(self, key: str, position: int, entry: Any) -> dict[str, Any]:
        """The entry itself, once it is an object with every required field."""
        where = f"{key}[{position}]"
        if not isinstance(entry, dict):
            raise self.fail(where, f"must be an object, got {_shown(entry)}")
        missing = [field for field in _REQUIRED[key] if field not in entry]
        if missing:
            raise self.fail(where, f"has no {', '.join(missing)}")
        return entry

    def id_of(self, where: str, entry: dict[str, Any], field: str, low: int) -> int:
        value = entry[field]
        if not _is_int(value) or not low <= value < _MAX_ID:
            raise self.fail(
                f"{where}.{field}", f"must be an integer in [{low}, 2^63), got {_shown(value)}"
            )
        return value

    def image(self, where: str, entry: dict[str, Any]) -> dict[str, Any]:
        clean = {"id": self.id_of(where, entry, "id", 0)}
        clean["file_name"] = self.file_name(f"{where}.file_name", entry["file_name"])
        for field in ("width", "height"):
            if field in entry:
                value = entry[field]
                if not _is_int(value) or not 1 <= value <= _MAX_COORD:
                    raise self.fail(
                        f"{where}.{field}", f"must be a positive integer, got {_shown(value)}"
                    )
                clean[field] = value
        return clean

    def file_name(self, where: str, name: Any) -> str:
        if not _text(name) or not name or "\x00" in name:
            raise self.fail(where, f"must be a non-empty path, got {_shown(name)}")
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts:
            folder = f" {self.images_dir}" if self.images_dir else ""
            raise self.fail(
                where,
                f"{name!r} must be a path inside the image folder{folder} (relative, without '..')",
            )
        if self.images_dir is None or self.images_real is None:  # scoring: no image is read
            return name
        if len(relative.parts) == 1:  # the common case: one lstat, no symlink to follow
            try:
                mode = os.lstat(os.path.join(self.images_real, name)).st_mode
            except OSError:
                mode = 0
            if stat.S_ISREG(mode):
                return name
        real = os.path.realpath(self.images_dir / relative)
        if os.path.commonpath([real, self.images_real]) != self.images_real:
            raise self.fail(
                where,
                f"{name!r} leads out of the image folder {self.images_dir} "
                f"(through a symlink, to {real})",
            )
        if not os.path.isfile(real):
            raise self.fail(where, f"{name!r}: no such file in {self.images_dir}")
        return name

    def annotation(self, where: str, entry: dict[str, Any]) -> dict[str, Any]:
        clean = {
            "id": self.id_of(where, entry, "id", 1),
            "image_id": self.id_of(where, entry, "image_id", 0),
            "category_id": self.id_of(where, entry, "category_id", 0),
        }
        bbox = entry["bbox"]
        ok = (
            isinstance(bbox, list)
            and len(bbox) == 4
            and all(_is_number(v) and math.isfinite(v) and abs(v) <= _MAX_COORD for v in bbox)
        )
        if not ok or bbox[2] < 0 or bbox[3] < 0:
            raise self.fail(
                f"{where}.bbox",
                "must be [x, y, w, h]: 4 finite numbers within ±1e9, w and h >= 0, "
                f"got {_shown(bbox)}",
            )
        clean["bbox"] = [float(v) for v in bbox]
        area = entry.get("area", clean["bbox"][2] * clean["bbox"][3])
        if not (_is_number(area) and math.isfinite(area) and area >= 0):
            raise self.fail(f"{where}.area", f"must be a finite number >= 0, got {_shown(area)}")
        clean["area"] = float(area)
        crowd = entry.get("iscrowd", 0)
        if not isinstance(crowd, (int, bool)) or crowd not in (0, 1):
            raise self.fail(f"{where}.iscrowd", f"must be 0 or 1, got {_shown(crowd)}")
        clean["iscrowd"] = int(crowd)
        return clean

    def category(self, where: str, entry: dict[str, Any]) -> dict[str, Any]:
        clean = {"id": self.id_of(where, entry, "id", 0)}
        for field in ("name", "supercategory"):
            if field in entry:
                if not _text(entry[field]):
                    raise self.fail(f"{where}.{field}", f"must be text, got {_shown(entry[field])}")
                clean[field] = entry[field]
        clean.setdefault("name", str(clean["id"]))
        return clean


def _too_large(path: Path, size: int, max_bytes: int) -> DataError:
    return DataError(
        f"{path}: {size / 1e6:,.1f} MB is over the limit of {max_bytes / 1e6:,.0f} MB for an "
        "annotation file (raise data.max_annotation_mb to read it)"
    )


def _read(path: Path, max_bytes: int | None) -> Any:
    """The parsed JSON of ``path``, its size checked before it is read."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if max_bytes is not None and size > max_bytes:
                raise _too_large(path, size, max_bytes)
            raw = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    except OSError as err:
        raise DataError(f"{path}: cannot read the annotation file ({err.strerror})") from None
    if max_bytes is not None and len(raw) > max_bytes:  # not a regular file
        raise _too_large(path, len(raw), max_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start})"
        ) from None
    try:
        return json.loads(text)
    except RecursionError:
        raise DataError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as err:  # JSONDecodeError, and an integer of more than 4300 digits
        raise DataError(f"{path}: not valid JSON ({str(err).splitlines()[0]})") from None


def validate_coco_file(
    path: str | os.PathLike[str],
    images_dir: str | os.PathLike[str] | None,
    max_bytes: int | None,
) -> dict[str, Any]:
    """Check the COCO instances file ``path`` whose images live in ``images_dir``.

    Args:
        path: the ``instances_<split>.json`` file.
        images_dir: the folder every ``file_name`` must resolve into (``None``: names are only
            checked to be relative, without ``..``).
        max_bytes: the largest file read (``data.max_annotation_mb`` x 1e6; ``None``: any).

    Returns:
        ``{"images", "annotations", "categories"}`` with only the fields the harness reads, in
        file order, ``area`` and ``iscrowd`` filled in.

    Raises:
        DataError: one line, ``<path>: <entry>: <what is wrong>``, for the first problem found.
    """
    path = Path(path)
    images_dir = None if images_dir is None else Path(images_dir)
    dataset = _read(path, max_bytes)
    if not isinstance(dataset, dict):
        raise DataError(f"{path}: not a COCO instances file (top level is not an object)")
    for key in _LISTS:
        if not isinstance(dataset.get(key), list):
            raise DataError(f"{path}: not a COCO instances file (no list {key!r})")
    check = _Checker(path, images_dir)
    clean: dict[str, list[dict[str, Any]]] = {key: [] for key in _LISTS}
    build = {"images": check.image, "annotations": check.annotation, "categories": check.category}
    for key in ("categories", "images", "annotations"):
        seen: dict[int, int] = {}
        for position, raw in enumerate(dataset[key]):
            where = f"{key}[{position}]"
            item = build[key](where, check.entry(key, position, raw))
            if item["id"] in seen:
                raise check.fail(f"{where}.id", f"{item['id']} repeats {key}[{seen[item['id']]}]")
            seen[item["id"]] = position
            clean[key].append(item)
    images = {image["id"] for image in clean["images"]}
    categories = {category["id"] for category in clean["categories"]}
    for position, ann in enumerate(clean["annotations"]):
        where = f"annotations[{position}]"
        if ann["image_id"] not in images:
            raise check.fail(f"{where}.image_id", f"{ann['image_id']} is not in images")
        if ann["category_id"] not in categories:
            known = ", ".join(map(str, sorted(categories)[:20])) or "none"
            more = ", ..." if len(categories) > 20 else ""
            raise check.fail(
                f"{where}.category_id",
                f"{ann['category_id']} is not in categories (ids: {known}{more})",
            )
    return clean


def _stamp(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return info.st_size, info.st_mtime_ns, info.st_ino


def validated_coco(
    path: str | os.PathLike[str],
    images_dir: str | os.PathLike[str] | None,
    max_bytes: int | None,
    keep: bool = False,
) -> dict[str, Any]:
    """:func:`validate_coco_file`, reusing this process's last result while the file is unchanged.

    ``keep=True`` (the preflight) stores the result for the next call; the loader's call
    (``keep=False``) takes it out again, so a parsed file is held once, not for every job.
    """
    path = Path(path)
    folder = None if images_dir is None else str(Path(images_dir).resolve())
    key = (str(path.resolve()), folder, max_bytes)
    try:
        stamp = _stamp(path)
    except OSError as err:
        raise DataError(f"{path}: cannot read the annotation file ({err.strerror})") from None
    cached = _cache.pop(key, None)
    if cached is not None and cached[0] == stamp:
        dataset = cached[1]
    else:
        dataset = validate_coco_file(path, images_dir, max_bytes)
    if keep:
        _cache[key] = (stamp, dataset)
    return dataset
