"""tf1rnn/files.py: atomic, checked downloads and what they say when they fail."""
import functools
import hashlib
import http.server
import os
import threading

import pytest

from tf1rnn import cli, files

# --- downloads ----------------------------------------------------------------------

@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / 'www'
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, 'http://127.0.0.1:{}/'.format(server.server_address[1]), server
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_good_file_with_progress(http_server, tmp_path, capsys):
    root, url, _ = http_server
    payload = os.urandom(3 << 20)
    (root / 'big.bin').write_bytes(payload)
    dest = tmp_path / 'data' / 'big.bin'
    files.download(url + 'big.bin', str(dest), hashlib.sha256(payload).hexdigest())
    assert dest.read_bytes() == payload
    assert 'downloading big.bin' in capsys.readouterr().err
    assert os.listdir(str(dest.parent)) == ['big.bin']
    # Present with the right checksum: not fetched again.
    (root / 'big.bin').unlink()
    files.download(url + 'big.bin', str(dest), hashlib.sha256(payload).hexdigest())


def test_download_wrong_checksum_leaves_nothing(http_server, tmp_path):
    root, url, _ = http_server
    (root / 'f.txt').write_bytes(b'hello')
    dest = tmp_path / 'f.txt'
    with pytest.raises(cli.UserError, match='checksum mismatch'):
        files.download(url + 'f.txt', str(dest), '0' * 64)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir()] == ['www']


def test_download_server_gone_is_one_clear_error(http_server, tmp_path):
    root, url, server = http_server
    server.shutdown()
    server.server_close()
    dest = tmp_path / 'f.txt'
    with pytest.raises(cli.UserError, match='cannot download .*offline'):
        files.download(url + 'f.txt', str(dest), '0' * 64, timeout=5)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir()] == ['www']


def test_download_onto_a_full_disk_says_so_and_leaves_nothing(http_server, tmp_path,
                                                               monkeypatch):
    """Writing the bytes fails (ENOSPC from the kernel, /dev/full): a local error, not 'offline'."""
    root, url, _ = http_server
    (root / 'f.bin').write_bytes(os.urandom(1 << 18))
    real_fdopen = os.fdopen

    def onto_dev_full(fd, mode='r', *args, **kwargs):
        os.close(fd)
        return real_fdopen(os.open('/dev/full', os.O_WRONLY), mode, *args, **kwargs)

    monkeypatch.setattr(files.os, 'fdopen', onto_dev_full)
    dest = tmp_path / 'data' / 'f.bin'
    with pytest.raises(files.DownloadError) as error:
        files.download(url + 'f.bin', str(dest), '0' * 64)
    assert 'No space left on device' in str(error.value) and 'offline' not in str(error.value)
    assert os.listdir(str(dest.parent)) == []


def test_download_where_no_folder_can_be_made_is_one_clear_error(http_server, tmp_path):
    _, url, _ = http_server
    (tmp_path / 'file').write_text('a file, not a folder')
    with pytest.raises(files.DownloadError, match=r'cannot write .*file/sub/f\.bin'):
        files.download(url + 'f.bin', str(tmp_path / 'file' / 'sub' / 'f.bin'), '0' * 64)


def test_download_missing_file_on_server(http_server, tmp_path):
    _, url, _ = http_server
    with pytest.raises(cli.UserError, match='cannot download'):
        files.download(url + 'nope', str(tmp_path / 'nope'), '0' * 64)
