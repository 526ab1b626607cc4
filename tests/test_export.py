"""--export (tf1rnn/export.py) on tiny trained models: the SavedModels' signatures against the
scripts, saved_model_cli, the other TensorFlow stack, ONNX Runtime."""
import contextlib
import io
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from test_char_rnn import tiny_args, write_corpus
from test_mnist_rnn import small_args, write_mnist

import char_rnn
import mnist_rnn
import utils
from tf1rnn import cli, corpus, export, mnist_data, runs, training, windows
from tf1rnn.model_dir import read_config
from utils import tf

try:
    import onnxruntime
    import tf2onnx  # noqa: F401
except ImportError:
    onnxruntime = None
needs_onnx = pytest.mark.skipif(onnxruntime is None, reason='tf2onnx or onnxruntime is not '
                                'installed (pinned in requirements*.txt: make env)')

WINDOW = 200   # longer than any line of write_corpus: a validation line is one window
PRIMES = ['make', 'I', 'Hillary~ crooked', '~~', '']


def run(main, argv):
    """A script's main in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.run_main(main, argv)
    return status, out.getvalue(), err.getvalue()


class SavedModel(object):
    """A SavedModel loaded as TF 1.15 serves it (tf.saved_model.loader in a session)."""

    def __init__(self, path):
        self.graph = tf.Graph()
        self.sess = tf.Session(graph=self.graph, config=runs.session_config(2))
        self.meta = tf.saved_model.loader.load(self.sess, [export.SERVE], path)

    def __call__(self, signature, **inputs):
        sig = self.meta.signature_def[signature]
        return self.sess.run({key: t.name for key, t in sig.outputs.items()},
                             {sig.inputs[key].name: value for key, value in inputs.items()})

    def generate(self, primes, length=30, **inputs):
        texts = self('generate', prime=primes, length=length, **inputs)['text']
        return [text.decode('utf-8') for text in texts]


@pytest.fixture(scope='module')
def char(tmp_path_factory):
    """A tiny char model (tweets ending in _E_, --vocab auto, lines shorter than the window)
    trained 6 steps, and its SavedModel: {tmp, data, model_dir, vocab, val_loss, saved, model}."""
    tmp = tmp_path_factory.mktemp('char')
    data = write_corpus(tmp / 'corpus.txt', extra=' _E_')
    status, out, err = run(char_rnn.main, tiny_args(tmp, data, '--vocab', 'auto', '--window',
                                                   str(WINDOW), '--sample-every', '0'))
    assert status == 0, err
    model_dir = str(tmp / 'ckpt' / 'trump_tweets')
    stored = read_config(model_dir)
    assert stored['end_marker'] == '_E_'
    status, out_export, err = run(char_rnn.main, ['--checkpoint-dir', str(tmp / 'ckpt'),
                                                  '--export', str(tmp / 'export')])
    assert status == 0, err
    saved = str(tmp / 'export' / '1')
    assert out_export.strip() == 'exported {} to {}'.format(
        os.path.join(model_dir, 'char-rnn-6'), saved)
    model = SavedModel(saved)
    yield dict(tmp=tmp, data=data, model_dir=model_dir, vocab=stored['vocab'], saved=saved,
               val_loss=float(re.findall(r'Validation loss (\d+\.\d+) nats/char', out)[-1]),
               model=model)
    model.sess.close()


@pytest.fixture(scope='module')
def mnist(tmp_path_factory):
    """A tiny gru classifier trained an epoch (to about 0.9), its history and its SavedModel."""
    tmp = tmp_path_factory.mktemp('mnist')
    write_mnist(tmp / 'data')
    status, _, err = run(mnist_rnn.main, small_args(tmp, '--cell', 'gru', '--epochs', '1',
                                                    '--lr', '0.01'))
    assert status == 0, err
    with open(str(tmp / 'checkpoints' / 'mnist_gru' / 'history.json')) as f:
        history = json.load(f)
    status, _, err = run(mnist_rnn.main, ['--checkpoint-dir', str(tmp / 'checkpoints'),
                                          '--cell', 'gru', '--export', str(tmp / 'export')])
    assert status == 0, err
    saved = str(tmp / 'export' / '1')
    model = SavedModel(saved)
    yield dict(tmp=tmp, history=history, saved=saved, model=model,
               test=mnist_data.load_mnist(str(tmp / 'data'), 0)['test'])
    model.sess.close()


# ---------------------------------------------------------------------------
# The folder, and bad input.
# ---------------------------------------------------------------------------

def test_each_export_is_a_new_version_and_bad_input_is_one_line(char, tmp_path):
    target = tmp_path / 'models'
    (target / '7-old').mkdir(parents=True)   # not a version: ignored
    (target / '3').mkdir()
    argv = ['--checkpoint-dir', str(char['tmp'] / 'ckpt'), '--export', str(target)]
    for version in ('4', '5'):
        status, out, err = run(char_rnn.main, argv)
        assert status == 0, err
        assert out.strip().endswith(os.path.join(str(target), version))
    assert sorted(os.listdir(str(target))) == ['3', '4', '5', '7-old']   # nothing left behind
    assert export.versions(str(target)) == [3, 4, 5]
    assert sorted(os.listdir(str(target / '5'))) == ['saved_model.pb', 'variables']

    (tmp_path / 'file').write_text('x')
    for main, args, message in (
            (char_rnn.main, argv[:2] + ['--export', str(tmp_path / 'file')],
             'a file, not a folder'),
            (char_rnn.main, ['--checkpoint-dir', str(tmp_path), '--export', str(target)],
             'no checkpoint in'),
            (mnist_rnn.main, ['--checkpoint-dir', str(tmp_path), '--cell', 'gru', '--export',
                              str(target)], 'no checkpoint in'),
            (mnist_rnn.main, ['--cell', 'gru,lstm', '--export', str(target)], 'one --cell')):
        status, out, err = run(main, args)
        assert status == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert export.versions(str(target)) == [3, 4, 5]


def test_a_checkpoint_of_another_model_is_one_line(char, tmp_path):
    folder = tmp_path / 'mnist_gru'
    folder.mkdir()
    (folder / 'history.json').write_text(json.dumps({
        'settings': {'cell': 'gru', 'hidden': 16, 'forget_bias': 1.0, 'ln_smoothing': False},
        'status': 'done', 'epoch': 1, 'batch': 0, 'step': 1, 'epochs': [], 'losses': [],
        'checkpoint': os.path.relpath(os.path.join(char['model_dir'], 'char-rnn-6'),
                                      str(folder))}))
    status, _, err = run(mnist_rnn.main, ['--checkpoint-dir', str(tmp_path), '--cell', 'gru',
                                          '--export', str(tmp_path / 'x')])
    assert status == 2 and 'is not of this model' in err and len(err.strip().splitlines()) == 1
    assert not export.versions(str(tmp_path / 'x'))


# ---------------------------------------------------------------------------
# saved_model_cli, as a user types it.
# ---------------------------------------------------------------------------

def saved_model_cli(*args):
    result = subprocess.run([sys.executable, '-m', 'tensorflow.python.tools.saved_model_cli']
                            + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_saved_model_cli_show_lists_the_signatures(char, mnist):
    shown = saved_model_cli('show', '--dir', char['saved'], '--all')
    for name in ('generate', 'score', 'step'):
        assert "signature_def['{}']".format(name) in shown
    for key in ('prime', 'temperature', 'length', 'seed', 'greedy', 'text', 'nats_per_char',
                'predicted_chars', 'ids', 'state_0', 'state_1', 'logits', 'next_state_1'):
        assert "['{}'] tensor_info".format(key) in shown
    shown = saved_model_cli('show', '--dir', mnist['saved'], '--all')
    assert "signature_def['classify']" in shown
    assert all("['{}'] tensor_info".format(key) in shown
               for key in ('images', 'probabilities', 'classes'))


def test_saved_model_cli_run_generates_text_after_the_prime(char):
    printed = saved_model_cli('run', '--dir', char['saved'], '--tag_set', 'serve',
                              '--signature_def', 'generate', '--input_exprs',
                              'prime=["make", "I"];length=20;seed=3')
    texts = re.search(r'Result for output key text:\n(\[.*\])', printed, re.S).group(1)
    assert re.match(r"\[b'make.*'\s+b'I.*'\]$", texts, re.S), printed


# ---------------------------------------------------------------------------
# generate and score against the script.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('drawn_marker', [False, True], ids=['data-marker', 'drawn-marker'])
def test_greedy_generate_is_sample_at_a_vanishing_temperature(char, drawn_marker, tmp_path):
    """The data's end marker (_E_) the tiny model never draws; a character that greedy
    decoding draws (--end-marker, at export and --sample alike) cuts the text there."""
    base = ['--checkpoint-dir', str(char['tmp'] / 'ckpt')]
    primes, model = PRIMES[:3], char['model']
    if drawn_marker:
        end = model.generate(primes[:1], 40, greedy=True)[0][len(primes[0]) + 5]
        base += ['--end-marker', end]
        status, _, err = run(char_rnn.main, base + ['--export', str(tmp_path)])
        assert status == 0, err
        model = SavedModel(str(tmp_path / '1'))
    status, out, err = run(char_rnn.main, base + ['--sample', '-n', '40', '--temperature',
                                                  '1e-6'] + [f for p in primes
                                                             for f in ('--prime', p)])
    assert status == 0, err
    sampled = out.splitlines()
    assert model.generate(primes, 40, greedy=True) == sampled
    if drawn_marker:
        assert any(len(text) < len(prime.replace('~', '')) + 40
                   for text, prime in zip(sampled, primes))


def test_a_seed_gives_one_text_and_each_begins_with_its_prime(char):
    model, vocab = char['model'], char['vocab']
    texts = model.generate(PRIMES, 40, seed=7, temperature=1.0)
    assert model.generate(PRIMES, 40, seed=7, temperature=1.0) == texts
    assert len({tuple(model.generate(PRIMES, 40, seed=s)) for s in range(4)}) == 4
    # Characters outside the vocabulary are dropped; an empty prime starts at vocab[0].
    cleaned = ['make', 'I', 'Hillary crooked', vocab[0], vocab[0]]
    for text, prime in zip(texts, cleaned):
        generated = text[len(prime):]
        assert text.startswith(prime) and set(generated) <= set(vocab)
        assert len(generated) == 40 or (generated.endswith('_E_') and
                                        generated.count('_E_') == 1)
    assert model.generate(cleaned, 40, seed=7, temperature=1.0) == texts


def test_signature_inputs_are_checked(char):
    with pytest.raises(tf.errors.InvalidArgumentError, match='length must be 1 or more'):
        char['model']('generate', prime=['make'], length=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match='temperature must be positive'):
        char['model']('generate', prime=['make'], temperature=0.0)
    assert char['model'].generate(['make'], 5, temperature=0.0, greedy=True)


def test_score_of_the_validation_lines_is_the_validation_loss_training_printed(char):
    vocab, cfg = char['vocab'], char_rnn.TinyConfig()
    text = corpus.encode_file(char['data'], vocab)
    val = windows.Corpus(text, WINDOW, 0.05, 0).val   # training's split (--val-frac, --seed)
    # Each line one window, and every window evaluated: the positions training scored.
    assert val.lengths.max() <= WINDOW and len(val) <= cfg.batch_size * cfg.eval_batches
    lines = [utils.vocab_decode(text.ids[s:s + n], vocab) for s, n in zip(val.starts, val.lengths)]
    scored = char['model']('score', text=lines)
    assert scored['predicted_chars'].tolist() == (val.lengths - 1).tolist()
    mean = float(np.sum(scored['nats_per_char'] * scored['predicted_chars']) /
                 np.sum(scored['predicted_chars']))
    # The unrounded validation loss: training.evaluate on the restored training graph.
    with tf.Graph().as_default():
        model = char_rnn.build_model(vocab, cfg.hidden_sizes, char_rnn.parse_args([]), cfg)
        with tf.Session() as sess:
            tf.train.Saver().restore(sess, os.path.join(char['model_dir'], 'char-rnn-6'))
            loss = training.evaluate(sess, model,
                                     val.fixed_batches(cfg.batch_size, cfg.eval_batches))
    assert mean == pytest.approx(loss, rel=1e-5)
    assert abs(mean - char['val_loss']) <= 5.1e-5   # printed to 4 decimals


def test_score_drops_characters_outside_the_vocabulary(char):
    scored = char['model']('score', text=['make america', 'ma~ke am~erica', 'I', '~', ''])
    nats, count = scored['nats_per_char'], scored['predicted_chars']
    assert nats[0] == nats[1] and count.tolist() == [11, 11, 0, 0, 0]
    assert 0 < nats[0] < 2 * math.log(len(char['vocab'])) and np.isnan(nats[2:]).all()


def test_classify_is_the_test_accuracy_training_printed(mnist):
    test, last = mnist['test'], mnist['history']['epochs'][-1]
    result = mnist['model']('classify', images=test.images)
    probabilities, classes = result['probabilities'], result['classes']
    assert probabilities.shape == (len(test.labels), 10) and classes.dtype == np.int64
    assert np.allclose(probabilities.sum(1), 1, atol=1e-5)
    assert (classes == probabilities.argmax(1)).all()
    assert np.mean(classes == test.labels) == last['test_accuracy']
    assert last['test_accuracy'] > 0.5   # a trained model: more than one class to get right


# ---------------------------------------------------------------------------
# The other stack: TF 2 loads a SavedModel as tf.saved_model.load (no compat code), TF 1.15 as
# tf.saved_model.loader.load in a session. Run by each stack's python on this stack's export.
# ---------------------------------------------------------------------------

LOAD = {
    'tf2': '''
import json, sys
import tensorflow as tf
out, loaded = [], {}
for path, name, inputs in json.load(sys.stdin):
    loaded[path] = loaded.get(path) or tf.saved_model.load(path)
    function = loaded[path].signatures[name]
    specs = function.structured_input_signature[1]
    results = function(**{k: tf.constant(v, specs[k].dtype) for k, v in inputs.items()})
    out.append({k: v.numpy().tolist() for k, v in results.items()})
print(json.dumps(out, default=bytes.decode))
''',
    'tf1': '''
import json, sys
import tensorflow as tf
out = []
for path, name, inputs in json.load(sys.stdin):
    with tf.Session(graph=tf.Graph()) as sess:
        sig = tf.saved_model.loader.load(sess, ['serve'], path).signature_def[name]
        results = sess.run({k: t.name for k, t in sig.outputs.items()},
                           {sig.inputs[k].name: v for k, v in inputs.items()})
    out.append({k: v.tolist() for k, v in results.items()})
print(json.dumps(out, default=bytes.decode))
'''}


def stack_python(stack):
    """The python of a stack's venv (.venv-tf1, .venv-tf2): this process's, else under
    $TF1RNN_VENVS, the repository root, or (a git worktree) the main working tree's."""
    if stack == utils.STACK:
        return sys.executable
    roots = [os.environ.get('TF1RNN_VENVS'), ROOT]
    try:
        common = subprocess.run(['git', 'rev-parse', '--git-common-dir'], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                universal_newlines=True).stdout.strip()
        roots.append(os.path.dirname(os.path.join(ROOT, common)))
    except OSError:   # no git
        pass
    for root in filter(None, roots):
        python = os.path.join(root, '.venv-' + stack, 'bin', 'python')
        if os.path.isfile(python):
            return python
    return None


