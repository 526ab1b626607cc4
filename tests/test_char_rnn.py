"""char_rnn.py on a tiny generated corpus: the model, its fixes, training, resume, Ctrl-C, bad input."""
import glob
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

import char_rnn
import utils
from tf1rnn import cli, corpus, decoding, model_dir, runs
from tf1rnn.model_dir import CONFIG_FILE, ENCODED_FILE
import lecture_reference
from utils import tf

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'char_rnn.py')
WORDS = ['make', 'america', 'great', 'again', 'Fake', 'news', 'Hillary', 'crooked', 'I', 'will',
         'win', 'big', 'THANK', 'you', '@IvankaTrump', '#MAGA', '\U0001f4c8', '\u27a1']


def write_corpus(path, lines=120, seed=0, extra=''):
    """Tweets of random words; every third ends in '!', every fifth has ' & '."""
    rng = random.Random(seed)
    text = []
    for i in range(lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 9))]
        if i % 5 == 0:
            words.insert(1, '&')
        text.append(' '.join(words) + ('!' if i % 3 == 0 else '') + extra)
    with open(str(path), 'w', encoding='utf-8') as f:
        f.write('\n'.join(text) + '\n')
    return str(path)


def tiny_args(tmp, data, *extra, steps=6):
    return ['--data', str(data), '--config', 'tiny', '--steps', str(steps),
            '--checkpoint-dir', str(tmp / 'ckpt'), '--logdir', str(tmp / 'logdir'),
            '--skip-step', '1', '--sample-every', '3', '--eval-every', '3',
            '--threads', '2'] + list(extra)


def run(argv, capsys):
    """char_rnn.py in this process: (exit code, stdout, stderr)."""
    code = cli.run_main(char_rnn.main, argv)
    out, err = capsys.readouterr()
    return code, out, err


def make_model(vocab, sizes=(8, 8), seed=0, **kwargs):
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(seed)
        model = char_rnn.CharRNN(vocab, sizes, **kwargs)
        model.create_model()
        init = tf.global_variables_initializer()
    sess = tf.Session(graph=graph, config=runs.session_config(2))
    sess.run(init)
    return model, sess


def files_state(folder):
    """{path: bytes} of every file under folder: to check nothing was written."""
    state = {}
    for root, _, names in os.walk(str(folder)):
        for name in names:
            path = os.path.join(root, name)
            with open(path, 'rb') as f:
                state[path] = f.read()
    return state


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A tiny model trained 6 steps with --vocab auto: (tmp dir, corpus, stdout)."""
    tmp = tmp_path_factory.mktemp('trained')
    data = write_corpus(tmp / 'corpus.txt')
    code = cli.run_main(char_rnn.main, tiny_args(tmp, data, '--vocab', 'auto'))
    assert code == 0
    return tmp, data


def copy_trained(trained, tmp_path):
    src, data = trained
    shutil.copytree(str(src / 'ckpt'), str(tmp_path / 'ckpt'))
    return data


# ---------------------------------------------------------------------------
# The model.
# ---------------------------------------------------------------------------

def test_graph_builds_with_the_lectures_shapes():
    vocab = char_rnn.TRUMP_VOCAB
    model, sess = make_model(vocab, (12, 20))
    with sess.graph.as_default():
        shapes = {v.op.name: v.shape.as_list() for v in tf.trainable_variables()}
    assert shapes['rnn/multi_rnn_cell/cell_0/gru_cell/gates/kernel'] == [len(vocab) + 12, 24]
    assert shapes['rnn/multi_rnn_cell/cell_1/gru_cell/candidate/kernel'] == [12 + 20, 20]
    assert shapes['dense/kernel'] == [20, len(vocab)]
    assert len(shapes) == 10   # 2 GRU layers x 4 + dense: the generator made no variables of its own
    assert [s.shape.as_list() for s in model.in_state] == [[None, 12], [None, 20]]


def test_one_hot_depth_fix_last_char_is_not_padding():
    vocab = 'abc'   # 'c' is id 3, the last: the lecture's one_hot(seq, 3) made it all zeros
    model, sess = make_model(vocab)
    batch = [[1, 2, 3, 3, 0, 0], [3, 0, 0, 0, 0, 0]]
    one_hot, length, targets = sess.run([model.one_hot, model.length, model.num_targets],
                                        {model.seq: batch})
    assert one_hot.shape == (2, 6, 3)
    assert one_hot[0, 2].tolist() == [0, 0, 1] and one_hot[1, 0].tolist() == [0, 0, 1]
    assert one_hot[0, 0].tolist() == [1, 0, 0]
    assert not one_hot[0, 4:].any() and not one_hot[1, 1:].any()   # padding is all zeros
    assert length.tolist() == [4, 1]                                 # and is not counted
    assert targets == 3
    # Padding adds nothing to the loss: a padded row costs what the bare row costs.
    padded = sess.run(model.loss, {model.seq: [[1, 3, 2, 3, 0, 0, 0]]})
    bare = sess.run(model.loss, {model.seq: [[1, 3, 2, 3]]})
    assert padded == pytest.approx(bare, rel=1e-5)
    # The last character is predicted too: it has a logit, and a target costs something.
    assert sess.run(model.logits, {model.seq: [[3, 3]]}).shape[-1] == 3
    assert sess.run(model.loss, {model.seq: [[1, 3]]}) > 0


def _gradients(model, sess, batch):
    with sess.graph.as_default():
        grads = tf.gradients(model.loss, tf.trainable_variables())
    return sess.run(grads, {model.seq: batch})


@pytest.mark.parametrize('graph', ['fast', 'lecture'])
def test_padding_gets_exactly_zero_gradient(graph):
    """A padded batch trains exactly as its rows without the padding, to the gradient."""
    model, sess = make_model('abcdefg', (8, 8), seed=1, graph=graph)
    short, full = [1, 5, 2, 7, 3], [2, 2, 6, 1, 4, 3, 5, 7, 1]
    padded = _gradients(model, sess, [short + [0] * 4, full])
    alone = [a + b for a, b in zip(_gradients(model, sess, [short]),
                                   _gradients(model, sess, [full]))]
    for got, want in zip(padded, alone):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    # A row that is all padding but its first character has no target: no gradient at all.
    assert all(not np.any(g) for g in _gradients(model, sess, [[3, 0, 0, 0]]))


def test_loss_lecture_reproduces_the_padding_gradient():
    """--loss lecture: a padded target costs nothing but still pulls every weight toward
    softmax(logits), as the lecture's loss did; the loss values agree with the masked one."""
    masked, sess = make_model('abcdefg', (8, 8), seed=1)
    lecture, lecture_sess = make_model('abcdefg', (8, 8), seed=1, loss='lecture')
    assert lecture.graph == 'lecture'   # the fast graph has only the masked loss
    batch = [[1, 5, 2, 7, 3, 0, 0, 0, 0], [2, 2, 6, 1, 4, 3, 5, 7, 1]]
    assert (lecture_sess.run(lecture.loss, {lecture.seq: batch}) ==
            pytest.approx(sess.run(masked.loss, {masked.seq: batch}), rel=1e-5))
    # A row that is padding after its first character: loss 0, and yet a gradient.
    assert lecture_sess.run(lecture.loss, {lecture.seq: [[3, 0, 0, 0]]}) == 0
    grads = _gradients(lecture, lecture_sess, [[3, 0, 0, 0]])
    assert all(np.any(g) for g in grads)
    # The dense bias's: the sum over the three padded positions of softmax(logits).
    with lecture_sess.graph.as_default():
        names = [v.op.name for v in tf.trainable_variables()]
        probs = tf.reduce_sum(tf.nn.softmax(lecture.logits[0, :-1]), 0)
    want = lecture_sess.run(probs, {lecture.seq: [[3, 0, 0, 0]]})
    np.testing.assert_allclose(grads[names.index('dense/bias')], want, rtol=1e-5)


def test_first_loss_per_char_is_about_ln_vocab_size():
    vocab = char_rnn.TRUMP_VOCAB
    model, sess = make_model(vocab, (16, 16))
    rng = np.random.RandomState(0)
    batch = rng.randint(1, len(vocab) + 1, size=(8, 20))
    batch[:, 15:] = 0
    loss, per_char = sess.run([model.loss, model.loss_per_char], {model.seq: batch})
    assert per_char == pytest.approx(loss / (8 * 14))
    assert abs(per_char - math.log(len(vocab))) < 0.1


