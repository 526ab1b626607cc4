"""tf1rnn/kernels.py: cell_stack computes what dynamic_rnn over the MultiRNNCell of the same
cells computes (outputs, final states, a loss and its gradients), with the cells' own
variables."""
import numpy as np
import pytest

from tf1rnn import kernels
from utils import tf, rnn

VOCAB, SIZES, BATCH, STEPS = 6, (5, 7), 4, 9
CELLS = {'gru': rnn.GRUCell, 'lstm': rnn.LSTMCell, 'basic_lstm': rnn.BasicLSTMCell,
         'rnn': rnn.BasicRNNCell}


def _both_graphs(cell, lengths=None, forget_bias=None):
    """dynamic_rnn and cell_stack over the same cells, one-hot inputs of ids [B, T], random
    weights and initial states. Returns {graph: (outputs [B, T, H], final states, loss,
    gradients of every variable, gradients of the initial states)} as arrays, the
    variables' names, and the op types of the cell_stack graph and its gradient."""
    rng = np.random.RandomState(3)
    ids = rng.randint(1, VOCAB + 1, size=(BATCH, STEPS)).astype(np.int32)
    ids[1, 4] = 0                       # padding inside a row: x = 0 at that step
    weight = rng.uniform(-1, 1, (BATCH, STEPS, SIZES[-1])).astype(np.float32)
    mask = np.ones((BATCH, STEPS, 1), np.float32)
    if lengths is not None:
        mask = (np.arange(STEPS)[None, :, None] < np.array(lengths)[:, None, None]).astype(
            np.float32)
    graph = tf.Graph()
    with graph.as_default():
        kwargs = {} if forget_bias is None else {'forget_bias': forget_bias}
        cells = [CELLS[cell](n, **kwargs) for n in SIZES]
        multi = rnn.MultiRNNCell(cells)
        zero = multi.zero_state(BATCH, tf.float32)
        in_state = tf.nest.pack_sequence_as(zero, [
            tf.placeholder_with_default(s, [None, s.shape[1]]) for s in tf.nest.flatten(zero)])
        flat_in = tf.nest.flatten(in_state)
        seq_len = None if lengths is None else tf.constant(lengths)
        outputs, state = tf.nn.dynamic_rnn(multi, tf.one_hot(ids - 1, VOCAB), seq_len, in_state)
        variables = tf.trainable_variables()
        sizes = [VOCAB] + list(SIZES[:-1])
        weights = [kernels.cell_weights(c, n) for c, n in zip(cells, sizes)]
        gx0 = kernels.one_hot_projection(weights[0], tf.transpose(ids))
        before = set(graph.get_operations())
        top, finals = kernels.cell_stack(gx0, list(in_state), weights, lengths=seq_len)
        fast_ops = set(graph.get_operations()) - before
        assert tf.trainable_variables() == variables      # the cells' own, nothing new
        results = {}
        for name, out, final in (('dynamic_rnn', outputs, state),
                                 ('cell_stack', tf.transpose(top, [1, 0, 2]), finals)):
            out = out * mask
            loss = tf.reduce_sum(out * weight)
            before = set(graph.get_operations())
            grads = tf.gradients(loss, variables + flat_in)
            if name == 'cell_stack':
                fast_ops |= set(graph.get_operations()) - before
            results[name] = (out, tf.nest.flatten(final), loss, grads[:len(variables)],
                             grads[len(variables):])
        op_types = {op.type for op in fast_ops}
        with tf.Session() as sess:
            for var in variables:
                var.load(rng.uniform(-0.7, 0.7, var.shape.as_list()), sess)
            feed = {s: rng.uniform(-0.9, 0.9, (BATCH, s.shape[1].value)) for s in flat_in}
            results = sess.run(results, feed)
    return results, [v.op.name for v in variables], op_types


def _assert_same(results):
    want, got = results['dynamic_rnn'], results['cell_stack']
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)          # outputs
    assert len(got[1]) == len(want[1])
    for part, want_part in zip(got[1], want[1]):                                 # final states
        np.testing.assert_allclose(part, want_part, rtol=1e-5, atol=1e-5)
    assert got[2] == pytest.approx(want[2], rel=1e-5)                            # loss
    for grads, want_grads in ((got[3], want[3]), (got[4], want[4])):             # gradients
        for i, (grad, want_grad) in enumerate(zip(grads, want_grads)):
            assert np.abs(want_grad).max() > 1e-3, i     # every gradient really compared
            np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-5, err_msg=str(i))


@pytest.mark.parametrize('cell', sorted(CELLS))
def test_cell_stack_is_dynamic_rnn_over_the_same_cells(cell):
    results, names, op_types = _both_graphs(cell)
    _assert_same(results)
    # The gradient is the written-out one (IdentityN: tf.custom_gradient), not tf.gradients
    # through a while loop, which saves every step's values on stacks.
    assert 'IdentityN' in op_types and 'StackPopV2' not in op_types
    prefix = {'gru': 'gru_cell', 'lstm': 'lstm_cell', 'basic_lstm': 'basic_lstm_cell',
              'rnn': 'basic_rnn_cell'}[cell]
    assert all(name.startswith('rnn/multi_rnn_cell/cell_') and prefix in name for name in names)


@pytest.mark.parametrize('cell', sorted(CELLS))
def test_with_lengths_the_final_state_is_the_state_at_each_rows_end(cell):
    """lengths: as dynamic_rnn's sequence_length, the final states are the states after
    each row's steps (the initial state for an empty row); the outputs before then, and
    the gradients of a loss of them, are the same."""
    results, _, _ = _both_graphs(cell, lengths=[STEPS, 3, 0, 1])
    _assert_same(results)


@pytest.mark.parametrize('cell', ['lstm', 'basic_lstm'])
def test_the_lstms_forget_bias_is_the_cells(cell):
    _assert_same(_both_graphs(cell, forget_bias=0.3)[0])


@pytest.mark.parametrize('make', [
    lambda: rnn.LSTMCell(3, use_peepholes=True), lambda: rnn.LSTMCell(3, num_proj=2),
    lambda: rnn.LSTMCell(3, cell_clip=1.0), lambda: rnn.BasicRNNCell(3, activation=tf.nn.relu),
    lambda: rnn.DropoutWrapper(rnn.GRUCell(3))])
def test_cells_without_a_fast_graph_are_refused(make):
    with tf.Graph().as_default():
        cell = make()
        tf.nn.dynamic_rnn(cell, tf.zeros([2, 4, 3]), dtype=tf.float32)
        with pytest.raises(ValueError):
            kernels.cell_weights(cell, 3)
