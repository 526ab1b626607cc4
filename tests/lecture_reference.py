"""The lecture's read_data and read_batch, their bugs fixed, line by line as it wrote them:
the reference that tf1rnn.corpus and tf1rnn.windows (its fast pipeline) are tested against."""
import os
import random

from tf1rnn.cli import UserError
from utils import vocab_encode


def read_lines(filename):
    """The lines of a UTF-8 text file, stripped; a clear UserError for a bad file.

    Fix: the lecture opens files with the platform's default encoding, which
    breaks on systems whose default is not UTF-8.
    """
    if not os.path.exists(filename):
        raise UserError('data file {} does not exist'.format(filename))
    if os.path.isdir(filename):
        raise UserError('data file {} is a directory, not a file'.format(filename))
    lines = []
    with open(filename, 'rb') as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode('utf-8')
            except UnicodeDecodeError as e:
                raise UserError('{}: line {}: not UTF-8 (byte 0x{:02x} at column {})'.format(
                    filename, number, raw[e.start], e.start + 1))
            lines.append(line.strip())
    if not any(lines):
        raise UserError('data file {} is empty'.format(filename))
    return lines


def chunk_ids(ids, window, overlap):
    """Windows of `window` ids every `overlap` ids, the last one zero-padded.

    Fix: the lecture's range(0, len(text) - window, overlap) yields nothing for
    a text shorter than the window and drops the tail of a longer one, so its
    zero-padding line never ran. Here every character is in some window.
    A text of fewer than 2 ids has no next character to predict and gives none.
    """
    if not 0 < overlap <= window:
        raise ValueError('need 0 < overlap <= window, got overlap {} and window {}'.format(
            overlap, window))
    if len(ids) < 2:
        return []
    chunks = []
    for start in range(0, max(len(ids) - window, 0) + overlap, overlap):
        chunk = list(ids[start:start + window])
        if len(chunk) < 2:
            break
        chunk += [0] * (window - len(chunk))
        chunks.append(chunk)
    return chunks


def read_data(filename, vocab, window, overlap, rng=random):
    """Endless stream of windows over the lines of filename, reshuffled each pass.

    As the lecture's read_data, but the lines are encoded once, not every pass,
    and a file with nothing to train on is an error instead of an endless loop.
    """
    encoded = [vocab_encode(line, vocab) for line in read_lines(filename)]
    encoded = [ids for ids in encoded if len(ids) >= 2]
    if not encoded:
        raise UserError('{} has no line with two or more vocabulary characters'.format(filename))
    while True:
        rng.shuffle(encoded)
        for ids in encoded:
            for chunk in chunk_ids(ids, window, overlap):
                yield chunk


def read_batch(stream, batch_size):
    """Lists of batch_size elements of stream; the last may be shorter.

    Fix: the lecture also yields an empty list when the stream ends on a full batch.
    """
    batch = []
    for element in stream:
        batch.append(element)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
