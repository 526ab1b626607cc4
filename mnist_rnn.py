"""MNIST digits read row by row by an RNN: the cell comparison notebook as a script.

Each 28x28 image is a sequence of 28 rows of 28 pixels; tf.nn.dynamic_rnn runs a cell of
31 units over it, a dense layer maps the last output to the 10 classes. The notebook
("RNN 실습 - 텐서플로우에서 LSTM 및 GRU 사용") trains five cells with the same settings (its
Tests #1-#5), then hunts the NaN of the last one (Test #6):

    python mnist_rnn.py --cell gru             # one cell: basic_rnn, basic_lstm, gru, lstm,
                                               # ln_basic_lstm (or a comma-separated list)
    python mnist_rnn.py --cell all             # all five, and logdir/results.md, .csv, .png
    python mnist_rnn.py --cell all --seeds 5   # each from seeds 0-4: which cell is better,
                                               # by how much, how sure (results.md's verdict)
    python mnist_rnn.py --cell ln_basic_lstm --check-numerics   # names the NaN gradient
    python mnist_rnn.py --cell ln_basic_lstm --ln-epsilon 1e-2  # cures it (see nan_remedies)
    python mnist_rnn.py --cell all --graph notebook   # the notebook's dynamic_rnn graphs
    python mnist_rnn.py --config tiny          # a smoke test in seconds
    python cluster.py --workers 2 -- python mnist_rnn.py --cell gru   # 1 ps + 2 workers
    tensorboard --logdir logdir

The log lines are the notebook's: `[trn] ep 1, step 250, loss 1.501857, accu 0.085938,
sec/iter 0.012345` (mean loss, *minimum* batch accuracy and mean seconds per step since the
last line) and `[tst] ep 1, step 500, accu 0.500000, sec/iter 0.004678` (the step counts
test batches too). After each epoch two more: `[tst] ep 1, mean accu 0.912300 over 10000
images` (the whole test set) and `[val] ep 1, mean accu 0.915000 over 5000 images` (the
validation split, read_data_sets' first 5,000 training images, which picks the epoch to
report). Checkpoints (checkpoints/mnist_<cell>/) are saved after every epoch and on Ctrl-C
or SIGTERM; the same command resumes, and a finished cell is not trained again (--force
does). The LSTMs run as one fused op over all rows and gru by kernels.gru_stack (see
MnistRnn), the same model as the notebook's graph, which --graph notebook runs; checkpoints
move freely between the two.

Results on real MNIST, TF2, 10 epochs, 5 seeds, the notebook's settings (ln_basic_lstm with
--ln-epsilon 1e-2: without it every seed stops on NaN at step 2, as the notebook's did), from
results/mnist-tf2/results.md (the verdict on every pair, each run): the test accuracy at the
epoch of best validation accuracy, mean over seeds and its 95% t interval; min-window is the
notebook's printed [tst] figure, mean over seeds; the notebook's own in the second column:

    | cell          | notebook (1 run) | min-window | test accu, mean of 5 | 95% interval     |
    |---------------|------------------|------------|----------------------|------------------|
    | basic_rnn     | 0.844            | 0.8609     | 0.9061               | 0.8927 to 0.9196 |
    | basic_lstm    | 0.875            | 0.9234     | 0.9663               | 0.9608 to 0.9718 |
    | gru           | 0.930            | 0.9437     | 0.9729               | 0.9703 to 0.9755 |
    | lstm          | 0.945            | 0.9234     | 0.9663               | 0.9608 to 0.9718 |
    | ln_basic_lstm | nan              | 0.9313     | 0.9718               | 0.9696 to 0.9740 |

    made with: python mnist_rnn.py --cell all --seeds 5 --epochs 10 --ln-epsilon 1e-2
        --graph notebook --data-dir ../shared/data/mnist --logdir logdir/seeds-tf2
        --checkpoint-dir checkpoints/seeds-tf2 --results-dir results/mnist-tf2
    (52 min on 2 busy cores with the run before it that had no --ln-epsilon: README.md.)
    Paired by seed, every gated cell beats basic_rnn by 0.06-0.07 (real); lstm and basic_lstm
    are identical (the same function from the same weights), not ranked; gru, ln_basic_lstm
    and the LSTM are not told apart at 5 seeds.
"""
from __future__ import print_function

