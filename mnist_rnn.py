"""MNIST digits read row by row by an RNN: the cell comparison notebook as a script.

Each 28x28 image is a sequence of 28 rows of 28 pixels; tf.nn.dynamic_rnn runs a cell of
31 units over it, a dense layer maps the last output to the 10 classes. The notebook
("RNN 실습 - 텐서플로우에서 LSTM 및 GRU 사용") trains five cells with the same settings (its
Tests #1-#5), then hunts the NaN of the last one (Test #6):

    python mnist_rnn.py --cell gru             # one cell: basic_rnn, basic_lstm, gru, lstm,
                                               # ln_basic_lstm (or a comma-separated list)
    python mnist_rnn.py --cell all             # all five, and logdir/results.csv, .md, .png
    python mnist_rnn.py --cell ln_basic_lstm --check-numerics   # names the NaN gradient
    python mnist_rnn.py --cell ln_basic_lstm --ln-epsilon 1e-2  # cures it (see nan_remedies)
    python mnist_rnn.py --cell all --graph notebook   # the notebook's dynamic_rnn graphs
    python mnist_rnn.py --config tiny          # a smoke test in seconds
    tensorboard --logdir logdir

The log lines are the notebook's: `[trn] ep 1, step 250, loss 1.501857, accu 0.085938,
sec/iter 0.012345` (mean loss, *minimum* batch accuracy and mean seconds per step since the
last line) and `[tst] ep 1, step 500, accu 0.500000, sec/iter 0.004678` (the step counts
test batches too). After each epoch two more: `[tst] ep 1, mean accu 0.912300 over 10000
images` (the whole test set) and `[val] ep 1, mean accu 0.915000 over 5000 images` (the
validation split, read_data_sets' first 5,000 training images, which picks the epoch to
report). Checkpoints (checkpoints/mnist_<cell>/) are saved after every epoch and on Ctrl-C
or SIGTERM; the same command resumes, and a finished cell is not trained again (--force
does). The LSTMs run as one fused op over all rows and gru by utils.gru_stack (see
MnistRnn), the same model as the notebook's graph, which --graph notebook runs; checkpoints
move freely between the two.

Results on real MNIST, 10 epochs, the notebook's settings, TF2 stack, from the
logdir/results.md that `--cell all` writes (its note explains every column; min-window is the
notebook's printed [tst] figure, the notebook's own in the first column; speed: BENCHMARKS.md):

    | cell                    | notebook | min-window | final test accu | test accu at best val (epoch) |
    |-------------------------|----------|------------|-----------------|-------------------------------|
    | basic_rnn               | 0.844    | 0.8594     | 0.9027          | 0.9027 (10)                   |
    | basic_lstm              | 0.875    | 0.9375     | 0.9685          | 0.9685 (10)                   |
    | gru                     | 0.930    | 0.9375     | 0.9696          | 0.9696 (10)                   |
    | lstm                    | 0.945    | 0.9375     | 0.9685          | 0.9685 (10)                   |
    | ln_basic_lstm, eps 1e-2 | nan      | 0.9375     | 0.9719          | 0.9719 (10)                   |

    made with: python mnist_rnn.py --cell all --ln-epsilon 1e-2 --data-dir ../shared/data/mnist
    (without --ln-epsilon or --ln-smoothing, ln_basic_lstm stops on NaN at step 2, as the
    notebook's did)
"""
from __future__ import print_function

import argparse
import csv
import glob
import json
import os
import re
import sys
import time
import zlib

import numpy as np

import utils
from utils import tf, rnn, UserError

# The notebook's cells, in the order of its Tests #1-#5.
CELLS = ('basic_rnn', 'basic_lstm', 'gru', 'lstm', 'ln_basic_lstm')
MAX_SEQ_LEN, INPUT_UNITS = utils.MNIST_SHAPE   # rows per image, pixels per row
NUM_CLASSES = utils.MNIST_CLASSES
NAN_EXIT = 3       # exit status when a cell stopped on NaN or Inf
# TensorBoard tags. The notebook's tf.Summary.Value tags, as its OCR'd text reads
# them ('train accuracy', 'loss', 'test accuracy'), plus the per-epoch mean.
TAG_TRAIN_ACCURACY = 'train accuracy'
TAG_LOSS = 'loss'
TAG_TEST_ACCURACY = 'test accuracy'
TAG_TEST_MEAN_ACCURACY = 'test mean accuracy'
TAG_VALIDATION_ACCURACY = 'validation mean accuracy'
# The --ln-epsilon that cures ln_basic_lstm's NaN; see nan_remedies for why this value.
LN_EPSILON_REMEDY = '1e-2'


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

