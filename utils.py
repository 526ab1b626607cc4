"""Helpers shared by char_rnn.py and mnist_rnn.py.

One import shim for both TensorFlow stacks (TF 1.15, or TF 2.x through
tensorflow.compat.v1 in graph mode), the lecture's vocabulary and batching
helpers (with their bugs fixed), gradient clipping and numerics checks, and
data download and parsing.

    from utils import tf, rnn     # tf is the TF1 API on either stack
"""
from __future__ import print_function

import argparse
import collections
import collections.abc
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
import socket
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
        return {signal.SIGINT: 'Ctrl-C', signal.SIGTERM: 'SIGTERM', CHIEF_STOPPED: 'the chief stopped',
                signal.SIGPIPE: 'a closed output pipe'}.get(self.signum, 'a signal')


class _PipeGuard(object):
    """sys.stdout that, once its reader is gone (`python char_rnn.py | head`), drops what
    is written and requests a stop, instead of raising BrokenPipeError mid-training."""

    def __init__(self, stream, stop):
        self.stream, self.stop, self.broken = stream, stop, False

    def _guard(self, method, *args):
        if not self.broken:
            try:
                return method(*args)
            except BrokenPipeError:
                self.broken = True
                if self.stop.signum is None:
                    self.stop.signum = signal.SIGPIPE
        return None

    def write(self, text):
        self._guard(self.stream.write, text)
        return len(text)

    def flush(self):
        self._guard(self.stream.flush)

    def __getattr__(self, name):
        return getattr(self.stream, name)


@contextlib.contextmanager
def stop_on_signals(signums=(signal.SIGINT, signal.SIGTERM)):
    """Context: Ctrl-C and SIGTERM set the yielded StopRequest instead of interrupting.

    The training loops of both scripts check it between two steps, then save and exit 0.
    Nothing is ever cut in half: a signal that arrives mid-step, mid-save (a second Ctrl-C
    included) or between updating the best loss and saving it only sets the flag, which
    the loop sees at its next check. Outside the context (data loading, graph building:
    nothing to save yet) Ctrl-C interrupts as usual. Off the main thread, where Python
    cannot install handlers, the signals stay as they are. Output to a pipe whose reader
    has gone (`| head`) stops the same way: stdout then drops what is printed.
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
        stdout, sys.stdout = sys.stdout, _PipeGuard(sys.stdout, stop)
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if isinstance(sys.stdout, _PipeGuard):
            if sys.stdout.broken:   # nothing more reaches the pipe, nor fails at exit
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stdout.fileno())
                os.close(devnull)
            sys.stdout = stdout


def session_config(threads=0):
    """ConfigProto with GPU memory growth (as the notebook) and thread counts (0 = TF decides)."""
    config = tf.ConfigProto(intra_op_parallelism_threads=threads,
                            inter_op_parallelism_threads=threads)
    config.gpu_options.allow_growth = True
    return config


@contextlib.contextmanager
def training_session(cluster, saver, start, threads=0):
    """The session a training loop runs in, the variables initialised, then start(session)
    (which restores a checkpoint): a cluster's MonitoredSession (start runs on the chief,
    again if the session is made anew), or a tf.Session of the default graph, which is then
    finalized: a training loop that adds ops grows slower with every step."""
    if cluster:
        with cluster.session(saver, start) as sess:
            yield sess
        return
    graph = tf.get_default_graph()
    init = tf.global_variables_initializer()
    graph.finalize()
    with tf.Session(graph=graph, config=session_config(threads)) as sess:
        sess.run(init)
        start(sess)
        yield sess


def raw_session(sess, cluster=None):
    """The tf.Session a Saver needs: a cluster's MonitoredSession wraps it."""
    return cluster.raw() if cluster else sess


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


def restore_latest(sess, saver, folder, prefix, path=None):
    """restore() of folder's latest checkpoint (path, when the caller has looked it up); one
    a training run rotates away meanwhile is followed by its newer one. Returns the path
    restored."""
    path = path or latest_checkpoint(folder, prefix)
    while True:
        try:
            restore(sess, saver, path)
            return path
        except UserError:
            newer = latest_checkpoint(folder, prefix)
            if newer == path:
                raise
            path = newer


def rotating_saver(path_prefix, max_to_keep):
    """A Saver whose rotation (max_to_keep) counts the checkpoints earlier runs left at
    path_prefix too (a Saver rotates only the files it knows); relative paths in the state
    file, so a checkpoint folder can be moved or copied."""
    saver = tf.train.Saver(max_to_keep=max_to_keep, save_relative_paths=True)
    folder = os.path.dirname(path_prefix)
    state = tf.train.get_checkpoint_state(folder) if os.path.isdir(folder) else None
    if state:
        saver.recover_last_checkpoints(state.all_model_checkpoint_paths)
    return saver


@contextlib.contextmanager
def folder_lock(folder, elsewhere='another --checkpoint-dir', cluster=None):
    """Context: an exclusive OS lock (flock) on folder for a run that writes into it.

    A second run on the same folder is a UserError naming the process that holds it. The
    kernel drops the lock when its holder exits, however it exits (kill -9 included), so
    nothing is ever left to clean up. Readers (--sample) take no lock, nor do the workers of
    a cluster but its chief, the one that writes.
    """
    if cluster is not None and not cluster.is_chief:
        yield
        return
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


def event_writer(folder, graph=None, chief=True, step=0):
    """A FileWriter (a NullWriter on a cluster's other workers). A run resumed at `step`
    marks a restart, so TensorBoard drops what an earlier run wrote after that step."""
    if not chief:
        return NullWriter()
    writer = tf.summary.FileWriter(folder, graph)
    if step:
        writer.add_session_log(tf.SessionLog(status=tf.SessionLog.START), step + 1)
    return writer


def passed(before, after, every):
    """Whether a count passed a multiple of `every` from before to after (a cluster's global
    step may jump)."""
    return after // every > before // every


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
    from tensorflow.contrib.rnn.python.ops import lstm_ops as _contrib_lstm_ops
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
# GRU layers over a whole window: GRUCell's math and variables, fewer and larger ops.
# ---------------------------------------------------------------------------

def gru_weights(cell, input_size):
    """A built GRUCell's variables as (w_x [n, 3H], b [3H], w_ru [H, 2H], w_c [H, H]).

    GRUCell multiplies [x, h] by gates/kernel ([n + H, 2H]) and [x, r * h] by
    candidate/kernel ([n + H, H]); the rows for x and for h are split apart here, so the
    input part can be one large matmul over every step and only h's part stays per step.
    """
    named = {v.op.name.rsplit('/', 2)[-2] + '/' + v.op.name.rsplit('/', 1)[-1]: v
             for v in cell.weights}
    gates, candidate = named['gates/kernel'], named['candidate/kernel']
    w_x = tf.concat([gates[:input_size], candidate[:input_size]], 1)
    b = tf.concat([named['gates/bias'], named['candidate/bias']], 0)
    return w_x, b, gates[input_size:], candidate[input_size:]


