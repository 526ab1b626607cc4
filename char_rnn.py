"""Character-level tweet generator: the CS20 lecture 11 CharRNN, runnable today.

A 2-layer GRU (128, 256) character model (Stanford CS20, lecture 11, examples/11_char_rnn.py)
trained on Donald Trump's tweets, that writes tweets from seed strings. The defaults are the
lecture's: its vocabulary string, one-hot input, Adam at 0.0003, batches of 64 windows of 50
characters overlapping by 25, 200 generated characters, its seeds and log lines. Its bugs are
fixed, each marked "# Fix:" here and listed in README.md; the literal sampling formula is one
flag away. Runs on TensorFlow 1.15 and, through tensorflow.compat.v1 in graph mode, on TF 2.

    python char_rnn.py                          # train to step 5000 (Ctrl-C saves, re-run resumes)
    python char_rnn.py --steps 0                # train until Ctrl-C or SIGTERM
    python char_rnn.py --config ten-minutes     # the same model, the lowest loss in 10 minutes
    python char_rnn.py --sample --prime "Make America" -n 280   # generate, no training
    python char_rnn.py --sample --sampling lecture      # the lecture's literal sampling, T 1.5
    python char_rnn.py --vocab auto --data my.txt --model my    # any UTF-8 text, a line each
    python char_rnn.py --stream --data code.py --model code     # any text as one stream
    python char_rnn.py --model code --evaluate test             # bits per character held out
    python char_rnn.py --graph lecture          # the lecture's dynamic_rnn graph, the same model
    python char_rnn.py --loss lecture           # the lecture's loss: padding gets gradients
    tensorboard --logdir logdir

Results (the tweets, lecture settings, --seed 0; validation loss in nats per character over
20 batches of the 5% held-out lines, as the run prints it at the step given):

    | stack | step 300 | step 2000 | step 5000 |
    |-------|----------|-----------|-----------|
    | tf1   | 2.860    | 2.047     | 1.714     |
    | tf2   | 2.854    | 2.038     | 1.704     |

    python char_rnn.py --data ../shared/data/trump_tweets.txt        # `make train`, 5000 steps

The first loss is ln(87) = 4.47 nats per character, a uniform guess over the vocabulary.
Training runs a faster graph of the same model (CharRNN.fast_logits, kernels.gru_stack): the
same variables, loss and gradients as the lecture's dynamic_rnn graph, which --graph lecture
runs (the table above was measured with it, before the training step's gradient fix:
bench/results/gradient-fix-tf1.md has step 2000 at 2.0506 after it, TF1, one thread).
Speed, in characters (window positions) per second: BENCHMARKS.md (docs/results.md lists
every figure).
"""
from __future__ import print_function

from tf1rnn import cli   # (light) first: Ctrl-C during the heavy imports below exits quietly
cli.quiet_interrupts()

import argparse  # noqa: E402
import math
import os
import sys
import time

import utils
from tf1rnn import (cli, corpus, decoding, distributed, export, kernels, model_dir, runs,
                    streams, training, windows)
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


# ---------------------------------------------------------------------------
# Configuration: the lecture's numbers, a tiny variant for smoke tests; flags override.
# ---------------------------------------------------------------------------

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


def training_settings(args, cfg, hidden_sizes):
    """What decides the trained model, printed at the start and stored in config.json."""
    names = ('batch_size', 'window', 'lr', 'lr_decay', 'decay_steps', 'warmup', 'clip', 'steps',
             'minutes')
    settings = dict(config=args.config or 'lecture', hidden_sizes=list(hidden_sizes),
                    keep_prob=args.keep_prob, loss=args.loss,
                    **{name: getattr(cfg, name) for name in names})
    for name in ('decay_steps', 'minutes'):
        if not settings[name] or not settings['lr_decay'] and name == 'decay_steps':
            del settings[name]
    return settings


