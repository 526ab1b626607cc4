"""Character-level tweet generator: the CS20 lecture 11 CharRNN, runnable today.

A 2-layer GRU (128, 256) character model (Stanford CS20, lecture 11, examples/11_char_rnn.py)
trained on Donald Trump's tweets, that writes tweets from seed strings. The defaults are the
lecture's: its vocabulary string, one-hot input, Adam at 0.0003, batches of 64 windows of 50
characters overlapping by 25, 200 generated characters, its seeds and log lines. Its bugs are
fixed, each marked "# Fix:" here and listed in README.md; the literal sampling formula is one
flag away. Runs on TensorFlow 1.15 and, through tensorflow.compat.v1 in graph mode, on TF 2.

    python char_rnn.py                          # train to step 5000 (Ctrl-C saves, re-run resumes)
    python char_rnn.py --config ten-minutes     # the same model, the lowest loss in 10 minutes
    python char_rnn.py --sample --prime "Make America" -n 280   # generate, no training
    python char_rnn.py --stream --data code.py --model code     # any text as one stream
    python char_rnn.py --model code --evaluate test             # bits per character held out
    python char_rnn.py --graph lecture          # the lecture's dynamic_rnn graph, the same model
    tensorboard --logdir logdir

Results (the tweets, lecture settings, --seed 0; validation loss in nats per character over
20 batches of the 5% held-out lines, as the run prints it at the step given):

    | stack | step 300 | step 2000 | step 5000 |
    |-------|----------|-----------|-----------|
    | tf1   | 2.860    | 2.047     | 1.714     |
    | tf2   | 2.854    | 2.038     | 1.704     |

    python char_rnn.py --data ../shared/data/trump_tweets.txt        # `make train`, 5000 steps

The first loss is ln(87) = 4.47 nats per character, a uniform guess over the vocabulary.
Training runs a faster graph of the same model (CharRNN.fast_logits): the same variables,
loss and gradients as the lecture's graph, which the table was measured with (before the
training step's gradient fix: bench/results/gradient-fix-tf1.md). Speed: BENCHMARKS.md;
every figure: docs/results.md.
"""
from __future__ import print_function

from tf1rnn import cli   # (light) first: Ctrl-C during the heavy imports below exits quietly
cli.quiet_interrupts()

import argparse  # noqa: E402
import contextlib
import math
import os
import sys
import time

import utils
from tf1rnn import cli, decoding, distributed, export, kernels, model_dir, runs, training
from utils import rnn, tf
from tf1rnn.cli import UserError

DATA_URL = ('https://raw.githubusercontent.com/chiphuyen/stanford-tensorflow-tutorials/'
            'master/examples/data/trump_tweets.txt')
DATA_SHA256 = '5b600bae4ade78714433caf1d84f2aee40b17e0627fba4584742de5e2635e286'
DEFAULT_DATA = os.path.join('data', 'trump_tweets.txt')

# The lecture's vocabulary, verbatim: it lists the apostrophe twice (the second never gets an
# id of its own) and lacks '!' and '&'. The last two are U+27A1 (arrow) and U+1F4C8 (chart).
TRUMP_VOCAB = ("$%'()+,-./0123456789:;=?ABCDEFGHIJKLMNOPQRSTUVWXYZ"
               " '\"_abcdefghijklmnopqrstuvwxyz{|}@#\u27a1\U0001f4c8")
SEEDS = ['Hillary', 'I', 'R', 'T', '@', 'N', 'M', '.', 'G', 'A', 'W']
# --cell: the lecture's GRUCell, or the other cells every char-rnn offers (each trains on a
# fast graph of its own math, kernels.cell_stack).
CELLS = {'gru': rnn.GRUCell, 'lstm': rnn.LSTMCell, 'rnn': rnn.BasicRNNCell}


# --- Configuration: the lecture's numbers, a tiny variant for smoke tests; flags override. -------

