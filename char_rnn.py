"""Character-level tweet generator: the CS20 lecture 11 CharRNN, runnable today.

A GRU language model over characters (Stanford CS20, lecture 11, examples/11_char_rnn.py),
trained on Donald Trump's tweets, that writes tweets from seed strings. The defaults are the
lecture's: its vocabulary string, GRU layers of [128, 256], one-hot input, Adam at 0.0003,
batches of 64 windows of 50 characters overlapping by 25, temperature 1.5, 200 generated
characters, the same seeds and log lines. Runs on TensorFlow 1.15 and, through
tensorflow.compat.v1 in graph mode, on TensorFlow 2.

    python char_rnn.py                                  # train (resumes by itself), 5000 steps
    python char_rnn.py --steps 0                        # train until Ctrl-C (saves, exits 0)
    python char_rnn.py --sample --prime "Make America" -n 280    # generate, no training
    python char_rnn.py --vocab auto --data my.txt --model my     # any UTF-8 text file
    python char_rnn.py --fused                          # TF1: the fused GRU kernel, faster
    tensorboard --logdir logdir

Results (../shared/data/trump_tweets.txt, lecture defaults; train: the loss per character
of the last batch, averaged over the 100 steps before it for 2000; val: 20 batches of the
5% held-out lines; chars/s from BENCHMARKS.md, a quiet machine, 2 cores):

    | stack | steps | train nats/char | val nats/char | val bits/char | chars/s |
    |-------|-------|-----------------|---------------|---------------|---------|
    | tf1   |   300 | 2.958           | 2.861         | 4.127         | 35,411  |
    | tf2   |   300 | 2.945           | 2.855         | 4.119         | 61,510  |
    | tf1   |  2000 | 2.095           | 2.050         | 2.957         |         |

    python char_rnn.py --data ../shared/data/trump_tweets.txt --steps 300   # then --steps 2000

Differences from the lecture. Bugs fixed (each marked "# Fix:" in the code):
  - One-hot depth: ids run 1..len(vocab) and 0 is padding, but tf.one_hot(seq, len(vocab))
    made the last character (the chart emoji) all zeros and padding a real one-hot row, so
    padding counted in the length and was a training target. Here id i sets column i - 1
    and padding is all zeros: every character has a column, and padding is out of the
    length and (all-zero labels) out of the loss.
  - min_loss was never set, so every iteration saved: the latest checkpoint and the best
    one (lowest validation loss, under best/) are kept, a bounded number of files.
  - A seed longer than one character only fed its last character: the whole seed primes
    the state.
  - The training loop never ended: --steps N stops at global step N (0: until Ctrl-C);
    Ctrl-C saves a checkpoint and exits 0; re-running the same command finishes the job.
  - Events went to graphs/gist: they go to logdir/char_rnn/<model>/{train,val}.
  - Files were opened in the platform's encoding: UTF-8 is read explicitly, undecodable
    bytes are an error naming the line (utils.read_lines).
  - Windows: every character of a line is in some window, including lines shorter than
    the window (utils.chunk_ids); the lecture skipped them and the tail of longer ones.
  - Characters outside the vocabulary vanished silently (the lecture's string lacks '!'
    and '&'): the count and the most frequent are printed; --vocab auto covers all.
Deliberate differences (defaults the lecture did not have):
  - Samples every --sample-every 100 steps (the lecture generated every step, which would
    dominate the run time), all seeds as one batch, generated in one session call by an
    in-graph loop (online_infer, the lecture's one-call-per-character loop, is kept).
  - Validation loss on --val-frac 5% held-out lines every --eval-every steps; loss per
    real character (nats, bits) and characters per second next to the lecture's summed
    loss; a fixed --seed 0 for initialisation, data order and sampling.
  - --fused (TF1 only, opt-in): the GRU layers run tf.contrib.rnn's GRUBlockCellV2, one
    fused kernel per step, in place of GRUCell's several ops. Same model: same variable
    names (checkpoints load with and without it), same loss and gradients for the same
    weights (tests/test_char_rnn.py checks both); generation steps the same fused cells.
    On TF1 training ran 1.2-1.4x and generation 1.2-1.5x as fast as without it (README).
    On TF2 it is an error: TF2 keeps the kernel (tf.raw_ops.GRUBlockCell) but not its
    Python cell and gradient, and a port of both (bench/lecture_char_rnn.py) is slower
    there than GRUCell (0.82x, BENCHMARKS.md).
  - Sampling: the default is the lecture's formula, multinomial over exp(logits / temp),
    which treats exp(...) as logits and is much sharper than softmax(logits / temp);
    --sampling softmax gives standard temperature sampling.
"""
from __future__ import print_function

import argparse
import collections
import contextlib
import glob
import json
import math
import os
import signal
import sys
import time

import numpy as np

import utils
from utils import UserError, rnn, tf

DATA_URL = ('https://raw.githubusercontent.com/chiphuyen/stanford-tensorflow-tutorials/'
            'master/examples/data/trump_tweets.txt')
DATA_SHA256 = '5b600bae4ade78714433caf1d84f2aee40b17e0627fba4584742de5e2635e286'
DEFAULT_DATA = os.path.join('data', 'trump_tweets.txt')

