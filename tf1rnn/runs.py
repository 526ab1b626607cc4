"""Run folders and the process around a training loop: signals that stop between two
steps, sessions, checkpoints (latest, restore, rotation), the folder lock, JSON state
files and event files."""
import contextlib
import errno
import glob
import json
import os
import shutil
import signal
import sys

from utils import tf
from tf1rnn.cli import PipeGuard, UserError, first_line
from tf1rnn.files import safe_mkdir


class StopRequest(object):
    """Truthy once SIGINT or SIGTERM arrived; .signum is the first one's number."""

    def __init__(self):
        self.signum = None

    def __bool__(self):
        return self.signum is not None
    __nonzero__ = __bool__

    @property
    def name(self):
        return {signal.SIGINT: 'Ctrl-C', signal.SIGTERM: 'SIGTERM', CHIEF_STOPPED: 'the chief stopped',
                signal.SIGPIPE: 'a closed output pipe',
                signal.SIGHUP: 'SIGHUP'}.get(self.signum, 'a signal')


class Stopped(Exception):
    """A training loop saw its StopRequest set (between two steps); the caller saves."""


@contextlib.contextmanager
def stop_on_signals(signums=(signal.SIGINT, signal.SIGTERM)):
    """Context: Ctrl-C and SIGTERM set the yielded StopRequest instead of interrupting.

    The training loops of both scripts check it between two steps, then save and exit 0.
    Nothing is ever cut in half: a signal that arrives mid-step, mid-save (a second Ctrl-C
    included) or between updating the best loss and saving it only sets the flag, which
    the loop sees at its next check. Outside the context (data loading, graph building:
    nothing to save yet) Ctrl-C interrupts as usual. Off the main thread, where Python
    cannot install handlers, the signals stay as they are. Output to a pipe whose reader
    has gone (`| head`) stops the same way: stdout then drops what is printed.
    """
    stop = StopRequest()

    def request(signum, frame):
        if stop.signum is None:
            stop.signum = signum

    def pipe_closed():
        request(signal.SIGPIPE, None)

    previous = {}
    stdout = sys.stdout
    guard = PipeGuard.active or PipeGuard(stdout)   # (run_main's, maybe under a prefix)
    on_break, guard.on_break = guard.on_break, pipe_closed
    try:
        for signum in signums:
            try:
                if signal.getsignal(signum) == signal.SIG_IGN:   # nohup, `cmd &`: keep it so
                    continue
                previous[signum] = signal.signal(signum, request)
            except ValueError:   # not the main thread
                break
        if guard.broken:
            pipe_closed()
        if guard is not PipeGuard.active:
            sys.stdout = guard
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        guard.on_break = on_break
        sys.stdout = stdout


def check_output_dir(path, flag):
    """UserError (one line naming the flag, the path and why) unless path can take a run's
    files: a writable folder, or one that mkdir -p can make (its nearest existing ancestor a
    writable folder). Called before any training starts: a bad output place fails at once,
    not after the work (or with NotADirectoryError from deep inside a save)."""
    def what(where):
        return 'a broken symbolic link' if not os.path.exists(where) else 'a file'
    where = os.path.normpath(path)
    if os.path.lexists(where):
        if not os.path.isdir(where):
            raise UserError('{} {}: is {}, not a folder'.format(flag, path, what(where)))
        if not os.access(where, os.W_OK | os.X_OK):
            raise UserError('{} {}: the folder is not writable'.format(flag, path))
        return
    parent = where
    while not os.path.lexists(parent or '.'):
        parent = os.path.dirname(parent)
    parent = parent or '.'
    if not os.path.isdir(parent):
        raise UserError('{} {}: cannot make it, {} is {}, not a folder'.format(
            flag, path, parent, what(parent)))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError('{} {}: cannot make it, {} is not writable'.format(flag, path, parent))


def session_config(threads=0):
    """ConfigProto with GPU memory growth (as the notebook) and thread counts (0 = TF decides)."""
    config = tf.ConfigProto(intra_op_parallelism_threads=threads,
                            inter_op_parallelism_threads=threads)
    config.gpu_options.allow_growth = True
    return config


