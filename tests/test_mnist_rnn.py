"""mnist_rnn.py on small generated MNIST-format data (both stacks).

The data: 28x28 images whose class is the column of a vertical bar, below 6
blank rows as in real digits (which is what makes ln_basic_lstm go NaN).
"""
import contextlib
import csv
import glob
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, write_idx

import mnist_rnn
import utils
from tf1rnn import cell_runs, cli, files, layer_norm, mnist_data, runs
from utils import tf

SCRIPT = os.path.join(ROOT, 'mnist_rnn.py')
BLANK_ROWS = 6
N_TRAIN, N_TEST, BATCH = 320, 96, 32      # 10 train and 3 test batches per epoch
N_VAL = 40                                # the comparison's validation: a batch and 8 images
TRN_LINE = re.compile(r'^\[trn\] ep (\d+), step (\d+), loss (\d+\.\d{6}|nan), '
                      r'accu (\d\.\d{6}), sec/iter (\d+\.\d{6})$')
TST_LINE = re.compile(r'^\[tst\] ep (\d+), step (\d+), accu (\d\.\d{6}), sec/iter (\d+\.\d{6})$')
MEAN_LINE = re.compile(r'^\[tst\] ep (\d+), mean accu (\d\.\d{6}) over (\d+) images$')
VAL_LINE = re.compile(r'^\[val\] ep (\d+), mean accu (\d\.\d{6}) over (\d+) images$')


def make_digits(n, seed):
    """Class k: a bright bar in columns 3+2k..4+2k, rows 6..25, over faint noise."""
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, 10, n).astype(np.uint8)
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, BLANK_ROWS:26] = rng.randint(0, 50, (n, 26 - BLANK_ROWS, 28))
    for image, label in zip(images, labels):
        image[BLANK_ROWS:26, 3 + 2 * label:5 + 2 * label] = 255
    return images, labels


def write_mnist(folder, n_train=N_TRAIN, n_test=N_TEST, images=None, labels=None,
                test_images=None, test_labels=None):
    """The four IDX files in folder (train gzipped, test raw, as both kinds must work)."""
    os.makedirs(str(folder), exist_ok=True)
    train = make_digits(n_train, 1)
    test = make_digits(n_test, 2)
    write_idx(os.path.join(str(folder), 'train-images-idx3-ubyte.gz'),
              train[0] if images is None else images)
    write_idx(os.path.join(str(folder), 'train-labels-idx1-ubyte.gz'),
              train[1] if labels is None else labels)
    write_idx(os.path.join(str(folder), 't10k-images-idx3-ubyte'),
              test[0] if test_images is None else test_images)
    write_idx(os.path.join(str(folder), 't10k-labels-idx1-ubyte'),
              test[1] if test_labels is None else test_labels)
    return str(folder)


def small_args(tmp_path, *extra):
    return ['--data-dir', str(tmp_path / 'data'), '--logdir', str(tmp_path / 'logdir'),
            '--checkpoint-dir', str(tmp_path / 'checkpoints'), '--batch-size', str(BATCH),
            '--hidden', '16', '--validation-size', '0', '--log-every', '5'] + list(extra)


def run_main(argv):
    """mnist_rnn's main in this process, as the script runs it: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.run_main(mnist_rnn.main, argv)
        except SystemExit as e:   # argparse
            status = e.code
    return status, out.getvalue(), err.getvalue()


def run_script(args, cwd, **kwargs):
    return subprocess.run([sys.executable, SCRIPT] + args, cwd=str(cwd), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=300, **kwargs)


def error_lines(stderr):
    """stderr lines other than TensorFlow's own start-up logging."""
    return [line for line in stderr.splitlines()
            if line.strip() and not re.match(r'^([IWE]\d{4} |WARNING:|WARNING: All log)', line)]


def history_of(tmp_path, cell):
    with open(str(tmp_path / 'checkpoints' / ('mnist_' + cell) / 'history.json')) as f:
        return json.load(f)


def checkpoint_accuracy(path, cell, images, labels, hidden=16):
    """Accuracy of the weights in checkpoint `path` on images (uint8), computed apart from
    the script: a fresh MnistRnn graph, its logits, argmax in numpy."""
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.placeholder(tf.float32, [None, mnist_rnn.MAX_SEQ_LEN, mnist_rnn.INPUT_UNITS])
        model = mnist_rnn.MnistRnn(inputs, tf.placeholder(tf.int64, [None]), mnist_rnn.INPUT_UNITS,
                                   hidden, len(images), mnist_rnn.MAX_SEQ_LEN, cell)
        with tf.Session() as sess:
            tf.train.Saver().restore(sess, path)
            logits = sess.run(model.outputs, {inputs: images.astype(np.float32) / 255})
    assert logits.shape == (len(images), 10)
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def events(folder):
    """{tag: [(step, value)]} and whether a graph was written, from the event files in folder."""
    values, graph = {}, False
    files = sorted(glob.glob(os.path.join(folder, 'events.out.tfevents.*')))
    assert files, 'no event file in ' + folder
    for path in files:
        for event in tf.train.summary_iterator(path):
            graph = graph or bool(event.graph_def)
            for value in event.summary.value:
                values.setdefault(value.tag, []).append((event.step, value.simple_value))
    return values, graph


# ---------------------------------------------------------------------------
# The comparison: --cell all, once for the module
# ---------------------------------------------------------------------------

EPOCHS = 3