# The lecture's vocabulary, verbatim: it lists the apostrophe twice (the second never gets an
# id of its own) and lacks '!' and '&'. The last two are U+27A1 (arrow) and U+1F4C8 (chart).
TRUMP_VOCAB = ("$%'()+,-./0123456789:;=?ABCDEFGHIJKLMNOPQRSTUVWXYZ"
               " '\"_abcdefghijklmnopqrstuvwxyz{|}@#\u27a1\U0001f4c8")
SEEDS = ['Hillary', 'I', 'R', 'T', '@', 'N', 'M', '.', 'G', 'A', 'W']
CONFIG_FILE = 'config.json'
CONFIG_FORMAT = 1
FUSED_NEEDS_TF1 = '--fused needs TF1\'s tf.contrib kernels (TensorFlow 1.15)'


# ---------------------------------------------------------------------------
# Configuration: the lecture's numbers, a tiny variant for smoke tests; flags override.
# ---------------------------------------------------------------------------

class LectureConfig(object):
    """CharRNN.__init__'s hyperparameters, plus what the lecture did not have."""
    hidden_sizes = [128, 256]   # the lecture's two GRU layers
    batch_size = 64             # the lecture's
    lr = 0.0003                 # the lecture's Adam learning rate
    window = 50                 # the lecture's num_steps ("for RNN unrolled"); overlap window // 2
    temperature = 1.5           # the lecture's self.temp
    len_generated = 200         # the lecture's
    skip_step = 1               # the lecture logs every step
    steps = 5000                # finite, so `make train` ends (~10 min on 2 CPU cores)
    sample_every = 100          # the lecture samples every step: that would dominate the run time
    eval_every = 100            # validation loss and checkpoints this often
    eval_batches = 20           # validation batches averaged per evaluation (0: all)
    summary_every = 10          # TensorBoard training scalars this often (each costs a little)


class TinyConfig(LectureConfig):
    """Seconds on a CPU: for smoke tests, not for results."""
    hidden_sizes = [16, 16]
    batch_size = 8
    window = 20
    len_generated = 20
    steps = 20
    sample_every = 10
    eval_every = 10
    eval_batches = 2
    summary_every = 5


CONFIGS = {'lecture': LectureConfig, 'tiny': TinyConfig}


def make_config(args):
    """The --config's settings with the flags given applied over them."""
    cfg = CONFIGS[args.config or 'lecture']()
    for name in ('steps', 'batch_size', 'window', 'lr', 'temperature', 'skip_step',
                 'sample_every', 'eval_every', 'eval_batches', 'summary_every'):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    if args.length is not None:
        cfg.len_generated = args.length
    return cfg


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default unless it is None or a switch (their help says what happens)."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super(_HelpFormatter, self)._get_help_string(action)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Character-level RNN (CS20 lecture 11): train on a text file, or generate '
                    'from the latest checkpoint with --sample.',
        formatter_class=_HelpFormatter)
    p.add_argument('--data', default=DEFAULT_DATA,
                   help='UTF-8 text file, one example per line; the default is downloaded '
                        '(sha256 checked) when missing')
    p.add_argument('--model', default='trump_tweets',
                   help='model name: checkpoints in CHECKPOINT_DIR/MODEL, events in '
                        'LOGDIR/char_rnn/MODEL')
    p.add_argument('--config', choices=sorted(CONFIGS), default=None,
                   help='hyperparameter set (tiny: for smoke tests); other flags override it '
                        '(default: lecture, or the checkpoint\'s model shape when resuming)')
    p.add_argument('--hidden-sizes', default=None, type=_int_list, metavar='N,N',
                   help='GRU layer sizes (default: the config\'s (lecture: 128,256), or the '
                        'checkpoint\'s)')
    p.add_argument('--vocab', choices=['trump', 'auto'], default=None,
                   help='trump: the lecture\'s character string; auto: every character of '
                        'DATA. Stored with the checkpoint and reused (default: the '
                        'checkpoint\'s, else trump)')
    p.add_argument('--steps', type=_non_negative_int, default=None,
                   help='train until the global step reaches this (re-run to finish an '
                        'interrupted run); 0: until Ctrl-C (default: 5000; tiny: 20)')
    p.add_argument('--batch-size', type=_positive_int, default=None,
                   help='windows per batch (default: 64)')
    p.add_argument('--window', type=_window, default=None,
                   help='characters per training window, overlapping by half (default: 50)')
    p.add_argument('--lr', type=float, default=None, help='Adam learning rate (default: 0.0003)')
    p.add_argument('--lr-decay', type=float, default=None, metavar='RATE',
                   help='multiply the learning rate by RATE every --decay-steps steps '
                        '(tf.train.exponential_decay, staircase) (default: no decay)')
    p.add_argument('--decay-steps', type=_positive_int, default=1000,
                   help='steps per --lr-decay')
    p.add_argument('--clip', type=float, default=None, metavar='NORM',
                   help='clip gradients to this global norm (default: no clipping)')
    p.add_argument('--fused', action='store_true',
                   help='TF1 only: GRU layers with the fused GRUBlockCellV2 kernel (faster, '
                        'same model and checkpoints as without it)')
    p.add_argument('--keep-prob', type=_probability, default=1.0,
                   help='DropoutWrapper output keep probability while training (1: no dropout)')
    p.add_argument('--temperature', type=_positive_float, default=None,
                   help='sampling temperature (default: 1.5)')
    p.add_argument('--sampling', choices=['lecture', 'softmax'], default='lecture',
                   help='lecture: multinomial over exp(logits / T), the lecture\'s formula, '
                        'much sharper than its temperature suggests; softmax: standard '
                        'multinomial over logits / T')
    p.add_argument('--skip-step', type=_positive_int, default=None,
                   help='print the loss every N steps (default: 1, as the lecture)')
    p.add_argument('--sample-every', type=_non_negative_int, default=None,
                   help='print generated samples every N steps, 0: never (default: 100)')
    p.add_argument('--eval-every', type=_positive_int, default=None,
                   help='validation loss, latest and best checkpoints every N steps '
                        '(default: 100)')
    p.add_argument('--eval-batches', type=_non_negative_int, default=None,
                   help='validation batches per evaluation, 0: all (default: 20)')
    p.add_argument('--summary-every', type=_positive_int, default=None,
                   help='TensorBoard training scalars every N steps (default: 10)')
    p.add_argument('--val-frac', type=_fraction, default=0.05,
                   help='fraction of the lines held out for the validation loss')
    p.add_argument('--seed', type=int, default=0,
                   help='random seed: initialisation, validation split, data order, sampling')
    p.add_argument('--checkpoint-dir', default='checkpoints', help='checkpoints root')
    p.add_argument('--logdir', default='logdir', help='TensorBoard events root')
    p.add_argument('--threads', type=_non_negative_int, default=0,
                   help='TensorFlow intra- and inter-op threads, 0: TensorFlow decides')
    p.add_argument('--sample', action='store_true',
                   help='generate from the latest checkpoint and exit, no training')
    p.add_argument('--prime', action='append', default=None, metavar='TEXT',
                   help='with --sample: seed text, repeatable (default: the lecture\'s seeds)')
    p.add_argument('-n', '--length', type=_positive_int, default=None,
                   help='characters to generate after each seed (default: 200)')
    return p.parse_args(argv)


