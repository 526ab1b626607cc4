"""A UTF-8 text file as one array of vocabulary ids, read in blocks in bounded memory, and
its encoded copy beside the checkpoint (char_rnn.py's data).

Two modes: LINES, the file's lines stripped as str.strip does, their line breaks dropped
(one training sequence per line); STREAM, the file as one sequence, every character kept
(line breaks, indentation, blank lines), '\r\n' read as '\n'."""
import collections
import hashlib
import json
import os
import zipfile

import numpy as np

from tf1rnn.cli import UserError, first_line
from tf1rnn.files import sha256_of


BLOCK_BYTES = 1 << 18       # read and encoded at a time (lines: whole, a longer line whole)
LINES, STREAM = 'lines', 'stream'
MODES = (LINES, STREAM)
_HASH_BASE = np.uint64(0x100000001B3)
_HASH_LENGTH = np.uint64(0x9E3779B97F4A7C15)
_HASHED_CHARS = 64          # longer last words are hashed one at a time
_SPACE = []


def index_dtype(size):
    """int32 for indices up to size when they fit, else int64."""
    return np.dtype(np.int32 if size < 2 ** 31 else np.int64)


def id_dtype(vocab_size):
    """The narrowest unsigned integer dtype holding ids 0..vocab_size."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError('vocabulary of {} characters'.format(vocab_size))


def _space_table():
    """A bool per code point: str.isspace, the whitespace of str.strip and str.split.

    Every such character is in the Basic Multilingual Plane (the last is U+3000).
    """
    if not _SPACE:
        table = np.zeros(0x110000, bool)
        table[[c for c in range(0x10000) if chr(c).isspace()]] = True
        _SPACE.append(table)
    return _SPACE[0]


class EncodedText(object):
    """The lines of a text, stripped as str.strip does, as one array of vocabulary ids (mode
    LINES); or (mode STREAM) every character of the text, lengths then one length, all ids.

    ids: the ids (1..len(vocab); 0 is padding, never stored) of the lines' characters in the
    vocabulary, line after line, in the narrowest unsigned dtype (uint8 up to 255 characters);
    lengths: int32 (int64 for lines of 2**31 characters), how many ids each non-empty line has
    (0 when none is in the vocabulary).
    lines and chars: the non-empty lines and their characters; dropped: a Counter of the
    characters outside the vocabulary, in order of first appearance; last_word: (word,
    count), the last word of more than half of the non-empty lines and on how many it is,
    else ('', 0); sha256: of the file's bytes (None for text given in memory); auto: the
    vocabulary is every character of the text, sorted.
    In STREAM mode, lines counts every line (blank ones too), chars every character (line
    breaks included, '\r\n' one), and last_word is ('', 0).
    """

    def __init__(self, vocab, ids, lengths, lines, chars, dropped, last_word, sha256=None,
                 auto=False, mode=LINES):
        self.vocab, self.ids, self.lengths = vocab, ids, lengths
        self.lines, self.chars, self.dropped = lines, chars, dropped
        self.last_word, self.sha256, self.auto = tuple(last_word), sha256, auto
        self.mode = mode


class _Encoder(object):
    """Encodes blocks of whole lines (add), or of any characters (add_stream), into one
    growing id array."""

    def __init__(self, vocab, capacity, mode=LINES):
        self.vocab, self.mode = vocab, mode
        if vocab is None:   # ids in order of first appearance, renumbered by finish()
            self.seen = 0
            self.table = np.zeros(0x110000, np.uint8)
        else:
            self.table = np.zeros(0x110000, id_dtype(len(vocab)))
            for i, ch in reversed(list(enumerate(vocab))):   # a repeated character: its first id
                self.table[ord(ch)] = i + 1
        # Pages beyond the text's ids are never touched, so never allocated.
        self.ids = np.empty(capacity, self.table.dtype)
        self.size = 0
        self.lengths, self.keys, self.words, self.dropped = [], [], {}, {}
        self.lines = self.chars = 0
        self.open_line = False   # STREAM: the characters so far end inside a line

    def add(self, cps):
        """Encodes the lines of cps, uint32 code points of whole lines separated by '\\n'."""
        breaks = np.flatnonzero(cps == 10)
        begins = np.concatenate([[0], breaks + 1])
        ends = np.concatenate([breaks, [len(cps)]])
        some = begins < ends
        begins, ends = begins[some], ends[some]
        space = _space_table()
        if np.take(space, cps[begins]).any() or np.take(space, cps[ends - 1]).any():
            first, last, keep = self._strip(cps, begins, ends)
        else:   # nothing to strip but the line breaks
            first, last, keep = begins, ends - 1, cps != 10
        widths = last - first + 1
        self.lines += len(widths)
        self.chars += int(widths.sum())
        self._last_words(cps, first, last)
        ids = self._lookup(cps, keep)
        if self.vocab is not None:
            known = ids != 0
            if not known.all():
                self._count_dropped(cps[keep][~known])
                ids = ids[known]
                before = np.zeros(len(known) + 1, np.int64)
                np.cumsum(known, out=before[1:])
                bounds = np.zeros(len(widths) + 1, np.int64)
                np.cumsum(widths, out=bounds[1:])
                widths = np.diff(before[bounds])
        self._append(ids)
        self.lengths.append(widths.astype(np.int32 if len(cps) < 2 ** 31 else np.int64))

    def add_stream(self, cps):
        """Encodes every character of cps, uint32 code points ('\\r\\n' as '\\n'; a '\\r'
        ending cps is kept: the caller cuts blocks elsewhere)."""
        keep = None
        returns = np.flatnonzero(cps[:-1] == 13)
        returns = returns[cps[returns + 1] == 10]
        if len(returns):
            keep = np.ones(len(cps), bool)
            keep[returns] = False
        chars = len(cps) - len(returns)
        if not chars:
            return
        self.chars += chars
        ends_open = bool(cps[-1] != 10)
        self.lines += int(np.count_nonzero(cps == 10)) + ends_open - self.open_line
        self.open_line = ends_open
        ids = self._lookup(cps, keep)
        if self.vocab is not None:
            known = ids != 0
            if not known.all():
                self._count_dropped((cps if keep is None else cps[keep])[~known])
                ids = ids[known]
        self._append(ids)

    def _lookup(self, cps, keep=None):
        """The ids of cps[keep] (None: all), 0 for those outside a given vocabulary; with
        vocab None, a character not seen before gets the next id."""
        lookup = np.take(self.table, cps)
        if self.vocab is None:
            unseen = lookup == 0 if keep is None else (lookup == 0) & keep
            if unseen.any():
                new = np.unique(cps[unseen])
                self.seen += len(new)
                self.table = self.table.astype(id_dtype(self.seen), copy=False)
                self.table[new] = np.arange(self.seen - len(new) + 1, self.seen + 1)
                lookup = np.take(self.table, cps)
        return lookup if keep is None else lookup[keep]

    @staticmethod
    def _strip(cps, begins, ends):
        """str.strip of the lines [begins, ends): the first and last characters of those left
        non-empty, and a mask of the characters kept."""
        solid = np.flatnonzero(~np.take(_space_table(), cps))
        at = np.minimum(np.searchsorted(solid, begins), len(solid) - 1)
        full = np.zeros(len(begins), bool) if not len(solid) else (
            (solid[at] >= begins) & (solid[at] < ends))
        first = solid[at[full]]
        last = solid[np.searchsorted(solid, ends[full]) - 1]
        edges = np.zeros(len(cps) + 1, np.int8)
        edges[first] = 1
        edges[last + 1] = -1
        return first, last, np.cumsum(edges[:-1], dtype=np.int8).view(bool)

    def _append(self, ids):
        end, dtype = self.size + len(ids), self.table.dtype
        if end > len(self.ids) or dtype != self.ids.dtype:   # a file that grew; a wider id
            grown = np.empty(len(self.ids) if end <= len(self.ids) else end + end // 2, dtype)
            grown[:self.size] = self.ids[:self.size]
            self.ids = grown
        self.ids[self.size:end] = ids
        self.size = end

    def _count_dropped(self, outside):
        values, first, counts = np.unique(outside, return_index=True, return_counts=True)
        for i in np.argsort(first, kind='stable'):
            cp = int(values[i])
            self.dropped[cp] = self.dropped.get(cp, 0) + int(counts[i])

    def _last_words(self, cps, first, last):
        """Per line, a 64-bit key for its last word (str.split()[-1]): the sum of (code point
        + 1) * P**i over its characters i; the word of the median key."""
        if not len(last):
            return
        space = _space_table()
        keys = np.zeros(len(last), np.uint64)
        length = np.zeros(len(last), np.int64)
        todo = np.arange(len(last))   # lines whose word may go on further back
        while len(todo) and length[todo[0]] < _HASHED_CHARS:   # Horner, from the end
            at = last[todo] - length[todo]
            code = np.take(cps, np.maximum(at, first[todo]))
            go = (at >= first[todo]) & ~np.take(space, code)
            todo, code = todo[go], code[go].astype(np.uint64)
            keys[todo] = keys[todo] * _HASH_BASE + code + np.uint64(1)
            length[todo] += 1
        for i in todo:   # longer words, one at a time
            line = cps[first[i]:last[i] + 1]
            spaces = np.flatnonzero(np.take(space, line))
            word = line[spaces[-1] + 1 if len(spaces) else 0:].astype(np.uint64)
            powers = np.full(len(word), _HASH_BASE)
            powers[0] = 1
            keys[i] = np.sum((word + np.uint64(1)) * np.cumprod(powers), dtype=np.uint64)
            length[i] = len(word)
        keys ^= length.astype(np.uint64) * _HASH_LENGTH
        # A word on more than half of all lines is on more than half of some block's: the
        # median of that block's keys.
        middle = int(np.partition(keys, len(keys) // 2)[len(keys) // 2])
        if middle not in self.words:
            i = int(np.argmax(keys == np.uint64(middle)))
            word = cps[last[i] - length[i] + 1:last[i] + 1]
            self.words[middle] = word.tobytes().decode('utf-32-le')
        self.keys.append(keys)

    def finish(self, sha256=None):
        ids = self.ids[:self.size]
        vocab = self.vocab
        if vocab is None:   # renumber in code point order
            points = np.flatnonzero(self.table)
            vocab = ''.join(map(chr, points.tolist()))
            renumber = np.zeros(max(self.seen + 1, 256), ids.dtype)
            renumber[self.table[points]] = np.arange(1, len(points) + 1)
            table = renumber.tobytes() if ids.dtype == np.uint8 else None
            for i in range(0, len(ids), BLOCK_BYTES):
                block = ids[i:i + BLOCK_BYTES]
                block[:] = (np.frombuffer(block.tobytes().translate(table), np.uint8)
                            if table else np.take(renumber, block))
        if self.mode == STREAM:
            self.lengths = [np.array([len(ids)], index_dtype(len(ids)))]
        lengths = np.concatenate(self.lengths) if self.lengths else np.zeros(0, np.int32)
        self.lengths = None
        last_word = ('', 0)
        if self.keys:
            keys = np.concatenate(self.keys)
            self.keys = None
            keys.partition(len(keys) // 2)
            middle = keys[len(keys) // 2]
            count = int(np.count_nonzero(keys == middle))
            if 2 * count > len(keys):
                last_word = (self.words[int(middle)], count)
        dropped = collections.Counter()
        for cp, count in self.dropped.items():
            dropped[chr(cp)] = count
        return EncodedText(vocab, ids, lengths, self.lines, self.chars, dropped, last_word,
                           sha256, auto=self.vocab is None, mode=self.mode)


def describe(text, name, vocab_source):
    """A line on an EncodedText (or what has its counts): its size, vocabulary, and what of
    it the vocabulary drops."""
    dropped = sum(text.dropped.values())
    line = ('{}: {:,} lines, {:,} characters; vocabulary {} characters ({}); '
            '{:,} characters ({:.2%}) outside it dropped').format(
                name, text.lines, text.chars, len(text.vocab), vocab_source, dropped,
                dropped / max(text.chars, 1))
    if dropped:
        line += ', most frequent: ' + ', '.join(
            '{!r} {:,}'.format(ch, n) for ch, n in text.dropped.most_common(5))
    return line


def encode_lines(lines, vocab=None):
    """EncodedText of lines of text in memory (see encode_file)."""
    text = '\n'.join(lines)
    encoder = _Encoder(vocab, len(text))
    encoder.add(np.frombuffer(text.encode('utf-32-le'), np.uint32))
    return encoder.finish()


def encode_stream(text, vocab=None):
    """EncodedText (STREAM) of a text in memory (see encode_file)."""
    encoder = _Encoder(vocab, len(text), STREAM)
    encoder.add_stream(np.frombuffer(text.encode('utf-32-le'), np.uint32))
    return encoder.finish()


def _check_data_file(path):
    if not os.path.exists(path):
        raise UserError('data file {} does not exist'.format(path))
    if os.path.isdir(path):
        raise UserError('data file {} is a directory, not a file'.format(path))


def _code_points(data, path, line_number, column=0):
    """uint32 code points of UTF-8 bytes whose first line is line_number of path, its first
    `column` bytes before them."""
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as e:
        start = data.rfind(b'\n', 0, e.start) + 1
        raise UserError('{}: line {}: not UTF-8 (byte 0x{:02x} at column {})'.format(
            path, line_number + data.count(b'\n', 0, e.start), data[e.start],
            e.start - start + 1 + (0 if start else column)))
    return np.frombuffer(text.encode('utf-32-le'), np.uint32)


def _stream_cut(buffer):
    """Where to cut UTF-8 bytes so that no character, nor a '\\r\\n', is cut in two:
    before the last character when it is not ASCII (it may be incomplete) or is a '\\r'."""
    for i in range(len(buffer) - 1, max(len(buffer) - 5, -1), -1):
        if buffer[i] & 0xC0 != 0x80:   # not a continuation byte: a character starts here
            return i + 1 if buffer[i] < 0x80 and buffer[i] != 13 else i
    return len(buffer)   # not UTF-8: decoding tells where


def encode_file(path, vocab=None, block_bytes=BLOCK_BYTES, mode=LINES):
    """EncodedText of a UTF-8 text file in this mode (LINES or STREAM); vocab None: every
    character of the text encoded.

    One read: the file's sha256 on the way, a block encoded at a time, so memory grows by the
    ids (a byte per character up to 255 distinct ones) and, in LINES mode, a few words per
    line. LINES: blocks of whole lines (a line longer than a block is read whole), read as
    read_lines reads them (the same errors for a bad file); STREAM: blocks cut anywhere
    between two characters, so a file without line breaks is read in bounded memory too.
    """
    if mode not in MODES:
        raise ValueError('mode {!r}'.format(mode))
    _check_data_file(path)
    digest = hashlib.sha256()
    try:
        encoder = _Encoder(vocab, os.path.getsize(path), mode)
        with open(path, 'rb') as f:
            buffer, line_number, column = bytearray(), 1, 0
            while True:
                block = f.read(block_bytes)
                digest.update(block)
                buffer += block
                if not block:
                    cut = len(buffer)
                elif mode == STREAM:
                    cut = _stream_cut(buffer)
                else:
                    cut = buffer.rfind(b'\n', len(buffer) - len(block)) + 1
                if not cut:
                    if block:   # a line (LINES) or a character longer than the block: read on
                        continue
                    break
                data = bytes(buffer[:cut])
                del buffer[:cut]
                cps = _code_points(data, path, line_number, column)
                if mode == STREAM:
                    encoder.add_stream(cps)
                else:
                    encoder.add(cps)
                del cps
                breaks = data.count(b'\n')
                line_number += breaks
                column = len(data) - data.rfind(b'\n') - 1 if breaks else column + len(data)
                del data
    except OSError as e:
        raise UserError('cannot read data file {} ({})'.format(path, e.strerror or e))
    if not (encoder.chars if mode == STREAM else encoder.lines):
        raise UserError('data file {} is empty'.format(path))
    return encoder.finish(digest.hexdigest())


def file_sha256(path):
    """sha256_of(path), a UserError when the file cannot be read."""
    _check_data_file(path)
    try:
        return sha256_of(path)
    except OSError as e:
        raise UserError('cannot read data file {} ({})'.format(path, e.strerror or e))


# save_encoded's files: numpy's .npz archive (a zip: a CRC-32 per member, checked as it is
# read), the ids, the line lengths and a JSON header. Earlier versions wrote their own format
# (a magic line, JSON, the bytes): such a file is encoded again, with one line saying so.
ENCODED_FORMAT = 3
EARLIER_MAGIC = b'char-rnn encoded text\n'


def save_encoded(text, path):
    """Writes an EncodedText to path atomically, an .npz archive: `ids`, `lengths` and
    `header` (JSON: the format, the mode, the data's sha256, the vocabulary, counts). A
    UserError when it cannot (a full disk)."""
    meta = {'format': ENCODED_FORMAT, 'mode': text.mode, 'sha256': text.sha256,
            'vocab': text.vocab, 'auto': text.auto, 'lines': text.lines, 'chars': text.chars,
            'dropped': list(text.dropped.items()), 'last_word': list(text.last_word)}
    tmp = path + '.tmp'
    try:
        # np.savez's layout, written here so that a failed write closes the archive (savez
        # would leave it to the garbage collector, which prints the error again).
        with open(tmp, 'wb') as f, zipfile.ZipFile(f, 'w', allowZip64=True) as archive:
            for name, array in (('header', np.array(json.dumps(meta, ensure_ascii=False))),
                                ('ids', text.ids), ('lengths', text.lengths)):
                with archive.open(name + '.npy', 'w', force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.lexists(tmp):
            os.remove(tmp)
        raise UserError('cannot write {} ({}): free some space, or pick another '
                        '--checkpoint-dir'.format(path, e.strerror or e))


def load_encoded(path, sha256, vocab=None, mode=LINES):
    """(EncodedText, None) from a save_encoded file if it holds the encoding of data with
    this sha256 in this vocabulary (None: the data's own) and mode, else (None, why not).
    Nothing is trusted unchecked: the archive's CRC-32s, the sizes and the ids."""
    try:
        with open(path, 'rb') as f:
            if f.read(len(EARLIER_MAGIC)) == EARLIER_MAGIC:
                return None, 'written by an earlier version'
        with np.load(path, allow_pickle=False) as archive:
            if sorted(archive.files) != ['header', 'ids', 'lengths']:
                return None, 'not an encoded text'
            meta = json.loads(str(archive['header']))
            if meta.get('format') != ENCODED_FORMAT or meta.get('mode') not in MODES:
                return None, 'written by another version'
            if meta['sha256'] != sha256:
                return None, 'of other data (sha256 {}...)'.format(str(meta['sha256'])[:12])
            if meta['mode'] != mode:
                return None, 'a {}-mode encoding, not a {}-mode one'.format(
                    'line' if meta['mode'] == LINES else meta['mode'],
                    'line' if mode == LINES else mode)
            if (meta['vocab'] != vocab) if vocab is not None else not meta['auto']:
                return None, 'of another vocabulary'
            arrays = [archive['ids'], archive['lengths']]
    except zipfile.BadZipFile as e:   # numpy reads through zipfile, which checks the CRC-32s
        return None, 'unreadable ({})'.format('checksum mismatch' if 'CRC' in str(e) else
                                              'cut short, or not an archive')
    except (OSError, EOFError, ValueError, KeyError, TypeError) as e:
        return None, 'unreadable ({})'.format(first_line(e))
    (ids, lengths), size = arrays, len(meta['vocab'])
    if not (ids.dtype == id_dtype(size) and lengths.dtype in (np.int32, np.int64)
            and int(lengths.sum(dtype=np.int64)) == len(ids)
            and (mode == LINES or len(lengths) == 1)
            and (not len(ids) or (ids.min() >= 1 and ids.max() <= size))):
        return None, 'inconsistent'
    return EncodedText(meta['vocab'], ids, lengths, meta['lines'], meta['chars'],
                       collections.Counter(dict(meta['dropped'])), meta['last_word'],
                       sha256, meta['auto'], mode), None