class LectureConfig(object):
    """CharRNN.__init__'s hyperparameters, plus what the lecture did not have."""
    hidden_sizes = [128, 256]   # the lecture's two GRU layers
    batch_size = 64             # the lecture's
    lr = 0.0003                 # the lecture's Adam learning rate
    lr_decay = None             # the lecture's constant rate (a RATE per decay_steps, or cosine)
    decay_steps = 1000
    warmup = 0                  # steps of linear learning-rate warm-up
    clip = None                 # the lecture's tip, not in its code: no clipping
    window = 50                 # the lecture's num_steps ("for RNN unrolled"); overlap window // 2
    temperature = 0.9           # Fix: the lecture's 1.5 went with its sampling formula (see
                                # sample_ids). 0.9: the highest T whose samples hold no more
                                # noise than real text (bench/results/sampling-*.md)
    len_generated = 200         # the lecture's
    skip_step = 1               # the lecture logs every step
    steps = 5000                # finite, so `make train` ends (~20 min on 2 CPU cores)
    minutes = None              # or a wall-time budget: the run (and a cosine decay) ends there
    stream = False              # the lecture reads lines (--stream: the file as one text)
    cell = None                 # the lecture's GRUCell (--cell)
    sample_every = 100          # the lecture samples every step: that would dominate the run time
    eval_every = 100            # validation loss and checkpoints this often
    eval_batches = 20           # validation batches averaged per evaluation (0: all)
    summary_every = 10          # TensorBoard training scalars this often (each costs a little)
    model = 'trump_tweets'      # the default --model: checkpoints/trump_tweets


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


class TenMinutesConfig(LectureConfig):
    """The lecture's model, trained for the lowest validation loss in ten minutes on 2 CPU
    cores (bench/time_to_quality.py measured each change; docs/ten-minutes.md)."""
    batch_size = 32             # more, smaller steps: ahead of 64 (and 128) at equal time
    lr = 0.002                  # Adam's usual rate: the lecture's 0.0003 is the slowest part
    lr_decay = 'cosine'         # to a tenth of lr at `steps`: the last steps settle
    warmup = 100                # the first steps at the full rate spike the loss
    clip = 5.0                  # the loss is a sum over the batch: this bounds each step
    steps = 0                   # no step count: ten minutes of whatever machine runs it
    minutes = 10                # the budget the cosine decay ends with, all included
    eval_batches = 40           # 40 x 32: the same 1,280 validation windows as the lecture
    sample_every = 1000
    model = 'trump_tweets-ten-minutes'   # not on the lecture's checkpoints


class TenMinutesStreamConfig(TenMinutesConfig):
    """Any multi-line text read as one stream (--stream), the lowest validation loss in ten
    minutes on 2 CPU cores: probes of three minutes each on the Python standard library's
    source (bench/results/stream-probes/; docs/streams.md)."""
    stream = True
    cell = 'gru'                # 1.65 nats/char at three minutes, where an LSTM of 256, 256
                                # reached 2.55 (fewer steps a minute) and a GRU of 512 2.02
    hidden_sizes = [256]
    batch_size = 64
    window = 50                 # 1.25 against 1.36 for 100 at equal time (lr 0.004)
    lr = 0.008                  # 1.21 (0.016: 1.20, 0.004: 1.25, 0.002: 1.39): the lower
                                # of the two best, for a cosine over ten minutes, not three
    eval_every = 200            # the validation text is read whole: a few seconds each
    sample_every = 0
    model = 'stream-ten-minutes'


CONFIGS = {'lecture': LectureConfig, 'tiny': TinyConfig, 'ten-minutes': TenMinutesConfig,
           'ten-minutes-stream': TenMinutesStreamConfig}
LECTURE_TEMPERATURE = 1.5       # the lecture's self.temp, the default with --sampling lecture


def make_config(args):
    """The --config's settings with the flags given applied over them (training.configure)."""
    return training.configure(CONFIGS[args.config or 'lecture'](), args, LECTURE_TEMPERATURE)


# --- Model: the lecture's CharRNN. ---------------------------------------------------------------

