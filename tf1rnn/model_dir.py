"""char_rnn.py's model folder, CHECKPOINT_DIR/MODEL: its checkpoints, config.json (the
vocabulary, model shape and end marker a checkpoint needs, and the settings that bind a
resume) and data.encoded (the data's ids, for a quick resume); the refusals of a resume
that would not continue the same model."""
import contextlib
import json
import math
import os
import re
import sys

import utils
from tf1rnn import cli, corpus, files, runs, streams, windows
from tf1rnn.cli import UserError
from utils import tf

PREFIX = 'char-rnn'             # checkpoints PREFIX-STEP.*, best/PREFIX-STEP.*
CONFIG_FILE = 'config.json'
ENCODED_FILE = 'data.encoded'   # the data's ids beside the checkpoint: a quick resume
CONFIG_FORMAT = 1


def read(model_dir, set_aside=False):
    """(config.json as a dict, the latest checkpoint's path prefix), each None when there is
    none. The config binds only once a checkpoint exists (Fix: a run stopped before its first
    save bound the next one's settings): without one, (None, None). UserError when unreadable,
    or a checkpoint has no config.json. set_aside: a training run's, which renames the
    checkpoints it skips as not intact (runs.latest_checkpoint)."""
    stored, ckpt = read_config(model_dir), runs.latest_checkpoint(model_dir, PREFIX, set_aside)
    if ckpt and stored is None:
        raise UserError('{} has a checkpoint but no {} (vocabulary and model shape): not a '
                        'checkpoint of this script'.format(model_dir, CONFIG_FILE))
    return (stored, ckpt) if ckpt else (None, None)


def choose_checkpoint(model_dir, which=None):
    """The checkpoint `which` names (--checkpoint): 'latest' (None), 'best' (the lowest
    validation loss, kept in best/), a global STEP, or a PATH (a checkpoint's prefix, or one
    of its files). UserError naming what there is when it is not there."""
    if which in (None, 'latest'):
        path = runs.latest_checkpoint(model_dir, PREFIX)
    elif which == 'best':
        path = runs.latest_checkpoint(os.path.join(model_dir, 'best'), PREFIX)
        if not path:
            raise UserError('no best checkpoint in {}: it is saved at the first validation '
                            '(--eval-every)'.format(os.path.join(model_dir, 'best')))
    else:
        path = (os.path.join(model_dir, '{}-{}'.format(PREFIX, int(which))) if which.isdigit()
                else re.sub(r'\.(index|meta|data-\d+-of-\d+)$', '', which))
        if not os.path.exists(path + '.index'):
            steps = sorted(int(name[len(PREFIX) + 1:-len('.index')]) for name in
                           os.listdir(model_dir) if re.match(re.escape(PREFIX) +
                                                              r'-\d+\.index$', name))
            raise UserError('--checkpoint {}: no checkpoint {} (steps in {}: {})'.format(
                which, path, model_dir, ', '.join(map(str, steps)) or 'none'))
    return path


def read_config(model_dir):
    """The model_dir's config.json as a dict, or None when there is none."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            stored = json.load(f)
        vocab, sizes = stored['vocab'], stored['hidden_sizes']
        if not (isinstance(vocab, str) and vocab and isinstance(sizes, list) and sizes
                and all(isinstance(n, int) and n > 0 for n in sizes)):
            raise ValueError('bad vocab or hidden_sizes')
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError('{} is unreadable ({}); it holds the checkpoint\'s vocabulary and '
                        'model shape'.format(path, e))
    return stored


def write_config(model_dir, stored):
    runs.write_json(os.path.join(model_dir, CONFIG_FILE), stored)


def read_corpus(path, vocab, model_dir, download=None, mode=corpus.LINES, sha256=None):
    """(corpus.EncodedText of path in vocab (None: its own) and mode (corpus.LINES or
    STREAM), whether it is newly encoded): from model_dir's data.encoded when that holds it
    (same data, vocabulary and mode), else from path. download: (url, sha256) of a file
    fetched when path is missing; sha256: the file's, when the caller has it."""
    fetch(path, download)
    encoded = os.path.join(model_dir, ENCODED_FILE)
    if os.path.exists(encoded):
        text, why_not = corpus.load_encoded(encoded, sha256 or corpus.file_sha256(path), vocab,
                                            mode)
        if text:
            print('{}: encoded in {}'.format(path, encoded))
            return text, False
        print('{} is {}: encoding {} again'.format(encoded, why_not, path))
    return corpus.encode_file(path, vocab, mode=mode), True


