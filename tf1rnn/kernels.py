"""Stacks of GRU, LSTM and basic RNN layers over a whole window (the cells' math and
variables in fewer, larger ops, the gradient written out) and the fused LSTM kernel: the
fast graphs of both scripts.

    sizes = [vocab_size] + hidden_sizes[:-1]             # each layer's input size
    weights = [kernels.cell_weights(cell, n) for cell, n in zip(cells, sizes)]
    gx0 = kernels.one_hot_projection(weights[0], ids)    # ids [T, B]: 1..vocab, 0 padding
    top, states = kernels.cell_stack(gx0, initial_states, weights)

The cells must be built (e.g. by dynamic_rnn over their MultiRNNCell): the weights are
slices of the cells' own variables, so both graphs share one checkpoint.
"""
import collections

from utils import tf, rnn, TF1

if TF1:
    from tensorflow.contrib.rnn.python.ops import lstm_ops as _contrib_lstm_ops

# A layer's weights: the input projection (w_x, b: gx = x @ w_x + b, every gate of a step)
# and the recurrent matrices the step multiplies h by.
GRUWeights = collections.namedtuple('GRUWeights', 'w_x b w_ru w_c')
LSTMWeights = collections.namedtuple('LSTMWeights', 'w_x b w_h')
RNNWeights = collections.namedtuple('RNNWeights', 'w_x b w_h')


def _variables(cell):
    """A built cell's variables by their last two name parts ('gates/kernel', ...)."""
    return {'/'.join(v.op.name.split('/')[-2:]): v for v in cell.weights}


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


def lstm_weights(cell, input_size):
    """A built LSTMCell's or BasicLSTMCell's variables as LSTMWeights(w_x [n, 4H], b [4H],
    w_h [H, 4H]), gates in the cells' order (i, j, f, o); the forget bias is added into b's
    f part, so a gate's pre-activation is x @ w_x + h @ w_h + b. Only the cells' plain LSTM:
    tanh, a tuple state, no peepholes, projection or clipping."""
    if (not getattr(cell, '_state_is_tuple', False) or cell._activation is not tf.tanh
            or getattr(cell, '_use_peepholes', False) or getattr(cell, '_num_proj', None)
            or getattr(cell, '_cell_clip', None)):
        raise ValueError('lstm_weights: {} is not a plain LSTM'.format(cell.name))
    named = {name.split('/')[-1]: v for name, v in _variables(cell).items()}
    kernel, bias, units = named['kernel'], named['bias'], cell.output_size
    b = tf.concat([bias[:2 * units], bias[2 * units:3 * units] + cell._forget_bias,
                   bias[3 * units:]], 0)
    return LSTMWeights(kernel[:input_size], b, kernel[input_size:])


def rnn_weights(cell, input_size):
    """A built BasicRNNCell's (tanh) variables as RNNWeights(w_x [n, H], b [H], w_h [H, H])."""
    if cell._activation is not tf.tanh:
        raise ValueError('rnn_weights: {} is not a tanh BasicRNNCell'.format(cell.name))
    named = {name.split('/')[-1]: v for name, v in _variables(cell).items()}
    return RNNWeights(named['kernel'][:input_size], named['bias'],
                      named['kernel'][input_size:])


def cell_weights(cell, input_size):
    """gru_weights, lstm_weights or rnn_weights of a built GRUCell, (Basic)LSTMCell or
    BasicRNNCell with inputs of input_size."""
    for kind, weights in ((rnn.GRUCell, gru_weights), (rnn.BasicRNNCell, rnn_weights),
                          ((rnn.LSTMCell, rnn.BasicLSTMCell), lstm_weights)):
        if isinstance(cell, kind):
            return weights(cell, input_size)
    raise ValueError('no fast graph for {}'.format(type(cell).__name__))


def one_hot_projection(weights, ids):
    """x @ w_x + b for x = one_hot(ids - 1) (ids of any shape, 1..n; id 0, padding, is x = 0):
    a gather of w_x's rows, the first layer's gx for cell_stack."""
    w_x, b = weights[:2]
    return tf.gather(tf.concat([tf.zeros_like(w_x[:1]), w_x], 0), ids) + b