class NotebookConfig(object):
    """The notebook's settings."""
    epochs = 10             # train(inputs_, labels_, 10, ...)
    batch_size = 128        # BATCH_SIZE
    hidden = 31             # NUM_HIDDEN_UNITS
    lr = 0.001              # MnistRnn(lr=0.001), Adam
    forget_bias = 1.0       # MnistRnn(lstm_forget_bias=1.0), for --cell lstm
    clip_norm = 0.0         # use_grad_clip=False; the notebook's clipping uses 5.0
    log_every = 250         # `if step % 250 == 0: print(...)`
    validation_size = 5000  # read_data_sets' default: the first 5,000 train images
    train_limit = 0         # 0: all 55,000 remaining training images (429 batches)
    test_limit = 0          # 0: all 10,000 test images (78 batches)


class TinyConfig(NotebookConfig):
    """A smoke test that runs in seconds: few small batches, a log line every 5 steps, no
    validation (the last epoch is reported)."""
    epochs = 1
    batch_size = 32
    hidden = 8
    log_every = 5
    validation_size = 0
    train_limit = 320
    test_limit = 128


CONFIGS = {'notebook': NotebookConfig, 'tiny': TinyConfig}


def cell_list(text):
    """--cell: one of CELLS, 'all', or a comma-separated list."""
    names = [name.strip() for name in text.split(',') if name.strip()]
    if 'all' in names:
        return list(CELLS)
    choices = ', '.join(repr(c) for c in CELLS + ('all',))
    for name in names or [text]:
        if name not in CELLS:
            raise argparse.ArgumentTypeError('invalid choice: {!r} (choose from {}, or a '
                                             'comma-separated list)'.format(name, choices))
    return sorted(set(names), key=names.index)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train RNN cells on MNIST rows as in the cell comparison notebook.',
        epilog='Settings default to the notebook\'s (--config notebook). Exit status: 0 done '
               '(or stopped by Ctrl-C or SIGTERM after saving), 2 bad input, 3 a cell hit NaN/Inf.')
    add = parser.add_argument
    add('--cell', type=cell_list, default=['basic_rnn'], metavar='{%s,all}' % ','.join(CELLS),
        help='cell to train, "all", or a comma list (default: basic_rnn, the notebook\'s '
             'Test #1; all = Tests #1-#5 and a results table)')
    add('--config', choices=sorted(CONFIGS), default='notebook',
        help='notebook (default) or tiny (a smoke test: 1 epoch, batch 32, 8 hidden, 320 '
             'train and 128 test images, no validation, a line every 5 steps); the flags below '
             'override it')
    add('--epochs', type=int, help='epochs to train (notebook: 10)')
    add('--batch-size', type=int, help='images per batch (notebook: 128)')
    add('--hidden', type=int, help='units in the cell (notebook: 31)')
    add('--lr', type=float, help='Adam learning rate (notebook: 0.001; its NaN remedy: 0.0001)')
    add('--forget-bias', type=float, help='forget_bias of --cell lstm (notebook: 1.0)')
    add('--clip-norm', type=float,
        help='clip gradients by global norm; 0 = off (notebook: off; its remedy: 5.0)')
    add('--ln-epsilon', type=float, metavar='EPS',
        help='ln_basic_lstm: layer norm\'s variance epsilon (contrib\'s 1e-12 makes its NaN; {} '
             'cures it); on TF1 via the port utils.LayerNormBasicLSTMCell, same variables'.format(
                 LN_EPSILON_REMEDY))
    add('--ln-smoothing', action='store_true',
        help='ln_basic_lstm with norm_gain 0.85 and norm_shift 0.15 (the notebook\'s remedy, '
             'which also avoids its NaN)')
    add('--check-numerics', action='store_true',
        help='check every gradient for NaN/Inf before the update (Test #6); names the '
             'gradient that failed')
    add('--graph', choices=['fast', 'notebook'], default='fast',
        help='fast: the LSTMs as one BlockLSTM op over all rows, gru by utils.gru_stack, no '
             'sequence_length for any cell; notebook: dynamic_rnn over the cell with '
             'sequence_length, as the notebook. The same model and checkpoints')
    add('--seed', type=int, default=0,
        help='graph-level seed of the initial weights (default: 0; the notebook sets none)')
    add('--data-dir', default=None,
        help='folder with the four MNIST IDX files, .gz or not; any MNIST-format set works '
             '(default: data/mnist, downloaded there when missing)')
    add('--logdir', default='logdir',
        help='TensorBoard runs train_<cell>, test_<cell>, and the results files (default: logdir)')
    add('--checkpoint-dir', default='checkpoints',
        help='checkpoints go to <dir>/mnist_<cell>/ (default: checkpoints)')
    add('--force', action='store_true',
        help='train a cell again even if its checkpoint says it is finished')
    add('--threads', type=int, default=0,
        help='TensorFlow intra/inter-op threads (default: 0, TensorFlow decides)')
    add('--log-every', type=int, help='steps between log lines (notebook: 250)')
    add('--validation-size', type=int,
        help='first training images held out as validation, as read_data_sets, to pick the '
             'epoch to report; 0 = none: the last epoch (default: 5000)')
    add('--train-limit', type=int,
        help='train on the first N of the remaining training images; 0 = all (default)')
    add('--test-limit', type=int, help='test on the first N test images; 0 = all (default)')
    args = parser.parse_args(argv)

    config = CONFIGS[args.config]
    for name in ('epochs', 'batch_size', 'hidden', 'lr', 'forget_bias', 'clip_norm', 'log_every',
                 'validation_size', 'train_limit', 'test_limit'):
        if getattr(args, name) is None:
            setattr(args, name, getattr(config, name))
    for name in ('epochs', 'batch_size', 'hidden', 'log_every'):
        if getattr(args, name) < 1:
            parser.error('--{} must be at least 1'.format(name.replace('_', '-')))
    for name in ('clip_norm', 'validation_size', 'train_limit', 'test_limit', 'threads'):
        if getattr(args, name) < 0:
            parser.error('--{} must not be negative'.format(name.replace('_', '-')))
    if not args.lr > 0:
        parser.error('--lr must be positive')
    if args.ln_epsilon is not None and not 0 < args.ln_epsilon < float('inf'):
        parser.error('--ln-epsilon must be positive')
    return args