def make_config(args):
    """The --config's settings with the flags given applied over them."""
    cfg = CONFIGS[args.config or 'lecture']()
    for name in ('steps', 'minutes', 'batch_size', 'window', 'lr', 'lr_decay', 'decay_steps',
                 'warmup', 'clip', 'temperature', 'skip_step', 'sample_every', 'eval_every',
                 'eval_batches', 'summary_every'):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    if cfg.lr_decay == 'cosine' and args.decay_steps is None:
        if not cfg.steps and not cfg.minutes:   # the cosine ends with the run: it has no end
            raise UserError('--lr-decay cosine needs an end: --steps N, --minutes M, or '
                            '--decay-steps N (the rate then stays at a tenth after step N)')
        # The cosine ends with the run: at its last step, or at the end of its minutes.
        cfg.decay_steps = None if cfg.minutes else cfg.steps
    if args.length is not None:
        cfg.len_generated = args.length
    args.stream, args.cell = args.stream or cfg.stream, args.cell or cfg.cell
    if args.sampling == 'lecture' and args.temperature is None:
        cfg.temperature = LECTURE_TEMPERATURE
    return cfg


# ---------------------------------------------------------------------------
# Model: the lecture's CharRNN.
# ---------------------------------------------------------------------------

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
        self.lr = lr
        self.lr_decay = lr_decay
        self.decay_steps = decay_steps
        self.warmup = warmup
        self.clip = clip
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
        self.create_generator()

    def fast_logits(self):
        """The logits of every window position but the last, [window - 1, batch, vocab],
        by the same cells and dense layer as self.logits, faster (kernels.fast_stack: the
        GRU and RNN layers in one loop, each LSTM layer one BlockLSTM op).

        Layer 1's input projection of a one-hot id is a row of its kernel: a gather (id 0,
        padding, gets zeros). Positions after a row's end are not skipped, as dynamic_rnn's
        sequence lengths do: they cannot change the loss of the positions before them, and
        their own loss is masked. self.final_state: each layer's state after the inputs
        (all positions but the last), which --stream feeds as the next batch's in_state.
        """
        ids = tf.transpose(self.seq)
        # A stream's window ends with the next window's first input: its state is wanted.
        top, self.final_state = kernels.fast_stack(
            self.layers, kernels.OneHot(ids[:-1] if self.stream else ids, len(self.vocab)),
            list(self.in_state))
        return tf.layers.dense(top if self.stream else top[:-1], len(self.vocab), None,
                               name='dense', reuse=True)

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
        draw = lambda logits: decoding.sample_ids(logits, self.temp, self.sampling,
                                                  self.top_k, self.greedy)
        first = draw(last_logits)
        ids = tf.TensorArray(tf.int32, size=self.len_generated).write(0, first)

        def step(i, previous, state, ids):
            logits, state = self.step(previous, state)
            current = draw(logits)
            return i + 1, current, state, ids.write(i, current)

        _, _, _, ids = tf.while_loop(lambda i, *_: i < self.len_generated, step,
                                     [tf.constant(1), first, self.out_state, ids],
                                     name='generate')
        self.generated = tf.transpose(ids.stack())

    def step(self, ids, state):
        """One step of the cells and the dense layer: (logits, state) after the ids [batch]."""
        output, state = self.cells(tf.one_hot(ids - 1, len(self.vocab)), state)
        return tf.layers.dense(output, len(self.vocab), None, name='dense', reuse=True), state

    def generate(self, sess, seeds=SEEDS, length=200, temperature=None, end=''):
        """Each seed followed by `length` generated characters, in one session call,
        or up to the first `end` (the data's end-of-line marker) among them.

        Every seed must have at least one vocabulary character (see clean_primes).
        """
        rows = [utils.vocab_encode(seed, self.vocab) for seed in seeds]
        if not all(rows):
            raise ValueError('a seed has no vocabulary character: {!r}'.format(seeds))
        feed = {self.seq: utils.pad(rows), self.len_generated: length}
        if temperature is not None:
            feed[self.temp] = temperature
        generated = sess.run(self.generated, feed)
        texts = [utils.vocab_decode(ids, self.vocab) for ids in generated]
        if end:   # what follows the end of a line was never trained: noise
            texts = [text[:text.index(end) + len(end)] if end in text else text for text in texts]
        return [seed + text for seed, text in zip(seeds, texts)]


