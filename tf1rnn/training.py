"""char_rnn.py's training run around the lecture's loop: its data batches (lines or
streams) and settings, the session and the stop on signals, the event files (a training and a
validation writer, scalars and text built in Python), one training step run in a session or
a cluster (a non-finite gradient reported as one line), values kept across steps and saved
with each checkpoint (the state carried over, a wall-time budget), validation and the best
checkpoint. The loop itself, with the lecture's log lines, is char_rnn.Trainer.loop."""
import math
import os
import time

import utils
from tf1rnn import cli, model_dir, runs, streams, windows
from tf1rnn.cli import UserError
from utils import tf


class Events(object):
    """FOLDER/train and FOLDER/val event writers (NullWriters on a cluster's other workers);
    a run resumed at `step` marks a restart there, so TensorBoard drops what an earlier run
    wrote after it."""

    def __init__(self, folder, graph, chief=True, step=0):
        self.train = runs.event_writer(os.path.join(folder, 'train'), graph, chief, step)
        self.val = runs.event_writer(os.path.join(folder, 'val'), None, chief, step)

    def scalars(self, writer, step, **values):
        writer.add_summary(runs.scalar_summary(**values), step)

    def text(self, tag, text, step):
        """A text summary (as tf.summary.text writes it; TensorBoard renders Markdown)."""
        metadata = tf.SummaryMetadata(
            plugin_data=tf.SummaryMetadata.PluginData(plugin_name='text'))
        self.train.add_summary(tf.Summary(value=[tf.Summary.Value(
            tag=tag, metadata=metadata, tensor=tf.make_tensor_proto(text))]), step)

    def flush(self):
        self.train.flush()
        self.val.flush()

    def close(self):
        self.train.close()
        self.val.close()


def run_step(sess, fetches, feed, step, cluster=None, stop=None, folder=None):
    """sess.run of one training step, or cluster.run's (None when stopped while waiting for
    the other workers). A gradient that utils.check_numerics found not finite is one line
    naming the step and the latest checkpoint of folder: nothing was applied, nothing saved."""
    try:
        return cluster.run(sess, fetches, feed, stop) if cluster else sess.run(fetches, feed)
    except tf.errors.InvalidArgumentError as e:
        if 'check_numerics' not in str(e):
            raise
        raise UserError('NaN or Inf at step {}: {}; nothing saved, the latest checkpoint is '
                        '{}'.format(step, cli.first_line(e), tf.train.latest_checkpoint(folder)
                                    if folder else None))


class Meter(object):
    """What the training log line reports since the last one: the loss per real target, and
    characters per second counting window positions (batch x window, padding included: what
    the graph computes), as bench/ does."""

    def __init__(self):
        self.targets, self.positions, self.seconds, self.loss = 0, 0, 0.0, 0.0

    def add(self, batch, loss, seconds):
        self.targets += utils.num_targets(batch)
        self.positions += batch.size
        self.loss += loss
        self.seconds += seconds

    def per_char(self):
        return self.loss / max(self.targets, 1)

    def speed(self):
        return self.positions / max(self.seconds, 1e-9)


class Kept(object):
    """Values a training loop keeps in Python between steps (an RNN state carried over, the
    time trained) in variables of their own, so that each checkpoint saves them and a resumed
    run reads them back: save() before a save, load() after a restore."""

    def __init__(self, name, shapes):
        self.variables = [tf.Variable(tf.zeros(shape), trainable=False, name=name)
                          for shape in shapes]
        self.new = [tf.placeholder(tf.float32, shape) for shape in shapes]
        self.assign = tf.group(*map(tf.assign, self.variables, self.new))

    def load(self, sess):
        return sess.run(self.variables)

    def save(self, sess, values):
        sess.run(self.assign, dict(zip(self.new, values)))