def test_a_few_steps_lower_the_loss():
    model, sess = make_model('abcd', lr=0.02)
    feed = {model.seq: [[1, 2, 3, 4] * 5, [2, 3, 4, 1] * 4 + [0] * 4]}
    first = sess.run(model.loss_per_char, feed)
    for _ in range(30):
        sess.run(model.opt, feed)
    assert sess.run(model.gstep) == 30
    assert sess.run(model.loss_per_char, feed) < first - 0.5


def test_learning_rate_decay_clip_and_dropout_flags():
    model, sess = make_model('abcd', lr=0.1, lr_decay=0.5, decay_steps=2, clip=0.01,
                             keep_prob=0.5)
    feed = {model.seq: [[1, 2, 3, 4, 1, 2]]}
    # The update applies the clipped gradients: global norm 0.01, from a larger one.
    applied, norm = sess.run([[g for g, _ in model.grads_and_vars], model.grad_norm], feed)
    assert norm > 0.05
    assert np.sqrt(sum(np.sum(np.square(g)) for g in applied)) == pytest.approx(0.01, rel=1e-4)
    for _ in range(4):
        sess.run(model.opt, feed)
    assert sess.run(model.learning_rate) == pytest.approx(0.025)
    # Dropout only when keep_prob is fed (training); evaluation is deterministic.
    assert sess.run(model.loss, feed) == sess.run(model.loss, feed)
    feed[model.keep_prob] = 0.5
    assert len({float(sess.run(model.loss, feed)) for _ in range(4)}) > 1


def test_warmup_and_cosine_decay_set_the_size_of_the_updates():
    model, sess = make_model('abcd', lr=0.1, lr_decay='cosine', decay_steps=4, warmup=2)
    feed = {model.seq: [[1, 2, 3, 4, 1, 2], [2, 1, 4, 3, 0, 0]]}
    weights = [v for _, v in model.grads_and_vars]
    before = sess.run(weights)
    sess.run(model.opt, feed)
    # Adam's first update moves every weight with a gradient by the learning rate: here
    # half of it (warm-up 1 of 2 steps).
    moved = np.concatenate([np.abs(a - b).ravel() for a, b in zip(sess.run(weights), before)])
    assert moved.max() == pytest.approx(0.05, rel=1e-3)
    for _ in range(5):
        sess.run(model.opt, feed)
    assert sess.run(model.learning_rate) == pytest.approx(0.01)   # a tenth, after decay_steps


def test_ten_minutes_preset_is_printed_stored_and_has_its_own_folder(tmp_path, capsys):
    data = write_corpus(tmp_path / 'corpus.txt')
    code, out, _ = run(['--data', data, '--config', 'ten-minutes', '--vocab', 'auto',
                        '--hidden-sizes', '8,8', '--batch-size', '4', '--window', '10',
                        '--steps', '2', '--eval-every', '1', '--eval-batches', '1',
                        '--checkpoint-dir', str(tmp_path / 'ckpt'),
                        '--logdir', str(tmp_path / 'logdir')], capsys)
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith('settings: '))
    assert 'config ten-minutes' in line and 'lr_decay cosine' in line and 'lr 0.002' in line
    with open(str(tmp_path / 'ckpt' / 'trump_tweets-ten-minutes' / 'config.json')) as f:
        training = json.load(f)['training']
    assert training == dict(training, config='ten-minutes', lr=0.002, lr_decay='cosine',
                            clip=5.0, warmup=100, hidden_sizes=[8, 8], batch_size=4, steps=2,
                            minutes=10)


def test_a_time_budget_ends_the_run_and_its_cosine_and_a_resume_goes_on_with_it(tmp_path,
                                                                                 capsys):
    """--minutes: the run ends when its wall time is spent, the cosine decay follows the
    fraction spent (a tenth of the rate at the end), and a resumed run counts the time
    trained before it."""
    model, sess = make_model('abcd', lr=0.1, lr_decay='cosine', decay_steps=None)
    rates = [sess.run(model.learning_rate, {model.progress: p}) for p in (0, 0.5, 1, 2)]
    assert rates == pytest.approx([0.1, 0.055, 0.01, 0.01])
    data = write_corpus(tmp_path / 'corpus.txt')
    def argv(minutes):
        return tiny_args(tmp_path, data, '--minutes', minutes, '--lr-decay', 'cosine',
                         '--sample-every', '0', '--eval-every', '100000', '--skip-step', '1000',
                         steps=0)

    code, out, err = run(argv('0.05'), capsys)
    assert code == 0 and 'until 0.05 minutes' in out and 'done at step' in out, err
    step = int(re.search(r'done at step (\d+)', out).group(1))
    folder = str(tmp_path / 'ckpt' / 'trump_tweets')
    seconds = tf.train.load_variable(tf.train.latest_checkpoint(folder), 'train_seconds')
    assert 3 <= seconds < 3 + 30
    code, out, err = run(argv('0.05'), capsys)   # the budget is spent
    assert code == 0 and 'minutes already trained (--minutes 0.05): nothing to train' in out
    more = '{:.4f}'.format((seconds + 4) / 60)   # 4 s more than spent (a loaded machine's)
    code, out, err = run(argv(more), capsys)
    assert code == 0 and 'resumed from' in out, err
    assert int(re.search(r'done at step (\d+)', out).group(1)) > step
    assert tf.train.load_variable(tf.train.latest_checkpoint(folder),
                                  'train_seconds') >= seconds + 4


@pytest.mark.parametrize('sampling', ['lecture', 'softmax'])
def test_generation_has_the_requested_length_in_vocabulary_chars(sampling):
    vocab = char_rnn.TRUMP_VOCAB
    model, sess = make_model(vocab, sampling=sampling)
    sentences = model.generate(sess, ['Hillary', 'I', '@'], 37)
    for seed, sentence in zip(['Hillary', 'I', '@'], sentences):
        assert sentence.startswith(seed) and len(sentence) == len(seed) + 37
        assert set(sentence) <= set(vocab)
    online = online_infer(model, sess, ['T'], 9)
    assert len(online[0]) == 10 and set(online[0]) <= set(vocab)


def test_sample_greedy_top_k_and_checkpoint_flags(trained, tmp_path, capsys):
    """--greedy prints the same text every run; --checkpoint best, STEP, a path or latest
    pick the checkpoint (another one, other text); a missing one is one line naming those
    there are."""
    copy_trained(trained, tmp_path)
    base = ['--sample', '--checkpoint-dir', str(tmp_path / 'ckpt'), '--prime', 'I w', '-n', '30']
    texts = {}
    for which in ('latest', 'best', '3', str(tmp_path / 'ckpt' / 'trump_tweets' / 'char-rnn-3'),
                  None):
        code, out, err = run(base + ['--greedy'] + (['--checkpoint', which] if which else []),
                             capsys)
        assert code == 0, err
        texts[which] = out
    assert texts[None] == texts['latest'] == texts['best']   # step 6 was the best
    assert texts['3'] == texts[str(tmp_path / 'ckpt' / 'trump_tweets' / 'char-rnn-3')]
    assert texts['3'] != texts['latest']
    code, out, err = run(base + ['--top-k', '1'], capsys)
    assert code == 0 and out == texts['latest'], err   # top-1 is greedy
    code, out, err = run(base + ['--checkpoint', '5'], capsys)
    assert code == 2 and err.strip().endswith('(steps in {}: 3, 6)'.format(
        tmp_path / 'ckpt' / 'trump_tweets')), err
    code, out, err = run(tiny_args(tmp_path, 'x.txt', '--checkpoint', 'best'), capsys)
    assert code == 2 and '--checkpoint needs --sample, --evaluate or --export' in err


def test_samples_end_at_the_datas_end_marker(tmp_path, capsys):
    """Every tweet ends with _E_: what a sample draws after it was never trained."""
    lines = ['word {} _E_'.format(i) for i in range(150)]
    for some, marker in ((lines, '_E_'), (lines[:99], ''),   # too few lines to tell
                         (lines[:140] + ['x y'] * 10, '')):
        assert model_dir.find_end_marker(corpus.encode_lines(some)) == marker
    model, sess = make_model('abcd', (8, 8), seed=2)
    cut = model.generate(sess, ['ab'] * 40, 30, end='c')
    whole = model.generate(sess, ['ab'] * 40, 30)
    assert all(len(text) == 32 for text in whole)
    assert any(len(text) < 32 for text in cut)
    for text in cut:
        generated = text[2:]
        assert (generated.count('c') == 1 and generated.endswith('c')) or (
            'c' not in generated and len(generated) == 30)
    data = tmp_path / 'tweets.txt'
    data.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    code, out, err = run(tiny_args(tmp_path, data, steps=3), capsys)
    assert code == 0, err
    assert "samples end after '_E_'" in out
    stored = json.loads((tmp_path / 'ckpt' / 'trump_tweets' / 'config.json').read_text('utf-8'))
    assert stored['end_marker'] == '_E_'


