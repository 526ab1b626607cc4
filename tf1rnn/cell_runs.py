"""mnist_rnn.py's runs, one per cell (and seed): their folders, history.json (the position,
the figures of every epoch, the status) and the settings a resume must match, and the
results over cells and seeds (results.md, .csv, runs.csv, results.png)."""
import os

from tf1rnn import mnist_data, runs, stats
from tf1rnn.cli import UserError

HISTORY = 'history.json'
HISTORY_KEYS = ('settings', 'status', 'epoch', 'batch', 'step', 'epochs', 'losses', 'checkpoint')


# Settings added since the first checkpoints, with the value those were trained with.
SETTINGS_ADDED = {'ln_epsilon': None}


def run_dirs(cell, args):
    """(checkpoint folder, train run, test run) of a cell: the notebook's train_<cell> and
    test_<cell>; with --seeds one TensorBoard run per (cell, seed), <cell>/seed<k> (the
    tags differ), so the scalars dashboard draws every cell's seeds side by side."""
    if args.seeds is None:
        return tuple(os.path.join(folder, prefix + cell) for folder, prefix in (
            (args.checkpoint_dir, 'mnist_'), (args.logdir, 'train_'), (args.logdir, 'test_')))
    run = os.path.join(args.logdir, cell, 'seed{}'.format(args.seed))
    return os.path.join(args.checkpoint_dir, 'mnist_{}_seed{}'.format(cell, args.seed)), run, run


def open_history(ckpt_dir, cell, settings, epochs, fresh, out):
    """(the history to resume, or None to start the cell over; whether the run is finished).

    fresh (--force, or a worker that is not the chief): None. A history of other settings is
    refused (one line), unless it stopped on NaN: then it is replaced. A run stopped before
    its first save left nothing to resume: it starts over (Fix: its settings bound the next
    run)."""
    history = None if fresh else runs.read_history(
        os.path.join(ckpt_dir, HISTORY), HISTORY_KEYS, SETTINGS_ADDED,
        '--force starts the cell over')
    if history is not None and not history.get('checkpoint') and history['status'] != 'nan':
        print('[{}] {} holds no checkpoint yet: starting the cell over'.format(cell, ckpt_dir),
              file=out)
        history = None
    if history is not None and history['settings'] != settings:
        if history.get('status') != 'nan':
            raise UserError('{} holds a {} run with other settings: {}; pass --force to train it '
                            'again, or another --checkpoint-dir'.format(
                                ckpt_dir, cell, runs.describe_changes(history['settings'],
                                                                      settings)))
        print('[{}] replacing the run that stopped on NaN in {} ({})'.format(
            cell, ckpt_dir, runs.describe_changes(history['settings'], settings)), file=out)
        history = None
    finished = history is not None and (history['status'] == 'nan' or
                                        len(history['epochs']) >= epochs)
    if finished:
        print('[{}] already {} in {}; --force trains it again'.format(
            cell, 'stopped on NaN' if history['status'] == 'nan'
            else 'trained for {} epochs'.format(len(history['epochs'])), ckpt_dir), file=out)
    return history, finished


def new_history(settings):
    return {'settings': settings, 'status': 'training', 'epoch': 0, 'batch': 0, 'step': 0,
            'epochs': [], 'losses': [], 'train_seconds': 0.0, 'train_steps': 0,
            'wall_seconds': 0.0, 'nan': None, 'checkpoint': None}


RUN_COLUMNS = ('cell', 'seed', 'status', 'epochs', 'best epoch (val)', 'val accu',
               'test accu at best val', 'final test accu', 'min-window test accu', 'final loss',
               'sec/step', 'train s', 'wall s')
# Per cell, the means of these run figures beside the test accuracy's statistics.
MEANS = (('min-window (mean)', 'window', '{:.4f}'), ('sec/step', 'sec/step', '{:.6f}'),
         ('wall s per run', 'wall s', '{:.1f}'))
RESULTS_NOTE = (
    'Per run, the test accuracy (all test images) of the epoch with the best validation '
    'accuracy (the last epoch without validation); per cell its mean over the runs without '
    'NaN, their standard deviation and the 95% t interval of the mean. min-window: the '
    'notebook\'s printed [tst] figure (the least accuracy of a window of test batches) in the '
    'last epoch, mean over runs. sec/step: mean seconds per training step. A seed sets the '
    'initial weights and the training order (seed 0: the file\'s order, the notebook\'s); '
    'the differences below pair runs of the same seed.')


def best_epoch(epochs):
    """(the epoch entry with the best validation accuracy, the first of equals, True), or
    (the last epoch, False) when no epoch was validated; (None, False) for no epochs."""
    validated = [e for e in epochs if e.get('validation_accuracy') is not None]
    if validated:
        return max(validated, key=lambda e: e['validation_accuracy']), True
    return (epochs[-1] if epochs else None), False


def run_figures(cell, seed, history):
    """One run's numbers for stats.report_over_seeds. The score compared is the test accuracy
    of the epoch with the best validation accuracy (the last epoch without validation), none
    after a NaN; 'row' is the run's line in runs.csv."""
    epochs, nan, fmt = history['epochs'], history['status'] == 'nan', stats.fmt
    best, validated = best_epoch(epochs)
    best, last, steps = best or {}, (epochs[-1] if epochs else {}), history['train_steps']
    score = None if nan or not best else best['test_accuracy']
    sec = history['train_seconds'] / steps if steps else None
    return {'name': cell, 'seed': seed, 'nan': nan, 'score': score, 'sec/step': sec,
            'window': last.get('test_window_accuracy'), 'wall s': history['wall_seconds'],
            'curve': [e['test_accuracy'] for e in epochs],
            # (histories from before per-epoch times: the total spread evenly)
            'seconds': [e.get('train_seconds', history['train_seconds'] * e['epoch'] / len(epochs))
                        for e in epochs],
            # What tells two runs apart: every epoch's accuracies and mean loss.
            'signature': [x for e in epochs for x in (e['test_accuracy'], e.get('train_loss', 0),
                                                      e.get('validation_accuracy') or 0)],
            'row': dict(zip(RUN_COLUMNS, (
                cell, seed, history['status'], len(epochs),
                fmt(best.get('epoch'), '{}' if validated else '{} (last: no validation)'),
                fmt(best.get('validation_accuracy')), fmt(score), fmt(last.get('test_accuracy')),
                fmt(last.get('test_window_accuracy')),
                'nan' if nan else fmt(last.get('train_loss')),
                fmt(sec, '{:.6f}'), fmt(history['train_seconds'], '{:.1f}'),
                fmt(history['wall_seconds'], '{:.1f}'))))}


def write_results(figures, args, data, folder, started, order):
    """results.md, results.csv, runs.csv and results.png in folder; returns the cell rows."""
    cells = sorted({f['name'] for f in figures}, key=order.index)
    seeds = sorted({f['seed'] for f in figures})
    facts = stats.report_facts('mnist_rnn.py', args.argv, args.data_dir or mnist_data.MNIST_DIR, data, [
        (k, getattr(args, k)) for k in ('epochs', 'batch_size', 'hidden', 'lr', 'forget_bias',
                                        'clip_norm', 'ln_epsilon', 'ln_smoothing', 'graph',
                                        'validation_size', 'train_limit', 'test_limit')],
        figures, started)
    title = 'mnist_rnn.py: {} cells, seed{} {}'.format(len(cells), 's' * (len(seeds) > 1),
                                                       ', '.join(map(str, seeds)))
    return stats.report_over_seeds(folder, figures, cells, title, facts, RESULTS_NOTE, MEANS,
                                   RUN_COLUMNS)[0]
