"""mnist_rnn.py's runs, one per cell (and seed): their folders, checked before any training;
a run in its checkpoint folder (CellRun: the lock, history.json with the position, the figures
of every epoch and the status, the settings a resume must match, the restore, the event
files, the checkpoints); the results over cells and seeds (results.md, .csv, runs.csv,
results.png)."""
import argparse
import contextlib
import glob
import json
import os
import sys
import time

import numpy as np

import utils
from utils import tf
from tf1rnn import files, mnist_data, runs, stats
from tf1rnn.cli import UserError
from tf1rnn.runs import Stopped

HISTORY = 'history.json'
HISTORY_KEYS = ('settings', 'status', 'epoch', 'batch', 'step', 'epochs', 'losses', 'checkpoint')
CHECKPOINT = 'model.ckpt'   # the checkpoints' prefix in the cell folder
KEEP = 2   # checkpoints kept in a cell folder, the newest


# Settings added since the first checkpoints, with the value those were trained with.
SETTINGS_ADDED = {'ln_epsilon': None}


class NanStop(Exception):
    """Training met NaN or Inf; the message says where."""


def run_dirs(cell, args):
    """(checkpoint folder, train run, test run) of a cell: the notebook's train_<cell> and
    test_<cell>; with --seeds one TensorBoard run per (cell, seed), <cell>/seed<k> (the
    tags differ), so the scalars dashboard draws every cell's seeds side by side."""
    if args.seeds is None:
        return tuple(os.path.join(folder, prefix + cell) for folder, prefix in (
            (args.checkpoint_dir, 'mnist_'), (args.logdir, 'train_'), (args.logdir, 'test_')))
    run = os.path.join(args.logdir, cell, 'seed{}'.format(args.seed))
    return os.path.join(args.checkpoint_dir, 'mnist_{}_seed{}'.format(cell, args.seed)), run, run


def run_settings(cell, args, data):
    """What a checkpoint must match to be resumed."""
    return {'cell': cell, 'hidden': args.hidden, 'batch_size': args.batch_size, 'lr': args.lr,
            'forget_bias': args.forget_bias, 'clip_norm': args.clip_norm,
            'ln_smoothing': bool(args.ln_smoothing), 'seed': args.seed,
            'ln_epsilon': args.ln_epsilon if cell == 'ln_basic_lstm' else None,
            'data': mnist_data.data_fingerprint(data), 'stack': utils.STACK}


def check_outputs(args, todo):
    """Before any training: runs.check_output_dir of every folder the runs of todo [(seed,
    cell)] write to, and check_event_dirs of their event folders."""
    runs.check_output_dir(args.checkpoint_dir, '--checkpoint-dir')
    runs.check_output_dir(args.logdir, '--logdir')
    for seed, cell in todo:
        ckpt_dir, train_dir, test_dir = run_dirs(cell, argparse.Namespace(**dict(vars(args),
                                                                                 seed=seed)))
        runs.check_output_dir(ckpt_dir, '--checkpoint-dir')
        runs.check_output_dir(train_dir, '--logdir')
        runs.check_output_dir(test_dir, '--logdir')
        check_event_dirs(ckpt_dir, (train_dir, test_dir))
    if len(args.cell) > 1 or args.seeds is not None:
        runs.check_output_dir(args.results_dir or args.logdir,
                              '--results-dir' if args.results_dir else '--logdir')


def check_event_dirs(ckpt_dir, event_dirs):
    """UserError (one line) when one of event_dirs holds event files that ckpt_dir's runs did
    not write: another run's, which a run here would mix its curves into, and a fresh start
    here would delete. history.json records the event folders its run writes; one written
    before it did (or unreadable) is taken to own its cell's folders, as runs then did."""
    try:
        with open(os.path.join(ckpt_dir, HISTORY), encoding='utf-8') as f:
            recorded = json.load(f).get('event_dirs')
    except FileNotFoundError:
        recorded = []
    except (OSError, ValueError, AttributeError):
        recorded = None
    owned = ({os.path.realpath(d) for d in event_dirs} if recorded is None else
             {os.path.realpath(os.path.join(ckpt_dir, d)) for d in recorded})
    for folder in event_dirs:
        if glob.glob(os.path.join(folder, runs.EVENT_FILES)) and \
                os.path.realpath(folder) not in owned:
            raise UserError('{} holds the event files of another run (not of {}): give this '
                            'run another --logdir, or remove them'.format(folder, ckpt_dir))


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


