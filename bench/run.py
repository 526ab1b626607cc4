"""Benchmarks: the project against the seeds' own graphs and peer frameworks.

    make bench STACK=tf1 && make bench STACK=tf2    # both stacks into one BENCHMARKS.md
    python bench/run.py                             # the stack of this interpreter
    python bench/run.py --quick                     # smoke test: few steps, 2 repeats
    python bench/run.py --only char/lecture,gen     # a subset (names or prefixes; --list)
    python bench/run.py --only char/lecture+fused   # the lecture graph with the GRUBlockCell kernel

Every case runs in its own subprocess (a fresh graph; 2 intra-op and 2
inter-op threads, OMP/MKL 2, torch 2), times `repeats` blocks of steps after a
warm-up, and reports the median and the best block, and the child's peak RSS.
Results go to bench/results/<stack>.json; BENCHMARKS.md is rendered from every
result file there, so running both stacks gives one table. --quick writes to
bench/results/quick/ instead and never touches BENCHMARKS.md.
"""
from __future__ import print_function

import argparse
import datetime
import fnmatch
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time

import common
from common import ROOT

RESULTS = os.path.join(ROOT, 'bench', 'results')
STACKS = ('tf1', 'tf2')
STACK_NAMES = {'tf1': 'TF1', 'tf2': 'TF2'}

# Steps per timed block, blocks (repeats) and warm-up steps, full and --quick.
# Full: about 10 minutes per stack on 2 cores.
CHAR = dict(steps=30, repeats=5, warmup=5)            # ~0.05-0.12 s per lecture step
CHAR_QUICK = dict(steps=3, repeats=2, warmup=2)
MNIST = dict(steps=50, repeats=5, warmup=10)          # ~3-15 ms per notebook step
MNIST_QUICK = dict(steps=5, repeats=2, warmup=2)
GEN = dict(repeats=5)                                 # lecture: ~0.6-1.6 s per run
GEN_QUICK = dict(repeats=1)
PEAK = dict(n=2048, runs=10, repeats=5, warmup=2)     # ~0.05-0.15 s per matmul
PEAK_QUICK = dict(n=2048, runs=2, repeats=2, warmup=1)
STEP_MATMULS = dict(iterations=500, runs=5, repeats=5, warmup=1)   # ~0.15 s per run
STEP_MATMULS_QUICK = dict(iterations=500, runs=1, repeats=2, warmup=1)

TIMEOUT = 900       # seconds for one case before it is killed
TIMEOUT_QUICK = 300

MNIST_CELLS = ('basic_rnn', 'basic_lstm', 'lstm', 'gru', 'ln_basic_lstm')
# tf.keras' own cells, for reference beside the notebook's cell of the same kind.
KERAS_FOR_CELL = {'basic_rnn': ('simple_rnn', 'SimpleRNN'), 'lstm': ('lstm', 'LSTM'),
                  'gru': ('gru', 'GRU')}

SECTIONS = [
    ('peak', 'Practical peak: float32 matmul (GFLOP/s, higher is better)'),
    ('char', 'char_rnn training throughput (characters per second, higher is better)'),
    ('gen', 'Generation: 11 seeds x 200 characters (seconds per run, lower is better)'),
    ('mnist', 'mnist_rnn training step, batch 128 (milliseconds per step, lower is better)'),
]


class Case(object):
    """One benchmark: module.func(**params) in a child process."""

    def __init__(self, name, section, label, module, func, params, baseline=None,
                 stacks=STACKS, env=None):
        self.name, self.section, self.label = name, section, label
        self.module, self.func, self.params = module, func, params
        self.baseline, self.stacks, self.env = baseline, stacks, env or {}