@contextlib.contextmanager
def training_session(cluster, saver, start, threads=0):
    """The session a training loop runs in, the variables initialised, then start(session)
    (which restores a checkpoint): a cluster's MonitoredSession (start runs on the chief,
    again if the session is made anew), or a tf.Session of the default graph, which is then
    finalized: a training loop that adds ops grows slower with every step."""
    if cluster:
        with cluster.session(saver, start) as sess:
            yield sess
        return
    graph = tf.get_default_graph()
    init = tf.global_variables_initializer()
    graph.finalize()
    with tf.Session(graph=graph, config=session_config(threads)) as sess:
        sess.run(init)
        start(sess)
        yield sess


def raw_session(sess, cluster=None):
    """The tf.Session a Saver needs: a cluster's MonitoredSession wraps it."""
    return cluster.raw() if cluster else sess


def latest_checkpoint(folder, prefix, set_aside=False):
    """The newest intact checkpoint's path prefix in folder, None if there is none.

    The state file ('checkpoint') lists the checkpoints, newest last. One that is not intact
    (checkpoint_problem: a file missing, truncated or corrupt) is skipped, with one line on
    stderr saying which and why; its files are kept for inspection, renamed to *.skipped when
    set_aside (a training run, which would save over them). UserError when none is
    intact, or when checkpoint files named prefix-* exist but the state file is unreadable
    (TensorFlow would ignore it, and training start over and overwrite).
    """
    state_file = os.path.join(folder, 'checkpoint')
    try:
        state = tf.train.get_checkpoint_state(folder)
    except (tf.errors.OpError, ValueError) as e:
        state, reason = None, first_line(e)
    else:
        reason = 'corrupt, or naming no checkpoint'
    paths = []
    if state:
        for path in list(state.all_model_checkpoint_paths) + [state.model_checkpoint_path]:
            if path and path not in paths[-1:]:
                paths = [p for p in paths if p != path] + [path]
    if not paths:
        if glob.glob(os.path.join(folder, prefix + '-*.index')):
            raise UserError('{} has checkpoints but its state file {} is unreadable ({})'.format(
                folder, state_file, reason))
        return None
    skipped = []
    for path in reversed(paths):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        skipped.append(path)
        kept = ''
        if set_aside:
            for name in glob.glob(glob.escape(path) + '.*'):
                if not name.endswith('.skipped'):
                    os.replace(name, name + '.skipped')
            kept = ' as {}.*.skipped'.format(os.path.basename(path))
        if path not in _reported:   # once per process (a resume reads the folder again)
            _reported.add(path)
            print('warning: skipping checkpoint {}: {}; its files are kept for inspection{}'.format(
                path, problem, kept), file=sys.stderr)
    raise UserError('no intact checkpoint in {}: {} (see the warnings above); move them away '
                    'to start over'.format(folder, ', '.join(os.path.basename(p) for p in skipped)))


_reported = set()