def online_infer(self, sess, seeds, length=200, temperature=None):
    """The lecture's generator, one session call per character, on a CharRNN (`self`): the
    reference generate() (one call in all) is tested against. Returns the sentences.
    Fix: the first call primes the state with the whole seed, not its last character.
    """
    sentences = []
    for seed in seeds:
        sentence = seed
        state = None
        for _ in range(length):
            if state is None:
                batch = [utils.vocab_encode(sentence, self.vocab)]
            else:
                batch = [utils.vocab_encode(sentence[-1], self.vocab)]
            feed = {self.seq: batch}
            if temperature is not None:
                feed[self.temp] = temperature
            if state is not None:  # for the first decoder step, the state is None
                for i in range(len(state)):
                    feed.update({self.in_state[i]: state[i]})
            index, state = sess.run([self.sample, self.out_state], feed)
            sentence += utils.vocab_decode(index, self.vocab)
        sentences.append(sentence)
    return sentences


def test_in_graph_generation_draws_as_the_lectures_loop():
    # At a vanishing temperature both pick the most likely character: same text.
    model, sess = make_model('abcdefgh', (8, 8), seed=3, sampling='softmax')
    seeds = ['abc', 'h', 'gfedcba']
    fast = model.generate(sess, seeds, 25, temperature=1e-6)
    slow = online_infer(model, sess, seeds, 25, temperature=1e-6)
    assert fast == slow


def test_priming_uses_the_whole_seed():
    model, sess = make_model('abcd', (8, 8))

    def prime(seeds):   # the state generate() starts from: both layers', a row per seed
        rows = [utils.vocab_encode(seed, model.vocab) for seed in seeds]
        return np.concatenate(sess.run(model.out_state, {model.seq: utils.pad(rows)}), axis=1)

    short, long_, other = prime(['b', 'aab', 'dcb'])
    assert not np.allclose(short, long_, atol=1e-4)    # the lecture fed only the last 'b'
    assert not np.allclose(long_, other, atol=1e-4)
    # Padding a short seed in a batch with longer ones leaves its state as if alone.
    alone = prime(['b'])[0]
    np.testing.assert_allclose(short, alone, atol=1e-6)


# ---------------------------------------------------------------------------
# The script: training, resume, sampling, Ctrl-C.
# ---------------------------------------------------------------------------

def test_train_writes_checkpoints_config_and_events(trained):
    tmp, data = trained
    model_dir = tmp / 'ckpt' / 'trump_tweets'
    assert tf.train.latest_checkpoint(str(model_dir)).endswith('char-rnn-6')
    assert tf.train.latest_checkpoint(str(model_dir / 'best')) is not None
    stored = json.loads((model_dir / 'config.json').read_text(encoding='utf-8'))
    assert stored['hidden_sizes'] == char_rnn.TinyConfig.hidden_sizes
    assert stored['vocab'] == ''.join(sorted(set(''.join(lecture_reference.read_lines(data)))))
    assert (model_dir / ENCODED_FILE).exists()
    tags = {}
    for sub in ('train', 'val'):
        for path in glob.glob(str(tmp / 'logdir' / 'char_rnn' / 'trump_tweets' / sub / 'events*')):
            for event in tf.train.summary_iterator(path):
                for value in event.summary.value:
                    tags.setdefault(sub, set()).add(value.tag)
    assert {'loss_per_char', 'learning_rate', 'gradient_global_norm', 'chars_per_sec'} <= tags['train']
    assert any(tag.startswith('samples') for tag in tags['train'])
    assert 'loss_per_char' in tags['val']


def test_a_checkpoint_without_its_config_is_refused_not_guessed(trained, tmp_path, capsys):
    """Without config.json the vocabulary and shape of a checkpoint are unknown: training
    and --sample stop with one line and write nothing."""
    data = copy_trained(trained, tmp_path)
    model_dir = tmp_path / 'ckpt' / 'trump_tweets'
    (model_dir / 'config.json').unlink()
    state = files_state(tmp_path / 'ckpt')
    for extra in ([], ['--sample']):
        code, out, err = run(tiny_args(tmp_path, data, *extra, steps=9), capsys)
        assert code == 2 and err.count('\n') == 1
        assert 'has a checkpoint but no config.json' in err
        assert files_state(tmp_path / 'ckpt') == state


def test_log_lines_and_resume_restore_step_vocabulary_and_best(trained, tmp_path, capsys):
    data = copy_trained(trained, tmp_path)
    model_dir = tmp_path / 'ckpt' / 'trump_tweets'
    stored = (model_dir / 'config.json').read_text(encoding='utf-8')
    best = tf.train.load_variable(str(model_dir / 'char-rnn-6'), 'best_val_loss')
    assert np.isfinite(best)
    code, out, err = run(tiny_args(tmp_path, data, '--vocab', 'auto', steps=9), capsys)
    assert code == 0, err
    assert 'resumed from {} at step 6, best validation loss {:.4f}'.format(
        model_dir / 'char-rnn-6', best) in out
    iters = [int(n) for n in re.findall(r'^Iter (\d+)\. $', out, re.M)]
    assert iters == [6, 7, 8]
    assert len(re.findall(r'^    Loss [\d.]+\. Time [\d.]+\. Per char [\d.]+ nats \([\d.]+ bits\), '
                          r'[\d,]+ chars/s$', out, re.M)) == 3
    vocab = json.loads(stored)['vocab']
    seeds = [seed for seed in char_rnn.SEEDS if set(seed) & set(vocab)]   # no 'R' in the corpus
    assert 0 < len(seeds) < len(char_rnn.SEEDS)
    assert len(re.findall(r'^\t\S', out, re.M)) == len(seeds)
    assert tf.train.load_variable(str(model_dir / 'char-rnn-9'), 'global_step') == 9
    # The vocabulary, shape and validation set stay; the training settings are this run's.
    now = json.loads((model_dir / 'config.json').read_text(encoding='utf-8'))
    before = json.loads(stored)
    assert (before.pop('training')['steps'], now.pop('training')['steps']) == (6, 9)
    assert now == before
    # Old runs' files rotate too: one best checkpoint, at most 3 latest.
    assert len(glob.glob(str(model_dir / 'best' / '*.index'))) == 1
    assert len(glob.glob(str(model_dir / 'char-rnn-*.index'))) == 3
    code, out, _ = run(tiny_args(tmp_path, data, steps=9), capsys)
    assert code == 0 and 'step 9 already reached' in out


@pytest.mark.parametrize('change', ['data', '--seed', '--val-frac', '--window'])
def test_resume_refuses_another_validation_set(change, trained, tmp_path, capsys, monkeypatch):
    """The stored best validation loss only compares on the same held-out windows; the
    refusal comes before the data is read and encoded (a gigabyte takes a while)."""
    data = copy_trained(trained, tmp_path)

    def encode_file(*args, **kwargs):
        raise AssertionError('the data was encoded before the refusal')
    monkeypatch.setattr(corpus, 'encode_file', encode_file)
    monkeypatch.setattr(corpus, 'load_encoded', encode_file)
    extra = []
    if change == 'data':
        data = write_corpus(tmp_path / 'more.txt', seed=1)
    else:
        extra = [change, {'--seed': '1', '--val-frac': '0.2', '--window': '12'}[change]]
    before = files_state(tmp_path / 'ckpt')
    code, out, err = run(tiny_args(tmp_path, data, *extra, steps=9), capsys)
    assert code == 2 and 'Iter' not in out
    key = {'data': 'data_sha256', '--seed': 'seed', '--val-frac': 'val_frac',
           '--window': 'window'}[change]
    assert re.match(r'__main__\.py: error: \S+ was trained with another validation set: ' + key
                    + r' \S+ \(now \S+\); .*another --model$', err.strip()), err
    assert files_state(tmp_path / 'ckpt') == before