def all_cases(quick, tweets):
    char = dict(CHAR_QUICK if quick else CHAR, tweets=tweets)
    mnist = MNIST_QUICK if quick else MNIST
    gen = GEN_QUICK if quick else GEN
    cases = [
        Case('peak/matmul', 'peak', 'tf.matmul 2048 x 2048 float32', 'peak', 'bench_matmul',
             dict(PEAK_QUICK if quick else PEAK)),
        Case('peak/step-matmuls', 'peak', "the char model's per-step GRU matmuls at batch 64",
             'peak', 'bench_step_matmuls', dict(STEP_MATMULS_QUICK if quick else STEP_MATMULS)),
        Case('char/lecture', 'char', 'lecture graph (baseline): one-hot, GRUCell, feed_dict',
             'lecture_char_rnn', 'bench_train', dict(char), baseline='char/lecture'),
        Case('char/project', 'char', 'char_rnn.py (its fast graph), generation off', 'project',
             'char_train', dict(char), baseline='char/lecture'),
        Case('char/project+lecture-graph', 'char', 'char_rnn.py --graph lecture, generation off',
             'project', 'char_train', dict(char, graph='lecture'), baseline='char/lecture'),
    ]
    cases += [
        # The lecture graph's one lever left (bench/lecture_char_rnn.py); the others measured
        # there were level or slower and are gone: bench/results/2026-11-23-levers/.
        Case('char/lecture+fused', 'char', 'lecture + fused GRUBlockCell kernel',
             'lecture_char_rnn', 'bench_train', dict(char, levers=['fused']),
             baseline='char/lecture'),
        Case('char/keras', 'char', 'tf.keras Model.fit (TF2 eager + tf.function)', 'peers',
             'keras_char_train', dict(char), baseline='char/lecture', stacks=('tf2',)),
        Case('char/torch', 'char', 'PyTorch CPU (torch.nn.GRU)', 'peers', 'torch_char_train',
             dict(char), baseline='char/lecture', stacks=('tf2',)),
        Case('gen/lecture', 'gen', "lecture's online_infer (baseline): one session call per char",
             'lecture_char_rnn', 'bench_generate', dict(gen), baseline='gen/lecture'),
        Case('gen/project', 'gen', 'char_rnn.py fast generation', 'project', 'char_generate',
             dict(gen), baseline='gen/lecture'),
    ]
    for cell in MNIST_CELLS:
        base = 'mnist/notebook/' + cell
        cases.append(Case(base, 'mnist', '{}: notebook graph (baseline)'.format(cell),
                          'notebook_mnist_rnn', 'bench_step', dict(mnist, cell=cell),
                          baseline=base))
        cases.append(Case('mnist/project/' + cell, 'mnist', '{}: mnist_rnn.py'.format(cell),
                          'project', 'mnist_step', dict(mnist, cell=cell), baseline=base))
        cases.append(Case('mnist/project+notebook-graph/' + cell, 'mnist',
                          '{}: mnist_rnn.py --graph notebook'.format(cell), 'project',
                          'mnist_step', dict(mnist, cell=cell, graph='notebook'),
                          baseline=base))
        if cell in KERAS_FOR_CELL:
            keras_cell, keras_class = KERAS_FOR_CELL[cell]
            cases.append(Case('mnist/keras/' + keras_cell, 'mnist',
                              '{}: tf.keras {} (reference)'.format(cell, keras_class), 'peers',
                              'keras_mnist_step', dict(mnist, cell=keras_cell), baseline=base,
                              stacks=('tf2',)))
    return cases


def select(cases, only):
    """The cases whose name matches one of the comma-separated patterns (name, prefix or glob)."""
    if not only:
        return cases
    chosen, seen = [], set()
    for pattern in [p.strip() for p in only.split(',') if p.strip()]:
        matched = [c for c in cases if fnmatch.fnmatchcase(c.name, pattern)
                   or c.name == pattern or c.name.startswith(pattern.rstrip('/') + '/')]
        if not matched:
            raise LookupError('no benchmark matches {!r} (see --list)'.format(pattern))
        for case in matched:
            if case.name not in seen:
                seen.add(case.name)
                chosen.append(case)
    return chosen


# ---------------------------------------------------------------------------
# Running one case in a child process.
# ---------------------------------------------------------------------------

