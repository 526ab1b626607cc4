"""What char_rnn.py and mnist_rnn.py share, as the lecture's utils did.

One import shim for both TensorFlow stacks (TF 1.15, or TF 2.x through
tensorflow.compat.v1 in graph mode) with the seeds' cell classes under one name; the
lecture's vocabulary encode/decode and batch padding (their bugs fixed); the learning-rate
schedule, gradient clipping, check_numerics and the update that applies them.

    from utils import tf, rnn     # tf is the TF1 API on either stack

Everything else (fast kernels, the corpus pipeline, run folders, statistics, the
distributed runtime) is in the package tf1rnn/, a module per role.
"""
import contextlib
import os
import re
import sys
import tempfile

# Quiet TensorFlow's start-up noise before it is imported, as the lecture does.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# TF >= 2.16 ships Keras 3, which has no tf.layers / tf.nn.rnn_cell; tf-keras does.
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402

# TF 2.x's native start-up lines (oneDNN notice, missing CUDA driver) are written
# before its logging is set up, whatever TF_CPP_MIN_LOG_LEVEL says. Hold stderr
# while importing and replay everything but those lines.
_NATIVE_NOISE = ('All log messages before absl::InitializeLog()', 'oneDNN custom operations',
                 'Could not find cuda drivers', 'Unable to register cu',
                 'computation placer already registered', 'This TensorFlow binary is optimized',
                 'rebuild TensorFlow with the appropriate compiler flags')
if not os.path.exists('/proc/driver/nvidia'):  # no GPU driver: its absence is no news
    _NATIVE_NOISE += ('failed call to cuInit',)


@contextlib.contextmanager
def _quiet_native_stderr():
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            for line in held.read().decode('utf-8', 'replace').splitlines(True):
                if not any(noise in line for noise in _NATIVE_NOISE):
                    sys.stderr.write(line)


with _quiet_native_stderr():
    import tensorflow  # noqa: E402
    import tensorflow.compat.v1  # noqa: E402,F401
    if not tensorflow.__version__.startswith('1.'):
        tensorflow.config.list_physical_devices('GPU')  # logs cuInit failure on CPU-only hosts

# Before anything else logs: through compat.v1, which itself prints no deprecation warning.
tensorflow.compat.v1.logging.set_verbosity(tensorflow.compat.v1.logging.ERROR)
TF1 = tensorflow.__version__.startswith('1.')
if TF1:
    import tensorflow as tf  # noqa: E402
    from tensorflow.python.util import deprecation as _deprecation
    _deprecation._PRINT_DEPRECATION_WARNINGS = False
else:
    import tensorflow.compat.v1 as tf  # noqa: E402
    tf.disable_v2_behavior()
    import warnings
    warnings.filterwarnings('ignore', message='.*is deprecated.*')
    warnings.filterwarnings('ignore', category=DeprecationWarning)
STACK = 'tf1' if TF1 else 'tf2'


# ---------------------------------------------------------------------------
# Cells: the seeds' classes under one name on both stacks.
# ---------------------------------------------------------------------------

class rnn(object):
    """The RNN cell classes the seeds use: TF1's tf.contrib.rnn, TF2's tf.nn.rnn_cell.

    TF1 also has the fused GRUBlockCellV2 and LSTMBlockCell, and the notebook's
    LayerNormBasicLSTMCell; on TF2 that cell is tf1rnn.layer_norm's port of it.
    """
    _cells = tf.contrib.rnn if TF1 else tf.nn.rnn_cell
    BasicRNNCell = _cells.BasicRNNCell
    BasicLSTMCell = _cells.BasicLSTMCell
    LSTMCell = _cells.LSTMCell
    GRUCell = _cells.GRUCell
    MultiRNNCell = _cells.MultiRNNCell
    DropoutWrapper = _cells.DropoutWrapper
    LSTMStateTuple = _cells.LSTMStateTuple
    if TF1:
        LayerNormBasicLSTMCell = _cells.LayerNormBasicLSTMCell
        GRUBlockCellV2 = _cells.GRUBlockCellV2
        LSTMBlockCell = _cells.LSTMBlockCell
        LSTMBlockFusedCell = _cells.LSTMBlockFusedCell


# ---------------------------------------------------------------------------
# Vocabulary and batching (lecture 11).
# ---------------------------------------------------------------------------

_VOCAB_INDEX = {}


def _vocab_index(vocab):
    """{char: id}, ids from 1; a repeated character keeps its first id (as vocab.index)."""
    index = _VOCAB_INDEX.get(vocab)
    if index is None:
        index = {}
        for i, ch in enumerate(vocab):
            index.setdefault(ch, i + 1)
        _VOCAB_INDEX[vocab] = index
    return index


def vocab_encode(text, vocab, dropped=None):
    """Ids of the characters of text, starting at 1 (0 is padding).

    Characters outside the vocabulary are dropped, as in the lecture; pass a
    collections.Counter as `dropped` to learn which and how many.
    """
    index = _vocab_index(vocab)
    ids = []
    for ch in text:
        i = index.get(ch)
        if i is not None:
            ids.append(i)
        elif dropped is not None:
            dropped[ch] += 1
    return ids


