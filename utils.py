"""Helpers shared by char_rnn.py and mnist_rnn.py.

One import shim for both TensorFlow stacks (TF 1.15, or TF 2.x through
tensorflow.compat.v1 in graph mode), the lecture's vocabulary and batching
helpers (with their bugs fixed), gradient clipping and numerics checks, and
data download and parsing.

    from utils import tf, rnn     # tf is the TF1 API on either stack
"""
from __future__ import print_function

import argparse
import contextlib
import csv
import glob
import gzip
import hashlib
import http.client
import json
import math
import os
import random
import re
import shlex
import signal
import struct
import sys
import tempfile
import time
import zlib
from urllib.request import urlopen

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


class UserError(Exception):
    """A problem with the user's input: reported as one line, no traceback."""


def run_main(main, argv=None):
    """Calls main(argv); a UserError becomes one line on stderr and exit code 2."""
    prog = os.path.basename(sys.argv[0])
    try:
        return main(argv)
    except UserError as e:
        print('{}: error: {}'.format(prog, e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('{}: interrupted'.format(prog), file=sys.stderr)
        return 130


class StopRequest(object):
    """Truthy once SIGINT or SIGTERM arrived; .signum is the first one's number."""

    def __init__(self):
        self.signum = None

    def __bool__(self):
        return self.signum is not None
    __nonzero__ = __bool__

    @property
    def name(self):
        return {signal.SIGINT: 'Ctrl-C', signal.SIGTERM: 'SIGTERM'}.get(self.signum, 'a signal')


@contextlib.contextmanager
def stop_on_signals(signums=(signal.SIGINT, signal.SIGTERM)):
    """Context: Ctrl-C and SIGTERM set the yielded StopRequest instead of interrupting.

    The training loops of both scripts check it between two steps, then save and exit 0.
    Nothing is ever cut in half: a signal that arrives mid-step, mid-save (a second Ctrl-C
    included) or between updating the best loss and saving it only sets the flag, which
    the loop sees at its next check. Outside the context (data loading, graph building:
    nothing to save yet) Ctrl-C interrupts as usual. Off the main thread, where Python
    cannot install handlers, the signals stay as they are.
    """
    stop = StopRequest()

    def request(signum, frame):
        if stop.signum is None:
            stop.signum = signum

    previous = {}
    try:
        for signum in signums:
            try:
                previous[signum] = signal.signal(signum, request)
            except ValueError:   # not the main thread
                break
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def session_config(threads=0):
    """ConfigProto with GPU memory growth (as the notebook) and thread counts (0 = TF decides)."""
    config = tf.ConfigProto(intra_op_parallelism_threads=threads,
                            inter_op_parallelism_threads=threads)
    config.gpu_options.allow_growth = True
    return config


# ---------------------------------------------------------------------------
# Command lines, checkpoints and summaries (both scripts).
# ---------------------------------------------------------------------------

class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default unless it is None or a switch (their help says what happens)."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super(HelpFormatter, self)._get_help_string(action)


def positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError('must be a positive integer, not {}'.format(text))
    return value


def non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError('must be 0 or more, not {}'.format(text))
    return value


def window(text):
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError('must be 2 or more, not {}'.format(text))
    return value


def positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError('must be positive, not {}'.format(text))
    return value


def probability(text):
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError('must be in (0, 1], not {}'.format(text))
    return value


def fraction(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError('must be in [0, 1), not {}'.format(text))
    return value


def int_list(text):
    try:
        sizes = [int(s) for s in text.split(',')]
    except ValueError:
        raise argparse.ArgumentTypeError('expected sizes like 128,256, not {}'.format(text))
    if not sizes or min(sizes) <= 0:
        raise argparse.ArgumentTypeError('expected positive sizes like 128,256, not {}'.format(text))
    return sizes


def first_line(error):
    """The first line of an exception's message (TensorFlow's run on for pages)."""
    text = getattr(error, 'message', None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def latest_checkpoint(folder, prefix):
    """The latest checkpoint's path prefix in folder, None if there is none.

    TensorFlow ignores a bad state file ('checkpoint'), so training would start over and
    overwrite: where checkpoint files named prefix-* exist, that is a UserError instead.
    """
    state_file = os.path.join(folder, 'checkpoint')
    try:
        path = tf.train.latest_checkpoint(folder)
    except (tf.errors.OpError, ValueError) as e:
        path, reason = None, first_line(e)
    else:
        reason = 'corrupt, or naming missing files'
    if path is None and glob.glob(os.path.join(folder, prefix + '-*.index')):
        raise UserError('{} has checkpoints but its state file {} is unreadable ({})'.format(
            folder, state_file, reason))
    return path


def restore(sess, saver, path):
    """saver.restore after checking that the checkpoint holds the graph's variables."""
    try:
        shapes = dict(tf.train.list_variables(path))
    except (tf.errors.OpError, ValueError) as e:
        raise UserError('checkpoint {} is corrupt or unreadable ({})'.format(path, first_line(e)))
    for var in tf.global_variables():
        name = var.op.name
        if name not in shapes:
            raise UserError('checkpoint {} is not of this model: it has no variable {}'.format(
                path, name))
        if list(shapes[name]) != var.shape.as_list():
            raise UserError('checkpoint {} is of a different model shape or vocabulary: {} is {} '
                            'there, {} here'.format(path, name, list(shapes[name]),
                                                    var.shape.as_list()))
    try:
        saver.restore(sess, path)
    except (tf.errors.OpError, ValueError) as e:
        raise UserError('checkpoint {} is corrupt or unreadable ({})'.format(path, first_line(e)))


@contextlib.contextmanager
def folder_lock(folder, elsewhere='another --checkpoint-dir'):
    """Context: an exclusive OS lock (flock) on folder for a run that writes into it.

    A second run on the same folder is a UserError naming the process that holds it. The
    kernel drops the lock when its holder exits, however it exits (kill -9 included), so
    nothing is ever left to clean up. Readers (--sample) take no lock.
    """
    try:
        import fcntl
    except ImportError:   # not a POSIX system: no locking
        yield
        return
    created, parent = [], os.path.abspath(folder)
    while not os.path.isdir(parent):   # the folders this makes, innermost first
        created.append(parent)
        parent = os.path.dirname(parent)
    safe_mkdir(folder)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(os.fstat(fd))
            raise UserError('{} is in use by another run ({}): wait for it to finish, or '
                            'train side by side in {}'.format(
                                folder, 'process {}'.format(holder) if holder else
                                'another process', elsewhere))
        yield
    finally:
        os.close(fd)   # releases the lock
        for path in created:   # nothing written (bad input): leave nothing behind
            if os.listdir(path):
                break
            os.rmdir(path)


def _lock_holder(stat):
    """The pid holding a flock on the file of this stat, from /proc/locks (Linux), or None."""
    inode = '{:02x}:{:02x}:{}'.format(os.major(stat.st_dev), os.minor(stat.st_dev), stat.st_ino)
    try:
        with open('/proc/locks') as f:
            for line in f:
                fields = line.split()
                if 'FLOCK' in fields and len(fields) > 5 and fields[5] == inode:
                    return int(fields[4])
    except (OSError, ValueError):
        pass
    return None


def write_json(path, value):
    """json.dump to path atomically (a temporary file renamed over it)."""
    safe_mkdir(os.path.dirname(path))
    with open(path + '.tmp', 'w', encoding='utf-8') as f:
        json.dump(value, f, ensure_ascii=False, indent=1)
        f.write('\n')
    os.replace(path + '.tmp', path)


def describe_changes(old, new):
    """'key old (now new), ...' for the keys of new whose value differs in old."""
    def short(value):   # a checksum's first 12 digits tell it apart
        return value[:12] + '...' if isinstance(value, str) and len(value) > 40 else value
    return ', '.join('{} {} (now {})'.format(key, short(old.get(key)), short(new[key]))
                     for key in sorted(new) if old.get(key) != new[key])


def read_history(path, required, added=None, advice=''):
    """The JSON history of a run at path, None if there is none; a UserError naming the
    missing keys when it is unreadable or lacks one of `required`. added: settings added
    since the first histories, with the value those had."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            history = json.load(f)
        missing = [key for key in required if key not in history]
    except (ValueError, TypeError) as e:
        missing = [str(e)]
    if missing:
        raise UserError('{}: corrupt checkpoint history (no {}){}'.format(
            path, ', '.join(missing), '; ' + advice if advice else ''))
    history['settings'] = dict(added or {}, **history['settings'])
    return history


def clear_events(folder):
    """Deletes the event files in folder: a new run gets fresh ones (the notebook starts with
    `rm -fr logdir`)."""
    for path in glob.glob(os.path.join(folder, 'events.out.tfevents.*')):
        os.remove(path)


def scalar_summary(*tags_and_values, **values):
    """A tf.Summary of scalars built in Python (no summary ops in the graph)."""
    pairs = list(tags_and_values) + sorted(values.items())
    return tf.Summary(value=[tf.Summary.Value(tag=tag, simple_value=float(value))
                             for tag, value in pairs])


# ---------------------------------------------------------------------------
# Cells: the seeds' classes under one name on both stacks.
# ---------------------------------------------------------------------------

class _Cells(object):
    """Namespace of the RNN cell classes the seeds use.

    TF1: tf.contrib.rnn itself. TF2: the core tf.nn.rnn_cell classes plus
    ports of what tf.contrib provided (LayerNormBasicLSTMCell).
    """


rnn = _Cells()
if TF1:
    _contrib_rnn = tf.contrib.rnn
    for _name in ('BasicRNNCell', 'BasicLSTMCell', 'LSTMCell', 'GRUCell', 'MultiRNNCell',
                  'DropoutWrapper', 'LayerNormBasicLSTMCell', 'GRUBlockCellV2',
                  'LSTMBlockCell', 'LSTMBlockFusedCell', 'LSTMStateTuple'):
        setattr(rnn, _name, getattr(_contrib_rnn, _name))
else:
    for _name in ('BasicRNNCell', 'BasicLSTMCell', 'LSTMCell', 'GRUCell', 'MultiRNNCell',
                  'DropoutWrapper', 'LSTMStateTuple'):
        setattr(rnn, _name, getattr(tf.nn.rnn_cell, _name))


# contrib.layers.layer_norm's epsilon for float32 (1e-3 for float16). Tiny on purpose
# there; it is what makes a zero-variance input blow gradients up (see mnist_rnn.py).
LAYER_NORM_EPSILON = 1e-12


class LayerNormBasicLSTMCell(tf.nn.rnn_cell.RNNCell):
    """Port of TF 1.15's tf.contrib.rnn.LayerNormBasicLSTMCell to tf.nn.rnn_cell.RNNCell.

    LSTM unit with layer normalization (Ba, Kiros, Hinton 2016, arXiv:1607.06450),
    applied before the internal nonlinearities, and recurrent dropout without
    memory loss (Semeniuta, Severyn, Barth 2016, arXiv:1603.05118).

    Same arguments and defaults, same math (contrib.layers.layer_norm included:
    moments over the units, epsilon 1e-12) and the same variable names
    (kernel; input|transform|forget|output|state/gamma|beta; bias only without
    layer_norm), so checkpoints move between the stacks. One addition: `epsilon`, the
    variance epsilon of the float32 norms (contrib hard-codes 1e-12; a larger one cures
    the NaN of mnist_rnn.py's blank rows at its cause). Runs on TF 1.15 as well,
    where tests/test_ln_port.py checks it against contrib's cell; on TF2 it is
    rnn.LayerNormBasicLSTMCell.
    """

    def __init__(self, num_units, forget_bias=1.0, input_size=None, activation=tf.tanh,
                 layer_norm=True, norm_gain=1.0, norm_shift=0.0, dropout_keep_prob=1.0,
                 dropout_prob_seed=None, reuse=None, epsilon=LAYER_NORM_EPSILON):
        super(LayerNormBasicLSTMCell, self).__init__(_reuse=reuse)
        if input_size is not None:
            tf.logging.warn('%s: The input_size parameter is deprecated.', self)
        self._num_units = num_units
        self._activation = activation
        self._forget_bias = forget_bias
        self._keep_prob = dropout_keep_prob
        self._seed = dropout_prob_seed
        self._layer_norm = layer_norm
        self._norm_gain = norm_gain
        self._norm_shift = norm_shift
        self._reuse = reuse
        self._epsilon = epsilon   # float32's; float16 always uses 1e-3, as contrib

    @property
    def state_size(self):
        return tf.nn.rnn_cell.LSTMStateTuple(self._num_units, self._num_units)

    @property
    def output_size(self):
        return self._num_units

    def _norm(self, inp, scope, dtype=tf.float32):
        """contrib.layers.layer_norm(inp) with gamma and beta made in `scope` first."""
        shape = inp.get_shape()[-1:]
        with tf.variable_scope(scope):
            gamma = tf.get_variable('gamma', shape=shape, dtype=dtype,
                                    initializer=tf.constant_initializer(self._norm_gain))
            beta = tf.get_variable('beta', shape=shape, dtype=dtype,
                                   initializer=tf.constant_initializer(self._norm_shift))
            mean, variance = tf.nn.moments(inp, [1], keep_dims=True)
            epsilon = 1e-3 if dtype == tf.float16 else self._epsilon
            return tf.nn.batch_normalization(inp, mean, variance, offset=beta, scale=gamma,
                                             variance_epsilon=epsilon)

    def _linear(self, args):
        out_size = 4 * self._num_units
        proj_size = args.get_shape()[-1]
        dtype = args.dtype
        weights = tf.get_variable('kernel', [proj_size, out_size], dtype=dtype)
        out = tf.matmul(args, weights)
        if not self._layer_norm:
            bias = tf.get_variable('bias', [out_size], dtype=dtype)
            out = tf.nn.bias_add(out, bias)
        return out

    def call(self, inputs, state):
        """LSTM cell with layer normalization and recurrent dropout."""
        c, h = state
        args = tf.concat([inputs, h], 1)
        concat = self._linear(args)
        dtype = args.dtype

        i, j, f, o = tf.split(value=concat, num_or_size_splits=4, axis=1)
        if self._layer_norm:
            i = self._norm(i, 'input', dtype=dtype)
            j = self._norm(j, 'transform', dtype=dtype)
            f = self._norm(f, 'forget', dtype=dtype)
            o = self._norm(o, 'output', dtype=dtype)

        g = self._activation(j)
        if (not isinstance(self._keep_prob, float)) or self._keep_prob < 1:
            # contrib's dropout(g, keep_prob) is exactly this (rate = 1. - keep_prob).
            g = tf.nn.dropout(g, rate=1. - self._keep_prob, seed=self._seed)

        new_c = c * tf.sigmoid(f + self._forget_bias) + tf.sigmoid(i) * g
        if self._layer_norm:
            new_c = self._norm(new_c, 'state', dtype=dtype)
        new_h = self._activation(new_c) * tf.sigmoid(o)

        new_state = tf.nn.rnn_cell.LSTMStateTuple(new_c, new_h)
        return new_h, new_state


if not TF1:
    rnn.LayerNormBasicLSTMCell = LayerNormBasicLSTMCell


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


def read_lines(filename):
    """The lines of a UTF-8 text file, stripped; a clear UserError for a bad file.

    Fix: the lecture opens files with the platform's default encoding, which
    breaks on systems whose default is not UTF-8.
    """
    if not os.path.exists(filename):
        raise UserError('data file {} does not exist'.format(filename))
    if os.path.isdir(filename):
        raise UserError('data file {} is a directory, not a file'.format(filename))
    lines = []
    with open(filename, 'rb') as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode('utf-8')
            except UnicodeDecodeError as e:
                raise UserError('{}: line {}: not UTF-8 (byte 0x{:02x} at column {})'.format(
                    filename, number, raw[e.start], e.start + 1))
            lines.append(line.strip())
    if not any(lines):
        raise UserError('data file {} is empty'.format(filename))
    return lines


def chunk_ids(ids, window, overlap):
    """Windows of `window` ids every `overlap` ids, the last one zero-padded.

    Fix: the lecture's range(0, len(text) - window, overlap) yields nothing for
    a text shorter than the window and drops the tail of a longer one, so its
    zero-padding line never ran. Here every character is in some window.
    A text of fewer than 2 ids has no next character to predict and gives none.
    """
    if not 0 < overlap <= window:
        raise ValueError('need 0 < overlap <= window, got overlap {} and window {}'.format(
            overlap, window))
    if len(ids) < 2:
        return []
    chunks = []
    for start in range(0, max(len(ids) - window, 0) + overlap, overlap):
        chunk = list(ids[start:start + window])
        if len(chunk) < 2:
            break
        chunk += [0] * (window - len(chunk))
        chunks.append(chunk)
    return chunks


def read_data(filename, vocab, window, overlap, rng=random):
    """Endless stream of windows over the lines of filename, reshuffled each pass.

    As the lecture's read_data, but the lines are encoded once, not every pass,
    and a file with nothing to train on is an error instead of an endless loop.
    """
    encoded = [vocab_encode(line, vocab) for line in read_lines(filename)]
    encoded = [ids for ids in encoded if len(ids) >= 2]
    if not encoded:
        raise UserError('{} has no line with two or more vocabulary characters'.format(filename))
    while True:
        rng.shuffle(encoded)
        for ids in encoded:
            for chunk in chunk_ids(ids, window, overlap):
                yield chunk


def read_batch(stream, batch_size):
    """Lists of batch_size elements of stream; the last may be shorter.

    Fix: the lecture also yields an empty list when the stream ends on a full batch.
    """
    batch = []
    for element in stream:
        batch.append(element)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


# ---------------------------------------------------------------------------
# Gradients.
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Files and downloads.
# ---------------------------------------------------------------------------

def safe_mkdir(path):
    """mkdir -p."""
    if path and not os.path.isdir(path):
        os.makedirs(path, exist_ok=True)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


class DownloadError(UserError):
    """A failed download; .problem says what failed, without advice on what to do."""

    def __init__(self, message, problem=None):
        super(DownloadError, self).__init__(message)
        self.problem = problem or message


def download(url, dest, sha256, timeout=30, progress_min_bytes=1 << 20, out=None):
    """Fetches url into dest unless dest already holds the right bytes.

    Atomic: the bytes go to a temporary file beside dest, are checked against
    sha256, then renamed; nothing partial is ever left at dest. Progress is
    shown for files of progress_min_bytes or more. Any failure is a DownloadError (a UserError)
    that tells a network problem from a local one (a full disk, a folder that cannot be made).
    """
    if os.path.isfile(dest) and sha256_of(dest) == sha256:
        return dest
    out = out or sys.stderr
    folder = os.path.dirname(os.path.abspath(dest))
    tmp = None
    try:
        safe_mkdir(folder)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(dest) + '.',
                                   suffix='.part')
        digest = hashlib.sha256()
        with os.fdopen(fd, 'wb') as f, contextlib.closing(_open_url(url, dest, timeout)) as r:
            total = int(r.headers.get('Content-Length') or 0)
            done, last_shown = 0, 0.0
            for block in _read_blocks(r, url, dest):
                f.write(block)
                digest.update(block)
                done += len(block)
                if total >= progress_min_bytes and time.time() - last_shown > 0.5:
                    out.write('\rdownloading {} {:5.1f}% of {:.1f} MB'.format(
                        os.path.basename(dest), 100.0 * done / total, total / 1e6))
                    out.flush()
                    last_shown = time.time()
            if total >= progress_min_bytes:
                out.write('\rdownloading {} done ({:.1f} MB)\n'.format(
                    os.path.basename(dest), done / 1e6))
            if total and done != total:
                raise DownloadError('download of {} stopped after {} of {} bytes'.format(
                    url, done, total))
        got = digest.hexdigest()
        if got != sha256:
            raise DownloadError('checksum mismatch for {}: expected sha256 {}, got {}'.format(
                url, sha256, got))
        os.replace(tmp, dest)
        tmp = None
    except OSError as e:   # the network's errors are DownloadErrors by now: this one is local
        problem = 'cannot write {} ({})'.format(tmp or dest, e.strerror or e)
        raise DownloadError('{}; free some space or pick another folder'.format(problem), problem)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    return dest


# URLError, timeouts and resets are OSErrors; a malformed response is an HTTPException.
_NETWORK_ERRORS = (OSError, ValueError, http.client.HTTPException)


def _network_error(url, dest, error):
    if isinstance(error, http.client.HTTPException):
        error = '{}: {}'.format(type(error).__name__, error)
    problem = 'cannot download {} ({})'.format(url, getattr(error, 'reason', error))
    return DownloadError('{}; offline? put the file at {} yourself'.format(problem, dest), problem)


def _open_url(url, dest, timeout):
    try:
        return urlopen(url, timeout=timeout)
    except _NETWORK_ERRORS as e:
        raise _network_error(url, dest, e)


def _read_blocks(response, url, dest, size=1 << 16):
    while True:
        try:
            block = response.read(size)
        except _NETWORK_ERRORS as e:
            raise _network_error(url, dest, e)
        if not block:
            return
        yield block


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


# ---------------------------------------------------------------------------
# MNIST (mnist_rnn.py): the four IDX files, split as TF1's read_data_sets.
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Comparisons over seeds (mnist_rnn.py --seeds): intervals, paired differences, tables, plots.
# ---------------------------------------------------------------------------

def _t_central(t, df):
    """P(|T| < t) for Student's t with integer df: the closed forms of Abramowitz and
    Stegun 26.7.3 (odd df) and 26.7.4 (even df), in theta = atan(t / sqrt(df))."""
    theta = math.atan(t / math.sqrt(df))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2:
        if df == 1:
            return 2 * theta / math.pi
        term = total = math.cos(theta)
        for k in range(1, (df - 1) // 2):
            term *= cos2 * (2 * k) / (2 * k + 1)
            total += term
        return 2 / math.pi * (theta + sin * total)
    term = total = 1.0
    for k in range(1, df // 2):
        term *= cos2 * (2 * k - 1) / (2 * k)
        total += term
    return sin * total


def t_quantile(p, df):
    """Student's t quantile: the t with P(T < t) = p, for 0.5 <= p < 1 and integer df >= 1
    (bisection on the exact distribution function; no SciPy)."""
    if not 0.5 <= p < 1 or int(df) != df or df < 1:
        raise ValueError('t_quantile needs 0.5 <= p < 1 and an integer df >= 1')
    target, low, high = 2 * p - 1, 0.0, 1.0
    while _t_central(high, df) < target:
        low, high = high, high * 2
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if _t_central(middle, df) < target else (low, middle)
    return (low + high) / 2


def mean_interval(values, confidence=0.95):
    """{'n', 'mean', 'std', 'low', 'high'} of values: the sample standard deviation (n - 1)
    and the t interval of the mean. Below two values std, low and high are None (no
    interval from one run); no values: mean None too."""
    values = np.asarray(values, np.float64)
    n = len(values)
    result = {'n': n, 'mean': float(np.mean(values)) if n else None, 'std': None, 'low': None,
              'high': None}
    if n >= 2:
        std = float(np.std(values, ddof=1))
        half = t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
        result.update(std=std, low=result['mean'] - half, high=result['mean'] + half)
    return result


def paired_difference(a, b, confidence=0.95):
    """a - b paired by key (a seed): {seed: value} each, only the seeds both have count.
    mean_interval of the differences, with 'seeds' and 'differences' in seed order."""
    seeds = sorted(set(a) & set(b))
    differences = [a[seed] - b[seed] for seed in seeds]
    return dict(mean_interval(differences, confidence), seeds=seeds, differences=differences)


def same_runs(a, b, atol=1e-9, rtol=1e-6):
    """True when every seed that a and b ({seed: sequence of numbers}) share gave the same
    numbers (within atol + rtol * |b|), and they share one at least: the same computation."""
    seeds = set(a) & set(b)
    return bool(seeds) and all(
        len(a[seed]) == len(b[seed]) and np.allclose(a[seed], b[seed], rtol=rtol, atol=atol)
        for seed in seeds)


def markdown_table(columns, rows):
    """A Markdown table of rows (dicts keyed by columns)."""
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '|'.join('---' for _ in columns) + '|']
    lines += ['| ' + ' | '.join(str(row.get(c, '')) for c in columns) + ' |' for row in rows]
    return '\n'.join(lines) + '\n'


def write_csv(path, columns, rows):
    safe_mkdir(os.path.dirname(path))
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, columns, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)


def plot_over_seeds(curves, path, accuracy_label='accuracy'):
    """Two panels into path (PNG, Agg backend), one colour per name in curves:
    {name: {'accuracy': [[per epoch] per seed], 'seconds': [[cumulative seconds at each
    epoch] per seed], 'note': text for the legend}}. Left: the mean per epoch, shaded from
    the lowest to the highest seed; right: the mean against the mean seconds (time to
    accuracy). Seeds of different lengths are cut to the shortest."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    fig, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(12, 4.5))
    styles = ('-', '--', '-.', ':')
    for index, (name, curve) in enumerate(curves.items()):
        label = name + (' ' + curve['note'] if curve.get('note') else '')
        length = min((len(c) for c in curve['accuracy']), default=0)
        if not length:   # nothing to draw (NaN in every seed): the legend says so
            by_epoch.plot([], [], 'x', label=label)
            continue
        accuracy = np.array([c[:length] for c in curve['accuracy']], np.float64)
        mean, epochs = accuracy.mean(axis=0), np.arange(1, length + 1)
        style = styles[index % len(styles)]
        line, = by_epoch.plot(epochs, mean, 'o' + style, markersize=3, label=label)
        by_epoch.fill_between(epochs, accuracy.min(axis=0), accuracy.max(axis=0),
                              color=line.get_color(), alpha=0.2, linewidth=0)
        seconds = np.array([s[:length] for s in curve['seconds']], np.float64).mean(axis=0)
        by_time.plot(seconds, mean, 'o' + style, markersize=3, color=line.get_color(),
                     label=label)
    by_epoch.set(title='{} per epoch: mean over seeds, band from lowest to highest'.format(
        accuracy_label), xlabel='epoch', ylabel=accuracy_label)
    by_epoch.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_time.set(title='time to accuracy (mean over seeds)', ylabel=accuracy_label,
                xlabel='seconds of training steps (wall clock)')
    for ax in (by_epoch, by_time):
        ax.grid(alpha=0.3)
        ax.legend(fontsize='small')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def seed_list(text):
    """argparse type: N (seeds 0..N-1) or a comma-separated list of distinct seeds."""
    try:
        seeds = [int(seed) for seed in text.split(',') if seed.strip()]
    except ValueError:
        seeds = []
    if len(seeds) == 1 and ',' not in text:
        seeds = list(range(seeds[0]))
    if not seeds or min(seeds) < 0 or len(set(seeds)) < len(seeds):
        raise argparse.ArgumentTypeError('expected a number of seeds (5) or a list of distinct '
                                         'seeds (0,3,7), not {!r}'.format(text))
    return seeds


def fmt(value, spec='{:.4f}'):
    return '' if value is None else spec.format(value)


def _interval(stats, spec='{:.4f}'):
    return '' if stats['low'] is None else '{} to {}'.format(spec.format(stats['low']),
                                                             spec.format(stats['high']))


def compare_over_seeds(runs, names, means=(), confidence=0.95):
    """Compares named models (cells) trained from several seeds, on a score where higher is
    better (an accuracy).

    runs: dicts with 'name', 'seed', 'score' (None: the run has none, e.g. it hit NaN),
    'nan' (bool), 'signature' (the numbers that tell two runs apart) and the keys of
    `means`, (column, key, format) triples averaged per name over its runs.
    Returns (a row per name: runs, NaN, the score's mean, std and t interval, the means;
    a row per pair: the difference of the better minus the other, paired by seed, its
    interval and verdict; verdict lines). Two names whose runs have the same signature in
    every shared seed are 'identical', not ranked; a difference is real when its
    interval excludes 0.
    """
    by_name = {name: [r for r in runs if r['name'] == name] for name in names}
    scores = {name: {r['seed']: r['score'] for r in rs if r['score'] is not None}
              for name, rs in by_name.items()}
    stats = {name: mean_interval(list(s.values()), confidence) for name, s in scores.items()}
    rows, lines = [], []
    for name, rs in by_name.items():
        nans = sum(bool(r['nan']) for r in rs)
        row = {'name': name, 'runs': len(rs), 'NaN': nans, 'mean': fmt(stats[name]['mean']),
               'std': fmt(stats[name]['std']), 'interval': _interval(stats[name])}
        for column, key, spec in means:
            row[column] = fmt(mean_interval([r[key] for r in rs if r[key] is not None])['mean'],
                               spec)
        rows.append(row)
        if nans:
            lines.append('{}: NaN in {} of {} runs (kept in the table, left out of its '
                         'accuracy){}'.format(name, nans, len(rs), '' if nans < len(rs) else
                                              ': nothing to compare'))
    pairs, verdicts = [], {'Real': [], 'Identical': [], 'Not resolved': []}
    ranked = [name for name in names if scores[name]]
    for i, first in enumerate(ranked):
        for second in ranked[i + 1:]:
            a, b = ((second, first) if stats[second]['mean'] > stats[first]['mean'] else
                    (first, second))
            diff = paired_difference(scores[a], scores[b], confidence)
            signatures = [{r['seed']: r['signature'] for r in by_name[n] if r['score'] is not None}
                          for n in (a, b)]
            if same_runs(*signatures):
                verdict = ('identical: the same numbers at every epoch of every seed (the same '
                           'function from the same initialisation); not ranked')
                verdicts['Identical'].append('{} = {}'.format(a, b))
            elif diff['low'] is None:
                verdict = 'no interval from {} seed{}'.format(diff['n'], 's' * (diff['n'] != 1))
                verdicts['Not resolved'].append('{} vs {}'.format(a, b))
            elif diff['low'] > 0:
                verdict = '{} better: real at {} seeds (the interval excludes 0)'.format(
                    a, diff['n'])
                verdicts['Real'].append('{} > {} by {:.4f}'.format(a, b, diff['mean']))
            else:
                verdict = 'not resolved at {} seeds (the interval holds 0)'.format(diff['n'])
                verdicts['Not resolved'].append('{} vs {}'.format(a, b))
            pairs.append({'difference': '{} - {}'.format(a, b), 'seeds': diff['n'],
                          'mean': fmt(diff['mean'], '{:+.4f}'),
                          'interval': _interval(diff, '{:+.4f}'), 'verdict': verdict})
    lines += ['{}: {}.'.format(kind, '; '.join(items)) for kind, items in verdicts.items() if items]
    return rows, pairs, lines


def load_average():
    """The 1-minute load average (NaN where the system has none)."""
    return os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')


def report_facts(script, argv, data_dir, data, settings, runs, started):
    """The list heading a results.md: the command, the stack, the data, the settings
    ((name, value) pairs) and the time: the runs' wall seconds (their 'wall s') and this
    command's, and the load average at its start (started: (time, load)) and now."""
    return ['made with: `python {}`'.format(' '.join(shlex.quote(a) for a in [script] + argv)),
            'stack: {}, TensorFlow {}'.format(STACK, tf.__version__),
            'data: `{}`: {} train, {} validation, {} test images'.format(
                data_dir, *(data[key].num_examples for key in ('train', 'validation', 'test'))),
            'settings: ' + ', '.join('{} {}'.format(k.replace('_', '-'), v) for k, v in settings),
            'time: {} runs, {:.0f} s of wall time in all (this command: {:.0f} s); load average '
            '{:.2f} at the start, {:.2f} at the end, {} CPUs'.format(
                len(runs), sum(r['wall s'] for r in runs), time.time() - started[0], started[1],
                load_average(), os.cpu_count())]


def report_over_seeds(folder, runs, names, title, facts, note, means=(), run_columns=(),
                      name_label='cell', score_label='test accu', plot_label='test accuracy'):
    """compare_over_seeds' tables into folder: runs.csv (each run's 'row', a dict keyed by
    run_columns), results.csv (per name), results.md (a title, the facts as a list, both
    tables, the note, the pairs and the verdict) and results.png (plot_over_seeds of the runs'
    'curve' and 'seconds', per epoch). Returns (the rows per name, the rows per pair)."""
    safe_mkdir(folder)
    rows, pairs, lines = compare_over_seeds(runs, names, means)
    columns = (name_label, 'runs', 'NaN', score_label + ' mean', 'std', '95% interval') + tuple(
        column for column, _, _ in means)
    rename = {'name': name_label, 'mean': score_label + ' mean', 'interval': '95% interval'}
    rows = [{rename.get(key, key): value for key, value in row.items()} for row in rows]
    for pair in pairs:
        pair['95% interval'] = pair.pop('interval')
    pair_columns = ('difference', 'seeds', 'mean', '95% interval', 'verdict')
    run_rows = [r['row'] for r in sorted(runs, key=lambda r: (names.index(r['name']), r['seed']))]
    write_csv(os.path.join(folder, 'runs.csv'), run_columns, run_rows)
    write_csv(os.path.join(folder, 'results.csv'), columns, rows)
    with open(os.path.join(folder, 'results.md'), 'w') as f:
        f.write('# {}\n\n{}\n## {} over seeds\n\n{}\n{}\n\n'.format(
            title, ''.join('- {}\n'.format(fact) for fact in facts), score_label,
            markdown_table(columns, rows), note))
        f.write('## Verdict: differences paired by seed\n\n{}\nEach difference is taken seed by '
                'seed over the seeds both finished without NaN; its 95% t interval is per pair, '
                'not corrected for the {} pairs.\n\n{}\n## Runs\n\n{}'.format(
                    markdown_table(pair_columns, pairs), len(pairs),
                    ''.join('- {}\n'.format(line) for line in lines),
                    markdown_table(run_columns, run_rows)))
    curves = {}
    for row in rows:
        scored = [r for r in runs if r['name'] == row[name_label] and r['score'] is not None]
        curves[row[name_label]] = {
            'accuracy': [r['curve'] for r in scored], 'seconds': [r['seconds'] for r in scored],
            'note': '(NaN in {} of {})'.format(row['NaN'], row['runs']) if row['NaN'] else ''}
    plot_over_seeds(curves, os.path.join(folder, 'results.png'), plot_label)
    return rows, pairs