def child_env(case):
    env = dict(os.environ)
    env.update(common.THREAD_ENV)
    env.pop('TF_USE_LEGACY_KERAS', None)  # utils.py sets it for its own process
    for key, value in case.env.items():
        env[key] = (env.get(key, '') + ' ' + value).strip()
    env['PYTHONPATH'] = os.pathsep.join(
        [os.path.join(ROOT, 'bench'), ROOT] + [p for p in [env.get('PYTHONPATH')] if p])
    return env


def run_child(case, log_path, timeout):
    """Runs the case in a child; returns its result dict with wall time and peak RSS."""
    result_path = log_path[:-len('.log')] + '.json'
    if os.path.exists(result_path):
        os.remove(result_path)
    command = [sys.executable, os.path.abspath(__file__), '--child', case.name,
               '--module', case.module, '--func', case.func,
               '--params', json.dumps(case.params), '--result', result_path]
    load = os.getloadavg()[0]
    busy = busy_cpu_seconds()
    start = time.time()
    with open(log_path, 'w') as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   env=child_env(case), cwd=ROOT, start_new_session=True)
        timed_out = False
        try:
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                if time.time() - start > timeout:
                    timed_out = True
                    os.killpg(process.pid, signal.SIGKILL)
                    pid, status, usage = os.wait4(process.pid, 0)
                    break
                time.sleep(0.1)
        except KeyboardInterrupt:  # the child runs in its own session: Ctrl-C must end it here
            os.killpg(process.pid, signal.SIGKILL)
            os.wait4(process.pid, 0)
            raise
        process.returncode = os.waitstatus_to_exitcode(status) if hasattr(
            os, 'waitstatus_to_exitcode') else (status >> 8 if os.WIFEXITED(status) else -1)
    wall = time.time() - start
    # The CPU time of everything but the child while it ran, in cores (its own 2 threads
    # show in the load average for a minute after it ends: that is no other process).
    others = (busy_cpu_seconds() - busy - usage.ru_utime - usage.ru_stime) / max(wall, 1e-9)
    out = {}
    if os.path.exists(result_path):
        with open(result_path) as f:
            out = json.load(f)
    if timed_out:
        out = {'error': 'killed after {} s'.format(timeout)}
    elif process.returncode != 0 and 'error' not in out:
        out = {'error': 'exit code {}: {}'.format(process.returncode, last_line(log_path))}
    out.update(wall_s=round(wall, 1), rss_mb=round(usage.ru_maxrss / 1024.0, 1),
               load=round(load, 2), others=round(max(others, 0.0), 2), params=case.params,
               log=os.path.relpath(log_path, ROOT))
    return out


def busy_cpu_seconds():
    """CPU seconds the machine has spent busy since boot, every core (/proc/stat), or 0."""
    try:
        with open('/proc/stat') as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = sum(fields[3:5])   # idle and iowait; guest time is counted in user already
    return (sum(fields[:8]) - idle) / float(os.sysconf('SC_CLK_TCK'))


def last_line(path):
    with open(path, errors='replace') as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[-1] if lines else '(no output)'


def child_main(args):
    """In the child: call the case's function and write what it returns as JSON."""
    import importlib
    import traceback
    try:
        module = importlib.import_module(args.module)
        out = getattr(module, args.func)(**json.loads(args.params))
        code = 0
    except Exception as e:  # reported in the table, the traceback stays in the log
        traceback.print_exc()
        out = {'error': '{}: {}'.format(type(e).__name__, error_line(e))}
        code = 1
    with open(args.result, 'w') as f:
        json.dump(out, f)
    return code