def _rows(x):
    return tf.reshape(x, [-1, x.shape[-1].value])


# Each cell's math for cell_stack: the step forward and backward, and the values the
# backward step reads, computed for all steps at once. A layer's state is a list (GRU and
# RNN: [h]; LSTM: [c, h]), its output the last item; gx and dz are [B, gates] (the input
# projection and its gradient); w_t holds the transposed weights.

class _GRU(object):
    saved_sizes = staticmethod(lambda n: [n, 2 * n, n])           # h, (r u), c

    @staticmethod
    def forward(gx, state, w):
        h, ru, c = gru_step(gx, state[0], w.w_ru, w.w_c)
        return [h], tf.concat([h, ru, c], 1)

    @staticmethod
    def prepare(prev, saved):
        # u, r, and the factors of dh that do not depend on it.
        (h_prev,), (_, ru, c) = prev, saved
        r, u = tf.split(ru, 2, axis=2)
        dr, du = tf.split(ru * (1 - ru), 2, axis=2)               # sigmoid'
        return tf.concat([u, r, (1 - u) * (1 - tf.square(c)), h_prev * dr,
                          (h_prev - c) * du], 2)

    @staticmethod
    def backward(d_out, d_state, row, w_t, n):
        u, r, d_c_pre, dr_pre, du_pre = tf.split(row, [n] * 5, 1)
        g = d_out + d_state[0]                                    # dL/dh_t
        d_c = g * d_c_pre                                         # dL/d candidate pre-act.
        d_rh = tf.matmul(d_c, w_t.w_c)                            # dL/d (r * h_prev)
        d_ru = tf.concat([d_rh * dr_pre, g * du_pre], 1)
        return tf.concat([d_ru, d_c], 1), [g * u + d_rh * r + tf.matmul(d_ru, w_t.w_ru)]

    @staticmethod
    def recurrent_gradients(dz, prev, saved, n):
        h_prev, r = _rows(prev[0]), _rows(saved[1][:, :, :n])
        return [tf.matmul(h_prev, dz[:, :2 * n], transpose_a=True),
                tf.matmul(r * h_prev, dz[:, 2 * n:], transpose_a=True)]


class _LSTM(object):
    saved_sizes = staticmethod(lambda n: [n, n, 4 * n])           # c, h, gates (i j f o)

    @staticmethod
    def forward(gx, state, w):
        c, h = state
        i, j, f, o = tf.split(gx + tf.matmul(h, w.w_h), 4, axis=1)
        i, j, f, o = tf.sigmoid(i), tf.tanh(j), tf.sigmoid(f), tf.sigmoid(o)
        c = f * c + i * j
        h = o * tf.tanh(c)
        return [c, h], tf.concat([c, h, i, j, f, o], 1)

    @staticmethod
    def prepare(prev, saved):
        # dc_t = dc + dh * a; dz = [dc_t, dc_t, dc_t, dh] * factors; dc_prev = dc_t * f.
        (c_prev, _), (c, _, gates) = prev, saved
        i, j, f, o = tf.split(gates, 4, axis=2)
        tanh_c = tf.tanh(c)
        return tf.concat([o * (1 - tf.square(tanh_c)), i * (1 - i) * j, i * (1 - tf.square(j)),
                          f * (1 - f) * c_prev, o * (1 - o) * tanh_c, f], 2)

    @staticmethod
    def backward(d_out, d_state, row, w_t, n):
        a, factors, f = tf.split(row, [n, 4 * n, n], 1)
        g = d_out + d_state[1]                                    # dL/dh_t
        d_c = d_state[0] + g * a                                  # dL/dc_t
        dz = tf.concat([d_c, d_c, d_c, g], 1) * factors
        return dz, [d_c * f, tf.matmul(dz, w_t.w_h)]

    @staticmethod
    def recurrent_gradients(dz, prev, saved, n):
        return [tf.matmul(_rows(prev[1]), dz, transpose_a=True)]


