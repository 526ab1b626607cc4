"""Stream char-RNN against the small character transformer: validation loss against wall time.

For one corpus, `python char_rnn.py --config ten-minutes-stream` and then
`bench/char_transformer.py` (PyTorch, nanoGPT's CPU recipe) train for the same minutes on the
same machine, one after the other, with the same contiguous split (train the first 90% of the
file, validation the next 5%, test the last 5%). Each validation line is timed from the start
of its process (imports, data, model building and evaluations included). Both read the
WHOLE validation split at every evaluation; the transformer every --eval-seconds (60: its
default 30 would spend a sixth of its minutes on whole validations of a 2.5 MB corpus). At the
end: the RNN's latest checkpoint by `--evaluate val` and `--evaluate test`, the transformer's
own final evaluation of both splits, and samples of the RNN from a line break.

    python bench/stream_vs_transformer.py --data pystdlib.txt --torch-python .venv-tf2/bin/python
    python bench/stream_vs_transformer.py --data pystdlib.txt --minutes 3 --models rnn \\
        --flags "--cell gru" --out bench/results/stream-probes/gru     # a probe

The corpora (docs/streams.md):

    (export LC_ALL=C; cat /usr/lib/python3.11/*.py | head -n 70000 > pystdlib.txt)
    apt-get download fortunes && dpkg-deb -x fortunes_*.deb fortunes
    (export LC_ALL=C; find fortunes/usr/share/games/fortunes -type f ! -name '*.*' | sort \\
        | xargs cat > fortunes.txt)

Writes bench/results/stream-vs-transformer-<name>-<stack>.md (loss by minute of both, the
final losses, commands, load, samples), .csv (every evaluation) and each run's .log.
"""
from __future__ import print_function

import argparse
import csv
import hashlib
import json
import math
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'bench'))

from run import machine_info  # noqa: E402
from time_to_quality import MINUTES, at_minute, one_run, shown  # noqa: E402

CONFIG = 'ten-minutes-stream'
NAMES = {'rnn': 'char-RNN --config ' + CONFIG, 'transformer': 'char transformer'}
PROGRESS = re.compile(r'^t \d+s step (\d+) .* val ([\d.]+) nats/char')
EVALUATED = re.compile(r'characters scored.*: ([\d.]+) nats/char')
SAMPLE_SEEDS = (1, 2)


def uptime():
    return subprocess.check_output(['uptime'], universal_newlines=True).strip()


def run_rnn(args, scratch, log):
    """The RNN's run: {curve, final, command, load, samples}."""
    base = [sys.executable, os.path.join(ROOT, 'char_rnn.py'), '--config', CONFIG,
            '--data', args.data, '--model', 'stream', '--seed', str(args.seed),
            '--checkpoint-dir', os.path.join(scratch, 'ckpt'),
            '--logdir', os.path.join(scratch, 'logdir')]
    base += ['--minutes', '{:g}'.format(args.minutes)] if args.minutes != 10 else []
    base += shlex.split(args.flags)
    before = uptime()
    # The run ends itself at --minutes; the margin only stops one that hangs.
    curve = one_run('rnn', base, args.minutes * 60 + 600, log)
    result = dict(curve=curve, command=shown(' '.join(shlex.quote(a) for a in base)),
                  load=[before, uptime()], final={'steps': curve[-1][0]}, samples=[])
    for split in ('val', 'test'):
        out = subprocess.run(base + ['--evaluate', split], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, universal_newlines=True).stdout
        with open(log, 'a') as f:
            f.write(out)
        result['final'][split] = float(EVALUATED.search(out).group(1))
    for seed in SAMPLE_SEEDS:
        result['samples'].append(subprocess.run(
            base + ['--sample', '--prime', '\n', '-n', '400', '--end-marker', '', '--seed',
                    str(seed)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            universal_newlines=True, check=True).stdout.rstrip('\n'))
    return result


def run_transformer(args, scratch, log):
    """The transformer's run: {curve, final, command, load}."""
    out = os.path.join(scratch, 'transformer.json')
    flags = ['--data', args.data, '--minutes', '{:g}'.format(args.minutes), '--seed',
             str(args.seed), '--threads', '2', '--eval-seconds', '{:g}'.format(args.eval_seconds)]
    argv = [args.torch_python, os.path.join(ROOT, 'bench', 'char_transformer.py'), '--out',
            out] + flags + shlex.split(args.transformer_flags)
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_WAIT_POLICY='PASSIVE')
    before, curve = uptime(), []
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            universal_newlines=True, bufsize=1)
    with open(log, 'w') as f:
        f.write(' '.join(shlex.quote(a) for a in argv) + '\n')
        for line in proc.stdout:
            now = time.monotonic() - start
            f.write('[{:7.1f}] {}'.format(now, line))
            match = PROGRESS.match(line)
            if match:
                curve.append((int(match.group(1)), round(now, 1), float(match.group(2))))
                print('  {:<8} step {:>6}  {:6.1f} s  validation {}'.format(
                    'gpt', match.group(1), now, match.group(2)), flush=True)
    if proc.wait():
        sys.exit('the transformer failed (exit {}): see {}'.format(proc.returncode, log))
    with open(out) as f:
        final = json.load(f)['final']
    command = ' '.join(['python', 'bench/char_transformer.py'] + [shlex.quote(
        os.path.basename(a) if a == args.data else a) for a in flags + shlex.split(
            args.transformer_flags)])
    return dict(curve=curve, final=final, command=command, load=[before, uptime()])


def fence(text):
    """A Markdown code fence longer than any run of backticks in text."""
    return '`' * max([3] + [len(run) + 1 for run in re.findall('`+', text)])