# ---------------------------------------------------------------------------
# Data: MNIST's four IDX files (utils.load_mnist, downloaded when missing), split as
# TF1's read_data_sets: {'train', 'validation', 'test'} DataSets of images and labels
# ---------------------------------------------------------------------------

def data_fingerprint(data):
    """Sizes and a checksum of the labels: tells a checkpoint which data it was trained on."""
    return '{}/{}/{:08x}'.format(data['train'].num_examples, data['test'].num_examples,
                                 zlib.crc32(data['train'].labels.tobytes()
                                            + data['test'].labels.tobytes()))


# ---------------------------------------------------------------------------
# Model: the notebook's MnistRnn
# ---------------------------------------------------------------------------

def make_cell(rnn_type, num_hidden_units, lstm_forget_bias=1.0, ln_norm_smoothing=False,
              ln_epsilon=None):
    """The notebook's `if ... == rnn_type` chain.

    ln_epsilon: ln_basic_lstm's layer norm variance epsilon. Given, the cell is the port
    utils.LayerNormBasicLSTMCell on either stack (contrib's hard-codes 1e-12; the port has
    the same variables and, at 1e-12, computes the same: tests/test_ln_port.py).
    """
    if 'basic_rnn' == rnn_type:
        return rnn.BasicRNNCell(num_hidden_units)
    if 'basic_lstm' == rnn_type:
        return rnn.BasicLSTMCell(num_hidden_units)
    if 'lstm' == rnn_type:
        return rnn.LSTMCell(num_hidden_units, forget_bias=lstm_forget_bias)
    if 'gru' == rnn_type:
        return rnn.GRUCell(num_hidden_units)
    if 'ln_basic_lstm' == rnn_type:
        smoothing = dict(norm_gain=0.85, norm_shift=0.15) if ln_norm_smoothing else {}
        if ln_epsilon is not None:
            return utils.LayerNormBasicLSTMCell(num_hidden_units, epsilon=ln_epsilon, **smoothing)
        return rnn.LayerNormBasicLSTMCell(num_hidden_units, **smoothing)
    raise ValueError('unknown rnn_type {!r}'.format(rnn_type))


