"""Command lines: one error line instead of a traceback, and argparse types that refuse
what the math cannot take."""
import argparse
import os
import sys



class UserError(Exception):
    """A problem with the user's input: reported as one line, no traceback."""


def run_main(main, argv=None):
    """Calls main(argv); a UserError becomes one line on stderr and exit code 2."""
    prog = os.path.basename(sys.argv[0])
    try:
        return main(argv)
    except UserError as e:
        print('{}: error: {}'.format(prog, e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('{}: interrupted'.format(prog), file=sys.stderr)
        return 130



class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default unless it is None or a switch (their help says what happens)."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super(HelpFormatter, self)._get_help_string(action)


def positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError('must be a positive integer, not {}'.format(text))
    return value


def non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError('must be 0 or more, not {}'.format(text))
    return value


def window(text):
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError('must be 2 or more, not {}'.format(text))
    return value


def positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError('must be positive, not {}'.format(text))
    return value


def probability(text):
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError('must be in (0, 1], not {}'.format(text))
    return value


def fraction(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError('must be in [0, 1), not {}'.format(text))
    return value


def int_list(text):
    try:
        sizes = [int(s) for s in text.split(',')]
    except ValueError:
        raise argparse.ArgumentTypeError('expected sizes like 128,256, not {}'.format(text))
    if not sizes or min(sizes) <= 0:
        raise argparse.ArgumentTypeError('expected positive sizes like 128,256, not {}'.format(text))
    return sizes


def first_line(error):
    """The first line of an exception's message (TensorFlow's run on for pages)."""
    text = getattr(error, 'message', None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def seed_list(text):
    """argparse type: N (seeds 0..N-1) or a comma-separated list of distinct seeds."""
    try:
        seeds = [int(seed) for seed in text.split(',') if seed.strip()]
    except ValueError:
        seeds = []
    if len(seeds) == 1 and ',' not in text:
        seeds = list(range(seeds[0]))
    if not seeds or min(seeds) < 0 or len(set(seeds)) < len(seeds):
        raise argparse.ArgumentTypeError('expected a number of seeds (5) or a list of distinct '
                                         'seeds (0,3,7), not {!r}'.format(text))
    return seeds
