"""The CS20 lecture 11 CharRNN, rebuilt line for line as the benchmarks' baseline.

`CharRNN(levers=())` is the lecture's graph exactly: one-hot input of depth
len(vocab), a MultiRNNCell of GRUCells [128, 256] with placeholder_with_default
initial states, dynamic_rnn with the lecture's length, a dense layer, reduce_sum
of softmax cross-entropy, Adam 0.0003, one feed_dict per batch of 64 windows of
50. `online_infer` is the lecture's generation loop (one session call per char).

One lever, opt-in (benchmarked as char/lecture+fused):
  fused   the GRUBlockCell kernel in place of GRUCell: TF1's
          tf.contrib.rnn.GRUBlockCellV2; on TF2 the same kernel through
          tf.raw_ops.GRUBlockCell (FusedGRUCell below). Same variables, same math.
tests/test_bench_levers.py checks that it gives the lecture's loss and gradients for
the same weights. The other levers measured on this graph (batches prepared in numpy,
one inter-op thread, XLA, layer 1's projection hoisted out of the loop or done as an
embedding lookup, and their combinations) were level or slower: their figures are in
bench/results/2026-11-23-levers/; char_rnn.py's fast graph does what helped.
"""
from __future__ import print_function

import random
import time

import numpy as np

import common
from common import (BATCH_SIZE, HIDDEN_SIZES, LEN_GENERATED, OVERLAP, SEEDS, THREADS, VOCAB,
                    WINDOW, lecture_read_batch as read_batch, lecture_read_data as read_data,
                    lecture_vocab_decode as vocab_decode, lecture_vocab_encode as vocab_encode)
from utils import TF1, rnn, tf

LEVERS = ('fused',)


class CharRNN(object):
    def __init__(self, model='trump_tweets', levers=()):
        unknown = set(levers) - set(LEVERS)
        if unknown:
            raise ValueError('unknown levers {}; known: {}'.format(sorted(unknown), LEVERS))
        self.levers = frozenset(levers)
        self.model = model
        self.path = 'data/' + model + '.txt'
        self.vocab = VOCAB
        self.seq = tf.placeholder(tf.int32, [None, None])
        self.temp = tf.constant(1.5)
        self.hidden_sizes = list(HIDDEN_SIZES)
        self.batch_size = BATCH_SIZE
        self.lr = 0.0003
        self.skip_step = 1
        self.num_steps = WINDOW  # for RNN unrolled
        self.len_generated = LEN_GENERATED
        self.gstep = tf.Variable(0, dtype=tf.int32, trainable=False, name='global_step')

    def create_rnn(self, seq):
        if 'fused' in self.levers:
            layers = [fused_gru_cell(size) for size in self.hidden_sizes]
        else:
            layers = [tf.nn.rnn_cell.GRUCell(size) for size in self.hidden_sizes]
        cells = tf.nn.rnn_cell.MultiRNNCell(layers)
        batch = tf.shape(seq)[0]
        zero_states = cells.zero_state(batch, dtype=tf.float32)
        self.in_state = tuple([tf.placeholder_with_default(state, [None, state.shape[1]])
                               for state in zero_states])
        # this line to calculate the real length of seq
        # all seq are padded to be of the same length, which is num_steps
        length = tf.reduce_sum(tf.reduce_max(tf.sign(seq), 2), 1)
        self.output, self.out_state = tf.nn.dynamic_rnn(cells, seq, length, self.in_state)

    def create_model(self):
        seq = tf.one_hot(self.seq, len(self.vocab))
        self.create_rnn(seq)
        self.logits = tf.layers.dense(self.output, len(self.vocab), None)
        loss = tf.nn.softmax_cross_entropy_with_logits(logits=self.logits[:, :-1],
                                                       labels=seq[:, 1:])
        self.loss = tf.reduce_sum(loss)
        # sample the next character from Maxwell-Boltzmann Distribution
        # with temperature temp. It works equally well without tf.exp
        self.sample = tf.multinomial(tf.exp(self.logits[:, -1] / self.temp), 1)[:, 0]
        self.opt = tf.train.AdamOptimizer(self.lr).minimize(self.loss, global_step=self.gstep)

    def online_infer(self, sess, out=None):
        """ Generate sequence one character at a time, based on the previous character
        """
        for seed in SEEDS:
            sentence = seed
            state = None
            for _ in range(self.len_generated):
                batch = [vocab_encode(sentence[-1], self.vocab)]
                feed = {self.seq: batch}
                if state is not None:  # for the first decoder step, the state is None
                    for i in range(len(state)):
                        feed.update({self.in_state[i]: state[i]})
                index, state = sess.run([self.sample, self.out_state], feed)
                sentence += vocab_decode(index, self.vocab)
            if out is not None:
                out.append('\t' + sentence)


