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
