"""char_rnn.py's start-up time and peak memory on large corpora, before and after the
encoded data pipeline (one uint8/uint16 id array, windows as offsets, an encoded copy beside
the checkpoint).

    python bench/corpus_scaling.py                  # 2, 20, 200 MB and 1 GB of text
    python bench/corpus_scaling.py --sizes 2,20     # a quick look

Each corpus is the tweets repeated to the size (whole lines), written under --workdir
(default: the system's temporary folder) and deleted after its runs; the disk must hold the
largest. For each size, each in its own process (2 TensorFlow threads, as bench/run.py):

  - after:   `char_rnn.py --data FILE --vocab auto --steps 2` of this tree, a new model;
  - resumed: the same with --steps 4, resuming from it (the encoded copy read back);
  - before:  the same first command with char_rnn.py and utils.py of main at 5a04bb7
    (extracted with git show), for sizes up to --before-max MB (it needs about 34 bytes
    per character of text) and at most --timeout seconds.

Start-up: seconds from starting the process to its first training step's log line
("Iter N."), TensorFlow's import and graph building included; peak RSS: the process's
maximum resident set size (wait4). The table goes to bench/results/corpus-scaling-<stack>.md
with the command and the machine's load.
"""
from __future__ import print_function

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import common
from common import ROOT, THREAD_ENV

BEFORE = '5a04bb7'
RESULTS = os.path.join(ROOT, 'bench', 'results')
STACK = 'tf1' if sys.version_info[:2] == (3, 7) else 'tf2'


def write_corpus(source, path, megabytes):
    """source's lines repeated into path up to megabytes * 10**6 bytes (whole lines)."""
    with open(source, 'rb') as f:
        text = f.read()
    if not text.endswith(b'\n'):
        text += b'\n'
    target, written = megabytes * 10 ** 6, 0
    with open(path, 'wb') as f:
        while written + len(text) <= target:
            f.write(text)
            written += len(text)
        rest = text[:target - written]
        rest = rest[:rest.rfind(b'\n') + 1]
        f.write(rest)
        written += len(rest)
    return written


def run(script, data, workdir, steps, timeout):
    """(start-up seconds or None, total seconds, peak RSS bytes, exit code, last lines)."""
    argv = [sys.executable, script, '--data', data, '--vocab', 'auto', '--steps', str(steps),
            '--model', 'scaling', '--checkpoint-dir', os.path.join(workdir, 'checkpoints'),
            '--logdir', os.path.join(workdir, 'logdir')]
    env = dict(os.environ, **THREAD_ENV)
    log = open(os.path.join(workdir, 'stderr.log'), 'w+')
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=workdir, stdout=subprocess.PIPE, stderr=log, env=env,
                            universal_newlines=True, encoding='utf-8')
    startup, lines = None, []
    killer = _Timer(timeout, proc)
    for line in proc.stdout:
        if startup is None and line.startswith('Iter '):
            startup = time.perf_counter() - start
        lines.append(line.rstrip('\n'))
    _, status, usage = os.wait4(proc.pid, 0)
    total = time.perf_counter() - start
    killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status) if hasattr(
        os, 'waitstatus_to_exitcode') else (status >> 8 if os.WIFEXITED(status) else -1)
    log.seek(0)
    errors = log.read().strip().splitlines()[-3:]
    log.close()
    return {'startup': startup, 'total': total, 'peak_rss': usage.ru_maxrss * 1024,
            'code': proc.returncode, 'timed_out': killer.fired,
            'tail': (lines[-2:] + errors) if proc.returncode else []}


class _Timer(object):
    def __init__(self, seconds, proc):
        import threading
        self.fired = False

        def kill():
            self.fired = True
            proc.kill()
        self.timer = threading.Timer(seconds, kill)
        self.timer.start()

    def cancel(self):
        self.timer.cancel()


def before_script(folder):
    """char_rnn.py and utils.py of main at BEFORE in folder; the script's path."""
    for name in ('char_rnn.py', 'utils.py'):
        text = subprocess.check_output(['git', '-C', ROOT, 'show', '{}:{}'.format(BEFORE, name)])
        with open(os.path.join(folder, name), 'wb') as f:
            f.write(text)
    return os.path.join(folder, 'char_rnn.py')


def cell(result, what):
    if result is None:
        return '-'
    if result['code'] != 0:
        return 'killed at {:.0f} s'.format(result['total']) if result['timed_out'] else \
            'failed (exit {})'.format(result['code'])
    if what == 'startup':
        return '{:.1f} s'.format(result['startup'])
    return '{:.2f} GB'.format(result['peak_rss'] / 1e9)