def error_line(error):
    """The telling line of an exception's message (TensorFlow's start with 'in user code:')."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return ''
    line = lines[-1] if lines[0].endswith(':') else lines[0]
    return line[:300]


def stack_info():
    """This interpreter's stack and versions, from a child (the parent imports no TensorFlow)."""
    code = r'''
import json, platform, sys
import utils, numpy
info = {"stack": utils.STACK, "python": platform.python_version(),
        "tensorflow": utils.tensorflow.__version__, "numpy": numpy.__version__}
for name in ("keras", "torch"):
    try:
        info[name] = __import__(name).__version__
    except Exception:
        pass
print(json.dumps(info))
'''
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, '-c', code], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env, cwd=ROOT, universal_newlines=True)
    if out.returncode != 0:
        raise SystemExit('run.py: error: cannot import the stack: {}'.format(
            (out.stderr.strip().splitlines() or ['?'])[-1]))
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine_info():
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    memory = ''
    try:
        with open('/proc/meminfo') as f:
            kb = int(f.readline().split()[1])
            memory = '{:.0f} GiB'.format(kb / 1024.0 ** 2)
    except (OSError, ValueError, IndexError):
        pass
    return {'cpu': cpu, 'cores': os.cpu_count(), 'memory': memory,
            'os': '{} {}'.format(platform.system(), platform.release())}


# ---------------------------------------------------------------------------
# Figures and the BENCHMARKS.md table.
# ---------------------------------------------------------------------------

def per_unit(r, which):
    """Seconds per unit of work: of the median block or of the best block."""
    seconds = statistics.median(r['seconds']) if which == 'median' else min(r['seconds'])
    return seconds / r['units']


def display(r, which):
    s = per_unit(r, which)
    unit = r['unit']
    if unit == 'char':
        return '{:,.0f}'.format(1.0 / s)
    if unit == 'flop':
        return '{:.1f}'.format(1.0 / s / 1e9)
    if unit == 'step':
        return '{:.2f}'.format(s * 1e3)
    return '{:.3f}'.format(s)


def ok(r):
    return r is not None and 'seconds' in r and r['seconds']


def speedup(r, base):
    """How many times faster than the baseline (median blocks)."""
    if not ok(r) or not ok(base):
        return None
    return per_unit(base, 'median') / per_unit(r, 'median')


def peak_gflops(results, name='peak/matmul'):
    peak = results.get(name)
    return 1.0 / per_unit(peak, 'best') / 1e9 if ok(peak) else None


def char_efficiency(r, results, flops_per_char):
    """Model FLOP rate (median block) as a fraction of the best matmul block."""
    peak = peak_gflops(results)
    if not ok(r) or not peak:
        return None
    return flops_per_char / per_unit(r, 'median') / 1e9 / peak


