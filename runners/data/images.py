"""Reading one image file for the data pipelines, with an error that names the file.

torchvision's ``default_loader`` lets PIL's errors through as they are: ``cannot identify image
file <_io.BufferedReader name=...>`` for a file that is not an image, ``image file is truncated
(12 bytes not processed)`` for a cut-off one, with no hint of which of a million files it was.
:func:`read_rgb` raises :class:`DataError` naming the path instead.

Decompression bombs: a small file can declare a huge canvas (a 50 KB PNG of 40000 x 40000
pixels decodes to 4.8 GB). Pillow only warns above ``Image.MAX_IMAGE_PIXELS`` and raises above
twice that. :class:`ImageReader` makes the limit ``data.max_image_pixels`` exactly: it sets
Pillow's global (in the process that reads, so also in every DataLoader worker, whatever the
start method), checks the declared size before decoding, and turns Pillow's warning into the
same :class:`DataError`.
"""

from __future__ import annotations

import re
import warnings

from PIL import Image

from runners.core.errors import DataError

__all__ = ["DataError", "ImageReader", "read_rgb"]


def read_rgb(path: str, max_pixels: int | None = None) -> Image.Image:
    """The image at ``path`` decoded as RGB; :class:`DataError` if it cannot be read in full.

    Args:
        path: the image file.
        max_pixels: the largest width x height decoded (``None``: Pillow's current limit).
    """
    if max_pixels is not None and max_pixels != Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels  # also what Pillow checks inside its own plugins
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open(path, "rb") as handle:
                image = Image.open(handle)  # reads the header only
                limit = Image.MAX_IMAGE_PIXELS
                if limit is not None and image.width * image.height > limit:
                    raise Image.DecompressionBombError(f"{image.width * image.height} pixels")
                return image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        found = re.search(r"(\d+) pixels", str(err))  # Pillow's "Image size (N pixels) ..."
        size = f"{int(found.group(1)):,} pixels" if found else str(err)
        raise DataError(
            f"{path}: unreadable image ({size}, over data.max_image_pixels="
            f"{Image.MAX_IMAGE_PIXELS:,}: a decompression bomb?)"
        ) from err
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: unreadable image ({type(err).__name__}: {err})") from err


class ImageReader:
    """``read_rgb`` with the run's pixel limit, picklable for DataLoader workers."""

    def __init__(self, max_pixels: int) -> None:
        self.max_pixels = max_pixels

    def __call__(self, path: str) -> Image.Image:
        return read_rgb(path, self.max_pixels)
