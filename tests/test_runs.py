"""tf1rnn/runs.py: output folders, checkpoints that fail to save or to read, signals, locks."""
import os

import pytest

from tf1rnn import cli, runs


def test_check_output_dir_takes_folders_and_makeable_paths(tmp_path):
    runs.check_output_dir(str(tmp_path), '--x')
    runs.check_output_dir(str(tmp_path / 'new' / 'deeper'), '--x')
    assert not (tmp_path / 'new').exists()   # checks, makes nothing


def test_check_output_dir_refuses_a_folder_it_cannot_write(tmp_path, monkeypatch):
    # (root ignores permissions, so the refusal of os.access is simulated)
    monkeypatch.setattr(runs.os, 'access', lambda path, mode: False)
    with pytest.raises(cli.UserError, match=r'^--x {}: the folder is not writable$'.format(
            str(tmp_path))):
        runs.check_output_dir(str(tmp_path), '--x')
    with pytest.raises(cli.UserError, match=r'^--x {0}/a/b: cannot make it, {0} is not '
                                            r'writable$'.format(str(tmp_path))):
        runs.check_output_dir(str(tmp_path / 'a' / 'b'), '--x')


# ---------------------------------------------------------------------------
# Issue 23, class 3: a save that fails (a full disk) stops training, leaves the folder as it was.
# ---------------------------------------------------------------------------

def fail_saves(monkeypatch, tf, should_fail, error):
    """Saver.save, for the saves should_fail(global_step) picks, writes part of what a real
    save writes (TensorFlow's temporary names, a half index, a state file naming the new
    checkpoint), then raises error, as a full disk does."""
    original = tf.train.Saver.save

    def save(self, sess, save_path, global_step=None, **kwargs):
        if not should_fail(global_step):
            return original(self, sess, save_path, global_step=global_step, **kwargs)
        prefix = '{}-{}'.format(save_path, global_step)
        folder = os.path.dirname(save_path)
        with open(prefix + '.data-00000-of-00001.tempstate8731', 'wb') as f:
            f.write(b'\0' * 100)
        os.makedirs(prefix + '_temp_5f0e/part-00000-of-00001.data-00000-of-00001')
        with open(prefix + '.index', 'wb') as f:
            f.write(b'half')
        with open(os.path.join(folder, 'checkpoint.tmp9e1c'), 'w') as f:
            f.write('half')
        with open(os.path.join(folder, 'checkpoint'), 'w') as f:
            f.write('model_checkpoint_path: "{}"\n'.format(os.path.basename(prefix)))
        raise error
    monkeypatch.setattr(tf.train.Saver, 'save', save)


def leftovers(folder):
    """Temporary files and folders of a save anywhere under folder."""
    return [os.path.join(root, name) for root, dirs, names in os.walk(str(folder))
            for name in dirs + names if '.tmp' in name or '_temp' in name or 'tempstate' in name]


# ---------------------------------------------------------------------------
# Issue 23, class 5: signals and pipes at the edges.
# ---------------------------------------------------------------------------

import signal


def test_stop_on_signals_leaves_an_inherited_ignored_sigint_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)   # as nohup or `cmd &` leave it
    try:
        with runs.stop_on_signals() as stop:
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_IGN, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)   # ignored: no stop
            assert not stop
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        cli.quiet_interrupts()   # the scripts' first line leaves it ignored too
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


class ClosingPipe(object):
    """A stdout whose reader goes away after `lines` writes."""

    def __init__(self, lines):
        self.lines, self.written = lines, []

    def write(self, text):
        if len(self.written) >= self.lines:
            raise BrokenPipeError(32, 'Broken pipe')
        self.written.append(text)
        return len(text)

    def flush(self):
        if len(self.written) >= self.lines:
            raise BrokenPipeError(32, 'Broken pipe')


def test_run_main_ends_quietly_when_stdout_closes_outside_a_training_loop(capsys):
    def main(argv):
        print('first')
        print('second')
        raise AssertionError('not reached')
    pipe = ClosingPipe(1)
    import sys
    stdout, sys.stdout = sys.stdout, pipe
    try:
        assert cli.run_main(main) == cli.PIPE_EXIT == 141
    finally:
        sys.stdout = stdout
    assert pipe.written == ['first']


# ---------------------------------------------------------------------------
# Issue 23, class 8: a file system without locks.
# ---------------------------------------------------------------------------

import errno


@pytest.mark.parametrize('code', [errno.ENOLCK, errno.EOPNOTSUPP])
def test_folder_lock_on_a_file_system_without_locks_is_one_line(code, tmp_path, monkeypatch):
    import fcntl

    def flock(fd, operation):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(fcntl, 'flock', flock)
    folder = str(tmp_path / 'new' / 'model')
    with pytest.raises(cli.UserError) as e:
        with runs.folder_lock(folder, 'another --model'):
            raise AssertionError('not reached')
    assert str(e.value) == (
        '{} cannot be locked ({}): its file system does not support locks (a network share?), '
        'and a second run there would overwrite this one\'s checkpoints; use a folder on a '
        'local disk (another --model)'.format(folder, os.strerror(code)))
    assert not (tmp_path / 'new').exists()   # nothing left behind


# ---------------------------------------------------------------------------
# Issue 23, class 6: the checkpoints an earlier process left rotate too.
# ---------------------------------------------------------------------------

def test_rotating_saver_rotates_the_checkpoints_of_an_earlier_process(tmp_path):
    """char_rnn.py's savers and mnist_rnn.py's: a Saver made anew (a restarted run) counts
    the checkpoints the state file names, so max_to_keep holds across processes; one of them
    gone (set aside) is skipped."""
    from utils import tf
    prefix = str(tmp_path / 'model' / 'ckpt')
    os.makedirs(os.path.dirname(prefix))

    def run(steps):   # one process: a graph, a session, a saver, saves at steps
        with tf.Graph().as_default():
            tf.Variable(1.0, name='w')
            saver = runs.rotating_saver(prefix, 2)
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                for step in steps:
                    runs.save(saver, sess, prefix, step)

    def kept():
        return sorted(int(name.split('-')[1].split('.')[0]) for name in os.listdir(
            os.path.dirname(prefix)) if name.endswith('.index'))

    run([1, 2, 3])
    assert kept() == [2, 3]
    run([4])
    assert kept() == [3, 4]
    for name in os.listdir(os.path.dirname(prefix)):   # checkpoint 3 set aside
        if name.startswith('ckpt-3.'):
            os.replace(os.path.join(os.path.dirname(prefix), name),
                       os.path.join(os.path.dirname(prefix), name + '.skipped'))
    run([5, 6])
    assert kept() == [5, 6]
    assert [os.path.basename(p) for p in tf.train.get_checkpoint_state(
        os.path.dirname(prefix)).all_model_checkpoint_paths] == ['ckpt-5', 'ckpt-6']
