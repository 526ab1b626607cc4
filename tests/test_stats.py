"""tf1rnn/stats.py: t intervals, paired differences and the verdicts over seeds."""

import numpy as np
import pytest

from tf1rnn import stats

# --- comparisons over seeds: t intervals, pairing, verdicts -----------------------

# Student's t 0.975 quantiles from a printed table (two-sided 95%), by degrees of freedom.
T_TABLE_975 = {1: 12.706205, 2: 4.302653, 3: 3.182446, 4: 2.776445, 9: 2.262157, 29: 2.045230,
               60: 2.000298}


def test_t_quantile_matches_the_printed_table():
    for df, t in T_TABLE_975.items():
        assert stats.t_quantile(0.975, df) == pytest.approx(t, abs=2e-6), df
    # Another level, and the normal limit from above.
    assert stats.t_quantile(0.995, 4) == pytest.approx(4.604095, abs=2e-6)
    assert 1.959964 < stats.t_quantile(0.975, 5000) < 1.9605


def by_hand(values):
    """Mean, sample standard deviation and 95% half-width, spelled out."""
    n = len(values)
    mean = sum(values) / n
    std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
    return mean, std, T_TABLE_975[n - 1] * std / n ** 0.5


def test_mean_interval_is_the_t_interval_of_the_mean():
    values = [0.9012, 0.8871, 0.9115, 0.8930, 0.9003]
    mean, std, half = by_hand(values)
    result = stats.mean_interval(values)
    assert result['n'] == 5
    assert result['mean'] == pytest.approx(mean, abs=1e-12)
    assert result['std'] == pytest.approx(std, abs=1e-12)
    assert (result['low'], result['high']) == (pytest.approx(mean - half, abs=1e-8),
                                             pytest.approx(mean + half, abs=1e-8))
    # One value: a mean, no spread, no interval.
    assert stats.mean_interval([0.95]) == {'n': 1, 'mean': 0.95, 'std': None, 'low': None,
                                           'high': None}


def test_differences_are_paired_by_seed_not_by_position():
    # Seeds 3 and 7 are hard for both; b is always a little behind a. Unpaired, the spread
    # across seeds hides it; paired, it is clear. a has a seed b lacks (left out), and the
    # dicts list their seeds in different orders.
    a = {0: 0.95, 3: 0.80, 7: 0.85, 9: 0.93, 4: 0.91, 11: 0.50}
    b = {9: 0.925, 7: 0.842, 4: 0.899, 3: 0.79, 0: 0.941}
    diff = stats.paired_difference(a, b)
    d = [a[s] - b[s] for s in (0, 3, 4, 7, 9)]
    mean, std, half = by_hand(d)
    assert diff['seeds'] == [0, 3, 4, 7, 9]
    assert diff['differences'] == pytest.approx(d, abs=1e-12)
    assert (diff['n'], diff['mean'], diff['low'], diff['high']) == (
        5, pytest.approx(mean, abs=1e-12), pytest.approx(mean - half, abs=1e-8),
        pytest.approx(mean + half, abs=1e-8))
    assert diff['low'] > 0
    unpaired = [stats.mean_interval([x[s] for s in (0, 3, 4, 7, 9)]) for x in (a, b)]
    assert unpaired[0]['low'] < unpaired[1]['high']   # the intervals of the means overlap


def run(name, seed, score, signature=None, nan=False):
    return {'name': name, 'seed': seed, 'score': None if nan else score, 'nan': nan,
            'signature': [score] if signature is None else signature, 'sec/step': 0.01}