def vocab_decode(ids, vocab):
    """Characters of ids; 0 (padding) decodes to nothing.

    Fix: the lecture's vocab[x - 1] turns padding into the last vocabulary character.
    """
    out = []
    for i in ids:
        i = int(i)
        if i == 0:
            continue
        if not 0 < i <= len(vocab):
            raise ValueError('id {} outside the vocabulary (1..{})'.format(i, len(vocab)))
        out.append(vocab[i - 1])
    return ''.join(out)


def num_targets(batch):
    """Real next-character targets in a batch: each row's characters but its first."""
    lengths = np.count_nonzero(batch, axis=1)
    return int(np.maximum(lengths - 1, 0).sum())


def pad(rows):
    """List of id lists -> zero-padded int32 array."""
    width = max(len(row) for row in rows)
    batch = np.zeros((len(rows), width), np.int32)
    for i, row in enumerate(rows):
        batch[i, :len(row)] = row
    return batch


# ---------------------------------------------------------------------------
# Gradients: the schedule, clipping, checks and the update.
# ---------------------------------------------------------------------------

def learning_rate(lr, step, decay=None, decay_steps=1000, warmup=0, progress=None):
    """The learning rate at global step `step`: lr, times `decay` every decay_steps steps
    (tf.train.exponential_decay, staircase), or with decay 'cosine' down to a tenth of lr at
    decay_steps (tf.train.cosine_decay), or, given `progress` (the fraction of a time budget
    spent), at the budget's end; raised linearly over the first `warmup` steps."""
    if decay == 'cosine' and progress is not None:
        rate = tf.train.cosine_decay(lr, tf.minimum(progress, 1.0), 1.0, alpha=0.1)
    elif decay == 'cosine':
        rate = tf.train.cosine_decay(lr, step, decay_steps, alpha=0.1)
    elif decay:
        rate = tf.train.exponential_decay(lr, step, decay_steps, decay, staircase=True)
    else:
        rate = tf.constant(lr)
    if warmup:
        rate *= tf.minimum(1.0, tf.cast(step + 1, tf.float32) / warmup)
    return rate


def clip_gradients(loss, var_list, max_norm=None):
    """tf.gradients + tf.clip_by_global_norm (the lecture's tip).

    Returns (grads_and_vars for apply_gradients, global norm before clipping).
    max_norm None or 0 leaves the gradients as they are (the norm is still computed).
    """
    grads = tf.gradients(loss, var_list)
    if max_norm:
        grads, norm = tf.clip_by_global_norm(grads, max_norm)
    else:
        norm = tf.global_norm(grads)
    return list(zip(grads, var_list)), norm


def check_numerics(grads_and_vars):
    """Each gradient through tf.check_numerics, the message naming its variable.

    As the notebook's check list, but the checked tensors are the ones handed to
    apply_gradients, so a NaN stops the step before it reaches the weights.
    """
    checked = []
    for grad, var in grads_and_vars:
        if grad is not None:
            message = 'check_numerics: gradient of {} ({})'.format(
                var.op.name, getattr(grad, 'name', 'indexed slices'))
            if isinstance(grad, tf.IndexedSlices):
                grad = tf.IndexedSlices(tf.check_numerics(grad.values, message),
                                        grad.indices, grad.dense_shape)
            else:
                grad = tf.check_numerics(grad, message)
        checked.append((grad, var))
    return checked


def check_numerics_source(message):
    """'the gradient of <variable> (<tensor>) had NaN values' from the error message of a
    check that check_numerics added."""
    match = re.search(r'check_numerics: gradient of (\S+) \(([^)]*)\)', message)
    kind = re.search(r'had (\w+) values', message)
    if not match:
        return 'a gradient ({})'.format(message.strip().splitlines()[0])
    return 'the gradient of {} ({}) had {} values'.format(
        match.group(1), match.group(2), kind.group(1) if kind else 'NaN or Inf')




def apply_gradients(optimizer, grads_and_vars, global_step, cluster=None):
    """optimizer.apply_gradients, or in a cluster cluster.apply_gradients (see there), of
    gradients that are all computed (and checked) before any variable changes.

    Fix: TF1's reference variables (TF 1.15's default, and TF 2's in compat.v1 graph mode)
    are read without a copy, and nothing orders an optimizer's in-place update of one
    variable after the backward pass that still reads it (or after another gradient's
    check_numerics). The lectures' minimize() had the race: a step applied gradients partly
    computed from weights it had already updated (by up to 10% at the lecture's sizes), and
    a NaN in one gradient could follow another variable's update. tf.tuple releases the
    gradients together, once every one of them exists.
    """
    grads = tf.tuple([grad for grad, _ in grads_and_vars])
    grads_and_vars = [(grad, var) for grad, (_, var) in zip(grads, grads_and_vars)]
    if cluster is None:
        return optimizer.apply_gradients(grads_and_vars, global_step=global_step)
    return cluster.apply_gradients(optimizer, grads_and_vars, global_step)
