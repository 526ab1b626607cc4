"""char_rnn.py's stream mode: the ids of a file encoded whole (corpus.STREAM) split into
contiguous training, validation and test text, and read as parallel contiguous streams,
each batch's rows continuing the previous batch's, so that the RNN state carries over.

Windows are [rows, window + 1] int32 arrays of ids: inputs batch[:, :-1], targets
batch[:, 1:]. Row b of batch k + 1 starts with the id row b of batch k ended with, so each
character is a target once, and the final state of batch k is the initial state of batch
k + 1, except where Batch.reset says the state starts from zero. Only offsets are kept:
every batch is gathered from the ids when it is drawn (no copy of the text, ever).
"""
import collections
import collections.abc
import math

import numpy as np

from tf1rnn.cli import UserError

# Validation and test are the last VAL_FRAC and TEST_FRAC of the text, in this order: the
# split of enwik8 and text8 (90%, 5%, 5%), and char-rnn's validation fraction, which it
# evaluates whole with carried state too. A whole evaluation reads its text once, forward
# only, about a third of what training on as many characters costs: 5% of the text costs
# about 2% of a training pass (0.05 / 0.9 / 3). A big file, evaluated many times a pass,
# caps its validation text (Split's max_val).
VAL_FRAC = 0.05
TEST_FRAC = 0.05

# A batch of windows and whether the RNN state starts from zero before it (else it is the
# final state of the batch before).
Batch = collections.namedtuple('Batch', 'ids reset')


def bits(nats):
    """A loss in nats (per character) in bits."""
    return nats / math.log(2)