class CharRNN(object):
    def __init__(self, vocab, hidden_sizes=(128, 256), lr=0.0003, lr_decay=None,
                 decay_steps=1000, warmup=0, clip=None, keep_prob=1.0, temperature=0.9,
                 len_generated=200, sampling='softmax', graph='fast', loss='masked',
                 cluster=None, top_k=0, greedy=False, cell='gru', stream=False):
        self.vocab = vocab
        self.cell = cell          # --cell: the lecture's GRUCell, or an LSTM or a plain RNN
        self.stream = stream      # --stream: windows continue the previous batch's rows
        self.cluster = cluster   # a distributed.Cluster: variables on parameter servers
        self.loss_kind = loss
        # The fast graph has no dropout, and its loss is the masked one.
        self.graph = 'lecture' if keep_prob < 1 or loss == 'lecture' else graph
        self.seq = tf.placeholder(tf.int32, [None, None], name='seq')
        # placeholder_with_default: the lecture's constant, which --sample can change.
        self.temp = tf.placeholder_with_default(float(temperature), [], name='temperature')
        self.top_k = tf.placeholder_with_default(int(top_k), [], name='top_k')
        self.greedy = tf.placeholder_with_default(bool(greedy), [], name='greedy')
        self.hidden_sizes = list(hidden_sizes)
        self.lr, self.lr_decay, self.decay_steps = lr, lr_decay, decay_steps
        self.warmup, self.clip = warmup, clip
        self.use_dropout = keep_prob < 1
        self.keep_prob = tf.placeholder_with_default(1.0, [], name='keep_prob')  # 1 but in training
        self.len_generated = tf.placeholder_with_default(len_generated, [], name='len_generated')
        self.sampling = sampling
        self.gstep = tf.Variable(0, dtype=tf.int32, trainable=False, name='global_step')
        # Saved with the weights, so a resumed run keeps its best checkpoint.
        self.best_val_loss = tf.Variable(float('inf'), trainable=False, name='best_val_loss')

    def create_rnn(self, seq):
        self.layers = layers = [CELLS[self.cell](size) for size in self.hidden_sizes]
        if self.use_dropout:
            layers = [rnn.DropoutWrapper(cell, output_keep_prob=self.keep_prob) for cell in layers]
        self.cells = cells = rnn.MultiRNNCell(layers)
        batch = tf.shape(seq)[0]
        zero_states = cells.zero_state(batch, dtype=tf.float32)
        self.in_state = tf.nest.map_structure(
            lambda zero: tf.placeholder_with_default(zero, [None, zero.shape[1]]), zero_states)
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
        # Fix: the lecture's softmax_cross_entropy_with_logits(labels=seq[:, 1:]) gives a
        # padded target (an all-zero label row) a loss of 0 but a gradient of
        # softmax(logits). The loss is masked: padding adds nothing, not even gradients.
        if self.graph == 'fast':   # time-major: [window - 1, batch]
            targets, logits = tf.transpose(self.seq)[1:], self.fast_logits()
        else:
            targets, logits = self.seq[:, 1:], self.logits[:, :-1]
        mask = tf.cast(targets > 0, tf.float32)
        if self.loss_kind == 'lecture':   # --loss lecture: the literal loss, to reproduce it
            self.loss = tf.reduce_sum(tf.nn.softmax_cross_entropy_with_logits_v2(
                labels=seq[:, 1:], logits=logits))
        else:
            self.loss = tf.reduce_sum(mask * tf.nn.sparse_softmax_cross_entropy_with_logits(
                logits=logits, labels=tf.maximum(targets - 1, 0)))
        # Per real character, so runs with other batch sizes and windows compare.
        self.num_targets = tf.reduce_sum(mask)
        self.loss_per_char = self.loss / tf.maximum(self.num_targets, 1.0)
        # sample the next character from Maxwell-Boltzmann Distribution
        # with temperature temp. It works equally well without tf.exp
        # (It does not: exp(logits / temp) taken as logits; see sample_ids, lecture_logits.)
        self.sample = decoding.sample_ids(self.logits[:, -1], self.temp, self.sampling,
                                          self.top_k, self.greedy)
        # --minutes: the fraction of the budget spent, fed each step (the cosine follows it).
        self.progress = tf.placeholder_with_default(0.0, [], name='progress')
        self.learning_rate = utils.learning_rate(
            self.lr, self.gstep, self.lr_decay, self.decay_steps, self.warmup,
            self.progress if self.lr_decay == 'cosine' and not self.decay_steps else None)
        grads_and_vars, self.grad_norm = utils.clip_gradients(
            self.loss, tf.trainable_variables(), self.clip)
        self.grads_and_vars = utils.check_numerics(grads_and_vars)   # what the update applies
        # Fix: the lecture's minimize() let the update of one variable run while the backward
        # pass still read it; utils.apply_gradients applies gradients all computed first.
        self.opt = utils.apply_gradients(tf.train.AdamOptimizer(self.learning_rate),
                                         self.grads_and_vars, self.gstep, self.cluster)
        # Fix: each seed primes the state whole (the lecture fed only its last character);
        # the characters are drawn in the graph, one session call for all (decoding.generator).
        self.generated = decoding.generator(self)

    def fast_logits(self):
        """The logits of every window position but the last, [window - 1, batch, vocab],
        by the same cells and dense layer as self.logits, faster (kernels.fast_stack: the
        GRU and RNN layers in one loop, each LSTM layer one BlockLSTM op).

        Layer 1's input projection of a one-hot id is a gather of its kernel's rows (id 0,
        padding: zeros). Positions after a row's end are not skipped: they cannot change the
        loss before them, and their own is masked. self.final_state: each layer's state after
        the inputs, which --stream feeds as the next batch's in_state.
        """
        ids = tf.transpose(self.seq)
        # A stream's window ends with the next window's first input: its state is wanted.
        top, self.final_state = kernels.fast_stack(
            self.layers, kernels.OneHot(ids[:-1] if self.stream else ids, len(self.vocab)),
            list(self.in_state))
        return tf.layers.dense(top if self.stream else top[:-1], len(self.vocab), None,
                               name='dense', reuse=True)

    def step(self, ids, state):
        """One step of the cells and the dense layer: (logits, state) after the ids [batch]."""
        output, state = self.cells(tf.one_hot(ids - 1, len(self.vocab)), state)
        return tf.layers.dense(output, len(self.vocab), None, name='dense', reuse=True), state

    def generate(self, sess, seeds=SEEDS, length=200, temperature=None, end=''):
        """Each seed followed by `length` generated characters, in one session call, or up
        to the first `end` (the data's end-of-line marker) among them (decoding.generate)."""
        return decoding.generate(sess, self, seeds, length, temperature, end)


