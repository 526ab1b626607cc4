"""layer_norm.LayerNormBasicLSTMCell, the port of tf.contrib.rnn.LayerNormBasicLSTMCell.

TF1 stack: the port against contrib's own cell, same weights and inputs.
Both stacks: the port against a numpy version of the cell's math, its variable
names, and its recurrent dropout.
"""
import numpy as np
import pytest

import utils
from tf1rnn import layer_norm
from utils import tf

BATCH, STEPS, INPUTS, UNITS = 4, 6, 5, 7
NORMS = ('input', 'transform', 'forget', 'output', 'state')
SMOOTHING = dict(norm_gain=0.85, norm_shift=0.15)   # mnist_rnn.py --ln-smoothing


def run_cells(cells, inputs, weights=None, seed=None, random_norms=True):
    """Runs each (scope, cell) through dynamic_rnn on inputs, all in one graph.

    weights: {name relative to the cell's scope: array} assigned to every cell's
    variables (missing ones are drawn at random once and shared; with
    random_norms False gamma and beta keep their initial values). Returns, per
    cell, (outputs, final c, final h, gradients of a fixed loss by relative name)
    and the weights used.
    """
    graph = tf.Graph()
    with graph.as_default():
        if seed is not None:
            tf.set_random_seed(seed)
        x = tf.constant(inputs)
        results = []
        for scope, cell in cells:
            with tf.variable_scope(scope):
                outputs, state = tf.nn.dynamic_rnn(cell, x, sequence_length=[STEPS] * BATCH,
                                                   dtype=tf.float32)
            variables = {v.op.name[len(scope) + 1:]: v for v in tf.global_variables()
                         if v.op.name.startswith(scope + '/')}
            probe = tf.constant(np.random.RandomState(7).randn(BATCH, STEPS, UNITS)
                                .astype(np.float32))
            loss = tf.reduce_sum(outputs * probe) + tf.reduce_sum(state.c * probe[:, 0])
            names = sorted(variables)
            grads = tf.gradients(loss, [variables[n] for n in names])
            results.append((variables, outputs, state, dict(zip(names, grads))))
        with tf.Session(graph=graph) as sess:
            sess.run(tf.global_variables_initializer())
            if weights is None:
                weights = {}
            rng = np.random.RandomState(3)
            for variables, _, _, _ in results:
                for name, var in variables.items():
                    if not random_norms and not name.endswith(('kernel', 'bias')):
                        continue
                    if name not in weights:
                        shape = var.shape.as_list()
                        weights[name] = (rng.uniform(-0.5, 0.5, shape) if name.endswith('kernel')
                                         else rng.uniform(0.5, 1.5, shape) if name.endswith('gamma')
                                         else rng.uniform(-0.3, 0.3, shape)).astype(np.float32)
                    var.load(weights[name], sess)
            fetched = sess.run([(out, st.c, st.h, grads) for _, out, st, grads in results])
    return fetched, weights


def numpy_cell(inputs, weights, forget_bias=1.0, layer_norm=True):
    """The cell's math in numpy (contrib's layer_norm: moments over units, eps 1e-12)."""
    w = {k.split('rnn/layer_norm_basic_lstm_cell/')[-1]: v.astype(np.float64)
         for k, v in weights.items()}

    def norm(v, scope):
        mean = v.mean(axis=1, keepdims=True)
        var = ((v - mean) ** 2).mean(axis=1, keepdims=True)
        inv = w[scope + '/gamma'] / np.sqrt(var + 1e-12)
        return v * inv + (w[scope + '/beta'] - mean * inv)

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    inputs = inputs.astype(np.float64)
    kernel = w['kernel']
    c = np.zeros((inputs.shape[0], UNITS))
    h = np.zeros((inputs.shape[0], UNITS))
    outputs = []
    for t in range(inputs.shape[1]):
        concat = np.concatenate([inputs[:, t], h], axis=1) @ kernel
        if not layer_norm:
            concat = concat + w['bias']
        i, j, f, o = np.split(concat, 4, axis=1)
        if layer_norm:
            i, j, f, o = [norm(v, s) for v, s in zip((i, j, f, o), NORMS)]
        c = c * sigmoid(f + forget_bias) + sigmoid(i) * np.tanh(j)
        if layer_norm:
            c = norm(c, 'state')
        h = np.tanh(c) * sigmoid(o)
        outputs.append(h)
    return np.stack(outputs, axis=1), c, h


