"""tf1rnn/corpus.py: a text file as vocabulary ids, whatever the process's locale; stream
mode (every character kept) and the cache of each mode."""
import collections
import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
import utils
from tf1rnn import cli, corpus, model_dir, windows


def test_a_file_is_read_as_utf8_whatever_the_locale(tmp_path):
    """In a process whose preferred encoding is ASCII (C locale, no UTF-8 mode or coercion),
    the lines come back as written. Fix: the lecture opened files with the platform's
    default encoding, which fails with a 'charmap' error on such systems."""
    path = tmp_path / 'corpus.txt'
    path.write_bytes('é📈 a\nb é\n'.encode('utf-8'))
    env = dict(os.environ, LC_ALL='C', LANG='C', PYTHONUTF8='0', PYTHONCOERCECLOCALE='0',
               PYTHONIOENCODING='utf-8')
    code = ('import locale, sys; sys.path.insert(0, {!r}); import utils; '
            'from tf1rnn import corpus; print(locale.getpreferredencoding(False)); '
            'text = corpus.encode_file({!r}); '
            'print(ascii(utils.vocab_decode(text.ids, text.vocab)), text.lengths.tolist())'
            ).format(ROOT, str(path))
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, check=True,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout.splitlines()
    assert 'utf' not in out[0].lower()   # the platform default could not read the file
    assert out[-1] == '{} [4, 3]'.format(ascii('é📈 ab é'))


# ---------------------------------------------------------------------------
# Stream mode: the file as one sequence, every character kept.
# ---------------------------------------------------------------------------

def write_code(path, lines=200, seed=0, crlf=False, final_break=True, wide=False):
    """Source-like text: indentation of spaces and tabs, blank and whitespace-only lines,
    trailing spaces, a lone '\\r', characters of 2 to 4 UTF-8 bytes (wide: over 255
    distinct ones); crlf: some lines end in '\\r\\n'. Returns the text as Python reads it
    with newline='' (every character as in the file)."""
    rng = random.Random(seed)
    words = ['def', 'return', 'x', '=', '(', ')', ':', 'caf\xe9', '\u4e2d\u6587', '\U0001f4c8',
             'a\rb', '\u2028', '"s"'] + ([chr(0x4e00 + i) for i in range(300)] if wide else [])
    text = []
    for i in range(lines):
        kind = i % 9
        if kind == 0:
            line = ''
        elif kind == 1:
            line = rng.choice([' ', '\t', '    ', ' \t '])
        else:
            line = (rng.choice(['', '    ', '        ', '\t', '\t\t  ']) + ' '.join(
                rng.choice(words) for _ in range(rng.randint(1, 12)))
                + rng.choice(['', ' ', '  \t']))
        text.append(line + ('\r\n' if crlf and rng.random() < 0.5 else '\n'))
    text = ''.join(text)
    if not final_break:
        text = text[:-2] if text.endswith('\r\n') else text[:-1]
    with open(str(path), 'wb') as f:
        f.write(text.encode('utf-8'))
    return text


def reference(path):
    """A plain reading of a file in stream mode: every character, '\\r\\n' as '\\n'."""
    with open(str(path), encoding='utf-8', newline='') as f:
        return f.read().replace('\r\n', '\n')


@pytest.mark.parametrize('crlf,final_break,wide', [(False, True, False), (True, True, False),
                                                   (True, False, False), (False, False, True)])