class MnistRnn(object):
    """The notebook's model: dynamic_rnn over the rows, dense(10) on the last output.

    inputs: float [batch, max_seq_len, input_units]; labels: int64 [batch]. The batch may be
    None (any size); train_cell keeps the notebook's batch_size, which runs faster.
    grad_clip_norm: the notebook's use_grad_clip (which clips at 5.0); 0 = off.
    graph 'fast': basic_lstm, lstm and gru over all rows at once (utils.run_fused: one
    BlockLSTM op, or utils.gru_stack), the others in dynamic_rnn without sequence_length;
    'notebook': dynamic_rnn with it. The same model: variables, loss, gradients (tested).
    """

    def __init__(self, inputs, labels, input_units, num_hidden_units, batch_size, max_seq_len,
                 rnn_type, lstm_forget_bias=1.0, add_check=False, lr=0.001, grad_clip_norm=0.0,
                 ln_norm_smoothing=False, graph='fast', ln_epsilon=None):
        cell = make_cell(rnn_type, num_hidden_units, lstm_forget_bias, ln_norm_smoothing,
                         ln_epsilon)
        fused = None
        if graph == 'fast':   # the whole sequence at once, under dynamic_rnn's scope 'rnn'
            with tf.variable_scope('rnn'):
                fused = utils.run_fused(cell, tf.transpose(inputs, [1, 0, 2]))
        if fused:
            time_major, states = fused
            last = tf.transpose(time_major, [1, 0, 2])
        else:
            # Every image has all max_seq_len rows: the fast graph has no lengths, whose only
            # effect is a select per row copying the new output and state. (The notebook's
            # [max_seq_len] * batch_size fixed the batch size; tf.fill takes the input's.)
            sequence_length = (None if graph == 'fast'
                               else tf.fill([tf.shape(inputs)[0]], max_seq_len))
            last, states = tf.nn.dynamic_rnn(cell, inputs, sequence_length=sequence_length,
                                             dtype=tf.float32)
        # Only the output after the last row (max_seq_len - 1) is used.
        rnn_output = last[:, max_seq_len - 1, :]
        # outputs shape will be: [batch, 10]
        outputs = tf.layers.dense(rnn_output, NUM_CLASSES)
        loss = tf.losses.sparse_softmax_cross_entropy(labels, outputs)

        optimizer = tf.train.AdamOptimizer(learning_rate=lr)
        if grad_clip_norm:
            grads_and_vars, _ = utils.clip_gradients(loss, tf.trainable_variables(),
                                                     grad_clip_norm)
        else:
            grads_and_vars = optimizer.compute_gradients(loss)   # what minimize(loss) does
        if add_check:
            # Fix: the notebook checks a second tf.gradients(loss) fetched beside optimize, so
            # the update may run first; checking the gradients that are applied costs nothing
            # extra and stops the step before a NaN reaches the weights.
            grads_and_vars = utils.check_numerics(grads_and_vars)
        optimize = optimizer.apply_gradients(grads_and_vars)

        # accuracy, as the notebook: labels and preds are int64, so no NaN can show here.
        preds = tf.argmax(outputs, axis=1)
        errors = tf.count_nonzero(labels - preds)
        accuracy = 1.0 - tf.cast(errors, tf.float32) / tf.cast(tf.size(preds), tf.float32)

        self.outputs = outputs
        self.state = states   # the cell's state after the last row
        self.loss = loss
        self.optimize = optimize
        self.accuracy = accuracy
        self.hits = tf.equal(labels, preds)   # per image, for means over images


# ---------------------------------------------------------------------------
# Training: the notebook's train(), resumable
# ---------------------------------------------------------------------------

class NanStop(Exception):
    """Training met NaN or Inf; the message says where."""


class Stopped(Exception):
    """Ctrl-C or SIGTERM asked training to stop (between two steps); the caller saves."""


# Why ln_basic_lstm goes NaN (both stacks): MNIST digits start with blank rows (85% with 4
# or more, up to 11). There, from the zero initial state, every pre-activation and (beta, the
# shift, starting at 0) the state are exactly 0, and layer norm of a zero-variance vector
# scales its gradient by 1/sqrt(epsilon): with contrib's 1e-12 a few blank rows overflow
# float32 backwards, and inf times the zero inputs is NaN at the first step, whatever the
# seed. --lr and --clip-norm cannot help (clipping by a NaN norm makes every gradient NaN).
# --ln-epsilon 1e-2 bounds the factor: first gradients at most ~5e10 on MNIST (10 seeds);
# Keras' 1e-3 leaves them up to ~2e19, past 1.8e19 where Adam's squared gradient overflows
# (NaN at step 3 with --seed 6). --ln-smoothing (norm_shift 0.15) avoids the zero state.
def nan_remedies(cell, args):
    if cell == 'ln_basic_lstm' and not args.ln_smoothing and (
            args.ln_epsilon is None or args.ln_epsilon < float(LN_EPSILON_REMEDY)):
        return ('remedies: --ln-epsilon {} (cures the NaN at its cause, layer norm\'s variance '
                'epsilon on the all-zero state of blank rows, without changing the cell\'s shift: '
                'norm_shift stays 0), or --ln-smoothing (norm_shift 0.15); --lr 0.0001 and '
                '--clip-norm 5.0 do not cure it'.format(LN_EPSILON_REMEDY))
    flags = ['--lr {:g}'.format(args.lr / 10)]
    if not args.clip_norm:
        flags.append('--clip-norm 5.0')
    return 'remedies (the notebook\'s): ' + ', '.join(flags)


def check_numerics_source(message):
    """'gradient of <variable> had NaN values' from a check_numerics error message."""
    match = re.search(r'check_numerics: gradient of (\S+) \(([^)]*)\)', message)
    kind = re.search(r'had (\w+) values', message)
    if not match:
        return 'a gradient ({})'.format(message.strip().splitlines()[0])
    return 'the gradient of {} ({}) had {} values'.format(
        match.group(1), match.group(2), kind.group(1) if kind else 'NaN or Inf')


def evaluate(sess, model, inputs, labels, dataset, batch_size, start=0):
    """Correct predictions over dataset's images from `start` on, in batches of batch_size:
    every image counts once. With placeholders of a fixed batch size the last, shorter batch
    is padded with blank images, whose predictions are not counted."""
    correct = 0
    for offs in range(start, dataset.num_examples, batch_size):
        images = dataset.images[offs:offs + batch_size]
        count = len(images)
        pad = (inputs.shape.as_list()[0] or count) - count
        hits = sess.run(model.hits, feed_dict={
            inputs: np.pad(images, [(0, pad), (0, 0), (0, 0)]),
            labels: np.pad(dataset.labels[offs:offs + batch_size], [(0, pad)])})
        correct += int(np.sum(hits[:count]))
    return correct