def test_verdicts_identical_real_not_resolved_and_nan():
    seeds = range(4)
    same = [[0.90 + s / 100, 0.5 - s / 100] for s in seeds]   # per-epoch numbers per seed
    runs = ([run('basic_lstm', s, same[s][0], same[s]) for s in seeds]
            + [run('lstm', s, same[s][0], list(same[s])) for s in seeds]
            + [run('gru', s, same[s][0] + 0.010 + 0.001 * (s % 2), [s]) for s in seeds]
            + [run('basic_rnn', s, same[s][0] - 0.005 + (0.03 if s % 2 else -0.03), [s, 1])
               for s in seeds]
            + [run('ln_basic_lstm', s, None, nan=True) for s in seeds])
    names = ['basic_rnn', 'basic_lstm', 'gru', 'lstm', 'ln_basic_lstm']
    rows, pairs, lines = stats.compare_over_seeds(runs, names,
                                                  means=[('sec/step', 'sec/step', '{:.3f}')])
    rows = {row['name']: row for row in rows}
    assert rows['ln_basic_lstm']['NaN'] == 4 and rows['ln_basic_lstm']['mean'] == ''
    assert rows['gru']['mean'] == '{:.4f}'.format(np.mean([same[s][0] + 0.010 + 0.001 * (s % 2)
                                                           for s in seeds]))
    assert rows['basic_rnn']['sec/step'] == '0.010'
    verdicts = {pair['difference']: pair['verdict'] for pair in pairs}
    # Six pairs of the four cells with scores; the better one first.
    assert sorted(verdicts) == sorted(['basic_lstm - basic_rnn', 'gru - basic_rnn',
                                       'basic_lstm - lstm', 'gru - basic_lstm', 'gru - lstm',
                                       'lstm - basic_rnn'])
    assert verdicts['basic_lstm - lstm'].startswith('identical')
    assert verdicts['gru - basic_lstm'].startswith('gru better: real at 4 seeds')
    assert verdicts['gru - lstm'].startswith('gru better: real')
    assert verdicts['basic_lstm - basic_rnn'].startswith('not resolved at 4 seeds')
    assert 'ln_basic_lstm: NaN in 4 of 4 runs' in lines[0]
    assert 'Identical: basic_lstm = lstm.' in lines
    # Identity comes from the numbers, not the names: the same scores with other per-epoch
    # numbers are a tie, not an identity.
    runs = [dict(r, signature=r['signature'] + [r['name'] == 'lstm']) for r in runs]
    verdicts = {p['difference']: p['verdict'] for p in stats.compare_over_seeds(runs, names)[1]}
    assert verdicts['basic_lstm - lstm'].startswith('not resolved')


def test_a_pair_is_ordered_and_tested_by_its_paired_difference():
    """a finished seeds 0-2 only, b all five and better on every shared seed: b - a is the
    difference reported, and it is real; the unpaired means (b's lowered by seeds 3-4) do not
    decide the order."""
    b_scores = [0.95, 0.96, 0.94, 0.70, 0.71]
    a_scores = [0.90, 0.885, 0.89]
    runs = ([run('a', s, a_scores[s]) for s in range(3)] + [run('a', s, None, nan=True)
                                                            for s in (3, 4)]
            + [run('b', s, b_scores[s]) for s in range(5)])
    [pair] = stats.compare_over_seeds(runs, ['a', 'b'])[1]
    assert pair['difference'] == 'b - a' and pair['seeds'] == 3
    assert pair['verdict'].startswith('b better: real at 3 seeds'), pair


@pytest.mark.parametrize('seeds,verdict', [(2, 'not resolved at 2 seeds by the sign test'),
                                           (5, 'not resolved at 5 seeds by the sign test'),
                                           (6, 'b better: real at 6 seeds by the sign test')])
def test_the_same_difference_at_every_seed_is_decided_by_the_sign_test(seeds, verdict):
    """Accuracy moves in steps of 1/images: b ahead by exactly 0.01 at every seed has a
    t interval of width 0, which says nothing; the sign test needs 6 seeds at 95%."""
    runs = ([run('a', s, 0.90 + s / 100) for s in range(seeds)]
            + [run('b', s, 0.91 + s / 100) for s in range(seeds)])
    [pair] = stats.compare_over_seeds(runs, ['a', 'b'])[1]
    assert pair['difference'] == 'b - a' and pair['verdict'].startswith(verdict), pair