def test_stream_mode_keeps_every_character_of_the_file(crlf, final_break, wide, tmp_path):
    """Line breaks, indentation, blank and whitespace-only lines, trailing spaces: the ids
    decode to the file's text ('\\r\\n' as '\\n', a lone '\\r' kept), read in blocks of any
    size (cut inside characters, lines and '\\r\\n') as in one block, and as encode_stream
    of the text in memory."""
    path = tmp_path / 'code.txt'
    write_code(path, seed=3, crlf=crlf, final_break=final_break, wide=wide)
    want = reference(path)
    assert '\n\n' in want and '\n    ' in want and '\n\t' in want and ' \n' in want
    assert (b'\r\n' in path.read_bytes()) == crlf
    whole = corpus.encode_file(str(path), None, 1 << 30, corpus.STREAM)
    assert whole.mode == corpus.STREAM and whole.auto
    assert whole.vocab == ''.join(sorted(set(want))) and '\n' in whole.vocab
    assert whole.ids.dtype == (np.uint16 if wide else np.uint8)
    assert utils.vocab_decode(whole.ids, whole.vocab) == want
    assert (whole.chars, len(whole.ids)) == (len(want), len(want))
    assert whole.lines == len(want.split('\n')) - (1 if want.endswith('\n') else 0)
    assert whole.lengths.tolist() == [len(want)] and whole.last_word == ('', 0)
    assert not whole.dropped
    for block in (1, 2, 3, 5, 64, 1000, corpus.BLOCK_BYTES):
        text = corpus.encode_file(str(path), None, block, corpus.STREAM)
        assert (text.vocab, text.lines, text.chars) == (whole.vocab, whole.lines, whole.chars)
        assert text.ids.dtype == whole.ids.dtype and text.sha256 == whole.sha256
        np.testing.assert_array_equal(text.ids, whole.ids)
    memory = corpus.encode_stream(want)
    assert (memory.vocab, memory.lines, memory.chars) == (whole.vocab, whole.lines, whole.chars)
    np.testing.assert_array_equal(memory.ids, whole.ids)


def test_stream_mode_drops_and_counts_characters_outside_the_vocabulary(tmp_path):
    path = tmp_path / 'code.txt'
    write_code(path, seed=5, crlf=True)
    want = reference(path)
    vocab = 'abcdefx=() \n'
    kept = ''.join(ch for ch in want if ch in vocab)
    outside = [ch for ch in want if ch not in vocab]
    for block in (7, corpus.BLOCK_BYTES):
        text = corpus.encode_file(str(path), vocab, block, corpus.STREAM)
        assert text.vocab == vocab and not text.auto and text.chars == len(want)
        assert utils.vocab_decode(text.ids, vocab) == kept
        # in order of first appearance
        assert list(text.dropped.items()) == list(collections.Counter(outside).items())
        assert '\r' in text.dropped   # the lone ones; those of '\r\n' are line breaks
        assert text.dropped['\r'] == want.count('\r')
    # Without '\n' in the vocabulary the line breaks are dropped as any other character.
    text = corpus.encode_stream('ab\ncd\n', 'abcd')
    assert utils.vocab_decode(text.ids, 'abcd') == 'abcd' and text.dropped == {'\n': 2}


def test_stream_mode_reads_a_file_without_line_breaks_in_bounded_blocks(tmp_path, monkeypatch):
    """A file of one long line is encoded a block at a time (never more than the block and
    one incomplete character), not read whole as a line-mode block would be."""
    path = tmp_path / 'one-line.txt'
    text = ''.join(random.Random(1).choice(['a', 'b ', '\xe9', '\u4e2d', '\U0001f4c8', '\r'])
                   for _ in range(5000))
    path.write_bytes(text.encode('utf-8'))
    sizes = []
    add = corpus._Encoder.add_stream
    monkeypatch.setattr(corpus._Encoder, 'add_stream',
                        lambda self, cps: sizes.append(len(cps)) or add(self, cps))
    encoded = corpus.encode_file(str(path), None, 64, corpus.STREAM)
    assert utils.vocab_decode(encoded.ids, encoded.vocab) == text and encoded.lines == 1
    assert len(sizes) > 100 and max(sizes) <= 64 + 3