def build_model(vocab, hidden_sizes, args, cfg, cluster=None):
    """A CharRNN in the default graph (make a new one: `with tf.Graph().as_default():`)."""
    if args.stream and (args.graph == 'lecture' or args.keep_prob < 1 or args.loss == 'lecture'):
        raise UserError('--stream trains on the fast graph: --graph lecture, --loss lecture and '
                        '--keep-prob below 1 are line mode\'s')
    tf.set_random_seed(args.seed)
    model = CharRNN(vocab, hidden_sizes, cfg.lr, cfg.lr_decay, cfg.decay_steps, cfg.warmup,
                    cfg.clip, args.keep_prob, cfg.temperature, cfg.len_generated, args.sampling,
                    args.graph, args.loss, cluster, args.top_k, args.greedy, args.cell or 'gru',
                    bool(args.stream))
    model.create_model()
    return model


# --- Training: the lecture's loop (the run around it: tf1rnn/training.py). -----------------------

class Trainer(training.Trainer):
    """The training loop: the lecture's log lines, samples, validation and checkpoints."""

    def loop(self):
        model, cfg, sess = self.model, self.cfg, self.sess
        # Fix: the batch order is a function of the position alone (the lecture's read_data
        # reshuffled at every start): a resumed run draws what the uninterrupted one drew.
        batches = self.draw(self.cluster.own_steps(self.step) if self.cluster else self.step)
        self.state = self.carried_state()   # --stream: the state the last checkpoint saved
        train_feed = {model.keep_prob: self.args.keep_prob} if model.use_dropout else {}
        start, meter = time.time(), training.Meter()   # (since the last log line)
        self.own_steps = 0
        ends = not (self.cluster and self.cluster.follows_chief)   # (else when the chief stops)
        out_of_time = ends and self.budget.over()
        while (not cfg.steps or self.step < cfg.steps or not ends) and not self.stop \
                and not out_of_time:
            t = time.time()
            batch, reset = next(batches)
            iteration = self.step
            feed = training.feed_state(model, None if reset else self.state, dict(train_feed))
            feed[model.seq] = batch
            if cfg.minutes:
                feed[model.progress] = self.budget.progress()
            summarize = (iteration + 1) % cfg.summary_every == 0
            fetches = [model.loss, model.opt] + ([model.final_state] if model.stream else []) \
                + ([self.train_summary] if summarize else [])
            results = training.run_step(sess, fetches, feed, iteration, self.cluster, self.stop,
                                        self.checkpoints.model_dir)
            if results is None:   # a cluster's step, stopped while waiting for the others
                break
            batch_loss = results[0]
            out_of_time = ends and self.budget.over()
            self.state = results[2] if model.stream else None
            self.step = results[1] if self.cluster else iteration + 1   # others' steps count
            self.own_steps += 1
            meter.add(batch, batch_loss, time.time() - t)
            if summarize:
                self.events.train.add_summary(results[-1], self.step)
                self.events.scalars(self.events.train, self.step, chars_per_sec=meter.speed())
            if (iteration + 1) % cfg.skip_step == 0:
                # The lecture's two lines, then the loss per real character and the throughput.
                print('Iter {}. \n    Loss {:.3f}. Time {:.3f}. Per char {:.4f} nats ({:.4f} bits), '
                      '{:,.0f} chars/s\n'.format(iteration, batch_loss, time.time() - start,
                                                 meter.per_char(), meter.per_char() / math.log(2),
                                                 meter.speed()), end='', flush=True)
                start, meter = time.time(), training.Meter()
            if not self.chief:
                continue
            if cfg.sample_every and runs.passed(iteration, self.step, cfg.sample_every) \
                    and not self.stop:
                self.print_samples()
            if runs.passed(iteration, self.step, cfg.eval_every) or out_of_time or (
                    cfg.steps and self.step >= cfg.steps):
                self.validate()
                self.save_latest()
                self.events.flush()

    def print_samples(self):
        seeds, length = decoding.default_seeds(SEEDS, self.model.vocab), self.cfg.len_generated
        sentences = self.model.generate(self.sess, seeds, length, end=self.end_marker)
        for sentence in sentences:
            print('\t' + sentence)
        # TensorBoard renders Markdown: indented, the samples show as they are.
        self.events.text('samples', '\n'.join('    ' + s for s in sentences), self.step)


