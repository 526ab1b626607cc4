"""The notebook's MnistRnn, rebuilt line for line as the benchmarks' baseline.

Row-by-row MNIST: placeholders [128, 28, 28] and [128], one of five cells with 31
units, dynamic_rnn with a constant sequence_length, the last output through a
dense layer of 10, sparse softmax cross-entropy, Adam 0.001, and the notebook's
training step: one sess.run of [optimize, loss, accuracy, check] with a
feed_dict of the batch sliced from the image array and reshaped.

The images are random floats in [0, 1) of MNIST's shape (the time per step does
not depend on the values).
"""
from __future__ import print_function

import numpy as np

import common
from common import THREADS
from tf1rnn import layer_norm
from utils import TF1, rnn, tf

# contrib's cell on TF1; TF2 has no contrib, the project's port of it there.
LayerNormBasicLSTMCell = rnn.LayerNormBasicLSTMCell if TF1 else layer_norm.LayerNormBasicLSTMCell

CELLS = ('basic_rnn', 'basic_lstm', 'lstm', 'gru', 'ln_basic_lstm')

INPUT_UNITS = common.MNIST_INPUT_UNITS
NUM_HIDDEN_UNITS = common.MNIST_HIDDEN_UNITS
BATCH_SIZE = common.MNIST_BATCH_SIZE
MAX_SEQ_LEN = common.MNIST_SEQ_LEN


class MnistRnn:
    def __init__(self,
                 inputs,
                 labels,
                 input_units,
                 num_hidden_units,
                 batch_size,
                 max_seq_len,
                 rnn_type,
                 lstm_forget_bias=1.0,
                 add_check=False,
                 lr=0.001,
                 use_grad_clip=False,
                 ln_norm_smoothing=False):
        '''
        inputs: in shape [batch_size, max_seq_len, input_size]
        labels: in shape [batch_size]
        '''
        # RNN
        if 'basic_rnn' == rnn_type:
            cell = rnn.BasicRNNCell(num_hidden_units)
        if 'basic_lstm' == rnn_type:
            cell = rnn.BasicLSTMCell(num_hidden_units)
        if 'lstm' == rnn_type:
            cell = rnn.LSTMCell(num_hidden_units,
                                forget_bias=lstm_forget_bias)
        if 'gru' == rnn_type:
            cell = rnn.GRUCell(num_hidden_units)
        if 'ln_basic_lstm' == rnn_type:
            if ln_norm_smoothing:
                cell = LayerNormBasicLSTMCell(
                    num_hidden_units,
                    norm_gain=0.85,
                    norm_shift=0.15)
            else:
                cell = LayerNormBasicLSTMCell(
                    num_hidden_units)
        sequence_length = [max_seq_len] * batch_size
        last, states = tf.nn.dynamic_rnn(
            cell,
            inputs,
            sequence_length=sequence_length,
            dtype=tf.float32)
        # of the outputs at steps 0..27 of max_seq_len, only the last is used
        rnn_output = last[:, max_seq_len - 1, :]
        # outputs shape will be: [batch_size, 10]
        outputs = tf.layers.dense(rnn_output, 10)
        loss = tf.losses.sparse_softmax_cross_entropy(
            labels, outputs)
        if use_grad_clip:
            tvars_ = tf.trainable_variables()
            grads_, _ = tf.clip_by_global_norm(
                tf.gradients(
                    loss,
                    tvars_),
                5.0)
            optimize = \
                tf.train.AdamOptimizer(learning_rate=lr). \
                apply_gradients(zip(grads_, tvars_))
        else:
            optimize = \
                tf.train.AdamOptimizer(learning_rate=lr). \
                minimize(loss)
        # accuracy
        preds = tf.argmax(outputs, axis=1)
        errors = tf.count_nonzero(labels - preds)
        accuracy = 1.0 - tf.cast(errors, tf.float32) / \
            tf.cast(tf.size(preds), tf.float32)
        # kept as attributes for use outside the class
        self.outputs = outputs
        self.loss = loss
        self.optimize = optimize
        self.accuracy = accuracy
        # check numerics
        self.check = [tf.check_numerics(
            t,
            'check_numerics: {}'.format(t.name))
            for t in tf.gradients(
                loss,
                tf.trainable_variables())
            if t is not None] \
            if add_check \
            else tf.constant(1.0)


def random_mnist(examples, seed=0):
    """MNIST-shaped data: images [examples, 784] float32 in [0, 1), labels int64 in 0..9."""
    rng = np.random.RandomState(seed)
    return (rng.rand(examples, INPUT_UNITS * MAX_SEQ_LEN).astype(np.float32),
            rng.randint(0, 10, size=examples).astype(np.int64))


def bench_step(cell, steps, repeats, warmup, seed=0):
    """The notebook's training step (feed_dict per batch of 128): seconds per step."""
    if cell == 'ln_basic_lstm' and not hasattr(rnn, 'LayerNormBasicLSTMCell'):
        return common.skipped('no LayerNormBasicLSTMCell on this stack (utils.rnn has none yet)')
    tf.set_random_seed(seed)
    images, labels = random_mnist(BATCH_SIZE * (warmup + steps * repeats), seed)
    inputs_ = tf.placeholder(tf.float32,
                             [BATCH_SIZE, MAX_SEQ_LEN, INPUT_UNITS],
                             name='inputs')
    labels_ = tf.placeholder(tf.int64,
                             [BATCH_SIZE],
                             name='labels')
    model = MnistRnn(inputs_, labels_, INPUT_UNITS, NUM_HIDDEN_UNITS, BATCH_SIZE,
                     MAX_SEQ_LEN, cell)
    config = tf.ConfigProto(gpu_options={'allow_growth': True},
                            intra_op_parallelism_threads=THREADS,
                            inter_op_parallelism_threads=THREADS)
    with tf.Session(config=config) as sess:
        sess.run(tf.global_variables_initializer())

        def step(i):
            offs = i * BATCH_SIZE
            batch_input = images[offs:offs + BATCH_SIZE, :]
            batch_input = batch_input.reshape([BATCH_SIZE, MAX_SEQ_LEN, INPUT_UNITS])
            batch_label = labels[offs:offs + BATCH_SIZE]
            sess.run([model.optimize, model.loss, model.accuracy, model.check],
                     feed_dict={inputs_: batch_input, labels_: batch_label})

        seconds = common.measure(step, steps, repeats, warmup)
    return common.result(seconds, steps, 'step', cell=cell)
