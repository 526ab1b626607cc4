"""MNIST digits read row by row by an RNN: the cell comparison notebook as a script.

Each 28x28 image is a sequence of 28 rows of 28 pixels; tf.nn.dynamic_rnn runs a cell of
31 units over it, a dense layer maps the last output to the 10 classes. The notebook
("RNN 실습 - 텐서플로우에서 LSTM 및 GRU 사용") trains five cells with the same settings (its
Tests #1-#5), then hunts the NaN of the last one (Test #6):

    python mnist_rnn.py --cell gru             # one of CELLS, or a comma-separated list
    python mnist_rnn.py --cell all             # all five, and logdir/results.md, .csv, .png
    python mnist_rnn.py --cell all --seeds 5   # from seeds 0-4: which is better, how sure
    python mnist_rnn.py --cell ln_basic_lstm --check-numerics   # names the NaN gradient
    python mnist_rnn.py --cell ln_basic_lstm --ln-epsilon 1e-2  # cures it (see nan_remedies)
    python mnist_rnn.py --config tiny          # a smoke test in seconds
    python cluster.py --workers 2 -- python mnist_rnn.py --cell gru   # 1 ps + 2 workers

The log lines are the notebook's: `[trn] ep 1, step 250, loss 1.501857, accu 0.085938,
sec/iter 0.012345` (mean loss, *minimum* batch accuracy and mean seconds per step since the
last line) and `[tst] ep 1, step 500, accu 0.500000, sec/iter 0.004678` (the step counts
test batches too). After each epoch two more: `[tst] ep 1, mean accu 0.912300 over 10000
images` (the whole test set) and `[val] ep 1, mean accu 0.915000 over 5000 images` (the
validation split, read_data_sets' first 5,000 training images, which picks the epoch to
report). Checkpoints (checkpoints/mnist_<cell>/) are saved after every epoch and on Ctrl-C
or SIGTERM; the same command resumes, and a finished cell is not trained again (--force
does). The LSTMs run as one fused op over all rows and gru by kernels.gru_stack (see
MnistRnn): the notebook's model, whose graph --graph notebook runs, checkpoints included.

Over 5 seeds (docs/which-cell.md) every gated cell beats basic_rnn by 0.06-0.07 in test
accuracy; lstm and basic_lstm are the same function from the same weights; gru,
ln_basic_lstm (--ln-epsilon 1e-2) and the LSTM are not told apart. The notebook ranked them
from one run each.
"""
from __future__ import print_function

from tf1rnn import cli   # (light) first: Ctrl-C during the heavy imports below exits quietly
cli.quiet_interrupts()

import argparse  # noqa: E402
import itertools
import sys
import time

import numpy as np

import utils
from tf1rnn import cell_runs, distributed, export, kernels, layer_norm, mnist_data, runs, stats
from utils import TF1, rnn, tf

# The notebook's cells, in the order of its Tests #1-#5.
CELLS = ('basic_rnn', 'basic_lstm', 'gru', 'lstm', 'ln_basic_lstm')
MAX_SEQ_LEN, INPUT_UNITS = mnist_data.MNIST_SHAPE   # rows per image, pixels per row
NUM_CLASSES = mnist_data.MNIST_CLASSES
NAN_EXIT = 3       # exit status when a cell stopped on NaN or Inf
# TensorBoard tags: the notebook's tf.Summary.Value tags (as its OCR'd text reads them), and
# the per-epoch means.
TAG_TRAIN_ACCURACY = 'train accuracy'
TAG_LOSS = 'loss'
TAG_TEST_ACCURACY = 'test accuracy'
TAG_TEST_MEAN_ACCURACY = 'test mean accuracy'
TAG_VALIDATION_ACCURACY = 'validation mean accuracy'
# The --ln-epsilon that cures ln_basic_lstm's NaN; see nan_remedies for why this value.
LN_EPSILON_REMEDY = '1e-2'


# --- Configuration -------------------------------------------------------------------------------

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
    """A smoke test in seconds: few small batches, a line every 5 steps, no validation."""
    epochs = 1
    batch_size = 32
    hidden = 8
    log_every = 5
    validation_size = 0
    train_limit = 320
    test_limit = 128


CONFIGS = {'notebook': NotebookConfig, 'tiny': TinyConfig}


# --- Model: the notebook's MnistRnn --------------------------------------------------------------