class Split(object):
    """ids cut into three contiguous parts, in the order of the file: train, val (the
    validation text) and test, numpy views of ids (no copy).

    val and test are round(val_frac * len(ids)) and round(test_frac * len(ids)) ids at the
    end of the file, 2 at least when their fraction is not 0 (one target). max_val: at most
    that many validation ids, the last before test; the rest of val_frac trains (a cheap
    validation of a big file). bounds: (end of train, end of val), where each part ends.
    """

    def __init__(self, ids, val_frac=VAL_FRAC, test_frac=TEST_FRAC, max_val=None,
                 name='the file'):
        if not (0 <= val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
            raise UserError('validation and test fractions {} and {}: each in [0, 1), their '
                            'sum below 1'.format(val_frac, test_frac))
        size = len(ids)
        n_val, n_test = (max(int(round(frac * size)), 2) if frac > 0 else 0
                         for frac in (val_frac, test_frac))
        if max_val is not None:
            n_val = min(n_val, max(int(max_val), 2 if n_val else 0))
        if size - n_val - n_test < 2:
            raise UserError('{} has {:,} characters in the vocabulary: too few for {} '
                            'validation and {} test characters and 2 to train on'.format(
                                name, size, n_val, n_test))
        self.bounds = (size - n_val - n_test, size - n_test)
        self.train = ids[:self.bounds[0]]
        self.val = ids[self.bounds[0]:self.bounds[1]]
        self.test = ids[self.bounds[1]:]

    def describe(self):
        return '{:,} training, {:,} validation and {:,} test characters (the file\'s last)' \
            .format(len(self.train), len(self.val), len(self.test))


class Streams(object):
    """Training batches of `batch_size` contiguous streams over ids, `window` targets a row.

    A pass reads `steps` batches. In pass p the text from offset o_p on is cut into
    workers * batch_size rows of steps * window targets each, row r holding the ids
    o_p + r * span .. o_p + (r + 1) * span (span = steps * window; rows share their end
    ids, so every id from o_p + 1 to o_p + rows * span is a target exactly once). The
    remainder of the text, fewer than rows * window + window ids, waits for a later pass.
    shift: o_p is drawn from RandomState(seed + [p]) in [0, slack] (slack is window - 1 or
    more), so window boundaries fall elsewhere in each pass, and what is left out too;
    else o_p = 0, the same windows every pass (char-rnn's).

    In a cluster every worker makes Streams with the same ids, sizes and seed, and its own
    task (0..workers - 1): it reads rows task, task + workers, ... of the layout, streams of
    its own, spread over the whole text; together the workers read what one process with
    workers * batch_size rows reads. One process: task 0 of 1 worker.
    """

    def __init__(self, ids, batch_size, window, shift=True, task=0, workers=1,
                 name='the training text'):
        if not 0 <= task < workers:
            raise ValueError('task {} of {} workers'.format(task, workers))
        self.ids, self.batch_size, self.window, self.shift = ids, batch_size, window, shift
        self.task, self.workers = task, workers
        self.rows = batch_size * workers
        least = self.rows * window + 1 + (window - 1 if shift else 0)
        if len(ids) < least:
            raise UserError('{} has {:,} characters: too few for {} streams of windows of {} '
                            '({:,} at least); lower the batch size or the window{}'.format(
                                name, len(ids), self.rows, window, least,
                                ', or use fewer workers' if workers > 1 else ''))
        self.steps = (len(ids) - least) // (self.rows * window) + 1   # batches a pass
        self.span = self.steps * window
        self.slack = len(ids) - 1 - self.rows * self.span
        self.mine = np.arange(task, self.rows, workers, dtype=np.int64) * self.span
        self.columns = np.arange(window + 1, dtype=np.int64)

    def offset(self, seed, number):
        """Where the text of pass `number` begins (seed: a list of ints)."""
        if not self.shift:
            return 0
        return int(np.random.RandomState(list(seed) + [number]).randint(self.slack + 1))

    def position(self, index):
        """(pass, batch within it) of the batch drawn after `index` others."""
        return divmod(int(index), self.steps)

    def resets(self, index):
        """Whether the state starts from zero at batch `index`: at the first of a pass.
        Else a resumed run restores the state that batch index - 1 ended with."""
        return self.position(index)[1] == 0

    def gather(self, offset, step):
        """int32 [batch_size, window + 1]: this worker's rows' window `step` in a pass from
        `offset` on."""
        return self.ids[(offset + step * self.window + self.mine)[:, None]
                        + self.columns].astype(np.int32)

    def batch(self, seed, index):
        """The Batch drawn after `index` others (what batches(seed, index) yields first)."""
        number, step = self.position(index)
        return Batch(self.gather(self.offset(seed, number), step), step == 0)

    def batches(self, seed, start=0):
        """Endless Batches from the one drawn after `start` others on (a resumed run: the
        batches drawn before it), exactly those an uninterrupted run draws from there on.
        seed: a list of ints, the same on every worker."""
        number, step = self.position(start)
        while True:
            offset = self.offset(seed, number)
            while step < self.steps:
                yield Batch(self.gather(offset, step), step == 0)
                step += 1
            number, step = number + 1, 0


class EvalBatches(collections.abc.Sequence):
    """A split evaluated whole, in order, as `rows` contiguous streams with carried state.

    The text's targets (every id but its first) are cut into rows of as many (one more in
    some); row b reads from the id before its first target, which is row b - 1's last
    target, so every id but the split's first is a target exactly once, whatever `rows`.
    Item k: Batch of int32 [rows, window + 1], row b's window k, each row padded with 0
    after its end (a target 0 adds nothing to the loss), reset at k = 0 only. targets: how
    many, so total nats / targets is the loss per character.
    """

    def __init__(self, ids, rows, window):
        self.ids, self.rows, self.window = ids, rows, window
        self.targets = max(len(ids) - 1, 0)
        bounds = np.arange(rows + 1, dtype=np.int64) * self.targets // rows
        self.starts, self.lengths = bounds[:-1], np.diff(bounds)
        self.n_batches = -(-int(self.lengths.max()) // window) if self.targets else 0
        self.columns = np.arange(window + 1, dtype=np.int64)

    def __len__(self):
        return self.n_batches

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        k = k + len(self) if k < 0 else k
        if not 0 <= k < len(self):
            raise IndexError(k)
        left = self.lengths - k * self.window   # targets left in each row
        width = np.where(left > 0, np.minimum(left, self.window) + 1, 0)
        inside = self.columns < width[:, None]
        batch = np.zeros(inside.shape, np.int32)
        batch[inside] = self.ids[((self.starts + k * self.window)[:, None]
                                  + self.columns)[inside]]
        return Batch(batch, k == 0)