def render(runs, cases_by_name, results_dir):
    """BENCHMARKS.md from the result files of one or both stacks (cases_by_name in table order)."""
    stacks = [s for s in STACKS if s in runs]
    flops_per_char = common.char_model_flops_per_char()
    lines = ['# Benchmarks', '',
             'Rendered by `bench/run.py` from ' + ', '.join(
                 '`{}`'.format(os.path.relpath(os.path.join(results_dir, s + '.json'), ROOT))
                 for s in stacks) + '. '
             'Every figure is a block of timed steps after a warm-up, in a fresh subprocess '
             'per row (2 intra-op and 2 inter-op threads, OMP/MKL 2, torch 2); "median" and '
             '"best" are over the blocks; "x baseline" compares medians (above 1: faster than '
             'the seed\'s own graph on the same stack); RSS is the peak resident memory of the '
             'row\'s process (TensorFlow and its imports included).', '']
    lines += ['| | ' + ' | '.join(STACK_NAMES[s] for s in stacks) + ' |',
              '|---|' + '---|' * len(stacks)]
    rows = [('machine', lambda run: '{cpu}, {cores} cores, {memory}'.format(**run['machine'])),
            ('stack', lambda run: ', '.join('{} {}'.format(k, run['versions'][k]) for k in (
                'python', 'tensorflow', 'numpy', 'keras', 'torch') if k in run['versions'])),
            ('date', lambda run: run['date']),
            ('command', lambda run: '`{}`'.format(run['command'])),
            ('char data', lambda run: run['data'])]
    for title, get in rows:
        lines.append('| {} | {} |'.format(title, ' | '.join(get(runs[s]) for s in stacks)))
    lines.append('')
    notes = []
    for section, title in SECTIONS:
        names = []
        for s in stacks:
            for name in runs[s]['order']:
                if cases_by_name.get(name, None) is not None and \
                        cases_by_name[name].section == section and name not in names:
                    names.append(name)
        if not names:
            continue
        order = {name: i for i, name in enumerate(cases_by_name)}
        names.sort(key=lambda name: order.get(name, len(order)))
        lines += ['## ' + title, '']
        header, align = ['benchmark'], ['---']
        for s in stacks:
            header += ['{} median'.format(STACK_NAMES[s]), 'best']
            if section != 'peak':
                header.append('x baseline')
            if section == 'char':
                header.append('% of peak')
            header.append('RSS MB')
        align += ['--:'] * (len(header) - 1)
        lines += ['| ' + ' | '.join(header) + ' |', '|' + '|'.join(align) + '|']
        for name in names:
            case = cases_by_name[name]
            cells = [case.label]
            for s in stacks:
                results = runs[s]['results']
                r = results.get(name)
                width = 3 + (section != 'peak') + (section == 'char')
                if r is None or not ok(r):
                    if r is None:
                        cells += ['n/a'] + [''] * (width - 1)
                    else:
                        reason = r.get('skipped') or r.get('error') or 'no figure'
                        notes.append('{} on {}: {}'.format(name, STACK_NAMES[s], reason))
                        cells += ['{} [{}]'.format('skipped' if 'skipped' in r else 'failed',
                                                   len(notes))]
                        cells += [''] * (width - 1)
                    continue
                cells += [display(r, 'median'), display(r, 'best')]
                if section != 'peak':
                    x = speedup(r, results.get(case.baseline))
                    cells.append('' if x is None else '{:.2f}'.format(x))
                if section == 'char':
                    e = char_efficiency(r, results, flops_per_char)
                    cells.append('' if e is None else '{:.0f}%'.format(100 * e))
                cells.append('{:.0f}'.format(r['rss_mb']))
            lines.append('| ' + ' | '.join(cells) + ' |')
        lines.append('')
        if section == 'peak':
            ratios = []
            for s in stacks:
                big = peak_gflops(runs[s]['results'])
                small = peak_gflops(runs[s]['results'], 'peak/step-matmuls')
                if big and small:
                    ratios.append('{:.0f}% on {}'.format(100 * small / big, STACK_NAMES[s]))
            lines += ['The 2048 x 2048 matmul (best block) is the "peak" of the char table. The '
                      'per-step row runs, in a tf.while_loop, the four matmuls a GRU step of the '
                      'char model makes at batch 64 ([64, n + h] by [n + h, 2h] and [n + h, h] '
                      'per layer): the matmul ceiling of any graph that steps through time 64 '
                      'rows at a time' + (' ({} of the large matmul).'.format(', '.join(ratios))
                                          if ratios else '.'), '']
        if section == 'char':
            lines += [
                '"% of peak": the char model\'s FLOP rate (median block) over the best matmul '
                'block of the same run. FLOPs per character = ' + common.FLOPS_FORMULA
                + ' = {:,} with V = {} (the lecture\'s one-hot depth; the same nominal count for '
                'every row, whatever it computes). Characters per second = 64 x 50 window '
                'positions per step / seconds per step.'.format(flops_per_char, len(common.VOCAB)),
                '', 'lecture + fused: the lecture graph with the GRUBlockCell kernel, the same '
                'loss and gradients for the same weights (tests/test_bench_levers.py); the '
                'other levers of the lecture graph, level or slower: '
                'bench/results/2026-11-23-levers/. tf.keras and PyTorch: one-hot of depth V + 1, their '
                'default GRU (reset_after formulation), same sizes, batch, window, summed loss '
                'and Adam.', '', 'char_rnn.py: the model of its build_model (lecture config, '
                'trump vocabulary), its own batches (numpy windows of every line), the '
                'sess.run([loss, opt]) of its training loop, without the loop\'s log line and '
                'its summaries every 10 steps.', '']
        if section == 'gen':
            lines += ['Untrained weights (the time per character does not depend on them). '
                      'The lecture makes one session call per character (2,200 per run) and runs '
                      'once when a run takes over 10 s. char_rnn.py: its generate(), one session '
                      'call for all seeds (an in-graph loop).', '']
        if section == 'mnist':
            lines += ['MNIST-shaped random data (images uniform in [0, 1), labels 0-9): the time '
                      'per step does not depend on the values. The notebook\'s step fetches '
                      '[optimize, loss, accuracy, check] with a feed_dict per batch of 128; '
                      'tf.keras is Model.fit with its default cells, for reference. '
                      'mnist_rnn.py: its MnistRnn and DataSet batches, the sess.run of its '
                      'training loop, without the loop\'s per-step summary.', '']
    if notes:
        lines += ['## Notes', ''] + ['{}. {}'.format(i + 1, n) for i, n in enumerate(notes)] + ['']
    lines += ['## Raw blocks', '', 'Seconds per timed block, the block\'s size, the row\'s wall '
              'time (start-up included), the 1-minute load average when it started (the rows '
              'before it count there for a minute), and "others": the CPU time every other '
              'process took while the row ran, in cores (of 2; above ~0.1 something else was '
              'running: expect noise).', '',
              '| stack | benchmark | block | seconds per block | wall s | load | others |',
              '|---|---|---|---|--:|--:|--:|']
    for s in stacks:
        for name in runs[s]['order']:
            r = runs[s]['results'].get(name)
            if ok(r):
                size = ('{:.3g} FLOPs'.format(r['units']) if r['unit'] == 'flop' else
                        '{} {}{}'.format(r['units'], r['unit'], 's' if r['units'] != 1 else ''))
                lines.append('| {} | {} | {} | {} | {} | {} | {} |'.format(
                    STACK_NAMES[s], name, size, ' '.join('{:.3f}'.format(x) for x in r['seconds']),
                    r['wall_s'], r.get('load', ''), r.get('others', '')))
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------

