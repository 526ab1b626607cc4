"""utils.py: vocabulary, batching, gradients, downloads and IDX files, on both stacks."""
import collections
import functools
import gzip
import hashlib
import http.server
import os
import random
import subprocess
import sys
import threading

import numpy as np
import pytest

import utils
from conftest import ROOT, write_idx
from utils import tf

VOCAB = "abc d'é📈"


# --- the import shim ---------------------------------------------------------

def test_shim_is_graph_mode_tf1_api():
    assert not tf.executing_eagerly()
    assert utils.STACK in ('tf1', 'tf2')
    assert utils.TF1 == tf.__version__.startswith('1.')
    for name in ('BasicRNNCell', 'BasicLSTMCell', 'LSTMCell', 'GRUCell', 'MultiRNNCell',
                 'DropoutWrapper', 'LayerNormBasicLSTMCell'):
        assert callable(getattr(utils.rnn, name)), name


# --- vocabulary ------------------------------------------------------------------

def test_encode_ids_start_at_one_and_decode_round_trips():
    ids = utils.vocab_encode("abc d", VOCAB)
    assert ids == [1, 2, 3, 4, 5]
    assert utils.vocab_decode(ids, VOCAB) == "abc d"


def test_encode_multibyte_unicode_is_one_id_per_character():
    ids = utils.vocab_encode("é📈a", VOCAB)
    assert ids == [7, 8, 1]
    assert utils.vocab_decode(ids, VOCAB) == "é📈a"


def test_encode_drops_out_of_vocabulary_and_counts_them():
    dropped = collections.Counter()
    ids = utils.vocab_encode("a!b!!&", VOCAB, dropped)
    assert utils.vocab_decode(ids, VOCAB) == "ab"
    assert dropped == {'!': 3, '&': 1}


def test_duplicate_vocabulary_character_keeps_first_id():
    assert utils.vocab_encode("'", "a'b'") == ["a'b'".index("'") + 1]


def test_decode_skips_padding_and_rejects_unknown_ids():
    assert utils.vocab_decode([1, 0, 0, 2], VOCAB) == "ab"
    with pytest.raises(ValueError):
        utils.vocab_decode([len(VOCAB) + 1], VOCAB)


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
    chunks = utils.chunk_ids(ids, window, overlap)
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
    assert len(utils.chunk_ids(list(range(1, 31)), 50, 25)) == 1


def test_chunks_of_empty_or_single_character_line_are_none():
    assert utils.chunk_ids([], 50, 25) == []
    assert utils.chunk_ids([3], 50, 25) == []


def test_chunk_rejects_bad_overlap():
    with pytest.raises(ValueError):
        utils.chunk_ids([1, 2, 3], 5, 0)
    with pytest.raises(ValueError):
        utils.chunk_ids([1, 2, 3], 5, 6)


def test_read_data_streams_all_lines_shuffled(tmp_path):
    path = write_text(tmp_path, "ab\n\naaaa\nx!\nbbb d\n")
    stream = utils.read_data(path, VOCAB, window=3, overlap=2, rng=random.Random(0))
    chunks = [next(stream) for _ in range(20)]
    decoded = {utils.vocab_decode(c, VOCAB) for c in chunks}
    # "x!" has one vocabulary character: nothing to predict, never yielded.
    assert decoded == {'ab', 'aaa', 'aa', 'bbb', 'b d'}
    assert all(len(c) == 3 for c in chunks)


def test_read_data_rejects_file_with_nothing_to_train_on(tmp_path):
    path = write_text(tmp_path, "!!\n??\nx\n")
    with pytest.raises(utils.UserError, match='no line'):
        next(utils.read_data(path, VOCAB, 50, 25))


@pytest.mark.parametrize('content,message', [
    (b'', 'is empty'), (b'\n\n  \n', 'is empty'), (b'ab\nc\xff\xfed\n', 'line 2: not UTF-8')])
def test_read_lines_rejects_bad_files(tmp_path, content, message):
    with pytest.raises(utils.UserError, match=message):
        utils.read_lines(write_text(tmp_path, content))


def test_read_lines_missing_file_and_directory(tmp_path):
    with pytest.raises(utils.UserError, match='does not exist'):
        utils.read_lines(str(tmp_path / 'nope.txt'))
    with pytest.raises(utils.UserError, match='directory'):
        utils.read_lines(str(tmp_path))