class Budget(object):
    """A wall-time budget of `minutes` (None: none), counted from `start` (time.time()) after
    the seconds trained before it, which a Kept variable ('train_seconds') saves."""

    def __init__(self, minutes, start):
        self.minutes, self.start, self.before = minutes, start, 0.0
        self.kept = Kept('train_seconds', [[]]) if minutes else None

    def load(self, sess):
        if self.kept:
            self.before = float(self.kept.load(sess)[0])

    def save(self, sess):
        if self.kept:
            self.kept.save(sess, [self.spent()])

    def spent(self):
        return self.before + time.time() - self.start

    def progress(self):
        """The fraction spent (the cosine decay's position)."""
        return self.spent() / (60 * self.minutes)

    def over(self):
        return bool(self.minutes) and self.spent() >= 60 * self.minutes


def configure(cfg, args, lecture_temperature):
    """cfg (a config of char_rnn.py) with the flags given applied over it: the flags' None is
    the config's value. A cosine decay ends with the run (its steps or minutes)."""
    for name in ('steps', 'minutes', 'batch_size', 'window', 'lr', 'lr_decay', 'decay_steps',
                 'warmup', 'clip', 'temperature', 'skip_step', 'sample_every', 'eval_every',
                 'eval_batches', 'summary_every'):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    if cfg.lr_decay == 'cosine' and args.decay_steps is None:
        if not cfg.steps and not cfg.minutes:   # the cosine ends with the run: it has no end
            raise UserError('--lr-decay cosine needs an end: --steps N, --minutes M, or '
                            '--decay-steps N (the rate then stays at a tenth after step N)')
        # The cosine ends with the run: at its last step, or at the end of its minutes.
        cfg.decay_steps = None if cfg.minutes else cfg.steps
    if args.length is not None:
        cfg.len_generated = args.length
    args.stream, args.cell = args.stream or cfg.stream, args.cell or cfg.cell
    if args.sampling == 'lecture' and args.temperature is None:
        cfg.temperature = lecture_temperature
    return cfg


def settings(args, cfg, hidden_sizes):
    """What decides the trained model, printed at the start and stored in config.json."""
    names = ('batch_size', 'window', 'lr', 'lr_decay', 'decay_steps', 'warmup', 'clip', 'steps',
             'minutes')
    chosen = dict(config=args.config or 'lecture', hidden_sizes=list(hidden_sizes),
                  keep_prob=args.keep_prob, loss=args.loss,
                  **{name: getattr(cfg, name) for name in names})
    for name in ('decay_steps', 'minutes'):
        if not chosen[name] or not chosen['lr_decay'] and name == 'decay_steps':
            del chosen[name]
    return chosen


def batches(text, args, cfg, cluster=None):
    """(draw, validation batches) of the encoded text: draw(start) yields (batch, reset) from
    the batch drawn after `start` others on. The lecture's windows of lines, the lines
    shuffled each pass (a cluster's workers: lines of their own), each from the zero state
    (reset); or, --stream, contiguous streams (streams.Streams) whose state carries over but
    where reset says."""
    if args.stream:
        split = streams.Split(text.ids, args.val_frac, streams.TEST_FRAC, name=args.data)
        rows = streams.Streams(split.train, cfg.batch_size, cfg.window,
                               task=cluster.task if cluster else 0,
                               workers=cluster.num_workers if cluster else 1)
        print(split.describe() + '; {} streams of {:,} windows of {} a pass{}'.format(
            rows.batch_size, rows.steps, cfg.window, ' (this worker\'s; {} in all)'.format(
                rows.rows) if rows.workers > 1 else ''))
        return ((lambda start: rows.batches([args.seed], start)),
                streams.EvalBatches(split.val, cfg.batch_size, cfg.window))
    split = windows.Corpus(text, cfg.window, args.val_frac, args.seed, args.data)
    print(split.summary())
    lines = cluster.shard(split.train) if cluster else split.train
    seed = [args.seed] + ([cluster.task] if cluster else [])
    return ((lambda start: ((batch, True) for batch in lines.batches(
        cfg.batch_size, seed, start * cfg.batch_size))),
        split.val.fixed_batches(cfg.batch_size, cfg.eval_batches))


def feed_state(model, state, feed):
    """feed with model.in_state set to state (None: the zero state)."""
    if state is not None:
        feed.update(zip(tf.nest.flatten(model.in_state), tf.nest.flatten(state)))
    return feed