def random_inputs(seed=0, zero_steps=0):
    x = np.random.RandomState(seed).uniform(0, 1, (BATCH, STEPS, INPUTS)).astype(np.float32)
    x[:, :zero_steps] = 0.0
    return x


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def test_port_variable_names_are_contribs():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.zeros([BATCH, STEPS, INPUTS])
        tf.nn.dynamic_rnn(layer_norm.LayerNormBasicLSTMCell(UNITS), x, dtype=tf.float32)
        shapes = {v.op.name: v.shape.as_list() for v in tf.global_variables()}
    expected = {'rnn/layer_norm_basic_lstm_cell/kernel': [INPUTS + UNITS, 4 * UNITS]}
    for scope in NORMS:
        for param in ('gamma', 'beta'):
            expected['rnn/layer_norm_basic_lstm_cell/{}/{}'.format(scope, param)] = [UNITS]
    assert shapes == expected


def test_port_without_layer_norm_has_a_bias_and_no_norms():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.zeros([BATCH, STEPS, INPUTS])
        tf.nn.dynamic_rnn(layer_norm.LayerNormBasicLSTMCell(UNITS, layer_norm=False), x,
                          dtype=tf.float32)
        names = sorted(v.op.name for v in tf.global_variables())
    assert names == ['rnn/layer_norm_basic_lstm_cell/bias', 'rnn/layer_norm_basic_lstm_cell/kernel']


def test_port_shares_its_variables_across_calls():
    """static_rnn calls the cell once per step: one set of variables, dynamic_rnn's outputs."""
    inputs = random_inputs(8)
    graph = tf.Graph()
    with graph.as_default():
        cell = layer_norm.LayerNormBasicLSTMCell(UNITS, **SMOOTHING)
        static, _ = tf.nn.static_rnn(cell, tf.unstack(tf.constant(inputs), axis=1),
                                     dtype=tf.float32)
        count = len(tf.global_variables())
        with tf.variable_scope('rnn', reuse=True):
            dynamic, _ = tf.nn.dynamic_rnn(cell, tf.constant(inputs), dtype=tf.float32,
                                           scope=tf.get_variable_scope())
        assert len(tf.global_variables()) == count == 11
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            static, dynamic = sess.run([tf.stack(static, axis=1), dynamic])
    assert max_diff(static, dynamic) < 1e-6


@pytest.mark.parametrize('kwargs', [{}, SMOOTHING], ids=['default', 'smoothing'])
def test_port_initial_gain_and_shift(kwargs):
    graph = tf.Graph()
    with graph.as_default():
        tf.nn.dynamic_rnn(layer_norm.LayerNormBasicLSTMCell(UNITS, **kwargs),
                          tf.zeros([BATCH, STEPS, INPUTS]), dtype=tf.float32)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            values = {v.op.name.split('/', 2)[-1]: sess.run(v) for v in tf.global_variables()}
    gain = np.float32(kwargs.get('norm_gain', 1.0))
    shift = np.float32(kwargs.get('norm_shift', 0.0))
    for scope in NORMS:
        np.testing.assert_array_equal(values[scope + '/gamma'], gain)
        np.testing.assert_array_equal(values[scope + '/beta'], shift)


@pytest.mark.parametrize('zero_steps', [0, 2], ids=['inputs', 'blank-first-rows'])
@pytest.mark.parametrize('forget_bias', [1.0, 0.3])
def test_port_matches_numpy(forget_bias, zero_steps):
    inputs = random_inputs(1, zero_steps)
    cell = layer_norm.LayerNormBasicLSTMCell(UNITS, forget_bias=forget_bias)
    [(outputs, c, h, grads)], weights = run_cells([('port', cell)], inputs)
    expected_outputs, expected_c, expected_h = numpy_cell(inputs, weights, forget_bias)
    assert outputs.shape == (BATCH, STEPS, UNITS)
    assert max_diff(outputs, expected_outputs) < 1e-5
    assert max_diff(c, expected_c) < 1e-5
    assert max_diff(h, expected_h) < 1e-5
    assert all(np.all(np.isfinite(g)) for g in grads.values())


def test_port_without_layer_norm_matches_numpy():
    inputs = random_inputs(2)
    cell = layer_norm.LayerNormBasicLSTMCell(UNITS, layer_norm=False)
    [(outputs, c, h, _)], weights = run_cells([('port', cell)], inputs)
    expected_outputs, expected_c, _ = numpy_cell(inputs, weights, layer_norm=False)
    assert max_diff(outputs, expected_outputs) < 1e-5
    assert max_diff(c, expected_c) < 1e-5