def build_model(vocab, hidden_sizes, args, cfg, cluster=None):
    """A CharRNN in the default graph (make a new one: `with tf.Graph().as_default():`)."""
    if args.stream and (args.graph == 'lecture' or args.keep_prob < 1 or args.loss == 'lecture'):
        raise UserError('--stream trains on the fast graph: --graph lecture, --loss lecture and '
                        '--keep-prob below 1 are line mode\'s')
    tf.set_random_seed(args.seed)
    model = CharRNN(vocab, hidden_sizes, lr=cfg.lr, lr_decay=cfg.lr_decay,
                    decay_steps=cfg.decay_steps, warmup=cfg.warmup, clip=cfg.clip,
                    keep_prob=args.keep_prob,
                    temperature=cfg.temperature, len_generated=cfg.len_generated,
                    sampling=args.sampling, graph=args.graph, loss=args.loss, cluster=cluster,
                    top_k=args.top_k, greedy=args.greedy, cell=args.cell or 'gru',
                    stream=bool(args.stream))
    model.create_model()
    return model


# ---------------------------------------------------------------------------
# Training.
# ---------------------------------------------------------------------------

def evaluate(sess, model, batches):
    """Loss per real character (nats) over the batches: windows of lines, or (--stream)
    streams.Batch rows, each batch's final state the next one's initial state."""
    total, count, state = 0.0, 0, None
    for batch in batches:
        if model.stream:
            batch, reset = batch
            feed = feed_state(model, None if reset else state, {model.seq: batch})
            loss, state = sess.run([model.loss, model.final_state], feed)
        else:
            loss = sess.run(model.loss, {model.seq: batch})
        total += loss
        count += utils.num_targets(batch)
    return total / max(count, 1)


def feed_state(model, state, feed):
    """feed with model.in_state set to state (None: the zero state)."""
    if state is not None:
        feed.update(zip(tf.nest.flatten(model.in_state), tf.nest.flatten(state)))
    return feed