def make_cell(rnn_type, num_hidden_units, lstm_forget_bias=1.0, ln_norm_smoothing=False,
              ln_epsilon=None):
    """The notebook's `if ... == rnn_type` chain. ln_epsilon: ln_basic_lstm's layer norm
    variance epsilon; given, the cell is the port layer_norm.LayerNormBasicLSTMCell (contrib's
    hard-codes 1e-12; the port has its variables and, at 1e-12, computes the same)."""
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

    inputs: float [batch, max_seq_len, input_units]; labels: int64 [batch]; the batch may be
    None. grad_clip_norm: the notebook's use_grad_clip (which clips at 5.0); 0 = off. graph
    'fast': basic_lstm, lstm and gru over all rows at once (kernels.run_fused: one BlockLSTM
    op, or kernels.gru_stack), the others in dynamic_rnn without sequence_length; 'notebook':
    dynamic_rnn with it. The same model: variables, loss, gradients (tested).
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


# --- Training: the notebook's train(), resumable, and its Test #1-#5 cells -----------------------

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


def train(sess, model, inputs, labels, data, args, history, train_writer, test_writer, out,
          stop, cluster=None):
    """The notebook's loop, from history's position; updates history as it goes. A generator:
    yields after each epoch's test so the caller saves; raises NanStop on NaN/Inf (history
    holds the last good position), Stopped between two steps once `stop` is set. `progress`
    counts the batches trained and the notebook's step (test batches included), in one
    process or a cluster's worker (distributed.Progress)."""
    train_loop_count = data['train'].num_examples // args.batch_size
    test_loop_count = data['test'].num_examples // args.batch_size
    progress = distributed.Progress(
        cluster, history['epoch'] * train_loop_count + history['batch'], len(history['epochs']),
        train_loop_count, test_loop_count, args.epochs)
    batches = progress.batches(data['train'], args.batch_size)
    train_elapsed, train_losses, train_accuracy = [], [], []
    for i in itertools.count(progress.done or 0):
        for ep in progress.to_test():   # (the chief's) epochs whose batches are all trained
            step, figures = test_epoch(sess, model, inputs, labels, data, args, ep,
                                       (ep + 1) * train_loop_count + ep * test_loop_count,
                                       test_writer, out, stop)
            train_writer.flush()
            cell_runs.record_epoch(history, figures, progress.epoch_steps,
                                   progress.tested_epoch(step))
            train_elapsed, train_losses, train_accuracy = [], [], []   # lines per epoch
            yield ep + 1
        if progress.finished:
            return
        if stop:
            raise runs.Stopped
        t_start = time.time()
        batch_input, batch_label = batches[i % len(batches)]
        try:
            loss, _, accuracy = progress.run(sess, [model.loss, model.optimize, model.accuracy],
                                             {inputs: batch_input, labels: batch_label}, stop)
        except tf.errors.InvalidArgumentError as e:   # --check-numerics
            if 'check_numerics' not in e.message:
                raise
            raise cell_runs.NanStop('{} at ep {:d}, step {:d} (check_numerics, before the '
                                    'update)'.format(utils.check_numerics_source(e.message),
                                                     progress.epoch + 1, progress.before + 1))
        train_losses.append(loss)
        train_accuracy.append(accuracy)
        t_elapsed = time.time() - t_start
        train_elapsed.append(t_elapsed)
        step = progress.step
        train_writer.add_summary(runs.scalar_summary(
            (TAG_TRAIN_ACCURACY, accuracy), (TAG_LOSS, loss)), global_step=step)
        if progress.passed(args.log_every) or not np.isfinite(loss):
            # On NaN this prints the notebook's `loss nan` line before stopping.
            print('[trn] ep {:d}, step {:d}, loss {:f}, accu {:f}, sec/iter {:f}'.format(
                progress.epoch + 1, step, np.mean(train_losses), np.amin(train_accuracy),
                np.mean(train_elapsed)), file=out)
            out.flush()
            train_losses, train_accuracy, train_elapsed = [], [], []
        cell_runs.record_step(history, loss, t_elapsed, **progress.position())


