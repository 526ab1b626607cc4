"""tf1rnn/kernels.py and stacked.py: cell_stack and fast_stack compute what dynamic_rnn over
the MultiRNNCell of the same cells computes (outputs, final states, a loss and its
gradients, those of the initial states included), with the cells' own variables."""
import numpy as np
import pytest

from tf1rnn import kernels
from utils import tf, rnn

VOCAB, SIZES, BATCH, STEPS = 6, (5, 7), 4, 9
CELLS = {'gru': rnn.GRUCell, 'lstm': rnn.LSTMCell, 'basic_lstm': rnn.BasicLSTMCell,
         'rnn': rnn.BasicRNNCell}


def _fast_graphs(cells, inputs, in_state, lengths):
    """{name: (outputs [T, B, H], final states)} of each fast graph over time-major inputs
    (OneHot, or floats)."""
    sizes = [VOCAB] + list(SIZES[:-1])
    weights = [kernels.cell_weights(c, n) for c, n in zip(cells, sizes)]
    if isinstance(inputs, kernels.OneHot):
        gx0 = kernels.one_hot_projection(weights[0], inputs.ids)
    else:
        gx0 = tf.tensordot(inputs, weights[0].w_x, 1) + weights[0].b
    return {'cell_stack': lambda: kernels.cell_stack(gx0, list(in_state), weights, lengths),
            'fast_stack': lambda: kernels.fast_stack(cells, inputs, list(in_state), lengths)}


def _all_graphs(cell, lengths=None, dense=False, forget_bias=None):
    """dynamic_rnn, cell_stack and fast_stack over the same cells, for ids [B, T] as one-hot
    inputs (or random floats: dense), random weights and initial states. Returns {graph:
    (outputs [B, T, H], final states, loss, gradients of every variable, gradients of the
    initial states)} as arrays, the variables' names, and {graph: its ops' types}."""
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
        if dense:
            x = tf.constant(rng.normal(size=(BATCH, STEPS, VOCAB)).astype(np.float32))
            inputs = tf.transpose(x, [1, 0, 2])
        else:
            x, inputs = tf.one_hot(ids - 1, VOCAB), kernels.OneHot(tf.transpose(ids), VOCAB)
        graphs = {'dynamic_rnn': lambda: tf.nn.dynamic_rnn(multi, x, seq_len, in_state)}
        graphs['dynamic_rnn']()                                 # builds the cells' variables
        variables = tf.trainable_variables()
        graphs.update(_fast_graphs(cells, inputs, in_state, seq_len))
        results, op_types = {}, {}
        for name, build in sorted(graphs.items()):
            before = set(graph.get_operations())
            out, final = build()
            if name != 'dynamic_rnn':
                out = tf.transpose(out, [1, 0, 2])
            out = out * mask
            loss = tf.reduce_sum(out * weight)
            grads = tf.gradients(loss, variables + flat_in)
            op_types[name] = {op.type for op in set(graph.get_operations()) - before}
            results[name] = (out, tf.nest.flatten(final), loss, grads[:len(variables)],
                             grads[len(variables):])
        assert tf.trainable_variables() == variables      # the cells' own, nothing new
        with tf.Session() as sess:
            for var in variables:
                var.load(rng.uniform(-0.7, 0.7, var.shape.as_list()), sess)
            feed = {s: rng.uniform(-0.9, 0.9, (BATCH, s.shape[1].value)) for s in flat_in}
            results = sess.run(results, feed)
    return results, [v.op.name for v in variables], op_types


def _assert_same(results):
    want = results['dynamic_rnn']
    for name in ('cell_stack', 'fast_stack'):
        got = results[name]
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5, err_msg=name)
        assert len(got[1]) == len(want[1])
        for part, want_part in zip(got[1], want[1]):                          # final states
            np.testing.assert_allclose(part, want_part, rtol=1e-5, atol=1e-5, err_msg=name)
        assert got[2] == pytest.approx(want[2], rel=1e-5)                     # loss
        for grads, want_grads in ((got[3], want[3]), (got[4], want[4])):      # gradients
            for i, (grad, want_grad) in enumerate(zip(grads, want_grads)):
                assert np.abs(want_grad).max() > 1e-3, i   # every gradient really compared
                np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-5,
                                           err_msg='{} {}'.format(name, i))


@pytest.mark.parametrize('cell', sorted(CELLS))
def test_the_fast_graphs_are_dynamic_rnn_over_the_same_cells(cell):
    results, names, op_types = _all_graphs(cell)
    _assert_same(results)
    prefix = {'gru': 'gru_cell', 'lstm': 'lstm_cell', 'basic_lstm': 'basic_lstm_cell',
              'rnn': 'basic_rnn_cell'}[cell]
    assert all(name.startswith('rnn/multi_rnn_cell/cell_') and prefix in name for name in names)
    # cell_stack's gradient is the written-out one (IdentityN: tf.custom_gradient), not
    # tf.gradients through a while loop, which saves every step's values on stacks.
    assert 'IdentityN' in op_types['cell_stack'] and 'StackPopV2' not in op_types['cell_stack']
    # fast_stack: LSTMs by BlockLSTM (no loop), the others by cell_stack.
    lstm = cell in ('lstm', 'basic_lstm')
    assert ('BlockLSTM' in op_types['fast_stack']) == lstm
    assert ('IdentityN' in op_types['fast_stack']) != lstm
    assert 'StackPopV2' not in op_types['fast_stack']


@pytest.mark.parametrize('cell', sorted(CELLS))
def test_with_lengths_the_final_state_is_the_state_at_each_rows_end(cell):
    """lengths: as dynamic_rnn's sequence_length, the final states are the states after
    each row's steps (the initial state for an empty row); the outputs before then, and
    the gradients of a loss of them, are the same. Float inputs: gx0 is a matmul."""
    _assert_same(_all_graphs(cell, lengths=[STEPS, 3, 0, 1], dense=True)[0])


@pytest.mark.parametrize('cell', ['lstm', 'basic_lstm'])
def test_the_lstms_forget_bias_is_the_cells(cell):
    _assert_same(_all_graphs(cell, forget_bias=0.3)[0])


@pytest.mark.parametrize('make', [
    lambda: [rnn.LSTMCell(3, use_peepholes=True)], lambda: [rnn.LSTMCell(3, num_proj=2)],
    lambda: [rnn.LSTMCell(3, cell_clip=1.0)], lambda: [rnn.BasicRNNCell(3, activation=tf.nn.relu)],
    lambda: [rnn.DropoutWrapper(rnn.GRUCell(3))], lambda: [rnn.GRUCell(3), rnn.BasicRNNCell(3)],
    lambda: [rnn.LSTMCell(3), rnn.GRUCell(3)]])
def test_cells_without_a_fast_graph_are_refused(make):
    with tf.Graph().as_default():
        cells = make()
        multi = rnn.MultiRNNCell(cells)
        tf.nn.dynamic_rnn(multi, tf.zeros([2, 4, 3]), dtype=tf.float32)
        with pytest.raises(ValueError):
            kernels.fast_stack(cells, tf.zeros([4, 2, 3]), list(multi.zero_state(2, tf.float32)))