class Trainer(object):
    """The training loop and what it writes: the lecture's log lines, samples, events, checkpoints."""

    def __init__(self, model, cfg, args, data, folder, end_marker='', cluster=None):
        self.model, self.cfg, self.args = model, cfg, args
        # In a cluster each worker trains on its own lines or streams; only the chief writes.
        self.cluster, self.chief = cluster, not cluster or cluster.is_chief
        self.end_marker = end_marker
        self.draw, self.val_batches = data   # (training_data)
        if model.stream:   # the state carried over, saved with the latest checkpoint
            self.kept_state = training.Kept('carried_state', [
                [cfg.batch_size, state.shape[-1].value]
                for state in tf.nest.flatten(model.final_state)])
        # --minutes: the time trained so far, saved with the weights: a resume goes on.
        self.budget = training.Budget(cfg.minutes, args.start)
        self.seeds = decoding.default_seeds(SEEDS, model.vocab)
        self.train_summary = tf.summary.merge([
            tf.summary.scalar('loss_per_char', model.loss_per_char),
            tf.summary.scalar('loss', model.loss),
            tf.summary.scalar('learning_rate', model.learning_rate),
            tf.summary.scalar('gradient_global_norm', model.grad_norm)])
        self.checkpoints = model_dir.Checkpoints(folder, model.best_val_loss, cluster)

    def train(self, sess):
        """Trains until cfg.steps (0: Ctrl-C or SIGTERM, which save first). Returns 0."""
        # Ctrl-C and SIGTERM (kill, job schedulers) only set `stop`: the loop ends between
        # two steps and saves; a signal during a save waits for the save to finish. So does
        # an output pipe closed from here on (`| head`), its first line included.
        with runs.stop_on_signals() as self.stop:
            return self.train_until_stopped(sess)

    def train_until_stopped(self, sess):
        model, cfg = self.model, self.cfg
        self.sess = sess
        self.step, self.best = sess.run([model.gstep, model.best_val_loss])
        if cfg.steps and self.step >= cfg.steps:
            print('step {} already reached (--steps {}): nothing to train'.format(
                self.step, cfg.steps))
            return 0
        self.budget.load(sess)
        if self.budget.over():
            print('{:g} minutes already trained (--minutes {:g}): nothing to train'.format(
                self.budget.before / 60, cfg.minutes))
            return 0
        print('training {} ({}, TensorFlow {}): hidden sizes {}, until {}'.format(
            self.args.model, utils.STACK, tf.version.VERSION, model.hidden_sizes,
            ' or '.join(filter(None, ['step {}'.format(cfg.steps) if cfg.steps else '',
                                      '{:g} minutes'.format(cfg.minutes) if cfg.minutes
                                      else ''])) or 'Ctrl-C'))
        self.events = training.Events(os.path.join(self.args.logdir, 'char_rnn', self.args.model),
                                      sess.graph, self.chief, self.step)
        try:
            self.loop()
            if self.cluster:
                print('stopped at global step {} ({}): {} steps of its own'.format(
                    self.step, self.stop.name if self.stop else 'done', self.own_steps))
            if self.chief and self.stop:
                print('interrupted at step {}: saved {}'.format(
                    self.step, self.save_latest()))
            elif self.chief:
                print(self.checkpoints.done(self.step, self.best))
        finally:
            self.events.close()
        return 0

    def loop(self):
        model, cfg, sess = self.model, self.cfg, self.sess
        # Fix: the batch order is a function of the position alone (the lecture's read_data
        # reshuffled at every start): a resumed run draws what the uninterrupted one drew.
        batches = self.draw(self.cluster.own_steps(self.step) if self.cluster else self.step)
        # --stream: the state the last checkpoint saved (a new run's: zeros), the chief's own.
        self.state = (tf.nest.pack_sequence_as(model.final_state, self.kept_state.load(sess))
                      if model.stream and self.chief else None)
        train_feed = {model.keep_prob: self.args.keep_prob} if model.use_dropout else {}
        start = time.time()
        # Since the last log line. chars/s counts window positions (batch x window, padding
        # included: what the graph computes), as bench/ does; the loss is per real target.
        targets, positions, train_time, loss_sum = 0, 0, 0.0, 0.0
        self.own_steps = 0
        ends = not (self.cluster and self.cluster.follows_chief)   # (else when the chief stops)
        out_of_time = ends and self.budget.over()
        while (not cfg.steps or self.step < cfg.steps or not ends) and not self.stop \
                and not out_of_time:
            t = time.time()
            batch, reset = next(batches)
            iteration = self.step
            feed = feed_state(model, None if reset else self.state, dict(train_feed))
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
            targets += utils.num_targets(batch)
            positions += batch.size
            loss_sum += batch_loss
            train_time += time.time() - t
            if summarize:
                self.events.train.add_summary(results[-1], self.step)
                self.events.scalars(self.events.train, self.step,
                                    chars_per_sec=positions / max(train_time, 1e-9))
            if (iteration + 1) % cfg.skip_step == 0:
                # The lecture's two lines, then the loss per real character and the throughput.
                per_char = loss_sum / max(targets, 1)
                print('Iter {}. \n    Loss {:.3f}. Time {:.3f}. Per char {:.4f} nats ({:.4f} bits), '
                      '{:,.0f} chars/s\n'.format(iteration, batch_loss, time.time() - start,
                                                 per_char, per_char / math.log(2),
                                                 positions / max(train_time, 1e-9)),
                      end='', flush=True)
                targets, positions, train_time, loss_sum = 0, 0, 0.0, 0.0
                start = time.time()
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

    def save_latest(self):
        self.budget.save(self.sess)
        if self.model.stream and self.state is not None:
            self.kept_state.save(self.sess, tf.nest.flatten(self.state))
        return self.checkpoints.save_latest(self.sess, self.step)

    def print_samples(self):
        sentences = self.model.generate(self.sess, self.seeds, self.cfg.len_generated,
                                        end=self.end_marker)
        for sentence in sentences:
            print('\t' + sentence)
        # TensorBoard renders Markdown: indented, the samples show as they are.
        self.events.text('samples', '\n'.join('    ' + s for s in sentences), self.step)

    def validate(self):
        """Validation loss per character; the best checkpoint when it is the lowest so far."""
        if not self.val_batches:
            return
        val_loss = evaluate(self.sess, self.model, self.val_batches)
        self.events.scalars(self.events.val, self.step, loss_per_char=val_loss)
        improved = val_loss < self.best
        if improved:
            self.best = val_loss
            self.checkpoints.save_best(self.sess, self.step, val_loss)
        print('    Validation loss {:.4f} nats/char ({:.4f} bits/char){}'.format(
            val_loss, val_loss / math.log(2),
            ', best so far: saved' if improved else ', best {:.4f}'.format(self.best)))


