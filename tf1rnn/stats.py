"""Comparisons over seeds (mnist_rnn.py --seeds): t intervals, paired differences and
their verdicts, tables, CSV and plots."""
import csv
import math
import os
import shlex
import time

import numpy as np

from utils import tf, STACK
from tf1rnn.files import safe_mkdir


def _t_central(t, df):
    """P(|T| < t) for Student's t with integer df: the closed forms of Abramowitz and
    Stegun 26.7.3 (odd df) and 26.7.4 (even df), in theta = atan(t / sqrt(df))."""
    theta = math.atan(t / math.sqrt(df))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2:
        if df == 1:
            return 2 * theta / math.pi
        term = total = math.cos(theta)
        for k in range(1, (df - 1) // 2):
            term *= cos2 * (2 * k) / (2 * k + 1)
            total += term
        return 2 / math.pi * (theta + sin * total)
    term = total = 1.0
    for k in range(1, df // 2):
        term *= cos2 * (2 * k - 1) / (2 * k)
        total += term
    return sin * total


def t_quantile(p, df):
    """Student's t quantile: the t with P(T < t) = p, for 0.5 <= p < 1 and integer df >= 1
    (bisection on the exact distribution function; no SciPy)."""
    if not 0.5 <= p < 1 or int(df) != df or df < 1:
        raise ValueError('t_quantile needs 0.5 <= p < 1 and an integer df >= 1')
    target, low, high = 2 * p - 1, 0.0, 1.0
    while _t_central(high, df) < target:
        low, high = high, high * 2
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if _t_central(middle, df) < target else (low, middle)
    return (low + high) / 2


def mean_interval(values, confidence=0.95):
    """{'n', 'mean', 'std', 'low', 'high'} of values: the sample standard deviation (n - 1)
    and the t interval of the mean. Below two values std, low and high are None (no
    interval from one run); no values: mean None too."""
    values = np.asarray(values, np.float64)
    n = len(values)
    result = {'n': n, 'mean': float(np.mean(values)) if n else None, 'std': None, 'low': None,
              'high': None}
    if n >= 2:
        std = float(np.std(values, ddof=1))
        half = t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
        result.update(std=std, low=result['mean'] - half, high=result['mean'] + half)
    return result


def paired_difference(a, b, confidence=0.95):
    """a - b paired by key (a seed): {seed: value} each, only the seeds both have count.
    mean_interval of the differences, with 'seeds' and 'differences' in seed order."""
    seeds = sorted(set(a) & set(b))
    differences = [a[seed] - b[seed] for seed in seeds]
    return dict(mean_interval(differences, confidence), seeds=seeds, differences=differences)


def same_runs(a, b, atol=1e-9, rtol=1e-6):
    """True when every seed that a and b ({seed: sequence of numbers}) share gave the same
    numbers (within atol + rtol * |b|), and they share one at least: the same computation."""
    seeds = set(a) & set(b)
    return bool(seeds) and all(
        len(a[seed]) == len(b[seed]) and np.allclose(a[seed], b[seed], rtol=rtol, atol=atol)
        for seed in seeds)


def markdown_table(columns, rows):
    """A Markdown table of rows (dicts keyed by columns)."""
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '|'.join('---' for _ in columns) + '|']
    lines += ['| ' + ' | '.join(str(row.get(c, '')) for c in columns) + ' |' for row in rows]
    return '\n'.join(lines) + '\n'


def write_csv(path, columns, rows):
    safe_mkdir(os.path.dirname(path))
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, columns, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)


