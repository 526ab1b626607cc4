"""More than one machine: TensorFlow's distributed runtime (parameter servers and workers,
between-graph replication), the same in both scripts. Without cluster flags or TF_CONFIG
none of this runs."""
import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import time

import numpy as np

from utils import tf, STACK
from tf1rnn.cli import UserError, first_line, non_negative_int, positive_float, positive_int
from tf1rnn.mnist_data import DataSet
from tf1rnn.runs import CHIEF_STOPPED, Stopped, passed, session_config, stop_on_signals
from tf1rnn.windows import Windows


def host_list(text):
    """--ps-hosts / --worker-hosts: 'host:port,host:port' -> a list of 'host:port'."""
    hosts = [h.strip() for h in text.split(',') if h.strip()]
    for host in hosts or [text]:
        name, _, port = host.rpartition(':')
        if not name or not port.isdigit() or not 0 < int(port) < 65536:
            raise argparse.ArgumentTypeError('expected host:port[,host:port...], not {!r}'.format(
                host))
    return hosts


def add_cluster_flags(parser):
    """The flags of TensorFlow's distributed example (mnist_replica.py), and --sync."""
    group = parser.add_argument_group(
        'more than one machine', 'TensorFlow\'s distributed runtime: start the same command on '
        'every host with its own --job-name and --task-index (or set TF_CONFIG instead of the '
        'four flags; cluster.py starts a whole cluster on this machine). Worker 0 is the chief: '
        'it restores, validates, samples and saves; parameter servers hold the variables')
    group.add_argument('--ps-hosts', type=host_list, metavar='HOST:PORT,...',
                       help='the parameter servers')
    group.add_argument('--worker-hosts', type=host_list, metavar='HOST:PORT,...',
                       help='the workers; the first is the chief')
    group.add_argument('--job-name', choices=CLUSTER_JOBS, help='this task\'s job')
    group.add_argument('--task-index', type=non_negative_int, default=None,
                       help='this task\'s index in its job (default: 0)')
    group.add_argument('--sync', action='store_true',
                       help='synchronous updates (SyncReplicasOptimizer): each update applies '
                            'the mean of --replicas-to-aggregate gradients; without it each '
                            'worker updates the variables on its own (asynchronous)')
    group.add_argument('--replicas-to-aggregate', type=positive_int, default=None, metavar='N',
                       help='with --sync: gradients per update (default: the number of workers)')
    group.add_argument('--cluster-wait', type=positive_float, default=300, metavar='SECONDS',
                       help='how long a task waits for the others (parameter servers '
                            'reachable, the chief\'s initialised model) before it gives up')


CLUSTER_JOBS = ('ps', 'worker')
LAUNCHER_GONE_GRACE = 15   # seconds a parameter server outlives a dead cluster.py


def cluster_from_args(args, single_only=()):
    """The Cluster of this task, from the flags or else from TF_CONFIG; None for one process.

    single_only: (flag, given) pairs of settings a cluster cannot run (one clear error).
    """
    flags = any(getattr(args, name) is not None for name in
                ('ps_hosts', 'worker_hosts', 'job_name', 'task_index'))
    if flags:
        if not (args.ps_hosts and args.worker_hosts and args.job_name):
            raise UserError('a cluster needs --ps-hosts, --worker-hosts and --job-name (and '
                            '--task-index), on every task')
        spec, job, task = {'ps': args.ps_hosts, 'worker': args.worker_hosts}, args.job_name, \
            args.task_index or 0
    elif os.environ.get('TF_CONFIG', '').strip():
        spec, job, task = _tf_config()
    else:
        if args.sync or args.replicas_to_aggregate:
            raise UserError('--sync and --replicas-to-aggregate need a cluster (--ps-hosts, '
                            '--worker-hosts, --job-name, --task-index, or TF_CONFIG)')
        return None
    for flag, given in single_only:
        if given:
            raise UserError('{} runs in one process, not in a cluster'.format(flag))
    if not spec.get('ps'):
        raise UserError('a cluster needs at least one parameter server (--ps-hosts)')
    if not spec.get('worker'):
        raise UserError('a cluster needs at least one worker (--worker-hosts)')
    if task >= len(spec[job]):
        raise UserError('--task-index {} but the cluster has {} {} task{} (0 to {})'.format(
            task, len(spec[job]), job, 's' * (len(spec[job]) > 1), len(spec[job]) - 1))
    hosts = spec['ps'] + spec['worker']
    twice = sorted({h for h in hosts if hosts.count(h) > 1})
    if twice:
        raise UserError('{} listed twice in the cluster: each task needs its own port'.format(
            ', '.join(twice)))
    return Cluster(spec, job, task, args.sync, args.replicas_to_aggregate, args.cluster_wait,
                   getattr(args, 'threads', 0))