def fetch(path, download=None):
    """Downloads (url, sha256) to path when path is missing."""
    if download and not os.path.exists(path):
        print('{} is missing: downloading {}'.format(path, download[0]), file=sys.stderr)
        files.download(download[0], path, download[1])


def save_corpus(text, model_dir):
    corpus.save_encoded(text, os.path.join(model_dir, ENCODED_FILE))


def resolve_shape(args, stored, model_dir, asked_sizes, default_sizes, trump_vocab, data=None):
    """(vocab, vocab_source, hidden_sizes): the checkpoint's when there is one, else the flags'
    (asked_sizes, or default_sizes; --vocab trump: trump_vocab, auto: data's own).

    Flags given explicitly must agree with the checkpoint: one clear error otherwise.
    """
    if stored is not None:
        where = os.path.join(model_dir, CONFIG_FILE)
        if asked_sizes and list(asked_sizes) != stored['hidden_sizes']:
            raise UserError('the checkpoint in {} has hidden sizes {}, this run asks for {}: '
                            'use another --model or --checkpoint-dir'.format(
                                model_dir, stored['hidden_sizes'], list(asked_sizes)))
        source = stored.get('vocab_source', 'trump' if stored['vocab'] == trump_vocab else 'auto')
        if args.vocab and (args.vocab != source
                           or (args.vocab == 'trump' and stored['vocab'] != trump_vocab)):
            raise UserError('the checkpoint in {} has a different vocabulary (--vocab {}, {} '
                            'characters, see {}): use another --model or --checkpoint-dir'.format(
                                model_dir, source, len(stored['vocab']), where))
        return stored['vocab'], source, stored['hidden_sizes']
    source = args.vocab or 'trump'
    vocab = trump_vocab if source == 'trump' else data.vocab
    return vocab, source, list(asked_sizes or default_sizes)


def check_same_validation(stored, validation, model_dir):
    """Fix: a resumed run on other data, --seed, --val-frac, --window or validation batches
    measured another validation set against the stored best loss. One clear error instead."""
    old = stored.get('validation')
    if old is None:   # written before validation settings were stored: the flags it had
        old = {key: stored[key] for key in ('seed', 'val_frac') if key in stored}
    changed = runs.describe_changes(old, {key: validation[key] for key in old
                                          if key in validation})
    if changed:
        raise UserError('{} was trained with another validation set: {}; its best validation '
                        'loss would not compare. Resume with the same data and flags, or use '
                        'another --model'.format(model_dir, changed))


