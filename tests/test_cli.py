"""tf1rnn/cli.py: one error line and an exit status instead of a traceback."""

from tf1rnn import cli


def test_run_main_turns_user_error_into_exit_code(capsys):
    def main(argv):
        raise cli.UserError('bad thing')
    assert cli.run_main(main) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'error: bad thing' in err


# ---------------------------------------------------------------------------
# number(): one validator factory for every numeric flag.
# ---------------------------------------------------------------------------

import argparse

import pytest


@pytest.mark.parametrize('kind,bounds,good,bad', [
    (int, dict(low=1), ['1', '7'], ['0', '-3', '1.5', 'x', '']),
    (int, dict(low=0, high=10), ['0', '10'], ['-1', '11']),
    (float, dict(low=0, high=1, low_open=True), ['1', '1e-9', '0.5'], ['0', '-0.1', '1.01']),
    (float, dict(low=0, high=1, high_open=True), ['0', '0.99'], ['1', '-1e-9']),
    (float, dict(low=1e-30, high=1e30), ['1e-30', '1e30'], ['1e-40', '0', '2e30']),
    (float, {}, ['-5', '3.5'], ['nan', 'inf', '-inf', 'x']),
])
def test_number_takes_its_range_and_refuses_the_rest(kind, bounds, good, bad):
    parse = cli.number(kind, **bounds)
    for text in good:
        assert parse(text) == kind(text)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_a_refused_number_is_one_argparse_line_and_its_range_is_in_the_help(capsys):
    p = argparse.ArgumentParser(prog='prog', formatter_class=cli.RangeHelpFormatter)
    p.add_argument('--lr', type=cli.number(float, low=0, high=1, low_open=True), help='rate')
    with pytest.raises(SystemExit) as e:
        p.parse_args(['--lr', '-0.01'])
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == \
        'prog: error: argument --lr: must be in (0, 1], not -0.01'
    assert 'rate (range: (0, 1])' in ' '.join(p.format_help().split())


@pytest.mark.parametrize('text', ['', '.', '..', 'a/b', '../up', '/abs'])
def test_a_name_is_not_a_path(text):
    with pytest.raises(argparse.ArgumentTypeError):
        cli.name(text)
    assert cli.name('my-model.v2') == 'my-model.v2'


def test_choice_list_takes_one_all_or_a_list_in_order_each_once():
    cells = cli.choice_list(('a', 'b', 'c'))
    assert (cells('b'), cells('all'), cells('c, a,c')) == (['b'], ['a', 'b', 'c'], ['c', 'a'])
    for text, bad in (('d', 'd'), ('a,x', 'x'), ('', '')):
        with pytest.raises(argparse.ArgumentTypeError) as e:
            cells(text)
        assert str(e.value) == ("invalid choice: {!r} (choose from 'a', 'b', 'c', 'all', or a "
                                "comma-separated list)".format(bad))
