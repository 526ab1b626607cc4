"""The fast graphs of both scripts: stacked GRU, LSTM and basic RNN layers over a whole
window, each cell's math and own variables in fewer, larger ops.

    top, states = kernels.fast_stack(cells, kernels.OneHot(ids, vocab_size), initial_states)

fast_stack runs the fastest exact graph measured for the cells' kind on both stacks
(bench/cell_stacks.py): LSTMCell or BasicLSTMCell layers as one fused BlockLSTM op each,
GRUCell and BasicRNNCell layers by stacked.cell_stack (every layer per step in one loop, the
gradient written out). The cells must be built (e.g. by dynamic_rnn over their
MultiRNNCell): the weights are the cells' own variables, so both graphs share a checkpoint.
"""
import collections

from utils import tf, rnn, TF1
from tf1rnn.stacked import GRUWeights, LSTMWeights, RNNWeights, at_lengths, cell_stack

if TF1:
    from tensorflow.contrib.rnn.python.ops import lstm_ops as _contrib_lstm_ops

# Time-major one-hot inputs, as ids: id i (1..depth) sets column i - 1, id 0 (padding) none.
OneHot = collections.namedtuple('OneHot', 'ids depth')

_LSTMS = (rnn.LSTMCell, rnn.BasicLSTMCell)


def _variables(cell):
    """A built cell's variables by their last two name parts ('gates/kernel', ...)."""
    return {'/'.join(v.op.name.split('/')[-2:]): v for v in cell.weights}


def _kernel_and_bias(cell):
    named = {name.split('/')[-1]: v for name, v in _variables(cell).items()}
    return named['kernel'], named['bias']


def gru_weights(cell, input_size):
    """A built GRUCell's variables as GRUWeights(w_x [n, 3H], b [3H], w_ru [H, 2H], w_c [H, H]).

    GRUCell multiplies [x, h] by gates/kernel ([n + H, 2H]) and [x, r * h] by
    candidate/kernel ([n + H, H]); the rows for x and for h are split apart here, so the
    input part can be one large matmul over every step and only h's part stays per step.
    """
    named = _variables(cell)
    gates, candidate = named['gates/kernel'], named['candidate/kernel']
    w_x = tf.concat([gates[:input_size], candidate[:input_size]], 1)
    b = tf.concat([named['gates/bias'], named['candidate/bias']], 0)
    return GRUWeights(w_x, b, gates[input_size:], candidate[input_size:])


def _check_lstm(cell):
    if (not getattr(cell, '_state_is_tuple', False) or cell._activation is not tf.tanh
            or getattr(cell, '_use_peepholes', False) or getattr(cell, '_num_proj', None)
            or getattr(cell, '_cell_clip', None)):
        raise ValueError('{} is not a plain LSTM (tanh, a tuple state, no peepholes, '
                         'projection or clipping)'.format(cell.name))


def lstm_weights(cell, input_size):
    """A built LSTMCell's or BasicLSTMCell's variables as LSTMWeights(w_x [n, 4H], b [4H],
    w_h [H, 4H]), gates in the cells' order (i, j, f, o); the forget bias is added into b's
    f part, so a gate's pre-activation is x @ w_x + h @ w_h + b. Only the cells' plain LSTM:
    tanh, a tuple state, no peepholes, projection or clipping."""
    _check_lstm(cell)
    kernel, bias = _kernel_and_bias(cell)
    units = cell.output_size
    b = tf.concat([bias[:2 * units], bias[2 * units:3 * units] + cell._forget_bias,
                   bias[3 * units:]], 0)
    return LSTMWeights(kernel[:input_size], b, kernel[input_size:])


def rnn_weights(cell, input_size):
    """A built BasicRNNCell's (tanh) variables as RNNWeights(w_x [n, H], b [H], w_h [H, H])."""
    if cell._activation is not tf.tanh:
        raise ValueError('{} is not a tanh BasicRNNCell'.format(cell.name))
    kernel, bias = _kernel_and_bias(cell)
    return RNNWeights(kernel[:input_size], bias, kernel[input_size:])


def cell_weights(cell, input_size):
    """gru_weights, lstm_weights or rnn_weights of a built GRUCell, LSTMCell, BasicLSTMCell
    or BasicRNNCell with inputs of input_size: what stacked.cell_stack takes."""
    for kind, weights in ((rnn.GRUCell, gru_weights), (rnn.BasicRNNCell, rnn_weights),
                          (_LSTMS, lstm_weights)):
        if isinstance(cell, kind):
            return weights(cell, input_size)
    raise ValueError('no fast graph for {}'.format(type(cell).__name__))


def one_hot_projection(weights, ids):
    """x @ w_x + b for x = one_hot(ids - 1) (ids of any shape, 1..n; id 0, padding, is x = 0):
    a gather of w_x's rows, the first layer's gx0 for cell_stack."""
    w_x, b = weights[:2]
    return tf.gather(tf.concat([tf.zeros_like(w_x[:1]), w_x], 0), ids) + b