class Run(object):
    """What a training run in model_dir reads before it builds the model: the stored
    config (None for a new model), the data, the vocabulary, shape and end marker, the
    validation settings; started() writes config.json and data.encoded."""

    def __init__(self, model_dir, args, cfg, asked_sizes, default_sizes, trump_vocab,
                 download=None, chief=True):
        self.model_dir, self.args, self.cfg, self.chief = model_dir, args, cfg, chief
        self.stored, _ = read(model_dir, set_aside=chief)
        resolve_kind(args, self.stored, model_dir)
        self.mode = corpus.STREAM if args.stream else corpus.LINES
        sha256 = None
        if self.stored is not None:
            # Fix: compare what the stored settings bind before the expensive part (encoding
            # a gigabyte takes about 40 s): the file's sha256 is one quick read.
            fetch(args.data, download)
            sha256 = corpus.file_sha256(args.data)
            check_same_validation(self.stored, self.validation_for(sha256), model_dir)
        vocab = (self.stored['vocab'] if self.stored else
                 None if args.vocab == 'auto' else trump_vocab)
        self.text, self.new = read_corpus(args.data, vocab, model_dir, download, self.mode,
                                          sha256)
        self.vocab, self.vocab_source, self.hidden_sizes = resolve_shape(
            args, self.stored, model_dir, asked_sizes, default_sizes, trump_vocab, self.text)
        self.end_marker = resolve_end_marker(args, self.stored, self.text)
        self.validation = self.validation_for(self.text.sha256)
        if self.stored is not None:
            check_same_validation(self.stored, self.validation, model_dir)

    def validation_for(self, sha256):
        """What decides the validation loss: the data, the held-out lines, the windows."""
        args, cfg = self.args, self.cfg
        if args.stream:   # the file's last val_frac, whole, in rows carrying their state
            return {'data_sha256': sha256, 'mode': corpus.STREAM, 'val_frac': args.val_frac,
                    'window': cfg.window, 'rows': cfg.batch_size}
        return {'data_sha256': sha256, 'seed': args.seed, 'val_frac': args.val_frac,
                'window': cfg.window, 'windows_evaluated': cfg.batch_size * cfg.eval_batches}

    def started(self, settings):
        """The run's files once its session holds the weights: data.encoded (when newly
        encoded) and config.json with this run's settings (an earlier run's are in its
        log)."""
        if not self.chief:
            return
        if self.new:
            save_corpus(self.text, self.model_dir)
        write_config(self.model_dir, dict(self.stored or {
            'format': CONFIG_FORMAT, 'vocab': self.vocab, 'vocab_source': self.vocab_source,
            'hidden_sizes': self.hidden_sizes, 'cell': self.args.cell, 'mode': self.mode,
            'data': self.args.data,
            'validation': self.validation, 'end_marker': self.end_marker},
            training=settings))


def add_model_flags(p, cells):
    """The model's kind and shape, stored in config.json: a resume or --sample reads them
    from there (resolve_kind, resolve_shape), flags given must agree."""
    add = p.add_argument
    add('--hidden-sizes', default=None, type=cli.int_list, metavar='N,N',
        help='RNN layer sizes (default: the config\'s (lecture: 128,256), or the checkpoint\'s)')
    add('--vocab', choices=['trump', 'auto'], default=None, help='trump: the lecture\'s '
        'character string; auto: every character of DATA; stored with the checkpoint '
        '(default: the checkpoint\'s, else trump; --stream: auto)')
    add('--cell', choices=cells, default=None, help='the RNN cell of each layer, '
        'stored with the checkpoint (default: the checkpoint\'s, else gru, the lecture\'s)')
    add('--stream', action='store_true', help='read DATA as one text, every character kept '
        '(line breaks, indentation): batches of contiguous streams, each window\'s final '
        'state the next one\'s initial state; validation and test: the last --val-frac '
        'and 5%% of the file, read whole. Stored with the checkpoint (docs/streams.md)')


def add_flags(p):
    """--export, --evaluate, --checkpoint (what to do with a trained model folder) and
    --end-marker (where its samples end)."""
    add = p.add_argument
    add('--export', default=None, metavar='DIR', help='write the checkpoint as a SavedModel '
        'to DIR/<version> (1, 2, ...) with signatures generate, score and step '
        '(docs/export.md), and exit, no training')
    add('--evaluate', default=None, metavar='FILE|val|test', help='the loss of the checkpoint '
        'on FILE, or on the validation or test text of its data, in nats and bits per '
        'character, and exit, no training')
    add('--checkpoint', default=None, metavar='latest|best|STEP|PATH', help='with --sample, '
        '--evaluate or --export: the latest (default), the best (lowest validation loss), the one of '
        'global step STEP, or the one at PATH')
    add('--end-marker', default=None, metavar='TEXT', help='a sample ends after this text '
        '(nothing after a line\'s end was trained); \'\': always --length characters '
        '(default: the word every line of the data ends with, as the tweets\' _E_)')


@contextlib.contextmanager
def training_run(model_dir, args, cfg, asked_sizes, default_sizes, trump_vocab, download=None,
                 cluster=None):
    """The Run of a training run in model_dir: the outputs checked first (by the chief, the
    one that writes), the folder locked for this run alone (two would rotate each other's
    checkpoints away), the data described."""
    chief = not cluster or cluster.is_chief
    if chief:
        check_outputs(args.checkpoint_dir, args.model, args.logdir)
    with runs.folder_lock(model_dir, 'another --model or --checkpoint-dir', cluster):
        run = Run(model_dir, args, cfg, asked_sizes, default_sizes, trump_vocab, download, chief)
        print(corpus.describe(run.text, args.data, run.vocab_source))
        if run.end_marker:
            print('samples end after {!r}, the end of every line of the data (--end-marker)'
                  .format(run.end_marker))
        yield run


