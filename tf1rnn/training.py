"""What a training loop writes and runs besides its science: the event files of a run (a
training and a validation writer, scalars and text built in Python), and one training step
run in a session or a cluster, a non-finite gradient reported as one line."""
import os

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