def train(args, cfg, cluster=None):
    folder = os.path.join(args.checkpoint_dir, args.model)
    if cluster and cluster.start().job == 'ps':
        return cluster.serve()
    chief = not cluster or cluster.is_chief
    if chief:   # the one that writes: its outputs, before any work
        model_dir.check_outputs(args.checkpoint_dir, args.model, args.logdir)
    # One run per model folder: two would rotate each other's checkpoints away.
    with runs.folder_lock(folder, 'another --model or --checkpoint-dir', cluster):
        run = model_dir.Run(folder, args, cfg, asked_sizes(args), LectureConfig.hidden_sizes,
                            TRUMP_VOCAB, download(args), chief)
        print(corpus.describe(run.text, args.data, run.vocab_source))
        if run.end_marker:
            print('samples end after {!r}, the end of every line of the data (--end-marker)'
                  .format(run.end_marker))
        data = training_data(run.text, args, cfg, cluster)
        settings = training_settings(args, cfg, run.hidden_sizes)
        print('settings: ' + ', '.join('{} {}'.format(k, v) for k, v in sorted(settings.items())))
        with tf.Graph().as_default(), distributed.cluster_device(cluster):
            model = build_model(run.vocab, run.hidden_sizes, args, cfg, cluster)
            trainer = Trainer(model, cfg, args, data, folder, run.end_marker, cluster)

            def resume(sess):   # (a cluster's chief: each time it makes the session anew)
                trainer.checkpoints.resume(sess, model.gstep)
                run.started(settings)
            with runs.training_session(cluster, trainer.checkpoints.saver, resume,
                                       args.threads) as sess:
                return trainer.train(sess)


def training_data(text, args, cfg, cluster=None):
    """(draw, validation batches): draw(start) yields (batch, reset) from the batch drawn
    after `start` others on. The lecture's windows of lines, the lines shuffled each pass (a
    cluster's workers: lines of their own), each from the zero state (reset); or, --stream,
    contiguous streams (streams.Streams) whose state carries over but where reset says."""
    if args.stream:
        split = streams.Split(text.ids, args.val_frac, streams.TEST_FRAC, name=args.data)
        rows = streams.Streams(split.train, cfg.batch_size, cfg.window,
                               task=cluster.task if cluster else 0,
                               workers=cluster.num_workers if cluster else 1)
        print(split.describe() + '; {} streams of {:,} windows of {} a pass'.format(
            rows.rows, rows.steps, cfg.window))
        return ((lambda start: rows.batches([args.seed], start)),
                streams.EvalBatches(split.val, cfg.batch_size, cfg.window))
    split = windows.Corpus(text, cfg.window, args.val_frac, args.seed, args.data)
    print(split.summary())
    lines = cluster.shard(split.train) if cluster else split.train
    seed = [args.seed] + ([cluster.task] if cluster else [])
    return ((lambda start: ((batch, True) for batch in lines.batches(
        cfg.batch_size, seed, start * cfg.batch_size))),
        split.val.fixed_batches(cfg.batch_size, cfg.eval_batches))


def asked_sizes(args):
    """The hidden sizes this run asks for: --hidden-sizes, or --config's, else None."""
    return args.hidden_sizes or (CONFIGS[args.config].hidden_sizes if args.config else None)


def download(args):
    """(url, sha256) of the lecture's data when --data is its default path, else None."""
    default = os.path.normpath(args.data) == os.path.normpath(DEFAULT_DATA)
    return (DATA_URL, DATA_SHA256) if default else None


# ---------------------------------------------------------------------------
# Generation and export from a checkpoint.
# ---------------------------------------------------------------------------

def trained_model(args):
    """(config.json, vocab, hidden sizes, the --checkpoint to read) of --model: what
    --sample, --evaluate and --export read (args.cell and args.stream its own). UserError when it has no checkpoint."""
    folder = os.path.join(args.checkpoint_dir, args.model)
    stored, latest = model_dir.read(folder)
    if not latest:
        raise UserError('no checkpoint in {}: train first (python char_rnn.py --model {})'.format(
            folder, args.model))
    model_dir.resolve_kind(args, stored, folder)
    vocab, _, hidden_sizes = model_dir.resolve_shape(
        args, stored, folder, asked_sizes(args), LectureConfig.hidden_sizes, TRUMP_VOCAB)
    ckpt = (latest if args.checkpoint in (None, 'latest') else
            model_dir.choose_checkpoint(folder, args.checkpoint))
    return stored, vocab, hidden_sizes, ckpt


