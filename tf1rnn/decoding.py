"""How char_rnn.py draws a character from its logits: temperature (the distribution the
lecture meant, or its literal formula), top-k and greedy; its decoding flags and primes."""
import sys

from tf1rnn import cli
from tf1rnn.cli import UserError
from utils import tf

# 1/T scales the logits: below 1e-30, logits of a trained model (|z| ~ 10-100) divided by T
# overflow float32 (3.4e38) and multinomial, finding no finite logit, returns an id outside
# the vocabulary; above 1e30 every logit is 0 (uniform) long before, so nothing is lost.
TEMPERATURE_RANGE = (1e-30, 1e30)


def sample_ids(logits, temp, sampling, top_k=0, greedy=False):
    """One id per row of logits [batch, len(vocab)]: drawn at temperature temp from the
    top_k most likely characters (0: all), or, greedy, the most likely one."""
    if sampling == 'lecture':
        logits = lecture_logits(logits, temp)
    else:
        # Fix: the Maxwell-Boltzmann distribution the lecture's comment names,
        # p proportional to exp(logits / temp) (see lecture_logits).
        logits = logits / temp
    # Top-k (as nanoGPT's sample.py): the others' logits to -inf, their probability 0.
    k = tf.minimum(tf.where(top_k > 0, top_k, tf.shape(logits)[-1]), tf.shape(logits)[-1])
    kth = tf.reduce_min(tf.nn.top_k(logits, k).values, axis=-1, keepdims=True)
    logits = tf.where(logits < kth, tf.fill(tf.shape(logits), float('-inf')), logits)
    draws = tf.where(greedy, tf.argmax(logits, -1), tf.multinomial(logits, 1)[:, 0])
    return tf.cast(draws, tf.int32) + 1   # Fix: column k is id k + 1 (0 is padding)


def lecture_logits(logits, temp):
    """The lecture's tf.exp(logits / temp) taken as logits, computed without overflow.

    multinomial(exp(z), 1) draws with p proportional to exp(exp(z)), z = logits / temp.
    exp(z) overflows once z > 88, and multinomial's CPU kernel skips non-finite logits:
    the most likely character became impossible. Shifting by the row's maximum m keeps
    the distribution: exp(z) - exp(m) = -exp(m + log(-expm1(z - m))), 0 at the maximum
    and below it elsewhere; what underflows there has probability below e^-1e30.
    """
    z = logits / temp
    m = tf.reduce_max(z, axis=-1, keepdims=True)
    shifted = -tf.exp(m + tf.log(-tf.expm1(z - m)))
    return tf.maximum(shifted, -1e30)   # -inf -> a finite floor: exp(-1e30) is 0 anyway


def add_flags(p):
    """--temperature, --sampling, --top-k and --greedy."""
    p.add_argument('--temperature', type=cli.number(float, *TEMPERATURE_RANGE), default=None,
                   help='sampling temperature (default: 0.9; with --sampling lecture, the '
                        'lecture\'s 1.5)')
    p.add_argument('--sampling', choices=['softmax', 'lecture'], default='softmax',
                   help='softmax: p proportional to exp(logits / T), the Maxwell-Boltzmann '
                        'sampling the lecture meant; lecture: its literal '
                        'multinomial(exp(logits / T)), p proportional to exp(exp(logits / T)), '
                        'whose sharpness depends on the level of the logits: near-greedy '
                        'repetition or uniform noise, by the checkpoint')
    p.add_argument('--top-k', type=cli.non_negative_int, default=0, metavar='K',
                   help='draw each character from the K most likely ones only (as nanoGPT\'s '
                        'sample.py), 0: from all; for --sample and the samples printed while '
                        'training')
    p.add_argument('--greedy', action='store_true',
                   help='generate the most likely character every time (no drawing): the same '
                        'text every run')


def clean_primes(primes, vocab):
    """The primes without their characters outside vocab (with a warning line); none may be
    left empty."""
    cleaned = []
    for prime in primes:
        kept = ''.join(ch for ch in prime if ch in vocab)
        if not kept:
            raise UserError('--prime {!r}: none of its characters is in the vocabulary'.format(
                prime))
        if kept != prime:
            dropped = ''.join(sorted(set(prime) - set(vocab)))
            print('warning: --prime {!r}: dropped {!r}, not in the vocabulary'.format(
                prime, dropped), file=sys.stderr)
        cleaned.append(kept)
    return cleaned


def default_seeds(seeds, vocab):
    """The seeds in this vocabulary: their other characters dropped, empty ones skipped."""
    seeds = [s for s in (''.join(ch for ch in seed if ch in vocab) for seed in seeds) if s]
    return seeds or [vocab[0]]
