"""tf1rnn/cell_runs.py: mnist_rnn.py's runs, their history.json and event folders, the figures
compared (the runs themselves: tests/test_mnist_rnn.py)."""
import json
import os

import pytest

from tf1rnn import cell_runs, cli


def test_the_reported_epoch_is_validations_best_not_tests():
    epochs = [dict(epoch=1, test_accuracy=0.90, validation_accuracy=0.91),
              dict(epoch=2, test_accuracy=0.95, validation_accuracy=0.89),   # best on test
              dict(epoch=3, test_accuracy=0.93, validation_accuracy=0.91)]   # ties epoch 1
    history = {'status': 'done', 'epochs': epochs, 'train_seconds': 1.0, 'train_steps': 10,
               'wall_seconds': 2.0}
    figures = cell_runs.run_figures('gru', 0, history)
    row = figures['row']
    assert figures['score'] == 0.90
    assert (row['best epoch (val)'], row['val accu'], row['test accu at best val'],
            row['final test accu']) == ('1', '0.9100', '0.9000', '0.9300')
    assert '0.9500' not in row.values()
    # Without validation (--validation-size 0) it says so and reports the last epoch.
    for epoch in epochs:
        epoch['validation_accuracy'] = None
    figures = cell_runs.run_figures('gru', 0, history)
    assert figures['score'] == 0.93
    assert (figures['row']['best epoch (val)'], figures['row']['val accu']) == (
        '3 (last: no validation)', '')


# ---------------------------------------------------------------------------
# Event folders: a run writes only into those its checkpoint folder's history.json names,
# or into folders without event files.
# ---------------------------------------------------------------------------

def cell_folders(tmp_path, history=None):
    """A checkpoint folder (with history.json when given) and two event folders, each with an
    event file."""
    ckpt_dir = tmp_path / 'checkpoints' / 'mnist_gru'
    ckpt_dir.mkdir(parents=True)
    if history is not None:
        (ckpt_dir / cell_runs.HISTORY).write_text(json.dumps(history))
    event_dirs = [str(tmp_path / 'logdir' / name) for name in ('train_gru', 'test_gru')]
    for folder in event_dirs:
        os.makedirs(folder)
        open(os.path.join(folder, 'events.out.tfevents.1.host'), 'w').close()
    return str(ckpt_dir), event_dirs


@pytest.mark.parametrize('history', [
    {'event_dirs': [os.path.join('..', '..', 'logdir', 'test_gru'),
                    os.path.join('..', '..', 'logdir', 'train_gru')]},
    {'status': 'done'},   # written before history.json named its event folders: its cell's
])
def test_event_folders_of_this_checkpoint_folder_are_its_own(tmp_path, history):
    ckpt_dir, event_dirs = cell_folders(tmp_path, history)
    cell_runs.check_event_dirs(ckpt_dir, event_dirs)


@pytest.mark.parametrize('history', [
    None,   # a new checkpoint folder
    {'event_dirs': [os.path.join('..', '..', 'logdir2', 'train_gru')]},   # it wrote elsewhere
])
def test_event_folders_holding_another_runs_events_are_refused_in_one_line(tmp_path, history):
    ckpt_dir, event_dirs = cell_folders(tmp_path, history)
    with pytest.raises(cli.UserError) as e:
        cell_runs.check_event_dirs(ckpt_dir, event_dirs)
    assert str(e.value) == (
        '{} holds the event files of another run (not of {}): give this run another --logdir, '
        'or remove them'.format(event_dirs[0], ckpt_dir))
    for folder in event_dirs:   # folders without event files are free
        os.remove(os.path.join(folder, 'events.out.tfevents.1.host'))
    cell_runs.check_event_dirs(ckpt_dir, event_dirs)
