"""The char model's training step (forward and backward: loss and every gradient) per cell
kind and graph, timed in interleaved rounds in one process (2 threads), on this stack.

    python bench/cell_stacks.py                       # gru, lstm, rnn; every graph
    python bench/cell_stacks.py --cells lstm --steps 10 --rounds 5

Graphs: dynamic_rnn, the lecture's: MultiRNNCell over one-hot inputs with sequence
lengths; stack, kernels.cell_stack (every layer per step); layers, cell_stack one layer at a
time (a layer's input projection one matmul over the window); block (LSTM), the fused
BlockLSTM op one layer at a time (kernels.block_lstm); hybrid (LSTM), layer 0 by cell_stack
and layer 1 by BlockLSTM. kernels.fast_stack runs block for LSTMs, stack for the others.
The char model's sizes: 2 layers of 128 and 256, batch 64, window 50, vocabulary 87, the
dense layer and the masked loss of every position but the last. --check first compares
every graph's loss and gradients with dynamic_rnn's, for the same weights. Prints the median milliseconds per step and its ratio to dynamic_rnn (above 1: faster).
"""
from __future__ import print_function

import argparse
import statistics
import time

import numpy as np

import common   # noqa: F401 (the project root on sys.path)
from common import BATCH_SIZE, HIDDEN_SIZES, THREADS, VOCAB, WINDOW
from tf1rnn import kernels, runs
from utils import tf, rnn, TF1

CELLS = {'gru': rnn.GRUCell, 'lstm': rnn.LSTMCell, 'rnn': rnn.BasicRNNCell}
GRAPHS = ('dynamic_rnn', 'stack', 'layers', 'block', 'hybrid')


def build(cell, graph):
    """A graph's training step: (session, the op that computes every gradient, seq)."""
    vocab = len(VOCAB)
    g = tf.Graph()
    with g.as_default():
        tf.set_random_seed(0)
        seq = tf.placeholder(tf.int32, [None, None])
        layers = [CELLS[cell](n) for n in HIDDEN_SIZES]
        cells = rnn.MultiRNNCell(layers)
        zero = cells.zero_state(tf.shape(seq)[0], tf.float32)
        in_state = tf.nest.pack_sequence_as(zero, [
            tf.placeholder_with_default(s, [None, s.shape[1]]) for s in tf.nest.flatten(zero)])
        one_hot = tf.one_hot(seq - 1, vocab)
        length = tf.reduce_sum(tf.reduce_max(tf.sign(one_hot), 2), 1)
        output, _ = tf.nn.dynamic_rnn(cells, one_hot, length, in_state)   # the variables
        ids = tf.transpose(seq)
        if graph == 'dynamic_rnn':
            top = tf.transpose(output, [1, 0, 2])
        else:
            sizes = [vocab] + list(HIDDEN_SIZES[:-1])
            weights = [kernels.cell_weights(c, n) for c, n in zip(layers, sizes)]
            if graph == 'stack':
                gx0 = kernels.one_hot_projection(weights[0], ids)
                top, _ = kernels.cell_stack(gx0, list(in_state), weights)
            elif graph == 'layers':
                top = None
                for w, state in zip(weights, in_state):
                    if top is None:
                        gx = kernels.one_hot_projection(w, ids)
                    else:
                        gx = tf.tensordot(top, w.w_x, 1) + w.b
                    top, _ = kernels.cell_stack(gx, [state], [w])
            elif graph == 'hybrid':
                gx0 = kernels.one_hot_projection(weights[0], ids)
                top, _ = kernels.cell_stack(gx0, [in_state[0]], weights[:1])
                top, _ = kernels.block_lstm(top, in_state[1], layers[1])
            else:
                top = tf.transpose(one_hot, [1, 0, 2])
                for c, state in zip(layers, in_state):
                    top, _ = kernels.block_lstm(top, state, c)
        logits = tf.layers.dense(top[:-1], vocab, name='dense')
        targets = ids[1:]
        mask = tf.cast(targets > 0, tf.float32)
        loss = tf.reduce_sum(mask * tf.nn.sparse_softmax_cross_entropy_with_logits(
            logits=logits, labels=tf.maximum(targets - 1, 0)))
        variables = tf.trainable_variables()
        grads = tf.gradients(loss, variables)
        step = tf.group(grads)
        sess = tf.Session(config=runs.session_config(THREADS))
        sess.run(tf.global_variables_initializer())
    return sess, step, seq, (loss, grads, variables)


def check(built, batch):
    """Each graph's loss and gradients are dynamic_rnn's, for dynamic_rnn's weights."""
    sess, _, seq, (loss, grads, variables) = built['dynamic_rnn']
    weights = dict(zip([v.op.name for v in variables], sess.run(variables)))
    want = sess.run([loss, grads], {seq: batch})
    for graph, (sess, _, seq, (loss, grads, variables)) in built.items():
        with sess.graph.as_default():
            for var in variables:
                var.load(weights[var.op.name], sess)
        got = sess.run([loss, grads], {seq: batch})
        worst = max(float(np.abs(g - w).max() / np.abs(w).max()) for g, w in zip(got[1], want[1]))
        print('  {:12} loss {:.6f} (dynamic_rnn {:.6f}), largest gradient difference {:.1e} '
              'of the largest gradient'.format(graph, got[0], want[0], worst))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cells', default='gru,lstm,rnn')
    parser.add_argument('--graphs', default=','.join(GRAPHS))
    parser.add_argument('--steps', type=int, default=10, help='steps per timed block')
    parser.add_argument('--rounds', type=int, default=5, help='blocks per graph, interleaved')
    parser.add_argument('--check', action='store_true',
                        help="first compare every graph's loss and gradients with dynamic_rnn's")
    args = parser.parse_args()
    rng = np.random.RandomState(0)
    batches = [rng.randint(1, len(VOCAB) + 1, (BATCH_SIZE, WINDOW)).astype(np.int32)
               for _ in range(4)]
    print('stack: {} (tensorflow {})'.format('tf1' if TF1 else 'tf2', tf.__version__))
    for cell in args.cells.split(','):
        graphs = [g for g in args.graphs.split(',')
                  if g not in ('block', 'hybrid') or cell == 'lstm']
        built = {g: build(cell, g) for g in graphs}
        times = {g: [] for g in graphs}
        if args.check:
            check(built, batches[0])
        for g, (sess, step, seq, _) in built.items():   # warm-up
            for batch in batches:
                sess.run(step, {seq: batch})
        for _ in range(args.rounds):
            for g, (sess, step, seq, _) in built.items():
                start = time.perf_counter()
                for i in range(args.steps):
                    sess.run(step, {seq: batches[i % len(batches)]})
                times[g].append((time.perf_counter() - start) / args.steps * 1000)
        base = statistics.median(times['dynamic_rnn']) if 'dynamic_rnn' in times else None
        for g in graphs:
            median = statistics.median(times[g])
            ratio = ' x{:.2f}'.format(base / median) if base else ''
            print('{:5} {:12} {:7.1f} ms/step (best {:.1f}){}'.format(
                cell, g, median, min(times[g]), ratio))
        for sess, _, _, _ in built.values():
            sess.close()


if __name__ == '__main__':
    main()
