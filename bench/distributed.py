"""char_rnn.py on a cluster of this machine (cluster.py): aggregate training speed against one
process, and the parameter traffic of a step.

Each configuration trains the lecture's model from scratch with one intra- and inter-op
thread per task (--threads 1): one process (and, for comparison, one process of 2 threads,
all of this machine's cores); 1, 2 and 3 workers asynchronous; 2 and 3
workers --sync; always one parameter server. A worker's log lines give its characters (window
positions) per second over --skip-step steps; a cluster's speed is the sum over its workers of
the median of their lines (the first line, warm-up, left out).

    python bench/distributed.py --steps 300      # writes bench/results/distributed-<stack>.md
    python bench/distributed.py --quick          # a smoke run: tiny model, few steps
"""
from __future__ import print_function

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'bench'))

import common  # noqa: E402

# (row, workers (0: one process), --sync, threads per task)
CONFIGS = [('one process', 0, False, 1), ('one process, 2 threads', 0, False, 2),
           ('async, 1 worker', 1, False, 1), ('async, 2 workers', 2, False, 1),
           ('async, 3 workers', 3, False, 1), ('sync, 2 workers', 2, True, 1),
           ('sync, 3 workers', 3, True, 1)]


def one_run(workers, sync, threads, args, scratch):
    """Characters per second, summed over the workers, and the global step reached."""
    folder = tempfile.mkdtemp(dir=scratch)
    script = [sys.executable, os.path.join(ROOT, 'char_rnn.py'), '--data', args.data,
              '--steps', str(args.steps), '--threads', str(threads),
              '--skip-step', str(args.skip),
              '--sample-every', '0', '--eval-every', str(10 * args.steps),
              '--checkpoint-dir', os.path.join(folder, 'ckpt'),
              '--logdir', os.path.join(folder, 'logdir')] + args.extra
    argv = script if not workers else [
        sys.executable, os.path.join(ROOT, 'cluster.py'), '--workers', str(workers),
        '--logs', os.path.join(folder, 'logs')] + (['--sync'] if sync else []) + ['--'] + script
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    shutil.rmtree(folder, ignore_errors=True)
    if done.returncode:
        sys.exit('failed: {}\n{}'.format(' '.join(argv), done.stdout[-3000:]))
    per_task = {}
    for task, rate in re.findall(r'^(\[worker \d+\] )?    Loss .* ([\d,]+) chars/s$',
                                 done.stdout, re.M):
        per_task.setdefault(task, []).append(float(rate.replace(',', '')))
    return sum(statistics.median(rates[1:] or rates) for rates in per_task.values())


def parameter_bytes(args):
    """Bytes of the trainable variables of the model trained (float32)."""
    import char_rnn
    import utils
    from utils import tf
    cargs = char_rnn.parse_args(['--data', args.data] + args.extra)
    cfg = char_rnn.make_config(cargs)
    sizes = cargs.hidden_sizes or char_rnn.CONFIGS[cargs.config or 'lecture'].hidden_sizes
    with tf.Graph().as_default():
        char_rnn.build_model(char_rnn.TRUMP_VOCAB, sizes, cargs, cfg)
        return 4 * sum(v.shape.num_elements() for v in tf.trainable_variables()), utils.STACK


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--steps', type=int, default=300, help='global steps per run')
    p.add_argument('--skip', type=int, default=20, help='steps per log line (--skip-step)')
    p.add_argument('--data', default=common.tweets_path(None), help='the tweets')
    p.add_argument('--quick', action='store_true', help='tiny model, 30 steps: a smoke run')
    p.add_argument('--out', default=None,
                   help='markdown file (default bench/results/distributed-<stack>.md)')
    args = p.parse_args()
    args.extra = []
    if args.quick:
        args.steps, args.skip, args.extra = 30, 5, ['--config', 'tiny']
    load, started = os.getloadavg()[0], time.time()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        if not args.data:   # a clone without the tweets: tweet-like lines
            args.data = common.synthetic_tweets(os.path.join(scratch, 'tweets.txt'))
        weights, stack = parameter_bytes(args)
        out = args.out or os.path.join(ROOT, 'bench', 'results',
                                       'distributed-{}.md'.format(stack))
        for name, workers, sync, threads in CONFIGS:
            rate = one_run(workers, sync, threads, args, scratch)
            rows.append((name, workers, rate))
            print('{:18} {:>10,.0f} chars/s'.format(name, rate), flush=True)
    single = rows[0][2]
    lines = ['# char_rnn.py on one machine\'s cluster (cluster.py), {}'.format(stack), '',
             '- made with: `python {}`'.format(' '.join(shlex.quote(a) for a in
                                                          ['bench/distributed.py'] + sys.argv[1:])),
             '- {} CPUs, load average {:.2f} at the start, {:.2f} at the end; {:.0f} s'.format(
                 os.cpu_count(), load, os.getloadavg()[0], time.time() - started),
             '- every task with --threads 1 (but the second row); one parameter server; '
             '{} global steps a run{}'.format(
                 args.steps, ' (--quick: tiny model)' if args.quick else ''), '',
             '| run | workers | chars/s (sum over workers) | against one process |',
             '|---|--:|--:|--:|']
    for name, workers, rate in rows:
        lines.append('| {} | {} | {:,.0f} | {:.2f}x |'.format(name, workers or '-', rate,
                                                            rate / single))
    lines += ['', 'Parameter traffic per worker step: the worker reads every weight from the '
              'parameter server and sends back a gradient of the same size, {:,} bytes each '
              'way ({:,} bytes a step; a sync step adds a token of 8 bytes). Sparse reads '
              '(the one-hot rows) make it a little less.'.format(weights, 2 * weights), '']
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, 'w') as f:
        f.write('\n'.join(lines))
    print('wrote {}'.format(out))


if __name__ == '__main__':
    main()
