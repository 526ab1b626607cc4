"""char_rnn.py's model folder, CHECKPOINT_DIR/MODEL: its checkpoints, config.json (the
vocabulary, model shape and end marker a checkpoint needs, and the settings that bind a
resume) and data.encoded (the data's ids, for a quick resume); the refusals of a resume
that would not continue the same model."""
import json
import os
import re
import sys

from tf1rnn import corpus, files, runs
from tf1rnn.cli import UserError

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


def read_corpus(path, vocab, model_dir, download=None, mode=corpus.LINES):
    """(corpus.EncodedText of path in vocab (None: its own) and mode (corpus.LINES or
    STREAM), whether it is newly encoded): from model_dir's data.encoded when that holds it
    (same data, vocabulary and mode), else from path. download: (url, sha256) of a file
    fetched when path is missing."""
    if download and not os.path.exists(path):
        print('{} is missing: downloading {}'.format(path, download[0]), file=sys.stderr)
        files.download(download[0], path, download[1])
    encoded = os.path.join(model_dir, ENCODED_FILE)
    if os.path.exists(encoded):
        text, why_not = corpus.load_encoded(encoded, corpus.file_sha256(path), vocab, mode)
        if text:
            print('{}: encoded in {}'.format(path, encoded))
            return text, False
        print('{} is {}: encoding {} again'.format(encoded, why_not, path))
    return corpus.encode_file(path, vocab, mode=mode), True


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


def validation_settings(args, cfg, data_sha256):
    """What decides the validation loss: the data, the held-out lines, the windows evaluated."""
    return {'data_sha256': data_sha256, 'seed': args.seed,
            'val_frac': args.val_frac, 'window': cfg.window,
            'windows_evaluated': cfg.batch_size * cfg.eval_batches}


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
