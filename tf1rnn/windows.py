"""char_rnn.py's training and validation windows: offsets into the encoded corpus, split
into held-out and training lines, drawn as batches in a resumable order."""
import collections
import collections.abc

import numpy as np

from tf1rnn.cli import UserError
from tf1rnn.corpus import LINES, describe, index_dtype


class Windows(object):
    """Windows of some lines of an id array: `window` ids every window // 2 ids of each line,
    its last window zero-padded (chunk_ids' windows), line after line. Only offsets are
    kept, 12 bytes a line: a batch is gathered from the ids when it is drawn."""

    def __init__(self, ids, starts, lengths, window):
        self.ids, self.lengths, self.window = ids, lengths, window
        self.starts = starts.astype(index_dtype(len(ids)))
        self.step = window // 2
        counts = self.counts(lengths)
        self.ends = np.cumsum(counts, dtype=index_dtype(int(counts.sum(dtype=np.int64))))
        self.n_lines = len(lengths)

    def counts(self, lengths):
        """Windows of lines of these lengths (2 or more)."""
        return 1 + (np.maximum(lengths - self.window, 0) + self.step - 1) // self.step

    def __len__(self):
        return int(self.ends[-1]) if self.n_lines else 0

    def gather(self, lines, numbers):
        """int32 [len(lines), window]: window numbers[i] of line lines[i]."""
        offsets = numbers * self.step
        columns = np.arange(self.window)
        inside = columns < np.minimum(self.lengths[lines] - offsets, self.window)[:, None]
        batch = np.zeros(inside.shape, np.int32)
        batch[inside] = self.ids[((self.starts[lines] + offsets)[:, None] + columns)[inside]]
        return batch

    def take(self, indices):
        """int32 [len(indices), window]: the windows at these indices (0..len(self) - 1)."""
        lines = np.searchsorted(self.ends, indices, side='right')
        return self.gather(lines, indices - self.ends[lines] + self.counts(self.lengths[lines]))

    def batches(self, batch_size, seed, start=0):
        """Endless batches, the lines reshuffled each pass as the lecture's read_data, from
        window `start` of that stream on (`start` windows drawn before: a resumed run).

        Pass p visits the lines in the order of RandomState(seed + [p]) (seed: a list of
        ints), each line's windows in order. Fix: the order depends on the position alone,
        so a run resumed at any step draws what the uninterrupted run draws from there on
        (the earlier stream was reseeded at the resumed step: a new pass began there).
        """
        if not len(self):
            raise ValueError('no windows to draw batches from')
        passes = collections.deque()   # [lines in order, ends of their windows, windows taken]
        number, skip = divmod(int(start), len(self))
        while True:
            while sum(int(ends[-1]) - taken for _, ends, taken in passes) < batch_size:
                order = np.random.RandomState(list(seed) + [number]).permutation(
                    self.n_lines).astype(self.ends.dtype)
                passes.append([order, np.cumsum(self.counts(self.lengths[order]),
                                                dtype=self.ends.dtype), skip])
                number, skip = number + 1, 0
            parts, need = [], batch_size
            while need:
                order, ends, taken = passes[0]
                at = np.arange(taken, taken + min(need, int(ends[-1]) - taken))
                where = np.searchsorted(ends, at, side='right')
                lines = order[where]
                numbers = at - ends[where] + self.counts(self.lengths[lines])
                parts.append(self.gather(lines, numbers))
                need -= len(at)
                passes[0][2] += len(at)
                if passes[0][2] == ends[-1]:
                    passes.popleft()
            yield np.concatenate(parts) if len(parts) > 1 else parts[0]

    def fixed_batches(self, batch_size, limit=0):
        """The first `limit` batches (0: all), always the same: for comparable validation
        losses. A sequence: each batch is gathered when it is read."""
        return _FixedBatches(self, batch_size, len(self) if not limit
                             else min(len(self), limit * batch_size))


class Corpus(object):
    """The lines of an EncodedText (char_rnn.py's corpus) as windows, split into training
    and validation lines."""

    def __init__(self, text, window, val_frac, seed, name='the file'):
        if text.mode != LINES:
            raise ValueError('windows of lines need a text encoded in LINES mode, not '
                             '{}'.format(text.mode))
        self.vocab, self.dropped = text.vocab, text.dropped
        self.lines, self.chars, self.kept = text.lines, text.chars, len(text.ids)
        if not self.kept:
            raise UserError('no character of {} is in the vocabulary ({} characters); try '
                            '--vocab auto'.format(name, len(self.vocab)))
        usable = np.flatnonzero(text.lengths >= 2)   # lines with a character to predict
        if not len(usable):
            raise UserError('no line of {} has two or more vocabulary characters: nothing to '
                            'predict'.format(name))
        starts = np.cumsum(text.lengths, dtype=np.int64)
        starts -= text.lengths
        starts, lengths = starts[usable], text.lengths[usable]
        del usable
        # Held-out lines for the validation loss: the same ones for a given --seed.
        order = np.random.RandomState(seed).permutation(len(starts))
        n_val = int(round(val_frac * len(starts)))
        if val_frac > 0:   # at least one validation line, and always one to train on
            n_val = max(n_val, 1)
        n_val = min(n_val, len(starts) - 1)
        self.train, self.val = (Windows(text.ids, starts[part], lengths[part], window)
                                for part in (order[n_val:], order[:n_val]))

    def describe(self, name, vocab_source):
        return describe(self, name, vocab_source)

    def summary(self):
        """What a training run prints of its windows."""
        return '{:,} training windows of {} from {:,} lines, {:,} validation windows from {:,} ' \
            'lines'.format(len(self.train), self.train.window, self.train.n_lines,
                           len(self.val), self.val.n_lines)


class _FixedBatches(collections.abc.Sequence):
    def __init__(self, windows, size, stop):
        self.windows, self.size, self.stop = windows, size, stop

    def __len__(self):
        return -(-self.stop // self.size)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = i + len(self) if i < 0 else i
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.windows.take(np.arange(i * self.size, min((i + 1) * self.size, self.stop)))