def test_sample_from_checkpoint(trained, tmp_path, capsys):
    copy_trained(trained, tmp_path)
    vocab = json.loads((tmp_path / 'ckpt' / 'trump_tweets' / 'config.json').read_text(
        encoding='utf-8'))['vocab']
    base = ['--sample', '--checkpoint-dir', str(tmp_path / 'ckpt')]
    for sampling in ('lecture', 'softmax'):
        code, out, err = run(base + ['--prime', 'make~~ america', '--prime', 'I', '-n', '15',
                                     '--sampling', sampling], capsys)
        assert code == 0, err
        lines = out.splitlines()
        assert len(lines) == 2
        assert lines[0].startswith('make america') and len(lines[0]) == 12 + 15
        assert lines[1].startswith('I') and len(lines[1]) == 1 + 15
        assert set(out.replace('\n', '')) <= set(vocab)
        assert "dropped '~'" in err
    code, out, err = run(base + ['--prime', '~~'], capsys)
    assert code == 2 and err.strip().endswith("--prime '~~': none of its characters is in the "
                                              "vocabulary")


def _read_until(proc, pattern, lines, timeout=120):
    """Stdout lines of proc until one matches pattern (kills proc after timeout)."""
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        for line in proc.stdout:
            lines.append(line)
            if re.match(pattern, line):
                return True
        return False
    finally:
        timer.cancel()


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_that_loads_and_resumes(signum, tmp_path, capsys):
    data = write_corpus(tmp_path / 'corpus.txt')
    argv = tiny_args(tmp_path, data, '--eval-every', '100000', steps=0)
    proc = subprocess.Popen([sys.executable, SCRIPT] + argv, cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, encoding='utf-8')
    lines = []
    assert _read_until(proc, r'Iter \d+\. ', lines), ''.join(lines) + proc.stderr.read()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    match = re.search(r'^interrupted at step (\d+): saved (\S+)$', out, re.M)
    assert match, out
    step, path = int(match.group(1)), match.group(2)
    assert 'Traceback' not in err and step >= 1
    model_dir = str(tmp_path / 'ckpt' / 'trump_tweets')
    assert tf.train.latest_checkpoint(model_dir) == path
    assert tf.train.load_variable(path, 'global_step') == step
    code, out, err = run(tiny_args(tmp_path, data, steps=step + 2), capsys)
    assert code == 0, err
    assert 'resumed from {} at step {}'.format(path, step) in out
    assert re.findall(r'^Iter (\d+)\. $', out, re.M) == [str(step), str(step + 1)]


def test_output_piped_into_a_closed_reader_stops_and_saves(tmp_path):
    """`python char_rnn.py | head`: when the reader goes, training stops and saves (exit 0),
    where a BrokenPipeError used to end it without a checkpoint."""
    data = write_corpus(tmp_path / 'corpus.txt')
    argv = tiny_args(tmp_path, data, '--eval-every', '100000', steps=0)   # only a stop ends it
    proc = subprocess.Popen([sys.executable, SCRIPT] + argv, cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, encoding='utf-8')
    lines = []
    assert _read_until(proc, r'Iter \d+\. ', lines), ''.join(lines) + proc.stderr.read()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert 'Traceback' not in err and 'BrokenPipe' not in err, err
    path = tf.train.latest_checkpoint(str(tmp_path / 'ckpt' / 'trump_tweets'))
    assert path and tf.train.load_variable(path, 'global_step') >= 1


@pytest.mark.parametrize('signals', [[signal.SIGINT], [signal.SIGTERM],
                                     [signal.SIGINT, signal.SIGINT]])
def test_a_signal_during_a_save_is_deferred_not_lost(signals, tmp_path, capsys, monkeypatch):
    """Ctrl-C or SIGTERM (twice even) while the checkpoint at step 3 is written: the save
    completes, then the run stops there, exit 0, and resumes from it."""
    data = write_corpus(tmp_path / 'corpus.txt')
    original = tf.train.Saver.save
    sent = []

    def save_while_signalled(saver, sess, path, *args, **kwargs):
        if not sent and 'best' not in path:
            for signum in signals:
                os.kill(os.getpid(), signum)   # handled here, before the save runs
            sent.append(True)
        return original(saver, sess, path, *args, **kwargs)

    monkeypatch.setattr(tf.train.Saver, 'save', save_while_signalled)
    code, out, err = run(tiny_args(tmp_path, data, steps=12), capsys)
    assert code == 0 and 'Traceback' not in err, err
    model_dir = tmp_path / 'ckpt' / 'trump_tweets'
    assert re.search(r'^interrupted at step 3: saved \S+char-rnn-3$', out, re.M), out
    assert re.findall(r'^Iter (\d+)\. $', out, re.M) == ['0', '1', '2']
    assert tf.train.latest_checkpoint(str(model_dir)).endswith('char-rnn-3')
    assert tf.train.load_variable(str(model_dir / 'char-rnn-3'), 'global_step') == 3
    monkeypatch.undo()
    code, out, err = run(tiny_args(tmp_path, data, steps=5), capsys)
    assert code == 0 and 'resumed from {} at step 3'.format(model_dir / 'char-rnn-3') in out