def test_read_lines_is_utf8_whatever_the_locale(tmp_path):
    """In a process whose preferred encoding is ASCII (C locale, no UTF-8 mode or coercion)."""
    path = write_text(tmp_path, "é📈\n")
    env = dict(os.environ, LC_ALL='C', LANG='C', PYTHONUTF8='0', PYTHONCOERCECLOCALE='0',
               PYTHONIOENCODING='utf-8')
    code = ('import locale, sys; sys.path.insert(0, {!r}); import utils; '
            'print(locale.getpreferredencoding(False)); '
            'print(ascii(utils.read_lines({!r})))').format(ROOT, path)
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, check=True,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout.splitlines()
    assert 'utf' not in out[0].lower()   # the platform default could not read the file
    assert out[-1] == ascii(["é📈"])


def test_read_batch_yields_full_batches_and_a_nonempty_tail():
    assert list(utils.read_batch(iter(range(6)), 3)) == [[0, 1, 2], [3, 4, 5]]
    assert list(utils.read_batch(iter(range(7)), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(utils.read_batch(iter([]), 3)) == []


# --- gradients ---------------------------------------------------------------------

def _quadratic_graph(scale):
    w = tf.Variable([3.0, -4.0], name='w')
    b = tf.Variable(12.0, name='b')
    loss = scale * (tf.reduce_sum(tf.square(w)) + tf.square(b))
    return loss, [w, b]


@pytest.mark.parametrize('max_norm', [1.0, 5.0])
def test_clip_gradients_bounds_the_applied_step(max_norm):
    """One SGD step of rate 1 with the clipped gradients moves the weights by max_norm."""
    with tf.Graph().as_default(), tf.Session() as sess:
        loss, var_list = _quadratic_graph(10.0)
        grads_and_vars, norm = utils.clip_gradients(loss, var_list, max_norm)
        step = tf.train.GradientDescentOptimizer(1.0).apply_gradients(grads_and_vars)
        sess.run(tf.global_variables_initializer())
        before = np.concatenate([np.ravel(v) for v in sess.run(var_list)])
        raw_norm, _ = sess.run([norm, step])
        after = np.concatenate([np.ravel(v) for v in sess.run(var_list)])
    # grads are 20*w and 20*b: norm 20 * 13 = 260, along (3, -4, 12) / 13.
    assert raw_norm == pytest.approx(260.0, rel=1e-5)
    np.testing.assert_allclose(before - after, max_norm * np.array([3.0, -4.0, 12.0]) / 13,
                               rtol=1e-5)


def test_clip_gradients_leaves_small_gradients_and_none_disables():
    with tf.Graph().as_default(), tf.Session() as sess:
        loss, var_list = _quadratic_graph(0.001)
        small, _ = utils.clip_gradients(loss, var_list, 5.0)
        unclipped, norm = utils.clip_gradients(loss, var_list, None)
        opt = tf.train.GradientDescentOptimizer(1.0).apply_gradients(unclipped)
        sess.run(tf.global_variables_initializer())
        g_small, g_raw, n = sess.run([[g for g, _ in small], [g for g, _ in unclipped], norm])
        sess.run(opt)
        w = sess.run(var_list[0])
    np.testing.assert_allclose(g_small[0], g_raw[0])
    assert n == pytest.approx(0.026, rel=1e-5)
    np.testing.assert_allclose(w, [3.0 - 0.006, -4.0 + 0.008], rtol=1e-5)


def test_check_numerics_names_the_variable_on_nan():
    with tf.Graph().as_default(), tf.Session() as sess:
        x = tf.placeholder(tf.float32, [2])
        w = tf.Variable([1.0, 2.0], name='layer/kernel')
        loss = tf.reduce_sum(w * x)
        grads_and_vars = utils.check_numerics(utils.clip_gradients(loss, [w])[0])
        step = tf.train.GradientDescentOptimizer(0.1).apply_gradients(grads_and_vars)
        sess.run(tf.global_variables_initializer())
        sess.run(step, {x: [1.0, 1.0]})
        with pytest.raises(tf.errors.InvalidArgumentError, match='gradient of layer/kernel'):
            sess.run(step, {x: [np.nan, 1.0]})
        # The NaN never reached the weights.
        np.testing.assert_allclose(sess.run(w), [0.9, 1.9], rtol=1e-6)


# --- downloads ----------------------------------------------------------------------

@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / 'www'
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, 'http://127.0.0.1:{}/'.format(server.server_address[1]), server
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_good_file_with_progress(http_server, tmp_path, capsys):
    root, url, _ = http_server
    payload = os.urandom(3 << 20)
    (root / 'big.bin').write_bytes(payload)
    dest = tmp_path / 'data' / 'big.bin'
    utils.download(url + 'big.bin', str(dest), hashlib.sha256(payload).hexdigest())
    assert dest.read_bytes() == payload
    assert 'downloading big.bin' in capsys.readouterr().err
    assert os.listdir(str(dest.parent)) == ['big.bin']
    # Present with the right checksum: not fetched again.
    (root / 'big.bin').unlink()
    utils.download(url + 'big.bin', str(dest), hashlib.sha256(payload).hexdigest())


def test_download_wrong_checksum_leaves_nothing(http_server, tmp_path):
    root, url, _ = http_server
    (root / 'f.txt').write_bytes(b'hello')
    dest = tmp_path / 'f.txt'
    with pytest.raises(utils.UserError, match='checksum mismatch'):
        utils.download(url + 'f.txt', str(dest), '0' * 64)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir()] == ['www']


def test_download_server_gone_is_one_clear_error(http_server, tmp_path):
    root, url, server = http_server
    server.shutdown()
    server.server_close()
    dest = tmp_path / 'f.txt'
    with pytest.raises(utils.UserError, match='cannot download .*offline'):
        utils.download(url + 'f.txt', str(dest), '0' * 64, timeout=5)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir()] == ['www']


