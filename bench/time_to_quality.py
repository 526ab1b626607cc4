"""Validation loss against wall time: `python char_rnn.py` with two configs, same seed, same data.

Each run is the whole command a user types, from an empty checkpoint folder, that ends at
its config's --steps or is stopped by SIGINT (as Ctrl-C: it saves) when its minutes are up;
the wall time of each validation line counts from the start of the process (imports, data,
graph building, evaluations and checkpoints included). At the end, --sample prints samples
of each run's latest checkpoint.

    python bench/time_to_quality.py                 # the tweets, lecture vs ten-minutes, 10 min each
    python bench/time_to_quality.py --data fortunes.txt --name fortunes --vocab auto

fortunes.txt, Debian's fortunes (text files concatenated, the % separator lines dropped):

    apt-get download fortunes && dpkg-deb -x fortunes_*.deb fortunes
    find fortunes/usr/share/games/fortunes -type f ! -name '*.*' | sort | xargs cat \
        | grep -vx % > fortunes.txt
    python bench/time_to_quality.py --minutes 3 --configs lecture --flags "--lr 0.002"   # a probe

Writes bench/results/time-to-quality-<name>-<stack>.md (table by minute, samples) and .csv
(every validation: config, step, seconds, loss), and the table of every such .csv into
bench/results/time-to-quality.md.
"""
from __future__ import print_function

import argparse
import collections
import csv
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'bench'))

import common  # noqa: E402
from run import machine_info  # noqa: E402

MINUTES = (1, 2, 3, 5, 7.5, 10)
LOAD = '# load average at the start and at the end:'
SAMPLES = '# samples:'
VALIDATION = re.compile(r'Validation loss ([\d.]+) nats/char')
STEP = re.compile(r'^Iter (\d+)\.')
PER_STEP = re.compile(r'^(Iter \d+\. |    Loss [\d.]+\. Time )')


def one_run(label, argv, seconds, log):
    """[(step, wall seconds, validation loss)] of one run stopped by SIGINT after `seconds`."""
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            universal_newlines=True, bufsize=1)
    curve, step, stopped = [], 0, False
    with open(log, 'w') as out:
        out.write(' '.join(shlex.quote(a) for a in argv) + '\n')
        for line in proc.stdout:
            now = time.monotonic() - start
            match = STEP.match(line)
            if match:
                step = int(match.group(1)) + 1
            if step % 100 == 0 or not PER_STEP.match(line):   # the log lines of every 100th step
                out.write('[{:7.1f}] {}'.format(now, line))
            match = VALIDATION.search(line)
            if match:
                curve.append((step, round(now, 1), float(match.group(1))))
                print('  {:<8} step {:>6}  {:6.1f} s  validation {}'.format(
                    label, step, now, match.group(1)), flush=True)
            if not stopped and now > seconds:
                proc.send_signal(signal.SIGINT)
                stopped = True
        # A run that ends its last line before its time is up is stopped by the timer here.
    if proc.wait():
        sys.exit('{} failed (exit {}): see {}'.format(label, proc.returncode, log))
    return curve


def samples(argv_base, log):
    out = subprocess.run(argv_base + ['--sample'], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True)
    with open(log, 'a') as f:
        f.write(out.stdout)


