"""What a training loop writes, runs and keeps besides its science: the event files of a run
(a training and a validation writer, scalars and text built in Python), one training step run
in a session or a cluster (a non-finite gradient reported as one line), values kept across
steps and saved with each checkpoint, and a wall-time budget."""
import os
import time

from tf1rnn import cli, runs
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