def evaluate(sess, model, batches):
    """Loss per real character (nats) over the batches: windows of lines, or (--stream)
    streams.Batch rows, each batch's final state the next one's initial state."""
    total, count, state = 0.0, 0, None
    for batch in batches:
        if model.stream:
            batch, reset = batch
            feed = feed_state(model, None if reset else state, {model.seq: batch})
            loss, state = sess.run([model.loss, model.final_state], feed)
        else:
            loss = sess.run(model.loss, {model.seq: batch})
        total += loss
        count += utils.num_targets(batch)
    return total / max(count, 1)


class Trainer(object):
    """A training run around its loop (a subclass's loop()): the session, the stop on Ctrl-C
    and SIGTERM, the start and end lines, the event files, the state carried over and the
    time trained (saved with each checkpoint), validation and the best checkpoint."""

    def __init__(self, model, cfg, args, data, folder, end_marker='', cluster=None):
        self.model, self.cfg, self.args, self.end_marker = model, cfg, args, end_marker
        # In a cluster each worker trains on its own lines or streams; only the chief writes.
        self.cluster, self.chief = cluster, not cluster or cluster.is_chief
        self.draw, self.val_batches = data   # (batches())
        if model.stream:   # the state carried over, saved with the latest checkpoint
            self.kept_state = Kept('carried_state', [
                [cfg.batch_size, state.shape[-1].value]
                for state in tf.nest.flatten(model.final_state)])
        # --minutes: the time trained so far, saved with the weights: a resume goes on.
        self.budget = Budget(cfg.minutes, args.start)
        self.train_summary = tf.summary.merge([
            tf.summary.scalar('loss_per_char', model.loss_per_char),
            tf.summary.scalar('loss', model.loss),
            tf.summary.scalar('learning_rate', model.learning_rate),
            tf.summary.scalar('gradient_global_norm', model.grad_norm)])
        self.checkpoints = model_dir.Checkpoints(folder, model.best_val_loss, cluster)

    def train(self, run, settings):
        """Opens the session (the latest checkpoint restored, then the run's files written:
        model_dir.Run.started) and trains until cfg.steps, the minutes or Ctrl-C. Returns 0.

        Ctrl-C and SIGTERM (kill, job schedulers) only set `stop`: the loop ends between two
        steps and saves; a signal during a save waits for the save to finish. So does an
        output pipe closed from here on (`| head`), its first line included."""
        def resume(sess):   # (a cluster's chief: each time it makes the session anew)
            self.checkpoints.resume(sess, self.model.gstep)
            run.started(settings)
        with runs.training_session(self.cluster, self.checkpoints.saver, resume,
                                   self.args.threads) as sess:
            with runs.stop_on_signals() as self.stop:
                return self.run(sess)

    def run(self, sess):
        model, cfg = self.model, self.cfg
        self.sess = sess
        self.step, self.best = sess.run([model.gstep, model.best_val_loss])
        if cfg.steps and self.step >= cfg.steps:
            print('step {} already reached (--steps {}): nothing to train'.format(
                self.step, cfg.steps))
            return 0
        self.budget.load(sess)
        if self.budget.over():
            print('{:g} minutes already trained (--minutes {:g}): nothing to train'.format(
                self.budget.before / 60, cfg.minutes))
            return 0
        print('training {} ({}, TensorFlow {}): hidden sizes {}, until {}'.format(
            self.args.model, utils.STACK, tf.version.VERSION, model.hidden_sizes,
            ' or '.join(filter(None, ['step {}'.format(cfg.steps) if cfg.steps else '',
                                      '{:g} minutes'.format(cfg.minutes) if cfg.minutes
                                      else ''])) or 'Ctrl-C'))
        self.events = Events(os.path.join(self.args.logdir, 'char_rnn', self.args.model),
                             sess.graph, self.chief, self.step)
        try:
            self.loop()
            if self.cluster:
                print('stopped at global step {} ({}): {} steps of its own'.format(
                    self.step, self.stop.name if self.stop else 'done', self.own_steps))
            if self.chief and self.stop:
                print('interrupted at step {}: saved {}'.format(
                    self.step, self.save_latest()))
            elif self.chief:
                print(self.checkpoints.done(self.step, self.best))
        finally:
            self.events.close()
        return 0

    def loop(self):
        raise NotImplementedError

    def carried_state(self):
        """--stream: the state the last checkpoint saved (a new run's: zeros), the chief's
        own; else None."""
        if not self.model.stream or not self.chief:
            return None
        return tf.nest.pack_sequence_as(self.model.final_state, self.kept_state.load(self.sess))

    def save_latest(self):
        self.budget.save(self.sess)
        if self.model.stream and self.state is not None:
            self.kept_state.save(self.sess, tf.nest.flatten(self.state))
        return self.checkpoints.save_latest(self.sess, self.step)

    def validate(self):
        """Validation loss per character; the best checkpoint when it is the lowest so far."""
        if not self.val_batches:
            return
        val_loss = evaluate(self.sess, self.model, self.val_batches)
        self.events.scalars(self.events.val, self.step, loss_per_char=val_loss)
        improved = val_loss < self.best
        if improved:
            self.best = val_loss
            self.checkpoints.save_best(self.sess, self.step, val_loss)
        print('    Validation loss {:.4f} nats/char ({:.4f} bits/char){}'.format(
            val_loss, val_loss / math.log(2),
            ', best so far: saved' if improved else ', best {:.4f}'.format(self.best)))