def checkpoint_problem(path):
    """Why the checkpoint at path prefix cannot be restored (a file missing, truncated or
    corrupt: every tensor is read, its checksum checked), or None when it is intact."""
    if not os.path.isfile(path + '.index'):
        return 'its index file {}.index is missing'.format(os.path.basename(path))
    shards = glob.glob(glob.escape(path) + '.data-*-of-*')
    if not shards:
        return 'its data file {}.data-00000-of-00001 is missing'.format(os.path.basename(path))
    total = int(shards[0].rsplit('-of-', 1)[1])
    for shard in range(total):
        name = '{}.data-{:05d}-of-{:05d}'.format(path, shard, total)
        if not os.path.isfile(name):
            return 'its data file {} is missing'.format(os.path.basename(name))
    try:
        reader = tf.train.NewCheckpointReader(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as e:   # OpError; TF 2's reader raises IndexError on a truncated file
        if isinstance(e, MemoryError):
            raise
        return 'unreadable ({})'.format(first_line(e))
    return None


def restore(sess, saver, path, fresh=()):
    """saver.restore after checking that the checkpoint holds the graph's variables. fresh:
    (names, a Saver of the other variables): a checkpoint written without those variables
    is restored by that Saver, and they keep their initial values."""
    try:
        shapes = dict(tf.train.list_variables(path))
    except (tf.errors.OpError, ValueError) as e:
        raise UserError('checkpoint {} is corrupt or unreadable ({})'.format(path, first_line(e)))
    names, others = fresh or ((), None)
    if any(var.op.name not in shapes for var in tf.global_variables()):
        saver = others or saver
    for var in tf.global_variables():
        name = var.op.name
        if name not in shapes and name not in names:
            raise UserError('checkpoint {} is not of this model: it has no variable {}'.format(
                path, name))
        if name in shapes and list(shapes[name]) != var.shape.as_list():
            raise UserError('checkpoint {} is of a different model shape or vocabulary: {} is {} '
                            'there, {} here'.format(path, name, list(shapes[name]),
                                                    var.shape.as_list()))
    try:
        saver.restore(sess, path)
    except (tf.errors.OpError, ValueError) as e:
        raise UserError('checkpoint {} is corrupt or unreadable ({})'.format(path, first_line(e)))


def restore_latest(sess, saver, folder, prefix, path=None):
    """restore() of folder's latest checkpoint (path, when the caller has looked it up); one
    a training run rotates away meanwhile is followed by its newer one. Returns the path
    restored."""
    path = path or latest_checkpoint(folder, prefix)
    while True:
        try:
            restore(sess, saver, path)
            return path
        except UserError:
            newer = latest_checkpoint(folder, prefix)
            if newer == path:
                raise
            path = newer


def save(saver, sess, path_prefix, global_step, **kwargs):
    """saver.save(sess, path_prefix, global_step): every checkpoint of both scripts is saved
    here. A save that fails (a full disk: ResourceExhaustedError or OSError; the folder
    removed) is a UserError, training stops there, and the folder is as before the save: the
    files it began (its checkpoint's, TensorFlow's temporary ones) removed, the state file
    'checkpoint' back as it was, so it still names the previous, intact checkpoint."""
    folder = os.path.dirname(path_prefix) or '.'
    state_file = os.path.join(folder, 'checkpoint')
    before = set(os.listdir(folder)) if os.path.isdir(folder) else set()
    state = None
    if os.path.isfile(state_file):
        with open(state_file, 'rb') as f:
            state = f.read()
    try:
        return saver.save(sess, path_prefix, global_step=global_step, **kwargs)
    except (tf.errors.OpError, OSError, ValueError) as e:
        error = e
    ours = (os.path.basename(path_prefix), 'checkpoint')
    left = []
    for name in (set(os.listdir(folder)) - before) if os.path.isdir(folder) else ():
        if name.startswith(ours):
            path = os.path.join(folder, name)
            try:
                if os.path.isdir(path):
                    shutil.rmtree(path)
                else:
                    os.remove(path)
            except OSError:
                left.append(name)
    previous = None
    if state is not None and os.path.isdir(folder):   # (a removed folder: nothing to restore)
        try:
            with open(state_file, 'rb') as f:
                changed = f.read() != state
            if changed:
                with open(state_file, 'wb') as f:   # what it held fits where it was
                    f.write(state)
        except OSError:
            left.append('checkpoint')
        previous = tf.train.latest_checkpoint(folder)
    raise UserError('cannot save checkpoint {}-{} ({}): stopped; {}{}'.format(
        path_prefix, global_step, first_line(error),
        'the latest checkpoint is still {}'.format(previous) if previous else
        'no checkpoint saved', '; left behind: ' + ', '.join(sorted(left)) if left else ''))


def rotating_saver(path_prefix, max_to_keep, var_list=None):
    """A Saver (of var_list, default all) whose rotation (max_to_keep) counts the checkpoints
    earlier runs left at path_prefix too (a Saver rotates only the files it knows); relative
    paths in the state file, so a checkpoint folder can be moved or copied."""
    saver = tf.train.Saver(var_list, max_to_keep=max_to_keep, save_relative_paths=True)
    folder = os.path.dirname(path_prefix)
    state = tf.train.get_checkpoint_state(folder) if os.path.isdir(folder) else None
    if state:
        saver.recover_last_checkpoints(state.all_model_checkpoint_paths)
    return saver


@contextlib.contextmanager
def folder_lock(folder, elsewhere='another --checkpoint-dir', cluster=None):
    """Context: an exclusive OS lock (flock) on folder for a run that writes into it.

    A second run on the same folder is a UserError naming the process that holds it. The
    kernel drops the lock when its holder exits, however it exits (kill -9 included), so
    nothing is ever left to clean up. Readers (--sample) take no lock, nor do the workers of
    a cluster but its chief, the one that writes. A file system without locks (ENOLCK,
    EOPNOTSUPP) is a UserError. The lock holds between processes of one machine: two hosts
    sharing a folder over NFS may each get it (flock is local there on many systems).
    """
    if cluster is not None and not cluster.is_chief:
        yield
        return
    try:
        import fcntl
    except ImportError:   # not a POSIX system: no locking
        yield
        return
    created, parent = [], os.path.abspath(folder)
    while not os.path.isdir(parent):   # the folders this makes, innermost first
        created.append(parent)
        parent = os.path.dirname(parent)
    safe_mkdir(folder)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(os.fstat(fd))
            raise UserError('{} is in use by another run ({}): wait for it to finish, or '
                            'train side by side in {}'.format(
                                folder, 'process {}'.format(holder) if holder else
                                'another process', elsewhere))
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            raise UserError('{} cannot be locked ({}): its file system does not support '
                            'locks (a network share?), and a second run there would overwrite '
                            'this one\'s checkpoints; use a folder on a local disk ({})'.format(
                                folder, e.strerror or e, elsewhere))
        yield
    finally:
        os.close(fd)   # releases the lock
        for path in created:   # nothing written (bad input): leave nothing behind
            try:
                if os.listdir(path):
                    break
                os.rmdir(path)
            except OSError:   # removed meanwhile (or no longer ours to remove)
                break


def _lock_holder(stat):
    """The pid holding a flock on the file of this stat, from /proc/locks (Linux), or None."""
    inode = '{:02x}:{:02x}:{}'.format(os.major(stat.st_dev), os.minor(stat.st_dev), stat.st_ino)
    try:
        with open('/proc/locks') as f:
            for line in f:
                fields = line.split()
                if 'FLOCK' in fields and len(fields) > 5 and fields[5] == inode:
                    return int(fields[4])
    except (OSError, ValueError):
        pass
    return None


def write_json(path, value):
    """json.dump to path atomically (a temporary file renamed over it)."""
    safe_mkdir(os.path.dirname(path))
    try:
        with open(path + '.tmp', 'w', encoding='utf-8') as f:
            json.dump(value, f, ensure_ascii=False, indent=1)
            f.write('\n')
        os.replace(path + '.tmp', path)
    except OSError as e:   # a full disk: the old file stays, no .tmp is left
        try:
            os.remove(path + '.tmp')
        except OSError:
            pass
        raise UserError('cannot write {} ({}): stopped; the file is as it was'.format(
            path, e.strerror or e))


def describe_changes(old, new):
    """'key old (now new), ...' for the keys of new whose value differs in old."""
    def short(value):   # a checksum's first 12 digits tell it apart
        return value[:12] + '...' if isinstance(value, str) and len(value) > 40 else value
    return ', '.join('{} {} (now {})'.format(key, short(old.get(key)), short(new[key]))
                     for key in sorted(new) if old.get(key) != new[key])


def read_history(path, required, added=None, advice=''):
    """The JSON history of a run at path, None if there is none; a UserError naming the
    missing keys when it is unreadable or lacks one of `required`. added: settings added
    since the first histories, with the value those had."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            history = json.load(f)
        missing = [key for key in required if key not in history]
    except (ValueError, TypeError) as e:
        missing = [str(e)]
    if missing:
        raise UserError('{}: corrupt checkpoint history (no {}){}'.format(
            path, ', '.join(missing), '; ' + advice if advice else ''))
    history['settings'] = dict(added or {}, **history['settings'])
    return history


EVENT_FILES = 'events.out.tfevents.*'   # the names FileWriter gives


def clear_events(folder):
    """Deletes the event files in folder: a new run gets fresh ones (the notebook starts with
    `rm -fr logdir`)."""
    for path in glob.glob(os.path.join(folder, EVENT_FILES)):
        os.remove(path)


class NullWriter(object):
    """A FileWriter that writes nothing: a worker that is not the chief writes no events."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def event_writer(folder, graph=None, chief=True, step=0):
    """A FileWriter (a NullWriter on a cluster's other workers). A run resumed at `step`
    marks a restart, so TensorBoard drops what an earlier run wrote after that step."""
    if not chief:
        return NullWriter()
    writer = tf.summary.FileWriter(folder, graph)
    if step:
        writer.add_session_log(tf.SessionLog(status=tf.SessionLog.START), step + 1)
    return writer


def passed(before, after, every):
    """Whether a count passed a multiple of `every` from before to after (a cluster's global
    step may jump)."""
    return after // every > before // every


def scalar_summary(*tags_and_values, **values):
    """A tf.Summary of scalars built in Python (no summary ops in the graph)."""
    pairs = list(tags_and_values) + sorted(values.items())
    return tf.Summary(value=[tf.Summary.Value(tag=tag, simple_value=float(value))
                             for tag, value in pairs])


CHIEF_STOPPED = -1   # StopRequest.signum of a worker whose chief stopped
