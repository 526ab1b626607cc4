"""What every benchmark shares: paths, thread counts, timing, data, the FLOP count.

Imports no TensorFlow, so the tf.keras peer (which must run with TF2's default
eager behaviour) and the PyTorch peer can use it too.
"""
from __future__ import print_function

import os
import random
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Both cores of the benchmark machine, for every framework alike.
THREADS = 2
THREAD_ENV = {
    'OMP_NUM_THREADS': str(THREADS),
    'MKL_NUM_THREADS': str(THREADS),
    'OPENBLAS_NUM_THREADS': str(THREADS),
    'TF_NUM_INTRAOP_THREADS': str(THREADS),
    'TF_NUM_INTEROP_THREADS': str(THREADS),
    'TF_CPP_MIN_LOG_LEVEL': '2',
}

# The lecture's model sizes (every char model in bench/ uses them).
HIDDEN_SIZES = (128, 256)
BATCH_SIZE = 64
WINDOW = 50
OVERLAP = WINDOW // 2

# The lecture's vocabulary. The seed's text reached us with its UTF-8 decoded
# twice; its last two characters read back as an arrow and the chart emoji.
VOCAB = ("$%'()+,-./0123456789:;=?ABCDEFGHIJKLMNOPQRSTUVWXYZ"
         " '\"_abcdefghijklmnopqrstuvwxyz{|}@#\u27a1\U0001f4c8")

# The notebook's row-by-row MNIST shapes.
MNIST_INPUT_UNITS = 28
MNIST_HIDDEN_UNITS = 31
MNIST_BATCH_SIZE = 128
MNIST_SEQ_LEN = 28

# The lecture's seeds for online_infer, and its generated length.
SEEDS = ['Hillary', 'I', 'R', 'T', '@', 'N', 'M', '.', 'G', 'A', 'W']
LEN_GENERATED = 200


def log(*args):
    """Progress on stderr (the runner keeps it in the case's log file)."""
    print(*args, file=sys.stderr)
    sys.stderr.flush()


def measure(step, steps, repeats, warmup=0):
    """Seconds for `steps` calls of step(), `repeats` times, after `warmup` calls.

    step(i) gets the running call number, so it can pick its i-th batch.
    """
    i = 0
    for _ in range(warmup):
        step(i)
        i += 1
    seconds = []
    for r in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step(i)
            i += 1
        seconds.append(time.perf_counter() - start)
        log('  repeat {}/{}: {:.3f} s for {} steps'.format(r + 1, repeats, seconds[-1], steps))
    return seconds


def result(seconds, units, unit, **info):
    """What a benchmark function returns: seconds per repeat for `units` of work each."""
    return {'seconds': list(seconds), 'units': units, 'unit': unit, 'info': info}


def skipped(reason):
    return {'skipped': reason}


# ---------------------------------------------------------------------------
# Data.
# ---------------------------------------------------------------------------

def tweets_path(path=None):
    """The tweets file: path if given, else data/ then ../shared/data/; None if none exists."""
    candidates = [path] if path else [
        os.path.join(ROOT, 'data', 'trump_tweets.txt'),
        os.path.join(ROOT, '..', 'shared', 'data', 'trump_tweets.txt')]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            return os.path.abspath(candidate)
    return None


def synthetic_tweets(path, lines=2000, seed=0):
    """Tweet-like lines of vocabulary characters (40 to 140 long), for a clone without the data.

    The step time of every char model here depends on the batch shape only, and the
    lecture's pipeline makes full 50-character windows of any line longer than that.
    """
    rng = random.Random(seed)
    letters = VOCAB[:-2]
    with open(path, 'w', encoding='utf-8') as f:
        for _ in range(lines):
            f.write(''.join(rng.choice(letters) for _ in range(rng.randint(40, 140))) + '\n')
    return path


def lecture_read_data(filename, vocab, window, overlap):
    """The lecture's read_data, as it is (its bugs are part of the baseline).

    Only change: the file is read as UTF-8 (the lecture used the platform's default).
    """
    lines = [line.strip() for line in open(filename, 'r', encoding='utf-8').readlines()]
    while True:
        random.shuffle(lines)

        for text in lines:
            text = lecture_vocab_encode(text, vocab)
            for start in range(0, len(text) - window, overlap):
                chunk = text[start: start + window]
                chunk += [0] * (window - len(chunk))
                yield chunk


def lecture_read_batch(stream, batch_size):
    """The lecture's read_batch."""
    batch = []
    for element in stream:
        batch.append(element)
        if len(batch) == batch_size:
            yield batch
            batch = []
    yield batch


def lecture_vocab_encode(text, vocab):
    return [vocab.index(x) + 1 for x in text if x in vocab]


def lecture_vocab_decode(array, vocab):
    return ''.join([vocab[x - 1] for x in array])


def lecture_batches(filename, count, seed=0):
    """`count` batches of the lecture's pipeline as int32 arrays [64, 50] (for the peers)."""
    import numpy as np
    random.seed(seed)
    data = lecture_read_batch(lecture_read_data(filename, VOCAB, WINDOW, OVERLAP), BATCH_SIZE)
    return [np.array(next(data), dtype=np.int32) for _ in range(count)]


# ---------------------------------------------------------------------------
# Model FLOPs.
# ---------------------------------------------------------------------------

def char_model_flops_per_char(vocab_size=len(VOCAB), hidden_sizes=HIDDEN_SIZES):
    """Training FLOPs per character (per window position) of the lecture's char model.

    Matmul multiply-adds per position, forward: a GRU layer with input size n and
    h units multiplies [x, h] (n + h) by its gate kernel (2h columns) and
    [x, r*h] by its candidate kernel (h columns): (n + h) * 3h. The dense layer:
    h_last * V. FLOPs = 2 x MACs; training = 3 x forward (backward ~ 2 x forward).
    Elementwise work, softmax and the optimizer update are left out.
    """
    macs = 0
    inputs = vocab_size
    for h in hidden_sizes:
        macs += (inputs + h) * 3 * h
        inputs = h
    macs += inputs * vocab_size
    return 3 * 2 * macs


FLOPS_FORMULA = ('6 x [(V + 128) x 3 x 128 + (128 + 256) x 3 x 256 + 256 x V] '
                 '(GRU layers: (inputs + units) x 3 units MACs each; dense: 256 x V; '
                 'x2 FLOPs per MAC, x3 forward + backward)')