def test_port_recurrent_dropout_drops_the_candidate_and_rescales():
    """At the first step c = sigmoid(i) * dropout(g): every unit 0 or c_full / keep_prob."""
    keep_prob = 0.5
    inputs = np.random.RandomState(4).uniform(0, 1, (64, 1, INPUTS)).astype(np.float32)
    cells = [('full', layer_norm.LayerNormBasicLSTMCell(UNITS, layer_norm=False)),
             ('dropped', layer_norm.LayerNormBasicLSTMCell(UNITS, layer_norm=False,
                                                     dropout_keep_prob=keep_prob,
                                                     dropout_prob_seed=5))]
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(1)
        states = []
        for scope, cell in cells:
            with tf.variable_scope(scope):
                _, state = tf.nn.dynamic_rnn(cell, tf.constant(inputs), dtype=tf.float32)
            states.append(state.c)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            by_name = {v.op.name.split('/', 1)[1]: v for v in tf.global_variables()
                       if v.op.name.startswith('full/')}
            for v in tf.global_variables():
                if v.op.name.startswith('dropped/'):
                    v.load(sess.run(by_name[v.op.name.split('/', 1)[1]]), sess)
            full, dropped = sess.run(states)
    kept = np.abs(dropped) > 0
    np.testing.assert_allclose(dropped[kept], full[kept] / keep_prob, rtol=1e-5)
    assert 0.35 < kept.mean() < 0.65


@pytest.mark.skipif(not utils.TF1, reason='tf.contrib exists on the TF1 stack only')
@pytest.mark.parametrize('kwargs,zero_steps,random_norms', [
    ({}, 0, True),
    (SMOOTHING, 0, True),
    ({}, 2, True),
    ({}, 0, False),
    ({}, 4, False),
    (SMOOTHING, 4, False),
    (dict(forget_bias=0.3, dropout_keep_prob=1.0), 0, True),
    (dict(layer_norm=False), 0, True),
    (dict(SMOOTHING, dropout_keep_prob=0.6, dropout_prob_seed=11), 0, True),
], ids=['default', 'smoothing', 'blank-rows', 'initial-norms', 'initial-norms-blank-rows',
        'smoothing-initial-norms-blank-rows', 'forget-bias', 'no-layer-norm', 'dropout-same-seed'])
def test_port_equals_contrib(kwargs, zero_steps, random_norms):
    inputs = random_inputs(5, zero_steps)
    cells = [('contrib', tf.contrib.rnn.LayerNormBasicLSTMCell(UNITS, **kwargs)),
             ('port', layer_norm.LayerNormBasicLSTMCell(UNITS, **kwargs))]
    (contrib, port), weights = run_cells(cells, inputs, seed=123, random_norms=random_norms)
    for name in weights:
        assert name.startswith('rnn/layer_norm_basic_lstm_cell/')
    c_out, c_c, c_h, c_grads = contrib
    p_out, p_c, p_h, p_grads = port
    assert max_diff(c_out, p_out) < 1e-5
    assert max_diff(c_c, p_c) < 1e-5
    assert max_diff(c_h, p_h) < 1e-5
    assert sorted(c_grads) == sorted(p_grads)
    for name in c_grads:
        # Non-finite gradients (blank first rows, see below) must be non-finite in both.
        np.testing.assert_array_equal(np.isfinite(c_grads[name]), np.isfinite(p_grads[name]))
        finite = np.isfinite(c_grads[name])
        np.testing.assert_allclose(p_grads[name][finite], c_grads[name][finite],
                                   rtol=1e-4, atol=1e-5, err_msg=name)
    if kwargs.get('dropout_keep_prob', 1.0) < 1.0:
        # Dropout really dropped something (the outputs differ from a run without it).
        (plain,), _ = run_cells([('plain', layer_norm.LayerNormBasicLSTMCell(UNITS, **SMOOTHING))],
                                inputs, weights=dict(weights), seed=123)
        assert max_diff(plain[0], p_out) > 1e-3


@pytest.mark.parametrize('kwargs,finite', [({}, False), (SMOOTHING, True)],
                         ids=['default', 'smoothing'])