def train(sess, model, inputs, labels, data, args, history, train_writer, test_writer,
          out=None, stop=None):
    """The notebook's loop, from history's position; updates history as it goes.

    A generator: yields after each epoch so the caller saves. Raises NanStop on NaN/Inf
    (history then holds the last good position), and Stopped between two steps once
    `stop` (a utils.StopRequest) is set (the caller saves).
    """
    out = out or sys.stdout
    stop = utils.StopRequest() if stop is None else stop
    batch_size = args.batch_size
    train_batches = data['train'].batches(batch_size)
    test_batches = data['test'].batches(batch_size)
    train_loop_count, test_loop_count = len(train_batches), len(test_batches)
    fetches = [model.optimize, model.loss, model.accuracy]
    step = history['step']
    for ep in range(history['epoch'], args.epochs):
        train_elapsed = []
        train_losses = []
        train_accuracy = []
        for i in range(history['batch'] if ep == history['epoch'] else 0, train_loop_count):
            if stop:
                raise Stopped
            t_start = time.time()
            batch_input, batch_label = train_batches[i]
            try:
                _, loss, accuracy = sess.run(fetches, feed_dict={inputs: batch_input,
                                                                 labels: batch_label})
            except tf.errors.InvalidArgumentError as e:
                if 'check_numerics' not in e.message:
                    raise
                raise NanStop('{} at ep {:d}, step {:d} (check_numerics, before the update)'
                              .format(check_numerics_source(e.message), ep + 1, step + 1))
            train_losses.append(loss)
            train_accuracy.append(accuracy)
            t_elapsed = time.time() - t_start
            train_elapsed.append(t_elapsed)
            step += 1

            train_writer.add_summary(utils.scalar_summary(
                (TAG_TRAIN_ACCURACY, accuracy), (TAG_LOSS, loss)), global_step=step)
            finite = np.isfinite(loss)
            if step % args.log_every == 0 or not finite:
                # On NaN this prints the notebook's `loss nan` line before stopping.
                print('[trn] ep {:d}, step {:d}, loss {:f}, accu {:f}, sec/iter {:f}'.format(
                    ep + 1, step, np.mean(train_losses), np.amin(train_accuracy),
                    np.mean(train_elapsed)), file=out)
                out.flush()
                train_losses = []
                train_accuracy = []
                train_elapsed = []
            if not finite:
                history['losses'].append(None)
                raise NanStop('loss is {} at ep {:d}, step {:d} (--check-numerics names the '
                              'first gradient that goes NaN or Inf)'.format(loss, ep + 1, step))
            history['losses'].append(float(loss))
            history['train_seconds'] += t_elapsed
            history['train_steps'] += 1
            history.update(epoch=ep, batch=i + 1, step=step)

        test_elapsed = []
        test_accuracy = []
        test_correct = 0
        window_accuracy = None
        for i in range(test_loop_count):
            if stop:
                raise Stopped   # resumes with this epoch's test loop
            t_start = time.time()
            batch_input, batch_label = test_batches[i]
            accuracy, hits = sess.run([model.accuracy, model.hits],
                                      feed_dict={inputs: batch_input, labels: batch_label})
            test_accuracy.append(accuracy)
            test_correct += int(np.sum(hits))
            t_elapsed = time.time() - t_start
            test_elapsed.append(t_elapsed)
            step += 1
            test_writer.add_summary(utils.scalar_summary((TAG_TEST_ACCURACY, accuracy)),
                                    global_step=step)
            if step % args.log_every == 0:
                window_accuracy = float(np.amin(test_accuracy))
                print('[tst] ep {:d}, step {:d}, accu {:f}, sec/iter {:f}'.format(
                    ep + 1, step, np.amin(test_accuracy), np.mean(test_elapsed)), file=out)
                test_accuracy = []
                test_elapsed = []
        # Fix: the notebook's loop sees whole batches only (9,984 of the 10,000 test images);
        # the rest is evaluated too, and the mean is over every image.
        test_correct += evaluate(sess, model, inputs, labels, data['test'], batch_size,
                                 start=test_loop_count * batch_size)
        test_count = data['test'].num_examples
        mean_accuracy = test_correct / float(test_count)
        print('[tst] ep {:d}, mean accu {:f} over {:d} images'.format(
            ep + 1, mean_accuracy, test_count), file=out)
        means = [(TAG_TEST_MEAN_ACCURACY, mean_accuracy)]
        # Fix: the notebook reads its choice of cell off the test set; the validation split
        # (never trained on) picks the epoch here, and the test set only reports it.
        validation_accuracy = None
        validation_count = data['validation'].num_examples
        if validation_count:
            validation_accuracy = evaluate(sess, model, inputs, labels, data['validation'],
                                           batch_size) / float(validation_count)
            print('[val] ep {:d}, mean accu {:f} over {:d} images'.format(
                ep + 1, validation_accuracy, validation_count), file=out)
            means.append((TAG_VALIDATION_ACCURACY, validation_accuracy))
        out.flush()
        test_writer.add_summary(utils.scalar_summary(*means), global_step=step)
        train_writer.flush()
        test_writer.flush()
        history['epochs'].append({'epoch': ep + 1, 'step': step, 'test_accuracy': mean_accuracy,
                                  'validation_accuracy': validation_accuracy,
                                  'test_window_accuracy': window_accuracy,
                                  'train_loss': float(np.mean(
                                      history['losses'][-train_loop_count:]))})
        history.update(epoch=ep + 1, batch=0, step=step)
        yield ep + 1


