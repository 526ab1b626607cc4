"""tf1rnn/windows.py and char_rnn.py's data: the encoded lines split into training and
validation windows, batched in a resumable order, as the lecture's read_data did (its reading,
fixed, is the oracle in lecture_reference.py); the vocabulary, counts and end marker; memory."""
import collections
import itertools
import os
import random
import re
import subprocess
import sys

import numpy as np
import pytest

import char_rnn
import utils
from tf1rnn import corpus, files, model_dir, windows
import lecture_reference

from test_char_rnn import SCRIPT, WORDS, write_corpus


def test_out_of_vocabulary_characters_are_counted(tmp_path):
    lines = lecture_reference.read_lines(write_corpus(tmp_path / 'c.txt'))
    split = windows.Corpus(corpus.encode_lines(lines, char_rnn.TRUMP_VOCAB), 20, 0.1, 0)
    text = '\n'.join(lines)
    assert split.dropped == {'!': text.count('!'), '&': text.count('&')}
    assert split.kept == len(text) - text.count('\n') - text.count('!') - text.count('&')
    described = split.describe('c.txt', 'trump')
    assert "'!' {}".format(text.count('!')) in described and "'&'" in described
    auto = windows.Corpus(corpus.encode_lines(lines), 20, 0.1, 0)
    assert not auto.dropped and '!' in auto.vocab and '\U0001f4c8' in auto.vocab


