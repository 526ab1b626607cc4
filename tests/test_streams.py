"""tf1rnn/streams.py: stream mode's split, training streams, cluster shards and evaluation,
against a plain reading of the file."""
import itertools
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from test_corpus import reference, write_code
import utils
from tf1rnn import cli, corpus, streams


def decode(ids, vocab):
    return utils.vocab_decode(ids, vocab)


def row_texts(batches, vocab):
    """The text each row reads over consecutive batches of windows: the first window whole,
    then each next window less the id it shares with the one before (checked)."""
    rows = [[] for _ in range(len(batches[0]))]
    for k, batch in enumerate(batches):
        for b, window in enumerate(batch):
            window = window[window != 0]
            if k and rows[b] and len(window):
                assert window[0] == rows[b][-1][-1], 'row {} does not continue at {}'.format(b, k)
                window = window[1:]
            if len(window):
                rows[b].append(window)
    return [decode(np.concatenate(row) if row else [], vocab) for row in rows]


@pytest.fixture(scope='module')
def code(tmp_path_factory):
    """(text as read plainly, EncodedText in stream mode) of a source-like file."""
    path = tmp_path_factory.mktemp('streams') / 'code.txt'
    write_code(path, lines=300, seed=11, crlf=True)
    text = corpus.encode_file(str(path), None, 97, corpus.STREAM)
    return reference(path), text


def test_the_split_is_contiguous_validation_then_test_at_the_end(code):
    want, text = code
    split = streams.Split(text.ids)
    n = len(want)
    assert split.bounds == (n - 2 * round(0.05 * n), n - round(0.05 * n))
    assert (streams.VAL_FRAC, streams.TEST_FRAC) == (0.05, 0.05)
    for part, (a, b) in ((split.train, (0, split.bounds[0])),
                         (split.val, split.bounds), (split.test, (split.bounds[1], n))):
        assert decode(part, text.vocab) == want[a:b]
        assert np.shares_memory(part, text.ids)   # views, no copy
    split = streams.Split(text.ids, 0.1, 0.0)
    assert len(split.test) == 0 and len(split.val) == round(0.1 * n)
    split = streams.Split(text.ids, 0.2, 0.05, max_val=100)
    assert len(split.val) == 100 and len(split.test) == round(0.05 * n)
    assert split.bounds[1] == n - len(split.test) and len(split.train) == n - 100 - len(split.test)
    tiny = streams.Split(np.arange(1, 11), 0.01, 0.01)   # 2 at least of a part asked for
    assert (len(tiny.train), len(tiny.val), len(tiny.test)) == (6, 2, 2)
    assert 'training, ' in split.describe()
    with pytest.raises(cli.UserError, match='too few'):
        streams.Split(np.arange(1, 5), 0.3, 0.3)
    for fracs in ((1.0, 0), (0.5, 0.5), (-0.1, 0)):
        with pytest.raises(cli.UserError, match='fractions'):
            streams.Split(text.ids, *fracs)


@pytest.mark.parametrize('batch_size,window,shift', [(4, 16, True), (7, 5, True), (3, 50, False),
                                                      (1, 2, True)])
def test_each_row_reads_the_text_in_order_every_character_once_a_pass(code, batch_size, window,
                                                                       shift):
    """Over a pass, the rows' texts, rebuilt from consecutive windows, are consecutive
    pieces of the training text as a plain reading gives it, each row ending where the next
    begins: every character from the pass's offset on is a target exactly once, in order.
    The state resets at a pass's first batch only; with shift, passes begin elsewhere."""
    want, text = code
    split = streams.Split(text.ids)
    train = want[:split.bounds[0]]
    s = streams.Streams(split.train, batch_size, window, shift)
    assert s.steps == (len(train) - 1 - (window - 1 if shift else 0)) // (batch_size * window)
    batches = s.batches([4, 2])
    offsets = []
    for number in range(4):
        drawn = [next(batches) for _ in range(s.steps)]
        assert [reset for _, reset in drawn] == [True] + [False] * (s.steps - 1)
        for ids, _ in drawn:
            assert ids.dtype == np.int32 and ids.shape == (batch_size, window + 1)
            assert ids.all()   # no padding in training
            assert utils.num_targets(ids) == batch_size * window
        rows = row_texts([ids for ids, _ in drawn], text.vocab)
        assert all(len(row) == s.steps * window + 1 for row in rows)
        offset = s.offset([4, 2], number)
        offsets.append(offset)
        assert 0 <= offset <= len(train) - 1 - batch_size * s.steps * window
        joined = rows[0] + ''.join(row[1:] for row in rows[1:])
        assert all(a[-1] == b[0] for a, b in zip(rows, rows[1:]))
        assert joined == train[offset:offset + len(joined)]
        left_out = len(train) - len(joined)
        assert left_out < batch_size * window + window + (window - 1 if shift else 0)
    if shift:
        assert s.slack >= window - 1 and len(set(offsets)) > 1
    else:
        assert offsets == [0] * 4