def record_epoch(history, figures, steps, position):
    """An epoch tested in history: its figures, the training time so far and the mean loss
    of its last `steps` steps (those of this process), then the position after it."""
    recent = history['losses'][-steps or -1:]
    history['epochs'].append(dict(figures, train_seconds=history['train_seconds'],
                                  train_loss=float(np.mean(recent))))
    history.update(position)


def record_step(history, loss, seconds, **position):
    """A training step and the position after it (epoch, batch, step) in history; NanStop
    if its loss is NaN or Inf."""
    if not np.isfinite(loss):
        history['losses'].append(None)
        raise NanStop('loss is {} at ep {:d}, step {:d} (--check-numerics names the first '
                      'gradient that goes NaN or Inf)'.format(loss, position['epoch'] + 1,
                                                              position['step']))
    history['losses'].append(float(loss))
    history['train_seconds'] += seconds
    history['train_steps'] += 1
    history.update(position)


class CellRun(object):
    """A cell's training run in its checkpoint folder (mnist_rnn.train_cell):

        with CellRun(cell, args, data, out, cluster) as run:   # locked, history.json read
            (if run.finished: nothing to train; build the graph)
            with run.session(graph, threads, global_step) as sess:   # restored, or new
                run.save_each_epoch(the training loop's epochs, stop, remedies)

    The cluster's chief (or the one process) reads and writes the folder's files, the event
    files included; the other workers only train.
    """

    def __init__(self, cell, args, data, out=None, cluster=None):
        self.cell, self.args, self.out, self.cluster = cell, args, out or sys.stdout, cluster
        self.chief = cluster is None or cluster.is_chief
        self.ckpt_dir, self.train_dir, self.test_dir = run_dirs(cell, args)
        self.data, self.settings = data, run_settings(cell, args, data)
        self.train_writer = self.test_writer = None

    def __enter__(self):
        with contextlib.ExitStack() as stack:
            # One run per cell folder: two would overwrite each other's checkpoints and history.
            stack.enter_context(runs.folder_lock(self.ckpt_dir, cluster=self.cluster))
            self.history, self.finished = open_history(
                self.ckpt_dir, self.cell, self.settings, self.args.epochs,
                self.args.force or not self.chief, self.out)
            self.resumed = self.history is not None
            self.wall_start = time.time()   # graph building and restoring count too
            self.unlock = stack.pop_all()
        return self

    def __exit__(self, *exc_info):
        return self.unlock.__exit__(*exc_info)

    @contextlib.contextmanager
    def session(self, graph, threads=0, global_step=None):
        """runs.training_session of graph, its variables restored from history.json's
        checkpoint or new; then (unless finished) the run's first line, the event writers
        train_writer and test_writer, and the chief's history.json naming them. A fresh start
        deletes the event files this folder's runs wrote before (the notebook's `rm -fr
        logdir`). global_step: a cluster's count of updates, set from the position and never
        saved: one process and a cluster resume each other's checkpoints."""
        args, data = self.args, self.data
        train_batches = data['train'].num_examples // args.batch_size
        test_batches = data['test'].num_examples // args.batch_size
        if not train_batches or not test_batches:
            raise UserError('{} train and {} test images make no whole batch of --batch-size '
                            '{}'.format(data['train'].num_examples, data['test'].num_examples,
                                        args.batch_size))
        with graph.as_default():
            self.saver = runs.rotating_saver(
                os.path.join(self.ckpt_dir, CHECKPOINT), KEEP,
                [v for v in tf.global_variables() if v is not global_step])
        if not self.resumed:
            self.history = new_history(self.settings)
        history = self.history

        def start(sess):   # the chief, after initialising the variables (a cluster: each time)
            if self.resumed and not self.finished:
                self.restore(sess)
            if self.cluster:
                self.cluster.resume_step(sess, global_step,
                                         history['epoch'] * train_batches + history['batch'])

        with graph.as_default(), runs.training_session(self.cluster, self.saver, start,
                                                       threads) as self.sess:
            if self.finished:   # (a cluster's chief opened the session to stop the workers)
                yield self.sess
                return
            history.update(status='training', settings=self.settings)
            rest = data['test'].num_examples - test_batches * args.batch_size
            validation = data['validation'].num_examples
            print('[{}] {} hidden, batch {}: {} train + {} test batches per epoch{}, {}, {} '
                  'epochs ({} stack{})'.format(
                      self.cell, args.hidden, args.batch_size, train_batches, test_batches,
                      ' (+ {} test images)'.format(rest) if rest else '',
                      'validation on {} images'.format(validation) if validation else
                      'no validation (--validation-size 0: the last epoch is reported)',
                      args.epochs, utils.STACK, ', resuming at ep {}, step {}'.format(
                          history['epoch'] + 1, history['step']) if self.resumed else ''),
                  file=self.out)
            self.out.flush()
            if self.chief:
                self.begin()
            self.train_writer = runs.event_writer(self.train_dir, graph, self.chief)
            self.test_writer = (self.train_writer if self.test_dir == self.train_dir else
                                runs.event_writer(self.test_dir, graph, self.chief))
            try:
                yield self.sess
            finally:
                self.train_writer.close()
                self.test_writer.close()

    def restore(self, sess):
        """history.json's checkpoint: exactly that one (its position is the history's)."""
        path = os.path.join(self.ckpt_dir, self.history['checkpoint'])
        problem = runs.checkpoint_problem(path)
        if problem:
            raise UserError('cannot restore {} from {}: checkpoint {}: {}; --force starts it '
                            'over'.format(self.cell, self.ckpt_dir, self.history['checkpoint'],
                                          problem))
        try:
            self.saver.restore(sess, path)
        except (tf.errors.OpError, ValueError, TypeError) as e:
            raise UserError('cannot restore {} from {} ({}); --force starts it over'.format(
                self.cell, self.ckpt_dir, str(e).strip().splitlines()[0]))

    def begin(self):
        """The chief's: the event folders this run writes, in history.json (relative to the
        checkpoint folder), written at once; a fresh start's events first deleted."""
        event_dirs = sorted({self.train_dir, self.test_dir})
        check_event_dirs(self.ckpt_dir, event_dirs)
        if not self.resumed:
            for folder in event_dirs:
                runs.clear_events(folder)
        self.history['event_dirs'] = [os.path.relpath(os.path.realpath(folder),
                                                      os.path.realpath(self.ckpt_dir))
                                      for folder in event_dirs]
        runs.write_json(os.path.join(self.ckpt_dir, HISTORY), self.history)

    def save(self, status):
        """The chief's checkpoint (not on NaN: the last good one stays) and history.json."""
        history = self.history
        history['status'] = status
        if not self.chief:
            return
        now = time.time()
        history['wall_seconds'] += now - self.wall_start
        self.wall_start = now
        if status != 'nan':
            path = runs.save(self.saver, runs.raw_session(self.sess, self.cluster),
                             os.path.join(self.ckpt_dir, CHECKPOINT), history['step'],
                             write_meta_graph=False)
            history['checkpoint'] = os.path.basename(path)
        runs.write_json(os.path.join(self.ckpt_dir, HISTORY), history)

    def save_each_epoch(self, epochs, stop, remedies):
        """Runs a training loop, the generator `epochs` (it yields each epoch tested, raises
        Stopped or NanStop), and saves after each epoch and when it stops: Stopped leaves the
        status 'interrupted', NanStop 'nan' (and one error line with `remedies`). Returns
        the history."""
        history = self.history
        if self.chief:
            files.safe_mkdir(self.ckpt_dir)
        try:
            for epoch in epochs:
                self.save('done' if epoch == self.args.epochs else 'training')
                if stop:   # it came during the save, which is complete: stop right here
                    break
            if not self.chief and not stop:
                self.save('done')   # a worker's: the updates are all done
        except Stopped:
            self.save('training')
        except NanStop as e:
            history['nan'] = str(e)
            self.save('nan')
            print('{}: error: {}: {}; {}'.format(os.path.basename(sys.argv[0]), self.cell, e,
                                                 remedies), file=sys.stderr)
            sys.stderr.flush()
        if stop and history['status'] == 'training':
            history['status'] = 'interrupted'
            print('[{}] {} at ep {}, step {}{}'.format(
                self.cell, 'stopped: the chief stopped' if stop.signum == runs.CHIEF_STOPPED
                else 'interrupted by ' + stop.name, history['epoch'] + 1, history['step'],
                ': saved {}; run the same command to resume'.format(self.ckpt_dir)
                if self.chief else ''), file=self.out)
        return history