class _RNN(object):
    saved_sizes = staticmethod(lambda n: [n])                     # h

    @staticmethod
    def forward(gx, state, w):
        h = tf.tanh(gx + tf.matmul(state[0], w.w_h))
        return [h], h

    @staticmethod
    def prepare(prev, saved):
        return 1 - tf.square(saved[0])                            # tanh'

    @staticmethod
    def backward(d_out, d_state, row, w_t, n):
        dz = (d_out + d_state[0]) * row
        return dz, [tf.matmul(dz, w_t.w_h)]

    @staticmethod
    def recurrent_gradients(dz, prev, saved, n):
        return [tf.matmul(_rows(prev[0]), dz, transpose_a=True)]


_KINDS = {GRUWeights: _GRU, LSTMWeights: _LSTM, RNNWeights: _RNN}


def gru_step(gx, h, w_ru, w_c):
    """One GRUCell step, given gx = x @ w_x + b: the new h, and (r u) and c for the gradient."""
    units = w_c.shape[0].value
    ru = tf.sigmoid(gx[:, :2 * units] + tf.matmul(h, w_ru))
    r, u = tf.split(ru, 2, axis=1)
    c = tf.tanh(gx[:, 2 * units:] + tf.matmul(r * h, w_c))
    return c + u * (h - c), ru, c    # u * h + (1 - u) * c


def cell_stack(gx0, states, weights, lengths=None, parallel_iterations=32):
    """(the top layer's outputs [T, B, H], each layer's final state) of stacked cells of one
    kind over time-major inputs, as dynamic_rnn over their MultiRNNCell computes them.

    gx0 [T, B, gates]: the first layer's input projection x @ w_x + b, biases included (the
    caller computes it as one op: one_hot_projection, or a matmul). states: each layer's
    initial state, in the cell's structure (h, or LSTMStateTuple(c, h)). weights:
    cell_weights() of each layer (layer 0's w_x and b unused). lengths [B] (optional): each
    row's real steps; a final state is then the state after them (the initial one for 0),
    as with dynamic_rnn's sequence_length. The outputs after a row's end are not zeroed, as
    dynamic_rnn's are: they cannot change the outputs before them.

    Every time step runs all layers, as MultiRNNCell does, so that layer 1 of step t + 1
    overlaps layer 2 of step t. The gradient is written out: the backward loop carries only
    the state's gradient, and each weight gradient is one matmul over all steps, where
    tf.gradients of a while loop would multiply and sum [B, n] x [B, H] per step. The final
    states are values (tf.stop_gradient): no gradient flows back through them.
    """
    kind = _KINDS[type(weights[0])]
    layers, fields = len(weights), len(weights[0])
    units = [layer[-1].shape[0].value for layer in weights]
    flat_states = [tf.nest.flatten(state) for state in states]
    parts = len(flat_states[0])
    flat = [gx0] + [s for state in flat_states for s in state] + [w for ws in weights for w in ws]

    @tf.custom_gradient
    def stack(*flat):
        gx0, s0 = flat[0], [list(flat[1 + parts * l:1 + parts * (l + 1)]) for l in range(layers)]
        ws = flat[1 + parts * layers:]
        ws = [type(weights[l])(*ws[fields * l:fields * (l + 1)]) for l in range(layers)]
        steps = tf.shape(gx0)[0]
        array = lambda: tf.TensorArray(tf.float32, size=steps)
        gx0_t = array().unstack(gx0)

        def forward(t, states, saved):
            x, new_states, new_saved = None, [], []
            for l, (w, state) in enumerate(zip(ws, states)):
                gx = gx0_t.read(t) if l == 0 else tf.matmul(x, w.w_x) + w.b
                state, row = kind.forward(gx, state, w)
                x = state[-1]
                new_states.append(state)
                new_saved.append(saved[l].write(t, row))
            return t + 1, new_states, new_saved

        _, _, saved = tf.while_loop(lambda t, *_: t < steps, forward,
                                    [0, s0, [array() for _ in range(layers)]],
                                    parallel_iterations=parallel_iterations)
        saved = [tf.split(s.stack(), kind.saved_sizes(n), axis=2) for s, n in zip(saved, units)]
        outputs = [s[parts - 1] for s in saved]
        outputs[-1].set_shape(gx0.shape[:2].concatenate([units[-1]]))
        # Each layer's state before each step, and after the last (real) one.
        prev = [[tf.concat([x0[None], xs[:-1]], 0) for x0, xs in zip(s0[l], saved[l][:parts])]
                for l in range(layers)]
        if lengths is None:
            finals = [xs[-1] for s in saved for xs in s[:parts]]
        else:
            at = tf.stack([tf.cast(lengths, tf.int32), tf.range(tf.shape(gx0)[1])], 1)
            finals = [tf.gather_nd(tf.concat([x0[None], xs], 0), at)
                      for l in range(layers) for x0, xs in zip(s0[l], saved[l][:parts])]

        def gradient(d_top, *_):
            per_step = [array().unstack(kind.prepare(p, s)) for p, s in zip(prev, saved)]
            d_top_t = array().unstack(d_top)
            w_t = [type(w)(tf.transpose(w.w_x), None, *[tf.transpose(m) for m in w[2:]])
                   for w in ws]

            def backward(i, d_states, d_gx):
                t = steps - 1 - i
                d_out, new_d_states, new_d_gx = d_top_t.read(t), [None] * layers, [None] * layers
                for l in reversed(range(layers)):
                    dz, new_d_states[l] = kind.backward(d_out, d_states[l], per_step[l].read(t),
                                                        w_t[l], units[l])
                    new_d_gx[l] = d_gx[l].write(t, dz)
                    if l:
                        d_out = tf.matmul(dz, w_t[l].w_x)          # into the layer below
                return i + 1, new_d_states, new_d_gx

            _, d_s0, d_gx = tf.while_loop(
                lambda i, *_: i < steps, backward,
                [0, [[tf.zeros_like(s) for s in state] for state in s0],
                 [array() for _ in range(layers)]],
                parallel_iterations=parallel_iterations)
            d_gx = [d.stack() for d in d_gx]
            d_weights = []
            for l in range(layers):
                dz = _rows(d_gx[l])
                if l:
                    d_weights += [tf.matmul(_rows(outputs[l - 1]), dz, transpose_a=True),
                                  tf.reduce_sum(dz, 0)]
                else:   # layer 0's input projection is gx0: its gradient goes there
                    d_weights += [None, None]
                d_weights += kind.recurrent_gradients(dz, prev[l], saved[l], units[l])
            return [d_gx[0]] + [d for state in d_s0 for d in state] + d_weights

        return [outputs[-1]] + finals, gradient

    top, *finals = stack(*flat)
    finals = [tf.stop_gradient(s) for s in finals]
    return top, [tf.nest.pack_sequence_as(state, finals[parts * l:parts * (l + 1)])
                 for l, state in enumerate(states)]