def train(args, cfg, cluster=None):
    if cluster and cluster.start().job == 'ps':
        return cluster.serve()
    folder = os.path.join(args.checkpoint_dir, args.model)
    with model_dir.training_run(folder, args, cfg, asked_sizes(args), LectureConfig.hidden_sizes,
                                TRUMP_VOCAB, download(args), cluster) as run:
        data = training.batches(run.text, args, cfg, cluster)
        settings = training.settings(args, cfg, run.hidden_sizes)
        print('settings: ' + ', '.join('{} {}'.format(k, v) for k, v in sorted(settings.items())))
        with tf.Graph().as_default(), distributed.cluster_device(cluster):
            model = build_model(run.vocab, run.hidden_sizes, args, cfg, cluster)
            trainer = Trainer(model, cfg, args, data, folder, run.end_marker, cluster)
            return trainer.train(run, settings)


def asked_sizes(args):
    """The hidden sizes this run asks for: --hidden-sizes, or --config's, else None."""
    return args.hidden_sizes or (CONFIGS[args.config].hidden_sizes if args.config else None)


def download(args):
    """(url, sha256) of the lecture's data when --data is its default path, else None."""
    same = os.path.normpath(args.data) == os.path.normpath(DEFAULT_DATA)
    return (DATA_URL, DATA_SHA256) if same else None


# --- Generation, evaluation and export from a checkpoint. ----------------------------------------

@contextlib.contextmanager
def restored(args, cfg):
    """--model's --checkpoint in a session of its own: (config.json, CharRNN, session, path)."""
    stored, vocab, hidden_sizes, ckpt = model_dir.trained(
        args, asked_sizes(args), LectureConfig.hidden_sizes, TRUMP_VOCAB)
    with tf.Graph().as_default():
        model = build_model(vocab, hidden_sizes, args, cfg)
        with tf.Session(config=runs.session_config(args.threads)) as sess:
            model_dir.restore(sess, ckpt, args.checkpoint)
            yield stored, model, sess, ckpt


def sample(args, cfg):
    with restored(args, cfg) as (stored, model, sess, _):
        primes = (decoding.clean_primes(args.prime, model.vocab) if args.prime
                  else decoding.default_seeds(SEEDS, model.vocab))
        end = model_dir.resolve_end_marker(args, stored)
        for sentence in model.generate(sess, primes, cfg.len_generated, end=end):
            print(sentence)
    return 0


def evaluate_text(args, cfg):
    """--evaluate: the loss of the --checkpoint on a UTF-8 file, or on the validation or
    test text of its data, in nats and bits per character (model_dir.evaluation_data)."""
    with restored(args, cfg) as (stored, model, sess, ckpt):
        name, text, batches = model_dir.evaluation_data(args.evaluate, stored, model.vocab,
                                                        cfg.batch_size, cfg.window)
        loss = training.evaluate(sess, model, batches)
    print(model_dir.evaluation_report(name, text, batches, loss, ckpt, model.stream))
    return 0