def _tf_config():
    """(cluster dict, job, task) from the TF_CONFIG environment variable."""
    try:
        config = json.loads(os.environ['TF_CONFIG'])
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        spec = resolver.cluster_spec().as_dict()
        job, task = resolver.task_type, resolver.task_id
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise UserError('TF_CONFIG is not a valid cluster ({}): expected {{"cluster": {{"ps": '
                        '["host:port"], "worker": ["host:port", ...]}}, "task": {{"type": '
                        '"worker", "index": 0}}}}'.format(first_line(e)))
    if not isinstance(config, dict) or set(spec) - set(CLUSTER_JOBS) or job not in CLUSTER_JOBS:
        raise UserError('TF_CONFIG: the jobs here are "ps" and "worker" (worker 0 is the chief), '
                        'not {}; task type {!r}'.format(sorted(spec), job))
    spec = {name: list(hosts) if isinstance(hosts, list) else [hosts[i] for i in sorted(hosts)]
            for name, hosts in spec.items()}
    for hosts in spec.values():
        host_list(','.join(hosts) or 'none')
    return spec, job, int(task or 0)


class _Prefixed(object):
    """A text stream that starts every line with a prefix ('[worker 1] ')."""

    def __init__(self, stream, prefix):
        self.stream, self.prefix, self.at_start = stream, prefix, True

    def write(self, text):
        if text:   # print() writes its end '' too
            lines = text.split('\n')
            self.stream.write('\n'.join(self.prefix + line if line and (i or self.at_start)
                                         else line for i, line in enumerate(lines)))
            self.at_start = text.endswith('\n')
        return len(text)

    def __getattr__(self, name):
        return getattr(self.stream, name)


FIRST_TIMEOUT, MAX_TIMEOUT = 5.0, 60.0   # seconds a training step may wait (sync), see Cluster.run


