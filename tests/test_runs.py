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
