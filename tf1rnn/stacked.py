"""Stacked GRU, LSTM or basic RNN layers in one tf.while_loop, the gradient written out:
cell_stack, and each cell's step math forward and backward. kernels.py gets the weights
from the cells and picks the graph; this module sees tensors only."""
import collections

from utils import tf

# A layer's weights: the input projection (gx = x @ w_x + b: every gate of a step) and the
# recurrent matrices the step multiplies h by.
GRUWeights = collections.namedtuple('GRUWeights', 'w_x b w_ru w_c')
LSTMWeights = collections.namedtuple('LSTMWeights', 'w_x b w_h')
RNNWeights = collections.namedtuple('RNNWeights', 'w_x b w_h')


def _rows(x):
    return tf.reshape(x, [-1, x.shape[-1].value])


def at_lengths(initial, states, lengths):
    """The state after lengths[b] steps of each row b ([B, H]), of the states after each
    step ([T, B, H]) and the initial one ([B, H], for a length of 0)."""
    if lengths is None:
        return states[-1]
    at = tf.stack([tf.cast(lengths, tf.int32), tf.range(tf.shape(states)[1])], 1)
    return tf.gather_nd(tf.concat([initial[None], states], 0), at)


def gru_step(gx, h, w_ru, w_c):
    """One GRUCell step, given gx = x @ w_x + b: the new h, and (r u) and c for the gradient."""
    units = w_c.shape[0].value
    ru = tf.sigmoid(gx[:, :2 * units] + tf.matmul(h, w_ru))
    r, u = tf.split(ru, 2, axis=1)
    c = tf.tanh(gx[:, 2 * units:] + tf.matmul(r * h, w_c))
    return c + u * (h - c), ru, c    # u * h + (1 - u) * c


# Each cell's math for cell_stack. A layer's state is a list (GRU and RNN: [h]; LSTM:
# [c, h]), its output the last item. forward gets the layer's input projection gx (layer 0)
# or its input x (the layer below's h); it returns the new state and the values to save.
# prepare computes, for all steps at once, what each backward step reads (row); backward
# returns dz (the gradient of gx), the state's gradient one step back, and x's gradient
# (below: there is a layer below); n is the layer's units.
# w_t holds the transposed weights; joint (LSTM, RNN) the kernel [w_x; w_h] and its
# transpose: a layer over another multiplies [x, h] by it in one matmul.

class _GRU(object):
    saved_sizes = staticmethod(lambda n: [n, 2 * n, n])           # h, (r u), c
    joint = staticmethod(lambda w: None)

    @staticmethod
    def forward(gx, x, state, w, joint):
        gx = tf.matmul(x, w.w_x) + w.b if gx is None else gx
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
    def backward(d_out, d_state, row, w_t, joint_t, n, below):
        u, r, d_c_pre, dr_pre, du_pre = tf.split(row, [n] * 5, 1)
        g = d_out + d_state[0]                                    # dL/dh_t
        d_c = g * d_c_pre                                         # dL/d candidate pre-act.
        d_rh = tf.matmul(d_c, w_t.w_c)                            # dL/d (r * h_prev)
        d_ru = tf.concat([d_rh * dr_pre, g * du_pre], 1)
        dz = tf.concat([d_ru, d_c], 1)
        dh = g * u + d_rh * r + tf.matmul(d_ru, w_t.w_ru)
        return dz, [dh], tf.matmul(dz, w_t.w_x) if below else None

    @staticmethod
    def recurrent_gradients(dz, prev, saved):
        n = prev[0].shape[-1].value
        h_prev, r = _rows(prev[0]), _rows(saved[1][:, :, :n])
        return [tf.matmul(h_prev, dz[:, :2 * n], transpose_a=True),
                tf.matmul(r * h_prev, dz[:, 2 * n:], transpose_a=True)]


def _pre_activation(gx, x, h, w, joint):
    """x @ w_x + h @ w_h + b: gx + h @ w_h, or [x, h] @ joint + b."""
    if gx is None:
        return tf.matmul(tf.concat([x, h], 1), joint) + w.b
    return gx + tf.matmul(h, w.w_h)


def _back_matmul(dz, w_t, joint_t, below):
    """(dh, dx) of dz, the gradient of a pre-activation _pre_activation computed."""
    if not below:
        return tf.matmul(dz, w_t.w_h), None
    n = w_t.w_h.shape[-1].value
    dx, dh = tf.split(tf.matmul(dz, joint_t), [joint_t.shape[-1].value - n, n], 1)
    return dh, dx


class _LSTM(object):
    saved_sizes = staticmethod(lambda n: [n, n, 4 * n])           # c, h, gates (i j f o)
    joint = staticmethod(lambda w: tf.concat([w.w_x, w.w_h], 0))

    @staticmethod
    def forward(gx, x, state, w, joint):
        c, h = state
        i, j, f, o = tf.split(_pre_activation(gx, x, h, w, joint), 4, axis=1)
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
    def backward(d_out, d_state, row, w_t, joint_t, n, below):
        a, factors, f = tf.split(row, [n, 4 * n, n], 1)
        g = d_out + d_state[1]                                    # dL/dh_t
        d_c = d_state[0] + g * a                                  # dL/dc_t
        dz = tf.concat([d_c, d_c, d_c, g], 1) * factors
        dh, dx = _back_matmul(dz, w_t, joint_t, below)
        return dz, [d_c * f, dh], dx

    @staticmethod
    def recurrent_gradients(dz, prev, saved):
        return [tf.matmul(_rows(prev[1]), dz, transpose_a=True)]


