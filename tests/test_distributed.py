"""char_rnn.py and mnist_rnn.py on TensorFlow's distributed runtime: 1 ps + 2 workers on
loopback ports.

Every process a test starts is killed when it ends, passed or failed (the `tasks` fixture);
every wait is bounded.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import char_rnn
from cluster import free_ports
from tf1rnn import distributed, mnist_data, runs
from utils import tf
from test_char_rnn import run, write_code, write_corpus
from test_mnist_rnn import N_TEST, checkpoint_accuracy, make_digits, write_mnist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'char_rnn.py')
MNIST = os.path.join(ROOT, 'mnist_rnn.py')
LAUNCHER = os.path.join(ROOT, 'cluster.py')
WAIT = 180   # seconds: a bound on every wait, far above what a step takes


def char_args(tmp, data, *extra, steps=12):
    return ['--data', str(data), '--config', 'tiny', '--steps', str(steps), '--vocab', 'auto',
            '--checkpoint-dir', str(tmp / 'ckpt'), '--logdir', str(tmp / 'logdir'),
            '--sample-every', '0', '--eval-every', '4', '--threads', '1',
            '--lr', '0.05'] + list(extra)


class Task(object):
    """A task of the cluster in a subprocess; its output lines collected by a thread."""

    def __init__(self, argv, cwd, script=SCRIPT):
        self.proc = subprocess.Popen([sys.executable, script] + argv, cwd=str(cwd),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     universal_newlines=True, encoding='utf-8')
        self.lines = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def text(self):
        return ''.join(self.lines)

    def wait_for(self, pattern, after=0):
        """The last match of pattern in the output lines from line `after` on."""
        deadline = time.time() + WAIT
        while time.time() < deadline:
            for line in reversed(self.lines[after:]):
                match = re.search(pattern, line)
                if match:
                    return match
            if self.proc.poll() is not None and not self.thread.is_alive():
                break
            time.sleep(0.2)
        raise AssertionError('no {!r} in:\n{}'.format(pattern, self.text))

    def finish(self, signum=None):
        if signum is not None:
            self.proc.send_signal(signum)
        try:
            self.proc.wait(WAIT)
        finally:
            self.thread.join(10)
        return self.proc.returncode


@pytest.fixture
def tasks():
    """A list to put Tasks (or Popens) in: all killed at the end of the test."""
    started = []
    yield started
    for task in started:
        proc = getattr(task, 'proc', task)
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def cluster_flags(ports, job, index, *extra):
    return ['--ps-hosts', 'localhost:{}'.format(ports[0]),
            '--worker-hosts', ','.join('localhost:{}'.format(p) for p in ports[1:]),
            '--job-name', job, '--task-index', str(index)] + list(extra)


def latest_step(model_dir):
    path = tf.train.latest_checkpoint(str(model_dir))
    return path, (tf.train.load_variable(path, 'global_step') if path else None)


def test_sync_cluster_trains_and_its_checkpoint_is_a_single_process_one(tmp_path, capsys):
    """cluster.py, 1 ps + 2 workers, --sync: each update aggregates 2 gradients (the workers'
    own steps add up to twice the global step or more), the validation loss falls, only the
    chief writes, the other worker stops with it; a single process then resumes from the
    checkpoint, --sample reads it."""
    data = write_corpus(tmp_path / 'corpus.txt', lines=200)
    try:
        proc = subprocess.run([sys.executable, LAUNCHER, '--workers', '2', '--sync', '--logs',
                               str(tmp_path / 'logs'), '--', sys.executable, SCRIPT]
                              + char_args(tmp_path, data), cwd=str(tmp_path),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, encoding='utf-8', timeout=WAIT)
    except subprocess.TimeoutExpired as e:   # where each task was
        output = e.output.decode('utf-8', 'replace') if isinstance(e.output, bytes) else e.output
        pytest.fail('cluster.py still running after {} s:\n{}'.format(WAIT, output))
    out = proc.stdout
    assert proc.returncode == 0, out
    assert 'Traceback' not in out
    own = {int(task): (int(step), why, int(n)) for task, step, why, n in re.findall(
        r'^\[worker (\d)\] stopped at global step (\d+) \((.*)\): (\d+) steps of its own$',
        out, re.M)}
    # The other worker trains until the chief stops: the chief's last update needs it. (On
    # a loaded machine it may start after the chief's last step: then it has nothing to do.)
    late = re.search(r'^\[worker 1\] step \d+ already reached', out, re.M)
    assert sorted(own) == ([0] if late else [0, 1]), out
    assert own[0][1] == 'done' and (late or own[1][1] == 'the chief stopped'), own
    # The other worker's updates while the chief validates count: the chief may read a
    # global step past 12 at its last step, and saves at the step it read.
    last = own[0][0]
    assert last >= 12 and sum(n for _, _, n in own.values()) >= 2 * last, own
    losses = [float(x) for x in re.findall(r'^\[worker 0\]     Validation loss ([\d.]+)', out,
                                           re.M)]
    assert len(losses) >= 2 and losses[-1] < losses[0], out
    assert not re.search(r'^\[worker 1\].*Validation', out, re.M)   # only the chief
    assert re.search(r'^\[ps 0\] ps 0 stopped by SIGTERM', out, re.M)
    for name in ('ps-0', 'worker-0', 'worker-1'):
        assert (tmp_path / 'logs' / (name + '.log')).read_text(encoding='utf-8')
    model_dir = tmp_path / 'ckpt' / 'trump_tweets'
    path, step = latest_step(model_dir)
    # The other worker may add an update while the chief saves: the chief's step names it.
    assert path.endswith('char-rnn-{}'.format(last)) and step >= last

    # The same variables as a single process's checkpoint, nothing of the cluster's.
    single = tmp_path / 'single'
    code, _, err = run(char_args(single, data, steps=1), capsys)
    assert code == 0, err
    names = lambda p: sorted(name for name, _ in tf.train.list_variables(p))  # noqa: E731
    assert names(path) == names(latest_step(single / 'ckpt' / 'trump_tweets')[0])

    code, out, err = run(char_args(tmp_path, data, steps=step + 2), capsys)
    assert code == 0, err
    assert 'resumed from {} at step {}'.format(path, step) in out
    assert re.findall(r'^Iter (\d+)\. $', out, re.M) == [str(step), str(step + 1)]
    code, out, err = run(['--sample', '--checkpoint-dir', str(tmp_path / 'ckpt'), '-n', '10',
                          '--prime', 'make'], capsys)
    assert code == 0 and out.startswith('make'), err


def test_stream_mode_on_a_cluster_trains_each_worker_on_its_streams(tmp_path, capsys):
    """--stream on cluster.py (async): each worker reads its own streams, the chief saves its
    carried state with the checkpoint, and a single process resumes from it."""
    data = write_code(tmp_path / 'code.txt')
    try:
        proc = subprocess.run([sys.executable, LAUNCHER, '--workers', '2', '--logs',
                               str(tmp_path / 'logs'), '--', sys.executable, SCRIPT]
                              + char_args(tmp_path, data, '--stream', steps=10),
                              cwd=str(tmp_path), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, universal_newlines=True,
                              encoding='utf-8', timeout=WAIT)
    except subprocess.TimeoutExpired as e:
        output = e.output.decode('utf-8', 'replace') if isinstance(e.output, bytes) else e.output
        pytest.fail('cluster.py still running after {} s:\n{}'.format(WAIT, output))
    out = proc.stdout
    assert proc.returncode == 0 and 'Traceback' not in out, out
    for task in (0, 1):   # 8 streams each, of the 16 that one process of batch 16 reads
        assert re.search(r"^\[worker {}\] .*; 8 streams of [\d,]+ windows of 20 a pass "
                         r"\(this worker's; 16 in all\)$".format(task), out, re.M), out
    assert re.search(r'^\[worker 0\]     Validation loss', out, re.M)
    path, step = latest_step(tmp_path / 'ckpt' / 'trump_tweets')
    state = [name for name, _ in tf.train.list_variables(path) if 'carried_state' in name]
    assert state and all(tf.train.load_variable(path, name).shape[0] == 8 for name in state)
    code, out, err = run(char_args(tmp_path, data, '--stream', steps=step + 2), capsys)
    assert code == 0 and 'resumed from {} at step {}'.format(path, step) in out, err


def test_sync_mean_of_two_half_batches_updates_as_one_batch(tmp_path):
    """Between-graph replication in this process (3 servers): 2 workers, each half a batch,
    --sync, from the same weights as a single process given the whole batch: after the first
    update the variables agree (the update applies the mean of the two gradients: Adam's
    first step is the same for any positive multiple of a gradient)."""
    ports = free_ports(3)
    spec = {'ps': ['localhost:{}'.format(ports[0])],
            'worker': ['localhost:{}'.format(p) for p in ports[1:]]}
    vocab = 'abcdefgh '
    rng = np.random.RandomState(0)
    batch = rng.randint(1, len(vocab) + 1, size=(8, 12)).astype(np.int32)
    batch[3, 7:] = 0   # a padded row

    def build(cluster):
        graph = tf.Graph()
        with graph.as_default(), distributed.cluster_device(cluster):
            tf.set_random_seed(0)
            model = char_rnn.CharRNN(vocab, (8, 8), lr=0.01, cluster=cluster)
            model.create_model()
            saver = tf.train.Saver()
        return graph, model, saver

    clusters = [distributed.Cluster(spec, 'worker', task, sync=True, wait=60, threads=1)
                for task in range(2)]
    servers = [tf.train.Server(tf.train.ClusterSpec(spec), job, task,
                               config=runs.session_config(1))
               for job, task in (('ps', 0), ('worker', 0), ('worker', 1))]
    for cluster, server in zip(clusters, servers[1:]):
        cluster.server = server
    built = [build(cluster) for cluster in clusters]
    options = tf.RunOptions(timeout_in_ms=WAIT * 1000)
    with built[0][0].as_default(), clusters[0].session(built[0][2]) as chief:
        weights = {v.op.name: value for v, value in zip(
            tf.trainable_variables(), chief.run(tf.trainable_variables()))}
        with built[1][0].as_default(), clusters[1].session(built[1][2]) as worker:
            results = {}
            threads = [threading.Thread(target=lambda i, s, m: results.update({i: s.run(
                m.opt, {m.seq: batch[4 * i:4 * i + 4]}, options=options)}),
                args=(i, s, built[i][1])) for i, s in enumerate((chief, worker))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(WAIT)
            assert sorted(results) == [0, 1]
            deadline = time.time() + WAIT
            while chief.run(built[0][1].gstep) < 1 and time.time() < deadline:
                time.sleep(0.1)
            with built[0][0].as_default():
                assert chief.run(built[0][1].gstep) == 1
                after = {v.op.name: value for v, value in zip(
                    tf.trainable_variables(), chief.run(tf.trainable_variables()))}

    # The single process's gradient of the whole batch, from the same weights.
    graph, model, _ = build(None)
    with graph.as_default(), tf.Session(config=runs.session_config(1)) as sess:
        sess.run(tf.global_variables_initializer())
        for var in tf.trainable_variables():
            var.load(weights[var.op.name], sess)
        names = [var.op.name for _, var in model.grads_and_vars]
        whole = dict(zip(names, sess.run([tf.convert_to_tensor(g) for g, _ in
                                          model.grads_and_vars], {model.seq: batch})))
    assert sorted(whole) == sorted(after)

    def adam_first_step(name, grad):   # tf.train.AdamOptimizer's defaults
        beta1, beta2, epsilon, lr = 0.9, 0.999, 1e-8, 0.01
        lr_t = lr * np.sqrt(1 - beta2) / (1 - beta1)
        return weights[name] - lr_t * (1 - beta1) * grad / (np.sqrt((1 - beta2) * grad ** 2)
                                                              + epsilon)
    # The loss sums over characters: the whole batch's gradient is the sum of the halves',
    # and the update applies their mean, half of it (Adam's epsilon tells the two apart).
    for name in whole:
        mean = adam_first_step(name, whole[name] / 2)
        assert not np.allclose(after[name], weights[name]), name   # it did move
        np.testing.assert_allclose(after[name], mean, rtol=1e-5, atol=2e-7, err_msg=name)
    assert max(np.abs(adam_first_step(n, whole[n]) - after[n]).max() for n in whole) > 1e-5


def test_killed_worker_rejoins_killed_chief_resumes_sigterm_stops_all(tmp_path, tasks):
    """Sync, until stopped: a worker SIGKILLed and started again rejoins and training goes
    on; the chief SIGKILLed and started again resumes from its latest checkpoint; SIGTERM to
    the chief saves, and the worker stops with it."""
    data = write_corpus(tmp_path / 'corpus.txt', lines=200)
    ports = free_ports(3)
    argv = char_args(tmp_path, data, '--sync', '--skip-step', '1', steps=0)
    start = lambda job, i: Task(argv + cluster_flags(ports, job, i), tmp_path)  # noqa: E731
    tasks.append(start('ps', 0))
    tasks.append(start('worker', 0))
    tasks.append(start('worker', 1))
    model_dir = tmp_path / 'ckpt' / 'trump_tweets'
    tasks[2].wait_for(r'^\[worker 1\] Iter \d+')
    tasks[2].proc.kill()
    tasks[2].finish()
    tasks.append(start('worker', 1))
    tasks[3].wait_for(r'^\[worker 1\] training trump_tweets')
    lines = len(tasks[3].lines)
    tasks[3].wait_for(r'^\[worker 1\] Iter \d+', lines)   # rejoined: it trains
    first = int(tasks[1].wait_for(r'^\[worker 0\] Iter (\d+)', len(tasks[1].lines)).group(1))
    tasks[1].wait_for(r'^\[worker 0\] Iter (\d+)', len(tasks[1].lines))   # the chief goes on
    deadline = time.time() + WAIT
    while (latest_step(model_dir)[1] or 0) < 8 and time.time() < deadline:
        time.sleep(0.2)
    tasks[1].proc.kill()
    tasks[1].finish()
    path, step = latest_step(model_dir)
    assert step >= 8 and step >= first - 4
    tasks.append(start('worker', 0))
    # (The other worker may have added an update while the chief saved: the restored step.)
    resumed = int(tasks[4].wait_for(r'^\[worker 0\] resumed from {} at step (\d+)\b'.format(
        re.escape(path))).group(1))
    assert resumed == step
    lines = 0
    while int(tasks[4].wait_for(r'^\[worker 0\] Iter (\d+)\. ', lines).group(1)) < step + 2:
        lines = len(tasks[4].lines)   # (its step jumps when the other worker is faster)
    assert tasks[4].finish(signal.SIGTERM) == 0, tasks[4].text
    match = re.search(r'^\[worker 0\] interrupted at step (\d+): saved (\S+)$', tasks[4].text,
                      re.M)
    assert match, tasks[4].text
    saved, saved_step = latest_step(model_dir)   # (an update of the other worker's may
    assert saved == match.group(2) and saved_step - int(match.group(1)) in (0, 1)   # come in)
    assert tasks[3].finish() == 0, tasks[3].text
    assert re.search(r'^\[worker 1\] stopped at global step \d+ \(the chief stopped\)',
                     tasks[3].text, re.M), tasks[3].text
    assert tasks[0].finish(signal.SIGTERM) == 0
    for task in tasks[1:]:
        assert 'Traceback' not in task.text, task.text


def one_error_line(proc, pattern):
    err = proc.stdout.strip()
    assert proc.returncode == 2, err
    assert 'Traceback' not in err and re.search(pattern, err.splitlines()[-1]), err
    assert len([line for line in err.splitlines() if 'error' in line]) == 1, err


def test_port_in_use_or_unreachable_ps_is_one_line_and_exit_2(tmp_path):
    """A port taken by another program; a parameter server nobody started: one error line,
    exit status 2, within --cluster-wait."""
    data = write_corpus(tmp_path / 'corpus.txt')
    ports = free_ports(3)
    taken = socket.socket()
    taken.bind(('', ports[2]))
    taken.listen(1)
    try:
        procs = [subprocess.Popen(
            [sys.executable, SCRIPT] + char_args(tmp_path / str(i), data, '--cluster-wait', '3')
            + cluster_flags(ports, 'worker', i), cwd=str(tmp_path), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, universal_newlines=True, encoding='utf-8')
            for i in (1, 0)]
        try:
            outs = [p.communicate(timeout=WAIT)[0] for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
    finally:
        taken.close()
    for proc, out in zip(procs, outs):
        proc.stdout = out
    one_error_line(procs[0], r'^\[worker 1\] char_rnn\.py: error: worker 1 cannot listen on '
                             r'port {} \(.*\): it is in use'.format(ports[2]))
    one_error_line(procs[1], r'^\[worker 0\] char_rnn\.py: error: worker 0: parameter server '
                             r'ps 0 \(localhost:{}\) not reachable within --cluster-wait 3 s'
                   .format(ports[0]))


@pytest.mark.parametrize('flags, env, message', [
    (['--ps-hosts', 'localhost:1', '--worker-hosts', 'localhost:2', '--job-name', 'worker',
      '--task-index', '1'], None, 'task-index 1 but the cluster has 1 worker task (0 to 0)'),
    (['--ps-hosts', 'localhost:1', '--worker-hosts', 'localhost:1', '--job-name', 'ps'], None,
     'localhost:1 listed twice in the cluster'),
    (['--worker-hosts', 'localhost:2', '--job-name', 'worker'], None,
     'a cluster needs --ps-hosts, --worker-hosts and --job-name'),
    (['--sync'], None, '--sync and --replicas-to-aggregate need a cluster'),
    (['--sample', '--ps-hosts', 'localhost:1', '--worker-hosts', 'localhost:2', '--job-name',
      'worker'], None, '--sample runs in one process, not in a cluster'),
    ([], '{"cluster": {"ps": ["localhost:1"]', 'TF_CONFIG is not a valid cluster'),
    ([], json.dumps({'cluster': {'ps': ['localhost:1'], 'worker': ['localhost:2']},
                     'task': {'type': 'worker', 'index': 3}}), '--task-index 3 but'),
])
def test_bad_cluster_input_is_one_line(flags, env, message, tmp_path, capsys, monkeypatch):
    if env is not None:
        monkeypatch.setenv('TF_CONFIG', env)
    data = write_corpus(tmp_path / 'corpus.txt')
    code, out, err = run(char_args(tmp_path, data) + flags, capsys)
    assert code == 2 and 'Iter' not in out
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / 'ckpt').exists()


def test_bad_host_list_is_an_argument_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        char_rnn.parse_args(['--ps-hosts', 'localhost'])
    assert exit_.value.code == 2
    assert "expected host:port[,host:port...], not 'localhost'" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# mnist_rnn.py
# ---------------------------------------------------------------------------

def mnist_args(tmp, data, *extra, epochs=4):
    return ['--cell', 'gru', '--data-dir', str(data), '--logdir', str(tmp / 'logdir'),
            '--checkpoint-dir', str(tmp / 'ckpt'), '--batch-size', '32', '--hidden', '16',
            '--validation-size', '64', '--log-every', '5', '--epochs', str(epochs),
            '--threads', '1', '--lr', '0.01'] + list(extra)


def mnist_cluster(tmp, argv, tasks):
    """ps 0 and worker 1 started, worker 1 waiting for the chief; returns the starter."""
    ports = free_ports(3)
    start = lambda job, i: Task(argv + cluster_flags(ports, job, i), tmp, MNIST)  # noqa: E731
    tasks.append(start('ps', 0))
    tasks.append(start('worker', 1))
    tasks[1].wait_for(r'^\[worker 1\] waiting for the chief')
    return start


def test_mnist_cluster_workers_share_the_epochs_and_one_process_resumes(tmp_path, tasks):
    """1 ps + 2 workers, async, both from the start: each worker trains, only the chief tests,
    validates and writes, every epoch once; its checkpoint holds a single process's
    variables and the learnt model, and one process resumes it for another epoch."""
    data = write_mnist(tmp_path / 'data')
    # Enough epochs that worker 1, which polls for the chief's model every second, joins.
    epochs = 50
    start = mnist_cluster(tmp_path, mnist_args(tmp_path, data, epochs=epochs), tasks)
    tasks.append(start('worker', 0))
    assert tasks[2].finish() == 0, tasks[2].text
    assert tasks[1].finish() == 0, tasks[1].text
    chief, worker = tasks[2].text, tasks[1].text
    tested = [str(ep) for ep in range(1, epochs + 1)]
    assert re.findall(r'^\[worker 0\] \[tst\] ep (\d+), mean accu', chief, re.M) == tested
    assert re.findall(r'^\[worker 0\] \[val\] ep (\d+), mean accu', chief, re.M) == tested
    assert re.search(r'^\[worker 1\] \[trn\] ep \d+, step \d+, loss', worker, re.M), worker
    assert '[tst]' not in worker and '[val]' not in worker and 'Traceback' not in chief + worker
    assert tasks[0].finish(signal.SIGTERM) == 0
    history = json.loads((tmp_path / 'ckpt' / 'mnist_gru' / 'history.json').read_text())
    assert history['status'] == 'done' and len(history['epochs']) == epochs
    # The workers shared the epochs' batches (8 each): the chief trained fewer of them.
    assert 0 < history['train_steps'] < 8 * epochs
    path = str(tmp_path / 'ckpt' / 'mnist_gru' / history['checkpoint'])
    images, labels = make_digits(N_TEST, 2)
    assert checkpoint_accuracy(path, 'gru', images, labels) > 0.8   # chance: 0.1

    single = tmp_path / 'single'
    code = subprocess.run([sys.executable, MNIST] + mnist_args(single, data, epochs=1),
                          cwd=str(tmp_path), timeout=WAIT).returncode
    assert code == 0
    names = lambda p: sorted(name for name, _ in tf.train.list_variables(p))  # noqa: E731
    assert names(path) == names(tf.train.latest_checkpoint(str(single / 'ckpt' / 'mnist_gru')))
    proc = subprocess.run([sys.executable, MNIST] + mnist_args(tmp_path, data,
                                                               epochs=epochs + 1),
                          cwd=str(tmp_path), stdout=subprocess.PIPE, universal_newlines=True,
                          timeout=WAIT)
    assert proc.returncode == 0
    assert ', resuming at ep {}, step {})'.format(
        history['epoch'] + 1, history['step']) in proc.stdout, proc.stdout
    assert re.findall(r'^\[tst\] ep (\d+), mean accu', proc.stdout, re.M) == [str(epochs + 1)]


def test_mnist_cluster_sigterm_saves_stops_the_worker_and_the_same_command_resumes(tmp_path,
                                                                                  tasks):
    """--sync, a single process's checkpoint resumed by the cluster; SIGTERM to the chief
    saves and the worker stops with it; the same command resumes where it stopped."""
    data = write_mnist(tmp_path / 'data')
    assert subprocess.run([sys.executable, MNIST] + mnist_args(tmp_path, data, epochs=1),
                          cwd=str(tmp_path), timeout=WAIT).returncode == 0
    argv = mnist_args(tmp_path, data, '--sync', epochs=1000)
    start = mnist_cluster(tmp_path, argv, tasks)
    epoch = step = None   # where the first attempt stopped
    for attempt in range(2):
        chief = start('worker', 0)
        tasks.append(chief)
        resumed = chief.wait_for(r'^\[worker 0\] \[gru\] .*, resuming at ep (\d+), step (\d+)\)')
        if attempt:
            assert resumed.groups() == (str(epoch + 1), str(step))
        chief.wait_for(r'^\[worker 0\] \[val\] ep {}, '.format(int(resumed.group(1)) + 1))
        assert chief.finish(signal.SIGTERM) == 0, chief.text
        saved = re.search(r'^\[worker 0\] \[gru\] interrupted by SIGTERM at ep (\d+), step '
                          r'(\d+): saved .*; run the same command to resume$', chief.text, re.M)
        assert saved, chief.text
        history = json.loads((tmp_path / 'ckpt' / 'mnist_gru' / 'history.json').read_text())
        epoch, step = history['epoch'], history['step']
        assert (str(epoch + 1), str(step)) == saved.groups()
        assert history['status'] == 'training' and len(history['epochs']) >= 2 + attempt
        assert tasks[1].finish() == 0, tasks[1].text   # the worker stopped with the chief
        assert re.search(r'^\[worker 1\] \[gru\] stopped: the chief stopped', tasks[1].text,
                         re.M), tasks[1].text
        if not attempt:
            tasks[1] = start('worker', 1)
    for task in tasks:
        assert 'Traceback' not in task.text, task.text


@pytest.mark.parametrize('flags, message', [
    (['--seeds', '2'], '--seeds runs in one process, not in a cluster'),
    (['--cell', 'gru,lstm'], 'more than one --cell runs in one process, not in a cluster'),
])
def test_mnist_cluster_runs_one_cell_and_seed(flags, message, tmp_path):
    proc = subprocess.run(
        [sys.executable, MNIST] + mnist_args(tmp_path, tmp_path / 'data') + flags + [
            '--ps-hosts', 'localhost:1', '--worker-hosts', 'localhost:2', '--job-name', 'ps'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=WAIT)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# ---------------------------------------------------------------------------
# Issue 23: cluster.py's flags refused by argparse.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('flags,message', [
    (['--workers', '0'], 'argument --workers: must be 1 or more, not 0'),
    (['--ps', '-1'], 'argument --ps: must be 1 or more, not -1'),
    (['--port', '70000'], 'argument --port: must be in [0, 65535], not 70000'),
    (['--port', '65535'], '--port 65535: 3 tasks need ports up to 65537, above 65535'),
])
def test_cluster_flags_out_of_range_are_one_line(flags, message, tmp_path):
    proc = subprocess.run([sys.executable, LAUNCHER] + flags + ['--', 'true'], cwd=str(tmp_path),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == 'cluster.py: error: ' + message
    assert not (tmp_path / 'cluster-logs').exists()


def task_pids(marker):
    """{pid: job} of the processes whose command line holds marker (Linux /proc)."""
    pids = {}
    for pid in os.listdir('/proc'):
        try:
            with open('/proc/{}/cmdline'.format(pid), 'rb') as f:
                argv = f.read().decode('utf-8', 'replace').split('\0')
        except OSError:
            continue
        if marker in argv and '--job-name' in argv:
            pids[int(pid)] = argv[argv.index('--job-name') + 1]
    return pids


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='PR_SET_PDEATHSIG is Linux')
def test_the_tasks_end_with_their_launcher_killed_by_sigkill(tmp_path, tasks):
    """... also when cluster.py runs with SIGHUP ignored (`nohup`), which its tasks inherit."""
    write_corpus(tmp_path / 'corpus.txt')
    marker = str(tmp_path / 'ckpt')
    launcher = subprocess.Popen(   # --sync: the chief's last save needs the ps
        [sys.executable, LAUNCHER, '--workers', '1', '--sync', '--', sys.executable, SCRIPT] +
        char_args(tmp_path, tmp_path / 'corpus.txt', steps=0), cwd=str(tmp_path),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    tasks.append(launcher)
    logs = {job: tmp_path / 'cluster-logs' / '{}-0.log'.format(job) for job in ('ps', 'worker')}

    def logged(job, text):
        return logs[job].exists() and text in logs[job].read_text(encoding='utf-8')
    deadline = time.time() + WAIT
    while not (logged('ps', 'serving on') and logged('worker', 'Iter 1.')) \
            and time.time() < deadline:   # serving, and training
        time.sleep(0.2)
    started = task_pids(marker)
    assert sorted(started.values()) == ['ps', 'worker']
    folder = tmp_path / 'ckpt' / 'trump_tweets'
    while not tf.train.latest_checkpoint(str(folder)) and time.time() < deadline:
        time.sleep(0.2)
    before = latest_step(folder)[1]
    launcher.kill()
    launcher.wait()
    deadline = time.time() + distributed.LAUNCHER_GONE_GRACE + 30
    ended = {}   # job: seconds after the kill
    killed = time.time()
    while task_pids(marker) and time.time() < deadline:
        for job in set(started.values()) - set(task_pids(marker).values()) - set(ended):
            ended[job] = time.time() - killed
        time.sleep(0.2)
    ended.update({job: time.time() - killed for job in set(started.values()) - set(ended)})
    left = task_pids(marker)
    for pid in left:   # (the test leaves nothing running either way)
        os.kill(pid, signal.SIGKILL)
    assert left == {}
    assert ended['worker'] < ended['ps'], ended   # the ps outlived the chief's last save
    # the chief saved (SIGTERM) through the ps, which outlived it: an intact, later checkpoint
    path, after = latest_step(folder)
    assert after >= before and runs.checkpoint_problem(path) is None, (before, after)


def test_cluster_help_shows_the_ranges():
    proc = subprocess.run([sys.executable, LAUNCHER, '--help'], stdout=subprocess.PIPE,
                          universal_newlines=True, timeout=60)
    assert proc.returncode == 0
    assert '(range: 1 or more)' in proc.stdout and '(range: [0, 65535])' in proc.stdout


# ---------------------------------------------------------------------------
# Progress: the notebook loop's counts, in one process and on a cluster's workers
# ---------------------------------------------------------------------------

class FakeSession(object):
    """sess.run of a training step: [loss, the update's result, accuracy]."""

    def __init__(self, updates=()):
        self.updates = list(updates)

    def run(self, fetches, feed=None, options=None):
        return [1.0, self.updates.pop(0) if self.updates else None, 0.5]


class FakeCluster(object):
    def __init__(self, task, num_workers=2, per_update=1):
        self.task, self.num_workers, self.per_update = task, num_workers, per_update
        self.is_chief = task == 0
        self.follows_chief = per_update > 1 and not self.is_chief   # --sync

    def run(self, sess, fetches, feed, stop):   # the global step read after the update
        return sess.run(fetches, feed)


def test_progress_of_one_process_counts_its_steps_and_the_test_batches():
    """3 batches and 2 test batches an epoch: the notebook's steps 1-3, then its test steps
    4-5, then 6-8; an epoch trained is open (batch 3) until tested."""
    progress = distributed.Progress(None, 0, 0, 3, 2, 2)
    sess, steps = FakeSession(), []
    for _ in range(3):
        progress.run(sess, None, None, None)
        steps.append((progress.step, progress.epoch, progress.passed(2)))
    assert steps == [(1, 0, False), (2, 0, True), (3, 0, False)]
    assert progress.position() == {'epoch': 0, 'batch': 3, 'step': 3}
    assert next(progress.to_test()) == 0 and progress.epoch_steps == 3
    assert progress.tested_epoch(5) == {'epoch': 1, 'batch': 0, 'step': 5}
    assert next(progress.to_test(), None) is None and not progress.finished
    progress.run(sess, None, None, None)
    assert (progress.step, progress.epoch, progress.position()) == (
        6, 1, {'epoch': 1, 'batch': 1, 'step': 6})
    resumed = distributed.Progress(None, 4, 1, 3, 2, 2)   # history's position, the same count
    assert (resumed.done, resumed.step) == (4, 6)


def test_progress_of_a_cluster_reads_the_global_step():
    """--sync, 2 batches an update: a worker other than the chief knows no step before its
    first (no log line for it) and estimates the test batches; the chief's count jumps with
    the others' updates, past an epoch's end, which it then tests."""
    worker = distributed.Progress(FakeCluster(1, per_update=2), 7, 0, 3, 2, 2)
    assert worker.done is None and not worker.finished
    dataset = mnist_data.DataSet(np.arange(13 * 4.0).reshape(13, 2, 2), np.arange(13))
    batches = worker.batches(dataset, 3)   # its share: images 1, 3, 5, ... (6)
    assert [list(labels) for _, labels in batches] == [[1, 3, 5], [7, 9, 11]]
    worker.run(FakeSession([2]), None, None, None)
    assert (worker.done, worker.step, worker.passed(1)) == (4, 4 + 1 * 2, False)
    assert next(worker.to_test(), None) is None   # only the chief tests
    assert worker.position() == {'epoch': 1, 'batch': 1, 'step': 6}
    worker.run(FakeSession([5]), None, None, None)   # all epochs' batches: it trains on
    assert worker.done == 10 and not worker.finished   # until the chief stops (sync)
    chief = distributed.Progress(FakeCluster(0, per_update=2), 0, 0, 3, 2, 2)
    chief.run(FakeSession([1]), None, None, None)
    assert (chief.done, chief.step, chief.passed(1), next(chief.to_test(), None)) == (
        2, 2, True, None)
    chief.run(FakeSession([3]), None, None, None)   # another worker's update came between
    assert (chief.done, chief.epoch, chief.epoch_steps) == (6, 1, 2)
    assert next(chief.to_test()) == 0   # (yielded until tested)
    assert chief.tested_epoch(8) == {'epoch': 1, 'batch': 3, 'step': 8}
    assert next(chief.to_test()) == 1   # the second epoch's batches are done too
    chief.tested_epoch(13)
    assert chief.finished


def test_sync_worker_waiting_ends_when_the_chief_stopped_without_tokens(tmp_path):
    """A sync worker whose step waits for an update that will not come (the chief gone, its
    stop tokens lost) ends at its next timeout, as the chief stopped, not waiting forever."""
    ports = free_ports(3)
    spec = {'ps': ['localhost:{}'.format(ports[0])],
            'worker': ['localhost:{}'.format(p) for p in ports[1:]]}
    clusters = [distributed.Cluster(spec, 'worker', task, sync=True, wait=60, threads=1)
                for task in range(2)]
    servers = [tf.train.Server(tf.train.ClusterSpec(spec), job, task,
                               config=runs.session_config(1))
               for job, task in (('ps', 0), ('worker', 0), ('worker', 1))]
    built = []
    for cluster, server in zip(clusters, servers[1:]):
        cluster.server = server
        graph = tf.Graph()
        with graph.as_default(), distributed.cluster_device(cluster):
            model = char_rnn.CharRNN('abc ', (4,), lr=0.01, cluster=cluster)
            model.create_model()
            take_token = cluster.sync_optimizer._sync_token_queue.dequeue()
            built.append((graph, model, tf.train.Saver()))
    with built[0][0].as_default():
        clusters[0].set_stop = [tf.assign(clusters[0].stop_flag, 1)]   # no tokens
    with built[0][0].as_default(), clusters[0].session(built[0][2]):
        pass
    worker_cluster = clusters[1]
    worker_cluster.timeout = 1.0
    model = built[1][1]
    stop, result = runs.StopRequest(), []
    with built[1][0].as_default(), worker_cluster.session(built[1][2]) as worker:
        while True:   # the tokens of the chief's start: this step will wait
            try:
                worker_cluster.raw().run(take_token, options=tf.RunOptions(timeout_in_ms=500))
            except tf.errors.DeadlineExceededError:
                break
        thread = threading.Thread(target=lambda: result.append(worker_cluster.run(
            worker, [model.loss, model.opt], {model.seq: [[1, 2, 3, 4]]}, stop)), daemon=True)
        thread.start()
        thread.join(WAIT)
        assert result == [None] and stop.signum == runs.CHIEF_STOPPED


def test_progress_stops_a_worker_stopped_while_waiting():
    class Waiting(FakeCluster):
        def run(self, sess, fetches, feed, stop):
            return None
    progress = distributed.Progress(Waiting(1), 0, 0, 3, 2, 2)
    with pytest.raises(runs.Stopped):
        progress.run(FakeSession(), None, None, runs.StopRequest())
    assert progress.done is None
