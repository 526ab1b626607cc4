"""tf1rnn/cli.py: one error line and an exit status instead of a traceback."""

from tf1rnn import cli


def test_run_main_turns_user_error_into_exit_code(capsys):
    def main(argv):
        raise cli.UserError('bad thing')
    assert cli.run_main(main) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'error: bad thing' in err