@pytest.mark.parametrize('stack', ['tf1', 'tf2'])
def test_the_export_runs_the_same_on_each_stack(char, mnist, stack):
    python = stack_python(stack)
    if python is None:
        pytest.skip('no .venv-{} (make env STACK={}; or set TF1RNN_VENVS to the folder that '
                    'holds it)'.format(stack, stack))
    requests = [
        (char['saved'], 'generate', dict(prime=PRIMES, length=40, temperature=0.9, seed=5,
                                         greedy=True)),
        (char['saved'], 'generate', dict(prime=PRIMES, length=40, temperature=0.9, seed=5,
                                         greedy=False)),
        (char['saved'], 'score', dict(text=PRIMES)),
        (mnist['saved'], 'classify', dict(images=mnist['test'].images[:20].tolist()))]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
    result = subprocess.run([python, '-c', LOAD[stack]], input=json.dumps(requests),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(char['tmp']),
                            universal_newlines=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    greedy, sampled, scored, classified = json.loads(result.stdout.splitlines()[-1])
    model = char['model']
    assert greedy['text'] == model.generate(PRIMES, 40, greedy=True)
    assert sampled['text'] == model.generate(PRIMES, 40, seed=5)   # stateless: the same draws
    here = model('score', text=PRIMES)
    assert scored['predicted_chars'] == here['predicted_chars'].tolist()
    np.testing.assert_allclose(scored['nats_per_char'], here['nats_per_char'], rtol=1e-5)
    here = mnist['model']('classify', images=mnist['test'].images[:20])
    np.testing.assert_allclose(classified['probabilities'], here['probabilities'], atol=1e-6)
    assert classified['classes'] == here['classes'].tolist()


# ---------------------------------------------------------------------------
# ONNX Runtime.
# ---------------------------------------------------------------------------

def onnx_session(saved, signature):
    model = export.to_onnx(saved, signature)
    return onnxruntime.InferenceSession(model.SerializeToString(),
                                        providers=['CPUExecutionProvider'])


@needs_onnx
def test_onnx_step_is_tensorflows_step_and_writes_the_same_text(char):
    session = onnx_session(char['saved'], 'step')
    assert sorted(i.name for i in session.get_inputs()) == ['ids', 'state_0', 'state_1']
    rng = np.random.RandomState(0)
    feed = {'ids': rng.randint(1, len(char['vocab']) + 1, 16).astype(np.int32),
            'state_0': rng.uniform(-1, 1, (16, 16)).astype(np.float32),
            'state_1': rng.uniform(-1, 1, (16, 16)).astype(np.float32)}
    want = char['model']('step', **feed)
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
    assert sorted(got) == sorted(want) == ['logits', 'next_state_0', 'next_state_1']
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-5, err_msg=key)
    # One character at a time in Python, the same text as the SavedModel's in-graph loop.
    texts = export.onnx_generate(session, char['vocab'], PRIMES, 40, greedy=True, end='_E_')
    assert texts == char['model'].generate(PRIMES, 40, greedy=True)
    sampled = export.onnx_generate(session, char['vocab'], PRIMES, 40, seed=1, end='_E_')
    assert sampled == export.onnx_generate(session, char['vocab'], PRIMES, 40, seed=1, end='_E_')
    assert all(text.startswith(prime) for text, prime in zip(sampled, ['make', 'I', 'Hillary']))