# -- lever fused -----------------------------------------------------------------

def fused_gru_cell(units):
    """The GRUBlockCell kernel with GRUCell's variable names: contrib on TF1, raw op on TF2."""
    if TF1:
        return rnn.GRUBlockCellV2(units)
    return FusedGRUCell(units, name='gru_cell')


if not TF1:
    from tensorflow.python.framework import ops as _ops

    def _gru_block_cell_grad(op, *grad):
        """TF1 contrib's gradient of GRUBlockCell (TF2 has the kernels, not the Python gradient)."""
        x, h_prev, w_ru, w_c, b_ru, b_c = op.inputs
        r, u, c, _ = op.outputs
        d_h = grad[3]
        d_x, d_h_prev, d_c_bar, d_r_bar_u_bar = tf.raw_ops.GRUBlockCellGrad(
            x=x, h_prev=h_prev, w_ru=w_ru, w_c=w_c, b_ru=b_ru, b_c=b_c, r=r, u=u, c=c, d_h=d_h)
        d_w_ru = tf.matmul(tf.concat([x, h_prev], 1), d_r_bar_u_bar, transpose_a=True)
        d_b_ru = tf.reduce_sum(d_r_bar_u_bar, 0)
        d_w_c = tf.matmul(tf.concat([x, h_prev * r], 1), d_c_bar, transpose_a=True)
        d_b_c = tf.reduce_sum(d_c_bar, 0)
        return d_x, d_h_prev, d_w_ru, d_w_c, d_b_ru, d_b_c

    try:
        _ops.RegisterGradient('GRUBlockCell')(_gru_block_cell_grad)
    except KeyError:  # registered already (by another copy of this module)
        pass

    class FusedGRUCell(tf.nn.rnn_cell.GRUCell):
        """GRUCell (its variables) stepping with the GRUBlockCell kernel."""

        def call(self, inputs, state):
            _, _, _, new_h = tf.raw_ops.GRUBlockCell(
                x=inputs, h_prev=state, w_ru=self._gate_kernel, w_c=self._candidate_kernel,
                b_ru=self._gate_bias, b_c=self._candidate_bias)
            return new_h, new_h


# ---------------------------------------------------------------------------
# Benchmarks (called by bench/run.py in a subprocess each).
# ---------------------------------------------------------------------------

def session_config():
    """Threads pinned to the machine's cores."""
    return tf.ConfigProto(intra_op_parallelism_threads=THREADS,
                          inter_op_parallelism_threads=THREADS)


def bench_train(tweets, steps, repeats, warmup, levers=(), seed=0):
    """Lecture training steps (loss and update, one feed_dict per batch): chars per second."""
    random.seed(seed)
    np.random.seed(seed)
    tf.set_random_seed(seed)
    model = CharRNN(levers=levers)
    model.create_model()
    data = read_batch(read_data(tweets, model.vocab, model.num_steps, overlap=OVERLAP),
                      model.batch_size)
    with tf.Session(config=session_config()) as sess:
        sess.run(tf.global_variables_initializer())

        def step(i):
            batch = next(data)
            sess.run([model.loss, model.opt], {model.seq: batch})
        seconds = common.measure(step, steps, repeats, warmup)
        loss = sess.run(model.loss, {model.seq: next(data)})
    return common.result(seconds, steps * model.batch_size * model.num_steps, 'char',
                         steps=steps, levers=sorted(levers), final_loss=float(loss))


def bench_generate(repeats, levers=(), seed=0, long_run=10.0):
    """The lecture's online_infer (11 seeds x 200 chars, one session call per char): s per run.

    Untrained weights: the time per call does not depend on them. Stops after the
    first run when one run takes longer than long_run seconds.
    """
    random.seed(seed)
    tf.set_random_seed(seed)
    model = CharRNN(levers=levers)
    model.create_model()
    with tf.Session(config=session_config()) as sess:
        sess.run(tf.global_variables_initializer())
        model.online_infer(sess)  # warm-up
        seconds = []
        for r in range(repeats):
            out = []
            start = time.perf_counter()
            model.online_infer(sess, out)
            seconds.append(time.perf_counter() - start)
            common.log('  run {}/{}: {:.3f} s'.format(r + 1, repeats, seconds[-1]))
            if seconds[-1] > long_run:
                break
    return common.result(seconds, 1, 'run', calls=len(SEEDS) * model.len_generated,
                         chars=sum(len(s) - 1 for s in out), sample=out[0].strip()[:60])