def test_stream_mode_errors(tmp_path):
    """An empty file is refused; one of line breaks only is not (in line mode it is: no
    line has a character). A byte that is not UTF-8 is named by line and column as in line
    mode, however the blocks cut the line."""
    empty = tmp_path / 'empty.txt'
    empty.write_bytes(b'')
    with pytest.raises(cli.UserError, match='is empty'):
        corpus.encode_file(str(empty), mode=corpus.STREAM)
    breaks = tmp_path / 'breaks.txt'
    breaks.write_bytes(b'\n\r\n\n')
    text = corpus.encode_file(str(breaks), mode=corpus.STREAM)
    assert (text.vocab, text.ids.tolist(), text.lines, text.chars) == ('\n', [1, 1, 1], 3, 3)
    with pytest.raises(cli.UserError, match='is empty'):
        corpus.encode_file(str(breaks))
    for raw, want in ((b'x\r', 'x\r'), (b'x\r\r\n\r', 'x\r\n\r'), (b'\r\n', '\n'),
                      (b'\xc3\xa9\r\n\xf0\x9f\x93\x88', '\xe9\n\U0001f4c8')):
        breaks.write_bytes(raw)
        for block in (1, 2, 100):
            text = corpus.encode_file(str(breaks), None, block, corpus.STREAM)
            assert utils.vocab_decode(text.ids, text.vocab) == want, (raw, block)
    bad = tmp_path / 'bad.txt'
    bad.write_bytes('\u4e2d line\n'.encode('utf-8') * 50 + b'x' * 70 + b'caf\xc3\xa9 \xe3\x81 x\n')
    with pytest.raises(cli.UserError) as lines:
        corpus.encode_file(str(bad), block_bytes=1 << 20)
    assert str(lines.value).endswith('line 51: not UTF-8 (byte 0xe3 at column 77)')
    for block in (1, 3, 16, 64, 1 << 20):
        with pytest.raises(cli.UserError) as stream:
            corpus.encode_file(str(bad), block_bytes=block, mode=corpus.STREAM)
        assert str(stream.value) == str(lines.value)
    with pytest.raises(ValueError):
        corpus.encode_file(str(bad), mode='words')


def encoded_header(path):
    with np.load(str(path), allow_pickle=False) as archive:
        return json.loads(str(archive['header']))