from tf1rnn import cli   # (light) first: Ctrl-C during the heavy imports below exits quietly
cli.quiet_interrupts()

import argparse  # noqa: E402
import itertools
import os
import sys
import time

import numpy as np

import utils
from tf1rnn import cell_runs, cli, distributed, export, files, kernels, layer_norm, mnist_data, runs, stats
from utils import TF1, rnn, tf
from tf1rnn.cli import UserError

# The notebook's cells, in the order of its Tests #1-#5.
CELLS = ('basic_rnn', 'basic_lstm', 'gru', 'lstm', 'ln_basic_lstm')
MAX_SEQ_LEN, INPUT_UNITS = mnist_data.MNIST_SHAPE   # rows per image, pixels per row
NUM_CLASSES = mnist_data.MNIST_CLASSES
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
        formatter_class=cli.RangeHelpFormatter,
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
    add('--epochs', type=cli.positive_int, help='epochs to train (notebook: 10)')
    add('--batch-size', type=cli.positive_int, help='images per batch (notebook: 128)')
    add('--hidden', type=cli.positive_int, help='units in the cell (notebook: 31)')
    add('--lr', type=cli.number(float, low=0, high=1, low_open=True),
        help='Adam learning rate (notebook: 0.001; its NaN remedy: 0.0001)')
    add('--forget-bias', type=cli.number(float), help='forget_bias of --cell lstm (notebook: 1.0)')
    add('--clip-norm', type=cli.number(float, low=0),
        help='clip gradients by global norm; 0 = off (notebook: off; its remedy: 5.0)')
    add('--ln-epsilon', type=cli.positive_float, metavar='EPS',
        help='ln_basic_lstm: layer norm\'s variance epsilon (contrib\'s 1e-12 makes its NaN; {} '
             'cures it); on TF1 via the port layer_norm.LayerNormBasicLSTMCell, same variables'.format(
                 LN_EPSILON_REMEDY))
    add('--ln-smoothing', action='store_true',
        help='ln_basic_lstm with norm_gain 0.85 and norm_shift 0.15 (the notebook\'s remedy, '
             'which also avoids its NaN)')
    add('--check-numerics', action='store_true',
        help='check every gradient for NaN/Inf before the update (Test #6); names the '
             'gradient that failed')
    add('--graph', choices=['fast', 'notebook'], default='fast',
        help='fast: the LSTMs as one BlockLSTM op over all rows, gru by kernels.gru_stack, no '
             'sequence_length for any cell; notebook: dynamic_rnn over the cell with '
             'sequence_length, as the notebook. The same model and checkpoints')
    add('--seed', type=cli.seed,
        help='seed of the initial weights and of the training order: 0 (default) keeps the '
             'file\'s order, as the notebook (which set no seed); N > 0 trains on a fixed '
             'permutation drawn from N, the same every epoch')
    add('--seeds', type=cli.seed_list, metavar='N|LIST',
        help='train every cell from seeds 0..N-1 (or a comma list, e.g. 0,3,7), one run per '
             '(cell, seed), and compare the cells over seeds (results.md: means, 95%% '
             'intervals, differences paired by seed); finished runs are reused')
    add('--data-dir', default=None,
        help='folder with the four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, '
             't10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; .gz or not): MNIST, '
             'Fashion-MNIST or any set of 28x28 images in 10 classes (default: data/mnist, '
             'MNIST downloaded there when missing)')
    add('--logdir', default='logdir',
        help='TensorBoard runs: train_<cell> and test_<cell>; with --seeds one run per (cell, '
             'seed), <cell>/seed<k> (default: logdir)')
    add('--results-dir', default=None,
        help='where --cell all (or a list, or --seeds) writes results.md, results.csv, '
             'runs.csv and results.png (default: the --logdir)')
    add('--checkpoint-dir', default='checkpoints',
        help='checkpoints go to <dir>/mnist_<cell>/, with --seeds to <dir>/mnist_<cell>_seed<k>/ '
             '(default: checkpoints)')
    add('--export', metavar='DIR',
        help='write the --cell\'s checkpoint as a SavedModel to DIR/<version> (1, 2, ...), '
             'with a signature classify (docs/export.md), and exit, no training')
    add('--force', action='store_true',
        help='train a cell again even if its checkpoint says it is finished')
    add('--threads', type=cli.non_negative_int, default=0,
        help='TensorFlow intra/inter-op threads (default: 0, TensorFlow decides)')
    add('--log-every', type=cli.positive_int, help='steps between log lines (notebook: 250)')
    add('--validation-size', type=cli.non_negative_int,
        help='first training images held out as validation, as read_data_sets, to pick the '
             'epoch to report; 0 = none: the last epoch (default: 5000)')
    add('--train-limit', type=cli.non_negative_int,
        help='train on the first N of the remaining training images; 0 = all (default)')
    add('--test-limit', type=cli.non_negative_int,
        help='test on the first N test images; 0 = all (default)')
    distributed.add_cluster_flags(parser)
    args = parser.parse_args(argv)

    config = CONFIGS[args.config]
    for name in ('epochs', 'batch_size', 'hidden', 'lr', 'forget_bias', 'clip_norm', 'log_every',
                 'validation_size', 'train_limit', 'test_limit'):
        if getattr(args, name) is None:
            setattr(args, name, getattr(config, name))
    if args.seeds is not None and args.seed is not None:
        parser.error('--seed and --seeds: give one of them')
    args.seed = args.seed or 0
    return args