def test_half_or_more_held_out_of_one_line_still_trains(tmp_path):
    """--val-frac 0.6 of a single line left no training line: batches looped forever."""
    data = tmp_path / 'one.txt'
    data.write_text('Make America great again, the only line\n', encoding='utf-8')
    proc = subprocess.run([sys.executable, SCRIPT] + tiny_args(tmp_path, data, '--val-frac', '0.6',
                                                               steps=4),
                          cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert '0 validation windows from 0 lines' in proc.stdout
    assert re.search(r'^done at step 4', proc.stdout, re.M)


def test_best_holds_the_lowest_validation_loss(tmp_path, capsys):
    data = write_corpus(tmp_path / 'corpus.txt')
    code, out, err = run(tiny_args(tmp_path, data, '--lr', '0.05', '--eval-every', '2',
                                   '--sample-every', '0', steps=16), capsys)
    assert code == 0, err
    losses = [float(x) for x in re.findall(r'^    Validation loss ([\d.]+) nats', out, re.M)]
    assert len(losses) == 8
    best_step = 2 * (int(np.argmin(losses)) + 1)
    assert best_step < 16, 'uninformative: the best is also the latest ({})'.format(losses)
    best = tf.train.latest_checkpoint(str(tmp_path / 'ckpt' / 'trump_tweets' / 'best'))
    assert tf.train.load_variable(best, 'global_step') == best_step
    assert tf.train.load_variable(best, 'best_val_loss') == pytest.approx(min(losses), abs=1e-4)


def test_one_run_per_model_folder(tmp_path, capsys):
    """A second training run on the folder stops at once naming the holder; the first goes
    on; --sample still reads; once the holder is killed (-9) the next run resumes."""
    data = write_corpus(tmp_path / 'corpus.txt')
    holder = subprocess.Popen([sys.executable, SCRIPT] + tiny_args(tmp_path, data, steps=0),
                              cwd=str(tmp_path), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, encoding='utf-8')
    try:
        lines = []   # a validation, then the checkpoint it saves before the next step
        assert _read_until(holder, r'    Validation loss', lines), ''.join(lines)
        assert _read_until(holder, r'Iter \d+\. ', lines), ''.join(lines)
        model_dir = tmp_path / 'ckpt' / 'trump_tweets'
        code, out, err = run(tiny_args(tmp_path, data, steps=50), capsys)
        assert code == 2 and 'Iter' not in out
        assert err.strip().endswith('{} is in use by another run (process {}): wait for it to '
                                    'finish, or train side by side in another --model or '
                                    '--checkpoint-dir'.format(model_dir, holder.pid)), err
        code, out, err = run(['--sample', '--checkpoint-dir', str(tmp_path / 'ckpt'), '-n', '5'],
                             capsys)
        assert code == 0 and len(out.splitlines()) >= 1, err
        assert _read_until(holder, r'    Validation loss', lines), ''.join(lines)  # goes on
    finally:
        holder.kill()
        holder.communicate()
    step = tf.train.load_variable(tf.train.latest_checkpoint(str(model_dir)), 'global_step')
    assert step >= 6
    code, out, err = run(tiny_args(tmp_path, data, steps=step + 1), capsys)
    assert code == 0 and 'resumed from' in out and 'at step {}'.format(step) in out, err


# ---------------------------------------------------------------------------
# Bad input: one error line, exit code 2, nothing written.
# ---------------------------------------------------------------------------

def _bad_data(tmp_path, kind):
    path = tmp_path / 'bad.txt'
    if kind == 'missing':
        return str(tmp_path / 'nope.txt'), 'does not exist'
    if kind == 'directory':
        (tmp_path / 'folder').mkdir()
        return str(tmp_path / 'folder'), 'is a directory'
    if kind == 'empty':
        path.write_bytes(b'\n  \n')
        return str(path), 'is empty'
    if kind == 'no-vocab-char':
        path.write_text('\u4e2d\u6587\n\u65e5\u672c\u8a9e!\n', encoding='utf-8')
        return str(path), 'no character of {} is in the vocabulary (87 characters)'.format(path)
    if kind == 'not-utf8':
        path.write_bytes(b'good line\nbad \xff line\n')
        return str(path), 'line 2: not UTF-8 (byte 0xff at column 5)'
    if kind == 'unreadable':   # a socket exists, but open() fails, whoever runs the test
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
        return str(path), 'cannot read data file {} ('.format(path)
    raise ValueError(kind)


@pytest.mark.parametrize('kind', ['missing', 'directory', 'empty', 'no-vocab-char', 'not-utf8',
                                  'unreadable'])
def test_bad_data_file(kind, tmp_path, capsys):
    data, message = _bad_data(tmp_path, kind)
    code, out, err = run(tiny_args(tmp_path, data), capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert ': error: ' in lines[0] and message in lines[0]
    assert not (tmp_path / 'ckpt').exists() and not (tmp_path / 'logdir').exists()


def test_not_utf8_deep_in_a_file_names_its_line_and_column(tmp_path):
    path = tmp_path / 'c.txt'
    path.write_bytes('\u4e2d line\n'.encode('utf-8') * 50 + b'caf\xc3\xa9 \xe3\x81 x\n')
    with pytest.raises(cli.UserError) as old:
        lecture_reference.read_lines(str(path))
    with pytest.raises(cli.UserError) as new:
        corpus.encode_file(str(path), block_bytes=64)
    assert str(new.value) == str(old.value) == \
        '{}: line 51: not UTF-8 (byte 0xe3 at column 7)'.format(path)


@pytest.mark.skipif(not os.path.exists('/dev/full'), reason='needs /dev/full (Linux)')
def test_a_full_disk_when_saving_the_encoded_data_is_one_line(tmp_path, capsys):
    data = write_corpus(tmp_path / 'corpus.txt')
    model_dir = tmp_path / 'ckpt' / 'trump_tweets'
    model_dir.mkdir(parents=True)
    encoded = model_dir / ENCODED_FILE
    os.symlink('/dev/full', str(encoded) + '.tmp')   # every write fails: ENOSPC
    code, out, err = run(tiny_args(tmp_path, data), capsys)
    assert code == 2 and 'Iter' not in out
    assert err.strip().splitlines() == [err.strip().splitlines()[0]]
    assert err.strip().endswith('error: cannot write {} (No space left on device): free some '
                                'space, or pick another --checkpoint-dir'.format(encoded)), err
    assert os.listdir(str(model_dir)) == []   # nothing half-written, no config.json


def test_resume_reads_the_encoded_data_and_encodes_a_bad_copy_again(trained, tmp_path, capsys):
    data = copy_trained(trained, tmp_path)
    encoded = tmp_path / 'ckpt' / 'trump_tweets' / ENCODED_FILE
    fresh = corpus.encode_file(data)
    saved, why_not = corpus.load_encoded(str(encoded), fresh.sha256)
    assert why_not is None and saved.ids.dtype == np.uint8
    for name in ('vocab', 'lines', 'chars', 'dropped', 'last_word', 'auto'):
        assert getattr(saved, name) == getattr(fresh, name), name
    np.testing.assert_array_equal(saved.ids, fresh.ids)
    np.testing.assert_array_equal(saved.lengths, fresh.lengths)
    assert corpus.load_encoded(str(encoded), '0' * 64) == (None, 'of other data (sha256 {}...)'
                                                              .format(fresh.sha256[:12]))
    assert corpus.load_encoded(str(encoded), fresh.sha256, 'abc') == (None,
                                                                     'of another vocabulary')
    code, out, err = run(tiny_args(tmp_path, data, steps=7), capsys)
    assert code == 0 and '{}: encoded in {}'.format(data, encoded) in out, err
    # One byte of the ids changed: their CRC-32 tells, the data is encoded again.
    raw = encoded.read_bytes()
    at = raw.index(fresh.ids[100:140].tobytes()) + 20
    encoded.write_bytes(raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1:])
    code, out, err = run(tiny_args(tmp_path, data, steps=8), capsys)
    assert code == 0, err
    assert '{} is unreadable (checksum mismatch): encoding {} again'.format(encoded, data) in out
    assert 'resumed from' in out   # and a good copy written again, in the stored vocabulary:
    assert corpus.load_encoded(str(encoded), fresh.sha256, fresh.vocab)[1] is None
    encoded.write_bytes(raw[:len(raw) - 100])
    code, out, err = run(tiny_args(tmp_path, data, steps=9), capsys)
    assert code == 0 and '{} is unreadable (cut short, or not an archive)'.format(
        encoded) in out, err


def test_default_data_download_offline(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(char_rnn, 'DATA_URL', 'http://127.0.0.1:9/trump_tweets.txt')
    code, out, err = run(['--config', 'tiny', '--checkpoint-dir', 'ckpt', '--logdir', 'logdir'],
                         capsys)
    assert code == 2
    assert 'error: cannot download http://127.0.0.1:9/trump_tweets.txt' in err
    assert os.listdir('data') == [] and not os.path.exists('ckpt')


def test_bad_input_in_a_subprocess_is_one_line_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, SCRIPT] + tiny_args(tmp_path, tmp_path / 'nope.txt'),
                          cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, encoding='utf-8', timeout=120)
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == 'char_rnn.py: error: data file {} does not ' \
                                                   'exist'.format(tmp_path / 'nope.txt')


@pytest.mark.parametrize('kind', ['hidden-sizes', 'vocab-flag', 'vocab-edited', 'corrupt-state'])
def test_incompatible_or_corrupt_checkpoint(kind, trained, tmp_path, capsys):
    data = copy_trained(trained, tmp_path)
    model_dir = tmp_path / 'ckpt' / 'trump_tweets'
    extra = []
    if kind == 'hidden-sizes':
        extra, message = ['--hidden-sizes', '8,8'], 'has hidden sizes [16, 16], this run asks for [8, 8]'
    elif kind == 'vocab-flag':
        extra, message = ['--vocab', 'trump'], 'has a different vocabulary (--vocab auto'
    elif kind == 'vocab-edited':
        config = json.loads((model_dir / 'config.json').read_text(encoding='utf-8'))
        config['vocab'] = config['vocab'][:-1]
        (model_dir / 'config.json').write_text(json.dumps(config), encoding='utf-8')
        message = 'char-rnn-6 is of a different model shape or vocabulary: '
    else:   # (a corrupt latest checkpoint falls back: test_a_corrupt_latest_checkpoint_...)
        (model_dir / 'checkpoint').write_bytes(b'\xff\x00garbage')
        message = 'state file {} is unreadable'.format(model_dir / 'checkpoint')
    before = files_state(tmp_path)
    for argv in (tiny_args(tmp_path, data, *extra, steps=12),
                 ['--sample', '--checkpoint-dir', str(tmp_path / 'ckpt')] + extra):
        code, out, err = run(argv, capsys)
        assert code == 2 and message in err, err
        assert len(err.strip().splitlines()) == 1
    assert files_state(tmp_path) == before


def test_sample_without_checkpoint(tmp_path, capsys):
    code, out, err = run(['--sample', '--checkpoint-dir', str(tmp_path / 'none')], capsys)
    assert code == 2 and 'error: no checkpoint in {}'.format(tmp_path / 'none' / 'trump_tweets') in err
    assert not (tmp_path / 'none').exists()


def test_nan_stops_without_saving(tmp_path, capsys):
    data = write_corpus(tmp_path / 'corpus.txt')
    code, out, err = run(tiny_args(tmp_path, data, '--lr', '1e38', steps=10), capsys)
    assert code == 2 and 'error: NaN or Inf at step' in err, err
    assert tf.train.latest_checkpoint(str(tmp_path / 'ckpt' / 'trump_tweets')) is None


