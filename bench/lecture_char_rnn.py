"""The CS20 lecture 11 CharRNN, rebuilt line for line as the benchmarks' baseline.

`CharRNN(levers=())` is the lecture's graph exactly: one-hot input of depth
len(vocab), a MultiRNNCell of GRUCells [128, 256] with placeholder_with_default
initial states, dynamic_rnn with the lecture's length, a dense layer, reduce_sum
of softmax cross-entropy, Adam 0.0003, one feed_dict per batch of 64 windows of
50. `online_infer` is the lecture's generation loop (one session call per char).

Levers, each opt-in and named in `levers` (benchmarked as char/lecture+LEVER):
  numpy   batches prepared ahead as numpy arrays (the lecture pulls each from its
          Python generator inside the step)
  inter1  session with inter_op_parallelism_threads=1 (intra stays 2)
  xla     XLA JIT over the whole graph (global_jit_level ON_1)
  fused   the GRUBlockCell kernel in place of GRUCell: TF1's
          tf.contrib.rnn.GRUBlockCellV2; on TF2 the same kernel through
          tf.raw_ops.GRUBlockCell (FusedGRUCell below). Same variables, same math.
  hoist   layer 1's input projection x @ W_x + b computed for all 50 steps in one
          matmul before the loop, the loop's first cell doing only h @ W_h (layer
          2's input is layer 1's output, known only inside the loop: hoisting it
          too would split the loop in two and lose the overlap of the layers).
          Same variables (names and shapes) as the lecture's GRUCells.
  embed   hoist, the projection of the one-hot input done as a row lookup of the
          input kernel (tf.nn.embedding_lookup): no [3200, V] x [V, 384] matmul.
  (fused with hoist or embed: the fused kernel for layer 2.)
tests/test_bench_levers.py checks that fused, hoist and embed give the lecture's
loss and gradients for the same weights.
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

LEVERS = ('numpy', 'inter1', 'xla', 'fused', 'hoist', 'embed')


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
        if self.levers & {'hoist', 'embed'}:
            return self.create_model_hoisted()
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

    # -- levers hoist and embed ------------------------------------------------

    def create_model_hoisted(self):
        """The lecture's model with layer 1's input projection out of the loop."""
        depth = len(self.vocab)
        batch = tf.shape(self.seq)[0]
        if 'embed' in self.levers:
            # one_hot(id, depth) is row id of the identity, all zeros for id == depth:
            # the lecture's length without the one-hot.
            length = tf.reduce_sum(tf.cast(self.seq < depth, tf.int32), 1)
            labels = tf.one_hot(self.seq[:, 1:], depth)
        else:
            seq = tf.one_hot(self.seq, depth)
            length = tf.reduce_sum(tf.reduce_max(tf.sign(seq), 2), 1)
            labels = seq[:, 1:]
        units = self.hidden_sizes[0]
        with tf.variable_scope('rnn/multi_rnn_cell/cell_0/gru_cell'):
            w_x, b, first = hoisted_gru_variables(depth, units)
        if 'embed' in self.levers:
            table = tf.concat([w_x, tf.zeros([1, 3 * units])], 0)
            projected = tf.nn.embedding_lookup(table, self.seq) + b
        else:
            projected = tf.reshape(tf.matmul(tf.reshape(seq, [-1, depth]), w_x) + b,
                                   [batch, -1, 3 * units])
        upper = [fused_gru_cell(size) if 'fused' in self.levers else tf.nn.rnn_cell.GRUCell(size)
                 for size in self.hidden_sizes[1:]]
        cells = tf.nn.rnn_cell.MultiRNNCell([first] + upper)
        zero_states = cells.zero_state(batch, dtype=tf.float32)
        self.in_state = tuple([tf.placeholder_with_default(state, [None, state.shape[1]])
                               for state in zero_states])
        self.output, self.out_state = tf.nn.dynamic_rnn(cells, projected, length, self.in_state)
        self.logits = tf.layers.dense(self.output, depth, None)
        # The lecture's loss as it is: softmax_cross_entropy_with_logits' gradient is
        # softmax - labels even for the all-zero label of the last vocabulary id.
        loss = tf.nn.softmax_cross_entropy_with_logits(logits=self.logits[:, :-1], labels=labels)
        self.loss = tf.reduce_sum(loss)
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


def hoisted_gru_variables(input_size, units):
    """A GRUCell's four variables (same names, shapes, initializers), split for hoisting.

    Returns (input kernel [input_size, 3 units] = gate and candidate columns,
    bias [3 units], a cell that does the recurrent half).
    """
    gate_kernel = tf.get_variable('gates/kernel', [input_size + units, 2 * units])
    gate_bias = tf.get_variable('gates/bias', [2 * units],
                                initializer=tf.constant_initializer(1.0))
    candidate_kernel = tf.get_variable('candidate/kernel', [input_size + units, units])
    candidate_bias = tf.get_variable('candidate/bias', [units],
                                     initializer=tf.constant_initializer(0.0))
    w_x = tf.concat([gate_kernel[:input_size], candidate_kernel[:input_size]], 1)
    b = tf.concat([gate_bias, candidate_bias], 0)
    cell = HoistedGRUCell(units, gate_kernel[input_size:], candidate_kernel[input_size:])
    return w_x, b, cell


class HoistedGRUCell(tf.nn.rnn_cell.RNNCell):
    """GRUCell's step when x @ W_x + b came precomputed as the input ([gates 2u | candidate u])."""

    def __init__(self, units, gate_kernel_h, candidate_kernel_h):
        super(HoistedGRUCell, self).__init__()
        self._units = units
        self._gate_kernel_h = gate_kernel_h
        self._candidate_kernel_h = candidate_kernel_h

    @property
    def state_size(self):
        return self._units

    @property
    def output_size(self):
        return self._units

    def call(self, inputs, state):
        u2 = 2 * self._units
        value = tf.sigmoid(inputs[:, :u2] + tf.matmul(state, self._gate_kernel_h))
        r, u = tf.split(value, 2, axis=1)
        c = tf.tanh(inputs[:, u2:] + tf.matmul(r * state, self._candidate_kernel_h))
        new_h = u * state + (1 - u) * c
        return new_h, new_h


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

def session_config(levers=()):
    """Threads pinned to the machine's cores, plus the session levers."""
    config = tf.ConfigProto(intra_op_parallelism_threads=THREADS,
                            inter_op_parallelism_threads=1 if 'inter1' in levers else THREADS)
    if 'xla' in levers:
        config.graph_options.optimizer_options.global_jit_level = tf.OptimizerOptions.ON_1
    return config


def bench_train(tweets, steps, repeats, warmup, levers=(), seed=0):
    """Lecture training steps (loss and update, one feed_dict per batch): chars per second."""
    random.seed(seed)
    np.random.seed(seed)
    tf.set_random_seed(seed)
    model = CharRNN(levers=levers)
    model.create_model()
    data = read_batch(read_data(tweets, model.vocab, model.num_steps, overlap=OVERLAP),
                      model.batch_size)
    with tf.Session(config=session_config(levers)) as sess:
        sess.run(tf.global_variables_initializer())
        if 'numpy' in levers:
            batches = [np.array(next(data), dtype=np.int32)
                       for _ in range(warmup + steps * repeats)]

            def step(i):
                sess.run([model.loss, model.opt], {model.seq: batches[i]})
        else:
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
    with tf.Session(config=session_config(levers)) as sess:
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