def gru_step(gx, h, w_ru, w_c):
    """One GRUCell step, given gx = x @ w_x + b: the new h, and (r u) and c for the gradient."""
    units = w_c.shape[0].value
    ru = tf.sigmoid(gx[:, :2 * units] + tf.matmul(h, w_ru))
    r, u = tf.split(ru, 2, axis=1)
    c = tf.tanh(gx[:, 2 * units:] + tf.matmul(r * h, w_c))
    return c + u * (h - c), ru, c    # u * h + (1 - u) * c


def gru_stack(gx0, h0s, weights, parallel_iterations=32):
    """The top layer's outputs [T, B, H] of stacked GRUCells over time-major inputs.

    gx0 [T, B, 3 H0]: the first layer's input projection, biases included (the caller
    computes it as one op: a gather for one-hot inputs, a matmul otherwise). h0s: each
    layer's initial state. weights: gru_weights() of each layer (layer 0's w_x and b
    unused). Every time step runs all layers, as MultiRNNCell does, so that layer 1 of
    step t + 1 overlaps layer 2 of step t. The gradient is written out: the backward
    loop carries only dh, and each weight gradient is one matmul over all steps, where
    tf.gradients of a while loop would multiply and sum [B, n] x [B, H] per step.
    Same loss and gradients as dynamic_rnn over the same cells (tests/test_char_rnn.py).
    """
    layers = len(h0s)
    units = [w_c.shape[0].value for _, _, _, w_c in weights]
    flat = [gx0] + list(h0s) + [w for layer in weights for w in layer]

    @tf.custom_gradient
    def stack(*flat):
        gx0, h0s, weights = flat[0], flat[1:1 + layers], flat[1 + layers:]
        weights = [weights[4 * i:4 * i + 4] for i in range(layers)]
        steps = tf.shape(gx0)[0]
        array = lambda: tf.TensorArray(tf.float32, size=steps)
        gx0_t = array().unstack(gx0)

        def forward(t, hs, saved):
            x, new_hs, new_saved = None, [], []
            for i, ((w_x, b, w_ru, w_c), h) in enumerate(zip(weights, hs)):
                gx = gx0_t.read(t) if i == 0 else tf.matmul(x, w_x) + b
                x, ru, c = gru_step(gx, h, w_ru, w_c)
                new_hs.append(x)
                new_saved.append(saved[i].write(t, tf.concat([x, ru, c], 1)))
            return t + 1, new_hs, new_saved

        _, _, saved = tf.while_loop(lambda t, *_: t < steps, forward,
                                    [0, list(h0s), [array() for _ in h0s]],
                                    parallel_iterations=parallel_iterations)
        saved = [tf.split(s.stack(), [n, 2 * n, n], axis=2) for s, n in zip(saved, units)]
        outputs = [hs for hs, _, _ in saved]
        outputs[-1].set_shape(gx0.shape[:2].concatenate(h0s[-1].shape[1:]))

        def gradient(d_top):
            # What each backward step needs, from the saved forward values in a few large
            # ops: u, r, and the factors of dh that do not depend on it.
            per_step, previous = [], []
            for i, (h0, (hs, ru, c)) in enumerate(zip(h0s, saved)):
                h_prev = tf.concat([h0[None], hs[:-1]], 0)
                r, u = tf.split(ru, 2, axis=2)
                d_ru = ru * (1 - ru)                              # sigmoid'
                dr, du = tf.split(d_ru, 2, axis=2)
                per_step.append(array().unstack(tf.concat(
                    [u, r, (1 - u) * (1 - tf.square(c)), h_prev * dr, (h_prev - c) * du], 2)))
                previous.append((h_prev, r))
            d_top_t = array().unstack(d_top)
            w_t = [[tf.transpose(w) for w in layer] for layer in weights]

            def backward(i, dhs, d_gx):
                t = steps - 1 - i
                d_out, new_dhs, new_d_gx = d_top_t.read(t), [None] * layers, [None] * layers
                for l in reversed(range(layers)):
                    w_x_t, _, w_ru_t, w_c_t = w_t[l]
                    u, r, d_c_pre, dr_pre, du_pre = tf.split(per_step[l].read(t),
                                                             [units[l]] * 3 + [units[l]] * 2, 1)
                    g = d_out + dhs[l]                          # dL/dh_t
                    d_c = g * d_c_pre                           # dL/d candidate pre-activation
                    d_rh = tf.matmul(d_c, w_c_t)                # dL/d (r * h_prev)
                    d_ru = tf.concat([d_rh * dr_pre, g * du_pre], 1)
                    new_dhs[l] = g * u + d_rh * r + tf.matmul(d_ru, w_ru_t)
                    d_g = tf.concat([d_ru, d_c], 1)             # dL/d gx
                    new_d_gx[l] = d_gx[l].write(t, d_g)
                    if l:
                        d_out = tf.matmul(d_g, w_x_t)           # into the layer below
                return i + 1, new_dhs, new_d_gx

            _, d_h0s, d_gx = tf.while_loop(
                lambda i, *_: i < steps, backward,
                [0, [tf.zeros_like(h) for h in h0s], [array() for _ in h0s]],
                parallel_iterations=parallel_iterations)
            d_gx = [d.stack() for d in d_gx]
            d_weights = []
            for l, (n, (h_prev, r)) in enumerate(zip(units, previous)):
                d_g = tf.reshape(d_gx[l], [-1, 3 * n])
                rows = lambda x: tf.reshape(x, [-1, x.shape[-1].value])
                d_w_ru = tf.matmul(rows(h_prev), d_g[:, :2 * n], transpose_a=True)
                d_w_c = tf.matmul(rows(r * h_prev), d_g[:, 2 * n:], transpose_a=True)
                if l:
                    d_w_x = tf.matmul(rows(outputs[l - 1]), d_g, transpose_a=True)
                    d_b = tf.reduce_sum(d_g, 0)
                else:   # layer 0's input projection is gx0: its gradient goes there
                    d_w_x = d_b = None
                d_weights += [d_w_x, d_b, d_w_ru, d_w_c]
            return [d_gx[0]] + list(d_h0s) + d_weights

        return outputs[-1], gradient

    return stack(*flat)