def block_lstm(inputs, state, cell, lengths=None):
    """(outputs [T, B, H], final LSTMStateTuple) of a built plain LSTMCell or BasicLSTMCell
    over time-major inputs [T, B, n] as one BlockLSTM op (the kernel of contrib's
    LSTMBlockFusedCell; tf.raw_ops.BlockLSTM on both stacks, its gradient registered by
    TensorFlow). lengths and the final state: as in cell_stack."""
    _check_lstm(cell)
    kernel, bias = _kernel_and_bias(cell)
    c0, h0 = state
    peephole = tf.zeros([cell.output_size])    # unused: use_peephole=False
    _, cs, _, _, _, _, hs = tf.raw_ops.BlockLSTM(
        seq_len_max=tf.cast(tf.shape(inputs)[0], tf.int64), x=inputs, cs_prev=c0, h_prev=h0,
        w=kernel, wci=peephole, wcf=peephole, wco=peephole, b=bias,
        forget_bias=cell._forget_bias, cell_clip=-1.0, use_peephole=False)
    hs.set_shape(inputs.shape[:2].concatenate([cell.output_size]))
    final = [tf.stop_gradient(at_lengths(s0, s, lengths)) for s0, s in ((c0, cs), (h0, hs))]
    return hs, tf.nest.pack_sequence_as(state, final)


def fast_stack(cells, inputs, states, lengths=None):
    """(the top layer's outputs [T, B, H], each layer's final state) of built cells of one
    kind (GRUCell, LSTMCell or BasicLSTMCell, or BasicRNNCell), as dynamic_rnn over their
    MultiRNNCell computes them, by the fastest exact graph for the kind (see above).

    inputs: time-major, float [T, B, n] or OneHot(ids [T, B], depth). states: each layer's
    initial state (h, or LSTMStateTuple(c, h)). lengths [B] (optional): each row's real
    steps; the final states are the states after them (dynamic_rnn's sequence_length), the
    outputs after a row's end are not zeroed. The final states are values: no gradient
    flows back through them.
    """
    one_hot = isinstance(inputs, OneHot)
    if all(isinstance(cell, _LSTMS) for cell in cells):
        x = tf.one_hot(inputs.ids - 1, inputs.depth) if one_hot else inputs
        finals = []
        for cell, state in zip(cells, states):
            x, final = block_lstm(x, state, cell, lengths)
            finals.append(final)
        return x, finals
    sizes = [inputs.depth if one_hot else inputs.shape[-1].value]
    sizes += [cell.output_size for cell in cells[:-1]]
    weights = [cell_weights(cell, n) for cell, n in zip(cells, sizes)]
    if one_hot:
        gx0 = one_hot_projection(weights[0], inputs.ids)
    else:
        w_x, b = weights[0][:2]
        gx0 = tf.tensordot(inputs, w_x, 1) + b
    return cell_stack(gx0, states, weights, lengths)


def gru_stack(gx0, h0s, weights, parallel_iterations=32):
    """The top layer's outputs [T, B, H] of stacked GRUCells: cell_stack's, for gru_weights()
    of each layer (or (w_x, b, w_ru, w_c) tuples) and initial states h0s."""
    weights = [GRUWeights(*layer) for layer in weights]
    return cell_stack(gx0, h0s, weights, parallel_iterations=parallel_iterations)[0]


def run_fused(cell, inputs):
    """(outputs [T, B, H], final state) of a GRUCell, BasicLSTMCell or LSTMCell (without
    peepholes, projection or clipping) over time-major inputs [T, B, n], every sequence
    full length; None for any other cell.

    The same variables as dynamic_rnn in the current scope (the cell is called once on the
    first step to make them). LSTMs run as one BlockLSTM op over all steps, the kernel of
    contrib's LSTMBlockFusedCell (TF 2 keeps it as tf.raw_ops.BlockLSTM, with its gradient);
    GRUCell by gru_stack, its input projection one matmul over all steps.
    """
    lstm = isinstance(cell, (rnn.BasicLSTMCell, rnn.LSTMCell))
    if not lstm and not isinstance(cell, rnn.GRUCell):
        return None
    if isinstance(cell, rnn.LSTMCell) and (cell._use_peepholes or cell._num_proj
                                           or cell._cell_clip):
        return None
    cell(inputs[0], cell.zero_state(tf.shape(inputs)[1], tf.float32))   # builds the variables
    units, size = cell.output_size, inputs.shape[-1].value
    zeros = tf.zeros([tf.shape(inputs)[1], units])
    if not lstm:
        w_x, b, w_ru, w_c = gru_weights(cell, size)
        gx = tf.reshape(tf.matmul(tf.reshape(inputs, [-1, size]), w_x) + b,
                        tf.concat([tf.shape(inputs)[:2], [3 * units]], 0))
        outputs = gru_stack(gx, [zeros], [(w_x, b, w_ru, w_c)])
        return outputs, outputs[-1]
    kernel, bias = cell.weights[:2]
    block_lstm = _contrib_lstm_ops._block_lstm if TF1 else tf.raw_ops.BlockLSTM
    peephole = tf.zeros([units])   # unused: use_peephole=False
    _, c, _, _, _, _, h = block_lstm(
        seq_len_max=tf.cast(tf.shape(inputs)[0], tf.int64), x=inputs, w=kernel, b=bias,
        cs_prev=zeros, h_prev=zeros, wci=peephole, wcf=peephole, wco=peephole,
        forget_bias=cell._forget_bias, cell_clip=-1.0, use_peephole=False)
    return h, rnn.LSTMStateTuple(c[-1], h[-1])