def test_download_onto_a_full_disk_says_so_and_leaves_nothing(http_server, tmp_path,
                                                               monkeypatch):
    """Writing the bytes fails (ENOSPC from the kernel, /dev/full): a local error, not 'offline'."""
    root, url, _ = http_server
    (root / 'f.bin').write_bytes(os.urandom(1 << 18))
    real_fdopen = os.fdopen

    def onto_dev_full(fd, mode='r', *args, **kwargs):
        os.close(fd)
        return real_fdopen(os.open('/dev/full', os.O_WRONLY), mode, *args, **kwargs)

    monkeypatch.setattr(utils.os, 'fdopen', onto_dev_full)
    dest = tmp_path / 'data' / 'f.bin'
    with pytest.raises(utils.DownloadError) as error:
        utils.download(url + 'f.bin', str(dest), '0' * 64)
    assert 'No space left on device' in str(error.value) and 'offline' not in str(error.value)
    assert os.listdir(str(dest.parent)) == []


def test_download_where_no_folder_can_be_made_is_one_clear_error(http_server, tmp_path):
    _, url, _ = http_server
    (tmp_path / 'file').write_text('a file, not a folder')
    with pytest.raises(utils.DownloadError, match=r'cannot write .*file/sub/f\.bin'):
        utils.download(url + 'f.bin', str(tmp_path / 'file' / 'sub' / 'f.bin'), '0' * 64)


def test_download_missing_file_on_server(http_server, tmp_path):
    _, url, _ = http_server
    with pytest.raises(utils.UserError, match='cannot download'):
        utils.download(url + 'nope', str(tmp_path / 'nope'), '0' * 64)


# --- IDX files ----------------------------------------------------------------------

