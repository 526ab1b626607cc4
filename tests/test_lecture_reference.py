"""tests/lecture_reference.py, the lecture's read_data and read_batch with their bugs fixed:
the reference the fast pipeline is tested against holds what the README promises."""
import random

import pytest

import utils
from tf1rnn import cli
import lecture_reference

VOCAB = "abc d'é📈"


# --- reading and chunking ---------------------------------------------------------

def write_text(tmp_path, text, name='corpus.txt'):
    path = tmp_path / name
    path.write_bytes(text.encode('utf-8') if isinstance(text, str) else text)
    return str(path)


def covered_targets(ids, chunks):
    """Positions of ids that some chunk trains on (as next-character targets)."""
    out = set()
    for chunk in chunks:
        real = [c for c in chunk if c]
        for start in range(len(ids)):
            if ids[start:start + len(real)] == real:
                out.update(range(start + 1, start + len(real)))
                break
    return out


@pytest.mark.parametrize('length,window,overlap', [
    (3, 50, 25), (49, 50, 25), (50, 50, 25), (51, 50, 25), (137, 50, 25), (20, 5, 5), (21, 5, 5)])
def test_chunks_cover_every_character(length, window, overlap):
    ids = list(range(1, length + 1))  # distinct, so a chunk's place is known
    chunks = lecture_reference.chunk_ids(ids, window, overlap)
    assert chunks and all(len(c) == window for c in chunks)
    for chunk in chunks:  # real ids first, padding only at the end
        n = sum(1 for c in chunk if c)
        assert n >= 2 and all(chunk[:n]) and not any(chunk[n:])
    inputs = {c for chunk in chunks for c in chunk if c}
    if window == overlap and length % window == 1:
        # A one-character tail has nothing to predict: it is the only one left out.
        assert inputs == set(ids[:-1])
    else:
        assert inputs == set(ids)
    if window > overlap:  # overlapping windows: every character but the first is a target
        assert covered_targets(ids, chunks) == set(range(1, length))


def test_lecture_range_would_lose_short_lines():
    # The lecture's range(0, len(text) - window, overlap) gives no window for these.
    assert list(range(0, 30 - 50, 25)) == []
    assert len(lecture_reference.chunk_ids(list(range(1, 31)), 50, 25)) == 1


def test_chunks_of_empty_or_single_character_line_are_none():
    assert lecture_reference.chunk_ids([], 50, 25) == []
    assert lecture_reference.chunk_ids([3], 50, 25) == []


def test_chunk_rejects_bad_overlap():
    with pytest.raises(ValueError):
        lecture_reference.chunk_ids([1, 2, 3], 5, 0)
    with pytest.raises(ValueError):
        lecture_reference.chunk_ids([1, 2, 3], 5, 6)


def test_read_data_streams_all_lines_shuffled(tmp_path):
    path = write_text(tmp_path, "ab\n\naaaa\nx!\nbbb d\n")
    stream = lecture_reference.read_data(path, VOCAB, window=3, overlap=2, rng=random.Random(0))
    chunks = [next(stream) for _ in range(20)]
    decoded = {utils.vocab_decode(c, VOCAB) for c in chunks}
    # "x!" has one vocabulary character: nothing to predict, never yielded.
    assert decoded == {'ab', 'aaa', 'aa', 'bbb', 'b d'}
    assert all(len(c) == 3 for c in chunks)


def test_read_data_rejects_file_with_nothing_to_train_on(tmp_path):
    path = write_text(tmp_path, "!!\n??\nx\n")
    with pytest.raises(cli.UserError, match='no line'):
        next(lecture_reference.read_data(path, VOCAB, 50, 25))


@pytest.mark.parametrize('content,message', [
    (b'', 'is empty'), (b'\n\n  \n', 'is empty'), (b'ab\nc\xff\xfed\n', 'line 2: not UTF-8')])
def test_read_lines_rejects_bad_files(tmp_path, content, message):
    with pytest.raises(cli.UserError, match=message):
        lecture_reference.read_lines(write_text(tmp_path, content))


def test_read_lines_missing_file_and_directory(tmp_path):
    with pytest.raises(cli.UserError, match='does not exist'):
        lecture_reference.read_lines(str(tmp_path / 'nope.txt'))
    with pytest.raises(cli.UserError, match='directory'):
        lecture_reference.read_lines(str(tmp_path))


def test_read_batch_yields_full_batches_and_a_nonempty_tail():
    assert list(lecture_reference.read_batch(iter(range(6)), 3)) == [[0, 1, 2], [3, 4, 5]]
    assert list(lecture_reference.read_batch(iter(range(7)), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(lecture_reference.read_batch(iter([]), 3)) == []