def test_resume_from_any_start_draws_what_the_uninterrupted_run_draws(code):
    want, text = code
    s = streams.Streams(streams.Split(text.ids).train, 5, 12)
    seed = [7]
    straight = list(itertools.islice(s.batches(seed), 3 * s.steps + 4))
    for start in sorted({0, 1, 2, s.steps - 1, s.steps, s.steps + 1, 2 * s.steps + 3,
                         3 * s.steps}):
        resumed = s.batches(seed, start)
        assert s.resets(start) == straight[start].reset == (start % s.steps == 0)
        assert s.position(start) == divmod(start, s.steps)
        for want_batch in straight[start:]:
            got = next(resumed)
            np.testing.assert_array_equal(got.ids, want_batch.ids)
            assert got.reset == want_batch.reset
        np.testing.assert_array_equal(s.batch(seed, start).ids, straight[start].ids)
    # Another seed: passes begin elsewhere.
    assert [s.offset([8], p) for p in range(5)] != [s.offset(seed, p) for p in range(5)]


@pytest.mark.parametrize('workers,batch_size,window', [(3, 2, 7), (2, 4, 10), (4, 1, 3)])
def test_workers_read_disjoint_streams_that_cover_the_training_text(workers, batch_size, window):
    """With ids that are their own positions: each worker's batches are its rows of the
    layout one process with workers x batch_size rows reads; their targets are disjoint and
    cover each pass's text from its offset on."""
    ids = np.arange(1, 2000, dtype=np.uint32)
    seed = [3]
    whole = streams.Streams(ids, workers * batch_size, window)
    shards = [streams.Streams(ids, batch_size, window, task=i, workers=workers)
              for i in range(workers)]
    assert all(shard.steps == whole.steps for shard in shards)
    start = whole.steps - 2   # across a pass boundary
    drawn = [list(itertools.islice(shard.batches(seed, start), 4)) for shard in shards]
    for k, batch in enumerate(itertools.islice(whole.batches(seed, start), 4)):
        rows = np.empty_like(batch.ids)
        for i in range(workers):
            assert drawn[i][k].reset == batch.reset and drawn[i][k].ids.shape[0] == batch_size
            rows[i::workers] = drawn[i][k].ids
        np.testing.assert_array_equal(rows, batch.ids)
    for number in range(3):
        targets = [np.concatenate([shard.batch(seed, number * shard.steps + k).ids[:, 1:].ravel()
                                   for k in range(shard.steps)]) for shard in shards]
        every = np.concatenate(targets)
        assert len(np.unique(every)) == len(every)   # disjoint, each once
        offset = whole.offset(seed, number)
        np.testing.assert_array_equal(np.sort(every), offset + 1 + np.arange(
            workers * batch_size * whole.span) + 1)
    with pytest.raises(ValueError):
        streams.Streams(ids, 2, 5, task=3, workers=3)


@pytest.mark.parametrize('rows,window', [(1, 10), (4, 7), (7, 50), (64, 5), (500, 3)])
def test_evaluation_reads_the_split_whole_every_character_a_target_once(code, rows, window):
    """Every character of the split but its first is a target exactly once, in order, with
    rows of contiguous text carried from batch to batch and padded at their end; each row
    begins at the character the row before ended with."""
    want, text = code
    split = streams.Split(text.ids)
    val = want[split.bounds[0]:split.bounds[1]]
    batches = streams.EvalBatches(split.val, rows, window)
    assert batches.targets == len(val) - 1
    assert [reset for _, reset in batches] == [True] + [False] * (len(batches) - 1)
    ids = [batch.ids for batch in batches]
    assert all(b.dtype == np.int32 and b.shape == (rows, window + 1) for b in ids)
    assert sum(utils.num_targets(b) for b in ids) == batches.targets
    texts = [row for row in row_texts(ids, text.vocab) if row]
    assert texts[0] + ''.join(row[1:] for row in texts[1:]) == val
    assert max(map(len, texts)) - min(map(len, texts)) <= 1   # rows of even length
    for b in ids:   # padding only after a row's end
        for row in b:
            real = np.count_nonzero(row)
            assert row[:real].all() and not row[real:].any()
    # The targets do not depend on rows: the same characters, in order, with positions.
    positions = streams.EvalBatches(np.arange(1, len(val) + 1), rows, window)
    got = np.concatenate([b.ids[:, 1:][b.ids[:, 1:] != 0] for b in positions])
    np.testing.assert_array_equal(np.sort(got), np.arange(2, len(val) + 1))
    assert batches[-1].reset is (len(batches) == 1)
    assert [np.array_equal(a.ids, b) for a, b in zip(batches[0:2], ids)] == [True] * min(2, len(ids))
    with pytest.raises(IndexError):
        batches[len(batches)]


