"""MNIST (mnist_rnn.py): the four IDX files, downloaded when missing, split as TF1's
read_data_sets."""
import gzip
import os
import struct
import zlib

import numpy as np

from tf1rnn.cli import UserError
from tf1rnn.files import DownloadError, download


# IDX (the MNIST file format): magic 0x00 0x00 <type> <ndim>, then ndim big-endian
# uint32 sizes, then the data, big-endian.
IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype('>i2'), 0x0C: np.dtype('>i4'),
             0x0D: np.dtype('>f4'), 0x0E: np.dtype('>f8')}


def read_idx(path):
    """numpy array of an IDX file, gzipped or raw; UserError for anything malformed."""
    if not os.path.isfile(path):
        raise UserError('{} does not exist'.format(path))
    with open(path, 'rb') as f:
        head = f.read(2)
    try:
        if head == b'\x1f\x8b':
            with gzip.open(path, 'rb') as f:
                data = f.read()
        else:
            with open(path, 'rb') as f:
                data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise UserError('{}: corrupt gzip file ({})'.format(path, e))
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise UserError('{}: not an IDX file (bad magic number)'.format(path))
    ndim = data[3]
    if ndim == 0 or len(data) < 4 + 4 * ndim:
        raise UserError('{}: truncated IDX header'.format(path))
    shape = struct.unpack('>' + 'I' * ndim, data[4:4 + 4 * ndim])
    dtype = np.dtype(IDX_TYPES[data[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    body = len(data) - 4 - 4 * ndim
    if body != expected:
        raise UserError('{}: {} IDX file: header says {} bytes of data for shape {}, file has {}'.format(
            path, 'truncated' if body < expected else 'oversized', expected, tuple(shape), body))
    array = np.frombuffer(data, dtype, offset=4 + 4 * ndim).reshape(shape)
    return array.astype(dtype.newbyteorder('='))



MNIST_SHAPE = (28, 28)   # rows, pixels per row
MNIST_CLASSES = 10
MNIST_DIR = os.path.join('data', 'mnist')
# The mirror TF1's tensorflow/contrib/learn/.../mnist.py downloaded from.
MNIST_MIRROR = 'https://storage.googleapis.com/cvdf-datasets/mnist/'
MNIST_FILES = (('train_images', 'train-images-idx3-ubyte'),
         ('train_labels', 'train-labels-idx1-ubyte'),
         ('test_images', 't10k-images-idx3-ubyte'),
         ('test_labels', 't10k-labels-idx1-ubyte'))
MNIST_SHA256 = {name + '.gz': digest for name, digest in (
    ('train-images-idx3-ubyte', '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609'),
    ('train-labels-idx1-ubyte', '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c'),
    ('t10k-images-idx3-ubyte', '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6'),
    ('t10k-labels-idx1-ubyte', 'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6'))}


class DataSet(object):
    """images float32 [N, 28, 28] in [0, 1], labels int64 [N]."""

    def __init__(self, images, labels):
        self.images = images
        self.labels = labels
        self.num_examples = len(labels)

    def batches(self, batch_size):
        """[(images, labels)] of the whole batches in order (the notebook's loops; see
        evaluate for the rest)."""
        count = self.num_examples // batch_size
        images = self.images[:count * batch_size].reshape(
            (count, batch_size) + self.images.shape[1:])
        labels = self.labels[:count * batch_size].reshape([count, batch_size])
        return list(zip(images, labels))


def _idx_path(data_dir, name):
    """The file `name` or `name`.gz in data_dir, or None."""
    for candidate in (name + '.gz', name):
        path = os.path.join(data_dir, candidate)
        if os.path.isfile(path):
            return path
    return None


def _fetch_mnist(data_dir, missing):
    """Downloads the missing files into data_dir (sha256-checked); one clear error offline."""
    for name in missing:
        try:
            download(MNIST_MIRROR + name + '.gz', os.path.join(data_dir, name + '.gz'),
                     MNIST_SHA256[name + '.gz'])
        except DownloadError as e:
            advice = 'offline? ' if e.problem.startswith('cannot download') else ''
            raise UserError('{} lacks the MNIST files {}, and {}; {}put them there yourself, or '
                            'pass --data-dir DIR with the four IDX files'.format(
                                data_dir, ', '.join(n + '.gz' for n in missing), e.problem,
                                advice))


def _read_images_and_labels(images_path, labels_path):
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != MNIST_SHAPE:
        raise UserError('{}: images of shape {}, need N x {} x {} (MNIST format)'.format(
            images_path, ' x '.join(str(d) for d in images.shape), *MNIST_SHAPE))
    if labels.ndim != 1:
        raise UserError('{}: labels of shape {}, need one label per image'.format(
            labels_path, ' x '.join(str(d) for d in labels.shape)))
    if len(images) != len(labels):
        raise UserError('{} holds {} images but {} holds {} labels'.format(
            images_path, len(images), labels_path, len(labels)))
    if labels.dtype.kind not in 'iu':
        raise UserError('{}: labels of type {}, need integers 0..{}'.format(
            labels_path, labels.dtype.name, MNIST_CLASSES - 1))
    if images.dtype != np.uint8 and images.dtype.kind != 'f':
        raise UserError('{}: pixels of type {}, need unsigned bytes (or floats in [0, 1])'.format(
            images_path, images.dtype.name))
    if len(labels) and (labels.min() < 0 or labels.max() >= MNIST_CLASSES):
        bad = labels[(labels < 0) | (labels >= MNIST_CLASSES)]
        raise UserError('{}: {} labels outside 0..{} (e.g. {})'.format(
            labels_path, len(bad), MNIST_CLASSES - 1, bad[0]))
    if images.dtype == np.uint8:
        # As read_data_sets: float32 scaled to [0, 1].
        images = np.multiply(images.astype(np.float32), 1.0 / 255.0)
    else:
        images = images.astype(np.float32)   # IDX floats are taken as they are
    return images, labels.astype(np.int64)


def data_fingerprint(data):
    """Sizes and a checksum of the labels, in order: tells a checkpoint which data (and which
    training order) it was trained on."""
    return '{}/{}/{:08x}'.format(data['train'].num_examples, data['test'].num_examples,
                                 zlib.crc32(data['train'].labels.tobytes()
                                            + data['test'].labels.tobytes()))


def seeded_data(data, seed):
    """The data a seed trains on: seed 0 the files' order (the notebook's), another seed a
    permutation of the training images drawn from it, the same every epoch as in the
    notebook. The validation and test images stay as they are."""
    if not seed:
        return data
    order = np.random.RandomState(seed).permutation(data['train'].num_examples)
    return dict(data, train=DataSet(data['train'].images[order], data['train'].labels[order]))


def load_mnist(data_dir=None, validation_size=5000, train_limit=0, test_limit=0):
    """{'train', 'validation', 'test'} DataSets from the four IDX files in data_dir.

    data_dir None is the default location, where missing files are downloaded.
    """
    download = data_dir is None
    data_dir = MNIST_DIR if data_dir is None else data_dir
    missing = [name for _, name in MNIST_FILES if _idx_path(data_dir, name) is None]
    if missing and download:
        _fetch_mnist(data_dir, missing)
    elif missing:
        raise UserError('{} lacks {} (MNIST IDX files, .gz or not); pass --data-dir DIR '
                        'with all four, or leave --data-dir out to download MNIST into {}'.format(
                            data_dir, ', '.join(missing), MNIST_DIR))
    paths = {key: _idx_path(data_dir, name) for key, name in MNIST_FILES}
    train_images, train_labels = _read_images_and_labels(paths['train_images'],
                                                        paths['train_labels'])
    test_images, test_labels = _read_images_and_labels(paths['test_images'], paths['test_labels'])
    if validation_size >= len(train_images):
        raise UserError('--validation-size {} leaves none of the {} training images in {} to '
                        'train on'.format(validation_size, len(train_images), data_dir))
    data = {'validation': DataSet(train_images[:validation_size], train_labels[:validation_size]),
            'train': DataSet(train_images[validation_size:], train_labels[validation_size:]),
            'test': DataSet(test_images, test_labels)}
    for key, limit in (('train', train_limit), ('test', test_limit)):
        if limit:
            data[key] = DataSet(data[key].images[:limit], data[key].labels[:limit])
    return data