# ---------------------------------------------------------------------------
# One cell: build, restore or start, train, save
# ---------------------------------------------------------------------------

HISTORY = 'history.json'


# Settings added since the first checkpoints, with the value those were trained with.
SETTINGS_ADDED = {'ln_epsilon': None}


def run_settings(cell, args, data):
    """What a checkpoint must match to be resumed."""
    return {'cell': cell, 'hidden': args.hidden, 'batch_size': args.batch_size, 'lr': args.lr,
            'forget_bias': args.forget_bias, 'clip_norm': args.clip_norm,
            'ln_smoothing': bool(args.ln_smoothing), 'seed': args.seed,
            'ln_epsilon': args.ln_epsilon if cell == 'ln_basic_lstm' else None,
            'data': data_fingerprint(data), 'stack': utils.STACK}


def load_history(ckpt_dir):
    path = os.path.join(ckpt_dir, HISTORY)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            history = json.load(f)
        missing = [key for key in ('settings', 'status', 'epoch', 'batch', 'step', 'epochs',
                                   'losses', 'checkpoint') if key not in history]
    except (ValueError, TypeError) as e:
        missing = [str(e)]
    if missing:
        raise UserError('{}: corrupt checkpoint history (no {}); --force starts the cell '
                        'over'.format(path, ', '.join(missing)))
    history['settings'] = dict(SETTINGS_ADDED, **history['settings'])
    return history


def save_history(ckpt_dir, history):
    utils.write_json(os.path.join(ckpt_dir, HISTORY), history)


def clear_events(folder):
    """The notebook starts with `rm -fr logdir`: a new run gets fresh event files."""
    for path in glob.glob(os.path.join(folder, 'events.out.tfevents.*')):
        os.remove(path)


def train_cell(cell, args, data, out=None, stop=None):
    """Trains one cell (or finds it finished); returns its history, status in history['status'].

    stop: a utils.StopRequest; once set, training stops between two steps, saves, and the
    status is 'interrupted' (or 'done' if the signal came during the last epoch's save).
    """
    ckpt_dir = os.path.join(args.checkpoint_dir, 'mnist_' + cell)
    # One run per cell folder: two would overwrite each other's checkpoints and history.
    with utils.folder_lock(ckpt_dir):
        return train_cell_in(ckpt_dir, cell, args, data, out, stop)


