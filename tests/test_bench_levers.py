"""The benchmarks' speed levers compute the lecture's model: same weights, same numbers.

bench/lecture_char_rnn.py rebuilds the lecture's CharRNN and offers one opt-in
variant, the fused GRUBlockCell kernel (a raw op with a registered gradient on
TF2). It must give the lecture graph's loss, gradients and final state for the
same weights and batch.
"""
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'bench'))

import lecture_char_rnn as lecture  # noqa: E402
from utils import tf  # noqa: E402

DEPTH = len(lecture.VOCAB)


def lecture_batch(seed=0):
    """Windows with the lecture's corner cases: padding (id 0), the last vocabulary id
    (an all-zero one-hot of depth len(vocab)), and different real lengths."""
    rng = np.random.RandomState(seed)
    batch = rng.randint(1, DEPTH, size=(4, 9)).astype(np.int32)
    batch[1, 6:] = 0
    batch[2, 3] = DEPTH
    batch[3, 2:] = 0
    return batch


def run_graph(levers, batch, weights=None):
    """(weights by name, loss, gradients by name, final states) of CharRNN(levers) on batch."""
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(1)
        model = lecture.CharRNN(levers=levers)
        model.create_model()
        variables = tf.trainable_variables()
        grads = tf.gradients(model.loss, variables)
        with tf.Session(graph=graph) as sess:
            sess.run(tf.global_variables_initializer())
            names = [v.op.name for v in variables]
            if weights is not None:
                assert sorted(names) == sorted(weights), 'the lever changed the variables'
                for v in variables:
                    v.load(weights[v.op.name], sess)
            values = sess.run(variables)
            loss, grad_values, states = sess.run([model.loss, grads, model.out_state],
                                                 {model.seq: batch})
    return (dict(zip(names, values)), loss, dict(zip(names, grad_values)), states)


@pytest.fixture(scope='module')
def baseline():
    batch = lecture_batch()
    return (batch,) + run_graph((), batch)


@pytest.mark.parametrize('levers', [('fused',)])
def test_lever_computes_the_lecture_model(baseline, levers):
    batch, weights, loss, grads, states = baseline
    _, lever_loss, lever_grads, lever_states = run_graph(levers, batch, weights)
    assert loss > 0
    np.testing.assert_allclose(lever_loss, loss, rtol=1e-5)
    for name, grad in grads.items():
        scale = np.abs(grad).max()
        assert scale > 0, name
        np.testing.assert_allclose(lever_grads[name], grad, rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=name)
    for state, lever_state in zip(states, lever_states):
        np.testing.assert_allclose(lever_state, state, rtol=1e-5, atol=1e-6)


def test_other_weights_change_the_numbers(baseline):
    """The comparison above would notice a lever that computed something else."""
    batch, weights, _, grads, _ = baseline
    changed = dict(weights)
    name = [n for n in weights if n.endswith('cell_1/gru_cell/candidate/kernel')][0]
    changed[name] = weights[name] * 1.5
    _, _, other_grads, _ = run_graph(('fused',), batch, changed)
    worst = max(np.abs(other_grads[n] - g).max() / np.abs(g).max() for n, g in grads.items())
    assert worst > 1e-2


def test_unknown_lever_is_refused():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match='unknown levers'):
            lecture.CharRNN(levers=('turbo',))