def run_fused(cell, inputs):
    """(outputs [T, B, H], final state) of a GRUCell, BasicLSTMCell or LSTMCell (without
    peepholes, projection or clipping) over time-major inputs [T, B, n], every sequence
    full length; None for any other cell.

    The same variables as dynamic_rnn in the current scope (the cell is called once on the
    first step to make them). LSTMs run as one BlockLSTM op over all steps, the kernel of
    contrib's LSTMBlockFusedCell (TF 2 keeps it as tf.raw_ops.BlockLSTM, with its gradient);
    GRUCell by gru_stack, its input projection one matmul over all steps.
    """
    lstm = isinstance(cell, (rnn.BasicLSTMCell, rnn.LSTMCell))
    if not lstm and not isinstance(cell, rnn.GRUCell):
        return None
    if isinstance(cell, rnn.LSTMCell) and (cell._use_peepholes or cell._num_proj
                                           or cell._cell_clip):
        return None
    cell(inputs[0], cell.zero_state(tf.shape(inputs)[1], tf.float32))   # builds the variables
    units, size = cell.output_size, inputs.shape[-1].value
    zeros = tf.zeros([tf.shape(inputs)[1], units])
    if not lstm:
        w_x, b, w_ru, w_c = gru_weights(cell, size)
        gx = tf.reshape(tf.matmul(tf.reshape(inputs, [-1, size]), w_x) + b,
                        tf.concat([tf.shape(inputs)[:2], [3 * units]], 0))
        outputs = gru_stack(gx, [zeros], [(w_x, b, w_ru, w_c)])
        return outputs, outputs[-1]
    kernel, bias = cell.weights[:2]
    block_lstm = _contrib_lstm_ops._block_lstm if TF1 else tf.raw_ops.BlockLSTM
    peephole = tf.zeros([units])   # unused: use_peephole=False
    _, c, _, _, _, _, h = block_lstm(
        seq_len_max=tf.cast(tf.shape(inputs)[0], tf.int64), x=inputs, w=kernel, b=bias,
        cs_prev=zeros, h_prev=zeros, wci=peephole, wcf=peephole, wco=peephole,
        forget_bias=cell._forget_bias, cell_clip=-1.0, use_peephole=False)
    return h, rnn.LSTMStateTuple(c[-1], h[-1])


# ---------------------------------------------------------------------------
# Corpora: a UTF-8 text file as one array of ids, in bounded memory (char_rnn.py).
# ---------------------------------------------------------------------------

BLOCK_BYTES = 1 << 18       # read and encoded at a time: whole lines (a longer line whole)
ENCODED_FORMAT = 1          # of the files save_encoded writes
_HASH_BASE = np.uint64(0x100000001B3)
_HASH_LENGTH = np.uint64(0x9E3779B97F4A7C15)
_HASHED_CHARS = 64          # longer last words are hashed one at a time
_SPACE = []


def index_dtype(size):
    """int32 for indices up to size when they fit, else int64."""
    return np.dtype(np.int32 if size < 2 ** 31 else np.int64)