def plot_over_seeds(curves, path, accuracy_label='accuracy'):
    """Two panels into path (PNG, Agg backend), one colour per name in curves:
    {name: {'accuracy': [[per epoch] per seed], 'seconds': [[cumulative seconds at each
    epoch] per seed], 'note': text for the legend}}. Left: the mean per epoch, shaded from
    the lowest to the highest seed; right: the mean against the mean seconds (time to
    accuracy). Seeds of different lengths are cut to the shortest."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    fig, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(12, 4.5))
    styles = ('-', '--', '-.', ':')
    for index, (name, curve) in enumerate(curves.items()):
        label = name + (' ' + curve['note'] if curve.get('note') else '')
        length = min((len(c) for c in curve['accuracy']), default=0)
        if not length:   # nothing to draw (NaN in every seed): the legend says so
            by_epoch.plot([], [], 'x', label=label)
            continue
        accuracy = np.array([c[:length] for c in curve['accuracy']], np.float64)
        mean, epochs = accuracy.mean(axis=0), np.arange(1, length + 1)
        style = styles[index % len(styles)]
        line, = by_epoch.plot(epochs, mean, 'o' + style, markersize=3, label=label)
        by_epoch.fill_between(epochs, accuracy.min(axis=0), accuracy.max(axis=0),
                              color=line.get_color(), alpha=0.2, linewidth=0)
        seconds = np.array([s[:length] for s in curve['seconds']], np.float64).mean(axis=0)
        by_time.plot(seconds, mean, 'o' + style, markersize=3, color=line.get_color(),
                     label=label)
    by_epoch.set(title='{} per epoch: mean over seeds, band from lowest to highest'.format(
        accuracy_label), xlabel='epoch', ylabel=accuracy_label)
    by_epoch.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_time.set(title='time to accuracy (mean over seeds)', ylabel=accuracy_label,
                xlabel='seconds of training steps (wall clock)')
    for ax in (by_epoch, by_time):
        ax.grid(alpha=0.3)
        ax.legend(fontsize='small')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def fmt(value, spec='{:.4f}'):
    return '' if value is None else spec.format(value)


def _interval(stats, spec='{:.4f}'):
    return '' if stats['low'] is None else '{} to {}'.format(spec.format(stats['low']),
                                                             spec.format(stats['high']))


def compare_over_seeds(runs, names, means=(), confidence=0.95):
    """Compares named models (cells) trained from several seeds, on a score where higher is
    better (an accuracy).

    runs: dicts with 'name', 'seed', 'score' (None: the run has none, e.g. it hit NaN),
    'nan' (bool), 'signature' (the numbers that tell two runs apart) and the keys of
    `means`, (column, key, format) triples averaged per name over its runs.
    Returns (a row per name: runs, NaN, the score's mean, std and t interval, the means;
    a row per pair: the difference of the better minus the other, paired by seed, its
    interval and verdict; verdict lines). Two names whose runs have the same signature in
    every shared seed are 'identical', not ranked; a difference is real when its
    interval excludes 0.
    """
    by_name = {name: [r for r in runs if r['name'] == name] for name in names}
    scores = {name: {r['seed']: r['score'] for r in rs if r['score'] is not None}
              for name, rs in by_name.items()}
    stats = {name: mean_interval(list(s.values()), confidence) for name, s in scores.items()}
    rows, lines = [], []
    for name, rs in by_name.items():
        nans = sum(bool(r['nan']) for r in rs)
        row = {'name': name, 'runs': len(rs), 'NaN': nans, 'mean': fmt(stats[name]['mean']),
               'std': fmt(stats[name]['std']), 'interval': _interval(stats[name])}
        for column, key, spec in means:
            row[column] = fmt(mean_interval([r[key] for r in rs if r[key] is not None])['mean'],
                               spec)
        rows.append(row)
        if nans:
            lines.append('{}: NaN in {} of {} runs (kept in the table, left out of its '
                         'accuracy){}'.format(name, nans, len(rs), '' if nans < len(rs) else
                                              ': nothing to compare'))
    pairs, verdicts = [], {'Real': [], 'Identical': [], 'Not resolved': []}
    ranked = [name for name in names if scores[name]]
    for i, first in enumerate(ranked):
        for second in ranked[i + 1:]:
            # Fix: ordered by the paired difference over the seeds both have (the one that is
            # tested), not by the means over unequal sets of seeds (some lost to NaN).
            diff = paired_difference(scores[first], scores[second], confidence)
            better = (diff['mean'] < 0 if diff['n'] else
                      stats[second]['mean'] > stats[first]['mean'])
            a, b = (second, first) if better else (first, second)
            if better:
                diff = paired_difference(scores[a], scores[b], confidence)
            signatures = [{r['seed']: r['signature'] for r in by_name[n] if r['score'] is not None}
                          for n in (a, b)]
            if same_runs(*signatures):
                verdict = ('identical: the same numbers at every epoch of every seed (the same '
                           'function from the same initialisation); not ranked')
                verdicts['Identical'].append('{} = {}'.format(a, b))
            elif diff['low'] is None:
                verdict = 'no interval from {} seed{}'.format(diff['n'], 's' * (diff['n'] != 1))
                verdicts['Not resolved'].append('{} vs {}'.format(a, b))
            elif diff['std'] <= 1e-9:   # (rounding of k / images leaves ~1e-17)
                # The same difference at every seed (scores move in steps of 1/images): the t
                # interval has width 0 and says nothing. The exact sign test decides instead:
                # n seeds all one way happen by chance with p = 2 * 0.5^n (real from 6 seeds).
                p = 2 * 0.5 ** diff['n'] if diff['mean'] else 1.0
                real = p < 1 - confidence
                verdict = '{} at {} seeds by the sign test (p = {:.3f}): the same difference ' \
                          'at every seed, no spread for a t interval'.format(
                              '{} better: real'.format(a) if real else 'not resolved',
                              diff['n'], p)
                if real:
                    verdicts['Real'].append('{} > {} by {:.4f}'.format(a, b, diff['mean']))
                else:
                    verdicts['Not resolved'].append('{} vs {}'.format(a, b))
            elif diff['low'] > 0:
                verdict = '{} better: real at {} seeds (the interval excludes 0)'.format(
                    a, diff['n'])
                verdicts['Real'].append('{} > {} by {:.4f}'.format(a, b, diff['mean']))
            else:
                verdict = 'not resolved at {} seeds (the interval holds 0)'.format(diff['n'])
                verdicts['Not resolved'].append('{} vs {}'.format(a, b))
            pairs.append({'difference': '{} - {}'.format(a, b), 'seeds': diff['n'],
                          'mean': fmt(diff['mean'], '{:+.4f}'),
                          'interval': _interval(diff, '{:+.4f}'), 'verdict': verdict})
    lines += ['{}: {}.'.format(kind, '; '.join(items)) for kind, items in verdicts.items() if items]
    return rows, pairs, lines


def load_average():
    """The 1-minute load average (NaN where the system has none)."""
    return os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')


def report_facts(script, argv, data_dir, data, settings, runs, started):
    """The list heading a results.md: the command, the stack, the data, the settings
    ((name, value) pairs) and the time: the runs' wall seconds (their 'wall s') and this
    command's, and the load average at its start (started: (time, load)) and now."""
    return ['made with: `python {}`'.format(' '.join(shlex.quote(a) for a in [script] + argv)),
            'stack: {}, TensorFlow {}'.format(STACK, tf.__version__),
            'data: `{}`: {} train, {} validation, {} test images'.format(
                data_dir, *(data[key].num_examples for key in ('train', 'validation', 'test'))),
            'settings: ' + ', '.join('{} {}'.format(k.replace('_', '-'), v) for k, v in settings),
            'time: {} runs, {:.0f} s of wall time in all (this command: {:.0f} s); load average '
            '{:.2f} at the start, {:.2f} at the end, {} CPUs'.format(
                len(runs), sum(r['wall s'] for r in runs), time.time() - started[0], started[1],
                load_average(), os.cpu_count())]


