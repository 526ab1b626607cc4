"""tf1rnn/decoding.py: the distribution each decoding draws from (temperature by the intended
formula and by the lecture's, top-k, greedy), measured by drawing."""
import numpy as np
import pytest

import char_rnn
from tf1rnn import decoding
from utils import tf


def _draw_frequencies(logits, temperature, sampling, draws=40000, top_k=0, greedy=False):
    """Frequencies of the ids sample_ids draws from one row of logits."""
    with tf.Graph().as_default(), tf.Session() as sess:
        tf.set_random_seed(0)
        ids = decoding.sample_ids(tf.constant([logits] * draws, tf.float32), temperature,
                                  sampling, tf.constant(top_k), tf.constant(greedy))
        drawn = sess.run(ids)
    assert drawn.min() >= 1 and drawn.max() <= len(logits)   # ids, 0 is padding
    return np.bincount(drawn - 1, minlength=len(logits)) / float(draws)


def _exact(logits, temperature, sampling):
    """The distribution in extended precision: softmax(z), or the lecture's exp(exp(z))."""
    z = np.asarray(logits, np.longdouble) / np.longdouble(temperature)
    if sampling == 'lecture':
        z = np.exp(z)
    p = np.exp(z - z.max())
    return (p / p.sum()).astype(np.float64)


# A trained model's row: a few likely characters, the rest very unlikely.


TRAINED_LIKE = [1.0, 0.5, 0.2, 2.0] + [-8.0] * 28


@pytest.mark.parametrize('temperature', [0.05, 0.2, 1.0, 1.5, 5.0])
@pytest.mark.parametrize('logits', [[1.0, 2.0, 300.0], TRAINED_LIKE])
def test_lecture_sampling_draws_exp_exp_at_any_temperature(logits, temperature):
    """exp(logits / T) overflowed past 88: the most likely character became impossible."""
    want = _exact(logits, temperature, 'lecture')
    with tf.Graph().as_default(), tf.Session() as sess:
        probs = sess.run(tf.nn.softmax(decoding.lecture_logits(
            tf.constant([logits], tf.float32), temperature)))[0]
    np.testing.assert_allclose(probs, want, atol=1e-6)
    got = _draw_frequencies(logits, temperature, 'lecture')
    assert np.abs(got - want).sum() / 2 < 0.015   # total variation, 40,000 draws


@pytest.mark.parametrize('temperature', [0.2, 0.8, 1.5])
def test_default_sampling_draws_softmax_of_logits_over_temperature(temperature):
    default = char_rnn.parse_args([]).sampling
    got = _draw_frequencies(TRAINED_LIKE, temperature, default)
    want = _exact(TRAINED_LIKE, temperature, 'softmax')
    assert np.abs(got - want).sum() / 2 < 0.015
    # The lecture's formula gives every very unlikely character a weight of about e^0 = 1:
    # uniform noise, here 20 times the model's own probability for them at the same temperature.
    lecture, softmax = _exact(TRAINED_LIKE, 1.5, 'lecture'), _exact(TRAINED_LIKE, 1.5, 'softmax')
    assert lecture[4:].sum() > 0.3 and lecture[4:].sum() > 15 * softmax[4:].sum()


@pytest.mark.parametrize('sampling', ['softmax', 'lecture'])
@pytest.mark.parametrize('top_k', [1, 2, 3, 32])
def test_top_k_draws_from_the_k_most_likely_renormalised(sampling, top_k):
    """--top-k K: the K most likely characters, each with its probability over theirs."""
    order = np.argsort(TRAINED_LIKE)[::-1]
    want = _exact(TRAINED_LIKE, 0.8, sampling)
    want[order[top_k:]] = 0
    want /= want.sum()
    got = _draw_frequencies(TRAINED_LIKE, 0.8, sampling, top_k=top_k)
    assert not got[order[top_k:]].any()
    assert np.abs(got - want).sum() / 2 < 0.015


def test_greedy_takes_the_most_likely_character_every_time():
    got = _draw_frequencies(TRAINED_LIKE, 1.5, 'softmax', draws=500, greedy=True)
    assert got[int(np.argmax(TRAINED_LIKE))] == 1


def test_sample_ids_stay_in_the_vocabulary_at_the_lowest_temperature():
    low = decoding.TEMPERATURE_RANGE[0]
    logits = np.array([[-100.0, 30.0, 100.0, 99.0], [5.0, -5.0, 0.0, 4.0]], np.float32)
    with tf.Graph().as_default(), tf.Session() as sess:
        for sampling in ('softmax', 'lecture'):
            ids = sess.run(decoding.sample_ids(tf.constant(logits), tf.constant(low), sampling))
            assert list(ids) == [3, 1]   # the argmax (id = column + 1): greedy, in range