def test_port_blank_first_rows_give_non_finite_gradients_unless_smoothed(kwargs, finite):
    """The mechanism behind the notebook's NaN, on the freshly initialised cell.

    With beta 0 and all-zero inputs, every pre-activation and the state are exactly
    zero for the first steps: zero variance, so layer norm scales its gradient by
    gamma / sqrt(1e-12) = 1e6 at every such step, and a few steps overflow float32.
    norm_shift 0.15 makes the state non-zero after one step, which stops it.
    """
    inputs = random_inputs(6, zero_steps=5)
    [(outputs, _, _, grads)], _ = run_cells(
        [('port', layer_norm.LayerNormBasicLSTMCell(UNITS, **kwargs))], inputs, random_norms=False)
    assert np.all(np.isfinite(outputs))
    kernel = grads['rnn/layer_norm_basic_lstm_cell/kernel']
    assert bool(np.all(np.isfinite(kernel))) == finite


@pytest.mark.parametrize('epsilon,finite', [(layer_norm.LAYER_NORM_EPSILON, False), (1e-3, True),
                                            (1e-2, True)], ids=['1e-12', '1e-3', '1e-2'])
def test_port_epsilon_decides_whether_blank_first_rows_give_finite_gradients(epsilon, finite):
    """The cause, without touching the shift (beta stays 0): a larger variance epsilon bounds
    layer norm's 1/sqrt(epsilon) on the zero state, so the same rows give finite gradients."""
    inputs = random_inputs(6, zero_steps=5)
    [(outputs, _, _, grads)], _ = run_cells(
        [('port', layer_norm.LayerNormBasicLSTMCell(UNITS, epsilon=epsilon))], inputs,
        random_norms=False)
    assert np.all(np.isfinite(outputs))
    assert all(bool(np.all(np.isfinite(g))) == finite for g in grads.values())


# MNIST's shape: rows of 28 pixels, 28 rows, the notebook's 31 units; the most leading blank
# rows of an MNIST digit are 11 (4-8 are common).
MNIST_LEADING_BLANK_ROWS = [4, 5, 5, 6, 6, 7, 8, 11]
# Adam's second moment is the gradient squared: float32 overflows beyond sqrt(3.4e38), and
# the next update is NaN (inf - inf).
ADAM_SQUARE_LIMIT = float(np.sqrt(np.finfo(np.float32).max))


def mnist_sized_first_gradient(epsilon, seed):
    """The largest |gradient| of the first step: freshly initialised cell (the default
    initializers), a dense layer and softmax loss, on digit-like rows below blank ones."""
    rng = np.random.RandomState(seed)
    shape = (len(MNIST_LEADING_BLANK_ROWS), 28, 28)
    images = (rng.uniform(0, 1, shape) * (rng.uniform(0, 1, shape) < 0.2)).astype(np.float32)
    for image, blank in zip(images, MNIST_LEADING_BLANK_ROWS):
        image[:blank] = 0
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(seed)
        outputs, _ = tf.nn.dynamic_rnn(layer_norm.LayerNormBasicLSTMCell(31, epsilon=epsilon),
                                       tf.constant(images), dtype=tf.float32)
        loss = tf.losses.sparse_softmax_cross_entropy(
            tf.constant(np.arange(len(images)) % 10), tf.layers.dense(outputs[:, -1], 10))
        grads = tf.gradients(loss, tf.trainable_variables())
        with tf.Session(graph=graph) as sess:
            sess.run(tf.global_variables_initializer())
            values = sess.run(grads)
    if not all(np.all(np.isfinite(g)) for g in values):
        return float('inf')
    return max(float(np.max(np.abs(g))) for g in values)


def test_port_epsilon_1e_2_keeps_mnist_sized_gradients_well_inside_adams_range():
    """Why mnist_rnn.py offers --ln-epsilon 1e-2, not Keras' 1e-3: at MNIST's size 1e-3 gives
    finite gradients, but beyond what Adam can square; 1e-2 stays orders of magnitude inside."""
    largest = {epsilon: max(mnist_sized_first_gradient(epsilon, seed) for seed in range(2))
               for epsilon in (layer_norm.LAYER_NORM_EPSILON, 1e-3, 1e-2)}
    assert largest[layer_norm.LAYER_NORM_EPSILON] == float('inf')
    assert ADAM_SQUARE_LIMIT < largest[1e-3] < float('inf')
    assert largest[1e-2] < 1e-4 * ADAM_SQUARE_LIMIT