def report_over_seeds(folder, runs, names, title, facts, note, means=(), run_columns=(),
                      name_label='cell', score_label='test accu', plot_label='test accuracy'):
    """compare_over_seeds' tables into folder: runs.csv (each run's 'row', a dict keyed by
    run_columns), results.csv (per name), results.md (a title, the facts as a list, both
    tables, the note, the pairs and the verdict) and results.png (plot_over_seeds of the runs'
    'curve' and 'seconds', per epoch). Returns (the rows per name, the rows per pair)."""
    safe_mkdir(folder)
    rows, pairs, lines = compare_over_seeds(runs, names, means)
    columns = (name_label, 'runs', 'NaN', score_label + ' mean', 'std', '95% interval') + tuple(
        column for column, _, _ in means)
    rename = {'name': name_label, 'mean': score_label + ' mean', 'interval': '95% interval'}
    rows = [{rename.get(key, key): value for key, value in row.items()} for row in rows]
    for pair in pairs:
        pair['95% interval'] = pair.pop('interval')
    pair_columns = ('difference', 'seeds', 'mean', '95% interval', 'verdict')
    run_rows = [r['row'] for r in sorted(runs, key=lambda r: (names.index(r['name']), r['seed']))]
    write_csv(os.path.join(folder, 'runs.csv'), run_columns, run_rows)
    write_csv(os.path.join(folder, 'results.csv'), columns, rows)
    with open(os.path.join(folder, 'results.md'), 'w') as f:
        f.write('# {}\n\n{}\n## {} over seeds\n\n{}\n{}\n\n'.format(
            title, ''.join('- {}\n'.format(fact) for fact in facts), score_label,
            markdown_table(columns, rows), note))
        f.write('## Verdict: differences paired by seed\n\n{}\nEach difference is taken seed by '
                'seed over the seeds both finished without NaN; its 95% t interval is per pair, '
                'not corrected for the {} pairs.\n\n{}\n## Runs\n\n{}'.format(
                    markdown_table(pair_columns, pairs), len(pairs),
                    ''.join('- {}\n'.format(line) for line in lines),
                    markdown_table(run_columns, run_rows)))
    curves = {}
    for row in rows:
        scored = [r for r in runs if r['name'] == row[name_label] and r['score'] is not None]
        curves[row[name_label]] = {
            'accuracy': [r['curve'] for r in scored], 'seconds': [r['seconds'] for r in scored],
            'note': '(NaN in {} of {})'.format(row['NaN'], row['runs']) if row['NaN'] else ''}
    plot_over_seeds(curves, os.path.join(folder, 'results.png'), plot_label)
    return rows, pairs