def export_model(args, cfg):
    """--export: the --checkpoint (the latest by default) as a SavedModel (tf1rnn/export.py)."""
    stored, vocab, hidden_sizes, ckpt = model_dir.trained(
        args, asked_sizes(args), LectureConfig.hidden_sizes, TRUMP_VOCAB)

    def build(seq):   # CharRNN's layers over the id rows seq: (logits, final states, one step)
        model = CharRNN(vocab, hidden_sizes, cell=args.cell)
        model.create_rnn(tf.one_hot(seq - 1, len(vocab)))
        return tf.layers.dense(model.output, len(vocab), name='dense'), model.out_state, model.step
    path = export.export_char_rnn(args.export, ckpt, vocab,
                                  model_dir.resolve_end_marker(args, stored), build,
                                  cfg.temperature, cfg.len_generated, args.threads)
    print('exported {} to {}'.format(ckpt, path))
    return 0


# --- Flags and main. -----------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Character-level RNN (CS20 lecture 11): train on a text file, or generate '
                    'from the latest checkpoint with --sample.',
        formatter_class=cli.HelpFormatter)
    add = p.add_argument
    add('--data', default=DEFAULT_DATA, help='UTF-8 text file, one example per line; the '
        'default is downloaded (sha256 checked) when missing')
    add('--model', default=None, type=cli.name, help='model name: checkpoints in '
        'CHECKPOINT_DIR/MODEL, events in LOGDIR/char_rnn/MODEL (default: trump_tweets; '
        '--config ten-minutes: trump_tweets-ten-minutes)')
    add('--config', choices=sorted(CONFIGS), default=None, help='hyperparameter set, which '
        'other flags override (ten-minutes: the lowest validation loss in ten minutes on 2 '
        'CPU cores; tiny: smoke tests) (default: lecture, or the checkpoint\'s model shape)')
    # The config's numbers (None: the config's own; make_config applies them).
    add('--steps', type=cli.non_negative_int, default=None, help='train until the global step '
        'reaches this (re-run to finish); 0: until Ctrl-C (default: 5000; tiny: 20)')
    add('--batch-size', type=cli.positive_int, default=None, help='windows per batch '
        '(default: 64)')
    add('--window', type=cli.window, default=None, help='characters per training window, '
        'overlapping by half (--stream: targets a window, each continuing the last) '
        '(default: 50)')
    add('--lr', type=cli.positive_float, default=None, help='Adam learning rate '
        '(default: 0.0003)')
    add('--graph', choices=['fast', 'lecture'], default='fast', help='fast: the GRU layers by '
        'kernels.fast_stack; lecture: MultiRNNCell in dynamic_rnn. The same model, loss, '
        'gradients and checkpoints; --keep-prob < 1 runs the lecture graph')
    add('--loss', choices=['masked', 'lecture'], default='masked', help='masked: padded '
        'targets add nothing; lecture: its softmax_cross_entropy_with_logits on one-hot '
        'labels, which gives a padded target the gradient softmax(logits) (lecture graph)')
    add('--keep-prob', type=cli.probability, default=1.0, help='DropoutWrapper output keep '
        'probability while training (1: no dropout)')
    add('--val-frac', type=cli.fraction, default=0.05, help='fraction of the lines held out '
        'for the validation loss (--stream: of the text, at its end, before the test text)')
    add('--seed', type=cli.seed, default=0, help='random seed: initialisation, validation '
        'split, data order, sampling')
    # Generation and export.
    add('--sample', action='store_true', help='generate from the latest checkpoint and exit, '
        'no training')
    add('--prime', action='append', default=None, metavar='TEXT', help='with --sample: seed '
        'text, repeatable (default: the lecture\'s seeds)')
    add('-n', '--length', type=cli.positive_int, default=None, help='characters to generate '
        'after each seed (default: 200)')
    model_dir.add_model_flags(p, sorted(CELLS))
    training.add_flags(p)
    model_dir.add_flags(p)
    decoding.add_flags(p)
    distributed.add_cluster_flags(p)
    args = p.parse_args(argv)
    args.model = args.model or CONFIGS[args.config or 'lecture'].model
    return args


def main(argv=None):
    start = time.time()   # a --minutes budget counts from here: data and graph included
    args, args.start = parse_args(argv), start
    cfg = make_config(args)
    if args.export is not None:
        return export_model(args, cfg)
    if args.evaluate is not None:
        return evaluate_text(args, cfg)
    cluster = distributed.cluster_from_args(args, [('--sample', args.sample)])
    if args.sample:
        return sample(args, cfg)
    if args.prime:
        raise UserError('--prime needs --sample (training samples from the lecture\'s seeds)')
    if args.checkpoint is not None:
        raise UserError('--checkpoint needs --sample, --evaluate or --export (training resumes '
                        'from the latest)')
    return train(args, cfg, cluster)


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