def render(stem, args, results, corpus, stack):
    models = list(results)
    ln2 = math.log(2)
    info = machine_info()
    lines = [
        '# Stream char-RNN against the character transformer: {} ({})'.format(
            args.name, stack), '',
        'Corpus `{}`: {:,} characters, sha256 `{}`; split by position: train the first 90%, '
        'validation the next 5%, test the last 5%. Validation loss in nats per character over '
        'the WHOLE validation split by wall time since each command started (step in '
        'brackets; the last evaluation by that minute). Same machine, one run after the '
        'other, {:g} minutes each: {}, {} cores. Every evaluation: {}.csv; each run\'s '
        'output: {}-<model>.log.'.format(
            os.path.basename(args.data), corpus['chars'], corpus['sha256'], args.minutes,
            info['cpu'], info['cores'], os.path.basename(stem), os.path.basename(stem)), '',
        '| minutes | ' + ' | '.join(NAMES[m] for m in models) + ' |',
        '|--:|' + '--:|' * len(models)]
    ends = [results[m]['curve'][-1][1] for m in models]
    for minute in sorted(set(m for m in MINUTES if m < args.minutes) | {args.minutes}):
        if minute * 60 - 30 > max(ends):
            continue
        cells = []
        for model in models:
            seen = at_minute(results[model]['curve'], minute)
            cells.append('{:.4f} ({:,})'.format(seen[1], seen[0]) if seen else '-')
        lines.append('| {:g} | {} |'.format(minute, ' | '.join(cells)))
    lines.append('| end (minutes) | {} |'.format(' | '.join(
        '{:.4f} ({:,}) at {:.2f}'.format(c[-1][2], c[-1][0], c[-1][1] / 60) for c in
        (results[m]['curve'] for m in models))))
    for split in ('val', 'test'):
        lines.append('| final {}, nats (bits) | {} |'.format(split, ' | '.join(
            '**{:.4f}** ({:.4f})'.format(results[m]['final'][split],
                                         results[m]['final'][split] / ln2) for m in models)))
    lines += ['', 'Final: the RNN\'s latest checkpoint by `--evaluate val` and `--evaluate '
              'test`; the transformer\'s own evaluation of both splits at the end of its '
              'minutes. Both score every character of a split (the first only conditions).']
    for model in models:
        r = results[model]
        lines += ['', '## ' + NAMES[model], '', '    ' + r['command'], '',
                  'Load: before `{}`; after `{}`.'.format(*r['load'])]
        for i, sample in enumerate(r.get('samples', [])):
            marks = fence(sample)
            lines += ['', 'Sample {} of the latest checkpoint (`--sample --prime \'\\n\' -n '
                      '400 --end-marker \'\' --seed {}`):'.format(i + 1, SAMPLE_SEEDS[i]), '',
                      marks, sample.lstrip('\n'), marks]
    with open(stem + '.md', 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    with open(stem + '.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['model', 'evaluation', 'step', 'seconds', 'nats_per_char',
                         'bits_per_char'])
        for model in models:
            r = results[model]
            for step, seconds, loss in r['curve']:
                writer.writerow([model, 'val', step, seconds, loss, round(loss / ln2, 4)])
            for split in ('val', 'test'):
                loss = r['final'][split]
                writer.writerow([model, 'final ' + split, r['final']['steps'],
                                 r['curve'][-1][1], loss, round(loss / ln2, 4)])


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--data', required=True, help='the corpus, a UTF-8 text file')
    p.add_argument('--name', help='corpus name in the file names (default: --data\'s stem)')
    p.add_argument('--minutes', type=float, default=10, help='wall minutes per run')
    p.add_argument('--models', default='rnn,transformer', help='rnn, transformer or both')
    p.add_argument('--flags', default='', help='more char_rnn.py flags')
    p.add_argument('--transformer-flags', default='', help='more char_transformer.py flags')
    p.add_argument('--eval-seconds', type=float, default=60,
                   help='the transformer\'s validation period')
    p.add_argument('--torch-python', default=os.environ.get(
        'TORCH_PYTHON', os.path.join(ROOT, '.venv-tf2', 'bin', 'python')),
        help='the Python with PyTorch (default: $TORCH_PYTHON, else .venv-tf2/bin/python)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', help='output stem (default: '
                   'bench/results/stream-vs-transformer-<name>-<stack>)')
    args = p.parse_args()
    args.name = args.name or os.path.splitext(os.path.basename(args.data))[0]
    models = args.models.split(',')
    if not models or set(models) - set(NAMES):
        p.error('--models: rnn, transformer, or rnn,transformer')
    if 'transformer' in models and not os.path.exists(args.torch_python):
        p.error('no {}: --torch-python'.format(args.torch_python))
    import utils
    stem = args.out or os.path.join(ROOT, 'bench', 'results', 'stream-vs-transformer-{}-{}'
                                    .format(args.name, utils.STACK))
    os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
    with open(args.data, 'rb') as f:
        raw = f.read()
    corpus = dict(chars=len(raw.decode('utf-8')), sha256=hashlib.sha256(raw).hexdigest())
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for model in models:
            print('{}: {:g} minutes'.format(NAMES[model], args.minutes), flush=True)
            run = run_rnn if model == 'rnn' else run_transformer
            results[model] = run(args, scratch, '{}-{}.log'.format(stem, model))
            print('  final val {val:.4f}, test {test:.4f} nats/char'.format(
                **results[model]['final']), flush=True)
    render(stem, args, results, corpus, utils.STACK)
    print('wrote {}.md and .csv'.format(stem))


if __name__ == '__main__':
    main()