def trained(args, asked_sizes, default_sizes, trump_vocab):
    """(config.json, vocab, hidden sizes, the --checkpoint to read) of --model: what
    --sample, --evaluate and --export read (args.cell and args.stream its own). UserError
    when it has no checkpoint."""
    folder = os.path.join(args.checkpoint_dir, args.model)
    stored, latest = read(folder)
    if not latest:
        raise UserError('no checkpoint in {}: train first (python char_rnn.py --model {})'.format(
            folder, args.model))
    resolve_kind(args, stored, folder)
    vocab, _, hidden_sizes = resolve_shape(args, stored, folder, asked_sizes, default_sizes,
                                           trump_vocab)
    ckpt = latest if args.checkpoint in (None, 'latest') else choose_checkpoint(
        folder, args.checkpoint)
    return stored, vocab, hidden_sizes, ckpt


def restore(sess, ckpt, which=None):
    """Restores ckpt, the checkpoint --checkpoint `which` named (the latest: if a running
    training rotated it away meanwhile, its successor)."""
    if which in (None, 'latest'):
        runs.restore_latest(sess, tf.train.Saver(), os.path.dirname(ckpt), PREFIX, ckpt)
    else:
        runs.restore(sess, tf.train.Saver(), ckpt)


def resolve_kind(args, stored, model_dir):
    """Sets args.cell and args.stream to the checkpoint's (flags given must agree), else to
    the flags' (GRU and lines by default); a new stream model reads every character of its
    data (--vocab auto) unless told otherwise."""
    if stored is None:
        args.cell, args.stream = args.cell or 'gru', bool(args.stream)
        if args.stream and args.vocab is None:
            args.vocab = 'auto'
        return
    cell, stream = stored.get('cell', 'gru'), stored.get('mode') == corpus.STREAM
    if args.cell and args.cell != cell:
        raise UserError('the checkpoint in {} is of --cell {}, this run asks for --cell {}: use '
                        'another --model or --checkpoint-dir'.format(model_dir, cell, args.cell))
    if args.stream and not stream:
        raise UserError('the checkpoint in {} reads its data as lines, this run asks for '
                        '--stream: use another --model or --checkpoint-dir'.format(model_dir))
    args.cell, args.stream = cell, stream


def resolve_end_marker(args, stored, text=None):
    """--end-marker if given, else the checkpoint's, else the data's (find_end_marker)."""
    if args.end_marker is not None:
        return args.end_marker
    return stored.get('end_marker', '') if stored else find_end_marker(text)


def find_end_marker(text):
    """The word (nearly) every line of a corpus.EncodedText ends with, as the tweets' _E_, or
    '': samples end there."""
    word, count = text.last_word
    return word if text.lines >= 100 and count >= 0.99 * text.lines else ''


def check_outputs(checkpoint_dir, model, logdir):
    """runs.check_output_dir of every folder training writes to."""
    runs.check_output_dir(checkpoint_dir, '--checkpoint-dir')
    for folder in (os.path.join(checkpoint_dir, model),
                   os.path.join(checkpoint_dir, model, 'best')):
        runs.check_output_dir(folder, '--checkpoint-dir')
    events = os.path.join(logdir, 'char_rnn', model)
    runs.check_output_dir(logdir, '--logdir')
    for folder in (events, os.path.join(events, 'train'), os.path.join(events, 'val')):
        runs.check_output_dir(folder, '--logdir')


