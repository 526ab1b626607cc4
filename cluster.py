"""Starts a whole TensorFlow cluster on this machine, to try the scripts' distributed mode.

    python cluster.py --workers 2 -- python char_rnn.py --steps 200
    python cluster.py --workers 2 --sync -- python char_rnn.py --config tiny
    python cluster.py --workers 3 --port 2222 -- python mnist_rnn.py --cell gru

Each task (--ps parameter servers, then --workers workers; worker 0 is the chief) runs the
command given after `--` with --ps-hosts, --worker-hosts, --job-name and --task-index (and
--sync) appended, on loopback ports (free ones, or --port and up: 2222, 2223, ... as
TensorFlow's mnist_replica.py). Each task's output goes to LOGS/<job>-<index>.log and, its
lines prefixed with the task, here. When the workers are done the parameter servers are
stopped. Ctrl-C (or SIGTERM) stops the workers, the chief saving, then the parameter servers;
a task that has not exited 60 s later is killed. Exit status: the first non-zero of the
workers', else 0. On real machines run the same command on each host instead (README.md,
"More than one machine").
"""
from __future__ import print_function

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from tf1rnn import cli

GRACE = 60   # seconds a task gets to exit after SIGTERM before it is killed


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                usage='%(prog)s [options] -- COMMAND ...',
                                formatter_class=cli.RangeHelpFormatter)
    p.add_argument('--workers', type=cli.positive_int, default=2, help='workers (default: 2)')
    p.add_argument('--ps', type=cli.positive_int, default=1,
                   help='parameter servers (default: 1)')
    p.add_argument('--sync', action='store_true', help='synchronous updates (passed on)')
    p.add_argument('--port', type=cli.number(int, low=0, high=65535), default=0,
                   help='first port, the others following (default: free ports)')
    p.add_argument('--logs', default='cluster-logs', help='folder of the per-task logs')
    argv = sys.argv[1:] if argv is None else list(argv)
    if '--' not in argv and {'-h', '--help'} & set(argv):
        p.parse_args(['--help'])
    if '--' not in argv or not argv[argv.index('--') + 1:]:
        p.error('give the command to run after --, e.g. -- python char_rnn.py')
    args = p.parse_args(argv[:argv.index('--')])
    args.command = argv[argv.index('--') + 1:]
    if args.port and args.port + args.ps + args.workers - 1 > 65535:
        p.error('--port {}: {} tasks need ports up to {}, above 65535'.format(
            args.port, args.ps + args.workers, args.port + args.ps + args.workers - 1))
    return args


def free_ports(count):
    """`count` TCP ports free on localhost now (the kernel's choice; free until taken)."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(('localhost', 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def echo(proc, name, log):
    """Copies a task's output to its log file and to stdout."""
    with open(log, 'w', encoding='utf-8') as f:
        for line in proc.stdout:
            f.write(line)
            f.flush()
            sys.stdout.write(line if line.startswith('[') else '[{}] {}'.format(name, line))
            sys.stdout.flush()


def stop(procs, sig=signal.SIGTERM):
    """Sends sig to the tasks still running, waits up to GRACE s, then kills the rest."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(sig)
    deadline = time.time() + GRACE
    for proc in procs:
        try:
            proc.wait(max(deadline - time.time(), 0.1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def die_with_launcher(parent, signum):
    """preexec_fn of each task (Linux): signum when the launcher dies, however it dies (kill
    -9 included), so no task is left running forever: a worker gets SIGTERM (it saves and
    stops), a parameter server SIGHUP (it serves a little longer, for that save, then ends:
    distributed.Cluster.serve). Elsewhere nothing (stop() still ends the tasks on exit).
    The signal is set back to its default first: a launcher under `nohup` (SIGHUP ignored)
    would pass the ignoring on, and the task keeps what it inherits ignored."""
    def preexec():
        signal.signal(signum, signal.SIG_DFL)
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signum), 0, 0, 0)   # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            return
        if os.getppid() != parent:   # the launcher died before prctl: no signal would come
            os.kill(os.getpid(), signum)
    return preexec if sys.platform.startswith('linux') else None


def main(argv=None):
    args = parse_args(argv)
    n = args.ps + args.workers
    ports = (list(range(args.port, args.port + n)) if args.port else free_ports(n))
    hosts = ['localhost:{}'.format(port) for port in ports]
    flags = ['--ps-hosts', ','.join(hosts[:args.ps]), '--worker-hosts', ','.join(hosts[args.ps:])]
    flags += ['--sync'] if args.sync else []
    os.makedirs(args.logs, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    env.pop('TF_CONFIG', None)
    requested = []
    handler = lambda signum, frame: requested.append(signum)   # noqa: E731
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)
    tasks, threads, ended = [], [], []
    for job, count in (('ps', args.ps), ('worker', args.workers)):
        for index in range(count):
            name = '{} {}'.format(job, index)
            # Own sessions: a terminal's Ctrl-C reaches this launcher only, which stops the
            # workers first and the parameter servers last.
            proc = subprocess.Popen(
                args.command + flags + ['--job-name', job, '--task-index', str(index)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                encoding='utf-8', errors='replace', env=env, start_new_session=True,
                preexec_fn=die_with_launcher(os.getpid(), signal.SIGHUP if job == 'ps'
                                             else signal.SIGTERM))
            tasks.append((job, proc))
            log = os.path.join(args.logs, '{}-{}.log'.format(job, index))
            threads.append(threading.Thread(target=echo, args=(proc, name, log), daemon=True))
            threads[-1].start()
    print('cluster.py: {} ps and {} workers on {}; logs in {}; Ctrl-C stops them'.format(
        args.ps, args.workers, ', '.join(hosts), args.logs), flush=True)
    ps = [proc for job, proc in tasks if job == 'ps']
    workers = [proc for job, proc in tasks if job == 'worker']
    try:
        while True:
            failed = [p for p in workers if p.poll() not in (None, 0)]
            if requested or failed or any(p.poll() is not None for p in ps):
                break   # a task failed (or a ps ended): the cluster cannot go on
            if all(p.poll() is not None for p in workers):
                break
            time.sleep(0.2)
        ended = [p.returncode for p in ps if p.poll() is not None]   # before their time
        stop(workers)
    finally:
        stop(ps)
        for thread in threads:
            thread.join(5)
    codes = [p.returncode for p in workers]
    code = next((c for c in codes + ended if c), 0)
    if requested:
        print('cluster.py: stopped by {} (exit status {})'.format(
            'Ctrl-C' if requested[0] == signal.SIGINT else 'SIGTERM',
            ', '.join('worker {}: {}'.format(i, c) for i, c in enumerate(codes))), flush=True)
    return code if code >= 0 else 128 - code


if __name__ == '__main__':
    sys.exit(main())