# ---------------------------------------------------------------------------
# --graph: the fast graph (kernels.gru_stack) and the lecture's, the same model.
# ---------------------------------------------------------------------------

def _loss_grads_state(model, sess, weights, batch):
    """Loss, gradients by variable name, final state and gradient op types of the model
    with the given weights."""
    with sess.graph.as_default():
        variables = tf.trainable_variables()
        for var in variables:
            var.load(weights[var.op.name], sess)
        before = set(sess.graph.get_operations())
        grads = tf.gradients(model.loss, variables)
        op_types = {op.type for op in set(sess.graph.get_operations()) - before}
        loss, grad_values, state = sess.run([model.loss, grads, model.out_state],
                                            {model.seq: batch})
    return loss, {v.op.name: g for v, g in zip(variables, grad_values)}, state, op_types


@pytest.mark.parametrize('cell,sizes', [('gru', (8, 12)), ('gru', (6,)), ('gru', (5, 7, 9)),
                                        ('lstm', (8, 12)), ('rnn', (8, 12))])
def test_fast_graph_is_the_same_model_same_variables_loss_gradients_and_state(cell, sizes):
    vocab = 'abcdefg'
    lecture, lecture_sess = make_model(vocab, sizes, sampling='softmax', graph='lecture',
                                       cell=cell)
    fast, fast_sess = make_model(vocab, sizes, sampling='softmax', cell=cell)
    with lecture_sess.graph.as_default():
        shapes = {v.op.name: v.shape.as_list() for v in tf.global_variables()}
        rng = np.random.RandomState(1)
        # Random weights, biases included (GRUCell starts the gate bias at 1, candidate at 0).
        weights = {v.op.name: rng.uniform(-0.5, 0.5, v.shape.as_list()).astype(np.float32)
                   for v in tf.trainable_variables()}
    with fast_sess.graph.as_default():
        assert {v.op.name: v.shape.as_list() for v in tf.global_variables()} == shapes
    # Rows of every length, padding included: its positions must change nothing.
    batch = [[1, 2, 3, 4, 5, 6, 7, 1, 2], [7, 6, 5, 0, 0, 0, 0, 0, 0], [3, 3, 0, 0, 0, 0, 0, 0, 0]]
    loss, grads, state, lecture_ops = _loss_grads_state(lecture, lecture_sess, weights, batch)
    fast_loss, fast_grads, fast_state, fast_ops = _loss_grads_state(fast, fast_sess, weights,
                                                                    batch)
    # The fast gradient is the written-out one, not tf.gradients through a while loop
    # (which saves every step's values on stacks).
    assert 'StackPopV2' in lecture_ops and 'StackPopV2' not in fast_ops
    assert fast_loss == pytest.approx(loss, rel=1e-5)
    per_layer = {'gru': 4, 'lstm': 2, 'rnn': 2}[cell]   # kernels and biases
    assert sorted(fast_grads) == sorted(grads) and len(grads) == per_layer * len(sizes) + 2
    for name in grads:
        np.testing.assert_allclose(fast_grads[name], grads[name], rtol=1e-4, atol=1e-5,
                                   err_msg=name)
        assert np.abs(grads[name]).max() > 0, name   # every gradient is really compared
    for layer, fast_layer in zip(tf.nest.flatten(state), tf.nest.flatten(fast_state)):
        np.testing.assert_allclose(fast_layer, layer, rtol=1e-5, atol=1e-6)
    # Generation steps the same cells: at a vanishing temperature, the same most likely text.
    seeds = ['abc', 'g']
    assert (fast.generate(fast_sess, seeds, 15, temperature=1e-6)
            == lecture.generate(lecture_sess, seeds, 15, temperature=1e-6))


def test_a_lecture_graph_checkpoint_trains_on_with_the_fast_graph(trained, tmp_path, capsys):
    data = copy_trained(trained, tmp_path)
    model_dir = tmp_path / 'ckpt' / 'trump_tweets'
    names = dict(tf.train.list_variables(str(model_dir / 'char-rnn-6')))
    code, out, err = run(tiny_args(tmp_path, data, '--graph', 'lecture', steps=9), capsys)
    assert code == 0, err
    assert 'resumed from' in out
    assert dict(tf.train.list_variables(str(model_dir / 'char-rnn-9'))) == names
    code, out, err = run(tiny_args(tmp_path, data, steps=12), capsys)
    assert code == 0 and 'resumed from' in out, err
    assert dict(tf.train.list_variables(str(model_dir / 'char-rnn-12'))) == names


# ---------------------------------------------------------------------------
# The training step applies the gradient of the weights it read (reference variables).
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('graph,clip', [('fast', None), ('lecture', None), ('fast', 1.0)])
def test_each_step_applies_the_gradient_of_the_weights_it_started_from(graph, clip):
    """Every gradient is computed before any weight changes: the step applies what the
    gradients give alone at its starting weights, as one Adam update."""
    from conftest import assert_steps_apply_their_gradients
    vocab = char_rnn.TRUMP_VOCAB
    model, sess = make_model(vocab, (32, 48), seed=3, lr=0.01, graph=graph, clip=clip)
    batch = np.random.RandomState(0).randint(1, len(vocab) + 1, size=(16, 30))
    batch[3, 20:] = 0
    assert_steps_apply_their_gradients(sess, model.grads_and_vars, model.opt,
                                       {model.seq: batch}, model.learning_rate)


def test_a_step_with_a_non_finite_gradient_changes_no_weight(tmp_path, capsys):
    """--lr 1e38: the first step's gradients are finite (it updates), the second's are not:
    the error names step 1, and that step changed nothing, its optimizer state included."""
    model, sess = make_model('abcdefg', (8, 8), seed=1, lr=1e38)
    feed = {model.seq: [[1, 2, 3, 4, 5, 6, 7, 1, 2], [7, 6, 5, 4, 3, 0, 0, 0, 0]]}
    sess.run(model.opt, feed)
    with sess.graph.as_default():
        state = tf.global_variables()
    before = sess.run(state)
    with pytest.raises(tf.errors.InvalidArgumentError, match='check_numerics'):
        sess.run(model.opt, feed)
    for var, old, new in zip(state, before, sess.run(state)):
        np.testing.assert_array_equal(new, old, err_msg=var.op.name)
    data = write_corpus(tmp_path / 'corpus.txt')
    code, out, err = run(tiny_args(tmp_path, data, '--lr', '1e38', steps=10), capsys)
    assert code == 2 and 'error: NaN or Inf at step 1:' in err, err


def test_a_resumed_run_is_the_run_that_was_not_interrupted(tmp_path, capsys):
    """12 steps straight, again (same seed, one thread), and 6 + 6 across a restart: the same
    losses, step for step, validation included. The data order continues where it stopped."""
    data = write_corpus(tmp_path / 'corpus.txt')

    def losses(folder, steps):
        code, out, err = run(tiny_args(tmp_path / folder, data, '--threads', '1', steps=steps),
                             capsys)
        assert code == 0, err
        return re.findall(r'(Iter \d+|Loss \S+|Validation loss \S+)', out)

    straight = losses('a', 12)
    assert len([x for x in straight if x.startswith('Iter')]) == 12
    assert losses('b', 12) == straight
    assert losses('c', 6) + losses('c', 12) == straight


def test_settings_bind_only_once_a_checkpoint_exists(trained, tmp_path, capsys):
    """A folder with config.json but no checkpoint (stopped before its first save): another
    model shape and vocabulary train there."""
    data = copy_trained(trained, tmp_path)
    model_dir = tmp_path / 'ckpt' / 'trump_tweets'
    for path in model_dir.iterdir():
        if path.name != CONFIG_FILE:
            shutil.rmtree(str(path)) if path.is_dir() else path.unlink()
    code, out, err = run(tiny_args(tmp_path, data, '--hidden-sizes', '12', '--vocab', 'trump',
                                   steps=3), capsys)
    assert code == 0, err
    stored = json.load(open(str(model_dir / CONFIG_FILE)))
    assert stored['hidden_sizes'] == [12] and stored['vocab'] == char_rnn.TRUMP_VOCAB


