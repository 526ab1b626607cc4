"""Command lines: one error line instead of a traceback, and argparse types that refuse
what the math cannot take."""
import argparse
import math
import os
import signal
import sys



class UserError(Exception):
    """A problem with the user's input: reported as one line, no traceback."""


class PipeClosed(Exception):
    """stdout's reader has gone (`python char_rnn.py | head`): the run ends quietly."""


PIPE_EXIT = 128 + signal.SIGPIPE   # the status of a process SIGPIPE ended


class PipeGuard(object):
    """sys.stdout during run_main: once its reader is gone it drops what is written (the
    descriptor then writes to /dev/null, so nothing fails at exit either) and calls
    on_break: by default raising PipeClosed; runs.stop_on_signals, around a training loop,
    makes it request a stop (save, then exit) instead."""

    active = None   # run_main's, which stop_on_signals finds under wrappers (a cluster's prefix)

    def __init__(self, stream):
        self.stream, self.broken = stream, False
        self.on_break = self._raise

    @staticmethod
    def _raise():
        raise PipeClosed()

    def _guard(self, method, *args):
        if self.broken:
            return None
        try:
            return method(*args)
        except BrokenPipeError:
            self.broken = True
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.stream.fileno())
                os.close(devnull)
            except (OSError, ValueError, AttributeError):   # no descriptor (a StringIO)
                pass
            self.on_break()
        return None

    def write(self, text):
        self._guard(self.stream.write, text)
        return len(text)

    def flush(self):
        self._guard(self.stream.flush)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _quiet_interrupt(signum, frame):
    os._exit(130)   # during the imports: nothing written yet, nothing to say


def quiet_interrupts():
    """Called first thing by the scripts, before their heavy imports: Ctrl-C then exits
    quietly with status 130 instead of printing an import's KeyboardInterrupt traceback.
    run_main gives Ctrl-C back to Python. A SIGINT inherited as ignored (nohup, `cmd &`)
    stays ignored."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _quiet_interrupt)


def run_main(main, argv=None):
    """Calls main(argv); a UserError becomes one line on stderr and exit code 2, Ctrl-C
    outside a training loop one line and 130, a closed output pipe a quiet 141."""
    prog = os.path.basename(sys.argv[0])
    if signal.getsignal(signal.SIGINT) is _quiet_interrupt:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    stdout, active = sys.stdout, PipeGuard.active
    guard = sys.stdout = PipeGuard.active = PipeGuard(stdout)
    try:
        return main(argv)
    except PipeClosed:
        return PIPE_EXIT
    except UserError as e:
        print('{}: error: {}'.format(prog, e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('{}: interrupted'.format(prog), file=sys.stderr)
        return 130
    finally:
        if sys.stdout is guard:
            sys.stdout = stdout
        PipeGuard.active = active



def _with_range(text, action):
    """help text with a number() flag's range appended: "(range: 1 or more)"."""
    value_range = getattr(action.type, 'range', '')
    if text is not None and value_range and value_range != 'finite':
        text += ' (range: {})'.format(value_range[3:] if value_range.startswith('in ')
                                      else value_range.replace('%', '%%'))
    return text


class RangeHelpFormatter(argparse.HelpFormatter):
    """Appends a number() flag's range to its help."""

    def _get_help_string(self, action):
        return _with_range(super(RangeHelpFormatter, self)._get_help_string(action), action)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default unless it is None or a switch (their help says what happens),
    and a number() flag's range."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return _with_range(action.help, action)
        return _with_range(super(HelpFormatter, self)._get_help_string(action), action)


def number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: text as kind (int or float), refused outside its range.

    low/high: the bounds, None for none; low_open/high_open: the bound itself excluded.
    Floats must be finite. The range is in the type's .range ("in (0, 1]", "1 or more"),
    which HelpFormatter and RangeHelpFormatter append to the flag's help.
    """
    if low is not None and high is not None:
        text_range = 'in {}{}, {}{}'.format('(' if low_open else '[', low, high,
                                            ')' if high_open else ']')
    elif low is not None:
        text_range = ('more than {}' if low_open else '{} or more').format(low)
    elif high is not None:
        text_range = ('less than {}' if high_open else '{} or less').format(high)
    else:
        text_range = 'finite' if kind is float else ''
    name = 'an integer' if kind is int else 'a number'

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or (kind is float and not math.isfinite(value)):
            raise argparse.ArgumentTypeError('expected {}{}, not {!r}'.format(
                name, ' ' + text_range if text_range and text_range != 'finite' else '', text))
        if ((low is not None and (value < low or (low_open and value == low)))
                or (high is not None and (value > high or (high_open and value == high)))):
            raise argparse.ArgumentTypeError('must be {}, not {}'.format(text_range, text))
        return value
    parse.range = text_range
    parse.__name__ = kind.__name__
    return parse


positive_int = number(int, low=1)
non_negative_int = number(int, low=0)
window = number(int, low=2)
positive_float = number(float, low=0, low_open=True)
probability = number(float, low=0, high=1, low_open=True)
fraction = number(float, low=0, high=1, high_open=True)
MAX_SEED = 2 ** 31 - 1
seed = number(int, low=0, high=MAX_SEED)


def name(text):
    """argparse type: a name of one folder (--model): not empty, no '/', not '.' or '..'."""
    if not text or '/' in text or os.sep in text or text in ('.', '..') or '\0' in text:
        raise argparse.ArgumentTypeError('must be a name, not a path (no \'/\', not empty, '
                                         'not . or ..), not {!r}'.format(text))
    return text


def choice_list(choices, every='all'):
    """argparse type: one of choices, `every` (all of them) or a comma-separated list of them
    (each once, in the order given)."""
    def parse(text):
        names = [name.strip() for name in text.split(',') if name.strip()]
        if every in names:
            return list(choices)
        for name in names or [text]:
            if name not in choices:
                raise argparse.ArgumentTypeError('invalid choice: {!r} (choose from {}, or a '
                                                 'comma-separated list)'.format(name, ', '.join(
                                                     repr(c) for c in tuple(choices) + (every,))))
        return sorted(set(names), key=names.index)
    return parse


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
    if not seeds or min(seeds) < 0 or max(seeds) > MAX_SEED or len(set(seeds)) < len(seeds):
        raise argparse.ArgumentTypeError('expected a number of seeds (5) or a list of distinct '
                                         'seeds (0,3,7), not {!r}'.format(text))
    return seeds