@pytest.fixture(scope='module')
def comparison(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp('comparison')
    write_mnist(tmp_path / 'data', n_train=N_VAL + N_TRAIN)
    # --ln-smoothing: without it ln_basic_lstm goes NaN on these blank rows (tested below).
    argv = small_args(tmp_path, '--cell', 'all', '--epochs', str(EPOCHS), '--lr', '0.01',
                      '--ln-smoothing', '--validation-size', str(N_VAL))
    status, out, err = run_main(argv)
    return {'tmp': tmp_path, 'argv': argv, 'status': status, 'out': out, 'err': err}


def test_comparison_runs_every_cell(comparison):
    assert comparison['status'] == 0, comparison['err']
    for cell in mnist_rnn.CELLS:
        history = json.load(open(str(comparison['tmp'] / 'checkpoints' / ('mnist_' + cell)
                                     / 'history.json')))
        assert history['status'] == 'done'
        assert len(history['epochs']) == EPOCHS
        assert glob.glob(str(comparison['tmp'] / 'checkpoints' / ('mnist_' + cell) / '*.index'))


@pytest.mark.parametrize('cell', mnist_rnn.CELLS)
def test_each_cell_lowers_the_loss(comparison, cell):
    values, _ = events(str(comparison['tmp'] / 'logdir' / ('train_' + cell)))
    losses = [v for _, v in sorted(values[mnist_rnn.TAG_LOSS])]
    assert len(losses) == EPOCHS * N_TRAIN // BATCH
    assert losses[0] == pytest.approx(np.log(10), abs=0.5)    # chance level at the start
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_log_lines_have_the_notebooks_format_and_steps(comparison):
    lines = comparison['out'].splitlines()
    per_cell = {}
    cell = None
    for line in lines:
        header = re.match(r'^\[(\w+)\] 16 hidden, batch 32: 10 train \+ 3 test batches per epoch',
                          line)
        if header:
            cell = header.group(1)
            per_cell[cell] = []
        elif line.startswith('results: '):
            continue
        else:
            assert (TRN_LINE.match(line) or TST_LINE.match(line) or MEAN_LINE.match(line)
                    or VAL_LINE.match(line)), line
            per_cell[cell].append(line)
    assert sorted(per_cell) == sorted(mnist_rnn.CELLS)
    # The step counts training and test batches (13 per epoch); a line every 5 steps.
    expected = []
    for ep in range(1, EPOCHS + 1):
        first = (ep - 1) * 13
        expected += [('trn', ep, s) for s in range(first + 1, first + 11) if s % 5 == 0]
        expected += [('tst', ep, s) for s in range(first + 11, first + 14) if s % 5 == 0]
        expected += [('mean', ep, None), ('val', ep, None)]
    for cell, cell_lines in per_cell.items():
        got = []
        for line in cell_lines:
            m = TRN_LINE.match(line) or TST_LINE.match(line)
            if m:
                got.append((line[1:4], int(m.group(1)), int(m.group(2))))
            elif MEAN_LINE.match(line):
                m = MEAN_LINE.match(line)
                got.append(('mean', int(m.group(1)), None))
                assert int(m.group(3)) == N_TEST
            else:
                m = VAL_LINE.match(line)
                got.append(('val', int(m.group(1)), None))
                assert int(m.group(3)) == N_VAL
        assert got == expected, cell


def test_log_lines_mean_what_the_notebook_printed(comparison):
    """[trn]: mean loss and *minimum* accuracy of the steps since the last line; [tst] min too."""
    cell = 'gru'
    train, _ = events(str(comparison['tmp'] / 'logdir' / ('train_' + cell)))
    test, _ = events(str(comparison['tmp'] / 'logdir' / ('test_' + cell)))
    loss = dict(train[mnist_rnn.TAG_LOSS])
    accuracy = dict(train[mnist_rnn.TAG_TRAIN_ACCURACY])
    test_accuracy = dict(test[mnist_rnn.TAG_TEST_ACCURACY])
    text = comparison['out']
    block = text[text.index('[gru] '):]
    block = block[:block.index('[lstm] ')]
    window = []
    trn_lines = [m for m in map(TRN_LINE.match, block.splitlines()) if m]
    assert trn_lines
    previous = 0
    for m in trn_lines:
        ep, step = int(m.group(1)), int(m.group(2))
        window = [s for s in loss if previous < s <= step and s > (ep - 1) * 13]
        previous = step
        assert float(m.group(3)) == pytest.approx(np.mean([loss[s] for s in window]), abs=2e-6)
        assert float(m.group(4)) == pytest.approx(min(accuracy[s] for s in window), abs=2e-6)
    for m in filter(None, map(TST_LINE.match, block.splitlines())):
        ep, step = int(m.group(1)), int(m.group(2))
        window = [s for s in test_accuracy if (ep - 1) * 13 + 10 < s <= step]
        assert float(m.group(3)) == pytest.approx(min(test_accuracy[s] for s in window), abs=2e-6)


def test_event_files_hold_the_notebooks_tags_and_the_graph(comparison):
    for cell in mnist_rnn.CELLS:
        train, train_graph = events(str(comparison['tmp'] / 'logdir' / ('train_' + cell)))
        test, test_graph = events(str(comparison['tmp'] / 'logdir' / ('test_' + cell)))
        assert train_graph and test_graph
        assert sorted(train) == sorted([mnist_rnn.TAG_TRAIN_ACCURACY, mnist_rnn.TAG_LOSS])
        assert sorted(test) == sorted([mnist_rnn.TAG_TEST_ACCURACY,
                                       mnist_rnn.TAG_TEST_MEAN_ACCURACY,
                                       mnist_rnn.TAG_VALIDATION_ACCURACY])
        assert [s for s, _ in train[mnist_rnn.TAG_LOSS]] == [
            ep * 13 + i for ep in range(EPOCHS) for i in range(1, 11)]
        assert [s for s, _ in test[mnist_rnn.TAG_TEST_ACCURACY]] == [
            ep * 13 + i for ep in range(EPOCHS) for i in range(11, 14)]
        # The per-epoch mean is the mean of that epoch's test batches.
        by_step = dict(test[mnist_rnn.TAG_TEST_ACCURACY])
        for step, mean in test[mnist_rnn.TAG_TEST_MEAN_ACCURACY]:
            assert mean == pytest.approx(np.mean([by_step[s] for s in range(step - 2, step + 1)]))
        history = history_of(comparison['tmp'], cell)
        assert test[mnist_rnn.TAG_VALIDATION_ACCURACY] == [
            (e['step'], pytest.approx(e['validation_accuracy'])) for e in history['epochs']]
    assert mnist_rnn.TAG_TRAIN_ACCURACY == 'train accuracy'
    assert mnist_rnn.TAG_TEST_ACCURACY == 'test accuracy'


def test_results_files_compare_the_cells(comparison):
    logdir = comparison['tmp'] / 'logdir'
    runs = list(csv.DictReader(open(str(logdir / 'runs.csv'))))
    cells = list(csv.DictReader(open(str(logdir / 'results.csv'))))
    assert [row['cell'] for row in runs] == [row['cell'] for row in cells] == list(mnist_rnn.CELLS)
    assert list(runs[0]) == list(cell_runs.RUN_COLUMNS)
    for row, cell in zip(runs, cells):
        history = history_of(comparison['tmp'], row['cell'])
        assert (row['seed'], row['status'], cell['NaN']) == ('0', 'done', '0')
        assert int(row['epochs']) == EPOCHS
        final = history['epochs'][-1]['test_accuracy']
        assert float(row['final test accu']) == pytest.approx(final, abs=1e-4)
        # The epoch reported is the first with the best validation accuracy, with its test accu.
        validation = [e['validation_accuracy'] for e in history['epochs']]
        best = history['epochs'][int(np.argmax(validation))]
        assert row['best epoch (val)'] == str(best['epoch'])
        assert float(row['val accu']) == pytest.approx(max(validation), abs=1e-4)
        assert float(row['test accu at best val']) == pytest.approx(best['test_accuracy'],
                                                                    abs=1e-4)
        assert float(row['final loss']) > 0 and float(row['sec/step']) > 0
        # One seed: its figure is the mean, and there is no interval.
        assert (cell['runs'], cell['test accu mean'], cell['std'], cell['95% interval']) == (
            '1', row['test accu at best val'], '', '')
    md = open(str(logdir / 'results.md')).read()
    assert '| cell | runs | NaN | test accu mean | std | 95% interval |' in md
    assert 'no interval from 1 seed' in md
    with open(str(logdir / 'results.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert 'results: ' in comparison['out']


def test_validation_accuracy_is_the_models_on_the_held_out_images(comparison):
    """[val] lines and history per epoch; the last one recomputed from the saved weights on
    the first N_VAL training images (in two batches: 32 and the last 8)."""
    for cell in mnist_rnn.CELLS:
        history = history_of(comparison['tmp'], cell)
        block = comparison['out'][comparison['out'].index('[{}] '.format(cell)):]
        end = re.search(r'\n(\[({})\] |results: )'.format('|'.join(mnist_rnn.CELLS)), block)
        block = block[:end.start()].splitlines()   # up to the next cell's header
        lines = [m.groups() for m in map(VAL_LINE.match, block) if m]
        assert [(int(ep), float(accu), int(n)) for ep, accu, n in lines] == [
            (e['epoch'], pytest.approx(e['validation_accuracy'], abs=1e-6), N_VAL)
            for e in history['epochs']]
    history = history_of(comparison['tmp'], 'gru')
    images, labels = make_digits(N_VAL + N_TRAIN, 1)
    accuracy = checkpoint_accuracy(
        str(comparison['tmp'] / 'checkpoints' / 'mnist_gru' / history['checkpoint']), 'gru',
        images[:N_VAL], labels[:N_VAL])
    assert history['epochs'][-1]['validation_accuracy'] == pytest.approx(accuracy, abs=1e-9)


def test_finished_cells_are_not_trained_again(comparison):
    tmp = comparison['tmp']
    before = sorted(glob.glob(str(tmp / 'logdir' / '*' / 'events.out.tfevents.*')))
    argv = [a for a in comparison['argv']]
    argv[argv.index('all')] = 'gru,lstm'
    status, out, err = run_main(argv)
    assert status == 0, err
    assert 'already trained for {} epochs'.format(EPOCHS) in out
    assert not TRN_LINE.search(out)
    assert sorted(glob.glob(str(tmp / 'logdir' / '*' / 'events.out.tfevents.*'))) == before
    rows = list(csv.DictReader(open(str(tmp / 'logdir' / 'results.csv'))))
    assert [row['cell'] for row in rows] == ['gru', 'lstm']


def test_other_settings_need_force(comparison):
    argv = [a for a in comparison['argv']]
    argv[argv.index('all')] = 'gru'
    argv[argv.index('--lr') + 1] = '0.02'
    status, _, err = run_main(argv)
    assert status == 2
    assert 'lr 0.01 (now 0.02)' in err and '--force' in err
    assert len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------
# --seeds: one run per (cell, seed), reused; statistics over seeds; a verdict
# ---------------------------------------------------------------------------

SEEDED_CELLS = ('basic_rnn', 'basic_lstm', 'lstm', 'ln_basic_lstm')
SEED_EPOCHS = 2
T_975_DF1 = 12.706205   # Student's t, 0.975 quantile, 1 degree of freedom (printed tables)


@pytest.fixture(scope='module')
def seeded(tmp_path_factory):
    """Two seeds of three cells, and ln_basic_lstm without a remedy (NaN in each seed); the
    comparison's settings otherwise, so seed 0 is its run."""
    tmp_path = tmp_path_factory.mktemp('seeded')
    write_mnist(tmp_path / 'data', n_train=N_VAL + N_TRAIN)
    argv = small_args(tmp_path, '--cell', ','.join(SEEDED_CELLS), '--seeds', '2', '--epochs',
                      str(SEED_EPOCHS), '--lr', '0.01', '--validation-size', str(N_VAL),
                      '--results-dir', str(tmp_path / 'results'))
    status, out, err = run_main(argv)
    return {'tmp': tmp_path, 'argv': argv, 'status': status, 'out': out, 'err': err}


def seeded_history(tmp_path, cell, seed):
    with open(str(tmp_path / 'checkpoints' / 'mnist_{}_seed{}'.format(cell, seed) /
                  'history.json')) as f:
        return json.load(f)


def test_seeds_train_one_run_per_cell_and_seed(seeded):
    assert seeded['status'] == mnist_rnn.NAN_EXIT, seeded['err']   # ln_basic_lstm's NaN
    assert re.findall(r'^=== (\w+), seed (\d)', seeded['out'], re.M) == [
        (cell, str(seed)) for seed in (0, 1) for cell in SEEDED_CELLS]   # whole seeds first
    for cell in SEEDED_CELLS:
        for seed in (0, 1):
            history = seeded_history(seeded['tmp'], cell, seed)
            assert history['settings']['seed'] == seed
            assert history['status'] == ('nan' if cell == 'ln_basic_lstm' else 'done')
            # TensorBoard: one run per (cell, seed), <cell>/seed<k>, all the tags in it.
            if cell != 'ln_basic_lstm':
                values, graph = events(str(seeded['tmp'] / 'logdir' / cell / 'seed{}'.format(seed)))
                assert graph and sorted(values) == sorted([
                    mnist_rnn.TAG_TRAIN_ACCURACY, mnist_rnn.TAG_LOSS, mnist_rnn.TAG_TEST_ACCURACY,
                    mnist_rnn.TAG_TEST_MEAN_ACCURACY, mnist_rnn.TAG_VALIDATION_ACCURACY])
                assert [v for _, v in values[mnist_rnn.TAG_LOSS]] == pytest.approx(
                    history['losses'])


def test_seed_0_is_the_single_run_and_seed_1_another_order(seeded, comparison):
    """Seed 0 trains as the default single run (--seed 0, the files' order): the same losses
    as the comparison's run of the cell; seed 1 starts from other weights on other batches."""
    for cell in ('basic_rnn', 'lstm'):
        single = history_of(comparison['tmp'], cell)['losses']
        seed0 = seeded_history(seeded['tmp'], cell, 0)['losses']
        seed1 = seeded_history(seeded['tmp'], cell, 1)['losses']
        assert seed0 == pytest.approx(single[:len(seed0)], rel=1e-5)
        assert abs(seed1[0] - seed0[0]) > 1e-4
    # The training order is part of a run's settings: seed 1's data fingerprint differs.
    settings = [seeded_history(seeded['tmp'], 'basic_rnn', s)['settings']
                for s in (0, 1)]
    assert settings[0]['data'] != settings[1]['data']


def test_seed_statistics_match_the_runs(seeded):
    """results.csv against numbers computed here from each run's history.json: the score of a
    run, the mean, standard deviation and t interval per cell, and the paired difference."""
    results = seeded['tmp'] / 'results'
    cells = {row['cell']: row for row in csv.DictReader(open(str(results / 'results.csv')))}
    scores = {}
    for cell in SEEDED_CELLS[:3]:
        for seed in (0, 1):
            epochs = seeded_history(seeded['tmp'], cell, seed)['epochs']
            best = max(epochs, key=lambda e: (e['validation_accuracy'], -e['epoch']))
            scores[cell, seed] = best['test_accuracy']
        a, b = scores[cell, 0], scores[cell, 1]
        mean, std = (a + b) / 2, abs(a - b) / 2 ** 0.5
        half = T_975_DF1 * std / 2 ** 0.5
        row = cells[cell]
        assert (row['runs'], row['NaN']) == ('2', '0')
        assert float(row['test accu mean']) == pytest.approx(mean, abs=5e-5)
        assert float(row['std']) == pytest.approx(std, abs=5e-5)
        low, high = map(float, row['95% interval'].split(' to '))
        assert (low, high) == (pytest.approx(mean - half, abs=5e-5),
                               pytest.approx(mean + half, abs=5e-5))
    assert (cells['ln_basic_lstm']['NaN'], cells['ln_basic_lstm']['test accu mean']) == ('2', '')
    # basic_lstm against basic_rnn, paired by seed.
    d = [scores['basic_lstm', s] - scores['basic_rnn', s] for s in (0, 1)]
    mean, half = sum(d) / 2, T_975_DF1 * abs(d[0] - d[1]) / 2
    if mean < 0:
        d, mean = [-x for x in d], -mean
    md = open(str(results / 'results.md')).read()
    pair = re.search(r'^\| (basic_lstm - basic_rnn|basic_rnn - basic_lstm) \| 2 \| '
                     r'([-+]\d\.\d+) \| ([-+]\d\.\d+) to ([-+]\d\.\d+) \|', md, re.M)
    assert pair, md
    assert float(pair.group(2)) == pytest.approx(mean, abs=5e-5)
    assert (float(pair.group(3)), float(pair.group(4))) == (
        pytest.approx(mean - half, abs=5e-5), pytest.approx(mean + half, abs=5e-5))
    assert 'ln_basic_lstm: NaN in 2 of 2 runs' in md
    assert '- made with: `python mnist_rnn.py {}`'.format(' '.join(seeded['argv'])) in md
    runs = list(csv.DictReader(open(str(results / 'runs.csv'))))
    assert [(r['cell'], r['seed']) for r in runs] == [
        (cell, str(seed)) for cell in SEEDED_CELLS for seed in (0, 1)]
    with open(str(results / 'results.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_identical_cells_come_out_identical(seeded):
    """lstm and basic_lstm: the same function from the same initial weights, so the same
    numbers in every seed: reported as identical, not ranked; basic_rnn is not."""
    md = open(str(seeded['tmp'] / 'results' / 'results.md')).read()
    [row] = [line for line in md.splitlines() if re.match(r'^\| (basic_lstm - lstm|lstm - '
                                                         r'basic_lstm) \|', line)]
    assert '| identical: ' in row and 'not ranked' in row
    assert '+0.0000 | +0.0000 to +0.0000 |' in row
    for line in md.splitlines():
        if line.startswith('| ') and 'basic_rnn' in line.split('|')[1]:
            assert 'identical' not in line
    assert '- Identical: basic_lstm = lstm.' in md


def test_more_seeds_train_only_the_new_runs(seeded):
    """--seeds 3 after --seeds 2: the six finished runs and the two NaN ones are reused (no
    training, event files untouched); only seed 2 trains; the results cover three seeds."""
    tmp = seeded['tmp']
    before = {path: os.path.getmtime(path) for path in
              glob.glob(str(tmp / 'logdir' / '*' / 'seed*' / 'events.out.tfevents.*'))}
    argv = list(seeded['argv'])
    argv[argv.index('--seeds') + 1] = '3'
    status, out, err = run_main(argv)
    assert status == mnist_rnn.NAN_EXIT, err
    blocks = re.split(r'^=== ', out, flags=re.M)[1:]
    assert len(blocks) == 12
    for block in blocks:
        cell, seed = re.match(r'(\w+), seed (\d)', block).groups()
        trained = any(TRN_LINE.match(line) for line in block.splitlines())
        assert trained == (seed == '2'), block
        if seed != '2':
            assert 'already ' in block
    assert {path: os.path.getmtime(path) for path in before} == before
    cells = {row['cell']: row for row in csv.DictReader(open(str(tmp / 'results' / 'results.csv')))}
    assert all(row['runs'] == '3' for row in cells.values())


@pytest.mark.parametrize('flags,message', [
    (['--seeds', '0'], 'expected a number of seeds (5) or a list of distinct seeds'),
    (['--seeds', 'two'], 'expected a number of seeds'),
    (['--seeds', '1,1'], 'distinct'),
    (['--seeds', '2', '--seed', '3'], '--seed and --seeds: give one of them')])
def test_bad_seeds_are_one_line(tmp_path, flags, message):
    status, out, err = run_main(small_args(tmp_path, '--cell', 'gru', *flags))
    assert status == 2 and 'Traceback' not in err
    assert message in err.strip().splitlines()[-1]   # argparse: the usage, then one error line


def test_ctrl_c_between_seeds_keeps_every_finished_run(tmp_path, monkeypatch):
    """Ctrl-C in the second of four runs: the first is kept, the second saved; the same
    command resumes the second and trains the rest, and writes the results."""
    write_mnist(tmp_path / 'data')
    argv = small_args(tmp_path, '--cell', 'basic_rnn,gru', '--seeds', '2', '--epochs', '1')
    summary, calls = runs.scalar_summary, []

    def summary_with_ctrl_c(*tags_and_values):
        calls.append(tags_and_values)
        if len(calls) == 13 + 1 + 3:   # run 1's 13 steps and its mean, then run 2's step 3
            os.kill(os.getpid(), signal.SIGINT)
        return summary(*tags_and_values)

    with monkeypatch.context() as patch:
        patch.setattr(runs, 'scalar_summary', summary_with_ctrl_c)
        status, out, err = run_main(argv)
    assert status == 0, err
    assert out.splitlines()[-1].startswith('[gru] interrupted by Ctrl-C at ep 1, step 3:')
    assert not (tmp_path / 'logdir' / 'results.md').exists()
    status, out, err = run_main(argv)
    assert status == 0, err
    assert 'already trained for 1 epochs' in out and 'resuming at ep 1, step 3' in out
    rows = list(csv.DictReader(open(str(tmp_path / 'logdir' / 'runs.csv'))))
    assert [(r['cell'], r['seed'], r['status']) for r in rows] == [
        ('basic_rnn', '0', 'done'), ('basic_rnn', '1', 'done'), ('gru', '0', 'done'),
        ('gru', '1', 'done')]


# ---------------------------------------------------------------------------
# NaN: check_numerics, the NaN loss, ln_basic_lstm and its remedies
# ---------------------------------------------------------------------------

def write_nan_data(folder):
    """Float IDX images (taken as they are) with one NaN pixel in the second batch."""
    images, labels = make_digits(N_TRAIN, 1)
    images = images.astype('>f4') / 255
    images[BATCH + 3, 10, 10] = np.nan
    return write_mnist(folder, images=images, labels=labels)


def test_check_numerics_names_the_gradient_and_exits_3(tmp_path):
    write_nan_data(tmp_path / 'data')
    result = run_script(small_args(tmp_path, '--cell', 'gru', '--check-numerics'), tmp_path)
    assert result.returncode == mnist_rnn.NAN_EXIT, result.stderr
    [line] = error_lines(result.stderr)
    assert re.match(r'^mnist_rnn\.py: error: gru: the gradient of \S+ \(.*\) had NaN '
                    r'values at ep 1, step 2 \(check_numerics, before the update\); remedies '
                    r"\(the notebook's\): --lr 0\.0001, --clip-norm 5\.0$", line), line
    # The step before was logged and its events are readable; nothing of step 2 was.
    train, _ = events(str(tmp_path / 'logdir' / 'train_gru'))
    assert [s for s, _ in train[mnist_rnn.TAG_LOSS]] == [1]
    history = json.load(open(str(tmp_path / 'checkpoints' / 'mnist_gru' / 'history.json')))
    assert history['status'] == 'nan' and 'step 2' in history['nan']


def test_nan_loss_without_check_prints_the_notebooks_line_and_stops(tmp_path):
    write_nan_data(tmp_path / 'data')
    status, out, err = run_main(small_args(tmp_path, '--cell', 'basic_lstm'))
    assert status == mnist_rnn.NAN_EXIT
    assert out.splitlines()[-1].startswith('[trn] ep 1, step 2, loss nan, accu ')
    assert TRN_LINE.match(out.splitlines()[-1])
    [line] = err.strip().splitlines()
    assert 'error: basic_lstm: loss is nan at ep 1, step 2' in line
    train, _ = events(str(tmp_path / 'logdir' / 'train_basic_lstm'))
    assert np.isnan(dict(train[mnist_rnn.TAG_LOSS])[2])


@pytest.mark.parametrize('remedy', [[], ['--lr', '0.0001'], ['--clip-norm', '5.0'],
                                    ['--ln-epsilon', '1e-12']],
                         ids=['notebook', 'lr', 'clip-norm', 'ln-epsilon-1e-12'])
def test_ln_basic_lstm_gradient_is_nan_at_the_first_step_on_blank_rows(tmp_path, remedy):
    write_mnist(tmp_path / 'data')
    status, out, err = run_main(small_args(tmp_path, '--cell', 'ln_basic_lstm',
                                           '--check-numerics', *remedy))
    assert status == mnist_rnn.NAN_EXIT
    [line] = err.strip().splitlines()
    # (With clipping every gradient is NaN, the dense layer's too: they are scaled by a NaN norm.)
    assert re.search(r'ln_basic_lstm: the gradient of \S+ .* had NaN values at ep 1, step 1 '
                     r'\(check_numerics', line), line
    # The remedies: --ln-epsilon first (the cause), then --ln-smoothing.
    assert re.search(r'remedies: --ln-epsilon 1e-2 \(cures the NaN at its cause.*norm_shift stays '
                     r'0\), or --ln-smoothing', line), line
    assert not TRN_LINE.search(out)


@pytest.mark.parametrize('extra', [[], ['--ln-smoothing']], ids=['epsilon', 'epsilon-smoothing'])
def test_ln_epsilon_trains_ln_basic_lstm_on_blank_rows(tmp_path, extra):
    """The rows the notebook's cell goes NaN on (above): every gradient finite, the loss falls."""
    write_mnist(tmp_path / 'data')
    argv = small_args(tmp_path, '--cell', 'ln_basic_lstm', '--check-numerics', '--epochs', '2',
                      '--lr', '0.01', '--ln-epsilon', mnist_rnn.LN_EPSILON_REMEDY, *extra)
    status, out, err = run_main(argv)
    assert status == 0, err
    losses = [v for _, v in sorted(events(str(tmp_path / 'logdir' / 'train_ln_basic_lstm'))[0][
        mnist_rnn.TAG_LOSS])]
    assert len(losses) == 20 and np.all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    # The checkpoint knows its epsilon: another one is another run.
    argv[argv.index('--ln-epsilon') + 1] = '1e-3'
    status, out, err = run_main(argv)
    assert status == 2 and 'ln_epsilon 0.01 (now 0.001)' in err, err


def test_ln_smoothing_cures_ln_basic_lstm(comparison):
    # The comparison ran ln_basic_lstm with --ln-smoothing on the same blank rows.
    values, _ = events(str(comparison['tmp'] / 'logdir' / 'train_ln_basic_lstm'))
    assert all(np.isfinite(v) for _, v in values[mnist_rnn.TAG_LOSS])


def test_nan_cell_is_reported_and_the_others_still_run(tmp_path):
    write_mnist(tmp_path / 'data')
    status, out, err = run_main(small_args(tmp_path, '--cell', 'ln_basic_lstm,basic_rnn',
                                           '--epochs', '1'))
    assert status == mnist_rnn.NAN_EXIT
    assert '[trn] ep 1, step 2, loss nan' in out
    assert '[basic_rnn] ' in out and '[tst] ep 1, mean accu' in out
    cells = {row['cell']: row for row in csv.DictReader(open(str(tmp_path / 'logdir' /
                                                              'results.csv')))}
    assert cells['ln_basic_lstm']['NaN'] == '1' and cells['basic_rnn']['NaN'] == '0'
    assert cells['ln_basic_lstm']['test accu mean'] == ''   # kept, without a figure
    rows = {row['cell']: row for row in csv.DictReader(open(str(tmp_path / 'logdir' /
                                                             'runs.csv')))}
    assert rows['ln_basic_lstm']['status'] == 'nan' and rows['basic_rnn']['status'] == 'done'
    # --validation-size 0: no validation, said so; the last epoch is reported.
    assert 'no validation (--validation-size 0: the last epoch is reported)' in out
    assert '[val]' not in out
    assert rows['basic_rnn']['best epoch (val)'] == '1 (last: no validation)'
    assert rows['basic_rnn']['test accu at best val'] == rows['basic_rnn']['final test accu']
    # The suggested remedy replaces the NaN run without --force.
    status, out, err = run_main(small_args(tmp_path, '--cell', 'ln_basic_lstm', '--ln-smoothing',
                                           '--epochs', '1'))
    assert status == 0, err
    assert 'replacing the run that stopped on NaN' in out


# ---------------------------------------------------------------------------
# Bad input: one clear line, non-zero exit
# ---------------------------------------------------------------------------

def bad_input(tmp_path, **kwargs):
    write_mnist(tmp_path / 'data', **kwargs)
    status, out, err = run_main(small_args(tmp_path, '--cell', 'gru'))
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in err, err
    assert not TRN_LINE.search(out)
    return lines[0]


def test_missing_file(tmp_path):
    write_mnist(tmp_path / 'data')
    os.remove(str(tmp_path / 'data' / 't10k-labels-idx1-ubyte'))
    status, _, err = run_main(small_args(tmp_path, '--cell', 'gru'))
    assert status == 2
    assert 't10k-labels-idx1-ubyte' in err and '--data-dir' in err
    assert len(err.strip().splitlines()) == 1


def test_truncated_file(tmp_path):
    write_mnist(tmp_path / 'data')
    path = str(tmp_path / 'data' / 't10k-images-idx3-ubyte')
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[:-100])
    status, _, err = run_main(small_args(tmp_path, '--cell', 'gru'))
    assert status == 2 and 'truncated' in err and path in err
    assert len(err.strip().splitlines()) == 1


def test_images_of_the_wrong_size(tmp_path):
    line = bad_input(tmp_path, images=np.zeros((N_TRAIN, 20, 20), np.uint8))
    assert 'images of shape 320 x 20 x 20, need N x 28 x 28' in line


def test_labels_outside_0_to_9(tmp_path):
    labels = make_digits(N_TEST, 2)[1]
    labels[5] = 12
    line = bad_input(tmp_path, test_labels=labels)
    assert 'labels outside 0..9' in line and '12' in line


def test_image_and_label_counts_differ(tmp_path):
    line = bad_input(tmp_path, labels=make_digits(N_TRAIN - 1, 1)[1])
    assert '320 images' in line and '319 labels' in line


def test_too_few_images_for_a_batch(tmp_path):
    write_mnist(tmp_path / 'data', n_test=BATCH - 1)
    status, _, err = run_main(small_args(tmp_path, '--cell', 'gru'))
    assert status == 2 and 'no whole batch' in err


def test_unknown_cell_lists_the_choices(tmp_path):
    status, _, err = run_main(small_args(tmp_path, '--cell', 'gru,transformer'))
    assert status == 2
    assert "argument --cell: invalid choice: 'transformer'" in err
    for cell in mnist_rnn.CELLS + ('all',):
        assert repr(cell) in err


def test_offline_download_names_the_files_and_the_flag(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(mnist_data, 'MNIST_MIRROR', 'http://127.0.0.1:9/')
    with pytest.raises(cli.UserError) as e:
        mnist_data.load_mnist()
    message = str(e.value)
    for name in ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
                 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'):
        assert name in message
    assert '--data-dir' in message and os.path.join('data', 'mnist') in message
    assert not glob.glob(str(tmp_path / 'data' / 'mnist' / '*'))


@contextlib.contextmanager
def serving(folder):
    """A local HTTP mirror of folder: its address."""
    import functools
    import http.server
    import threading

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield 'http://127.0.0.1:{}/'.format(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_download_into_the_default_location_checks_sha256(tmp_path, monkeypatch):
    mirror = tmp_path / 'mirror'
    mirror.mkdir()
    train, test = make_digits(N_TRAIN, 1), make_digits(N_TEST, 2)
    for (_, name), array in zip(mnist_data.MNIST_FILES, train + test):
        write_idx(str(mirror / (name + '.gz')), array)
    sha256 = {path.name: files.sha256_of(str(path)) for path in mirror.iterdir()}
    monkeypatch.setattr(mnist_data, 'MNIST_SHA256', sha256)
    monkeypatch.chdir(tmp_path)
    with serving(mirror) as address:
        monkeypatch.setattr(mnist_data, 'MNIST_MIRROR', address)
        data = mnist_data.load_mnist(validation_size=20)
        assert sorted(os.listdir(os.path.join('data', 'mnist'))) == sorted(sha256)
        assert data['train'].num_examples == N_TRAIN - 20
        assert data['test'].num_examples == N_TEST
        # A file whose bytes do not match its checksum is not kept.
        os.remove(os.path.join('data', 'mnist', 't10k-labels-idx1-ubyte.gz'))
        sha256['t10k-labels-idx1-ubyte.gz'] = '0' * 64
        with pytest.raises(cli.UserError) as e:
            mnist_data.load_mnist()
    assert 'checksum mismatch' in str(e.value) and '--data-dir' in str(e.value)
    assert not os.path.exists(os.path.join('data', 'mnist', 't10k-labels-idx1-ubyte.gz'))


def test_split_as_read_data_sets(tmp_path):
    write_mnist(tmp_path / 'data')
    data = mnist_data.load_mnist(str(tmp_path / 'data'), validation_size=50)
    images, labels = make_digits(N_TRAIN, 1)
    assert data['validation'].num_examples == 50 and data['train'].num_examples == N_TRAIN - 50
    np.testing.assert_array_equal(data['train'].labels, labels[50:])
    assert data['train'].images.dtype == np.float32 and data['train'].labels.dtype == np.int64
    np.testing.assert_array_equal(data['validation'].images,
                                  np.multiply(images[:50].astype(np.float32), 1.0 / 255.0))
    assert len(data['train'].batches(BATCH)) == (N_TRAIN - 50) // BATCH


@pytest.mark.parametrize('graph', ['fast', 'notebook'])
def test_the_whole_test_set_mean_counts_every_image(tmp_path, graph):
    """3 whole batches and 7 more: the notebook's loop as before, the mean over all 103."""
    n_test = 3 * BATCH + 7
    write_mnist(tmp_path / 'data', n_test=n_test)
    status, out, err = run_main(small_args(tmp_path, '--cell', 'basic_lstm', '--epochs', '1',
                                           '--graph', graph))
    assert status == 0, err
    [mean] = [m for m in map(MEAN_LINE.match, out.splitlines()) if m]
    assert int(mean.group(3)) == n_test
    assert '10 train + 3 test batches per epoch (+ 7 test images)' in out
    test, _ = events(str(tmp_path / 'logdir' / 'test_basic_lstm'))
    assert [s for s, _ in test[mnist_rnn.TAG_TEST_ACCURACY]] == [11, 12, 13]
    # The mean is the saved model's accuracy on all 103 images, computed apart (in the
    # notebook's graph: the checkpoint is the same).
    history = history_of(tmp_path, 'basic_lstm')
    images, labels = make_digits(n_test, 2)
    accuracy = checkpoint_accuracy(str(tmp_path / 'checkpoints' / 'mnist_basic_lstm' /
                                       history['checkpoint']), 'basic_lstm', images, labels)
    assert history['epochs'][0]['test_accuracy'] == pytest.approx(accuracy, abs=1e-9)
    assert float(mean.group(2)) == pytest.approx(accuracy, abs=1e-6)
    assert dict(test[mnist_rnn.TAG_TEST_MEAN_ACCURACY])[13] == pytest.approx(accuracy)


# ---------------------------------------------------------------------------
# Ctrl-C and SIGTERM save; the same command resumes
# ---------------------------------------------------------------------------

def start_long_run(tmp_path):
    """basic_rnn for 200 epochs in a subprocess, once epoch 1 is saved: (process, its args)."""
    write_mnist(tmp_path / 'data')
    args = small_args(tmp_path, '--cell', 'basic_rnn', '--epochs', '200', '--log-every', '1')
    proc = subprocess.Popen([sys.executable, SCRIPT] + args, cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True)
    for line in proc.stdout:
        if line.startswith('[trn] ep 2,'):
            break
    return proc, args


@pytest.mark.parametrize('signum,name', [(signal.SIGINT, 'Ctrl-C'), (signal.SIGTERM, 'SIGTERM')],
                         ids=['SIGINT', 'SIGTERM'])
def test_a_signal_saves_and_the_same_command_resumes(tmp_path, signum, name):
    proc, args = start_long_run(tmp_path)
    try:
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    match = re.search(r'^\[basic_rnn\] interrupted by {} at ep (\d+), step (\d+): saved (\S+); '
                      r'run the same command to resume$'.format(name), out, re.M)
    assert match, out
    step = int(match.group(2))
    assert step >= 13
    history = json.load(open(str(tmp_path / 'checkpoints' / 'mnist_basic_rnn' / 'history.json')))
    assert history['step'] == step and history['status'] == 'training'
    args[args.index('200')] = str(int(match.group(1)) + 1)
    result = run_script(args, tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'resuming at ep {}, step {}'.format(match.group(1), step) in result.stdout
    steps = [int(m.group(2)) for m in map(TRN_LINE.match, result.stdout.splitlines()) if m]
    # Training goes on from the next batch (after this epoch's test loop if it stopped there).
    assert steps[0] == step + (4 if step % 13 == 10 else 1)
    history = json.load(open(str(tmp_path / 'checkpoints' / 'mnist_basic_rnn' / 'history.json')))
    assert history['status'] == 'done' and len(history['losses']) == history['train_steps']


def test_one_run_per_cell_folder(tmp_path):
    """A second run of the same cell and folder stops at once naming the holder, the first
    goes on; killed (-9), the holder leaves no lock: the same command resumes."""
    holder, args = start_long_run(tmp_path)
    try:
        second = run_script(args, tmp_path)
        assert second.returncode == 2 and '[trn]' not in second.stdout
        assert second.stderr.strip().endswith(
            '{} is in use by another run (process {}): wait for it to finish, or train side by '
            'side in another --checkpoint-dir'.format(
                os.path.join(str(tmp_path / 'checkpoints'), 'mnist_basic_rnn'), holder.pid))
        for line in holder.stdout:
            if line.startswith('[trn] ep 3,'):   # it went on
                break
        assert holder.poll() is None
    finally:
        holder.kill()
        holder.communicate()
    history = json.load(open(str(tmp_path / 'checkpoints' / 'mnist_basic_rnn' / 'history.json')))
    args[args.index('200')] = str(history['epoch'] + 1)
    result = run_script(args, tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'resuming at ep {}, step {}'.format(history['epoch'] + 1, history['step']) in result.stdout


@pytest.mark.parametrize('first', ['during-the-save', 'before-the-save'])
def test_ctrl_c_during_a_save_waits_for_it_then_stops(tmp_path, monkeypatch, first):
    """Ctrl-C in the middle of tf.train.Saver.save, as the first signal (the save after epoch
    1) or as a second one (the save that a Ctrl-C at step 3 asked for): the save completes,
    the run stops right after it, exit 0, and the same command resumes from it."""
    write_mnist(tmp_path / 'data')
    argv = small_args(tmp_path, '--cell', 'basic_rnn', '--epochs', '3')
    saver_save, summary = tf.train.Saver.save, runs.scalar_summary
    saved, summaries = [], []

    def save_with_ctrl_c(self, sess, save_path, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        path = saver_save(self, sess, save_path, *args, **kwargs)
        saved.append(path)
        return path

    def summary_with_ctrl_c(*tags_and_values):
        summaries.append(tags_and_values)
        if len(summaries) == 3:   # step 3's
            os.kill(os.getpid(), signal.SIGINT)
        return summary(*tags_and_values)

    with monkeypatch.context() as patch:
        patch.setattr(tf.train.Saver, 'save', save_with_ctrl_c)
        if first == 'before-the-save':
            patch.setattr(runs, 'scalar_summary', summary_with_ctrl_c)
        status, out, err = run_main(argv)
    assert status == 0, err
    step, epoch = (13, 2) if first == 'during-the-save' else (3, 1)
    assert len(saved) == 1 and saved[0].endswith('model.ckpt-{}'.format(step))
    assert out.splitlines()[-1] == (
        '[basic_rnn] interrupted by Ctrl-C at ep {}, step {}: saved {}; run the same command to '
        'resume'.format(epoch, step, tmp_path / 'checkpoints' / 'mnist_basic_rnn'))
    history = history_of(tmp_path, 'basic_rnn')
    assert (history['status'], history['step'], history['checkpoint']) == (
        'training', step, 'model.ckpt-{}'.format(step))
    assert len(history['losses']) == (10 if step == 13 else 3)
    # The checkpoint is whole (every variable and Adam slot reads back), and resumes.
    variables = tf.train.load_checkpoint(saved[0]).get_variable_to_shape_map()
    assert {'rnn/basic_rnn_cell/kernel', 'rnn/basic_rnn_cell/kernel/Adam_1', 'dense/bias',
            'beta2_power'} <= set(variables)
    status, out, err = run_main(argv)
    assert status == 0, err
    assert 'resuming at ep {}, step {}'.format(epoch, step) in out
    history = history_of(tmp_path, 'basic_rnn')
    assert history['status'] == 'done' and len(history['losses']) == 30


# ---------------------------------------------------------------------------
# --graph: the fast graph (fused LSTM op, gru_stack) and the notebook's, the same model
# ---------------------------------------------------------------------------

def _run_model(cell, feed, weights=None, hidden=6, **kwargs):
    """A small MnistRnn (batch dimension None, as the script's) on feed = (images, labels):
    loss, {variable: gradient}, final state, the kernel op types used, and the weights:
    `weights` {name: array} loaded into the variables, or drawn at random (biases too)."""
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.placeholder(tf.float32, [None, mnist_rnn.MAX_SEQ_LEN, mnist_rnn.INPUT_UNITS])
        labels = tf.placeholder(tf.int64, [None])
        model = mnist_rnn.MnistRnn(inputs, labels, mnist_rnn.INPUT_UNITS, hidden, len(feed[1]),
                                   mnist_rnn.MAX_SEQ_LEN, cell, lstm_forget_bias=0.7, **kwargs)
        variables = tf.trainable_variables()
        if weights is None:
            rng = np.random.RandomState(5)
            weights = {v.op.name: rng.uniform(-0.5, 0.5, v.shape.as_list()).astype(np.float32)
                       for v in variables}
        assert sorted(v.op.name for v in variables) == sorted(weights)
        grads = tf.gradients(model.loss, variables)
        with tf.Session(config=runs.session_config(2)) as sess:
            sess.run(tf.global_variables_initializer())
            for var in variables:
                var.load(weights[var.op.name], sess)
            loss, grad_values, state = sess.run(
                [model.loss, grads, tf.nest.flatten(model.state)],
                {inputs: feed[0], labels: feed[1]})
        # BlockLSTM: the fused LSTM; IdentityN: the written-out gradient of kernels.gru_stack.
        kernel_ops = {op.type for op in graph.get_operations()} & {'BlockLSTM', 'IdentityN'}
    return (loss, {v.op.name: g for v, g in zip(variables, grad_values)}, state, kernel_ops,
            weights)


def _random_feed(seed=2):
    rng = np.random.RandomState(seed)
    return (rng.rand(4, mnist_rnn.MAX_SEQ_LEN, mnist_rnn.INPUT_UNITS).astype(np.float32),
            np.array([0, 3, 7, 9]))


def assert_same_model(results, other):
    (loss, grads, state), (other_loss, other_grads, other_state) = results[:3], other[:3]
    assert other_loss == pytest.approx(loss, rel=1e-5)
    assert sorted(grads) == sorted(other_grads)
    for name in grads:
        np.testing.assert_allclose(other_grads[name], grads[name], rtol=1e-4, atol=1e-5,
                                   err_msg=name)
        assert np.abs(grads[name]).max() > 0, name
    assert len(state) == len(other_state)
    for part, other_part in zip(state, other_state):
        np.testing.assert_allclose(other_part, part, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('cell', mnist_rnn.CELLS)
def test_fast_graph_is_the_same_model_same_variables_loss_gradients_and_state(cell):
    feed = _random_feed()
    notebook = _run_model(cell, feed, ln_norm_smoothing=True, graph='notebook')
    fast = _run_model(cell, feed, weights=notebook[4], ln_norm_smoothing=True)
    # The fused kernel or gru_stack is really used where there is one, never in the notebook's.
    assert notebook[3] == set()
    assert fast[3] == {'basic_lstm': {'BlockLSTM'}, 'lstm': {'BlockLSTM'},
                       'gru': {'IdentityN'}}.get(cell, set())
    assert_same_model(notebook, fast)
    # A shorter batch runs too (the script's last test batch).
    short = _run_model(cell, (feed[0][:3], feed[1][:3]), weights=notebook[4],
                       ln_norm_smoothing=True)
    np.testing.assert_allclose(short[2][0], notebook[2][0][:3], rtol=1e-5, atol=1e-6)


def test_ln_epsilon_runs_the_port_with_the_notebook_cells_variables():
    """--ln-epsilon: on TF1 the port instead of contrib's cell. At contrib's epsilon (1e-12)
    the same variables, loss, gradients and state for the same weights; at 1e-2 the same
    variables (checkpoints load either way), and another loss."""
    feed = _random_feed()
    notebook = _run_model('ln_basic_lstm', feed)
    port = _run_model('ln_basic_lstm', feed, weights=notebook[4],
                      ln_epsilon=layer_norm.LAYER_NORM_EPSILON)
    assert_same_model(notebook, port)
    remedy = _run_model('ln_basic_lstm', feed, weights=notebook[4],
                        ln_epsilon=float(mnist_rnn.LN_EPSILON_REMEDY))
    assert abs(remedy[0] - notebook[0]) > 1e-4


def test_a_notebook_graph_checkpoint_resumes_in_the_fast_graph(tmp_path):
    write_mnist(tmp_path / 'data')
    argv = small_args(tmp_path, '--cell', 'lstm', '--epochs', '1', '--graph', 'notebook')
    status, out, err = run_main(argv)
    assert status == 0, err
    argv = small_args(tmp_path, '--cell', 'lstm', '--epochs', '2')
    status, out, err = run_main(argv)
    assert status == 0, err
    assert 'resuming at ep 2' in out and '[trn] ep 2, step' in out


# ---------------------------------------------------------------------------
# The training step applies the gradient of the weights it read (reference variables).
# ---------------------------------------------------------------------------

def _training_model(cell, graph, **kwargs):
    tf_graph = tf.Graph()
    with tf_graph.as_default():
        tf.set_random_seed(4)
        inputs = tf.placeholder(tf.float32, [None, mnist_rnn.MAX_SEQ_LEN, mnist_rnn.INPUT_UNITS])
        labels = tf.placeholder(tf.int64, [None])
        model = mnist_rnn.MnistRnn(inputs, labels, mnist_rnn.INPUT_UNITS, 32, 16,
                                   mnist_rnn.MAX_SEQ_LEN, cell, graph=graph,
                                   global_step=tf.train.get_or_create_global_step(), **kwargs)
        init = tf.global_variables_initializer()
    sess = tf.Session(graph=tf_graph, config=runs.session_config(2))
    sess.run(init)
    return model, sess, inputs, labels


@pytest.mark.parametrize('cell,graph', [('gru', 'fast'), ('gru', 'notebook'), ('lstm', 'fast'),
                                        ('ln_basic_lstm', 'notebook')])
def test_each_step_applies_the_gradient_of_the_weights_it_started_from(cell, graph):
    from conftest import assert_steps_apply_their_gradients
    model, sess, inputs, labels = _training_model(cell, graph, lr=0.01, add_check=True,
                                                  ln_norm_smoothing=True)
    images, digits = make_digits(16, 3)
    feed = {inputs: images.astype(np.float32) / 255, labels: digits}
    assert_steps_apply_their_gradients(sess, model.grads_and_vars, model.optimize, feed, 0.01)


def test_a_step_whose_lstm_gradient_is_nan_leaves_the_dense_layer_as_it_was():
    """ln_basic_lstm on blank rows: the cell's gradients are NaN, the dense layer's are not.
    --check-numerics stops the step, and no variable has moved (the dense one included)."""
    model, sess, inputs, labels = _training_model('ln_basic_lstm', 'notebook', add_check=True)
    images, digits = make_digits(16, 3)
    feed = {inputs: images.astype(np.float32) / 255, labels: digits}
    with sess.graph.as_default():
        state = tf.global_variables()
        variables = tf.trainable_variables()
        raw = tf.gradients(model.loss, variables)   # unchecked: to see which are finite
    finite = {v.op.name: bool(np.all(np.isfinite(g)))
              for v, g in zip(variables, sess.run(raw, feed))}
    assert finite['dense/kernel'] and not all(finite.values()), finite
    before = sess.run(state)
    with pytest.raises(tf.errors.InvalidArgumentError, match='check_numerics'):
        sess.run(model.optimize, feed)
    for var, old, new in zip(state, before, sess.run(state)):
        np.testing.assert_array_equal(new, old, err_msg=var.op.name)


def test_a_resumed_run_is_the_run_that_was_not_interrupted(tmp_path):
    """Two epochs straight, again (same seed, one thread), and one + one across a restart:
    the same losses and accuracies, line for line."""
    write_mnist(tmp_path / 'data')

    def lines(folder, epochs):
        argv = small_args(tmp_path / folder, '--cell', 'gru', '--epochs', str(epochs),
                          '--threads', '1', '--log-every', '1')
        argv[1] = str(tmp_path / 'data')
        status, out, err = run_main(argv)
        assert status == 0, err
        return [re.sub(r'sec/iter \S+', '', line) for line in out.splitlines()
                if TRN_LINE.match(line) or line.startswith('[tst] ep')]

    straight = lines('a', 2)
    assert len([line for line in straight if line.startswith('[trn]')]) > 10
    assert lines('b', 2) == straight
    assert lines('c', 1) + lines('c', 2) == straight


def test_a_run_stopped_before_its_first_save_starts_over(tmp_path):
    """history.json without a checkpoint (Ctrl-C in the first epoch): the same command, or
    one with other settings, trains the cell from the start."""
    write_mnist(tmp_path / 'data')
    status, out, err = run_main(small_args(tmp_path, '--cell', 'gru', '--epochs', '1'))
    assert status == 0, err
    folder = tmp_path / 'checkpoints' / 'mnist_gru'
    history = json.load(open(str(folder / 'history.json')))
    for path in folder.iterdir():
        if path.name != 'history.json':
            path.unlink()
    history.update(status='training', checkpoint=None, epochs=[], epoch=0, batch=3)
    with open(str(folder / 'history.json'), 'w') as f:
        json.dump(history, f)
    status, out, err = run_main(small_args(tmp_path, '--cell', 'gru', '--epochs', '1',
                                           '--lr', '0.002'))
    assert status == 0, err
    assert 'holds no checkpoint yet: starting the cell over' in out
    assert json.load(open(str(folder / 'history.json')))['settings']['lr'] == 0.002


def test_a_cell_folder_written_before_the_layout_move_resumes(tmp_path):
    """checkpoints/mnist_gru as main wrote it at 7953fdb (1 epoch, 16 hidden, batch 8, its
    history.json; one per stack, which a run's settings include): a second epoch resumes it."""
    old = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'main-7953fdb')
    shutil.copytree(os.path.join(old, 'checkpoints', 'mnist_gru-' + utils.STACK),
                    str(tmp_path / 'checkpoints' / 'mnist_gru'))
    write_mnist(tmp_path / 'data')
    argv = small_args(tmp_path, '--cell', 'gru', '--epochs', '2', '--threads', '1')
    argv[argv.index('--batch-size') + 1] = '8'
    status, out, err = run_main(argv)
    assert status == 0, err
    assert 'resuming at ep 2' in out and '[tst] ep 2' in out


# ---------------------------------------------------------------------------
# Issue 23, class 1: flag values the math cannot take are refused by argparse.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('flag,value,message', [
    ('--lr', '-0.01', 'must be in (0, 1], not -0.01'),
    ('--lr', '0', 'must be in (0, 1], not 0'),
    ('--clip-norm', '-1', 'must be 0 or more, not -1'),
    ('--clip-norm', 'inf', "expected a number 0 or more, not 'inf'"),
    ('--ln-epsilon', '0', 'must be more than 0, not 0'),
    ('--forget-bias', 'nan', "expected a number, not 'nan'"),
    ('--seed', '-2', 'must be in [0, 2147483647], not -2'),
    ('--epochs', '0', 'must be 1 or more, not 0'),
    ('--train-limit', '-1', 'must be 0 or more, not -1'),
])
def test_flag_values_the_math_cannot_take_are_one_argparse_line(flag, value, message, tmp_path):
    status, out, err = run_main(small_args(tmp_path, flag, value))
    assert status == 2
    assert 'Traceback' not in err
    assert err.splitlines()[-1].endswith(': error: argument {}: {}'.format(flag, message))
    assert not (tmp_path / 'checkpoints').exists()


# ---------------------------------------------------------------------------
# Issue 23, class 2: output places that cannot be written fail before any training.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('flag,message', [
    ('--results-dir', '--results-dir {file}: is a file, not a folder'),
    ('--checkpoint-dir', '--checkpoint-dir {file}: is a file, not a folder'),
    ('--logdir', '--logdir {file}/runs: cannot make it, {file} is a file, not a folder'),
])
def test_an_output_place_that_cannot_be_written_is_one_line_before_training(flag, message,
                                                                           tmp_path):
    write_mnist(tmp_path / 'data')
    afile = tmp_path / 'afile'
    afile.write_text('')
    argv = small_args(tmp_path, '--config', 'tiny', '--cell', 'basic_rnn,gru')
    value = str(afile) + ('/runs' if flag == '--logdir' else '')
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]
    status, out, err = run_main(argv)
    assert status == 2
    assert err.splitlines() == ['{}: error: {}'.format(os.path.basename(sys.argv[0]),
                                                       message.format(file=afile))]
    assert '[trn]' not in out and not (tmp_path / 'checkpoints').exists()


# ---------------------------------------------------------------------------
# Issue 23, class 3: a full disk during a save.
# ---------------------------------------------------------------------------

def test_a_failed_save_stops_and_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    from test_runs import fail_saves, leftovers
    write_mnist(tmp_path / 'data')
    argv = small_args(tmp_path, '--config', 'tiny', '--cell', 'gru', '--epochs', '3')
    saves = []
    fail_saves(monkeypatch, tf, lambda step: saves.append(step) or len(saves) == 2,
               tf.errors.ResourceExhaustedError(None, None, 'No space left on device'))
    status, out, err = run_main(argv)
    folder = tmp_path / 'checkpoints' / 'mnist_gru'
    assert status == 2 and 'Traceback' not in err
    assert err.splitlines()[-1] == (
        '{}: error: cannot save checkpoint {}-{} (No space left on device): stopped; the latest '
        'checkpoint is still {}-{}'.format(os.path.basename(sys.argv[0]), folder / 'model.ckpt',
                                           saves[1], folder / 'model.ckpt', saves[0]))
    assert '[trn] ep 3' not in out
    assert leftovers(tmp_path / 'checkpoints') == []
    assert history_of(tmp_path, 'gru')['checkpoint'] == 'model.ckpt-{}'.format(saves[0])
    assert tf.train.latest_checkpoint(str(folder)) == str(folder / 'model.ckpt-{}'.format(saves[0]))
    monkeypatch.undo()
    status, out, err = run_main(argv)
    assert status == 0, err
    assert 'resuming at ep 2' in out


def test_a_checkpoint_whose_data_file_is_gone_is_one_line_naming_it(tmp_path):
    # history.json's position is its checkpoint's: no fall back to an older one here
    write_mnist(tmp_path / 'data')
    argv = small_args(tmp_path, '--config', 'tiny', '--cell', 'gru')
    assert run_main(argv + ['--epochs', '1'])[0] == 0
    name = history_of(tmp_path, 'gru')['checkpoint']
    folder = tmp_path / 'checkpoints' / 'mnist_gru'
    os.remove(str(folder / (name + '.data-00000-of-00001')))
    status, out, err = run_main(argv + ['--epochs', '2'])
    assert status == 2 and 'Traceback' not in err
    assert err.splitlines()[-1] == (
        '{}: error: cannot restore gru from {}: checkpoint {}: its data file '
        '{}.data-00000-of-00001 is missing; --force starts it over'.format(
            os.path.basename(sys.argv[0]), folder, name, name))


def test_a_closed_output_pipe_at_the_first_line_stops_and_saves(tmp_path, monkeypatch):
    from test_runs import ClosingPipe
    write_mnist(tmp_path / 'data')
    pipe = ClosingPipe(0)
    monkeypatch.setattr(sys, 'stdout', pipe)
    status = cli.run_main(mnist_rnn.main, small_args(tmp_path, '--config', 'tiny'))
    # its first line is printed in the training's signal context: stopped there, and saved
    assert status == 0 and pipe.written == []
    history = history_of(tmp_path, 'basic_rnn')
    assert history['step'] == 0 and history['checkpoint'] == 'model.ckpt-0'


# ---------------------------------------------------------------------------
# Files across runs: event folders are never taken from another run; a restarted run rotates
# the earlier process's checkpoints too.
# ---------------------------------------------------------------------------

def event_files(logdir):
    """{path: size} of every event file under logdir."""
    return {path: os.path.getsize(path) for path in glob.glob(
        os.path.join(str(logdir), '**', 'events.out.tfevents.*'), recursive=True)}


def mark_event_files(logdir, suffix):
    """Renames the event files under logdir to end in suffix (still event files, by their
    names): told apart from those a later run makes within the same second, which FileWriter
    names alike."""
    for path in event_files(logdir):
        os.replace(path, path + suffix)


def test_another_checkpoint_dir_with_the_same_logdir_never_deletes_the_first_runs_events(
        tmp_path):
    """The lock's advice followed (another --checkpoint-dir) while the first run trains, with
    the same --logdir: one line and exit 2, the first run's event files untouched and nothing
    written; with another --logdir it trains. --force, and a resume, of the first run keep to
    its own event files."""
    holder, args = start_long_run(tmp_path)
    logdir, first = tmp_path / 'logdir', tmp_path / 'checkpoints' / 'mnist_basic_rnn'
    other = tmp_path / 'other'
    argv = list(args)
    argv[argv.index('--checkpoint-dir') + 1] = str(other)
    try:
        second = run_script(argv, tmp_path)
        assert second.returncode == 2 and '[trn]' not in second.stdout
        assert error_lines(second.stderr) == [
            '{}: error: {} holds the event files of another run (not of {}): give this run '
            'another --logdir, or remove them'.format(
                os.path.basename(SCRIPT), logdir / 'train_basic_rnn', other / 'mnist_basic_rnn')]
        assert not other.exists()
        assert holder.poll() is None
    finally:
        holder.kill()
        holder.communicate()
    before = event_files(logdir)
    assert {os.path.basename(os.path.dirname(p)) for p in before} == {'train_basic_rnn',
                                                                      'test_basic_rnn'}
    history = json.load(open(str(first / 'history.json')))
    assert history['event_dirs'] == [os.path.join('..', '..', 'logdir', name)
                                     for name in ('test_basic_rnn', 'train_basic_rnn')]
    argv[argv.index('200')] = '1'
    argv[argv.index('--logdir') + 1] = str(tmp_path / 'logdir2')
    status, out, err = run_main(argv)
    assert status == 0, err
    assert event_files(logdir) == before   # the first run's, as they were
    assert len(event_files(tmp_path / 'logdir2')) == 2
    # The first run resumed: its events go on in the same files' folders, none removed.
    args[args.index('200')] = str(history['epoch'] + 1)
    status, out, err = run_main(args)
    assert status == 0 and 'resuming at ep' in out, err
    after = event_files(logdir)
    assert set(before) < set(after) and all(after[p] == size for p, size in before.items())
    # --force starts it over: its own earlier event files go (the notebook's rm -fr logdir),
    # only the new run's steps are left.
    mark_event_files(logdir, '.before')
    status, out, err = run_main(args + ['--force'])
    assert status == 0, err
    assert not [path for path in event_files(logdir) if path.endswith('.before')]
    losses = [step for step, _ in events(str(logdir / 'train_basic_rnn'))[0][mnist_rnn.TAG_LOSS]]
    assert len(losses) == len(set(losses)) == len(history_of(tmp_path, 'basic_rnn')['losses'])


def test_a_run_killed_before_its_first_save_starts_over_in_its_own_event_folders(tmp_path):
    """kill -9 in the first epoch: history.json, written as training starts, names the event
    folders the run wrote, so the same command starts over there (not refused as another
    run's), replacing those events."""
    write_mnist(tmp_path / 'data')
    args = small_args(tmp_path, '--cell', 'gru', '--epochs', '200', '--log-every', '1')
    proc = subprocess.Popen([sys.executable, SCRIPT] + args, cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True)
    try:
        for line in proc.stdout:
            if line.startswith('[trn] ep 1, step 2,'):
                break
    finally:
        proc.kill()
        proc.communicate()
    history = history_of(tmp_path, 'gru')
    assert (history['status'], history['checkpoint']) == ('training', None)
    assert len(event_files(tmp_path / 'logdir')) == 2
    mark_event_files(tmp_path / 'logdir', '.killed')
    args[args.index('200')] = '1'
    status, out, err = run_main(args)
    assert status == 0, err
    assert 'holds no checkpoint yet: starting the cell over' in out
    assert '[trn] ep 1, step 1,' in out
    assert not [path for path in event_files(tmp_path / 'logdir') if path.endswith('.killed')]
    losses = [step for step, _ in events(str(tmp_path / 'logdir' / 'train_gru'))[0][
        mnist_rnn.TAG_LOSS]]
    assert losses == list(range(1, 11))   # this run's steps, none of the killed run's


def test_a_restarted_run_rotates_the_earlier_processes_checkpoints_away(tmp_path, monkeypatch):
    """Epoch 1 (checkpoint 13); a second process stopped by Ctrl-C at step 20 (checkpoint
    20); a third that finishes epochs 2 and 3 (26, 39): the folder keeps the newest two,
    whoever saved them."""
    write_mnist(tmp_path / 'data')
    argv = small_args(tmp_path, '--cell', 'gru', '--threads', '1')
    folder = tmp_path / 'checkpoints' / 'mnist_gru'

    def checkpoints():
        return sorted(name for name in os.listdir(str(folder)) if name.startswith('model.ckpt'))

    assert run_main(argv + ['--epochs', '1'])[0] == 0
    summary, calls = runs.scalar_summary, []

    def summary_with_ctrl_c(*tags_and_values):
        calls.append(tags_and_values)
        if len(calls) == 7:   # the seventh step of epoch 2: step 13 + 7
            os.kill(os.getpid(), signal.SIGINT)
        return summary(*tags_and_values)

    with monkeypatch.context() as patch:
        patch.setattr(runs, 'scalar_summary', summary_with_ctrl_c)
        status, out, err = run_main(argv + ['--epochs', '3'])
    assert status == 0 and 'interrupted by Ctrl-C at ep 2, step 20' in out, err
    assert checkpoints() == ['model.ckpt-{}.{}'.format(step, ext) for step in (13, 20)
                             for ext in ('data-00000-of-00001', 'index')]
    status, out, err = run_main(argv + ['--epochs', '3'])
    assert status == 0 and 'resuming at ep 2, step 20' in out, err
    assert checkpoints() == ['model.ckpt-{}.{}'.format(step, ext) for step in (26, 39)
                             for ext in ('data-00000-of-00001', 'index')]
    state = tf.train.get_checkpoint_state(str(folder))
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
        'model.ckpt-26', 'model.ckpt-39']
    assert history_of(tmp_path, 'gru')['checkpoint'] == 'model.ckpt-39'