# ---------------------------------------------------------------------------
# Issue 23, class 1: flag values the math cannot take are refused by argparse.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('flag,value,message', [
    ('--temperature', '1e-40', 'must be in [1e-30, 1e+30], not 1e-40'),
    ('--temperature', '0', 'must be in [1e-30, 1e+30], not 0'),
    ('--temperature', 'inf', "expected a number in [1e-30, 1e+30], not 'inf'"),
    ('--lr', '-0.01', 'must be more than 0, not -0.01'),
    ('--lr', '0', 'must be more than 0, not 0'),
    ('--lr', 'nan', "expected a number more than 0, not 'nan'"),
    ('--clip', '-1', 'must be 0 or more, not -1'),
    ('--lr-decay', '1.5', 'must be in (0, 1], not 1.5'),
    ('--seed', '-1', 'must be in [0, 2147483647], not -1'),
    ('--keep-prob', '0', 'must be in (0, 1], not 0'),
    ('--val-frac', '1', 'must be in [0, 1), not 1'),
    ('--window', '1', 'must be 2 or more, not 1'),
    ('--model', '../elsewhere', "must be a name, not a path (no '/', not empty, not . or ..), "
                                "not '../elsewhere'"),
    ('--model', '', "must be a name, not a path (no '/', not empty, not . or ..), not ''"),
])
def test_flag_values_the_math_cannot_take_are_one_argparse_line(flag, value, message, tmp_path,
                                                                capsys):
    with pytest.raises(SystemExit) as e:
        char_rnn.main(tiny_args(tmp_path, tmp_path / 'corpus.txt', flag, value))
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    assert err.splitlines()[-1].endswith(': error: argument {}: {}'.format(flag, message))
    assert not (tmp_path / 'ckpt').exists()


@pytest.mark.parametrize('sampling', ['softmax', 'lecture'])
def test_sampling_at_the_temperature_bound_works_and_below_it_is_refused(sampling, trained,
                                                                          tmp_path, capsys):
    data = copy_trained(trained, tmp_path)
    low = decoding.TEMPERATURE_RANGE[0]
    code, out, err = run(tiny_args(tmp_path, data, '--sample', '--sampling', sampling,
                                   '--temperature', repr(low), '--prime', 'make'), capsys)
    assert code == 0, err
    assert out.startswith('make') and 'Traceback' not in err
    with pytest.raises(SystemExit):
        char_rnn.parse_args(['--temperature', repr(low / 2)])