def rewrite_header(path, dest, **changes):
    """A copy of an encoded file with its header changed."""
    with np.load(str(path), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = dict(json.loads(str(arrays['header'])), **changes)
    with open(str(dest), 'wb') as f:
        np.savez(f, **dict(arrays, header=np.array(json.dumps(header))))


def test_the_cache_holds_its_mode_and_refuses_the_other(tmp_path):
    """A stream-mode cache (an .npz archive, its mode in its header) is read back in stream
    mode only, and a line-mode cache in line mode only; the other mode's is (None, why
    not), so model_dir.read_corpus encodes the data again."""
    path = tmp_path / 'code.txt'
    write_code(path, seed=7, crlf=True)
    stream = corpus.encode_file(str(path), mode=corpus.STREAM)
    lines = corpus.encode_file(str(path))
    corpus.save_encoded(stream, str(tmp_path / 'stream.encoded'))
    corpus.save_encoded(lines, str(tmp_path / 'lines.encoded'))
    assert encoded_header(tmp_path / 'stream.encoded')['mode'] == 'stream'
    assert encoded_header(tmp_path / 'lines.encoded')['mode'] == 'lines'
    saved, why_not = corpus.load_encoded(str(tmp_path / 'stream.encoded'), stream.sha256, None,
                                         corpus.STREAM)
    assert why_not is None and saved.mode == corpus.STREAM
    for name in ('vocab', 'lines', 'chars', 'dropped', 'last_word', 'auto'):
        assert getattr(saved, name) == getattr(stream, name), name
    np.testing.assert_array_equal(saved.ids, stream.ids)
    np.testing.assert_array_equal(saved.lengths, stream.lengths)
    assert corpus.load_encoded(str(tmp_path / 'stream.encoded'), stream.sha256) == (
        None, 'a stream-mode encoding, not a line-mode one')
    assert corpus.load_encoded(str(tmp_path / 'lines.encoded'), stream.sha256, None,
                               corpus.STREAM) == (None, 'a line-mode encoding, not a stream-mode one')
    saved, why_not = corpus.load_encoded(str(tmp_path / 'lines.encoded'), lines.sha256)
    assert why_not is None and saved.mode == corpus.LINES
    # Other data is told first, then the mode, then the vocabulary.
    assert corpus.load_encoded(str(tmp_path / 'stream.encoded'), '0' * 64)[1].startswith(
        'of other data')
    assert corpus.load_encoded(str(tmp_path / 'stream.encoded'), stream.sha256, 'abc',
                               corpus.STREAM) == (None, 'of another vocabulary')
    # A file of another format, or naming a mode this version does not know: another's.
    for change in ({'mode': 'words'}, {'format': corpus.ENCODED_FORMAT + 1}):
        rewrite_header(tmp_path / 'stream.encoded', tmp_path / 'other.encoded', **change)
        assert corpus.load_encoded(str(tmp_path / 'other.encoded'), stream.sha256, None,
                                   corpus.STREAM) == (None, 'written by another version')
    # A stream-mode file whose lengths are not one length: inconsistent.
    split = corpus.EncodedText(stream.vocab, stream.ids, np.array([10, len(stream.ids) - 10],
                                                                  np.int32),
                               1, stream.chars, {}, ('', 0), stream.sha256, True, corpus.STREAM)
    corpus.save_encoded(split, str(tmp_path / 'split.encoded'))
    assert corpus.load_encoded(str(tmp_path / 'split.encoded'), stream.sha256, None,
                               corpus.STREAM) == (None, 'inconsistent')
    # Line mode's windows are not made of a stream.
    with pytest.raises(ValueError, match='LINES mode'):
        windows.Corpus(stream, 10, 0.1, 0)


def test_read_corpus_encodes_again_in_the_other_mode(tmp_path, capsys):
    path = tmp_path / 'code.txt'
    write_code(path, seed=9)
    folder = tmp_path / 'model'
    folder.mkdir()
    for mode, before in ((corpus.LINES, None), (corpus.STREAM, 'line'),
                         (corpus.STREAM, None), (corpus.LINES, 'stream')):
        text, new = model_dir.read_corpus(str(path), None, str(folder), mode=mode)
        out = capsys.readouterr().out
        assert text.mode == mode and new == (before is not None or
                                             not (folder / model_dir.ENCODED_FILE).exists())
        if before:
            assert '{} is a {}-mode encoding, not a {}-mode one: encoding {} again'.format(
                folder / model_dir.ENCODED_FILE, before, 'line' if mode == corpus.LINES
                else 'stream', path) in out
        elif not new:
            assert 'encoded in' in out
        if new:
            model_dir.save_corpus(text, str(folder))


OLD_ENCODED = os.path.join(ROOT, 'tests', 'data', 'main-7953fdb', 'checkpoints', 'trump_tweets',
                           'data.encoded')


def test_an_earlier_versions_cache_is_encoded_again_with_one_line(tmp_path, capsys):
    """data.encoded as main wrote it at 7953fdb (its own format before the .npz archive):
    refused as an earlier version's, so read_corpus encodes the data again and says so."""
    with open(OLD_ENCODED, 'rb') as f:
        assert f.readline() == corpus.EARLIER_MAGIC
        sha256 = json.loads(f.readline().decode('utf-8'))['sha256']
    assert corpus.load_encoded(OLD_ENCODED, sha256) == (None, 'written by an earlier version')
    folder = tmp_path / 'model'
    folder.mkdir()
    shutil.copy(OLD_ENCODED, str(folder / model_dir.ENCODED_FILE))
    path = tmp_path / 'code.txt'
    write_code(path, seed=9)
    text, new = model_dir.read_corpus(str(path), None, str(folder))
    assert new and '{} is written by an earlier version: encoding {} again'.format(
        folder / model_dir.ENCODED_FILE, path) in capsys.readouterr().out