def train_all(args, todo, data, train_cell, cluster=None):
    """Trains the runs of todo [(seed, cell)] in turn, each by train_cell(cell, args with its
    seed, its seed's data, stop, cluster). Ctrl-C and SIGTERM only set `stop`: the run stops
    between two steps and saves; one during a save waits for it (runs.stop_on_signals).
    Returns run_figures of every run, None when one stopped so (exit 0; the same command
    goes on)."""
    figures = []
    with runs.stop_on_signals() as stop:
        for index, (seed, cell) in enumerate(todo):
            if args.seeds is not None:
                print('=== {}, seed {} (run {} of {})'.format(cell, seed, index + 1, len(todo)))
            if index == 0 or seed != todo[index - 1][0]:
                seed_data = mnist_data.seeded_data(data, seed)
            history = train_cell(cell, argparse.Namespace(**dict(vars(args), seed=seed)),
                                 seed_data, stop=stop, cluster=cluster)
            if history['status'] == 'interrupted':
                return None
            figures.append(run_figures(cell, seed, history))
            if stop and index + 1 < len(todo):
                print('{} after {}, seed {}: {} more run{} to train; run the same command to go '
                      'on'.format(stop.name, cell, seed, len(todo) - index - 1,
                                  's' * (len(todo) - index > 2)))
                return None
    return figures


