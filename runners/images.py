"""Reading one image file for the data pipelines, with an error that names the file.

torchvision's ``default_loader`` lets PIL's errors through as they are: ``cannot identify image
file <_io.BufferedReader name=...>`` for a file that is not an image, ``image file is truncated
(12 bytes not processed)`` for a cut-off one, with no hint of which of a million files it was.
:func:`read_rgb` raises :class:`DataError` naming the path instead.
"""

from __future__ import annotations

from PIL import Image

__all__ = ["DataError", "read_rgb"]


class DataError(ValueError):
    """A data file cannot be used; the message starts with its path."""

    @staticmethod
    def one_line(err: BaseException) -> str:
        """The message as one line, also when a DataLoader worker re-raised it.

        A worker's error comes back with the worker's traceback in its message; the last line
        is the original ``runners.images.DataError: <path>: ...``.
        """
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        last = lines[-1] if lines else type(err).__name__
        return last.split("DataError: ", 1)[-1]


def read_rgb(path: str) -> Image.Image:
    """The image at ``path`` decoded as RGB; :class:`DataError` if it cannot be read in full."""
    try:
        with open(path, "rb") as handle:
            image = Image.open(handle)
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: unreadable image ({type(err).__name__}: {err})") from err