def test_batches_cover_every_window_each_pass_and_validation_is_held_out(tmp_path):
    lines = ['{:03d} {}'.format(i, line)   # a tag at the start of each line's first window
             for i, line in enumerate(lecture_reference.read_lines(write_corpus(tmp_path / 'c.txt', 60)))]
    text = corpus.encode_lines(lines, char_rnn.TRUMP_VOCAB)
    split = windows.Corpus(text, 10, 0.2, 0)
    train = split.train
    assert split.val.n_lines == 12 and train.n_lines == 48
    batches = train.batches(7, [1])
    seen = np.concatenate([next(batches) for _ in range(3 * len(train) // 7 + 1)])
    passes = [seen[i * len(train):(i + 1) * len(train)] for i in range(3)]
    for rows in passes:   # each pass: every window once, batches running across passes
        assert sorted(map(tuple, rows)) == sorted(map(tuple, all_windows(train)))
    assert not np.array_equal(passes[0], passes[1])   # reshuffled

    def tags(windows):
        texts = [utils.vocab_decode(row, char_rnn.TRUMP_VOCAB) for row in all_windows(windows)]
        return {text[:3] for text in texts if re.match(r'\d{3} ', text)}
    assert len(tags(split.val)) == 12 and len(tags(train)) == 48
    assert not tags(split.val) & tags(train)
    # From any position, the stream the run from 0 draws from there (a resume).
    for start in (1, 7, len(train) - 3, 2 * len(train) + 5):
        resumed = train.batches(7, [1], start=start)
        later = np.concatenate([next(resumed) for _ in range(3)])
        np.testing.assert_array_equal(later, seen[start:start + 21])
    again = windows.Corpus(text, 10, 0.2, 0)
    assert tags(again.val) == tags(split.val)
    assert tags(windows.Corpus(text, 10, 0.2, 1).val) != tags(split.val)


def all_windows(windows):
    """Every window of a Windows, in order, as one int32 array."""
    return np.concatenate(list(windows.fixed_batches(100)) or [np.zeros((0, windows.window))])


# The data pipeline before corpus.encode_file (main at 5a04bb7), kept as it was: every
# window a Python list, then all of them one int32 array. The new one must split the lines
# and draw the batches exactly as it did.

class OldCorpus(object):
    def __init__(self, lines, vocab, window, val_frac, seed, name='the file'):
        self.vocab = vocab
        self.dropped = collections.Counter()
        encoded = [utils.vocab_encode(line, vocab, self.dropped) for line in lines]
        self.lines = sum(1 for line in lines if line)
        self.chars = sum(len(line) for line in lines)
        self.kept = sum(len(ids) for ids in encoded)
        usable = [ids for ids in encoded if len(ids) >= 2]
        order = np.random.RandomState(seed).permutation(len(usable))
        n_val = int(round(val_frac * len(usable)))
        if val_frac > 0:
            n_val = max(n_val, 1)
        n_val = min(n_val, len(usable) - 1)
        self.train = OldWindows([usable[i] for i in order[n_val:]], window)
        self.val = OldWindows([usable[i] for i in order[:n_val]], window)

    describe = windows.Corpus.describe


class OldWindows(object):
    def __init__(self, encoded_lines, window):
        chunks, starts = [], [0]
        for ids in encoded_lines:
            chunks.extend(lecture_reference.chunk_ids(ids, window, window // 2))
            starts.append(len(chunks))
        self.array = np.array(chunks, np.int32).reshape(-1, window)
        self.starts = np.array(starts)
        self.n_lines = len(encoded_lines)

    def __len__(self):
        return len(self.array)

    def batches(self, batch_size, seed):
        sizes = np.diff(self.starts)
        pending = np.zeros(0, np.int64)
        passes = itertools.count()
        while True:
            while len(pending) < batch_size:
                lines = np.random.RandomState(seed + [next(passes)]).permutation(self.n_lines)
                counts = sizes[lines]
                firsts = np.repeat(self.starts[lines] - np.cumsum(counts) + counts, counts)
                pending = np.concatenate([pending, firsts + np.arange(counts.sum())])
            yield self.array[pending[:batch_size]]
            pending = pending[batch_size:]

    def fixed_batches(self, batch_size, limit=0):
        stop = len(self.array) if not limit else min(len(self.array), limit * batch_size)
        return [self.array[i:i + batch_size] for i in range(0, stop, batch_size)]


def old_auto_vocab(lines):
    return ''.join(sorted(set(''.join(lines))))


def old_find_end_marker(lines):
    last = collections.Counter(line.split()[-1] for line in lines if line.split())
    total = sum(last.values())
    word, count = last.most_common(1)[0] if last else ('', 0)
    return word if total >= 100 and count >= 0.99 * total else ''


# str.isspace characters, and characters that are not (zero-width space, BOM).
SPACES = [' ', '\t', '\r', '\x0b', '\x0c', '\x1c', '\x85', '\xa0', '\u2028', '\u3000']
NOT_SPACES = ['\u200b', '\ufeff']
WIDE = [chr(0x4e00 + i) for i in range(300)] + [chr(0x1f600 + i) for i in range(20)]


def write_awkward_corpus(path, lines=150, seed=0, wide=False):
    """Lines at every edge: empty, blank, of one character, as long as a window or longer
    than a read block; whitespace of every kind at both ends and inside; characters
    outside the BMP and the lecture's vocabulary (with wide, over 300 distinct ones)."""
    rng = random.Random(seed)
    alphabet = WORDS + ['!', '&', 'caf\xe9', '\u4e2d\u6587'] + NOT_SPACES + (WIDE if wide else [])
    text = []
    for i in range(lines):
        if i % 10 == 0:
            line = ''
        elif i % 10 == 1:
            line = ''.join(rng.choice(SPACES) for _ in range(rng.randint(1, 3)))
        elif i % 10 == 2:
            line = rng.choice(['a', '!', '\U0001f4c8', '\u3000b '])
        else:
            words = [rng.choice(alphabet) for _ in range(rng.choice([1, 2, 5, 9, 30, 80]))]
            line = ''.join(word + (rng.choice(SPACES) if rng.random() < 0.2 else ' ')
                           for word in words) + ('' if i % 7 == 0 else '_E_')
            line = rng.choice(['', ' ', '\t\u3000']) + line + rng.choice(['', '  ', '\r', '\x85'])
        text.append(line)
    with open(str(path), 'wb') as f:   # '\n' only: the other line breaks stay in the lines
        f.write(('\n'.join(text) + ('\n' if seed % 2 else '')).encode('utf-8'))
    return str(path)


@pytest.mark.parametrize('vocab,lines,window,val_frac,batch_size,block', [
    ('trump', 150, 50, 0.05, 64, corpus.BLOCK_BYTES),
    ('auto', 150, 50, 0.05, 64, 97),
    ('trump', 150, 10, 0.2, 7, 97),
    ('auto', 60, 2, 0.0, 3, 1000),
    ('auto', 40, 3, 0.5, 5, 50),
    ('trump', 12, 50, 0.3, 64, 200),   # batches longer than a pass over the lines
    ('wide', 150, 7, 0.1, 16, 300),    # over 255 characters: two-byte ids
])
def test_new_pipeline_splits_and_batches_as_the_old_one(vocab, lines, window, val_frac,
                                                        batch_size, block, tmp_path):
    path = write_awkward_corpus(tmp_path / 'c.txt', lines, seed=lines + window,
                                wide=vocab == 'wide')
    text_lines = lecture_reference.read_lines(path)
    old_vocab = char_rnn.TRUMP_VOCAB if vocab == 'trump' else old_auto_vocab(text_lines)
    old = OldCorpus(text_lines, old_vocab, window, val_frac, seed=3)
    text = corpus.encode_file(path, char_rnn.TRUMP_VOCAB if vocab == 'trump' else None, block)
    new = windows.Corpus(text, window, val_frac, 3)
    assert text.vocab == old_vocab and text.sha256 == files.sha256_of(path)
    assert text.ids.dtype == (np.uint16 if vocab == 'wide' else np.uint8)
    assert new.describe('c', vocab) == old.describe('c', vocab)
    assert list(new.dropped.items()) == list(old.dropped.items())
    assert (new.lines, new.chars, new.kept) == (old.lines, old.chars, old.kept)
    assert model_dir.find_end_marker(text) == old_find_end_marker(text_lines)
    for got, want in ((new.train, old.train), (new.val, old.val)):
        assert (len(got), got.n_lines) == (len(want), want.n_lines)
        for limit in (0, 2):
            got_batches, want_batches = (got.fixed_batches(batch_size, limit),
                                         want.fixed_batches(batch_size, limit))
            assert len(got_batches) == len(want_batches)
            for a, b in zip(got_batches, want_batches):
                assert a.dtype == np.int32
                np.testing.assert_array_equal(a, b)
    got, want = new.train.batches(batch_size, [5]), old.train.batches(batch_size, [5])
    for _ in range(min(3 * len(old.train) // batch_size + 2, 300)):   # passes and beyond
        np.testing.assert_array_equal(next(got), next(want))


LONG = 'https://t.co/' + 'x' * 60   # longer than the words hashed all at once


@pytest.mark.parametrize('lines,marker', [
    (['make america {} _E_'.format(i) for i in range(300)], '_E_'),
    (['make america {} _E_'.format(i) for i in range(99)], ''),        # too few lines to tell
    (['x y'] * 3 + ['make america {} _E_'.format(i) for i in range(297)], '_E_'),   # 99%
    (['x y'] * 4 + ['make america {} _E_'.format(i) for i in range(296)], ''),
    (['\t{} {}\u3000 '.format(i, LONG) for i in range(200)], LONG),
    (['{} {}{}'.format(i, 'ab'[i % 2], LONG) for i in range(200)], ''),   # one letter apart
    (['{}\xa0_E_\r'.format(i) if i % 50 else '' for i in range(300)], '_E_'),
])
def test_end_marker_as_before(lines, marker, tmp_path):
    """The word (nearly) every line ends with, found in blocks of lines: here blocks of a
    few lines, so that a block's most frequent last word is not always the file's."""
    assert old_find_end_marker(lines) == marker
    path = tmp_path / 'c.txt'
    path.write_bytes('\n'.join(lines).encode('utf-8'))
    for text in (corpus.encode_lines(lines), corpus.encode_file(str(path), block_bytes=64)):
        assert model_dir.find_end_marker(text) == marker


MEASURE_MEMORY = '''
import os
import sys
import numpy as np
import char_rnn
import utils
from tf1rnn import model_dir, windows
text, _ = model_dir.read_corpus(sys.argv[1], None, os.path.dirname(sys.argv[1]))
corpus = windows.Corpus(text, 50, 0.05, 0)
batches = corpus.train.batches(64, [0])
for _ in range(3):
    next(batches)
for batch in corpus.val.fixed_batches(64, 20):
    pass
with open('/proc/self/status') as f:   # ru_maxrss would start at the parent's RSS
    peak = [line.split()[1] for line in f if line.startswith('VmHWM:')][0]
print(int(peak) * 1024, text.chars)
'''


@pytest.mark.skipif(not os.path.exists('/proc/self/status'), reason='reads VmHWM (Linux)')
def test_memory_grows_by_under_4_bytes_per_character(tmp_path):
    """Peak RSS of char_rnn.py's data loading (--vocab auto, the lecture's windows), for 1.5
    and 12 MB of text: the difference per character of the difference. The pipeline
    before this one took 34 bytes per character; the ids alone take 1."""
    block = open(write_corpus(tmp_path / 'block.txt', lines=25000), encoding='utf-8').read()
    runs = []
    for copies in (2, 16):
        path = tmp_path / 'c{}.txt'.format(copies)
        path.write_text(block * copies, encoding='utf-8')
        proc = subprocess.run([sys.executable, '-c', MEASURE_MEMORY, str(path)],
                              cwd=os.path.dirname(SCRIPT), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        runs.append([int(n) for n in proc.stdout.split()[-2:]])
        path.unlink()
    (small, small_chars), (large, large_chars) = runs
    per_char = (large - small) / (large_chars - small_chars)
    assert 0.5 < per_char < 4, per_char