@needs_onnx
def test_onnx_classifier_is_tensorflows(mnist):
    session = onnx_session(mnist['saved'], 'classify')
    images = mnist['test'].images
    probabilities, classes = session.run(['probabilities', 'classes'], {'images': images})
    want = mnist['model']('classify', images=images)
    np.testing.assert_allclose(probabilities, want['probabilities'], rtol=0, atol=1e-5)
    assert (classes == want['classes']).all()


def test_a_stream_lstm_exports_its_state_parts_and_generates_as_sample(tmp_path):
    """An LSTM (state c and h a layer) trained on a stream: the step signature takes each
    state part, greedy generate is --sample --greedy, and so is ONNX's step in a loop."""
    from test_char_rnn import write_code
    data = write_code(tmp_path / 'code.txt')
    argv = tiny_args(tmp_path, data, '--stream', '--cell', 'lstm', '--sample-every', '0')
    status, _, err = run(char_rnn.main, argv)
    assert status == 0, err
    status, _, err = run(char_rnn.main, ['--checkpoint-dir', str(tmp_path / 'ckpt'),
                                         '--export', str(tmp_path / 'export')])
    assert status == 0, err
    saved = str(tmp_path / 'export' / '1')
    model = SavedModel(saved)
    primes = ['def ', 'x']
    status, out, err = run(char_rnn.main, ['--checkpoint-dir', str(tmp_path / 'ckpt'), '--sample',
                                           '--greedy', '-n', '25'] + sum(
                                               (['--prime', p] for p in primes), []))
    assert status == 0, err
    texts = model.generate(primes, 25, greedy=True)
    assert out == ''.join(text + '\n' for text in texts)
    if onnxruntime is not None:
        session = onnx_session(saved, 'step')
        assert sorted(i.name for i in session.get_inputs()) == ['ids'] + [
            'state_{}'.format(i) for i in range(4)]
        vocab = read_config(str(tmp_path / 'ckpt' / 'trump_tweets'))['vocab']
        assert export.onnx_generate(session, vocab, primes, 25, greedy=True) == texts
    model.sess.close()