def sample(args, cfg):
    stored, vocab, hidden_sizes, ckpt = trained_model(args)
    primes = (decoding.clean_primes(args.prime, vocab) if args.prime
              else decoding.default_seeds(SEEDS, vocab))
    with tf.Graph().as_default():
        model = build_model(vocab, hidden_sizes, args, cfg)
        with tf.Session(config=runs.session_config(args.threads)) as sess:
            if args.checkpoint in (None, 'latest'):   # (one rotated away: its successor)
                runs.restore_latest(sess, tf.train.Saver(), os.path.dirname(ckpt),
                                    model_dir.PREFIX, ckpt)
            else:
                runs.restore(sess, tf.train.Saver(), ckpt)
            end = model_dir.resolve_end_marker(args, stored)
            for sentence in model.generate(sess, primes, cfg.len_generated, end=end):
                print(sentence)
    return 0


def evaluate_text(args, cfg):
    """--evaluate: the loss of the --checkpoint on a UTF-8 file, or on the validation or
    test text of its data, in nats and bits per character (model_dir.evaluation_data)."""
    stored, vocab, hidden_sizes, ckpt = trained_model(args)
    name, text, batches = model_dir.evaluation_data(args.evaluate, stored, vocab,
                                                    cfg.batch_size, cfg.window)
    with tf.Graph().as_default():
        model = build_model(vocab, hidden_sizes, args, cfg)
        with tf.Session(config=runs.session_config(args.threads)) as sess:
            runs.restore(sess, tf.train.Saver(), ckpt)
            loss = evaluate(sess, model, batches)
    dropped = sum(text.dropped.values())
    print('{}: {:,} characters scored{}: {:.4f} nats/char, {:.4f} bits/char ({})'.format(
        name, sum(utils.num_targets(batch[0] if model.stream else batch) for batch in batches),
        ', {:,} outside the vocabulary not scored ({})'.format(dropped, ', '.join(
            '{!r} {:,}'.format(ch, n) for ch, n in text.dropped.most_common(5)))
        if dropped else '', loss, streams.bits(loss), ckpt))
    return 0


def export_model(args, cfg):
    """--export: the --checkpoint (the latest by default) as a SavedModel (tf1rnn/export.py)."""
    stored, vocab, hidden_sizes, ckpt = trained_model(args)

    def build(seq):
        """CharRNN's layers over the id rows seq: (logits, final states, one step)."""
        model = CharRNN(vocab, hidden_sizes, cell=args.cell)
        model.create_rnn(tf.one_hot(seq - 1, len(vocab)))
        logits = tf.layers.dense(model.output, len(vocab), None, name='dense')
        return logits, model.out_state, model.step

    path = export.export_char_rnn(args.export, ckpt, vocab,
                                  model_dir.resolve_end_marker(args, stored), build,
                                  cfg.temperature, cfg.len_generated, args.threads)
    print('exported {} to {}'.format(ckpt, path))
    return 0

# ---------------------------------------------------------------------------
# Flags and main.
# ---------------------------------------------------------------------------

def lr_decay(text):
    """--lr-decay: 'cosine' or a positive rate."""
    return 'cosine' if text == 'cosine' else decay_rate(text)


