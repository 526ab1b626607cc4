"""TensorBoard itself serves what the scripts log: asked through its own HTTP API."""
import json
import os
import socket
import subprocess
import sys
import time
from urllib.parse import quote
from urllib.request import urlopen

import numpy as np
import pytest

from conftest import ROOT, write_idx


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run(args, cwd):
    proc = subprocess.run([sys.executable] + args, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


def get_json(base, path, timeout=5):
    with urlopen(base + path, timeout=timeout) as r:
        return json.loads(r.read().decode('utf-8'))


@pytest.fixture
def tensorboard():
    """Starts TensorBoard on a logdir; waits until it has loaded the runs we expect."""
    procs = []

    def start(logdir, expect_runs):
        port = free_port()
        cmd = [sys.executable, '-c', 'from tensorboard.main import run_main; run_main()',
               '--logdir', logdir, '--host', '127.0.0.1', '--port', str(port),
               '--reload_interval', '1']
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                universal_newlines=True)
        procs.append(proc)
        base = 'http://127.0.0.1:{}'.format(port)
        deadline = time.time() + 120
        while time.time() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            try:
                tags = get_json(base, '/data/plugin/scalars/tags')
                if set(expect_runs) <= set(tags):
                    return base, tags
            except OSError:
                pass
            time.sleep(0.5)
        pytest.fail('TensorBoard did not load runs {}'.format(expect_runs))

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


def test_char_rnn_scalars_and_samples_are_served(tmp_path, tensorboard):
    corpus = tmp_path / 'tiny.txt'
    corpus.write_text('\n'.join(['Make America Great Again _E_', 'I will win. _E_',
                                 'The fake news media _E_'] * 20) + '\n', encoding='utf-8')
    logdir = tmp_path / 'logdir'
    run([os.path.join(ROOT, 'char_rnn.py'), '--config', 'tiny', '--data', str(corpus),
         '--model', 'tiny', '--steps', '20', '--checkpoint-dir', str(tmp_path / 'ckpt'),
         '--logdir', str(logdir)], cwd=str(tmp_path))
    base, tags = tensorboard(str(logdir), ['char_rnn/tiny/train', 'char_rnn/tiny/val'])
    train_tags = set(tags['char_rnn/tiny/train'])
    assert {'loss_per_char', 'learning_rate', 'gradient_global_norm'} <= train_tags
    assert 'loss_per_char' in tags['char_rnn/tiny/val']
    points = get_json(base, '/data/plugin/scalars/scalars?run={}&tag=loss_per_char'.format(
        quote('char_rnn/tiny/train', safe='')))
    steps = [p[1] for p in points]
    losses = np.array([p[2] for p in points])
    assert steps == sorted(steps) and len(steps) >= 2
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    text_tags = get_json(base, '/data/plugin/text/tags')
    assert 'samples' in ''.join(text_tags.get('char_rnn/tiny/train', []))
    graph = urlopen(base + '/data/plugin/graphs/graph?run={}'.format(
        quote('char_rnn/tiny/train', safe='')), timeout=30).read()
    assert b'rnn' in graph


def test_mnist_rnn_runs_and_tags_are_served(tmp_path, tensorboard):
    rng = np.random.RandomState(0)
    data = tmp_path / 'mnist'
    data.mkdir()
    for prefix, n in (('train', 96), ('t10k', 64)):
        labels = rng.randint(0, 10, n).astype(np.uint8)
        images = np.zeros((n, 28, 28), np.uint8)
        for i, label in enumerate(labels):
            images[i, 6:, label * 2] = 255
        write_idx(data / '{}-images-idx3-ubyte.gz'.format(prefix), images)
        write_idx(data / '{}-labels-idx1-ubyte.gz'.format(prefix), labels)
    logdir = tmp_path / 'logdir'
    run([os.path.join(ROOT, 'mnist_rnn.py'), '--cell', 'gru', '--config', 'tiny',
         '--data-dir', str(data), '--validation-size', '0', '--logdir', str(logdir),
         '--checkpoint-dir', str(tmp_path / 'ckpt')], cwd=str(tmp_path))
    base, tags = tensorboard(str(logdir), ['train_gru', 'test_gru'])
    assert {'train accuracy', 'loss'} <= set(tags['train_gru'])
    assert 'test accuracy' in tags['test_gru']
    points = get_json(base, '/data/plugin/scalars/scalars?run=train_gru&tag={}'.format(
        quote('loss', safe='')))
    assert len(points) >= 2 and all(np.isfinite(p[2]) for p in points)