class Checkpoints(object):
    """The model folder's latest checkpoints (3 kept) and its best one (best/, the lowest
    validation loss), and the best loss, a variable saved with the weights so that a resumed
    run keeps its best."""

    def __init__(self, model_dir, best_val_loss, cluster=None):
        self.model_dir, self.cluster, self.best_val_loss = model_dir, cluster, best_val_loss
        self.latest_name = os.path.join(model_dir, PREFIX)
        self.best_name = os.path.join(model_dir, 'best', PREFIX)
        self.saver = runs.rotating_saver(self.latest_name, 3)
        self.best_saver = runs.rotating_saver(self.best_name, 1)
        # A --minutes run resumed from a checkpoint written without a budget starts its own.
        fresh = ['train_seconds']
        others = [var for var in tf.global_variables() if var.op.name not in fresh]
        self.fresh = (fresh, tf.train.Saver(others) if others != tf.global_variables() else None)
        self.new_best = tf.placeholder(tf.float32, [], name='new_best')
        self.set_best = tf.assign(best_val_loss, self.new_best)

    def resume(self, sess, gstep):
        """Restores the latest intact checkpoint, if any, with a line saying so."""
        ckpt = runs.latest_checkpoint(self.model_dir, PREFIX)
        if ckpt:
            runs.restore(sess, self.saver, ckpt, self.fresh)
            step, best = sess.run([gstep, self.best_val_loss])
            print('resumed from {} at step {}{}'.format(ckpt, step, '' if math.isinf(best)
                  else ', best validation loss {:.4f} nats/char'.format(best)))

    def save_latest(self, sess, step):
        return runs.save(self.saver, runs.raw_session(sess, self.cluster), self.latest_name,
                         step)

    def save_best(self, sess, step, loss):
        sess.run(self.set_best, {self.new_best: loss})
        runs.save(self.best_saver, runs.raw_session(sess, self.cluster), self.best_name, step)

    def done(self, step, best):
        """The line a run that reached its last step ends with."""
        return 'done at step {}: latest checkpoint {}{}'.format(
            step, tf.train.latest_checkpoint(self.model_dir), '' if math.isinf(best) else
            ', best validation loss {:.4f} nats/char ({})'.format(
                best, tf.train.latest_checkpoint(os.path.dirname(self.best_name))))


def evaluation_data(which, stored, vocab, rows, window):
    """(name, corpus.EncodedText, batches) that --evaluate scores: a file (which: its path),
    or the validation or test text ('val', 'test') of the model's data, encoded as the
    model reads its data. A stream model's text is read whole as training reads its
    validation text (streams.EvalBatches, rows carrying their state); a line model's lines
    each whole from the zero state (one window a line)."""
    mode, val = stored.get('mode', corpus.LINES), stored.get('validation', {})
    rows, window = val.get('rows', rows), val.get('window', window)
    if which not in ('val', 'test'):
        text = corpus.encode_file(which, vocab, mode=mode)
        if mode == corpus.STREAM:
            return which, text, streams.EvalBatches(text.ids, rows, window)
        lines = windows.Corpus(text, int(text.lengths.max()), 0, 0, which).train
        return which, text, lines.fixed_batches(rows)
    path = stored.get('data')
    text = corpus.encode_file(path, vocab, mode=mode)
    if val.get('data_sha256') not in (None, text.sha256):
        raise UserError('{} has changed since the model was trained on it: its {} text is '
                        'gone'.format(path, which))
    name = 'the {} text of {}'.format(which, path)
    if mode == corpus.STREAM:
        split = streams.Split(text.ids, val['val_frac'], streams.TEST_FRAC, name=path)
        return name, text, streams.EvalBatches(split.val if which == 'val' else split.test,
                                               rows, window)
    if which == 'test':
        raise UserError('a line model holds out validation lines only: --evaluate val, or a '
                        'file')
    held_out = windows.Corpus(text, int(text.lengths.max()), val.get('val_frac', 0.05),
                              val.get('seed', 0), path).val
    return name, text, held_out.fixed_batches(rows)


def evaluation_report(name, text, batches, loss, ckpt, stream):
    """--evaluate's line: the characters scored and those outside the vocabulary (counted,
    not scored), the loss in nats and bits per character, the checkpoint."""
    dropped = sum(text.dropped.values())
    return '{}: {:,} characters scored{}: {:.4f} nats/char, {:.4f} bits/char ({})'.format(
        name, sum(utils.num_targets(batch[0] if stream else batch) for batch in batches),
        ', {:,} outside the vocabulary not scored ({})'.format(dropped, ', '.join(
            '{!r} {:,}'.format(ch, n) for ch, n in text.dropped.most_common(5)))
        if dropped else '', loss, streams.bits(loss), ckpt)
