"""tf1rnn/model_dir.py: a model folder written by an earlier main resumes and samples."""
import os
import shutil

from test_char_rnn import run, tiny_args, write_corpus


OLD_FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'main-7953fdb')


def test_a_model_folder_written_before_the_layout_move_resumes_and_samples(tmp_path, capsys):
    """checkpoints/trump_tweets as main wrote it at 7953fdb (tiny config, --vocab auto, 4
    steps, its config.json and data.encoded): training resumes there (the data encoded
    again: the cache's format changed since), and --sample generates from it."""
    shutil.copytree(os.path.join(OLD_FILES, 'checkpoints', 'trump_tweets'),
                    str(tmp_path / 'ckpt' / 'trump_tweets'))
    data = write_corpus(tmp_path / 'corpus.txt')
    code, out, err = run(tiny_args(tmp_path, data, steps=6), capsys)
    assert code == 0, err
    # Its data.encoded, in the format before the .npz archive, is encoded again.
    assert 'is written by an earlier version: encoding' in out
    assert 'resumed from' in out and 'at step 4' in out
    assert 'done at step 6' in out
    code, out, err = run(['--sample', '--checkpoint-dir', str(tmp_path / 'ckpt'), '-n', '10',
                          '--prime', 'make'], capsys)
    assert code == 0 and out.startswith('make'), err