@pytest.mark.parametrize('compress', [False, True])
@pytest.mark.parametrize('dtype', [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, compress, dtype):
    rng = np.random.RandomState(0)
    array = (rng.rand(5, 4, 3) * 100).astype(dtype)
    path = write_idx(tmp_path / 'a.idx', array, compress)
    got = utils.read_idx(path)
    assert got.dtype == np.dtype(dtype) and got.shape == (5, 4, 3)
    np.testing.assert_array_equal(got, array)


def test_idx_labels_one_dimension(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    np.testing.assert_array_equal(utils.read_idx(write_idx(tmp_path / 'l.gz', labels)), labels)


def test_idx_rejects_bad_files(tmp_path):
    good = open(write_idx(tmp_path / 'g.idx', np.zeros((4, 28, 28), np.uint8)), 'rb').read()
    cases = {
        'magic': (b'\x00\x01' + good[2:], 'bad magic'),
        'type': (good[:2] + b'\x07' + good[3:], 'bad magic'),
        'header': (good[:9], 'truncated IDX header'),
        'truncated': (good[:-1], 'truncated IDX file'),
        'oversized': (good + b'\x00', 'oversized IDX file'),
        'empty': (b'', 'bad magic'),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(utils.UserError, match=message):
            utils.read_idx(str(path))
    gz = gzip.compress(good)
    (tmp_path / 'cut.gz').write_bytes(gz[:len(gz) // 2])
    with pytest.raises(utils.UserError, match='corrupt gzip'):
        utils.read_idx(str(tmp_path / 'cut.gz'))
    with pytest.raises(utils.UserError, match='does not exist'):
        utils.read_idx(str(tmp_path / 'missing'))


# --- small things -----------------------------------------------------------------

def test_run_main_turns_user_error_into_exit_code(capsys):
    def main(argv):
        raise utils.UserError('bad thing')
    assert utils.run_main(main) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'error: bad thing' in err


# --- comparisons over seeds: t intervals, pairing, verdicts -----------------------

# Student's t 0.975 quantiles from a printed table (two-sided 95%), by degrees of freedom.
T_TABLE_975 = {1: 12.706205, 2: 4.302653, 3: 3.182446, 4: 2.776445, 9: 2.262157, 29: 2.045230,
               60: 2.000298}


def test_t_quantile_matches_the_printed_table():
    for df, t in T_TABLE_975.items():
        assert utils.t_quantile(0.975, df) == pytest.approx(t, abs=2e-6), df
    # Another level, and the normal limit from above.
    assert utils.t_quantile(0.995, 4) == pytest.approx(4.604095, abs=2e-6)
    assert 1.959964 < utils.t_quantile(0.975, 5000) < 1.9605


def by_hand(values):
    """Mean, sample standard deviation and 95% half-width, spelled out."""
    n = len(values)
    mean = sum(values) / n
    std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
    return mean, std, T_TABLE_975[n - 1] * std / n ** 0.5


def test_mean_interval_is_the_t_interval_of_the_mean():
    values = [0.9012, 0.8871, 0.9115, 0.8930, 0.9003]
    mean, std, half = by_hand(values)
    stats = utils.mean_interval(values)
    assert stats['n'] == 5
    assert stats['mean'] == pytest.approx(mean, abs=1e-12)
    assert stats['std'] == pytest.approx(std, abs=1e-12)
    assert (stats['low'], stats['high']) == (pytest.approx(mean - half, abs=1e-8),
                                             pytest.approx(mean + half, abs=1e-8))
    # One value: a mean, no spread, no interval.
    assert utils.mean_interval([0.95]) == {'n': 1, 'mean': 0.95, 'std': None, 'low': None,
                                           'high': None}


def test_differences_are_paired_by_seed_not_by_position():
    # Seeds 3 and 7 are hard for both; b is always a little behind a. Unpaired, the spread
    # across seeds hides it; paired, it is clear. a has a seed b lacks (left out), and the
    # dicts list their seeds in different orders.
    a = {0: 0.95, 3: 0.80, 7: 0.85, 9: 0.93, 4: 0.91, 11: 0.50}
    b = {9: 0.925, 7: 0.842, 4: 0.899, 3: 0.79, 0: 0.941}
    diff = utils.paired_difference(a, b)
    d = [a[s] - b[s] for s in (0, 3, 4, 7, 9)]
    mean, std, half = by_hand(d)
    assert diff['seeds'] == [0, 3, 4, 7, 9]
    assert diff['differences'] == pytest.approx(d, abs=1e-12)
    assert (diff['n'], diff['mean'], diff['low'], diff['high']) == (
        5, pytest.approx(mean, abs=1e-12), pytest.approx(mean - half, abs=1e-8),
        pytest.approx(mean + half, abs=1e-8))
    assert diff['low'] > 0
    unpaired = [utils.mean_interval([x[s] for s in (0, 3, 4, 7, 9)]) for x in (a, b)]
    assert unpaired[0]['low'] < unpaired[1]['high']   # the intervals of the means overlap


def run(name, seed, score, signature=None, nan=False):
    return {'name': name, 'seed': seed, 'score': None if nan else score, 'nan': nan,
            'signature': [score] if signature is None else signature, 'sec/step': 0.01}


def test_verdicts_identical_real_not_resolved_and_nan():
    seeds = range(4)
    same = [[0.90 + s / 100, 0.5 - s / 100] for s in seeds]   # per-epoch numbers per seed
    runs = ([run('basic_lstm', s, same[s][0], same[s]) for s in seeds]
            + [run('lstm', s, same[s][0], list(same[s])) for s in seeds]
            + [run('gru', s, same[s][0] + 0.010 + 0.001 * (s % 2), [s]) for s in seeds]
            + [run('basic_rnn', s, same[s][0] - 0.005 + (0.03 if s % 2 else -0.03), [s, 1])
               for s in seeds]
            + [run('ln_basic_lstm', s, None, nan=True) for s in seeds])
    names = ['basic_rnn', 'basic_lstm', 'gru', 'lstm', 'ln_basic_lstm']
    rows, pairs, lines = utils.compare_over_seeds(runs, names,
                                                  means=[('sec/step', 'sec/step', '{:.3f}')])
    rows = {row['name']: row for row in rows}
    assert rows['ln_basic_lstm']['NaN'] == 4 and rows['ln_basic_lstm']['mean'] == ''
    assert rows['gru']['mean'] == '{:.4f}'.format(np.mean([same[s][0] + 0.010 + 0.001 * (s % 2)
                                                           for s in seeds]))
    assert rows['basic_rnn']['sec/step'] == '0.010'
    verdicts = {pair['difference']: pair['verdict'] for pair in pairs}
    # Six pairs of the four cells with scores; the better one first.
    assert sorted(verdicts) == sorted(['basic_lstm - basic_rnn', 'gru - basic_rnn',
                                       'basic_lstm - lstm', 'gru - basic_lstm', 'gru - lstm',
                                       'lstm - basic_rnn'])
    assert verdicts['basic_lstm - lstm'].startswith('identical')
    assert verdicts['gru - basic_lstm'].startswith('gru better: real at 4 seeds')
    assert verdicts['gru - lstm'].startswith('gru better: real')
    assert verdicts['basic_lstm - basic_rnn'].startswith('not resolved at 4 seeds')
    assert 'ln_basic_lstm: NaN in 4 of 4 runs' in lines[0]
    assert 'Identical: basic_lstm = lstm.' in lines
    # Identity comes from the numbers, not the names: the same scores with other per-epoch
    # numbers are a tie, not an identity.
    runs = [dict(r, signature=r['signature'] + [r['name'] == 'lstm']) for r in runs]
    verdicts = {p['difference']: p['verdict'] for p in utils.compare_over_seeds(runs, names)[1]}
    assert verdicts['basic_lstm - lstm'].startswith('not resolved')


def test_a_pair_is_ordered_and_tested_by_its_paired_difference():
    """a finished seeds 0-2 only, b all five and better on every shared seed: b - a is the
    difference reported, and it is real; the unpaired means (b's lowered by seeds 3-4) do not
    decide the order."""
    b_scores = [0.95, 0.96, 0.94, 0.70, 0.71]
    a_scores = [0.90, 0.885, 0.89]
    runs = ([run('a', s, a_scores[s]) for s in range(3)] + [run('a', s, None, nan=True)
                                                            for s in (3, 4)]
            + [run('b', s, b_scores[s]) for s in range(5)])
    [pair] = utils.compare_over_seeds(runs, ['a', 'b'])[1]
    assert pair['difference'] == 'b - a' and pair['seeds'] == 3
    assert pair['verdict'].startswith('b better: real at 3 seeds'), pair


@pytest.mark.parametrize('seeds,verdict', [(2, 'not resolved at 2 seeds by the sign test'),
                                           (5, 'not resolved at 5 seeds by the sign test'),
                                           (6, 'b better: real at 6 seeds by the sign test')])
def test_the_same_difference_at_every_seed_is_decided_by_the_sign_test(seeds, verdict):
    """Accuracy moves in steps of 1/images: b ahead by exactly 0.01 at every seed has a
    t interval of width 0, which says nothing; the sign test needs 6 seeds at 95%."""
    runs = ([run('a', s, 0.90 + s / 100) for s in range(seeds)]
            + [run('b', s, 0.91 + s / 100) for s in range(seeds)])
    [pair] = utils.compare_over_seeds(runs, ['a', 'b'])[1]
    assert pair['difference'] == 'b - a' and pair['verdict'].startswith(verdict), pair