# ---------------------------------------------------------------------------
# Data: MNIST's four IDX files (mnist_data.load_mnist, downloaded when missing), split as
# TF1's read_data_sets: {'train', 'validation', 'test'} DataSets of images and labels
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# Model: the notebook's MnistRnn
# ---------------------------------------------------------------------------

def make_cell(rnn_type, num_hidden_units, lstm_forget_bias=1.0, ln_norm_smoothing=False,
              ln_epsilon=None):
    """The notebook's `if ... == rnn_type` chain.

    ln_epsilon: ln_basic_lstm's layer norm variance epsilon. Given, the cell is the port
    layer_norm.LayerNormBasicLSTMCell on either stack (contrib's hard-codes 1e-12; the port has
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
        if ln_epsilon is not None:   # (TF2 has no contrib: the port there, always)
            return layer_norm.LayerNormBasicLSTMCell(num_hidden_units, epsilon=ln_epsilon,
                                                     **smoothing)
        cell = rnn.LayerNormBasicLSTMCell if TF1 else layer_norm.LayerNormBasicLSTMCell
        return cell(num_hidden_units, **smoothing)
    raise ValueError('unknown rnn_type {!r}'.format(rnn_type))


class MnistRnn(object):
    """The notebook's model: dynamic_rnn over the rows, dense(10) on the last output.

    inputs: float [batch, max_seq_len, input_units]; labels: int64 [batch]. The batch may be
    None (any size); train_cell keeps the notebook's batch_size, which runs faster.
    grad_clip_norm: the notebook's use_grad_clip (which clips at 5.0); 0 = off.
    graph 'fast': basic_lstm, lstm and gru over all rows at once (kernels.run_fused: one
    BlockLSTM op, or kernels.gru_stack), the others in dynamic_rnn without sequence_length;
    'notebook': dynamic_rnn with it. The same model: variables, loss, gradients (tested).
    """

    def __init__(self, inputs, labels, input_units, num_hidden_units, batch_size, max_seq_len,
                 rnn_type, lstm_forget_bias=1.0, add_check=False, lr=0.001, grad_clip_norm=0.0,
                 ln_norm_smoothing=False, graph='fast', ln_epsilon=None, global_step=None,
                 cluster=None):
        cell = make_cell(rnn_type, num_hidden_units, lstm_forget_bias, ln_norm_smoothing,
                         ln_epsilon)
        fused = None
        if graph == 'fast':   # the whole sequence at once, under dynamic_rnn's scope 'rnn'
            with tf.variable_scope('rnn'):
                fused = kernels.run_fused(cell, tf.transpose(inputs, [1, 0, 2]))
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
        # Fix: minimize() let the update of one variable run while the backward pass still
        # read it; utils.apply_gradients applies gradients that are all computed first.
        # (a cluster's: [global step, chief stopped] after the update, distributed.Cluster)
        optimize = utils.apply_gradients(optimizer, grads_and_vars, global_step, cluster)

        # accuracy, as the notebook: labels and preds are int64, so no NaN can show here.
        preds = tf.argmax(outputs, axis=1)
        errors = tf.count_nonzero(labels - preds)
        accuracy = 1.0 - tf.cast(errors, tf.float32) / tf.cast(tf.size(preds), tf.float32)

        self.outputs = outputs
        self.state = states   # the cell's state after the last row
        self.loss = loss
        self.optimize = optimize
        self.grads_and_vars = grads_and_vars   # what the update applies
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
          out=None, stop=None, cluster=None):
    """The notebook's loop, from history's position; updates history as it goes.

    A generator: yields after each epoch's test so the caller saves. Raises NanStop on
    NaN/Inf (history then holds the last good position), and Stopped between two steps once
    `stop` (a runs.StopRequest) is set (the caller saves). The position is counted in
    batches trained, the notebook's step (which counts test batches too) follows from it.

    On a cluster (a distributed.Cluster) each worker trains on its share of the images (task,
    task + n, ...), batch after batch, until the shared variables have had every epoch's
    batches (a worker's step counts one batch, async; an update --replicas-to-aggregate of
    them, --sync); the chief tests and validates when they pass an epoch's end (the others
    train on meanwhile) and yields.
    """
    out = out or sys.stdout
    stop = runs.StopRequest() if stop is None else stop
    chief, task, workers = (True, 0, 1) if cluster is None else (
        cluster.is_chief, cluster.task, cluster.num_workers)
    per_update = cluster.per_update if cluster else 1
    epoch_batches = data['train'].num_examples // args.batch_size
    test_batches = data['test'].num_examples // args.batch_size
    batches = mnist_data.DataSet(data['train'].images[task::workers],
                            data['train'].labels[task::workers]).batches(args.batch_size)
    if not batches:
        raise UserError('{} training images for {} workers make no whole batch of --batch-size '
                        '{} each'.format(data['train'].num_examples, workers, args.batch_size))
    done = history['epoch'] * epoch_batches + history['batch'] if chief else None
    fetches = [model.loss, model.optimize, model.accuracy]
    train_elapsed, train_losses, train_accuracy, own_steps = [], [], [], 0

    def notebook_step(done):   # test batches count too: those of the epochs tested
        return done + (ep if chief else max(done - 1, 0) // epoch_batches) * test_batches

    for i in itertools.count(done or 0):
        ep = len(history['epochs'])   # epochs tested
        while chief and ep < min(done // epoch_batches, args.epochs):
            step, figures = test_epoch(sess, model, inputs, labels, data, args, ep,
                                       (ep + 1) * epoch_batches + ep * test_batches,
                                       test_writer, out, stop)
            train_writer.flush()
            # The mean loss of this process's steps in the epoch (one process: all of them).
            recent = history['losses'][-(own_steps if cluster else epoch_batches) or -1:]
            history['epochs'].append(dict(figures, train_seconds=history['train_seconds'],
                                          train_loss=float(np.mean(recent))))
            history.update(epoch=ep + 1, batch=done - (ep + 1) * epoch_batches, step=step)
            own_steps, ep = 0, ep + 1
            train_elapsed, train_losses, train_accuracy = [], [], []   # lines per epoch
            yield ep
        if done is not None and done >= args.epochs * epoch_batches:
            return
        if stop:
            raise Stopped
        t_start = time.time()
        batch_input, batch_label = batches[i % len(batches)]
        before = notebook_step(done or 0)
        loss, update, accuracy = train_step(
            sess, fetches, {inputs: batch_input, labels: batch_label},
            min((done or 0) // epoch_batches, args.epochs - 1), before, cluster, stop)
        train_losses.append(loss)
        train_accuracy.append(accuracy)
        t_elapsed = time.time() - t_start
        train_elapsed.append(t_elapsed)
        first, done = done is None, done + 1 if cluster is None else update * per_update
        step = notebook_step(done)

        train_writer.add_summary(runs.scalar_summary(
            (TAG_TRAIN_ACCURACY, accuracy), (TAG_LOSS, loss)), global_step=step)
        finite = np.isfinite(loss)
        if runs.passed(before, step, args.log_every) and not first or not finite:
            # On NaN this prints the notebook's `loss nan` line before stopping.
            print('[trn] ep {:d}, step {:d}, loss {:f}, accu {:f}, sec/iter {:f}'.format(
                min((done - 1) // epoch_batches, args.epochs - 1) + 1, step,
                np.mean(train_losses), np.amin(train_accuracy), np.mean(train_elapsed)), file=out)
            out.flush()
            train_losses = []
            train_accuracy = []
            train_elapsed = []
        # The position: an epoch still to test stays open (batch >= its batches).
        epoch = min(done // epoch_batches, ep if chief else args.epochs - 1)
        record_step(history, loss, t_elapsed, epoch=epoch, batch=done - epoch * epoch_batches,
                    step=step)
        own_steps += 1


def train_step(sess, fetches, feed, ep, step, cluster=None, stop=None):
    """sess.run of a training step (on a cluster, cluster.run); Stopped when stopped while
    waiting for the other workers, NanStop when --check-numerics found NaN/Inf."""
    try:
        results = cluster.run(sess, fetches, feed, stop) if cluster else sess.run(fetches, feed)
    except tf.errors.InvalidArgumentError as e:
        if 'check_numerics' not in e.message:
            raise
        raise NanStop('{} at ep {:d}, step {:d} (check_numerics, before the update)'.format(
            utils.check_numerics_source(e.message), ep + 1, step + 1))
    if results is None:
        raise Stopped
    return results


def record_step(history, loss, seconds, **position):
    """A training step and the position after it (epoch, batch, step) in history; NanStop
    if its loss is NaN or Inf."""
    if not np.isfinite(loss):
        history['losses'].append(None)
        raise NanStop('loss is {} at ep {:d}, step {:d} (--check-numerics names the first '
                      'gradient that goes NaN or Inf)'.format(loss, position['epoch'] + 1,
                                                              position['step']))
    history['losses'].append(float(loss))
    history['train_seconds'] += seconds
    history['train_steps'] += 1
    history.update(position)


def test_epoch(sess, model, inputs, labels, data, args, ep, step, test_writer, out, stop):
    """The notebook's test loop after epoch ep (0-based), its steps counting on from `step`,
    then the mean over every test image and over the validation split. Returns (step, the
    epoch's figures). Raises Stopped between two batches once `stop` is set."""
    batch_size = args.batch_size
    test_batches = data['test'].batches(batch_size)
    test_elapsed = []
    test_accuracy = []
    test_correct = 0
    window_accuracy = None
    for batch_input, batch_label in test_batches:
        if stop:
            raise Stopped   # resumes with this epoch's test loop
        t_start = time.time()
        accuracy, hits = sess.run([model.accuracy, model.hits],
                                  feed_dict={inputs: batch_input, labels: batch_label})
        test_accuracy.append(accuracy)
        test_correct += int(np.sum(hits))
        t_elapsed = time.time() - t_start
        test_elapsed.append(t_elapsed)
        step += 1
        test_writer.add_summary(runs.scalar_summary((TAG_TEST_ACCURACY, accuracy)),
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
                             start=len(test_batches) * batch_size)
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
    test_writer.add_summary(runs.scalar_summary(*means), global_step=step)
    test_writer.flush()
    return step, {'epoch': ep + 1, 'step': step, 'test_accuracy': mean_accuracy,
                  'validation_accuracy': validation_accuracy,
                  'test_window_accuracy': window_accuracy}


# ---------------------------------------------------------------------------
# One cell: build, restore or start, train, save
# ---------------------------------------------------------------------------

def run_settings(cell, args, data):
    """What a checkpoint must match to be resumed."""
    return {'cell': cell, 'hidden': args.hidden, 'batch_size': args.batch_size, 'lr': args.lr,
            'forget_bias': args.forget_bias, 'clip_norm': args.clip_norm,
            'ln_smoothing': bool(args.ln_smoothing), 'seed': args.seed,
            'ln_epsilon': args.ln_epsilon if cell == 'ln_basic_lstm' else None,
            'data': mnist_data.data_fingerprint(data), 'stack': utils.STACK}


def train_cell(cell, args, data, out=None, stop=None, cluster=None):
    """Trains one cell (or finds it finished); returns its history, status in history['status'].

    stop: a runs.StopRequest; once set, training stops between two steps, saves, and the
    status is 'interrupted' (or 'done' if the signal came during the last epoch's save).
    cluster: a started distributed.Cluster worker; its chief reads and writes the history and the
    checkpoints, the other workers only train.
    """
    ckpt_dir = cell_runs.run_dirs(cell, args)[0]
    # One run per cell folder: two would overwrite each other's checkpoints and history.
    with runs.folder_lock(ckpt_dir, cluster=cluster):
        return train_cell_in(ckpt_dir, cell, args, data, out, stop, cluster)


def train_cell_in(ckpt_dir, cell, args, data, out=None, stop=None, cluster=None):
    out = out or sys.stdout
    stop = runs.StopRequest() if stop is None else stop
    chief = cluster is None or cluster.is_chief
    settings = run_settings(cell, args, data)
    history, finished = cell_runs.open_history(ckpt_dir, cell, settings, args.epochs,
                                               args.force or not chief, out)
    if finished and cluster is None:
        return history

    train_batches = data['train'].num_examples // args.batch_size
    test_batches = data['test'].num_examples // args.batch_size
    if not train_batches or not test_batches:
        raise UserError('{} train and {} test images make no whole batch of --batch-size {}'.format(
            data['train'].num_examples, data['test'].num_examples, args.batch_size))

    wall_start = [time.time()]   # graph building and restoring count too
    graph = tf.Graph()
    with graph.as_default(), distributed.cluster_device(cluster):
        tf.set_random_seed(args.seed)
        # The notebook's batch size, not None: an unknown batch dimension makes every training
        # step slower (measured: +10% basic_lstm and gru, +25-50% ln_basic_lstm); evaluate
        # pads the last, shorter batch instead.
        inputs_ = tf.placeholder(tf.float32, [args.batch_size, MAX_SEQ_LEN, INPUT_UNITS],
                                 name='inputs')
        labels_ = tf.placeholder(tf.int64, [args.batch_size], name='labels')
        # A cluster counts its updates; checkpoints leave the count out (history.json has the
        # position), so one process and a cluster read each other's.
        global_step = tf.train.get_or_create_global_step() if cluster else None
        model = MnistRnn(inputs_, labels_, INPUT_UNITS, args.hidden, args.batch_size,
                         MAX_SEQ_LEN, cell, lstm_forget_bias=args.forget_bias,
                         add_check=args.check_numerics, lr=args.lr,
                         grad_clip_norm=args.clip_norm, ln_norm_smoothing=args.ln_smoothing,
                         graph=args.graph, ln_epsilon=settings['ln_epsilon'],
                         global_step=global_step, cluster=cluster)
        saver = tf.train.Saver([v for v in tf.global_variables() if v is not global_step],
                               max_to_keep=2)

    _, train_dir, test_dir = cell_runs.run_dirs(cell, args)
    resumed = history is not None
    if not resumed:
        history = cell_runs.new_history(settings)
        if chief:
            runs.clear_events(train_dir)
            runs.clear_events(test_dir)

    def start(sess):   # the chief, after initialising the variables (a cluster: each time)
        if resumed and not finished:
            path = os.path.join(ckpt_dir, history['checkpoint'])
            problem = runs.checkpoint_problem(path)
            if problem:   # (an older one would not match history.json's position)
                raise UserError('cannot restore {} from {}: checkpoint {} {}; --force starts it '
                                'over'.format(cell, ckpt_dir, history['checkpoint'], problem))
            try:
                saver.restore(sess, path)
            except (tf.errors.OpError, ValueError, TypeError) as e:
                raise UserError('cannot restore {} from {} ({}); --force starts it over'.format(
                    cell, ckpt_dir, str(e).strip().splitlines()[0]))
        if cluster:   # the batches trained, in updates
            done = history['epoch'] * train_batches + history['batch']
            global_step.load(-(-done // cluster.per_update), sess)

    with graph.as_default(), runs.training_session(cluster, saver, start, args.threads) as sess:
        if finished:   # a cluster's chief opened the session to tell the workers to stop
            return history
        history['status'] = 'training'
        history['settings'] = settings
        rest = data['test'].num_examples - test_batches * args.batch_size
        validation = data['validation'].num_examples
        print('[{}] {} hidden, batch {}: {} train + {} test batches per epoch{}, {}, {} epochs '
              '({} stack{})'.format(
                  cell, args.hidden, args.batch_size, train_batches, test_batches,
                  ' (+ {} test images)'.format(rest) if rest else '',
                  'validation on {} images'.format(validation) if validation else
                  'no validation (--validation-size 0: the last epoch is reported)',
                  args.epochs, utils.STACK, ', resuming at ep {}, step {}'.format(
                      history['epoch'] + 1, history['step']) if resumed else ''), file=out)
        out.flush()

        train_writer = runs.event_writer(train_dir, graph, chief)   # only the chief writes
        test_writer = (train_writer if test_dir == train_dir else
                       runs.event_writer(test_dir, graph, chief))

        def save(status):
            history['status'] = status
            if not chief:   # only the chief writes
                return
            now = time.time()
            history['wall_seconds'] += now - wall_start[0]
            wall_start[0] = now
            if status != 'nan':   # a NaN leaves the last good checkpoint in place
                path = runs.save(saver, runs.raw_session(sess, cluster),
                                 os.path.join(ckpt_dir, 'model.ckpt'), history['step'],
                                 write_meta_graph=False)
                history['checkpoint'] = os.path.basename(path)
            runs.write_json(os.path.join(ckpt_dir, cell_runs.HISTORY), history)

        if chief:
            files.safe_mkdir(ckpt_dir)
        try:
            for epoch in train(sess, model, inputs_, labels_, data, args, history, train_writer,
                               test_writer, out, stop, cluster):
                save('done' if epoch == args.epochs else 'training')
                if stop:   # it came during the save, which is complete: stop right here
                    break
            if not chief and not stop:
                save('done')   # a worker's: the updates are all done
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
            print('[{}] {} at ep {}, step {}{}'.format(
                cell, 'stopped: the chief stopped' if stop.signum == runs.CHIEF_STOPPED
                else 'interrupted by ' + stop.name, history['epoch'] + 1, history['step'],
                ': saved {}; run the same command to resume'.format(ckpt_dir) if chief else ''),
                file=out)
        return history


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------

def export_model(args):
    """--export: the cell's checkpoint (history.json names it) as a SavedModel
    (tf1rnn/export.py)."""
    if len(args.cell) > 1 or args.seeds is not None:
        raise UserError('--export writes one model: give one --cell, and no --seeds')
    ckpt_dir = cell_runs.run_dirs(args.cell[0], args)[0]
    history = runs.read_history(os.path.join(ckpt_dir, cell_runs.HISTORY), cell_runs.HISTORY_KEYS,
                                cell_runs.SETTINGS_ADDED)
    if not history or not history.get('checkpoint'):
        raise UserError('no checkpoint in {}: train first (python mnist_rnn.py --cell {})'.format(
            ckpt_dir, args.cell[0]))
    settings = history['settings']

    def build(images):
        """MnistRnn's logits, by its notebook graph (the same variables), no training ops."""
        cell = make_cell(settings['cell'], settings['hidden'], settings['forget_bias'],
                         settings['ln_smoothing'], settings['ln_epsilon'])
        outputs, _ = tf.nn.dynamic_rnn(cell, images, dtype=tf.float32)
        return tf.layers.dense(outputs[:, MAX_SEQ_LEN - 1], NUM_CLASSES)

    checkpoint = os.path.join(ckpt_dir, history['checkpoint'])
    path = export.export_classifier(args.export, checkpoint, build, (MAX_SEQ_LEN, INPUT_UNITS),
                                    args.threads)
    print('exported {} to {}'.format(checkpoint, path))
    return 0


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def check_outputs(args, todo):
    """runs.check_output_dir of every folder the runs of todo [(seed, cell)] write to."""
    runs.check_output_dir(args.checkpoint_dir, '--checkpoint-dir')
    runs.check_output_dir(args.logdir, '--logdir')
    for seed, cell in todo:
        ckpt_dir, train_dir, test_dir = cell_runs.run_dirs(
            cell, argparse.Namespace(**dict(vars(args), seed=seed)))
        runs.check_output_dir(ckpt_dir, '--checkpoint-dir')
        runs.check_output_dir(train_dir, '--logdir')
        runs.check_output_dir(test_dir, '--logdir')
    if len(args.cell) > 1 or args.seeds is not None:
        runs.check_output_dir(args.results_dir or args.logdir,
                              '--results-dir' if args.results_dir else '--logdir')


def main(argv=None):
    started = (time.time(), stats.load_average())
    args = parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)   # for results.md
    if args.export is not None:
        return export_model(args)
    cluster = distributed.cluster_from_args(args, [('--seeds', args.seeds is not None),
                                             ('more than one --cell', len(args.cell) > 1)])
    if cluster and cluster.start().job == 'ps':
        return cluster.serve()
    seeds = [args.seed] if args.seeds is None else args.seeds
    todo = [(seed, cell) for seed in seeds for cell in args.cell]   # whole seeds first
    if cluster is None or cluster.is_chief:   # the one that writes: its outputs, before any work
        check_outputs(args, todo)
    data = mnist_data.load_mnist(args.data_dir, args.validation_size, args.train_limit, args.test_limit)
    figures = []
    # From here Ctrl-C and SIGTERM only set `stop`: training stops between two steps, saves
    # and exits 0; one during a save waits for it (runs.stop_on_signals).
    with runs.stop_on_signals() as stop:
        for index, (seed, cell) in enumerate(todo):
            if args.seeds is not None:
                print('=== {}, seed {} (run {} of {})'.format(cell, seed, index + 1, len(todo)))
            if index == 0 or seed != todo[index - 1][0]:
                seed_data = mnist_data.seeded_data(data, seed)
            history = train_cell(cell, argparse.Namespace(**dict(vars(args), seed=seed)),
                                 seed_data, stop=stop, cluster=cluster)
            if history['status'] == 'interrupted':
                return 0
            figures.append(cell_runs.run_figures(cell, seed, history))
            if stop and index + 1 < len(todo):
                print('{} after {}, seed {}: {} more run{} to train; run the same command to go '
                      'on'.format(stop.name, cell, seed, len(todo) - index - 1,
                                  's' * (len(todo) - index > 2)))
                return 0
    if len(args.cell) > 1 or args.seeds is not None:
        folder = args.results_dir or args.logdir
        cell_runs.write_results(figures, args, data, folder, started, CELLS)
        print('results: {}'.format(', '.join(os.path.join(folder, name) for name in (
            'results.md', 'results.csv', 'runs.csv', 'results.png'))))
    return NAN_EXIT if any(f['nan'] for f in figures) else 0


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
