"""Practical peak: GFLOP/s of a large float32 tf.matmul on the benchmark threads."""
from __future__ import print_function

import common
from common import THREADS
from utils import tf


def bench_matmul(n, runs, repeats, warmup):
    """runs x (n x n) @ (n x n) per repeat, the operands already in TensorFlow's memory."""
    a = tf.Variable(tf.random_uniform([n, n]), name='a')
    b = tf.Variable(tf.random_uniform([n, n]), name='b')
    product = tf.matmul(a, b)
    config = tf.ConfigProto(intra_op_parallelism_threads=THREADS,
                            inter_op_parallelism_threads=THREADS)
    with tf.Session(config=config) as sess:
        sess.run(tf.global_variables_initializer())
        seconds = common.measure(lambda i: sess.run(product.op), runs, repeats, warmup)
    return common.result(seconds, 2.0 * n ** 3 * runs, 'flop', n=n, runs=runs)


def bench_step_matmuls(iterations, runs, repeats, warmup, batch=common.BATCH_SIZE):
    """GFLOP/s of the char model's per-step matmuls at its batch size, in a tf.while_loop.

    Each iteration multiplies [batch, n + h] by each layer's gate kernel [n + h, 2h] and
    candidate kernel [n + h, h], as GRUCell does at every step: the matmul ceiling of
    any graph that steps through time 64 rows at a time.
    """
    shapes, inputs = [], len(common.VOCAB)
    for units in common.HIDDEN_SIZES:
        shapes += [(inputs + units, 2 * units), (inputs + units, units)]
        inputs = units
    xs = [tf.Variable(tf.random_uniform([batch, k])) for k, _ in shapes]
    ws = [tf.Variable(tf.random_uniform([k, n])) for k, n in shapes]

    def body(i, acc):
        # acc * 0 makes each iteration depend on the last, as the recurrence does.
        products = [tf.matmul(x + acc * 0.0, w) for x, w in zip(xs, ws)]
        return i + 1, tf.add_n([p[0, 0] for p in products])

    loop = tf.while_loop(lambda i, acc: i < iterations, body, [tf.constant(0), tf.constant(0.0)])
    config = tf.ConfigProto(intra_op_parallelism_threads=THREADS,
                            inter_op_parallelism_threads=THREADS)
    with tf.Session(config=config) as sess:
        sess.run(tf.global_variables_initializer())
        seconds = common.measure(lambda i: sess.run(loop), runs, repeats, warmup)
    flops = 2.0 * batch * sum(k * n for k, n in shapes) * iterations * runs
    return common.result(seconds, flops, 'flop', batch=batch, shapes=shapes)
