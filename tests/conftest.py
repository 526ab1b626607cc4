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


def _dense(value):
    """A fetched gradient as an array (an IndexedSlicesValue summed into its rows)."""
    if hasattr(value, 'indices'):
        dense = np.zeros(value.dense_shape, value.values.dtype)
        np.add.at(dense, value.indices, value.values)
        return dense
    return np.asarray(value)


def assert_steps_apply_their_gradients(sess, grads_and_vars, train_op, feed, lr, steps=3):
    """Runs `steps` training steps (train_op). Each must apply exactly the gradients that
    grads_and_vars give alone at the weights it started from, as one Adam update of
    TensorFlow's (beta1 0.9, beta2 0.999, epsilon 1e-8) with learning rate lr (a float or a
    tensor). Returns the largest relative gradient difference seen (0 when exact)."""
    from utils import tf
    pairs = [(g, v) for g, v in grads_and_vars if g is not None]
    grads, variables = [g for g, _ in pairs], [v for _, v in pairs]
    with sess.graph.as_default():
        by_name = {v.op.name: v for v in tf.global_variables()}
    slots = ([by_name[v.op.name + '/Adam'] for v in variables],
             [by_name[v.op.name + '/Adam_1'] for v in variables])
    powers = [by_name['beta1_power'], by_name['beta2_power']]
    worst, rate = 0.0, lr
    for _ in range(steps):
        w0, m0, v0, (p1, p2) = sess.run([variables, slots[0], slots[1], powers])
        if not isinstance(lr, float):
            rate = sess.run(lr)
        alone = [_dense(g) for g in sess.run(grads, feed)]
        applied = [_dense(g) for g in sess.run([grads, train_op], feed)[0]]
        w1 = sess.run(variables)
        rate_t = rate * np.sqrt(1 - p2) / (1 - p1)
        for var, g, a, w, m, v, after in zip(variables, alone, applied, w0, m0, v0, w1):
            scale = max(float(np.abs(g).max()), 1e-30)
            worst = max(worst, float(np.abs(a - g).max()) / scale)
            np.testing.assert_allclose(a, g, rtol=0, atol=1e-6 * scale, err_msg=var.op.name)
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            want = w - rate_t * m / (np.sqrt(v) + 1e-8)
            np.testing.assert_allclose(after, want, rtol=1e-5, atol=1e-7 * max(1.0, rate),
                                       err_msg=var.op.name)
    return worst