def train_cell_in(ckpt_dir, cell, args, data, out=None, stop=None):
    out = out or sys.stdout
    stop = utils.StopRequest() if stop is None else stop
    settings = run_settings(cell, args, data)
    history = None if args.force else load_history(ckpt_dir)
    if history is not None and history['settings'] != settings:
        if history.get('status') != 'nan':
            raise UserError('{} holds a {} run with other settings: {}; pass --force to train it '
                            'again, or another --checkpoint-dir'.format(
                                ckpt_dir, cell,
                                utils.describe_changes(history['settings'], settings)))
        print('[{}] replacing the run that stopped on NaN in {} ({})'.format(
            cell, ckpt_dir, utils.describe_changes(history['settings'], settings)), file=out)
        history = None
    if history is not None and (history['status'] == 'nan' or
                                len(history['epochs']) >= args.epochs):
        print('[{}] already {} in {}; --force trains it again'.format(
            cell, 'stopped on NaN' if history['status'] == 'nan'
            else 'trained for {} epochs'.format(len(history['epochs'])), ckpt_dir), file=out)
        return history

    train_batches = data['train'].num_examples // args.batch_size
    test_batches = data['test'].num_examples // args.batch_size
    if not train_batches or not test_batches:
        raise UserError('{} train and {} test images make no whole batch of --batch-size {}'.format(
            data['train'].num_examples, data['test'].num_examples, args.batch_size))

    wall_start = [time.time()]   # graph building and restoring count too
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(args.seed)
        # The notebook's batch size, not None: an unknown batch dimension makes every training
        # step slower (measured: +10% basic_lstm and gru, +25-50% ln_basic_lstm); evaluate
        # pads the last, shorter batch instead.
        inputs_ = tf.placeholder(tf.float32, [args.batch_size, MAX_SEQ_LEN, INPUT_UNITS],
                                 name='inputs')
        labels_ = tf.placeholder(tf.int64, [args.batch_size], name='labels')
        model = MnistRnn(inputs_, labels_, INPUT_UNITS, args.hidden, args.batch_size,
                         MAX_SEQ_LEN, cell, lstm_forget_bias=args.forget_bias,
                         add_check=args.check_numerics, lr=args.lr,
                         grad_clip_norm=args.clip_norm, ln_norm_smoothing=args.ln_smoothing,
                         graph=args.graph, ln_epsilon=settings['ln_epsilon'])
        saver = tf.train.Saver(max_to_keep=2)
        init = tf.global_variables_initializer()
    graph.finalize()

    train_dir = os.path.join(args.logdir, 'train_' + cell)
    test_dir = os.path.join(args.logdir, 'test_' + cell)
    sess = tf.Session(graph=graph, config=utils.session_config(args.threads))
    try:
        if history is None:
            sess.run(init)
            history = {'settings': settings, 'status': 'training', 'epoch': 0, 'batch': 0,
                       'step': 0, 'epochs': [], 'losses': [], 'train_seconds': 0.0,
                       'train_steps': 0, 'wall_seconds': 0.0, 'nan': None, 'checkpoint': None}
            clear_events(train_dir)
            clear_events(test_dir)
            resumed = ''
        else:
            try:
                saver.restore(sess, os.path.join(ckpt_dir, history['checkpoint']))
            except (tf.errors.OpError, ValueError, TypeError) as e:
                raise UserError('cannot restore {} from {} ({}); --force starts it over'.format(
                    cell, ckpt_dir, str(e).strip().splitlines()[0]))
            history['status'] = 'training'
            history['settings'] = settings
            resumed = ', resuming at ep {}, step {}'.format(history['epoch'] + 1, history['step'])
        rest = data['test'].num_examples - test_batches * args.batch_size
        validation = data['validation'].num_examples
        print('[{}] {} hidden, batch {}: {} train + {} test batches per epoch{}, {}, {} epochs '
              '({} stack{})'.format(
                  cell, args.hidden, args.batch_size, train_batches, test_batches,
                  ' (+ {} test images)'.format(rest) if rest else '',
                  'validation on {} images'.format(validation) if validation else
                  'no validation (--validation-size 0: the last epoch is reported)',
                  args.epochs, utils.STACK, resumed), file=out)
        out.flush()

        train_writer = tf.summary.FileWriter(train_dir, graph=graph)
        test_writer = tf.summary.FileWriter(test_dir, graph=graph)

        def save(status):
            history['status'] = status
            now = time.time()
            history['wall_seconds'] += now - wall_start[0]
            wall_start[0] = now
            if status != 'nan':   # a NaN leaves the last good checkpoint in place
                path = saver.save(sess, os.path.join(ckpt_dir, 'model.ckpt'),
                                  global_step=history['step'], write_meta_graph=False)
                history['checkpoint'] = os.path.basename(path)
            save_history(ckpt_dir, history)

        utils.safe_mkdir(ckpt_dir)
        try:
            for epoch in train(sess, model, inputs_, labels_, data, args, history,
                               train_writer, test_writer, out, stop):
                save('done' if epoch == args.epochs else 'training')
                if stop:   # it came during the save, which is complete: stop right here
                    break
        except Stopped:
            save('training')
        except NanStop as e:
            history['nan'] = str(e)
            save('nan')
            print('{}: error: {}: {}; {}'.format(os.path.basename(sys.argv[0]), cell, e,
                                                 nan_remedies(cell, args)), file=sys.stderr)
            sys.stderr.flush()
        finally:
            train_writer.close()
            test_writer.close()
        if stop and history['status'] == 'training':
            history['status'] = 'interrupted'
            print('[{}] interrupted by {} at ep {}, step {}: saved {}; run the same command to '
                  'resume'.format(cell, stop.name, history['epoch'] + 1, history['step'],
                                  ckpt_dir), file=out)
        return history
    finally:
        sess.close()


# ---------------------------------------------------------------------------
# Comparison: results.csv, results.md, results.png
# ---------------------------------------------------------------------------

RESULT_COLUMNS = ('cell', 'epochs', 'final test accu', 'val accu', 'best epoch (val)',
                  'test accu at best val', 'min-window test accu', 'final loss', 'sec/iter',
                  'wall time (s)', 'NaN')


def best_epoch(epochs):
    """(the epoch entry with the best validation accuracy, the first of equals, True), or
    (the last epoch, False) when no epoch was validated; (None, False) for no epochs."""
    validated = [e for e in epochs if e.get('validation_accuracy') is not None]
    if validated:
        return max(validated, key=lambda e: e['validation_accuracy']), True
    return (epochs[-1] if epochs else None), False


