"""utils.py: the stack shim, vocabulary encode/decode, the gradient helpers, on both stacks."""
import collections

import numpy as np
import pytest

import utils
from utils import tf

VOCAB = "abc d'é📈"


# --- the import shim ---------------------------------------------------------

def test_shim_is_graph_mode_tf1_api():
    assert not tf.executing_eagerly()
    assert utils.STACK in ('tf1', 'tf2')
    assert utils.TF1 == tf.__version__.startswith('1.')
    for name in ('BasicRNNCell', 'BasicLSTMCell', 'LSTMCell', 'GRUCell', 'MultiRNNCell',
                 'DropoutWrapper'):
        assert callable(getattr(utils.rnn, name)), name
    # contrib's cells on TF1 only (TF2 has no contrib: tf1rnn.layer_norm ports the one used)
    assert hasattr(utils.rnn, 'LayerNormBasicLSTMCell') == utils.TF1


# --- vocabulary ------------------------------------------------------------------

def test_encode_ids_start_at_one_and_decode_round_trips():
    ids = utils.vocab_encode("abc d", VOCAB)
    assert ids == [1, 2, 3, 4, 5]
    assert utils.vocab_decode(ids, VOCAB) == "abc d"


def test_encode_multibyte_unicode_is_one_id_per_character():
    ids = utils.vocab_encode("é📈a", VOCAB)
    assert ids == [7, 8, 1]
    assert utils.vocab_decode(ids, VOCAB) == "é📈a"


def test_encode_drops_out_of_vocabulary_and_counts_them():
    dropped = collections.Counter()
    ids = utils.vocab_encode("a!b!!&", VOCAB, dropped)
    assert utils.vocab_decode(ids, VOCAB) == "ab"
    assert dropped == {'!': 3, '&': 1}


def test_duplicate_vocabulary_character_keeps_first_id():
    assert utils.vocab_encode("'", "a'b'") == ["a'b'".index("'") + 1]


def test_decode_skips_padding_and_rejects_unknown_ids():
    assert utils.vocab_decode([1, 0, 0, 2], VOCAB) == "ab"
    with pytest.raises(ValueError):
        utils.vocab_decode([len(VOCAB) + 1], VOCAB)


# --- gradients ---------------------------------------------------------------------

def _quadratic_graph(scale):
    w = tf.Variable([3.0, -4.0], name='w')
    b = tf.Variable(12.0, name='b')
    loss = scale * (tf.reduce_sum(tf.square(w)) + tf.square(b))
    return loss, [w, b]


@pytest.mark.parametrize('max_norm', [1.0, 5.0])
def test_clip_gradients_bounds_the_applied_step(max_norm):
    """One SGD step of rate 1 with the clipped gradients moves the weights by max_norm."""
    with tf.Graph().as_default(), tf.Session() as sess:
        loss, var_list = _quadratic_graph(10.0)
        grads_and_vars, norm = utils.clip_gradients(loss, var_list, max_norm)
        step = tf.train.GradientDescentOptimizer(1.0).apply_gradients(grads_and_vars)
        sess.run(tf.global_variables_initializer())
        before = np.concatenate([np.ravel(v) for v in sess.run(var_list)])
        raw_norm, _ = sess.run([norm, step])
        after = np.concatenate([np.ravel(v) for v in sess.run(var_list)])
    # grads are 20*w and 20*b: norm 20 * 13 = 260, along (3, -4, 12) / 13.
    assert raw_norm == pytest.approx(260.0, rel=1e-5)
    np.testing.assert_allclose(before - after, max_norm * np.array([3.0, -4.0, 12.0]) / 13,
                               rtol=1e-5)


def test_clip_gradients_leaves_small_gradients_and_none_disables():
    with tf.Graph().as_default(), tf.Session() as sess:
        loss, var_list = _quadratic_graph(0.001)
        small, _ = utils.clip_gradients(loss, var_list, 5.0)
        unclipped, norm = utils.clip_gradients(loss, var_list, None)
        opt = tf.train.GradientDescentOptimizer(1.0).apply_gradients(unclipped)
        sess.run(tf.global_variables_initializer())
        g_small, g_raw, n = sess.run([[g for g, _ in small], [g for g, _ in unclipped], norm])
        sess.run(opt)
        w = sess.run(var_list[0])
    np.testing.assert_allclose(g_small[0], g_raw[0])
    assert n == pytest.approx(0.026, rel=1e-5)
    np.testing.assert_allclose(w, [3.0 - 0.006, -4.0 + 0.008], rtol=1e-5)


def test_check_numerics_names_the_variable_on_nan():
    with tf.Graph().as_default(), tf.Session() as sess:
        x = tf.placeholder(tf.float32, [2])
        w = tf.Variable([1.0, 2.0], name='layer/kernel')
        loss = tf.reduce_sum(w * x)
        grads_and_vars = utils.check_numerics(utils.clip_gradients(loss, [w])[0])
        step = tf.train.GradientDescentOptimizer(0.1).apply_gradients(grads_and_vars)
        sess.run(tf.global_variables_initializer())
        sess.run(step, {x: [1.0, 1.0]})
        with pytest.raises(tf.errors.InvalidArgumentError, match='gradient of layer/kernel'):
            sess.run(step, {x: [np.nan, 1.0]})
        # The NaN never reached the weights.
        np.testing.assert_allclose(sess.run(w), [0.9, 1.9], rtol=1e-6)