def test_a_tiny_file(tmp_path):
    """Shorter than batch_size x window: training refuses it in one line naming what to
    lower; evaluating a split shorter than its rows works (rows without text are zeros)."""
    path = tmp_path / 'tiny.txt'
    path.write_text('def f(x):\n    return x\n', encoding='utf-8')
    text = corpus.encode_file(str(path), mode=corpus.STREAM)
    split = streams.Split(text.ids, 0.1, 0.1)
    with pytest.raises(cli.UserError) as error:
        streams.Streams(split.train, 4, 10)
    assert str(error.value) == ('the training text has {} characters: too few for 4 streams of '
                                'windows of 10 (50 at least); lower the batch size or the '
                                'window'.format(len(split.train)))
    with pytest.raises(cli.UserError, match='or use fewer workers'):
        streams.Streams(split.train, 2, 5, task=0, workers=4)
    s = streams.Streams(split.train, 2, 6)
    assert s.steps == 1 and decode(s.batch([0], 0).ids[:, 1:].ravel(), text.vocab) in \
        reference(path)
    for shift, least in ((True, 2 * 6 + 1 + 5), (False, 2 * 6 + 1)):   # just enough, or not
        assert streams.Streams(np.arange(1, least + 1), 2, 6, shift).steps == 1
        with pytest.raises(cli.UserError, match=re.escape('({} at least)'.format(least))):
            streams.Streams(np.arange(1, least), 2, 6, shift)
    evaluation = streams.EvalBatches(split.val, 8, 50)
    assert len(evaluation) == 1 and evaluation.targets == len(split.val) - 1
    batch = evaluation[0].ids
    assert decode(batch[batch != 0], text.vocab)[:1] == reference(path)[split.bounds[0]]
    assert utils.num_targets(batch) == evaluation.targets
    assert len(streams.EvalBatches(split.val[:1], 4, 5)) == 0
    assert len(streams.EvalBatches(split.val[:0], 4, 5)) == 0


def test_only_offsets_are_kept():
    """No copy of the text: Streams and EvalBatches keep the ids themselves and arrays of a
    row or a window, whatever the text's length."""
    ids = np.ones(1 << 20, np.uint8)
    for made in (streams.Streams(ids, 8, 64), streams.EvalBatches(ids, 8, 64)):
        assert made.ids is ids
        arrays = [value for name, value in vars(made).items()
                  if isinstance(value, np.ndarray) and name != 'ids']
        assert arrays and all(array.size <= 65 for array in arrays)


def test_bits():
    assert streams.bits(math.log(2)) == pytest.approx(1.0)
    assert streams.bits(1.0) == pytest.approx(1.4427, abs=1e-4)


MEASURE_MEMORY = '''
import sys
from tf1rnn import corpus, streams
text = corpus.encode_file(sys.argv[1], mode=corpus.STREAM)
split = streams.Split(text.ids)
batches = streams.Streams(split.train, 64, 50).batches([0], 12345)
for _ in range(3):
    next(batches)
for batch, reset in streams.EvalBatches(split.val, 64, 50):
    pass
with open('/proc/self/status') as f:   # ru_maxrss would start at the parent's RSS
    peak = [line.split()[1] for line in f if line.startswith('VmHWM:')][0]
print(int(peak) * 1024, text.chars)
'''


@pytest.mark.skipif(not os.path.exists('/proc/self/status'), reason='reads VmHWM (Linux)')
def test_memory_grows_by_under_2_bytes_per_character(tmp_path):
    """Peak RSS of stream mode's data, encoded, split, drawn and evaluated whole, for 2 and
    16 MB of text without a line break: the difference per character of the difference
    (the ids alone take 1 byte a character)."""
    rng = np.random.RandomState(0)
    block = ''.join(rng.choice(list('abcdefgh \t\xe9\u4e2d'), 1 << 20))
    runs = []
    for copies in (2, 16):
        path = tmp_path / 'c{}.txt'.format(copies)
        path.write_text(block * copies, encoding='utf-8')
        proc = subprocess.run([sys.executable, '-c', MEASURE_MEMORY, str(path)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        runs.append([int(n) for n in proc.stdout.split()[-2:]])
        path.unlink()
    (small, small_chars), (large, large_chars) = runs
    per_char = (large - small) / (large_chars - small_chars)
    assert 0.5 < per_char < 2, per_char
