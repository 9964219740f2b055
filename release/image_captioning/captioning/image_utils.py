"""Fetching the images behind the captioning data for display."""
import io
import os
import urllib.request

import matplotlib.image as mpimg
import numpy as np

from .coco_utils import find_datasets_dir

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _local_path(path):
    """`path` if it exists, else `path` inside the embedded dataset (its url lists are relative paths)."""
    datasets = find_datasets_dir()
    if os.path.exists(path) or datasets is None:
        return path
    return os.path.join(datasets, "coco_mini", path)


def image_from_url(url, timeout=10):
    """Return the image at an http(s) URL or a local path as a uint8 (H, W, 3|4) array.

    On a network/HTTP error, a missing file or an undecodable image, print one line and return None.
    """
    try:
        if "://" in url:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                data = response.read()
        else:
            with open(_local_path(url), "rb") as f:
                data = f.read()
        # "png" makes matplotlib decode PNG; any other format string lets Pillow detect JPEG etc.
        image = mpimg.imread(io.BytesIO(data), format="png" if data.startswith(PNG_MAGIC) else "auto")
    except (OSError, ValueError) as e:  # URLError/HTTPError and timeouts are OSErrors
        reason = getattr(e, "reason", e)
        print(f"image_from_url: could not load {url}: {reason}")
        return None
    if image.dtype != np.uint8:  # matplotlib decodes PNG to floats in [0, 1]
        image = (image * 255).round().astype(np.uint8)
    return image
