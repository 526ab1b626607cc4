"""tf1rnn/corpus.py: a text file as vocabulary ids, whatever the process's locale."""
import os
import subprocess
import sys

from conftest import ROOT


def test_a_file_is_read_as_utf8_whatever_the_locale(tmp_path):
    """In a process whose preferred encoding is ASCII (C locale, no UTF-8 mode or coercion),
    the lines come back as written. Fix: the lecture opened files with the platform's
    default encoding, which fails with a 'charmap' error on such systems."""
    path = tmp_path / 'corpus.txt'
    path.write_bytes('é📈 a\nb é\n'.encode('utf-8'))
    env = dict(os.environ, LC_ALL='C', LANG='C', PYTHONUTF8='0', PYTHONCOERCECLOCALE='0',
               PYTHONIOENCODING='utf-8')
    code = ('import locale, sys; sys.path.insert(0, {!r}); import utils; '
            'from tf1rnn import corpus; print(locale.getpreferredencoding(False)); '
            'text = corpus.encode_file({!r}); '
            'print(ascii(utils.vocab_decode(text.ids, text.vocab)), text.lengths.tolist())'
            ).format(ROOT, str(path))
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, check=True,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout.splitlines()
    assert 'utf' not in out[0].lower()   # the platform default could not read the file
    assert out[-1] == '{} [4, 3]'.format(ascii('é📈 ab é'))