def _positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError('must be a positive integer, not {}'.format(text))
    return value


def _non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError('must be 0 or more, not {}'.format(text))
    return value


def _window(text):
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError('must be 2 or more, not {}'.format(text))
    return value


def _positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError('must be positive, not {}'.format(text))
    return value


def _probability(text):
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError('must be in (0, 1], not {}'.format(text))
    return value


def _fraction(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError('must be in [0, 1), not {}'.format(text))
    return value


def _int_list(text):
    try:
        sizes = [int(s) for s in text.split(',')]
    except ValueError:
        raise argparse.ArgumentTypeError('expected sizes like 128,256, not {}'.format(text))
    if not sizes or min(sizes) <= 0:
        raise argparse.ArgumentTypeError('expected positive sizes like 128,256, not {}'.format(text))
    return sizes


# ---------------------------------------------------------------------------
# Data: encode and chunk every line once; shuffle the lines each pass.
# ---------------------------------------------------------------------------

def auto_vocab(lines):
    """Every character of the lines, sorted."""
    return ''.join(sorted(set(''.join(lines))))


class Corpus(object):
    """The lines of a text file as id windows, split into training and validation lines."""

    def __init__(self, lines, vocab, window, val_frac, seed, name='the file'):
        self.vocab = vocab
        self.dropped = collections.Counter()
        encoded = [utils.vocab_encode(line, vocab, self.dropped) for line in lines]
        self.lines = sum(1 for line in lines if line)
        self.chars = sum(len(line) for line in lines)
        self.kept = sum(len(ids) for ids in encoded)
        if not self.kept:
            raise UserError('no character of {} is in the vocabulary ({} characters); try '
                            '--vocab auto'.format(name, len(vocab)))
        usable = [ids for ids in encoded if len(ids) >= 2]
        if not usable:
            raise UserError('no line of {} has two or more vocabulary characters: nothing to '
                            'predict'.format(name))
        # Held-out lines for the validation loss: the same ones for a given --seed.
        order = np.random.RandomState(seed).permutation(len(usable))
        n_val = int(round(val_frac * len(usable)))
        if val_frac > 0 and len(usable) >= 2:
            n_val = min(max(n_val, 1), len(usable) - 1)
        self.train = Windows([usable[i] for i in order[n_val:]], window)
        self.val = Windows([usable[i] for i in order[:n_val]], window)

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


class Windows(object):
    """All windows of a list of encoded lines, as one int32 array, and where each line's start."""

    def __init__(self, encoded_lines, window):
        chunks, starts = [], [0]
        for ids in encoded_lines:
            chunks.extend(utils.chunk_ids(ids, window, window // 2))
            starts.append(len(chunks))
        self.array = np.array(chunks, np.int32).reshape(-1, window)
        self.starts = np.array(starts)
        self.n_lines = len(encoded_lines)

    def __len__(self):
        return len(self.array)

    def batches(self, batch_size, rng):
        """Endless batches, the lines reshuffled each pass as the lecture's read_data."""
        sizes = np.diff(self.starts)
        pending = np.zeros(0, np.int64)
        while True:
            while len(pending) < batch_size:
                lines = rng.permutation(self.n_lines)
                # The window indices of the lines in shuffled order, each line's in order.
                counts = sizes[lines]
                firsts = np.repeat(self.starts[lines] - np.cumsum(counts) + counts, counts)
                pending = np.concatenate([pending, firsts + np.arange(counts.sum())])
            yield self.array[pending[:batch_size]]
            pending = pending[batch_size:]

    def fixed_batches(self, batch_size, limit=0):
        """The first `limit` batches (0: all), always the same: for comparable validation losses."""
        stop = len(self.array) if not limit else min(len(self.array), limit * batch_size)
        return [self.array[i:i + batch_size] for i in range(0, stop, batch_size)]


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
# Model: the lecture's CharRNN.
# ---------------------------------------------------------------------------

def sample_ids(logits, temp, sampling):
    """One id per row of logits [batch, len(vocab)]."""
    if sampling == 'lecture':
        # The lecture's "Maxwell-Boltzmann" sampling: exp(logits / temp) taken as logits,
        # i.e. probabilities proportional to exp(exp(logits / temp)).
        draws = tf.multinomial(tf.exp(logits / temp), 1)
    else:
        draws = tf.multinomial(logits / temp, 1)
    return tf.cast(draws[:, 0], tf.int32) + 1   # Fix: column k is id k + 1 (0 is padding)


class CharRNN(object):
    def __init__(self, vocab, hidden_sizes=(128, 256), lr=0.0003, lr_decay=None,
                 decay_steps=1000, clip=None, keep_prob=1.0, temperature=1.5,
                 len_generated=200, sampling='lecture', fused=False):
        if fused and not utils.TF1:
            raise UserError(FUSED_NEEDS_TF1)
        self.vocab = vocab
        self.fused = fused
        self.seq = tf.placeholder(tf.int32, [None, None], name='seq')
        # placeholder_with_default: the lecture's constant, which --sample can change.
        self.temp = tf.placeholder_with_default(float(temperature), [], name='temperature')
        self.hidden_sizes = list(hidden_sizes)
        self.lr = lr
        self.lr_decay = lr_decay
        self.decay_steps = decay_steps
        self.clip = clip
        self.use_dropout = keep_prob < 1
        self.keep_prob = tf.placeholder_with_default(1.0, [], name='keep_prob')  # 1 but in training
        self.len_generated = tf.placeholder_with_default(len_generated, [], name='len_generated')
        self.sampling = sampling
        self.gstep = tf.Variable(0, dtype=tf.int32, trainable=False, name='global_step')
        # Saved with the weights, so a resumed run keeps its best checkpoint.
        self.best_val_loss = tf.Variable(float('inf'), trainable=False, name='best_val_loss')

    def gru_cell(self, size):
        """GRUCell, or with --fused the GRUBlockCellV2 kernel: the same math and, named
        'gru_cell', the same variables (gates/kernel, gates/bias, candidate/...)."""
        if self.fused:
            return rnn.GRUBlockCellV2(size, name='gru_cell')
        return rnn.GRUCell(size)

    def create_rnn(self, seq):
        layers = [self.gru_cell(size) for size in self.hidden_sizes]
        if self.use_dropout:
            layers = [rnn.DropoutWrapper(cell, output_keep_prob=self.keep_prob) for cell in layers]
        self.cells = cells = rnn.MultiRNNCell(layers)
        batch = tf.shape(seq)[0]
        zero_states = cells.zero_state(batch, dtype=tf.float32)
        self.in_state = tuple([tf.placeholder_with_default(state, [None, state.shape[1]])
                               for state in zero_states])
        # this line to calculate the real length of seq
        # all seq are padded to be of the same length, which is num_steps
        self.length = tf.reduce_sum(tf.reduce_max(tf.sign(seq), 2), 1)
        self.output, self.out_state = tf.nn.dynamic_rnn(cells, seq, self.length, self.in_state)

    def create_model(self):
        # Fix: ids run 1..len(vocab) and 0 is padding; one_hot(seq, len(vocab)) gave the last
        # character no column and padding a real one. Id i sets column i - 1, padding none.
        self.one_hot = seq = tf.one_hot(self.seq - 1, len(self.vocab))
        self.create_rnn(seq)
        self.logits = tf.layers.dense(self.output, len(self.vocab), None, name='dense')
        # Padding labels are all zeros, so padding adds nothing to the loss.
        loss = tf.nn.softmax_cross_entropy_with_logits(logits=self.logits[:, :-1],
                                                       labels=seq[:, 1:])
        self.loss = tf.reduce_sum(loss)
        # Per real character, so runs with other batch sizes and windows compare.
        self.num_targets = tf.reduce_sum(seq[:, 1:])
        self.loss_per_char = self.loss / tf.maximum(self.num_targets, 1.0)
        # sample the next character from Maxwell-Boltzmann Distribution
        # with temperature temp. It works equally well without tf.exp
        # (It does not: with tf.exp it is far sharper; see sample_ids and --sampling.)
        self.sample = sample_ids(self.logits[:, -1], self.temp, self.sampling)
        if self.lr_decay:
            self.learning_rate = tf.train.exponential_decay(
                self.lr, self.gstep, self.decay_steps, self.lr_decay, staircase=True)
        else:
            self.learning_rate = tf.constant(self.lr)
        grads_and_vars, self.grad_norm = utils.clip_gradients(
            self.loss, tf.trainable_variables(), self.clip)
        grads_and_vars = utils.check_numerics(grads_and_vars)
        self.opt = tf.train.AdamOptimizer(self.learning_rate).apply_gradients(
            grads_and_vars, global_step=self.gstep)
        self.create_generator()

    def create_generator(self):
        """self.generated [batch, len_generated]: ids drawn after each row of self.seq.

        Fix: each seed primes the state whole (the lecture fed only its last character),
        seeds of different lengths through dynamic_rnn's sequence lengths. The characters
        are then drawn inside the graph (tf.while_loop), with the same cells, dense layer
        and distribution as online_infer, so one session call generates everything.
        """
        batch = tf.shape(self.seq)[0]
        last = tf.cast(self.length, tf.int32) - 1
        last_logits = tf.gather_nd(self.logits, tf.stack([tf.range(batch), last], axis=1))
        first = sample_ids(last_logits, self.temp, self.sampling)
        ids = tf.TensorArray(tf.int32, size=self.len_generated).write(0, first)

        def step(i, previous, state, ids):
            output, state = self.cells(tf.one_hot(previous - 1, len(self.vocab)), state)
            logits = tf.layers.dense(output, len(self.vocab), None, name='dense', reuse=True)
            current = sample_ids(logits, self.temp, self.sampling)
            return i + 1, current, state, ids.write(i, current)

        _, _, _, ids = tf.while_loop(lambda i, *_: i < self.len_generated, step,
                                     [tf.constant(1), first, self.out_state, ids],
                                     name='generate')
        self.generated = tf.transpose(ids.stack())

    def online_infer(self, sess, seeds=SEEDS, length=200, temperature=None):
        """The lecture's generator: one session call per character. Returns the sentences.

        Kept to compare against generate(); draws from the same distribution. Fix: the
        first call primes the state with the whole seed, not its last character.
        """
        sentences = []
        for seed in seeds:
            sentence = seed
            state = None
            for _ in range(length):
                if state is None:
                    batch = [utils.vocab_encode(sentence, self.vocab)]
                else:
                    batch = [utils.vocab_encode(sentence[-1], self.vocab)]
                feed = {self.seq: batch}
                if temperature is not None:
                    feed[self.temp] = temperature
                if state is not None:  # for the first decoder step, the state is None
                    for i in range(len(state)):
                        feed.update({self.in_state[i]: state[i]})
                index, state = sess.run([self.sample, self.out_state], feed)
                sentence += utils.vocab_decode(index, self.vocab)
            sentences.append(sentence)
        return sentences

    def generate(self, sess, seeds=SEEDS, length=200, temperature=None):
        """Each seed followed by `length` generated characters, in one session call.

        Every seed must have at least one vocabulary character (see clean_primes).
        """
        rows = [utils.vocab_encode(seed, self.vocab) for seed in seeds]
        if not all(rows):
            raise ValueError('a seed has no vocabulary character: {!r}'.format(seeds))
        feed = {self.seq: pad(rows), self.len_generated: length}
        if temperature is not None:
            feed[self.temp] = temperature
        generated = sess.run(self.generated, feed)
        return [seed + utils.vocab_decode(ids, self.vocab) for seed, ids in zip(seeds, generated)]

    def prime(self, sess, seeds):
        """The state after each seed (a tuple of [len(seeds), size] arrays, one per layer)."""
        rows = [utils.vocab_encode(seed, self.vocab) for seed in seeds]
        return sess.run(self.out_state, {self.seq: pad(rows)})


def build_model(vocab, hidden_sizes, args, cfg):
    """A CharRNN in the default graph (make a new one: `with tf.Graph().as_default():`)."""
    tf.set_random_seed(args.seed)
    model = CharRNN(vocab, hidden_sizes, lr=cfg.lr, lr_decay=args.lr_decay,
                    decay_steps=args.decay_steps, clip=args.clip, keep_prob=args.keep_prob,
                    temperature=cfg.temperature, len_generated=cfg.len_generated,
                    sampling=args.sampling, fused=args.fused)
    model.create_model()
    return model


# ---------------------------------------------------------------------------
# Checkpoints: latest and best, with the vocabulary and model shape in config.json.
# ---------------------------------------------------------------------------

def read_stored_config(model_dir):
    """The model_dir's config.json as a dict, or None when there is none."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            stored = json.load(f)
        vocab, sizes = stored['vocab'], stored['hidden_sizes']
        if not (isinstance(vocab, str) and vocab and isinstance(sizes, list) and sizes
                and all(isinstance(n, int) and n > 0 for n in sizes)):
            raise ValueError('bad vocab or hidden_sizes')
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError('{} is unreadable ({}); it holds the checkpoint\'s vocabulary and '
                        'model shape'.format(path, e))
    return stored


def write_stored_config(model_dir, stored):
    """config.json, atomically."""
    utils.safe_mkdir(model_dir)
    path = os.path.join(model_dir, CONFIG_FILE)
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(stored, f, ensure_ascii=False, indent=1)
        f.write('\n')
    os.replace(tmp, path)


def latest_checkpoint(model_dir):
    """The latest checkpoint's path prefix, None if there is none; UserError if unreadable."""
    state_file = os.path.join(model_dir, 'checkpoint')
    try:
        path = tf.train.latest_checkpoint(model_dir)
    except (tf.errors.OpError, ValueError) as e:
        path, reason = None, _first_line(e)
    else:
        reason = 'corrupt, or naming missing files'
    # TensorFlow ignores a bad state file: training would start over and overwrite.
    if path is None and glob.glob(os.path.join(model_dir, 'char-rnn-*.index')):
        raise UserError('{} has checkpoints but its state file {} is unreadable ({})'.format(
            model_dir, state_file, reason))
    return path


def restore(sess, saver, path):
    """saver.restore after checking that the checkpoint holds this model's variables."""
    try:
        shapes = dict(tf.train.list_variables(path))
    except (tf.errors.OpError, ValueError) as e:
        raise UserError('checkpoint {} is corrupt or unreadable ({})'.format(path, _first_line(e)))
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
        raise UserError('checkpoint {} is corrupt or unreadable ({})'.format(path, _first_line(e)))


def _first_line(error):
    text = getattr(error, 'message', None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def resolve_shape(args, stored, model_dir, data_lines=None):
    """(vocab, vocab_source, hidden_sizes): the checkpoint's when there is one, else the flags'.

    Flags given explicitly must agree with the checkpoint: one clear error otherwise.
    """
    asked_sizes = args.hidden_sizes or (CONFIGS[args.config].hidden_sizes if args.config else None)
    if stored is not None:
        where = os.path.join(model_dir, CONFIG_FILE)
        if asked_sizes and list(asked_sizes) != stored['hidden_sizes']:
            raise UserError('the checkpoint in {} has hidden sizes {}, this run asks for {}: '
                            'use another --model or --checkpoint-dir'.format(
                                model_dir, stored['hidden_sizes'], list(asked_sizes)))
        source = stored.get('vocab_source', 'trump' if stored['vocab'] == TRUMP_VOCAB else 'auto')
        if args.vocab and (args.vocab != source
                           or (args.vocab == 'trump' and stored['vocab'] != TRUMP_VOCAB)):
            raise UserError('the checkpoint in {} has a different vocabulary (--vocab {}, {} '
                            'characters, see {}): use another --model or --checkpoint-dir'.format(
                                model_dir, source, len(stored['vocab']), where))
        return stored['vocab'], source, stored['hidden_sizes']
    source = args.vocab or 'trump'
    vocab = TRUMP_VOCAB if source == 'trump' else auto_vocab(data_lines or [])
    return vocab, source, list(asked_sizes or LectureConfig.hidden_sizes)


# ---------------------------------------------------------------------------
# Training.
# ---------------------------------------------------------------------------

def read_corpus_lines(path):
    """read_lines, downloading the default data file when it is missing."""
    if os.path.normpath(path) == os.path.normpath(DEFAULT_DATA) and not os.path.exists(path):
        print('{} is missing: downloading {}'.format(path, DATA_URL), file=sys.stderr)
        utils.download(DATA_URL, path, DATA_SHA256)
    return utils.read_lines(path)


def clean_primes(primes, vocab):
    """The primes without their characters outside vocab (with a warning line); none may be left empty."""
    cleaned = []
    for prime in primes:
        kept = ''.join(ch for ch in prime if ch in vocab)
        if not kept:
            raise UserError('--prime {!r}: none of its characters is in the vocabulary'.format(prime))
        if kept != prime:
            dropped = ''.join(sorted(set(prime) - set(vocab)))
            print('warning: --prime {!r}: dropped {!r}, not in the vocabulary'.format(
                prime, dropped), file=sys.stderr)
        cleaned.append(kept)
    return cleaned


def default_seeds(vocab):
    """The lecture's seeds in this vocabulary: their other characters dropped, empty ones skipped."""
    seeds = [s for s in (''.join(ch for ch in seed if ch in vocab) for seed in SEEDS) if s]
    return seeds or [vocab[0]]


def evaluate(sess, model, batches):
    """Loss per real character (nats) over the batches."""
    total, count = 0.0, 0
    for batch in batches:
        total += sess.run(model.loss, {model.seq: batch})
        count += num_targets(batch)
    return total / max(count, 1)


def scalar_summary(**values):
    return tf.Summary(value=[tf.Summary.Value(tag=tag, simple_value=float(value))
                             for tag, value in values.items()])


def save(saver, sess, path, step):
    """saver.save with Ctrl-C and SIGTERM held off, so a checkpoint is never half written."""
    with signal_handlers({signal.SIGINT: signal.SIG_IGN, signal.SIGTERM: signal.SIG_IGN}):
        return saver.save(sess, path, global_step=step)


@contextlib.contextmanager
def signal_handlers(handlers):
    """Context: {signal: handler} installed (in the main thread only), then the previous back."""
    previous = {}
    try:
        for signum, handler in handlers.items():
            try:
                previous[signum] = signal.signal(signum, handler)
            except ValueError:   # not the main thread
                pass
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _interrupt(signum, frame):
    raise KeyboardInterrupt('signal {}'.format(signum))


class Trainer(object):
    """The training loop and what it writes: the lecture's log lines, samples, events, checkpoints."""

    def __init__(self, model, cfg, args, corpus, model_dir):
        self.model, self.cfg, self.args = model, cfg, args
        self.model_dir = model_dir
        self.batches = corpus.train
        self.val_batches = corpus.val.fixed_batches(cfg.batch_size, cfg.eval_batches)
        self.seeds = default_seeds(model.vocab)
        self.samples_text = tf.placeholder(tf.string, [], name='samples_text')
        self.text_summary = tf.summary.text('samples', self.samples_text)
        self.train_summary = tf.summary.merge([
            tf.summary.scalar('loss_per_char', model.loss_per_char),
            tf.summary.scalar('loss', model.loss),
            tf.summary.scalar('learning_rate', model.learning_rate),
            tf.summary.scalar('gradient_global_norm', model.grad_norm)])
        self.new_best = tf.placeholder(tf.float32, [], name='new_best')
        self.set_best = tf.assign(model.best_val_loss, self.new_best)
        # Relative paths in the state files: a checkpoint folder can be moved or copied.
        self.saver = tf.train.Saver(max_to_keep=3, save_relative_paths=True)
        self.best_saver = tf.train.Saver(max_to_keep=1, save_relative_paths=True)
        self.checkpoint_name = os.path.join(model_dir, 'char-rnn')
        self.best_name = os.path.join(model_dir, 'best', 'char-rnn')
        # A Saver only rotates the files it knows: tell it those of earlier runs.
        for saver, name in ((self.saver, self.checkpoint_name), (self.best_saver, self.best_name)):
            folder = os.path.dirname(name)
            state = tf.train.get_checkpoint_state(folder) if os.path.isdir(folder) else None
            if state:
                saver.recover_last_checkpoints(state.all_model_checkpoint_paths)

    def train(self, sess):
        """Trains until cfg.steps (0: Ctrl-C or SIGTERM, which save first). Returns 0."""
        model, cfg = self.model, self.cfg
        self.sess = sess
        self.step, self.best = sess.run([model.gstep, model.best_val_loss])
        if cfg.steps and self.step >= cfg.steps:
            print('step {} already reached (--steps {}): nothing to train'.format(
                self.step, cfg.steps))
            return 0
        print('training {} ({}, TensorFlow {}): hidden sizes {}, until step {}'.format(
            self.args.model, utils.STACK, tf.version.VERSION, model.hidden_sizes,
            cfg.steps or 'Ctrl-C'))
        events = os.path.join(self.args.logdir, 'char_rnn', self.args.model)
        self.writer = tf.summary.FileWriter(os.path.join(events, 'train'), sess.graph)
        self.val_writer = tf.summary.FileWriter(os.path.join(events, 'val'))
        if self.step:   # TensorBoard drops what an earlier run wrote after the checkpoint's step
            for writer in (self.writer, self.val_writer):
                writer.add_session_log(tf.SessionLog(status=tf.SessionLog.START), self.step + 1)
        # SIGTERM (kill, job schedulers) stops training as Ctrl-C does: save, then exit.
        with signal_handlers({signal.SIGTERM: _interrupt}):
            try:
                self.loop()
            except KeyboardInterrupt:
                self.step = sess.run(model.gstep)   # the interrupted sess.run may have finished
                print('interrupted at step {}: saved {}'.format(self.step, self.save_latest()))
            else:
                best = '' if math.isinf(self.best) else ', best validation loss {:.4f} ' \
                    'nats/char ({})'.format(self.best, tf.train.latest_checkpoint(
                        os.path.dirname(self.best_name)))
                print('done at step {}: latest checkpoint {}{}'.format(
                    self.step, tf.train.latest_checkpoint(self.model_dir), best))
            finally:
                self.writer.close()
                self.val_writer.close()
        return 0

    def loop(self):
        model, cfg, sess = self.model, self.cfg, self.sess
        batches = self.batches.batches(cfg.batch_size, np.random.RandomState([self.args.seed,
                                                                              int(self.step)]))
        train_feed = {model.keep_prob: self.args.keep_prob} if model.use_dropout else {}
        start = time.time()
        chars, train_time, loss_sum = 0, 0.0, 0.0   # since the last log line
        while not cfg.steps or self.step < cfg.steps:
            t = time.time()
            batch = next(batches)
            iteration = self.step
            feed = dict(train_feed)
            feed[model.seq] = batch
            summarize = (iteration + 1) % cfg.summary_every == 0
            fetches = [model.loss, model.opt] + ([self.train_summary] if summarize else [])
            try:
                results = sess.run(fetches, feed)
            except tf.errors.InvalidArgumentError as e:
                if 'check_numerics' not in str(e):
                    raise
                raise UserError('NaN or Inf at step {}: {}; nothing saved, the latest checkpoint '
                                'is {}'.format(iteration, _first_line(e),
                                               tf.train.latest_checkpoint(self.model_dir)))
            batch_loss = results[0]
            self.step = iteration + 1
            chars += num_targets(batch)
            loss_sum += batch_loss
            train_time += time.time() - t
            if summarize:
                self.writer.add_summary(results[2], self.step)
                self.writer.add_summary(scalar_summary(chars_per_sec=chars / train_time), self.step)
            if (iteration + 1) % cfg.skip_step == 0:
                # The lecture's two lines, then the loss per real character and the throughput.
                per_char = loss_sum / max(chars, 1)
                # One write, newline included: Ctrl-C cannot land between text and newline.
                print('Iter {}. \n    Loss {:.3f}. Time {:.3f}. Per char {:.4f} nats ({:.4f} bits), '
                      '{:,.0f} chars/s\n'.format(iteration, batch_loss, time.time() - start,
                                                 per_char, per_char / math.log(2),
                                                 chars / max(train_time, 1e-9)),
                      end='', flush=True)
                chars, train_time, loss_sum = 0, 0.0, 0.0
                start = time.time()
            if cfg.sample_every and self.step % cfg.sample_every == 0:
                self.print_samples()
            if self.step % cfg.eval_every == 0 or self.step == cfg.steps:
                self.validate()
                self.save_latest()
                self.writer.flush()
                self.val_writer.flush()

    def print_samples(self):
        sentences = self.model.generate(self.sess, self.seeds, self.cfg.len_generated)
        for sentence in sentences:
            print('\t' + sentence)
        # TensorBoard renders Markdown: indented, the samples show as they are.
        text = '\n'.join('    ' + sentence for sentence in sentences)
        self.writer.add_summary(self.sess.run(self.text_summary, {self.samples_text: text}),
                                self.step)

    def validate(self):
        """Validation loss per character; the best checkpoint when it is the lowest so far."""
        if not self.val_batches:
            return
        val_loss = evaluate(self.sess, self.model, self.val_batches)
        self.val_writer.add_summary(scalar_summary(loss_per_char=val_loss), self.step)
        improved = val_loss < self.best
        if improved:
            self.best = val_loss
            self.sess.run(self.set_best, {self.new_best: val_loss})
            save(self.best_saver, self.sess, self.best_name, self.step)
        print('    Validation loss {:.4f} nats/char ({:.4f} bits/char){}'.format(
            val_loss, val_loss / math.log(2),
            ', best so far: saved' if improved else ', best {:.4f}'.format(self.best)))

    def save_latest(self):
        return save(self.saver, self.sess, self.checkpoint_name, self.step)


def train(args, cfg):
    model_dir = os.path.join(args.checkpoint_dir, args.model)
    stored = read_stored_config(model_dir)
    ckpt = latest_checkpoint(model_dir)
    if ckpt and stored is None:
        raise UserError('{} has a checkpoint but no {} (vocabulary and model shape): not a '
                        'checkpoint of this script'.format(model_dir, CONFIG_FILE))
    lines = read_corpus_lines(args.data)
    vocab, vocab_source, hidden_sizes = resolve_shape(args, stored, model_dir, lines)
    corpus = Corpus(lines, vocab, cfg.window, args.val_frac, args.seed, args.data)
    print(corpus.describe(args.data, vocab_source))
    print('{:,} training windows of {} from {:,} lines, {:,} validation windows from {:,} '
          'lines'.format(len(corpus.train), cfg.window, corpus.train.n_lines, len(corpus.val),
                         corpus.val.n_lines))
    with tf.Graph().as_default():
        model = build_model(vocab, hidden_sizes, args, cfg)
        trainer = Trainer(model, cfg, args, corpus, model_dir)
        with tf.Session(config=utils.session_config(args.threads)) as sess:
            sess.run(tf.global_variables_initializer())
            if ckpt:
                restore(sess, trainer.saver, ckpt)
                step, best = sess.run([model.gstep, model.best_val_loss])
                print('resumed from {} at step {}{}'.format(ckpt, step, '' if math.isinf(best)
                      else ', best validation loss {:.4f} nats/char'.format(best)))
            if stored is None:
                write_stored_config(model_dir, {
                    'format': CONFIG_FORMAT, 'vocab': vocab, 'vocab_source': vocab_source,
                    'hidden_sizes': hidden_sizes, 'data': args.data, 'seed': args.seed,
                    'val_frac': args.val_frac})
            return trainer.train(sess)


# ---------------------------------------------------------------------------
# Generation from a checkpoint.
# ---------------------------------------------------------------------------

def sample(args, cfg):
    model_dir = os.path.join(args.checkpoint_dir, args.model)
    stored = read_stored_config(model_dir)
    ckpt = latest_checkpoint(model_dir)
    if not ckpt:
        raise UserError('no checkpoint in {}: train first (python char_rnn.py --model {})'.format(
            model_dir, args.model))
    if stored is None:
        raise UserError('{} has a checkpoint but no {} (vocabulary and model shape)'.format(
            model_dir, CONFIG_FILE))
    vocab, _, hidden_sizes = resolve_shape(args, stored, model_dir)
    primes = clean_primes(args.prime, vocab) if args.prime else default_seeds(vocab)
    with tf.Graph().as_default():
        model = build_model(vocab, hidden_sizes, args, cfg)
        saver = tf.train.Saver()
        with tf.Session(config=utils.session_config(args.threads)) as sess:
            restore(sess, saver, ckpt)
            for sentence in model.generate(sess, primes, cfg.len_generated):
                print(sentence)
    return 0


def main(argv=None):
    args = parse_args(argv)
    cfg = make_config(args)
    if args.fused and not utils.TF1:
        raise UserError(FUSED_NEEDS_TF1)
    if args.sample:
        return sample(args, cfg)
    if args.prime:
        raise UserError('--prime needs --sample (training samples from the lecture\'s seeds)')
    return train(args, cfg)


if __name__ == '__main__':
    sys.exit(utils.run_main(main))
