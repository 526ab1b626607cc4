"""How char_rnn.py generates text: a character drawn from the logits at a temperature (the
distribution the lecture meant, or its literal formula), from the top k or greedily; the
characters after each seed drawn inside the graph, one session call for all; the decoding
flags and primes."""
import sys

import utils
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


def generator(model):
    """[batch, model.len_generated] ids drawn after each row of model.seq (a CharRNN's).

    Each seed primes the state whole (seeds of different lengths through dynamic_rnn's
    sequence lengths); the characters are then drawn inside the graph (tf.while_loop), with
    the same cells, dense layer (model.step) and distribution as the lecture's online_infer,
    so one session call generates everything.
    """
    batch = tf.shape(model.seq)[0]
    last = tf.cast(model.length, tf.int32) - 1
    last_logits = tf.gather_nd(model.logits, tf.stack([tf.range(batch), last], axis=1))
    draw = lambda logits: sample_ids(logits, model.temp, model.sampling,  # noqa: E731
                                     model.top_k, model.greedy)
    first = draw(last_logits)
    ids = tf.TensorArray(tf.int32, size=model.len_generated).write(0, first)

    def step(i, previous, state, ids):
        logits, state = model.step(previous, state)
        current = draw(logits)
        return i + 1, current, state, ids.write(i, current)

    _, _, _, ids = tf.while_loop(lambda i, *_: i < model.len_generated, step,
                                 [tf.constant(1), first, model.out_state, ids],
                                 name='generate')
    return tf.transpose(ids.stack())


def generate(sess, model, seeds, length=200, temperature=None, end=''):
    """Each seed followed by `length` characters of model.generated, or up to the first
    `end` (the data's end-of-line marker) among them. Every seed must have at least one
    vocabulary character (see clean_primes)."""
    rows = [utils.vocab_encode(seed, model.vocab) for seed in seeds]
    if not all(rows):
        raise ValueError('a seed has no vocabulary character: {!r}'.format(seeds))
    feed = {model.seq: utils.pad(rows), model.len_generated: length}
    if temperature is not None:
        feed[model.temp] = temperature
    generated = sess.run(model.generated, feed)
    texts = [utils.vocab_decode(ids, model.vocab) for ids in generated]
    if end:   # what follows the end of a line was never trained: noise
        texts = [text[:text.index(end) + len(end)] if end in text else text for text in texts]
    return [seed + text for seed, text in zip(seeds, texts)]


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