def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError('must be 1 or more, not {}'.format(text))
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('--quick', action='store_true',
                        help='smoke test: few steps, 2 repeats; results under bench/results/quick/')
    parser.add_argument('--only', metavar='NAMES',
                        help='comma-separated benchmark names, prefixes (char, mnist/notebook) or '
                             'globs')
    parser.add_argument('--tweets', metavar='PATH',
                        help='tweets for the char benchmarks (default data/trump_tweets.txt, else '
                             '../shared/data/trump_tweets.txt, else a synthetic corpus)')
    parser.add_argument('--repeats', type=positive_int, metavar='N',
                        help='timed blocks per benchmark (default 5, --quick 2)')
    parser.add_argument('--list', action='store_true', help='list the benchmarks and exit')
    parser.add_argument('--results', metavar='DIR',
                        help='folder of the result files and logs (default bench/results; with '
                             '--quick bench/results/quick)')
    parser.add_argument('--out', metavar='PATH',
                        help='the markdown file (default BENCHMARKS.md; with --quick or '
                             '--results: BENCHMARKS.md in the results folder)')
    for name in ('--child', '--module', '--func', '--params', '--result'):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)

    if args.tweets and not os.path.isfile(args.tweets):
        parser.error('--tweets {}: no such file'.format(args.tweets))
    results_dir = os.path.abspath(args.results) if args.results else (
        os.path.join(RESULTS, 'quick') if args.quick else RESULTS)
    common_tweets = common.tweets_path(args.tweets)
    if common_tweets:
        tweets, data = common_tweets, '`{}`'.format(os.path.relpath(common_tweets, ROOT))
    else:
        os.makedirs(results_dir, exist_ok=True)
        tweets = common.synthetic_tweets(os.path.join(results_dir, 'synthetic_tweets.txt'))
        data = 'synthetic (no trump_tweets.txt found)'
    cases = all_cases(args.quick, tweets)
    if args.list:
        for case in cases:
            print('{:28s} {}{}'.format(case.name, case.label, '' if case.stacks == STACKS
                                       else ' [{} only]'.format(', '.join(case.stacks))))
        return 0
    try:
        chosen = select(cases, args.only)
    except LookupError as e:
        parser.error(str(e))
    if args.repeats:
        for case in chosen:
            case.params['repeats'] = args.repeats

    info = stack_info()
    stack = info['stack']
    chosen = [c for c in chosen if stack in c.stacks]
    logs = os.path.join(results_dir, 'logs', stack)
    os.makedirs(logs, exist_ok=True)
    result_file = os.path.join(results_dir, stack + '.json')
    run = {'results': {}, 'order': []}
    if args.only and os.path.exists(result_file):  # a subset updates the earlier run's rows
        with open(result_file) as f:
            run = json.load(f)
    run.update(stack=stack, versions=info, machine=machine_info(), data=data, quick=args.quick,
               date=datetime.datetime.now().strftime('%Y-%m-%d %H:%M'),
               command='python bench/run.py' + ''.join(
                   ' ' + a for a in (sys.argv[1:] if argv is None else argv)))
    print('{} benchmarks on {} (TensorFlow {}), logs in {}'.format(
        len(chosen), STACK_NAMES[stack], info['tensorflow'], os.path.relpath(logs, ROOT)))
    busy = busy_cpu_seconds()
    time.sleep(2)   # what runs now (the load average still counts the last minute)
    others = (busy_cpu_seconds() - busy) / 2
    if others > 0.2:
        print('note: other processes take {:.1f} of {} cores: figures will be noisy'.format(
            others, os.cpu_count()))
    timeout = TIMEOUT_QUICK if args.quick else TIMEOUT
    for case in chosen:
        print('  {:34s}'.format(case.name), end=' ', flush=True)
        log_path = os.path.join(logs, re.sub(r'[^\w+.-]+', '_', case.name) + '.log')
        r = run_child(case, log_path, timeout)
        run['results'][case.name] = r
        if case.name not in run['order']:
            run['order'].append(case.name)
        if ok(r):
            base = run['results'].get(case.baseline) if case.baseline else None
            x = speedup(r, base) if base is not None and case.baseline != case.name else None
            print('{:>12s} {:9s} {}  RSS {:.0f} MB  ({:.0f} s)'.format(
                display(r, 'median'), {'char': 'chars/s', 'flop': 'GFLOP/s', 'step': 'ms/step',
                                       'run': 's/run'}[r['unit']],
                '' if x is None else 'x{:.2f}'.format(x), r['rss_mb'], r['wall_s'])
                + ('  others {:.2f} cores: noisy'.format(r['others'])
                   if r.get('others', 0) > 0.1 else ''))
        else:
            print('skipped: ' + r['skipped'] if 'skipped' in r else
                  'FAILED: {} (log: {})'.format(r.get('error'), r['log']))
        with open(result_file, 'w') as f:
            json.dump(run, f, indent=1)

    runs = {}
    for s in STACKS:
        path = os.path.join(results_dir, s + '.json')
        if os.path.exists(path):
            with open(path) as f:
                runs[s] = json.load(f)
    text = render(runs, {c.name: c for c in cases}, results_dir)
    out = args.out or (os.path.join(results_dir, 'BENCHMARKS.md') if args.quick or args.results
                       else os.path.join(ROOT, 'BENCHMARKS.md'))
    with open(out, 'w') as f:
        f.write(text)
    print()
    print(text)
    print('written: ' + os.path.relpath(out, ROOT))
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print('\nrun.py: interrupted (the rows done so far are in the result file)',
              file=sys.stderr)
        sys.exit(130)
