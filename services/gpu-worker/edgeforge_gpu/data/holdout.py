"""The holdout bundle: a few hundred test samples that travel with every model, so a device can
check the accuracy of what it runs on its own hardware."""

import zipfile
from pathlib import Path

import numpy as np

from edgeforge_gpu.data.images import LabeledImages


def write_holdout(images: LabeledImages, path: Path) -> None:
    """Writes an .npz (x: float32 NCHW, y: int64) whose bytes depend only on the samples.

    np.savez stamps the current time into the zip entries; a fixed timestamp keeps the sha256
    stable, so a retried activity finds the bundle already uploaded. Entries are stored
    uncompressed, which any zip reader on a device can open.
    """
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, array in (("x", images.x), ("y", images.y)):
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(entry, "w") as out:
                np.lib.format.write_array(out, np.ascontiguousarray(array), allow_pickle=False)
