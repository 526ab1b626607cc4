"""The whole `python char_rnn.py` run, fast graph against --graph lecture, in wall seconds.

Everything a user waits for: start-up, data, graph building, training steps, log lines,
summaries, samples, validation and checkpoints. Each run starts from an empty checkpoint
folder; the two graphs alternate (A B A B ...) so that a drifting machine moves both.

    python bench/whole_run.py --steps 300 --pairs 2     # writes bench/results/whole-run-<stack>.md
"""
from __future__ import print_function

import argparse
import os
import re
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


def one_run(graph, steps, data, scratch):
    folder = tempfile.mkdtemp(dir=scratch)
    argv = [sys.executable, os.path.join(ROOT, 'char_rnn.py'), '--data', data, '--steps',
            str(steps), '--graph', graph, '--checkpoint-dir', os.path.join(folder, 'ckpt'),
            '--logdir', os.path.join(folder, 'logdir')]
    start = time.monotonic()
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    seconds = time.monotonic() - start
    shutil.rmtree(folder, ignore_errors=True)
    if done.returncode:
        sys.exit('char_rnn.py --graph {} failed:\n{}'.format(graph, done.stderr[-2000:]))
    losses = re.findall(r'Validation loss ([\d.]+) nats/char', done.stdout)
    return seconds, float(losses[-1]) if losses else float('nan')


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--steps', type=int, default=300, help='training steps per run')
    p.add_argument('--pairs', type=int, default=2, help='runs of each graph, alternating')
    p.add_argument('--data', default=common.tweets_path(None), help='the tweets')
    p.add_argument('--out', default=None, help='markdown file (default '
                   'bench/results/whole-run-<stack>.md)')
    args = p.parse_args()
    import utils
    out = args.out or os.path.join(ROOT, 'bench', 'results', 'whole-run-{}.md'.format(utils.STACK))
    load = os.getloadavg()[0]
    times, losses = {'lecture': [], 'fast': []}, {'lecture': [], 'fast': []}
    with tempfile.TemporaryDirectory() as scratch:
        for i in range(args.pairs):
            for graph in ('lecture', 'fast'):
                seconds, loss = one_run(graph, args.steps, args.data, scratch)
                times[graph].append(seconds)
                losses[graph].append(loss)
                print('{} run {}: {:.1f} s, last validation loss {:.4f}'.format(
                    graph, i + 1, seconds, loss), flush=True)
    ratios = [a / b for a, b in zip(times['lecture'], times['fast'])]
    cpu = next((line.split(':', 1)[1].strip() for line in open('/proc/cpuinfo')
                if line.startswith('model name')), os.uname().machine)
    info = 'TensorFlow {}, {}, {} cores'.format(utils.tf.__version__, cpu, os.cpu_count())
    lines = [
        '# The whole `python char_rnn.py --steps {}` run ({})'.format(args.steps, info), '',
        'Command: `python bench/whole_run.py --steps {} --pairs {}`, {}; 1-minute load '
        'average at the start: {:.2f}. Each run: a fresh checkpoint folder, the lecture '
        'config (log line every step, summaries every 10, samples, validation and checkpoints '
        'every 100 steps).'.format(args.steps, args.pairs, time.strftime('%Y-%m-%d %H:%M'),
                                   load), '',
        '| graph | wall seconds per run | median | last validation loss (nats/char) |',
        '|---|---|--:|--:|']
    for graph in ('lecture', 'fast'):
        lines.append('| {} | {} | {:.1f} | {} |'.format(
            '--graph lecture' if graph == 'lecture' else 'fast (default)',
            ', '.join('{:.1f}'.format(t) for t in times[graph]),
            statistics.median(times[graph]), ', '.join('{:.4f}'.format(v) for v in losses[graph])))
    lines += ['', 'Lecture / fast, pair by pair: {} (median {:.2f}x). Both graphs start from the '
              'same weights (--seed 0) and compute the same model: their validation losses '
              'differ by float rounding only.'.format(
                  ', '.join('{:.2f}'.format(r) for r in ratios), statistics.median(ratios)), '']
    with open(out, 'w') as f:
        f.write('\n'.join(lines))
    print('\n'.join(lines))
    print('written: ' + os.path.relpath(out, ROOT))


if __name__ == '__main__':
    main()