def trained_checkpoint(cell, args):
    """(the path of history.json's checkpoint of the cell, its settings), for --export."""
    if len(args.cell) > 1 or args.seeds is not None:
        raise UserError('--export writes one model: give one --cell, and no --seeds')
    ckpt_dir = run_dirs(cell, args)[0]
    history = runs.read_history(os.path.join(ckpt_dir, HISTORY), HISTORY_KEYS, SETTINGS_ADDED)
    if not history or not history.get('checkpoint'):
        raise UserError('no checkpoint in {}: train first (python mnist_rnn.py --cell {})'.format(
            ckpt_dir, cell))
    return os.path.join(ckpt_dir, history['checkpoint']), history['settings']


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


def write_results(figures, args, data, started, order):
    """results.md, results.csv, runs.csv and results.png in --results-dir (default: the
    --logdir), and a line naming them; returns the cell rows."""
    folder = args.results_dir or args.logdir
    cells = sorted({f['name'] for f in figures}, key=order.index)
    seeds = sorted({f['seed'] for f in figures})
    facts = stats.report_facts('mnist_rnn.py', args.argv, args.data_dir or mnist_data.MNIST_DIR, data, [
        (k, getattr(args, k)) for k in ('epochs', 'batch_size', 'hidden', 'lr', 'forget_bias',
                                        'clip_norm', 'ln_epsilon', 'ln_smoothing', 'graph',
                                        'validation_size', 'train_limit', 'test_limit')],
        figures, started)
    title = 'mnist_rnn.py: {} cells, seed{} {}'.format(len(cells), 's' * (len(seeds) > 1),
                                                       ', '.join(map(str, seeds)))
    rows = stats.report_over_seeds(folder, figures, cells, title, facts, RESULTS_NOTE, MEANS,
                                   RUN_COLUMNS)[0]
    print('results: {}'.format(', '.join(os.path.join(folder, name) for name in (
        'results.md', 'results.csv', 'runs.csv', 'results.png'))))
    return rows
