"""The notebook's LayerNormBasicLSTMCell (tf.contrib.rnn), ported to tf.nn.rnn_cell: the
cell on TF2, and on either stack the one whose variance epsilon can be set."""

from utils import tf


# contrib.layers.layer_norm's epsilon for float32 (1e-3 for float16). Tiny on purpose
# there; it is what makes a zero-variance input blow gradients up (see mnist_rnn.py).
LAYER_NORM_EPSILON = 1e-12


class LayerNormBasicLSTMCell(tf.nn.rnn_cell.RNNCell):
    """Port of TF 1.15's tf.contrib.rnn.LayerNormBasicLSTMCell to tf.nn.rnn_cell.RNNCell.

    LSTM unit with layer normalization (Ba, Kiros, Hinton 2016, arXiv:1607.06450),
    applied before the internal nonlinearities, and recurrent dropout without
    memory loss (Semeniuta, Severyn, Barth 2016, arXiv:1603.05118).

    Same arguments and defaults, same math (contrib.layers.layer_norm included:
    moments over the units, epsilon 1e-12) and the same variable names
    (kernel; input|transform|forget|output|state/gamma|beta; bias only without
    layer_norm), so checkpoints move between the stacks. One addition: `epsilon`, the
    variance epsilon of the float32 norms (contrib hard-codes 1e-12; a larger one cures
    the NaN of mnist_rnn.py's blank rows at its cause). Runs on TF 1.15 as well,
    where tests/test_layer_norm.py checks it against contrib's cell; TF2 has no other.
    """

    def __init__(self, num_units, forget_bias=1.0, input_size=None, activation=tf.tanh,
                 layer_norm=True, norm_gain=1.0, norm_shift=0.0, dropout_keep_prob=1.0,
                 dropout_prob_seed=None, reuse=None, epsilon=LAYER_NORM_EPSILON):
        super(LayerNormBasicLSTMCell, self).__init__(_reuse=reuse)
        if input_size is not None:
            tf.logging.warn('%s: The input_size parameter is deprecated.', self)
        self._num_units = num_units
        self._activation = activation
        self._forget_bias = forget_bias
        self._keep_prob = dropout_keep_prob
        self._seed = dropout_prob_seed
        self._layer_norm = layer_norm
        self._norm_gain = norm_gain
        self._norm_shift = norm_shift
        self._reuse = reuse
        self._epsilon = epsilon   # float32's; float16 always uses 1e-3, as contrib

    @property
    def state_size(self):
        return tf.nn.rnn_cell.LSTMStateTuple(self._num_units, self._num_units)

    @property
    def output_size(self):
        return self._num_units

    def _norm(self, inp, scope, dtype=tf.float32):
        """contrib.layers.layer_norm(inp) with gamma and beta made in `scope` first."""
        shape = inp.get_shape()[-1:]
        with tf.variable_scope(scope):
            gamma = tf.get_variable('gamma', shape=shape, dtype=dtype,
                                    initializer=tf.constant_initializer(self._norm_gain))
            beta = tf.get_variable('beta', shape=shape, dtype=dtype,
                                   initializer=tf.constant_initializer(self._norm_shift))
            mean, variance = tf.nn.moments(inp, [1], keep_dims=True)
            epsilon = 1e-3 if dtype == tf.float16 else self._epsilon
            return tf.nn.batch_normalization(inp, mean, variance, offset=beta, scale=gamma,
                                             variance_epsilon=epsilon)

    def _linear(self, args):
        out_size = 4 * self._num_units
        proj_size = args.get_shape()[-1]
        dtype = args.dtype
        weights = tf.get_variable('kernel', [proj_size, out_size], dtype=dtype)
        out = tf.matmul(args, weights)
        if not self._layer_norm:
            bias = tf.get_variable('bias', [out_size], dtype=dtype)
            out = tf.nn.bias_add(out, bias)
        return out

    def call(self, inputs, state):
        """LSTM cell with layer normalization and recurrent dropout."""
        c, h = state
        args = tf.concat([inputs, h], 1)
        concat = self._linear(args)
        dtype = args.dtype

        i, j, f, o = tf.split(value=concat, num_or_size_splits=4, axis=1)
        if self._layer_norm:
            i = self._norm(i, 'input', dtype=dtype)
            j = self._norm(j, 'transform', dtype=dtype)
            f = self._norm(f, 'forget', dtype=dtype)
            o = self._norm(o, 'output', dtype=dtype)

        g = self._activation(j)
        if (not isinstance(self._keep_prob, float)) or self._keep_prob < 1:
            # contrib's dropout(g, keep_prob) is exactly this (rate = 1. - keep_prob).
            g = tf.nn.dropout(g, rate=1. - self._keep_prob, seed=self._seed)

        new_c = c * tf.sigmoid(f + self._forget_bias) + tf.sigmoid(i) * g
        if self._layer_norm:
            new_c = self._norm(new_c, 'state', dtype=dtype)
        new_h = self._activation(new_c) * tf.sigmoid(o)

        new_state = tf.nn.rnn_cell.LSTMStateTuple(new_c, new_h)
        return new_h, new_state