def train_cell(cell, args, data, out=None, stop=None, cluster=None):
    """Trains one cell (or finds it finished); returns its history, status in history['status']:
    once `stop` (a runs.StopRequest) is set, training stops between two steps, saves, and the
    status is 'interrupted' (or 'done' if it came during the last epoch's save). cluster: a
    started distributed.Cluster worker: its chief reads and writes the run's files."""
    # The cell's folder, locked: its history.json, a run to resume or to start (or finished).
    with cell_runs.CellRun(cell, args, data, out, cluster) as run:
        if run.finished and cluster is None:
            return run.history
        graph = tf.Graph()
        with graph.as_default(), distributed.cluster_device(cluster):
            tf.set_random_seed(args.seed)
            # The notebook's batch size: None (any) makes every step slower (measured: +10%
            # basic_lstm and gru, +25-50% ln_basic_lstm); evaluate pads the last, short batch.
            inputs_ = tf.placeholder(tf.float32, [args.batch_size, MAX_SEQ_LEN, INPUT_UNITS],
                                     name='inputs')
            labels_ = tf.placeholder(tf.int64, [args.batch_size], name='labels')
            global_step = tf.train.get_or_create_global_step() if cluster else None
            model = MnistRnn(inputs_, labels_, INPUT_UNITS, args.hidden, args.batch_size,
                             MAX_SEQ_LEN, cell, lstm_forget_bias=args.forget_bias,
                             add_check=args.check_numerics, lr=args.lr,
                             grad_clip_norm=args.clip_norm, ln_norm_smoothing=args.ln_smoothing,
                             graph=args.graph, ln_epsilon=run.settings['ln_epsilon'],
                             global_step=global_step, cluster=cluster)
        # Its variables restored (or new), its first line printed, its event writers open.
        with run.session(graph, args.threads, global_step) as sess:
            if run.finished:   # a cluster's chief opened the session to tell the workers to stop
                return run.history
            epochs = train(sess, model, inputs_, labels_, data, args, run.history,
                           run.train_writer, run.test_writer, run.out, stop, cluster)
            return run.save_each_epoch(epochs, stop, nan_remedies(cell, args))


# --- Testing: the notebook's test loop, then every test and validation image ---------------------

def test_epoch(sess, model, inputs, labels, data, args, ep, step, test_writer, out, stop):
    """The notebook's test loop after epoch ep (0-based), its steps counting on from `step`,
    then the mean over every test image and over the validation split. Returns (step, the
    epoch's figures). Raises Stopped between two batches once `stop` is set."""
    test_elapsed, test_accuracy = [], []
    test_correct, window_accuracy = 0, None
    test_batches = data['test'].batches(args.batch_size)
    for batch_input, batch_label in test_batches:
        if stop:
            raise runs.Stopped   # resumes with this epoch's test loop
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
            test_accuracy, test_elapsed = [], []
    # Fix: the notebook's loop sees whole batches only (9,984 of the 10,000 test images);
    # the rest is evaluated too, and the mean is over every image.
    test_correct += evaluate(sess, model, inputs, labels, data['test'],
                             start=len(test_batches) * args.batch_size)
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
        validation_accuracy = evaluate(sess, model, inputs, labels,
                                       data['validation']) / float(validation_count)
        print('[val] ep {:d}, mean accu {:f} over {:d} images'.format(
            ep + 1, validation_accuracy, validation_count), file=out)
        means.append((TAG_VALIDATION_ACCURACY, validation_accuracy))
    out.flush()
    test_writer.add_summary(runs.scalar_summary(*means), global_step=step)
    test_writer.flush()
    return step, {'epoch': ep + 1, 'step': step, 'test_accuracy': mean_accuracy,
                  'validation_accuracy': validation_accuracy,
                  'test_window_accuracy': window_accuracy}


def evaluate(sess, model, inputs, labels, dataset, start=0):
    """Correct predictions over dataset's images from `start` on, in batches of the inputs'
    size, the last one padded with blank images whose predictions are not counted."""
    correct, batch_size = 0, inputs.shape.as_list()[0]
    for offs in range(start, dataset.num_examples, batch_size):
        images = dataset.images[offs:offs + batch_size]
        pad = batch_size - len(images)
        hits = sess.run(model.hits, feed_dict={
            inputs: np.pad(images, [(0, pad), (0, 0), (0, 0)]),
            labels: np.pad(dataset.labels[offs:offs + batch_size], [(0, pad)])})
        correct += int(np.sum(hits[:len(images)]))
    return correct


def export_model(args):
    """--export: the cell's checkpoint (history.json names it) as a SavedModel
    (tf1rnn/export.py), classifying by the notebook's graph (the same variables)."""
    checkpoint, settings = cell_runs.trained_checkpoint(args.cell[0], args)

    def build(images):   # MnistRnn's logits, no training ops
        cell = make_cell(settings['cell'], settings['hidden'], settings['forget_bias'],
                         settings['ln_smoothing'], settings['ln_epsilon'])
        outputs, _ = tf.nn.dynamic_rnn(cell, images, dtype=tf.float32)
        return tf.layers.dense(outputs[:, MAX_SEQ_LEN - 1], NUM_CLASSES)

    path = export.export_classifier(args.export, checkpoint, build, (MAX_SEQ_LEN, INPUT_UNITS),
                                    args.threads)
    print('exported {} to {}'.format(checkpoint, path))
    return 0


