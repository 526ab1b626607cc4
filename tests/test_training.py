"""tf1rnn/training.py: the settings a run is given, and the state carried between windows."""
import numpy as np
import pytest

from tf1rnn import training
from test_char_rnn import make_model, run, tiny_args, write_corpus


def test_a_cosine_decay_without_an_end_is_refused(tmp_path, capsys):
    data = write_corpus(tmp_path / 'corpus.txt')
    code, out, err = run(tiny_args(tmp_path, data, '--lr-decay', 'cosine', steps=0), capsys)
    assert code == 2 and err.strip().endswith('error: --lr-decay cosine needs an end: --steps '
                                              'N, --minutes M, or --decay-steps N (the rate '
                                              'then stays at a tenth after step N)'), err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / 'ckpt').exists()
    code, out, err = run(tiny_args(tmp_path, data, '--lr-decay', 'cosine', '--decay-steps', '4',
                                   '--steps', '5'), capsys)
    assert code == 0, err


@pytest.mark.parametrize('cell', ['gru', 'lstm', 'rnn'])
def test_a_state_carried_across_windows_gives_the_loss_of_one_long_window(cell):
    """Two windows of a stream, the first's final state fed to the second, score each
    character as one window over the same text does."""
    vocab = 'abcdefg'
    model, sess = make_model(vocab, (6, 9), cell=cell, stream=True)
    rng = np.random.RandomState(0)
    text = rng.randint(1, len(vocab) + 1, size=(3, 2 * 7 + 1)).astype(np.int32)
    whole = sess.run(model.loss, {model.seq: text})
    first, state = sess.run([model.loss, model.final_state], {model.seq: text[:, :8]})
    feed = training.feed_state(model, state, {model.seq: text[:, 7:]})
    second = sess.run(model.loss, feed)
    assert first + second == pytest.approx(whole, rel=1e-5)
    # And the state matters: from the zero state the second window scores otherwise.
    assert sess.run(model.loss, {model.seq: text[:, 7:]}) != pytest.approx(second, rel=1e-3)
