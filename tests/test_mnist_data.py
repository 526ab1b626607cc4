"""tf1rnn/mnist_data.py: IDX files written and read back, and refused when bad."""
import gzip

import numpy as np
import pytest

from tf1rnn import cli, mnist_data
from conftest import write_idx

# --- IDX files ----------------------------------------------------------------------

@pytest.mark.parametrize('compress', [False, True])
@pytest.mark.parametrize('dtype', [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, compress, dtype):
    rng = np.random.RandomState(0)
    array = (rng.rand(5, 4, 3) * 100).astype(dtype)
    path = write_idx(tmp_path / 'a.idx', array, compress)
    got = mnist_data.read_idx(path)
    assert got.dtype == np.dtype(dtype) and got.shape == (5, 4, 3)
    np.testing.assert_array_equal(got, array)


def test_idx_labels_one_dimension(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    np.testing.assert_array_equal(mnist_data.read_idx(write_idx(tmp_path / 'l.gz', labels)), labels)


def test_idx_rejects_bad_files(tmp_path):
    good = open(write_idx(tmp_path / 'g.idx', np.zeros((4, 28, 28), np.uint8)), 'rb').read()
    cases = {
        'magic': (b'\x00\x01' + good[2:], 'bad magic'),
        'type': (good[:2] + b'\x07' + good[3:], 'bad magic'),
        'header': (good[:9], 'truncated IDX header'),
        'truncated': (good[:-1], 'truncated IDX file'),
        'oversized': (good + b'\x00', 'oversized IDX file'),
        'empty': (b'', 'bad magic'),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(cli.UserError, match=message):
            mnist_data.read_idx(str(path))
    gz = gzip.compress(good)
    (tmp_path / 'cut.gz').write_bytes(gz[:len(gz) // 2])
    with pytest.raises(cli.UserError, match='corrupt gzip'):
        mnist_data.read_idx(str(tmp_path / 'cut.gz'))
    with pytest.raises(cli.UserError, match='does not exist'):
        mnist_data.read_idx(str(tmp_path / 'missing'))