decay_rate = cli.number(float, low=0, high=1, low_open=True)
lr_decay.range = 'cosine, or ' + decay_rate.range


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
    add('--hidden-sizes', default=None, type=cli.int_list, metavar='N,N',
        help='RNN layer sizes (default: the config\'s (lecture: 128,256), or the checkpoint\'s)')
    add('--vocab', choices=['trump', 'auto'], default=None, help='trump: the lecture\'s '
        'character string; auto: every character of DATA; stored with the checkpoint '
        '(default: the checkpoint\'s, else trump; --stream: auto)')
    add('--cell', choices=sorted(CELLS), default=None, help='the RNN cell of each layer, '
        'stored with the checkpoint (default: the checkpoint\'s, else gru, the lecture\'s)')
    add('--stream', action='store_true', help='read DATA as one text, every character kept '
        '(line breaks, indentation): batches of contiguous streams, each window\'s final '
        'state the next one\'s initial state; validation and test: the last --val-frac '
        'and 5%% of the file, read whole. Stored with the checkpoint (docs/streams.md)')
    # The config's numbers (None: the config's own; make_config applies them).
    add('--steps', type=cli.non_negative_int, default=None, help='train until the global step '
        'reaches this (re-run to finish); 0: until Ctrl-C (default: 5000; tiny: 20)')
    add('--minutes', type=cli.number(float, low=0), default=None, help='train for this much '
        'wall time (a resumed run: in all), which a cosine decay ends with; 0: no budget '
        '(default: ten-minutes configs: 10, else none)')
    add('--batch-size', type=cli.positive_int, default=None, help='windows per batch '
        '(default: 64)')
    add('--window', type=cli.window, default=None, help='characters per training window, '
        'overlapping by half (--stream: targets a window, each continuing the last) '
        '(default: 50)')
    add('--lr', type=cli.positive_float, default=None, help='Adam learning rate '
        '(default: 0.0003)')
    add('--lr-decay', type=lr_decay, default=None, metavar='RATE|cosine', help='multiply the '
        'rate by RATE every --decay-steps (exponential_decay, staircase), or cosine: down to a '
        'tenth at --decay-steps (default: the config\'s; lecture: none)')
    add('--decay-steps', type=cli.positive_int, default=None, help='steps per --lr-decay '
        '(default: 1000; with cosine, --steps)')
    add('--warmup', type=cli.non_negative_int, default=None, metavar='STEPS', help='raise the '
        'learning rate linearly over the first STEPS steps (default: the config\'s; lecture: 0)')
    add('--clip', type=cli.number(float, low=0), default=None, metavar='NORM', help='clip '
        'gradients to this global norm, 0: no clipping (default: the config\'s; lecture: 0)')
    add('--skip-step', type=cli.positive_int, default=None, help='print the loss every N steps '
        '(default: 1, as the lecture)')
    add('--sample-every', type=cli.non_negative_int, default=None, help='print samples every '
        'N steps, 0: never (default: 100)')
    add('--eval-every', type=cli.positive_int, default=None, help='validation loss, latest and '
        'best checkpoints every N steps (default: 100)')
    add('--eval-batches', type=cli.non_negative_int, default=None, help='validation batches '
        'per evaluation, 0: all (default: 20)')
    add('--summary-every', type=cli.positive_int, default=None, help='TensorBoard training '
        'scalars every N steps (default: 10)')
    add('--graph', choices=['fast', 'lecture'], default='fast', help='fast: the GRU layers by '
        'kernels.gru_stack; lecture: MultiRNNCell in dynamic_rnn. The same model, loss, '
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
    add('--checkpoint-dir', default='checkpoints', help='checkpoints root')
    add('--logdir', default='logdir', help='TensorBoard events root')
    add('--threads', type=cli.non_negative_int, default=0, help='TensorFlow intra- and '
        'inter-op threads, 0: TensorFlow decides')
    # Generation and export.
    add('--sample', action='store_true', help='generate from the latest checkpoint and exit, '
        'no training')
    add('--export', default=None, metavar='DIR', help='write the checkpoint as a SavedModel '
        'to DIR/<version> (1, 2, ...) with signatures generate, score and step '
        '(docs/export.md), and exit, no training')
    add('--evaluate', default=None, metavar='FILE|val|test', help='the loss of the checkpoint '
        'on FILE, or on the validation or test text of its data, in nats and bits per '
        'character, and exit, no training')
    add('--checkpoint', default=None, metavar='latest|best|STEP|PATH', help='with --sample, '
        '--evaluate or --export: the latest (default), the best (lowest validation loss), the one of '
        'global step STEP, or the one at PATH')
    add('--prime', action='append', default=None, metavar='TEXT', help='with --sample: seed '
        'text, repeatable (default: the lecture\'s seeds)')
    add('--end-marker', default=None, metavar='TEXT', help='a sample ends after this text '
        '(nothing after a line\'s end was trained); \'\': always --length characters '
        '(default: the word every line of the data ends with, as the tweets\' _E_)')
    add('-n', '--length', type=cli.positive_int, default=None, help='characters to generate '
        'after each seed (default: 200)')
    decoding.add_flags(p)
    distributed.add_cluster_flags(p)
    args = p.parse_args(argv)
    args.model = args.model or CONFIGS[args.config or 'lecture'].model
    return args


def main(argv=None):
    start = time.time()   # a --minutes budget counts from here: data and graph included
    args = parse_args(argv)
    args.start = start
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