def table(rows):
    out = ['| corpus | before: start-up | before: peak RSS | after: start-up | after: peak RSS '
           '| resumed: start-up | resumed: peak RSS |', '|---|--:|--:|--:|--:|--:|--:|']
    for row in rows:
        out.append('| {} MB ({:,} lines) | {} | {} | {} | {} | {} | {} |'.format(
            row['megabytes'], row['lines'], cell(row['before'], 'startup'),
            cell(row['before'], 'rss'), cell(row['after'], 'startup'), cell(row['after'], 'rss'),
            cell(row['resumed'], 'startup'), cell(row['resumed'], 'rss')))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--sizes', default='2,20,200,1000', help='corpus sizes in MB')
    p.add_argument('--before-max', type=int, default=200,
                   help='largest size (MB) to run main at {} on'.format(BEFORE))
    p.add_argument('--timeout', type=int, default=900, help='seconds per run before a kill')
    p.add_argument('--data', default=None, help='the corpus to repeat (default: the tweets)')
    p.add_argument('--workdir', default=None, help='where the corpora and checkpoints go')
    p.add_argument('--results', default=os.path.join(RESULTS, 'corpus-scaling-{}.md'.format(
        STACK)))
    args = p.parse_args(argv)
    source = common.tweets_path(args.data)
    if source is None:
        sys.exit('no tweets file: pass --data')
    sizes = [int(s) for s in args.sizes.split(',')]
    load = os.getloadavg()[0]
    rows, notes = [], []
    work = tempfile.mkdtemp(prefix='corpus-scaling-', dir=args.workdir)
    try:
        old = before_script(tempfile.mkdtemp(dir=work))
        new = os.path.join(ROOT, 'char_rnn.py')
        for megabytes in sizes:
            free = shutil.disk_usage(work).free
            if free < megabytes * 10 ** 6 * 1.2:
                notes.append('{} MB not measured: {:.1f} GB free under {}'.format(
                    megabytes, free / 1e9, work))
                continue
            data = os.path.join(work, 'corpus-{}MB.txt'.format(megabytes))
            size = write_corpus(source, data, megabytes)
            with open(data, 'rb') as f:
                lines = sum(block.count(b'\n') for block in iter(lambda: f.read(1 << 24), b''))
            row = {'megabytes': megabytes, 'bytes': size, 'lines': lines, 'before': None}
            for name, script, steps in (('after', new, 2), ('resumed', new, 4)):
                common.log('{} MB: {}'.format(megabytes, name))
                row[name] = run(script, data, work, steps, args.timeout)
            shutil.rmtree(os.path.join(work, 'checkpoints'), ignore_errors=True)
            if megabytes <= args.before_max:
                common.log('{} MB: before'.format(megabytes))
                row['before'] = run(old, data, work, 2, args.timeout)
                shutil.rmtree(os.path.join(work, 'checkpoints'), ignore_errors=True)
            else:
                notes.append('{} MB: main at {} not run (about 34 bytes per character: {:.0f} '
                             'GB)'.format(megabytes, BEFORE, 34 * size / 1e9))
            os.remove(data)
            rows.append(row)
            common.log('  ' + table([row])[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = 'python bench/corpus_scaling.py' + (' ' + ' '.join(argv if argv is not None
                                                               else sys.argv[1:])).rstrip()
    lines = table(rows)
    report = ['# char_rnn.py on large corpora ({})'.format(STACK), '',
              'Written by `{}` on {}: {}, TensorFlow threads 2, {} cores, 1-minute load '
              'average {:.2f} at the start.'.format(
                  command, datetime.date.today().isoformat(), platform.python_version(),
                  os.cpu_count(), load), '',
              'Each corpus is `{}` repeated. Start-up: seconds from starting `char_rnn.py '
              '--data FILE --vocab auto --steps 2` to its first step; peak RSS: its maximum '
              'resident set size. before: main at {}; after: this tree, a new model; resumed: '
              'the same again with --steps 4, from the encoded copy beside the checkpoint.'.format(
                  os.path.relpath(source, ROOT), BEFORE), ''] + lines + [''] + [
                      '- ' + note for note in notes]
    with open(args.results, 'w', encoding='utf-8') as f:
        f.write('\n'.join(report).rstrip() + '\n')
    print('\n'.join(report))


if __name__ == '__main__':
    main()