class Cluster(object):
    """One task of a cluster: its server, device setter, optimizer and session.

    Between-graph replication: every worker builds the whole graph, its variables placed on
    the parameter servers (replica_device_setter, round robin), its computation on itself.
    Worker 0 is the chief: it initialises or restores the variables, and only it validates,
    samples, writes events and checkpoints (which hold the same variables as a single
    process's: --sample and a single process resume from them, and a cluster from theirs).
    """

    def __init__(self, spec, job, task, sync=False, aggregate=None, wait=300, threads=0):
        self.spec, self.job, self.task = spec, job, task
        self.sync, self.wait, self.threads = sync, wait, threads
        self.num_workers = len(spec['worker'])
        self.aggregate = aggregate or self.num_workers
        self.is_chief = job == 'worker' and task == 0
        self.name = '{} {}'.format(job, task)
        self.host = spec[job][task]
        self.server = self.sync_optimizer = self.stop_flag = None
        self.timeout = FIRST_TIMEOUT

    @property
    def per_update(self):
        """Workers' steps (batches) an update of the variables applies: --sync, the
        gradients it aggregates; async, one."""
        return self.aggregate if self.sync else 1

    @property
    def follows_chief(self):
        """Whether this worker trains on until the chief stops, past the last step or minute:
        a synchronous update needs other workers' gradients, so a worker that ended at the
        last step could leave the chief's last step waiting, its tokens all taken."""
        return self.sync and not self.is_chief

    def resume_step(self, sess, global_step, batches):
        """Loads a resumed run's position, `batches` trained, into the global step (in
        updates, rounded up)."""
        global_step.load(-(-batches // self.per_update), sess)

    def own_steps(self, step):
        """This worker's steps (batches) before global step `step`: its share of the updates'
        batches, exact when every worker's batch goes into every update (--sync), about right
        when asynchronous. A resumed worker continues its stream from there."""
        return step * self.per_update // self.num_workers

    def start(self):
        """Prefixes this task's output lines with its name; starts its server (a port in use
        is one clear error, not gRPC's pages)."""
        sys.stdout = _Prefixed(sys.stdout, '[{}] '.format(self.name))
        sys.stderr = _Prefixed(sys.stderr, '[{}] '.format(self.name))
        port = int(self.host.rpartition(':')[2])
        probe = socket.socket()
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(('', port))
        except OSError as e:
            raise UserError('{} cannot listen on port {} ({}): it is in use; give this task '
                            'another port in the host lists'.format(self.name, port,
                                                                      e.strerror or e))
        finally:
            probe.close()
        config = session_config(self.threads)
        try:
            self.server = tf.train.Server(tf.train.ClusterSpec(self.spec), self.job, self.task,
                                          config=config)
        except tf.errors.OpError as e:
            raise UserError('{} cannot start its server on {} ({})'.format(
                self.name, self.host, first_line(e)))
        return self

    def serve(self):
        """A parameter server: serves the variables until Ctrl-C or SIGTERM. Returns 0."""
        print('{} serving on {} ({}, TensorFlow {}); Ctrl-C or SIGTERM stops it'.format(
            self.name, self.host, STACK, tf.version.VERSION), flush=True)
        with stop_on_signals((signal.SIGINT, signal.SIGTERM, signal.SIGHUP)) as stop:
            while not stop:
                time.sleep(0.2)
            if stop.signum == signal.SIGHUP:   # cluster.py died: its workers, sent SIGTERM at
                print('{} lost its launcher: serving {} s more for the chief\'s last save'.format(
                    self.name, LAUNCHER_GONE_GRACE), flush=True)   # once, save through this ps
                deadline, stop.signum = time.time() + LAUNCHER_GONE_GRACE, None
                while stop.signum in (None, signal.SIGPIPE) and time.time() < deadline:
                    time.sleep(0.2)   # (its output pipe died with the launcher: no reason)
                if stop.signum in (None, signal.SIGPIPE):
                    stop.signum = signal.SIGHUP
        print('{} stopped by {}'.format(self.name, stop.name), flush=True)
        return 0

    def device(self):
        """The device scope the graph is built in: variables on the parameter servers."""
        return tf.device(tf.train.replica_device_setter(
            worker_device='/job:worker/task:{}'.format(self.task), cluster=self.spec))

    def apply_gradients(self, optimizer, grads_and_vars, global_step):
        """optimizer's update (synchronous: of the mean of `aggregate` workers' gradients).
        Returns a tensor [global step, chief stopped] read after the update."""
        if self.sync:
            optimizer = self.sync_optimizer = tf.train.SyncReplicasOptimizer(
                optimizer, replicas_to_aggregate=self.aggregate,
                total_num_replicas=self.num_workers)
        update = optimizer.apply_gradients(grads_and_vars, global_step=global_step)
        # Not in any collection: never saved, initialised by the chief alone (session()).
        with tf.device(global_step.device):
            self.stop_flag = tf.Variable(0, dtype=global_step.dtype.base_dtype, trainable=False,
                                         collections=[], name='cluster_stopped')
        self.set_stop = [tf.assign(self.stop_flag, 1)]
        if self.sync:   # tokens that wake workers waiting for an update that will not come
            self.set_stop.append(self.sync_optimizer._sync_token_queue.enqueue_many(
                tf.fill([4 * self.num_workers], global_step)))
        with tf.control_dependencies([update]):
            return tf.stack([tf.identity(global_step), tf.identity(self.stop_flag)])

    @contextlib.contextmanager
    def session(self, saver, restore=None):
        """A MonitoredSession on this task's server; restore(raw session) runs on the chief
        after initialising the variables (and again if the session is made anew). On the way out the chief tells the workers to stop."""
        config = session_config(self.threads)
        # Workers do not wait on each other (tensorflow#16611): each sees the ps and itself.
        config.device_filters.extend(['/job:ps', '/job:worker/task:{}'.format(self.task)])
        self.wait_for_ps()
        raw = []

        class Capture(tf.train.SessionRunHook):
            def after_create_session(self, session, coord):
                raw[:] = [session]

        scaffold = tf.train.Scaffold(
            init_op=tf.group(tf.global_variables_initializer(), self.stop_flag.initializer),
            init_fn=(lambda _, session: restore(session)) if restore else None,
            saver=saver)
        hooks = [Capture()]
        if self.sync_optimizer:
            hooks.append(self.sync_optimizer.make_session_run_hook(self.is_chief))
        if self.is_chief:
            creator = tf.train.ChiefSessionCreator(scaffold, self.server.target, config)
        else:
            print('waiting for the chief (worker 0, {}) to initialise the model'.format(
                self.spec['worker'][0]), flush=True)
            creator = _WorkerSessionCreator(scaffold, self.server.target, config,
                                            max_wait_secs=self.wait)
        try:
            # stop_grace_period_secs: the sync chief's queue runner would hold the exit 120 s.
            sess = tf.train.MonitoredSession(creator, hooks, stop_grace_period_secs=2)
        except tf.errors.DeadlineExceededError:
            raise UserError('{}: the chief (worker 0, {}) did not initialise the model within '
                            '--cluster-wait {:g} s: is it running, with the same host lists?'
                            .format(self.name, self.spec['worker'][0], self.wait))
        self.raw = lambda: raw[0]
        try:
            yield sess
        finally:
            if self.is_chief:
                try:
                    raw[0].run(self.set_stop, options=tf.RunOptions(timeout_in_ms=10000))
                except tf.errors.OpError:
                    pass
            # The sync chief's queue runner waits for gradients that will not come: closing
            # its session first cancels the wait, which the coordinator then re-raises.
            if self.sync_optimizer and self.is_chief:
                raw[0].close()
            try:
                sess.close()
            except tf.errors.CancelledError:
                pass

    def wait_for_ps(self):
        """Waits up to --cluster-wait for every parameter server to accept connections."""
        deadline = time.time() + self.wait
        for index, host in enumerate(self.spec['ps']):
            name, _, port = host.rpartition(':')
            while True:
                try:
                    socket.create_connection((name.strip('[]'), int(port)), timeout=2).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise UserError('{}: parameter server ps {} ({}) not reachable within '
                                        '--cluster-wait {:g} s: is it running, and are the host '
                                        'lists the same on every task?'.format(
                                            self.name, index, host, self.wait))
                    time.sleep(0.5)

    def run(self, sess, fetches, feed, stop):
        """sess.run of a training step, its fetches[1] the tensor of apply_gradients. Returns
        the results with fetches[1]'s as the global step, or None when stopped while waiting.

        A synchronous step waits for the other workers' gradients; one that left makes it
        wait forever. So the wait is bounded: a step that has not ended after `timeout`
        seconds returns, Ctrl-C or SIGTERM get their turn, and it is tried again (pushing
        another gradient, as a fast worker does). The timeout grows with the steps' time.
        """
        options = tf.RunOptions(timeout_in_ms=int(self.timeout * 1000)) if self.sync else None
        while True:
            start = time.time()
            try:
                results = sess.run(fetches, feed, options=options)
                break
            except tf.errors.DeadlineExceededError:
                if stop or self.chief_stopped(stop):
                    return None
                self.timeout = min(2 * self.timeout, MAX_TIMEOUT)
                options = tf.RunOptions(timeout_in_ms=int(self.timeout * 1000))
                print('waiting for the other workers\' gradients (a worker gone?)', flush=True)
        self.timeout = max(self.timeout, 10 * (time.time() - start))
        step, stopped = results[1]
        if stopped and not self.is_chief and stop.signum is None:
            stop.signum = CHIEF_STOPPED
        results[1] = int(step)
        return results

    def chief_stopped(self, stop):
        """A worker's check while its step waits: has the chief stopped? (Its stop tokens can
        be lost, its last run cut short: the wait would then never end.) Sets the stop."""
        if self.is_chief:
            return False
        try:
            stopped = self.raw().run(self.stop_flag, options=tf.RunOptions(timeout_in_ms=5000))
        except tf.errors.OpError:
            return False
        if stopped and stop.signum is None:
            stop.signum = CHIEF_STOPPED
        return bool(stopped)

    def shard(self, windows):
        """This worker's share of windows (utils.Windows): lines task, task + n, ..."""
        if windows.n_lines < self.num_workers:
            raise UserError('{} training lines for {} workers: each needs one at least'.format(
                windows.n_lines, self.num_workers))
        take = np.arange(self.task, windows.n_lines, self.num_workers)
        return Windows(windows.ids, windows.starts[take], windows.lengths[take], windows.window)


class _WorkerSessionCreator(tf.train.WorkerSessionCreator):
    """WorkerSessionCreator that checks every second, not every 30 s, whether the chief has
    initialised the model (SessionManager's recovery_wait_secs; tensorflow#10679)."""

    def _get_session_manager(self):
        manager = super(_WorkerSessionCreator, self)._get_session_manager()
        manager._recovery_wait_secs = 1
        return manager


class Progress(object):
    """Where a training loop in epochs (mnist_rnn.train) stands, counted for one process or
    for a cluster's worker: `done`, the batches the model's variables have been trained on,
    and the notebook's `step`, which counts the test batches of the epochs tested too.

    One process counts its own steps. On a cluster each worker trains on its share of the
    images (task, task + n, ...), batch after batch, and reads `done` off the global step
    after each of its steps (an update is per_update batches, async one; the others' updates
    count too, so it jumps); only the chief tests, when `done` passes an epoch's end, the
    others train on meanwhile. A worker other than the chief knows `done` only after its
    first step (None before).
    """

    def __init__(self, cluster, done, tested, epoch_batches, test_batches, epochs):
        self.cluster, self.epoch_batches, self.test_batches = cluster, epoch_batches, test_batches
        self.chief = cluster is None or cluster.is_chief
        self.done = done if self.chief else None
        self.tested, self.epochs = tested, epochs   # epochs tested; epochs to train
        self.own = 0   # this process's steps since the last epoch tested
        self.epoch = self.before = None   # see run()
        self.first = False

    def batches(self, dataset, batch_size):
        """This process's whole batches of dataset (mnist_data.DataSet), in order."""
        task, workers = (0, 1) if self.cluster is None else (self.cluster.task,
                                                             self.cluster.num_workers)
        batches = DataSet(dataset.images[task::workers],
                          dataset.labels[task::workers]).batches(batch_size)
        if not batches:
            raise UserError('{} training images for {} workers make no whole batch of '
                            '--batch-size {} each'.format(dataset.num_examples, workers,
                                                          batch_size))
        return batches

    @property
    def step(self):
        """The notebook's step after `done` batches (test batches count too: those of the
        epochs tested; a worker's estimate of them)."""
        done = self.done or 0
        tested = self.tested if self.chief else max(done - 1, 0) // self.epoch_batches
        return done + tested * self.test_batches

    @property
    def epoch_steps(self):
        """The steps of the epoch to test that this process trained (one process: all)."""
        return self.own if self.cluster else self.epoch_batches

    def to_test(self):
        """The chief's next epoch (0-based) to test, all of its batches trained, as long as
        there is one: the caller tests it and calls tested_epoch before the next."""
        while self.chief and self.tested < min(self.done // self.epoch_batches, self.epochs):
            yield self.tested

    def tested_epoch(self, step):
        """Counts the epoch just tested, its test loop ending at the notebook's `step`;
        returns the position after it: {'epoch', 'batch', 'step'}."""
        self.tested, self.own = self.tested + 1, 0
        return {'epoch': self.tested, 'batch': self.done - self.tested * self.epoch_batches,
                'step': step}

    @property
    def finished(self):
        if self.cluster is not None and self.cluster.follows_chief:
            return False   # until the chief stops (Cluster.follows_chief)
        return self.done is not None and self.done >= self.epochs * self.epoch_batches

    def run(self, sess, fetches, feed, stop):
        """sess.run of a training step (a cluster's: Cluster.run, fetches[1] the update), and
        the count after it; runs.Stopped when stopped while waiting for the other workers.
        Until it returns, `epoch` and `before` are the step's epoch (0-based) and the
        notebook's step before it; then `epoch` is the epoch of the batches trained by now."""
        self.epoch = min((self.done or 0) // self.epoch_batches, self.epochs - 1)
        self.before = self.step
        results = (self.cluster.run(sess, fetches, feed, stop) if self.cluster else
                   sess.run(fetches, feed))
        if results is None:
            raise Stopped
        self.first = self.done is None
        self.done = (self.done + 1 if self.cluster is None else
                     results[1] * self.cluster.per_update)
        self.epoch = min((self.done - 1) // self.epoch_batches, self.epochs - 1)
        self.own += 1
        return results

    def passed(self, every):
        """Whether the last step passed a multiple of `every` notebook steps (a worker's
        first step does not: it knew no step before)."""
        return passed(self.before, self.step, every) and not self.first

    def position(self):
        """{'epoch', 'batch', 'step'} after the last step: an epoch still to test stays open
        (its batch >= its batches)."""
        epoch = min(self.done // self.epoch_batches,
                    self.tested if self.chief else self.epochs - 1)
        return {'epoch': epoch, 'batch': self.done - epoch * self.epoch_batches, 'step': self.step}


@contextlib.contextmanager
def cluster_device(cluster):
    """cluster.device(), or nothing for one process."""
    if cluster is None:
        yield
    else:
        with cluster.device():
            yield