def result_row(cell, history):
    epochs = history['epochs']
    last = epochs[-1] if epochs else {}
    best, validated = best_epoch(epochs)
    best = best or {}

    def fmt(value, spec='{:.4f}'):
        return '' if value is None else spec.format(value)
    return {'cell': cell, 'epochs': len(epochs),
            'final test accu': fmt(last.get('test_accuracy')),
            'val accu': fmt(best.get('validation_accuracy')),
            'best epoch (val)': fmt(best.get('epoch'), '{}' if validated else
                                    '{} (last: no validation)'),
            'test accu at best val': fmt(best.get('test_accuracy')),
            'min-window test accu': fmt(last.get('test_window_accuracy')),
            'final loss': 'nan' if history['status'] == 'nan' else fmt(last.get('train_loss')),
            'sec/iter': fmt(history['train_seconds'] / history['train_steps']
                            if history['train_steps'] else None, '{:.6f}'),
            'wall time (s)': fmt(history['wall_seconds'], '{:.1f}'),
            'NaN': 'yes' if history['status'] == 'nan' else 'no'}


def write_results(results, logdir):
    """results: [(cell, history)]. Writes results.csv, results.md and results.png in logdir."""
    utils.safe_mkdir(logdir)
    rows = [result_row(cell, history) for cell, history in results]
    with open(os.path.join(logdir, 'results.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, RESULT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with open(os.path.join(logdir, 'results.md'), 'w') as f:
        f.write('| ' + ' | '.join(RESULT_COLUMNS) + ' |\n')
        f.write('|' + '|'.join('---' for _ in RESULT_COLUMNS) + '|\n')
        for row in rows:
            f.write('| ' + ' | '.join(str(row[c]) for c in RESULT_COLUMNS) + ' |\n')
        f.write('\nfinal test accu: accuracy over the whole test set after the last epoch; val '
                'accu: the best accuracy over the validation split (the first --validation-size '
                'training images, never trained on), after epoch "best epoch (val)"; test accu '
                'at best val: the test accuracy of that epoch, the figure to compare (without '
                'validation, the last epoch\'s); min-window: the notebook\'s printed [tst] '
                'statistic in the last epoch; final loss: mean training loss of the last epoch; '
                'sec/iter: mean per training step.\n')
    plot_results(results, os.path.join(logdir, 'results.png'))
    return rows


def plot_results(results, path):
    """Test accuracy per epoch and training loss per step, one line per cell (Agg backend)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    styles = ('-', '--', '-.', ':')
    for index, (cell, history) in enumerate(results):
        nan = history['status'] == 'nan'
        label = cell + (' (NaN)' if nan else '')
        style = styles[index % len(styles)]
        epochs = history['epochs']
        line, = acc_ax.plot([e['epoch'] for e in epochs], [e['test_accuracy'] for e in epochs],
                            'o' + style, label=label)
        validated = [e for e in epochs if e.get('validation_accuracy') is not None]
        if validated:
            acc_ax.plot([e['epoch'] for e in validated],
                        [e['validation_accuracy'] for e in validated], 'x' + style,
                        color=line.get_color(), alpha=0.5, label=cell + ' (validation)')
        # The losses up to the first NaN, as a moving average of ~1/20 of the run (at most 50).
        losses = history['losses']
        finite = np.array(losses[:losses.index(None)] if None in losses else losses, np.float64)
        if len(finite):
            window = max(1, min(50, len(losses) // 20, len(finite)))
            smooth = np.convolve(finite, np.ones(window) / window, mode='valid')
            loss_ax.plot(np.arange(window, len(finite) + 1), smooth, style,
                         color=line.get_color(), label=label)
        if nan:
            loss_ax.plot([len(losses)], [finite[-1] if len(finite) else np.log(NUM_CLASSES)],
                         'x', color=line.get_color(), markersize=10, label=cell + ': NaN here')
    acc_ax.set(title='accuracy per epoch (whole test set; x: validation)', xlabel='epoch',
               ylabel='accuracy')
    acc_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_ax.set(title='training loss per step (moving average)', xlabel='training step',
                ylabel='loss')
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    data = utils.load_mnist(args.data_dir, args.validation_size, args.train_limit, args.test_limit)
    results = []
    # From here Ctrl-C and SIGTERM only set `stop`: training stops between two steps, saves
    # and exits 0; one during a save waits for it (utils.stop_on_signals).
    with utils.stop_on_signals() as stop:
        for index, cell in enumerate(args.cell):
            history = train_cell(cell, args, data, stop=stop)
            if history['status'] == 'interrupted':
                return 0
            results.append((cell, history))
            if stop and index + 1 < len(args.cell):
                print('{} after {} finished: {} not trained; run the same command to go on'.format(
                    stop.name, cell, ', '.join(args.cell[index + 1:])))
                return 0
    if len(args.cell) > 1:
        write_results(results, args.logdir)
        print('results: {}'.format(', '.join(os.path.join(args.logdir, 'results.' + ext)
                                             for ext in ('csv', 'md', 'png'))))
    return NAN_EXIT if any(h['status'] == 'nan' for _, h in results) else 0


if __name__ == '__main__':
    sys.exit(utils.run_main(main))
