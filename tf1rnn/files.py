"""Files and downloads: mkdir -p, sha256, and atomic, checked downloads."""
import contextlib
import hashlib
import http.client
import os
import sys
import tempfile
import time
from urllib.request import urlopen

from tf1rnn.cli import UserError


def safe_mkdir(path):
    """mkdir -p."""
    if path and not os.path.isdir(path):
        os.makedirs(path, exist_ok=True)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


class DownloadError(UserError):
    """A failed download; .problem says what failed, without advice on what to do."""

    def __init__(self, message, problem=None):
        super(DownloadError, self).__init__(message)
        self.problem = problem or message


def download(url, dest, sha256, timeout=30, progress_min_bytes=1 << 20, out=None):
    """Fetches url into dest unless dest already holds the right bytes.

    Atomic: the bytes go to a temporary file beside dest, are checked against
    sha256, then renamed; nothing partial is ever left at dest. Progress is
    shown for files of progress_min_bytes or more. Any failure is a DownloadError (a UserError)
    that tells a network problem from a local one (a full disk, a folder that cannot be made).
    """
    if os.path.isfile(dest) and sha256_of(dest) == sha256:
        return dest
    out = out or sys.stderr
    folder = os.path.dirname(os.path.abspath(dest))
    tmp = None
    try:
        safe_mkdir(folder)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(dest) + '.',
                                   suffix='.part')
        digest = hashlib.sha256()
        with os.fdopen(fd, 'wb') as f, contextlib.closing(_open_url(url, dest, timeout)) as r:
            total = int(r.headers.get('Content-Length') or 0)
            done, last_shown = 0, 0.0
            for block in _read_blocks(r, url, dest):
                f.write(block)
                digest.update(block)
                done += len(block)
                if total >= progress_min_bytes and time.time() - last_shown > 0.5:
                    out.write('\rdownloading {} {:5.1f}% of {:.1f} MB'.format(
                        os.path.basename(dest), 100.0 * done / total, total / 1e6))
                    out.flush()
                    last_shown = time.time()
            if total >= progress_min_bytes:
                out.write('\rdownloading {} done ({:.1f} MB)\n'.format(
                    os.path.basename(dest), done / 1e6))
            if total and done != total:
                raise DownloadError('download of {} stopped after {} of {} bytes'.format(
                    url, done, total))
        got = digest.hexdigest()
        if got != sha256:
            raise DownloadError('checksum mismatch for {}: expected sha256 {}, got {}'.format(
                url, sha256, got))
        os.replace(tmp, dest)
        tmp = None
    except OSError as e:   # the network's errors are DownloadErrors by now: this one is local
        problem = 'cannot write {} ({})'.format(tmp or dest, e.strerror or e)
        raise DownloadError('{}; free some space or pick another folder'.format(problem), problem)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    return dest


# URLError, timeouts and resets are OSErrors; a malformed response is an HTTPException.
_NETWORK_ERRORS = (OSError, ValueError, http.client.HTTPException)


def _network_error(url, dest, error):
    if isinstance(error, http.client.HTTPException):
        error = '{}: {}'.format(type(error).__name__, error)
    problem = 'cannot download {} ({})'.format(url, getattr(error, 'reason', error))
    return DownloadError('{}; offline? put the file at {} yourself'.format(problem, dest), problem)


def _open_url(url, dest, timeout):
    try:
        return urlopen(url, timeout=timeout)
    except _NETWORK_ERRORS as e:
        raise _network_error(url, dest, e)


def _read_blocks(response, url, dest, size=1 << 16):
    while True:
        try:
            block = response.read(size)
        except _NETWORK_ERRORS as e:
            raise _network_error(url, dest, e)
        if not block:
            return
        yield block
