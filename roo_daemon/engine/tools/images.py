"""``read_file`` of an image file, as Roo-Code's ReadFileTool and
``tools/helpers/imageHelpers.ts`` handle one: a model that takes images
(the profile's ``supports_images``, Roo's ``ModelInfo.supportsImages``) gets
the image as a data URL after a short note; one that does not, or an image
over the size limit, gets only a note saying why.

Only the formats both provider APIs accept (PNG, JPEG, GIF, WebP): Roo also
sends SVG, BMP, ICO, TIFF and AVIF, which Anthropic refuses and which then
fail the whole request; here those read as any other binary file.
"""

from __future__ import annotations

import base64
from pathlib import Path

MAX_IMAGE_FILE_SIZE_MB = 5  # Roo's DEFAULT_MAX_IMAGE_FILE_SIZE_MB
IMAGE_MIME_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
UNSUPPORTED_MODEL = "Image file detected but current model does not support images. Skipping image processing."


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_MIME_TYPES


def read_image(path: Path, rel: str, supports_images: bool) -> tuple[str, list[str]] | None:
    """The result text and images for the image file at ``path``, or None
    when it is not a regular file (the caller reports that as for any file).
    Reads the file: call it in a thread."""
    if not path.is_file():
        return None
    if not supports_images:
        return f"File: {rel}\nNote: {UNSUPPORTED_MODEL}", []
    size = path.stat().st_size
    if size > MAX_IMAGE_FILE_SIZE_MB * 1024 * 1024:
        notice = (
            f"Image file is too large ({size / (1024 * 1024):.2f} MB). "
            f"The maximum allowed size is {MAX_IMAGE_FILE_SIZE_MB} MB."
        )
        return f"File: {rel}\nNote: {notice}", []
    data = path.read_bytes()
    url = f"data:{IMAGE_MIME_TYPES[path.suffix.lower()]};base64,{base64.b64encode(data).decode()}"
    return f"File: {rel}\nNote: Image file ({round(len(data) / 1024)} KB)", [url]