def id_dtype(vocab_size):
    """The narrowest unsigned integer dtype holding ids 0..vocab_size."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError('vocabulary of {} characters'.format(vocab_size))


def _space_table():
    """A bool per code point: str.isspace, the whitespace of str.strip and str.split.

    Every such character is in the Basic Multilingual Plane (the last is U+3000).
    """
    if not _SPACE:
        table = np.zeros(0x110000, bool)
        table[[c for c in range(0x10000) if chr(c).isspace()]] = True
        _SPACE.append(table)
    return _SPACE[0]


class EncodedText(object):
    """The lines of a text, stripped as str.strip does, as one array of vocabulary ids.

    ids: the ids (1..len(vocab); 0 is padding, never stored) of the lines' characters in the
    vocabulary, line after line, in the narrowest unsigned dtype (uint8 up to 255 characters);
    lengths: int32 (int64 for lines of 2**31 characters), how many ids each non-empty line has
    (0 when none is in the vocabulary).
    lines and chars: the non-empty lines and their characters; dropped: a Counter of the
    characters outside the vocabulary, in order of first appearance; last_word: (word,
    count), the last word of more than half of the non-empty lines and on how many it is,
    else ('', 0); sha256: of the file's bytes (None for text given in memory); auto: the
    vocabulary is every character of the text, sorted.
    """

    def __init__(self, vocab, ids, lengths, lines, chars, dropped, last_word, sha256=None,
                 auto=False):
        self.vocab, self.ids, self.lengths = vocab, ids, lengths
        self.lines, self.chars, self.dropped = lines, chars, dropped
        self.last_word, self.sha256, self.auto = tuple(last_word), sha256, auto


class _Encoder(object):
    """Encodes blocks of whole lines (code points) into one growing id array."""

    def __init__(self, vocab, capacity):
        self.vocab = vocab
        if vocab is None:   # ids in order of first appearance, renumbered by finish()
            self.seen = 0
            self.table = np.zeros(0x110000, np.uint8)
        else:
            self.table = np.zeros(0x110000, id_dtype(len(vocab)))
            for i, ch in reversed(list(enumerate(vocab))):   # a repeated character: its first id
                self.table[ord(ch)] = i + 1
        # Pages beyond the text's ids are never touched, so never allocated.
        self.ids = np.empty(capacity, self.table.dtype)
        self.size = 0
        self.lengths, self.keys, self.words, self.dropped = [], [], {}, {}
        self.lines = self.chars = 0

    def add(self, cps):
        """Encodes the lines of cps, uint32 code points of whole lines separated by '\\n'."""
        breaks = np.flatnonzero(cps == 10)
        begins = np.concatenate([[0], breaks + 1])
        ends = np.concatenate([breaks, [len(cps)]])
        some = begins < ends
        begins, ends = begins[some], ends[some]
        space = _space_table()
        if np.take(space, cps[begins]).any() or np.take(space, cps[ends - 1]).any():
            first, last, keep = self._strip(cps, begins, ends)
        else:   # nothing to strip but the line breaks
            first, last, keep = begins, ends - 1, cps != 10
        widths = last - first + 1
        self.lines += len(widths)
        self.chars += int(widths.sum())
        self._last_words(cps, first, last)
        lookup = np.take(self.table, cps)
        if self.vocab is None:
            unseen = (lookup == 0) & keep
            if unseen.any():
                new = np.unique(cps[unseen])
                self.seen += len(new)
                self.table = self.table.astype(id_dtype(self.seen), copy=False)
                self.table[new] = np.arange(self.seen - len(new) + 1, self.seen + 1)
                lookup = np.take(self.table, cps)
            ids = lookup[keep]
        else:
            ids = lookup[keep]
            known = ids != 0
            if not known.all():
                self._count_dropped(cps[keep][~known])
                ids = ids[known]
                before = np.zeros(len(known) + 1, np.int64)
                np.cumsum(known, out=before[1:])
                bounds = np.zeros(len(widths) + 1, np.int64)
                np.cumsum(widths, out=bounds[1:])
                widths = np.diff(before[bounds])
        self._append(ids)
        self.lengths.append(widths.astype(np.int32 if len(cps) < 2 ** 31 else np.int64))

    @staticmethod
    def _strip(cps, begins, ends):
        """str.strip of the lines [begins, ends): the first and last characters of those left
        non-empty, and a mask of the characters kept."""
        solid = np.flatnonzero(~np.take(_space_table(), cps))
        at = np.minimum(np.searchsorted(solid, begins), len(solid) - 1)
        full = np.zeros(len(begins), bool) if not len(solid) else (
            (solid[at] >= begins) & (solid[at] < ends))
        first = solid[at[full]]
        last = solid[np.searchsorted(solid, ends[full]) - 1]
        edges = np.zeros(len(cps) + 1, np.int8)
        edges[first] = 1
        edges[last + 1] = -1
        return first, last, np.cumsum(edges[:-1], dtype=np.int8).view(bool)

    def _append(self, ids):
        end, dtype = self.size + len(ids), self.table.dtype
        if end > len(self.ids) or dtype != self.ids.dtype:   # a file that grew; a wider id
            grown = np.empty(len(self.ids) if end <= len(self.ids) else end + end // 2, dtype)
            grown[:self.size] = self.ids[:self.size]
            self.ids = grown
        self.ids[self.size:end] = ids
        self.size = end

    def _count_dropped(self, outside):
        values, first, counts = np.unique(outside, return_index=True, return_counts=True)
        for i in np.argsort(first, kind='stable'):
            cp = int(values[i])
            self.dropped[cp] = self.dropped.get(cp, 0) + int(counts[i])

    def _last_words(self, cps, first, last):
        """Per line, a 64-bit key for its last word (str.split()[-1]): the sum of (code point
        + 1) * P**i over its characters i; the word of the median key."""
        if not len(last):
            return
        space = _space_table()
        keys = np.zeros(len(last), np.uint64)
        length = np.zeros(len(last), np.int64)
        todo = np.arange(len(last))   # lines whose word may go on further back
        while len(todo) and length[todo[0]] < _HASHED_CHARS:   # Horner, from the end
            at = last[todo] - length[todo]
            code = np.take(cps, np.maximum(at, first[todo]))
            go = (at >= first[todo]) & ~np.take(space, code)
            todo, code = todo[go], code[go].astype(np.uint64)
            keys[todo] = keys[todo] * _HASH_BASE + code + np.uint64(1)
            length[todo] += 1
        for i in todo:   # longer words, one at a time
            line = cps[first[i]:last[i] + 1]
            spaces = np.flatnonzero(np.take(space, line))
            word = line[spaces[-1] + 1 if len(spaces) else 0:].astype(np.uint64)
            powers = np.full(len(word), _HASH_BASE)
            powers[0] = 1
            keys[i] = np.sum((word + np.uint64(1)) * np.cumprod(powers), dtype=np.uint64)
            length[i] = len(word)
        keys ^= length.astype(np.uint64) * _HASH_LENGTH
        # A word on more than half of all lines is on more than half of some block's: the
        # median of that block's keys.
        middle = int(np.partition(keys, len(keys) // 2)[len(keys) // 2])
        if middle not in self.words:
            i = int(np.argmax(keys == np.uint64(middle)))
            word = cps[last[i] - length[i] + 1:last[i] + 1]
            self.words[middle] = word.tobytes().decode('utf-32-le')
        self.keys.append(keys)

    def finish(self, sha256=None):
        ids = self.ids[:self.size]
        vocab = self.vocab
        if vocab is None:   # renumber in code point order
            points = np.flatnonzero(self.table)
            vocab = ''.join(map(chr, points.tolist()))
            renumber = np.zeros(max(self.seen + 1, 256), ids.dtype)
            renumber[self.table[points]] = np.arange(1, len(points) + 1)
            table = renumber.tobytes() if ids.dtype == np.uint8 else None
            for i in range(0, len(ids), BLOCK_BYTES):
                block = ids[i:i + BLOCK_BYTES]
                block[:] = (np.frombuffer(block.tobytes().translate(table), np.uint8)
                            if table else np.take(renumber, block))
        lengths = np.concatenate(self.lengths) if self.lengths else np.zeros(0, np.int32)
        self.lengths = None
        last_word = ('', 0)
        if self.keys:
            keys = np.concatenate(self.keys)
            self.keys = None
            keys.partition(len(keys) // 2)
            middle = keys[len(keys) // 2]
            count = int(np.count_nonzero(keys == middle))
            if 2 * count > len(keys):
                last_word = (self.words[int(middle)], count)
        dropped = collections.Counter()
        for cp, count in self.dropped.items():
            dropped[chr(cp)] = count
        return EncodedText(vocab, ids, lengths, self.lines, self.chars, dropped, last_word,
                           sha256, auto=self.vocab is None)


class Windows(object):
    """Windows of some lines of an id array: `window` ids every window // 2 ids of each line,
    its last window zero-padded (chunk_ids' windows), line after line. Only offsets are
    kept, 12 bytes a line: a batch is gathered from the ids when it is drawn."""

    def __init__(self, ids, starts, lengths, window):
        self.ids, self.lengths, self.window = ids, lengths, window
        self.starts = starts.astype(index_dtype(len(ids)))
        self.step = window // 2
        counts = self.counts(lengths)
        self.ends = np.cumsum(counts, dtype=index_dtype(int(counts.sum(dtype=np.int64))))
        self.n_lines = len(lengths)

    def counts(self, lengths):
        """Windows of lines of these lengths (2 or more)."""
        return 1 + (np.maximum(lengths - self.window, 0) + self.step - 1) // self.step

    def __len__(self):
        return int(self.ends[-1]) if self.n_lines else 0

    def gather(self, lines, numbers):
        """int32 [len(lines), window]: window numbers[i] of line lines[i]."""
        offsets = numbers * self.step
        columns = np.arange(self.window)
        inside = columns < np.minimum(self.lengths[lines] - offsets, self.window)[:, None]
        batch = np.zeros(inside.shape, np.int32)
        batch[inside] = self.ids[((self.starts[lines] + offsets)[:, None] + columns)[inside]]
        return batch

    def take(self, indices):
        """int32 [len(indices), window]: the windows at these indices (0..len(self) - 1)."""
        lines = np.searchsorted(self.ends, indices, side='right')
        return self.gather(lines, indices - self.ends[lines] + self.counts(self.lengths[lines]))

    def batches(self, batch_size, seed, start=0):
        """Endless batches, the lines reshuffled each pass as the lecture's read_data, from
        window `start` of that stream on (`start` windows drawn before: a resumed run).

        Pass p visits the lines in the order of RandomState(seed + [p]) (seed: a list of
        ints), each line's windows in order. Fix: the order depends on the position alone,
        so a run resumed at any step draws what the uninterrupted run draws from there on
        (the earlier stream was reseeded at the resumed step: a new pass began there).
        """
        if not len(self):
            raise ValueError('no windows to draw batches from')
        passes = collections.deque()   # [lines in order, ends of their windows, windows taken]
        number, skip = divmod(int(start), len(self))
        while True:
            while sum(int(ends[-1]) - taken for _, ends, taken in passes) < batch_size:
                order = np.random.RandomState(list(seed) + [number]).permutation(
                    self.n_lines).astype(self.ends.dtype)
                passes.append([order, np.cumsum(self.counts(self.lengths[order]),
                                                dtype=self.ends.dtype), skip])
                number, skip = number + 1, 0
            parts, need = [], batch_size
            while need:
                order, ends, taken = passes[0]
                at = np.arange(taken, taken + min(need, int(ends[-1]) - taken))
                where = np.searchsorted(ends, at, side='right')
                lines = order[where]
                numbers = at - ends[where] + self.counts(self.lengths[lines])
                parts.append(self.gather(lines, numbers))
                need -= len(at)
                passes[0][2] += len(at)
                if passes[0][2] == ends[-1]:
                    passes.popleft()
            yield np.concatenate(parts) if len(parts) > 1 else parts[0]

    def fixed_batches(self, batch_size, limit=0):
        """The first `limit` batches (0: all), always the same: for comparable validation
        losses. A sequence: each batch is gathered when it is read."""
        return _FixedBatches(self, batch_size, len(self) if not limit
                             else min(len(self), limit * batch_size))


class Corpus(object):
    """The lines of an EncodedText (char_rnn.py's corpus) as windows, split into training
    and validation lines."""

    def __init__(self, text, window, val_frac, seed, name='the file'):
        self.vocab, self.dropped = text.vocab, text.dropped
        self.lines, self.chars, self.kept = text.lines, text.chars, len(text.ids)
        if not self.kept:
            raise UserError('no character of {} is in the vocabulary ({} characters); try '
                            '--vocab auto'.format(name, len(self.vocab)))
        usable = np.flatnonzero(text.lengths >= 2)   # lines with a character to predict
        if not len(usable):
            raise UserError('no line of {} has two or more vocabulary characters: nothing to '
                            'predict'.format(name))
        starts = np.cumsum(text.lengths, dtype=np.int64)
        starts -= text.lengths
        starts, lengths = starts[usable], text.lengths[usable]
        del usable
        # Held-out lines for the validation loss: the same ones for a given --seed.
        order = np.random.RandomState(seed).permutation(len(starts))
        n_val = int(round(val_frac * len(starts)))
        if val_frac > 0:   # at least one validation line, and always one to train on
            n_val = max(n_val, 1)
        n_val = min(n_val, len(starts) - 1)
        self.train, self.val = (Windows(text.ids, starts[part], lengths[part], window)
                                for part in (order[n_val:], order[:n_val]))

    def describe(self, name, vocab_source):
        dropped = sum(self.dropped.values())
        text = ('{}: {:,} lines, {:,} characters; vocabulary {} characters ({}); '
                '{:,} characters ({:.2%}) outside it dropped').format(
                    name, self.lines, self.chars, len(self.vocab), vocab_source, dropped,
                    dropped / max(self.chars, 1))
        if dropped:
            text += ', most frequent: ' + ', '.join(
                '{!r} {:,}'.format(ch, n) for ch, n in self.dropped.most_common(5))
        return text


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


class _FixedBatches(collections.abc.Sequence):
    def __init__(self, windows, size, stop):
        self.windows, self.size, self.stop = windows, size, stop

    def __len__(self):
        return -(-self.stop // self.size)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = i + len(self) if i < 0 else i
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.windows.take(np.arange(i * self.size, min((i + 1) * self.size, self.stop)))


def encode_lines(lines, vocab=None):
    """EncodedText of lines of text in memory (see encode_file)."""
    text = '\n'.join(lines)
    encoder = _Encoder(vocab, len(text))
    encoder.add(np.frombuffer(text.encode('utf-32-le'), np.uint32))
    return encoder.finish()


def _check_data_file(path):
    if not os.path.exists(path):
        raise UserError('data file {} does not exist'.format(path))
    if os.path.isdir(path):
        raise UserError('data file {} is a directory, not a file'.format(path))


def _code_points(data, path, line_number):
    """uint32 code points of UTF-8 bytes whose first line is line_number of path."""
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as e:
        start = data.rfind(b'\n', 0, e.start) + 1
        raise UserError('{}: line {}: not UTF-8 (byte 0x{:02x} at column {})'.format(
            path, line_number + data.count(b'\n', 0, e.start), data[e.start], e.start - start + 1))
    return np.frombuffer(text.encode('utf-32-le'), np.uint32)


def encode_file(path, vocab=None, block_bytes=BLOCK_BYTES):
    """EncodedText of the lines of a UTF-8 text file; vocab None: every character of them.

    One read: the file's sha256 on the way, a block of whole lines encoded at a time, so
    memory grows by the ids (a byte per character up to 255 distinct ones) and a few words
    per line. Lines are read as read_lines reads them (the same errors for a bad file).
    """
    _check_data_file(path)
    digest = hashlib.sha256()
    try:
        encoder = _Encoder(vocab, os.path.getsize(path))
        with open(path, 'rb') as f:
            buffer, line_number = bytearray(), 1
            while True:
                block = f.read(block_bytes)
                digest.update(block)
                buffer += block
                cut = buffer.rfind(b'\n', len(buffer) - len(block)) + 1 if block else len(buffer)
                if not cut:
                    if block:   # a line longer than the block: read on
                        continue
                    break
                data = bytes(buffer[:cut])
                del buffer[:cut]
                encoder.add(_code_points(data, path, line_number))
                line_number += data.count(b'\n')
                del data
    except OSError as e:
        raise UserError('cannot read data file {} ({})'.format(path, e.strerror or e))
    if not encoder.lines:
        raise UserError('data file {} is empty'.format(path))
    return encoder.finish(digest.hexdigest())


def file_sha256(path):
    """sha256_of(path), a UserError when the file cannot be read."""
    _check_data_file(path)
    try:
        return sha256_of(path)
    except OSError as e:
        raise UserError('cannot read data file {} ({})'.format(path, e.strerror or e))


ENCODED_MAGIC = b'char-rnn encoded text\n'


def _crc32(array):
    crc, data = 0, memoryview(np.ascontiguousarray(array)).cast('B')
    for i in range(0, len(data), 1 << 26):
        crc = zlib.crc32(data[i:i + (1 << 26)], crc)
    return crc


def save_encoded(text, path):
    """Writes an EncodedText to path atomically: a line of magic, a line of JSON (the data's
    sha256, the vocabulary, counts, the arrays' types, sizes and CRC-32), the arrays' bytes.
    A UserError when it cannot (a full disk)."""
    meta = {'format': ENCODED_FORMAT, 'sha256': text.sha256, 'vocab': text.vocab,
            'auto': text.auto, 'lines': text.lines, 'chars': text.chars,
            'dropped': list(text.dropped.items()), 'last_word': list(text.last_word),
            'arrays': [[array.dtype.str, len(array), _crc32(array)]
                       for array in (text.ids, text.lengths)]}
    tmp = path + '.tmp'
    try:
        with open(tmp, 'wb') as f:
            f.write(ENCODED_MAGIC + json.dumps(meta, ensure_ascii=False).encode('utf-8') + b'\n')
            for array in (text.ids, text.lengths):
                f.write(memoryview(np.ascontiguousarray(array)).cast('B'))
        os.replace(tmp, path)
    except OSError as e:
        if os.path.lexists(tmp):
            os.remove(tmp)
        raise UserError('cannot write {} ({}): free some space, or pick another '
                        '--checkpoint-dir'.format(path, e.strerror or e))


def load_encoded(path, sha256, vocab=None):
    """(EncodedText, None) from a save_encoded file if it holds the encoding of data with
    this sha256 in this vocabulary (None: the data's own), else (None, why not). Nothing is
    trusted unchecked: the arrays' CRC-32, sizes and ids are checked."""
    try:
        with open(path, 'rb') as f:
            if f.readline() != ENCODED_MAGIC:
                return None, 'not an encoded text'
            meta = json.loads(f.readline().decode('utf-8'))
            if meta.get('format') != ENCODED_FORMAT:
                return None, 'written by another version'
            if meta['sha256'] != sha256:
                return None, 'of other data (sha256 {}...)'.format(str(meta['sha256'])[:12])
            if (meta['vocab'] != vocab) if vocab is not None else not meta['auto']:
                return None, 'of another vocabulary'
            arrays = []
            for dtype, size, crc in meta['arrays']:
                array = np.empty(size, np.dtype(dtype))
                if f.readinto(memoryview(array).cast('B')) != array.nbytes:
                    return None, 'unreadable (cut short)'
                if _crc32(array) != crc:
                    return None, 'unreadable (checksum mismatch)'
                arrays.append(array)
            if f.read(1):
                return None, 'unreadable (longer than written)'
    except (OSError, ValueError, KeyError, TypeError) as e:
        return None, 'unreadable ({})'.format(first_line(e))
    (ids, lengths), size = arrays, len(meta['vocab'])
    if not (ids.dtype == id_dtype(size) and lengths.dtype in (np.int32, np.int64)
            and int(lengths.sum(dtype=np.int64)) == len(ids)
            and (not len(ids) or (ids.min() >= 1 and ids.max() <= size))):
        return None, 'inconsistent'
    return EncodedText(meta['vocab'], ids, lengths, meta['lines'], meta['chars'],
                       collections.Counter(dict(meta['dropped'])), meta['last_word'],
                       sha256, meta['auto']), None


# ---------------------------------------------------------------------------
# Gradients.
# ---------------------------------------------------------------------------

def learning_rate(lr, step, decay=None, decay_steps=1000, warmup=0):
    """The learning rate at global step `step`: lr, times `decay` every decay_steps steps
    (tf.train.exponential_decay, staircase), or with decay 'cosine' down to a tenth of lr at
    decay_steps (tf.train.cosine_decay); raised linearly over the first `warmup` steps."""
    if decay == 'cosine':
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
            # Fix: ordered by the paired difference over the seeds both have (the one that is
            # tested), not by the means over unequal sets of seeds (some lost to NaN).
            diff = paired_difference(scores[first], scores[second], confidence)
            better = (diff['mean'] < 0 if diff['n'] else
                      stats[second]['mean'] > stats[first]['mean'])
            a, b = (second, first) if better else (first, second)
            if better:
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
            elif diff['std'] <= 1e-9:   # (rounding of k / images leaves ~1e-17)
                # The same difference at every seed (scores move in steps of 1/images): the t
                # interval has width 0 and says nothing. The exact sign test decides instead:
                # n seeds all one way happen by chance with p = 2 * 0.5^n (real from 6 seeds).
                p = 2 * 0.5 ** diff['n'] if diff['mean'] else 1.0
                real = p < 1 - confidence
                verdict = '{} at {} seeds by the sign test (p = {:.3f}): the same difference ' \
                          'at every seed, no spread for a t interval'.format(
                              '{} better: real'.format(a) if real else 'not resolved',
                              diff['n'], p)
                if real:
                    verdicts['Real'].append('{} > {} by {:.4f}'.format(a, b, diff['mean']))
                else:
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


# ---------------------------------------------------------------------------
# More than one machine: TensorFlow's distributed runtime (parameter servers and workers,
# between-graph replication), the same in both scripts. Without cluster flags or TF_CONFIG
# none of this runs.
# ---------------------------------------------------------------------------

def host_list(text):
    """--ps-hosts / --worker-hosts: 'host:port,host:port' -> a list of 'host:port'."""
    hosts = [h.strip() for h in text.split(',') if h.strip()]
    for host in hosts or [text]:
        name, _, port = host.rpartition(':')
        if not name or not port.isdigit() or not 0 < int(port) < 65536:
            raise argparse.ArgumentTypeError('expected host:port[,host:port...], not {!r}'.format(
                host))
    return hosts


def add_cluster_flags(parser):
    """The flags of TensorFlow's distributed example (mnist_replica.py), and --sync."""
    group = parser.add_argument_group(
        'more than one machine', 'TensorFlow\'s distributed runtime: start the same command on '
        'every host with its own --job-name and --task-index (or set TF_CONFIG instead of the '
        'four flags; cluster.py starts a whole cluster on this machine). Worker 0 is the chief: '
        'it restores, validates, samples and saves; parameter servers hold the variables')
    group.add_argument('--ps-hosts', type=host_list, metavar='HOST:PORT,...',
                       help='the parameter servers')
    group.add_argument('--worker-hosts', type=host_list, metavar='HOST:PORT,...',
                       help='the workers; the first is the chief')
    group.add_argument('--job-name', choices=CLUSTER_JOBS, help='this task\'s job')
    group.add_argument('--task-index', type=non_negative_int, default=None,
                       help='this task\'s index in its job (default: 0)')
    group.add_argument('--sync', action='store_true',
                       help='synchronous updates (SyncReplicasOptimizer): each update applies '
                            'the mean of --replicas-to-aggregate gradients; without it each '
                            'worker updates the variables on its own (asynchronous)')
    group.add_argument('--replicas-to-aggregate', type=positive_int, default=None, metavar='N',
                       help='with --sync: gradients per update (default: the number of workers)')
    group.add_argument('--cluster-wait', type=positive_float, default=300, metavar='SECONDS',
                       help='how long a task waits for the others (parameter servers '
                            'reachable, the chief\'s initialised model) before it gives up')


CLUSTER_JOBS = ('ps', 'worker')
FIRST_TIMEOUT, MAX_TIMEOUT = 5.0, 60.0   # seconds a training step may wait (sync), see Cluster.run


def cluster_from_args(args, single_only=()):
    """The Cluster of this task, from the flags or else from TF_CONFIG; None for one process.

    single_only: (flag, given) pairs of settings a cluster cannot run (one clear error).
    """
    flags = any(getattr(args, name) is not None for name in
                ('ps_hosts', 'worker_hosts', 'job_name', 'task_index'))
    if flags:
        if not (args.ps_hosts and args.worker_hosts and args.job_name):
            raise UserError('a cluster needs --ps-hosts, --worker-hosts and --job-name (and '
                            '--task-index), on every task')
        spec, job, task = {'ps': args.ps_hosts, 'worker': args.worker_hosts}, args.job_name, \
            args.task_index or 0
    elif os.environ.get('TF_CONFIG', '').strip():
        spec, job, task = _tf_config()
    else:
        if args.sync or args.replicas_to_aggregate:
            raise UserError('--sync and --replicas-to-aggregate need a cluster (--ps-hosts, '
                            '--worker-hosts, --job-name, --task-index, or TF_CONFIG)')
        return None
    for flag, given in single_only:
        if given:
            raise UserError('{} runs in one process, not in a cluster'.format(flag))
    if not spec.get('ps'):
        raise UserError('a cluster needs at least one parameter server (--ps-hosts)')
    if not spec.get('worker'):
        raise UserError('a cluster needs at least one worker (--worker-hosts)')
    if task >= len(spec[job]):
        raise UserError('--task-index {} but the cluster has {} {} task{} (0 to {})'.format(
            task, len(spec[job]), job, 's' * (len(spec[job]) > 1), len(spec[job]) - 1))
    hosts = spec['ps'] + spec['worker']
    twice = sorted({h for h in hosts if hosts.count(h) > 1})
    if twice:
        raise UserError('{} listed twice in the cluster: each task needs its own port'.format(
            ', '.join(twice)))
    return Cluster(spec, job, task, args.sync, args.replicas_to_aggregate, args.cluster_wait,
                   getattr(args, 'threads', 0))


def _tf_config():
    """(cluster dict, job, task) from the TF_CONFIG environment variable."""
    try:
        config = json.loads(os.environ['TF_CONFIG'])
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        spec = resolver.cluster_spec().as_dict()
        job, task = resolver.task_type, resolver.task_id
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise UserError('TF_CONFIG is not a valid cluster ({}): expected {{"cluster": {{"ps": '
                        '["host:port"], "worker": ["host:port", ...]}}, "task": {{"type": '
                        '"worker", "index": 0}}}}'.format(first_line(e)))
    if not isinstance(config, dict) or set(spec) - set(CLUSTER_JOBS) or job not in CLUSTER_JOBS:
        raise UserError('TF_CONFIG: the jobs here are "ps" and "worker" (worker 0 is the chief), '
                        'not {}; task type {!r}'.format(sorted(spec), job))
    spec = {name: list(hosts) if isinstance(hosts, list) else [hosts[i] for i in sorted(hosts)]
            for name, hosts in spec.items()}
    for hosts in spec.values():
        host_list(','.join(hosts) or 'none')
    return spec, job, int(task or 0)


class _Prefixed(object):
    """A text stream that starts every line with a prefix ('[worker 1] ')."""

    def __init__(self, stream, prefix):
        self.stream, self.prefix, self.at_start = stream, prefix, True

    def write(self, text):
        if text:   # print() writes its end '' too
            lines = text.split('\n')
            self.stream.write('\n'.join(self.prefix + line if line and (i or self.at_start)
                                         else line for i, line in enumerate(lines)))
            self.at_start = text.endswith('\n')
        return len(text)

    def __getattr__(self, name):
        return getattr(self.stream, name)


class NullWriter(object):
    """A FileWriter that writes nothing: a worker that is not the chief writes no events."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class Cluster(object):
    """One task of a cluster: its server, device setter, optimizer and session.

    Between-graph replication: every worker builds the whole graph, its variables placed on
    the parameter servers (replica_device_setter, round robin), its computation on itself.
    Worker 0 is the chief: it initialises or restores the variables, and only it validates,
    samples, writes events and checkpoints (which hold the same variables as a single
    process's: --sample and a single process resume from them, and a cluster from theirs).
    """

    def __init__(self, spec, job, task, sync=False, aggregate=None, wait=300, threads=0):
        self.spec, self.job, self.task = spec, job, task
        self.sync, self.wait, self.threads = sync, wait, threads
        self.num_workers = len(spec['worker'])
        self.aggregate = aggregate or self.num_workers
        self.is_chief = job == 'worker' and task == 0
        self.name = '{} {}'.format(job, task)
        self.host = spec[job][task]
        self.server = self.sync_optimizer = self.stop_flag = None
        self.timeout = FIRST_TIMEOUT

    @property
    def per_update(self):
        """Workers' steps (batches) an update of the variables applies: --sync, the
        gradients it aggregates; async, one."""
        return self.aggregate if self.sync else 1

    def start(self):
        """Prefixes this task's output lines with its name; starts its server (a port in use
        is one clear error, not gRPC's pages)."""
        sys.stdout = _Prefixed(sys.stdout, '[{}] '.format(self.name))
        sys.stderr = _Prefixed(sys.stderr, '[{}] '.format(self.name))
        port = int(self.host.rpartition(':')[2])
        probe = socket.socket()
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(('', port))
        except OSError as e:
            raise UserError('{} cannot listen on port {} ({}): it is in use; give this task '
                            'another port in the host lists'.format(self.name, port,
                                                                      e.strerror or e))
        finally:
            probe.close()
        config = session_config(self.threads)
        try:
            self.server = tf.train.Server(tf.train.ClusterSpec(self.spec), self.job, self.task,
                                          config=config)
        except tf.errors.OpError as e:
            raise UserError('{} cannot start its server on {} ({})'.format(
                self.name, self.host, first_line(e)))
        return self

    def serve(self):
        """A parameter server: serves the variables until Ctrl-C or SIGTERM. Returns 0."""
        print('{} serving on {} ({}, TensorFlow {}); Ctrl-C or SIGTERM stops it'.format(
            self.name, self.host, STACK, tf.version.VERSION), flush=True)
        with stop_on_signals() as stop:
            while not stop:
                time.sleep(0.2)
        print('{} stopped by {}'.format(self.name, stop.name), flush=True)
        return 0

    def device(self):
        """The device scope the graph is built in: variables on the parameter servers."""
        return tf.device(tf.train.replica_device_setter(
            worker_device='/job:worker/task:{}'.format(self.task), cluster=self.spec))

    def apply_gradients(self, optimizer, grads_and_vars, global_step):
        """optimizer's update (synchronous: of the mean of `aggregate` workers' gradients).
        Returns a tensor [global step, chief stopped] read after the update."""
        if self.sync:
            optimizer = self.sync_optimizer = tf.train.SyncReplicasOptimizer(
                optimizer, replicas_to_aggregate=self.aggregate,
                total_num_replicas=self.num_workers)
        update = optimizer.apply_gradients(grads_and_vars, global_step=global_step)
        # Not in any collection: never saved, initialised by the chief alone (session()).
        with tf.device(global_step.device):
            self.stop_flag = tf.Variable(0, dtype=global_step.dtype.base_dtype, trainable=False,
                                         collections=[], name='cluster_stopped')
        self.set_stop = [tf.assign(self.stop_flag, 1)]
        if self.sync:   # tokens that wake workers waiting for an update that will not come
            self.set_stop.append(self.sync_optimizer._sync_token_queue.enqueue_many(
                tf.fill([4 * self.num_workers], global_step)))
        with tf.control_dependencies([update]):
            return tf.stack([tf.identity(global_step), tf.identity(self.stop_flag)])

    @contextlib.contextmanager
    def session(self, saver, restore=None):
        """A MonitoredSession on this task's server; restore(raw session) runs on the chief
        after initialising the variables (and again if the session is made anew). On the way out the chief tells the workers to stop."""
        config = session_config(self.threads)
        # Workers do not wait on each other (tensorflow#16611): each sees the ps and itself.
        config.device_filters.extend(['/job:ps', '/job:worker/task:{}'.format(self.task)])
        self.wait_for_ps()
        raw = []

        class Capture(tf.train.SessionRunHook):
            def after_create_session(self, session, coord):
                raw[:] = [session]

        scaffold = tf.train.Scaffold(
            init_op=tf.group(tf.global_variables_initializer(), self.stop_flag.initializer),
            init_fn=(lambda _, session: restore(session)) if restore else None,
            saver=saver)
        hooks = [Capture()]
        if self.sync_optimizer:
            hooks.append(self.sync_optimizer.make_session_run_hook(self.is_chief))
        if self.is_chief:
            creator = tf.train.ChiefSessionCreator(scaffold, self.server.target, config)
        else:
            print('waiting for the chief (worker 0, {}) to initialise the model'.format(
                self.spec['worker'][0]), flush=True)
            creator = _WorkerSessionCreator(scaffold, self.server.target, config,
                                            max_wait_secs=self.wait)
        try:
            # stop_grace_period_secs: the sync chief's queue runner would hold the exit 120 s.
            sess = tf.train.MonitoredSession(creator, hooks, stop_grace_period_secs=2)
        except tf.errors.DeadlineExceededError:
            raise UserError('{}: the chief (worker 0, {}) did not initialise the model within '
                            '--cluster-wait {:g} s: is it running, with the same host lists?'
                            .format(self.name, self.spec['worker'][0], self.wait))
        self.raw = lambda: raw[0]
        try:
            yield sess
        finally:
            if self.is_chief:
                try:
                    raw[0].run(self.set_stop, options=tf.RunOptions(timeout_in_ms=10000))
                except tf.errors.OpError:
                    pass
            # The sync chief's queue runner waits for gradients that will not come: closing
            # its session first cancels the wait, which the coordinator then re-raises.
            if self.sync_optimizer and self.is_chief:
                raw[0].close()
            try:
                sess.close()
            except tf.errors.CancelledError:
                pass

    def wait_for_ps(self):
        """Waits up to --cluster-wait for every parameter server to accept connections."""
        deadline = time.time() + self.wait
        for index, host in enumerate(self.spec['ps']):
            name, _, port = host.rpartition(':')
            while True:
                try:
                    socket.create_connection((name.strip('[]'), int(port)), timeout=2).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise UserError('{}: parameter server ps {} ({}) not reachable within '
                                        '--cluster-wait {:g} s: is it running, and are the host '
                                        'lists the same on every task?'.format(
                                            self.name, index, host, self.wait))
                    time.sleep(0.5)

    def run(self, sess, fetches, feed, stop):
        """sess.run of a training step, its fetches[1] the tensor of apply_gradients. Returns
        the results with fetches[1]'s as the global step, or None when stopped while waiting.

        A synchronous step waits for the other workers' gradients; one that left makes it
        wait forever. So the wait is bounded: a step that has not ended after `timeout`
        seconds returns, Ctrl-C or SIGTERM get their turn, and it is tried again (pushing
        another gradient, as a fast worker does). The timeout grows with the steps' time.
        """
        options = tf.RunOptions(timeout_in_ms=int(self.timeout * 1000)) if self.sync else None
        while True:
            start = time.time()
            try:
                results = sess.run(fetches, feed, options=options)
                break
            except tf.errors.DeadlineExceededError:
                if stop:
                    return None
                self.timeout = min(2 * self.timeout, MAX_TIMEOUT)
                options = tf.RunOptions(timeout_in_ms=int(self.timeout * 1000))
                print('waiting for the other workers\' gradients (a worker gone?)', flush=True)
        self.timeout = max(self.timeout, 10 * (time.time() - start))
        step, stopped = results[1]
        if stopped and not self.is_chief and stop.signum is None:
            stop.signum = CHIEF_STOPPED
        results[1] = int(step)
        return results

    def shard(self, windows):
        """This worker's share of windows (utils.Windows): lines task, task + n, ..."""
        if windows.n_lines < self.num_workers:
            raise UserError('{} training lines for {} workers: each needs one at least'.format(
                windows.n_lines, self.num_workers))
        take = np.arange(self.task, windows.n_lines, self.num_workers)
        return Windows(windows.ids, windows.starts[take], windows.lengths[take], windows.window)


CHIEF_STOPPED = -1   # StopRequest.signum of a worker whose chief stopped


class _WorkerSessionCreator(tf.train.WorkerSessionCreator):
    """WorkerSessionCreator that checks every second, not every 30 s, whether the chief has
    initialised the model (SessionManager's recovery_wait_secs; tensorflow#10679)."""

    def _get_session_manager(self):
        manager = super(_WorkerSessionCreator, self)._get_session_manager()
        manager._recovery_wait_secs = 1
        return manager


@contextlib.contextmanager
def cluster_device(cluster):
    """cluster.device(), or nothing for one process."""
    if cluster is None:
        yield
    else:
        with cluster.device():
            yield


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