# --- Flags ---------------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train RNN cells on MNIST rows as in the cell comparison notebook.',
        formatter_class=cli.RangeHelpFormatter,
        epilog='Settings default to the notebook\'s (--config notebook). Exit status: 0 done '
               '(or stopped by Ctrl-C or SIGTERM after saving), 2 bad input, 3 a cell hit NaN/Inf.')
    add = parser.add_argument
    add('--cell', type=cli.choice_list(CELLS), default=['basic_rnn'],
        metavar='{%s,all}' % ','.join(CELLS), help='cell to train, "all" (Tests #1-#5 and a '
        'results table) or a comma list (default: basic_rnn, Test #1)')
    add('--config', choices=sorted(CONFIGS), default='notebook', help='notebook (default) or '
        'tiny (a smoke test: 1 epoch, batch 32, 8 hidden, 320 train and 128 test images, no '
        'validation, a line every 5 steps); the flags below override it')
    add('--epochs', type=cli.positive_int, help='epochs to train (notebook: 10)')
    add('--batch-size', type=cli.positive_int, help='images per batch (notebook: 128)')
    add('--hidden', type=cli.positive_int, help='units in the cell (notebook: 31)')
    add('--lr', type=cli.number(float, low=0, high=1, low_open=True),
        help='Adam learning rate (notebook: 0.001; its NaN remedy: 0.0001)')
    add('--forget-bias', type=cli.number(float), help='forget_bias of --cell lstm (notebook: 1.0)')
    add('--clip-norm', type=cli.number(float, low=0),
        help='clip gradients by global norm; 0 = off (notebook: off; its remedy: 5.0)')
    add('--ln-epsilon', type=cli.positive_float, metavar='EPS', help='ln_basic_lstm\'s layer '
        'norm variance epsilon (contrib\'s 1e-12 makes its NaN, {} cures it), by the port '
        'layer_norm.LayerNormBasicLSTMCell'.format(LN_EPSILON_REMEDY))
    add('--ln-smoothing', action='store_true',
        help='ln_basic_lstm with norm_gain 0.85, norm_shift 0.15 (the notebook\'s NaN remedy)')
    add('--check-numerics', action='store_true',
        help='check every gradient before the update (Test #6): names the first NaN/Inf')
    add('--graph', choices=['fast', 'notebook'], default='fast', help='fast: the fused LSTM '
        'op, gru by kernels.gru_stack, no sequence_length; notebook: dynamic_rnn as the '
        'notebook. The same model and checkpoints')
    add('--seed', type=cli.seed, help='seed of the initial weights and the training order: 0 '
        '(default) the file\'s order, as the notebook; N > 0 a permutation drawn from N, the '
        'same every epoch')
    add('--seeds', type=cli.seed_list, metavar='N|LIST', help='train every cell from seeds '
        '0..N-1 (or a list: 0,3,7) and compare the cells over seeds in results.md (means, 95%% '
        'intervals, paired differences); finished runs are reused')
    add('--data-dir', help='folder of the four MNIST IDX files (.gz or not), of any 28x28 '
        'images in 10 classes (default: data/mnist, MNIST downloaded there when missing)')
    add('--logdir', default='logdir', help='TensorBoard runs train_<cell> and test_<cell>, '
        'with --seeds <cell>/seed<k> (default: logdir)')
    add('--results-dir', help='where several cells or --seeds write results.md, results.csv, '
        'runs.csv and results.png (default: the --logdir)')
    add('--checkpoint-dir', default='checkpoints', help='checkpoints in <dir>/mnist_<cell>/, '
        'with --seeds <dir>/mnist_<cell>_seed<k>/ (default: checkpoints)')
    add('--export', metavar='DIR', help='write the --cell\'s checkpoint as a SavedModel to '
        'DIR/<version> (1, 2, ...), signature classify (docs/export.md), and exit')
    add('--force', action='store_true', help='train the cell from the start, even if finished')
    add('--threads', type=cli.non_negative_int, default=0,
        help='TensorFlow intra/inter-op threads (default: 0, TensorFlow decides)')
    add('--log-every', type=cli.positive_int, help='steps between log lines (notebook: 250)')
    add('--validation-size', type=cli.non_negative_int, help='first training images held out, '
        'as read_data_sets, to pick the epoch to report; 0 = none: the last (default: 5000)')
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


# --- Main ----------------------------------------------------------------------------------------

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
        cell_runs.check_outputs(args, todo)
    data = mnist_data.load_mnist(args.data_dir, args.validation_size, args.train_limit,
                                 args.test_limit)
    # From here Ctrl-C and SIGTERM stop a run between two steps: it saves, and exits 0.
    figures = cell_runs.train_all(args, todo, data, train_cell, cluster)
    if figures is None:   # stopped: the same command goes on
        return 0
    if len(args.cell) > 1 or args.seeds is not None:
        cell_runs.write_results(figures, args, data, started, CELLS)
    return NAN_EXIT if any(f['nan'] for f in figures) else 0


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