class _RNN(object):
    saved_sizes = staticmethod(lambda n: [n])                     # h
    joint = _LSTM.joint

    @staticmethod
    def forward(gx, x, state, w, joint):
        h = tf.tanh(_pre_activation(gx, x, state[0], w, joint))
        return [h], h

    @staticmethod
    def prepare(prev, saved):
        return 1 - tf.square(saved[0])                            # tanh'

    @staticmethod
    def backward(d_out, d_state, row, w_t, joint_t, n, below):
        dz = (d_out + d_state[0]) * row
        dh, dx = _back_matmul(dz, w_t, joint_t, below)
        return dz, [dh], dx

    @staticmethod
    def recurrent_gradients(dz, prev, saved):
        return [tf.matmul(_rows(prev[0]), dz, transpose_a=True)]


_KINDS = {GRUWeights: _GRU, LSTMWeights: _LSTM, RNNWeights: _RNN}


def cell_stack(gx0, states, weights, lengths=None, parallel_iterations=32):
    """(the top layer's outputs [T, B, H], each layer's final state) of stacked cells of one
    kind over time-major inputs, as dynamic_rnn over their MultiRNNCell computes them.

    gx0 [T, B, gates]: the first layer's input projection x @ w_x + b, biases included (the
    caller computes it as one op: a gather of w_x's rows for one-hot inputs, a matmul
    otherwise). states: each layer's initial state, in the cell's structure (h, or
    LSTMStateTuple(c, h)). weights: each layer's GRUWeights, LSTMWeights or RNNWeights (layer
    0's w_x and b unused). lengths [B] (optional): each row's real steps; a final state is
    then the state after them (the initial one for 0), as with dynamic_rnn's
    sequence_length. The outputs after a row's end are not zeroed, as dynamic_rnn's are:
    they cannot change the outputs before them.

    Every time step runs all layers, as MultiRNNCell does, so that layer 1 of step t + 1
    overlaps layer 2 of step t. The gradient is written out: the backward loop carries only
    the state's gradient, and each weight gradient is one matmul over all steps, where
    tf.gradients of a while loop would multiply and sum [B, n] x [B, H] per step. The final
    states are values (tf.stop_gradient): no gradient flows back through them.
    """
    kind = _KINDS[type(weights[0])]
    if any(type(layer) is not type(weights[0]) for layer in weights):
        raise ValueError('cell_stack: layers of one kind only')
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
        joint = [None] + [kind.joint(w) for w in ws[1:]]
        steps = tf.shape(gx0)[0]
        array = lambda: tf.TensorArray(tf.float32, size=steps)
        gx0_t = array().unstack(gx0)

        def forward(t, states, saved):
            x, new_states, new_saved = None, [], []
            for l, (w, state) in enumerate(zip(ws, states)):
                state, row = kind.forward(None if l else gx0_t.read(t), x, state, w, joint[l])
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
        finals = [at_lengths(x0, xs, lengths)
                  for l in range(layers) for x0, xs in zip(s0[l], saved[l][:parts])]

        def gradient(d_top, *_):
            per_step = [array().unstack(kind.prepare(p, s)) for p, s in zip(prev, saved)]
            d_top_t = array().unstack(d_top)
            w_t = [type(w)(tf.transpose(w.w_x), None, *[tf.transpose(m) for m in w[2:]])
                   for w in ws]
            joint_t = [None if j is None else tf.transpose(j) for j in joint]

            def backward(i, d_states, d_gx):
                t = steps - 1 - i
                d_out, new_d_states, new_d_gx = d_top_t.read(t), [None] * layers, [None] * layers
                for l in reversed(range(layers)):    # d_out: into the layer below
                    dz, new_d_states[l], d_out = kind.backward(
                        d_out, d_states[l], per_step[l].read(t), w_t[l], joint_t[l], units[l],
                        l > 0)
                    new_d_gx[l] = d_gx[l].write(t, dz)
                return i + 1, new_d_states, new_d_gx

            _, d_s0, d_gx = tf.while_loop(
                lambda i, *_: i < steps, backward,
                [0, [[tf.zeros_like(s) for s in state] for state in s0],
                 [array() for _ in range(layers)]],
                parallel_iterations=parallel_iterations)
            d_weights = []
            for l, d in enumerate(d_gx):
                d = d.stack()
                dz = _rows(d)
                if l:
                    d_weights += [tf.matmul(_rows(outputs[l - 1]), dz, transpose_a=True),
                                  tf.reduce_sum(dz, 0)]
                else:   # layer 0's input projection is gx0: its gradient goes there
                    d_gx0 = d
                    d_weights += [None, None]
                d_weights += kind.recurrent_gradients(dz, prev[l], saved[l])
            return [d_gx0] + [d for state in d_s0 for d in state] + d_weights

        return [outputs[-1]] + finals, gradient

    top, *finals = stack(*flat)
    finals = [tf.stop_gradient(s) for s in finals]
    return top, [tf.nest.pack_sequence_as(state, finals[parts * l:parts * (l + 1)])
                 for l, state in enumerate(states)]