def at_minute(curve, minute):
    """The last validation loss reported by `minute` minutes, and its step."""
    seen = [(step, loss) for step, t, loss in curve if t <= minute * 60]
    return seen[-1] if seen else None


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--data', default=common.tweets_path(None), help='training text')
    p.add_argument('--name', default='tweets', help='corpus name in the output file names')
    p.add_argument('--configs', default='lecture,ten-minutes', help='char_rnn.py --config values')
    p.add_argument('--minutes', type=float, default=10, help='wall minutes per run')
    p.add_argument('--vocab', default=None, help='char_rnn.py --vocab (auto: any text)')
    p.add_argument('--flags', default='', help='more char_rnn.py flags, for every run')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default=None, help='output stem (default '
                   'bench/results/time-to-quality-<name>-<stack>)')
    args = p.parse_args()
    import utils
    stem = args.out or os.path.join(ROOT, 'bench', 'results', 'time-to-quality-{}-{}'.format(
        args.name, utils.STACK))
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    configs = args.configs.split(',')
    import char_rnn
    unknown = [config for config in configs if config not in char_rnn.CONFIGS]
    if unknown:   # before ten minutes of the first run are spent
        p.error('no such char_rnn.py --config: {}'.format(', '.join(unknown)))
    curves = read_curves(stem + '.csv')   # configs not run now keep their last results
    with tempfile.TemporaryDirectory() as scratch:
        for config in configs:
            base = [sys.executable, os.path.join(ROOT, 'char_rnn.py'), '--data', args.data,
                    '--config', config, '--model', config, '--seed', str(args.seed),
                    '--checkpoint-dir', os.path.join(scratch, 'ckpt'),
                    '--logdir', os.path.join(scratch, 'logdir')]
            if args.vocab:
                base += ['--vocab', args.vocab]
            base += shlex.split(args.flags)
            log = stem + '-' + config + '.log'
            print('{}: {} minutes'.format(config, args.minutes), flush=True)
            load = os.getloadavg()[0]
            curves[config] = one_run(config, base, args.minutes * 60, log)
            with open(log, 'a') as f:
                f.write('{} {:.2f} {:.2f}\n{}\n'.format(LOAD, load, os.getloadavg()[0], SAMPLES))
            samples(base, log)
    with open(stem + '.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['config', 'step', 'seconds', 'validation_nats_per_char'])
        for config, curve in curves.items():
            for row in curve:
                writer.writerow([config] + list(row))
    render(stem, args.name, utils.STACK, curves)
    print('wrote {}.md and .csv'.format(stem))
    if not args.out:
        write_summary()


def read_curves(path):
    """{config: [(step, seconds, loss)]} of a result .csv, {} if there is none."""
    curves = collections.OrderedDict()
    if os.path.exists(path):
        with open(path, newline='') as f:
            for row in csv.DictReader(f):
                curves.setdefault(row['config'], []).append(
                    (int(row['step']), float(row['seconds']),
                     float(row['validation_nats_per_char'])))
    return curves


def shown(command):
    """A run's logged command as a user types it: no interpreter or scratch paths."""
    words, out = shlex.split(command)[2:], ['python', 'char_rnn.py']
    while words:
        word = words.pop(0)
        if word in ('--checkpoint-dir', '--logdir'):
            words.pop(0)
        elif word == '--data':
            out += [word, os.path.basename(words.pop(0))]
        else:
            out.append(word)
    return ' '.join(shlex.quote(word) for word in out)


def render(stem, name, stack, curves):
    """stem.md: the loss by minute of each config, its command, load and samples (its log)."""
    configs = list(curves)
    minutes = sorted(set(m for m in MINUTES if any(
        curve and curve[-1][1] >= m * 60 - 30 for curve in curves.values())) | {10})
    lines = ['# Validation loss against wall time: {} ({})'.format(name, stack), '',
             'Validation loss in nats per character (each run\'s own validation windows) by '
             'wall time since the command started; the step in brackets. Every validation: '
             '{}.csv; each run\'s output: {}-<config>.log. {}, {} cores.'.format(
                 os.path.basename(stem), os.path.basename(stem),
                 machine_info()['cpu'], machine_info()['cores']), '',
             '| minutes | ' + ' | '.join(configs) + ' |', '|---|' + '---|' * len(configs)]
    for minute in minutes:
        cells = []
        for config in configs:
            seen = at_minute(curves[config], minute)
            cells.append('{:.4f} ({})'.format(seen[1], seen[0]) if seen else '-')
        lines.append('| {:g} | {} |'.format(minute, ' | '.join(cells)))
    lines.append('| best | {} |'.format(' | '.join(
        '{:.4f}'.format(min(loss for _, _, loss in curves[c])) for c in configs)))
    for config in configs:
        with open('{}-{}.log'.format(stem, config)) as f:
            log = f.read().splitlines()
        load = next((line.split()[-2:] for line in log if line.startswith(LOAD)), ['?', '?'])
        sampled = log[log.index(SAMPLES) + 1:] if SAMPLES in log else []
        lines += ['', '## {}'.format(config), '', '    ' + shown(log[0]), '',
                  'Load average at the start {}, at the end {}. Samples of the latest '
                  'checkpoint (`--sample`):'.format(*load), '']
        lines += ['    ' + line for line in sampled]
    with open(stem + '.md', 'w') as f:
        f.write('\n'.join(lines) + '\n')


def write_summary():
    """One row per (corpus, stack, config) of every result .csv: the loss by minute."""
    folder = os.path.join(ROOT, 'bench', 'results')
    rows = []
    for name in sorted(os.listdir(folder)):
        match = re.match(r'time-to-quality-(.+)-(tf[12])\.csv$', name)
        if not match:
            continue
        runs = read_curves(os.path.join(folder, name))
        for config, curve in runs.items():
            cells = []
            for minute in MINUTES:
                seen = at_minute(curve, minute)
                cells.append('{:.3f}'.format(seen[1]) if seen else '-')
            last = curve[-1]
            rows.append('| {} | {} | {} | {} | {:.3f} | {:,} in {:.1f} min |'.format(
                match.group(1), match.group(2), config, ' | '.join(cells),
                min(loss for _, _, loss in curve), last[0], last[1] / 60))
    body = ['# Time to quality', '', 'Validation loss (nats/char) by wall minute since the command started, from '
            '`bench/results/time-to-quality-<corpus>-<stack>.md` (written by '
            '`bench/time_to_quality.py`, the commands there):', '',
            '| corpus | stack | config | ' + ' | '.join('{:g} min'.format(m) for m in MINUTES)
            + ' | best | steps |', '|---|---|---|' + '--:|' * (len(MINUTES) + 2)] + rows
    with open(os.path.join(folder, 'time-to-quality.md'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(body) + '\n')


if __name__ == '__main__':
    main()