def gru_stack(gx0, h0s, weights, parallel_iterations=32):
    """The top layer's outputs [T, B, H] of stacked GRUCells: cell_stack's, for GRUWeights
    (or gru_weights' (w_x, b, w_ru, w_c) tuples) and initial states h0s."""
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
        weights = gru_weights(cell, size)
        gx = tf.reshape(tf.matmul(tf.reshape(inputs, [-1, size]), weights.w_x) + weights.b,
                        tf.concat([tf.shape(inputs)[:2], [3 * units]], 0))
        outputs = gru_stack(gx, [zeros], [weights])
        return outputs, outputs[-1]
    kernel, bias = cell.weights[:2]
    block_lstm = _contrib_lstm_ops._block_lstm if TF1 else tf.raw_ops.BlockLSTM
    peephole = tf.zeros([units])   # unused: use_peephole=False
    _, c, _, _, _, _, h = block_lstm(
        seq_len_max=tf.cast(tf.shape(inputs)[0], tf.int64), x=inputs, w=kernel, b=bias,
        cs_prev=zeros, h_prev=zeros, wci=peephole, wcf=peephole, wco=peephole,
        forget_bias=cell._forget_bias, cell_clip=-1.0, use_peephole=False)
    return h, rnn.LSTMStateTuple(c[-1], h[-1])