def lr_decay(text):
    """--lr-decay: 'cosine' or a positive rate."""
    return 'cosine' if text == 'cosine' else decay_rate(text)


decay_rate = cli.number(float, low=0, high=1, low_open=True)
lr_decay.range = 'cosine, or ' + decay_rate.range


def add_flags(p):
    """char_rnn.py's flags beyond the lecture's numbers: the schedule (a budget in minutes,
    decay, warm-up, clipping; None: the config's, which char_rnn.make_config applies), how
    often the run logs, samples, validates and saves, and where it writes."""
    add = p.add_argument
    add('--minutes', type=cli.number(float, low=0), default=None, help='train for this much '
        'wall time (a resumed run: in all), which a cosine decay ends with; 0: no budget '
        '(default: ten-minutes configs: 10, else none)')
    add('--lr-decay', type=lr_decay, default=None, metavar='RATE|cosine', help='multiply the '
        'rate by RATE every --decay-steps (exponential_decay, staircase), or cosine: down to a '
        'tenth at --decay-steps (default: the config\'s; lecture: none)')
    add('--decay-steps', type=cli.positive_int, default=None, help='steps per --lr-decay '
        '(default: 1000; with cosine, --steps)')
    add('--warmup', type=cli.non_negative_int, default=None, metavar='STEPS', help='raise the '
        'learning rate linearly over the first STEPS steps (default: the config\'s; lecture: 0)')
    add('--clip', type=cli.number(float, low=0), default=None, metavar='NORM', help='clip '
        'gradients to this global norm, 0: no clipping (default: the config\'s; lecture: 0)')
    add('--skip-step', type=cli.positive_int, default=None, help='print the loss every N steps '
        '(default: 1, as the lecture)')
    add('--sample-every', type=cli.non_negative_int, default=None, help='print samples every '
        'N steps, 0: never (default: 100)')
    add('--eval-every', type=cli.positive_int, default=None, help='validation loss, latest and '
        'best checkpoints every N steps (default: 100)')
    add('--eval-batches', type=cli.non_negative_int, default=None, help='validation batches '
        'per evaluation, 0: all (default: 20)')
    add('--summary-every', type=cli.positive_int, default=None, help='TensorBoard training '
        'scalars every N steps (default: 10)')
    add('--checkpoint-dir', default='checkpoints', help='checkpoints root')
    add('--logdir', default='logdir', help='TensorBoard events root')
    add('--threads', type=cli.non_negative_int, default=0, help='TensorFlow intra- and '
        'inter-op threads, 0: TensorFlow decides')
