"""GRU layers over a whole window (GRUCell's math and variables in fewer, larger ops, the
gradient written out) and the fused LSTM kernel: the fast graphs of both scripts."""

from utils import tf, rnn, TF1

if TF1:
    from tensorflow.contrib.rnn.python.ops import lstm_ops as _contrib_lstm_ops


def gru_weights(cell, input_size):
    """A built GRUCell's variables as (w_x [n, 3H], b [3H], w_ru [H, 2H], w_c [H, H]).

    GRUCell multiplies [x, h] by gates/kernel ([n + H, 2H]) and [x, r * h] by
    candidate/kernel ([n + H, H]); the rows for x and for h are split apart here, so the
    input part can be one large matmul over every step and only h's part stays per step.
    """
    named = {v.op.name.rsplit('/', 2)[-2] + '/' + v.op.name.rsplit('/', 1)[-1]: v
             for v in cell.weights}
    gates, candidate = named['gates/kernel'], named['candidate/kernel']
    w_x = tf.concat([gates[:input_size], candidate[:input_size]], 1)
    b = tf.concat([named['gates/bias'], named['candidate/bias']], 0)
    return w_x, b, gates[input_size:], candidate[input_size:]


def gru_step(gx, h, w_ru, w_c):
    """One GRUCell step, given gx = x @ w_x + b: the new h, and (r u) and c for the gradient."""
    units = w_c.shape[0].value
    ru = tf.sigmoid(gx[:, :2 * units] + tf.matmul(h, w_ru))
    r, u = tf.split(ru, 2, axis=1)
    c = tf.tanh(gx[:, 2 * units:] + tf.matmul(r * h, w_c))
    return c + u * (h - c), ru, c    # u * h + (1 - u) * c


def gru_stack(gx0, h0s, weights, parallel_iterations=32):
    """The top layer's outputs [T, B, H] of stacked GRUCells over time-major inputs.

    gx0 [T, B, 3 H0]: the first layer's input projection, biases included (the caller
    computes it as one op: a gather for one-hot inputs, a matmul otherwise). h0s: each
    layer's initial state. weights: gru_weights() of each layer (layer 0's w_x and b
    unused). Every time step runs all layers, as MultiRNNCell does, so that layer 1 of
    step t + 1 overlaps layer 2 of step t. The gradient is written out: the backward
    loop carries only dh, and each weight gradient is one matmul over all steps, where
    tf.gradients of a while loop would multiply and sum [B, n] x [B, H] per step.
    Same loss and gradients as dynamic_rnn over the same cells (tests/test_char_rnn.py).
    """
    layers = len(h0s)
    units = [w_c.shape[0].value for _, _, _, w_c in weights]
    flat = [gx0] + list(h0s) + [w for layer in weights for w in layer]

    @tf.custom_gradient
    def stack(*flat):
        gx0, h0s, weights = flat[0], flat[1:1 + layers], flat[1 + layers:]
        weights = [weights[4 * i:4 * i + 4] for i in range(layers)]
        steps = tf.shape(gx0)[0]
        array = lambda: tf.TensorArray(tf.float32, size=steps)
        gx0_t = array().unstack(gx0)

        def forward(t, hs, saved):
            x, new_hs, new_saved = None, [], []
            for i, ((w_x, b, w_ru, w_c), h) in enumerate(zip(weights, hs)):
                gx = gx0_t.read(t) if i == 0 else tf.matmul(x, w_x) + b
                x, ru, c = gru_step(gx, h, w_ru, w_c)
                new_hs.append(x)
                new_saved.append(saved[i].write(t, tf.concat([x, ru, c], 1)))
            return t + 1, new_hs, new_saved

        _, _, saved = tf.while_loop(lambda t, *_: t < steps, forward,
                                    [0, list(h0s), [array() for _ in h0s]],
                                    parallel_iterations=parallel_iterations)
        saved = [tf.split(s.stack(), [n, 2 * n, n], axis=2) for s, n in zip(saved, units)]
        outputs = [hs for hs, _, _ in saved]
        outputs[-1].set_shape(gx0.shape[:2].concatenate(h0s[-1].shape[1:]))

        def gradient(d_top):
            # What each backward step needs, from the saved forward values in a few large
            # ops: u, r, and the factors of dh that do not depend on it.
            per_step, previous = [], []
            for i, (h0, (hs, ru, c)) in enumerate(zip(h0s, saved)):
                h_prev = tf.concat([h0[None], hs[:-1]], 0)
                r, u = tf.split(ru, 2, axis=2)
                d_ru = ru * (1 - ru)                              # sigmoid'
                dr, du = tf.split(d_ru, 2, axis=2)
                per_step.append(array().unstack(tf.concat(
                    [u, r, (1 - u) * (1 - tf.square(c)), h_prev * dr, (h_prev - c) * du], 2)))
                previous.append((h_prev, r))
            d_top_t = array().unstack(d_top)
            w_t = [[tf.transpose(w) for w in layer] for layer in weights]

            def backward(i, dhs, d_gx):
                t = steps - 1 - i
                d_out, new_dhs, new_d_gx = d_top_t.read(t), [None] * layers, [None] * layers
                for l in reversed(range(layers)):
                    w_x_t, _, w_ru_t, w_c_t = w_t[l]
                    u, r, d_c_pre, dr_pre, du_pre = tf.split(per_step[l].read(t),
                                                             [units[l]] * 3 + [units[l]] * 2, 1)
                    g = d_out + dhs[l]                          # dL/dh_t
                    d_c = g * d_c_pre                           # dL/d candidate pre-activation
                    d_rh = tf.matmul(d_c, w_c_t)                # dL/d (r * h_prev)
                    d_ru = tf.concat([d_rh * dr_pre, g * du_pre], 1)
                    new_dhs[l] = g * u + d_rh * r + tf.matmul(d_ru, w_ru_t)
                    d_g = tf.concat([d_ru, d_c], 1)             # dL/d gx
                    new_d_gx[l] = d_gx[l].write(t, d_g)
                    if l:
                        d_out = tf.matmul(d_g, w_x_t)           # into the layer below
                return i + 1, new_dhs, new_d_gx

            _, d_h0s, d_gx = tf.while_loop(
                lambda i, *_: i < steps, backward,
                [0, [tf.zeros_like(h) for h in h0s], [array() for _ in h0s]],
                parallel_iterations=parallel_iterations)
            d_gx = [d.stack() for d in d_gx]
            d_weights = []
            for l, (n, (h_prev, r)) in enumerate(zip(units, previous)):
                d_g = tf.reshape(d_gx[l], [-1, 3 * n])
                rows = lambda x: tf.reshape(x, [-1, x.shape[-1].value])
                d_w_ru = tf.matmul(rows(h_prev), d_g[:, :2 * n], transpose_a=True)
                d_w_c = tf.matmul(rows(r * h_prev), d_g[:, 2 * n:], transpose_a=True)
                if l:
                    d_w_x = tf.matmul(rows(outputs[l - 1]), d_g, transpose_a=True)
                    d_b = tf.reduce_sum(d_g, 0)
                else:   # layer 0's input projection is gx0: its gradient goes there
                    d_w_x = d_b = None
                d_weights += [d_w_x, d_b, d_w_ru, d_w_c]
            return [d_gx[0]] + list(d_h0s) + d_weights

        return outputs[-1], gradient

    return stack(*flat)


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