# ---------------------------------------------------------------------------
# Issue 23, class 2: output places that cannot be written fail before any training.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('flag,file,value,message', [
    ('--checkpoint-dir', 'afile', 'afile', 'is a file, not a folder'),
    ('--checkpoint-dir', 'ck/trump_tweets', 'ck', None),
    ('--checkpoint-dir', 'ck/trump_tweets/best', 'ck', None),
    ('--logdir', 'afile', 'afile/deeper/still', 'cannot make it, afile is a file, not a folder'),
    ('--logdir', 'logs/char_rnn/trump_tweets/train', 'logs', None),
])
def test_an_output_place_that_cannot_be_written_is_one_line_before_training(
        flag, file, value, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = write_corpus(tmp_path / 'corpus.txt')
    os.makedirs(os.path.dirname(file) or '.', exist_ok=True)
    open(file, 'w').close()
    argv = tiny_args(tmp_path, data)
    argv[argv.index(flag) + 1] = value
    code, out, err = run(argv, capsys)
    assert code == 2 and 'Traceback' not in err
    assert err.strip().splitlines() == ['{}: error: {} {}: {}'.format(
        os.path.basename(sys.argv[0]), flag, value if message else file,
        message or 'is a file, not a folder')]
    assert out == ''   # nothing read, built or trained
    assert glob.glob(str(tmp_path / '**' / 'config.json'), recursive=True) == []


# ---------------------------------------------------------------------------
# Issue 23, class 3: a full disk during a save.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('error', ['ResourceExhaustedError', 'OSError'])
def test_a_failed_save_stops_and_leaves_the_previous_checkpoint(error, tmp_path, capsys,
                                                                 monkeypatch):
    from test_runs import fail_saves, leftovers
    data = write_corpus(tmp_path / 'corpus.txt')
    fail_saves(monkeypatch, tf, lambda step: step == 6,
               tf.errors.ResourceExhaustedError(None, None, 'No space left on device')
               if error == 'ResourceExhaustedError' else
               OSError(28, 'No space left on device'))
    folder = tmp_path / 'ckpt' / 'trump_tweets'
    code, out, err = run(tiny_args(tmp_path, data, steps=9), capsys)
    assert code == 2 and 'Traceback' not in err
    line = err.strip().splitlines()[-1]
    assert re.match(r'^.*: error: cannot save checkpoint {0}(/best)?/char-rnn-6 \(.*No space left '
                    r'on device\): stopped; the latest checkpoint is still '
                    r'{0}(/best)?/char-rnn-3$'.format(re.escape(str(folder))), line), line
    assert 'Iter 6.' not in out   # training did not go on
    assert leftovers(tmp_path / 'ckpt') == []
    assert glob.glob(str(folder / '**' / 'char-rnn-6*'), recursive=True) == []
    assert tf.train.latest_checkpoint(str(folder)) == str(folder / 'char-rnn-3')
    monkeypatch.undo()
    code, out, err = run(tiny_args(tmp_path, data, steps=9), capsys)
    assert code == 0, err
    assert 'resumed from {} at step 3'.format(folder / 'char-rnn-3') in out


def test_a_save_into_a_removed_folder_stops_with_one_line(tmp_path, capsys, monkeypatch):
    data = write_corpus(tmp_path / 'corpus.txt')
    folder = tmp_path / 'ckpt' / 'trump_tweets'
    original = tf.train.Saver.save

    def save(self, sess, save_path, global_step=None, **kwargs):
        if global_step == 6 and folder.exists():
            shutil.rmtree(str(folder))   # the real save then fails on the missing folder
        return original(self, sess, save_path, global_step=global_step, **kwargs)
    monkeypatch.setattr(tf.train.Saver, 'save', save)
    code, out, err = run(tiny_args(tmp_path, data, steps=9), capsys)
    assert code == 2 and 'Traceback' not in err
    assert re.match(r'^.*: error: cannot save checkpoint {}(/best)?/char-rnn-6 \(.*\): stopped; '
                    r'no checkpoint saved$'.format(re.escape(str(folder))),
                    err.strip().splitlines()[-1]), err
    assert 'Iter 6.' not in out


# ---------------------------------------------------------------------------
# Issue 23, class 4: a corrupt latest checkpoint falls back to the newest intact one.
# ---------------------------------------------------------------------------

def damage(prefix, kind):
    """Damages the checkpoint at prefix: its data file deleted, bytes overwritten, or its index."""
    data = prefix + '.data-00000-of-00001'
    if kind == 'data-deleted':
        os.remove(data)
    elif kind == 'data-corrupt':
        with open(data, 'r+b') as f:
            f.seek(64)
            f.write(b'\xff' * 32)
    elif kind == 'data-truncated':
        with open(data, 'r+b') as f:
            f.truncate(os.path.getsize(data) // 2)
    else:
        with open(prefix + '.index', 'wb') as f:
            f.write(b'not an index')


REASONS = {'data-deleted': 'its data file char-rnn-6.data-00000-of-00001 is missing',
           'data-corrupt': 'unreadable (', 'data-truncated': 'unreadable (',
           'index-garbage': 'unreadable ('}


@pytest.mark.parametrize('kind', sorted(REASONS))
def test_a_corrupt_latest_checkpoint_falls_back_to_the_one_before(kind, trained, tmp_path,
                                                                  capsys):
    data = copy_trained(trained, tmp_path)
    folder = tmp_path / 'ckpt' / 'trump_tweets'
    damage(str(folder / 'char-rnn-6'), kind)
    warning = 'warning: skipping checkpoint {}: {}'.format(folder / 'char-rnn-6', REASONS[kind])
    runs._reported.clear()
    code, out, err = run(tiny_args(tmp_path, data, '--sample', '--prime', 'make'), capsys)
    assert code == 0, err
    assert out.startswith('make') and 'Traceback' not in err
    lines = [line for line in err.splitlines() if line.startswith('warning: skipping')]
    assert len(lines) == 1 and lines[0].startswith(warning), err
    assert lines[0].endswith('its files are kept for inspection')
    runs._reported.clear()
    code, out, err = run(tiny_args(tmp_path, data, steps=9), capsys)
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith('warning: skipping')]
    assert len(lines) == 1 and lines[0].startswith(warning), err
    assert lines[0].endswith('kept for inspection as char-rnn-6.*.skipped')
    assert 'resumed from {} at step 3'.format(folder / 'char-rnn-3') in out
    assert glob.glob(str(folder / 'char-rnn-6.*.skipped'))   # kept
    assert tf.train.latest_checkpoint(str(folder)) == str(folder / 'char-rnn-9')


def test_no_intact_checkpoint_is_refused_in_one_line(trained, tmp_path, capsys):
    data = copy_trained(trained, tmp_path)
    folder = tmp_path / 'ckpt' / 'trump_tweets'
    damage(str(folder / 'char-rnn-6'), 'data-deleted')
    damage(str(folder / 'char-rnn-3'), 'data-corrupt')
    runs._reported.clear()
    for argv in (['--sample'], []):
        code, out, err = run(tiny_args(tmp_path, data, *argv), capsys)
        assert code == 2 and 'Traceback' not in err
        assert err.strip().splitlines()[-1].endswith(
            'error: no intact checkpoint in {}: char-rnn-6, char-rnn-3 (see the warnings above); '
            'move them away to start over'.format(folder))
    assert glob.glob(str(folder / 'char-rnn-6.*'))   # nothing deleted


# ---------------------------------------------------------------------------
# Issue 23, class 5: pipes and signals at the edges.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('lines', [0, 3, 9, 40])
def test_a_closed_output_pipe_ends_quietly_wherever_it_closes(lines, tmp_path, capsys,
                                                              monkeypatch):
    """`python char_rnn.py | head -N`: the pipe closes before the data is read (0), before
    the loop (3, 9) or in it (40): exit 141 (nothing trained, nothing left) or 0 (saved)."""
    from test_runs import ClosingPipe
    data = write_corpus(tmp_path / 'corpus.txt')
    pipe = ClosingPipe(lines)
    monkeypatch.setattr(sys, 'stdout', pipe)
    code = cli.run_main(char_rnn.main, tiny_args(tmp_path, data, '--steps', '0'))
    err = capsys.readouterr().err
    assert 'Traceback' not in err and 'Error' not in err, err
    folder = tmp_path / 'ckpt' / 'trump_tweets'
    if code == cli.PIPE_EXIT:
        assert not folder.exists() or tf.train.latest_checkpoint(str(folder)), os.listdir(str(folder))
    else:
        assert code == 0 and tf.train.latest_checkpoint(str(folder))   # stopped and saved
    assert len(pipe.written) == lines


def test_a_closed_pipe_in_a_subprocess_is_no_traceback(tmp_path):
    data = write_corpus(tmp_path / 'corpus.txt')
    proc = subprocess.Popen([sys.executable, '-u', SCRIPT] + tiny_args(tmp_path, data), cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()   # `| head -0`: the reader is gone before the first line
    err = proc.communicate(timeout=120)[1].decode()
    assert proc.returncode == cli.PIPE_EXIT and 'Traceback' not in err, err
    assert not (tmp_path / 'ckpt' / 'trump_tweets').exists()


def test_ctrl_c_during_the_imports_exits_quietly(tmp_path):
    proc = subprocess.Popen([sys.executable, SCRIPT, '--help'], cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    import time
    time.sleep(0.6)   # past the first line, inside `import tensorflow`
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b'Traceback' not in err and b'KeyboardInterrupt' not in err and out == b''


def test_a_file_system_without_locks_is_one_line_before_training(tmp_path, capsys, monkeypatch):
    import errno
    import fcntl

    def flock(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
    monkeypatch.setattr(fcntl, 'flock', flock)
    data = write_corpus(tmp_path / 'corpus.txt')
    code, out, err = run(tiny_args(tmp_path, data), capsys)
    assert code == 2 and 'Traceback' not in err
    assert err.strip().splitlines()[-1].endswith(
        'error: {} cannot be locked (No locks available): its file system does not support '
        'locks (a network share?), and a second run there would overwrite this one\'s '
        'checkpoints; use a folder on a local disk (another --model or --checkpoint-dir)'.format(
            tmp_path / 'ckpt' / 'trump_tweets'))
    assert not (tmp_path / 'ckpt').exists()


# ---------------------------------------------------------------------------
# --stream: the file as one text, streams carrying their state; --cell; --evaluate.
# ---------------------------------------------------------------------------

def write_code(path, lines=600):
    """A multi-line text with indentation and blank lines, as source code has."""
    rng = random.Random(3)
    words = ['def', 'return', 'x', 'y', '=', '+', '(1)', 'if', 'else:', 'for', 'in', 'range']
    text = []
    for i in range(lines):
        text.append('    ' * rng.randint(0, 3) + ' '.join(rng.choice(words)
                                                        for _ in range(rng.randint(1, 8))))
        if i % 9 == 0:
            text.append('')
    with open(str(path), 'w', encoding='utf-8') as f:
        f.write('\n'.join(text) + '\n')
    return str(path)


def stream_args(tmp, data, *extra, steps=12):
    return tiny_args(tmp, data, '--stream', '--threads', '1', '--sample-every', '0', *extra,
                     steps=steps)


def test_a_resumed_stream_continues_its_streams_and_their_state(tmp_path, capsys):
    """12 steps straight, and 6 + 6 across a restart mid-pass: the same losses, validation
    included (the state the checkpoint saved carries on)."""
    data = write_code(tmp_path / 'code.txt')

    def losses(folder, steps):
        code, out, err = run(stream_args(tmp_path / folder, data, steps=steps), capsys)
        assert code == 0, err
        return re.findall(r'(Iter \d+|Loss \S+|Validation loss \S+)', out)

    straight = losses('a', 12)
    assert len([x for x in straight if x.startswith('Iter')]) == 12
    assert losses('b', 6) + losses('b', 12) == straight


def test_stream_mode_keeps_every_character_and_evaluates_its_splits(tmp_path, capsys):
    data = write_code(tmp_path / 'code.txt')
    code, out, err = run(stream_args(tmp_path, data, '--cell', 'lstm', '--eval-batches',
                                     '1'), capsys)
    assert code == 0, err
    assert 'vocabulary' in out and 'test characters' in out
    stored = json.loads((tmp_path / 'ckpt' / 'trump_tweets' / CONFIG_FILE).read_text('utf-8'))
    assert stored['mode'] == 'stream' and stored['cell'] == 'lstm'
    assert '\n' in stored['vocab'] and ' ' in stored['vocab']   # --vocab auto, nothing stripped
    printed = re.findall(r'Validation loss (\S+) nats/char', out)[-1]
    # --evaluate val reads the validation text as training does, whole, whatever
    # --eval-batches: the same loss as training printed at its last step.
    argv = tiny_args(tmp_path, data, '--evaluate', 'val')
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert ': {} nats/char'.format(printed) in out, out
    code, out, err = run(tiny_args(tmp_path, data, '--evaluate', 'test'), capsys)
    assert code == 0 and 'the test text of' in out, err
    # A file with characters outside the vocabulary: scored without them, and counted.
    other = tmp_path / 'other.txt'
    other.write_text('def x(1):\n    return Q\u00e9Q\n', encoding='utf-8')
    code, out, err = run(tiny_args(tmp_path, data, '--evaluate', str(other)), capsys)
    assert code == 0, err
    assert "3 outside the vocabulary not scored ('Q' 2, '\u00e9' 1)" in out, out
    # The checkpoint's kind binds: another cell, or lines, is refused in one line.
    code, out, err = run(tiny_args(tmp_path, data, '--cell', 'gru', steps=14), capsys)
    assert code == 2 and '--cell lstm' in err and 'Traceback' not in err, err


def test_a_line_model_refuses_stream_and_test(trained, tmp_path, capsys):
    data = copy_trained(trained, tmp_path)
    code, out, err = run(tiny_args(tmp_path, data, '--stream', steps=8), capsys)
    assert code == 2 and 'reads its data as lines' in err, err
    code, out, err = run(tiny_args(tmp_path, data, '--evaluate', 'test'), capsys)
    assert code == 2 and 'validation lines only' in err, err
    code, out, err = run(tiny_args(tmp_path, data, '--evaluate', 'val'), capsys)
    assert code == 0 and 'the val text of' in out and 'bits/char' in out, err
