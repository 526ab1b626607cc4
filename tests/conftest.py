"""Shared test helpers: the project root on sys.path, and small data writers."""
import gzip
import os
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

_IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype('>i2'): 0x0B,
              np.dtype('>i4'): 0x0C, np.dtype('>f4'): 0x0D, np.dtype('>f8'): 0x0E}


def write_idx(path, array, compress=None):
    """Writes array as an IDX file (gzipped when compress, or when path ends in .gz)."""
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder('>') if array.dtype.itemsize > 1 else array.dtype
    data = (bytes([0, 0, _IDX_CODES[np.dtype(dtype)], array.ndim])
            + struct.pack('>' + 'I' * array.ndim, *array.shape)
            + array.astype(dtype).tobytes())
    if compress is None:
        compress = str(path).endswith('.gz')
    opener = gzip.open if compress else open
    with opener(str(path), 'wb') as f:
        f.write(data)
    return str(path)
