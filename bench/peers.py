"""The same models in the tools a researcher would compare with (TF2 stack only).

tf.keras here is TF2's own, eager with tf.function (Keras 3), and runs without
the tf.compat.v1 shim: this module never imports utils, whose import turns v2
behaviour off for the whole process.

Char model: one-hot input, GRU 128 then GRU 256, dense logits, summed softmax
cross-entropy of each position against the next character, Adam 0.0003, batches
of 64 windows of 50 from the lecture's pipeline. The one-hot depth is
len(vocab) + 1 (id 0 = padding gets its own class; the lecture's one-hot of
depth len(vocab) loses the last character instead), a difference of one column.
Keras' GRU is its default (reset_after=True, the cuDNN formulation), torch's GRU
is the same formulation; the matmul sizes, hence the FLOPs, are the lecture's.
"""
from __future__ import print_function

import os
import time

import numpy as np

import common
from common import BATCH_SIZE, HIDDEN_SIZES, THREADS, VOCAB, WINDOW
from common import MNIST_BATCH_SIZE as MB, MNIST_HIDDEN_UNITS, MNIST_INPUT_UNITS, MNIST_SEQ_LEN

DEPTH = len(VOCAB) + 1


def _tensorflow():
    os.environ.pop('TF_USE_LEGACY_KERAS', None)
    import tensorflow as tf
    if tf.__version__.startswith('1.'):
        raise RuntimeError('the tf.keras peers run on the TF2 stack')
    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    import keras
    return tf, keras


def _next_char_targets(batches):
    """Targets (the next id at each position) and weights (0 at the last position)."""
    x = np.concatenate(batches)
    y = np.zeros_like(x)
    y[:, :-1] = x[:, 1:]
    w = np.ones(x.shape, np.float32)
    w[:, -1] = 0.0
    return x, y, w


def keras_char_train(tweets, steps, repeats, warmup, seed=0):
    """tf.keras Model.fit on the char model: chars per second."""
    _, keras = _tensorflow()
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(WINDOW,), batch_size=BATCH_SIZE, dtype='int32')
    x = keras.ops.one_hot(inputs, DEPTH)
    for units in HIDDEN_SIZES:
        x = keras.layers.GRU(units, return_sequences=True)(x)
    logits = keras.layers.Dense(DEPTH)(x)
    model = keras.Model(inputs, logits)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.0003),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                  reduction='sum'))
    batches = common.lecture_batches(tweets, max(warmup, 1) + steps * repeats, seed)
    x, y, w = _next_char_targets(batches)
    seconds, history = _fit_blocks(keras, model, x, y, w, BATCH_SIZE, steps, repeats, warmup)
    return common.result(seconds, steps * BATCH_SIZE * WINDOW, 'char', steps=steps,
                         keras=keras.__version__, jit_compile=bool(model.jit_compile),
                         final_loss=float(history.history['loss'][-1]))


def torch_char_train(tweets, steps, repeats, warmup, seed=0):
    """PyTorch (CPU) on the char model: chars per second."""
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(THREADS)
    torch.set_num_interop_threads(THREADS)
    torch.manual_seed(seed)

    class CharGRU(torch.nn.Module):
        def __init__(self):
            super().__init__()
            sizes = (DEPTH,) + tuple(HIDDEN_SIZES)
            self.grus = torch.nn.ModuleList(
                [torch.nn.GRU(n_in, n_out, batch_first=True)
                 for n_in, n_out in zip(sizes[:-1], sizes[1:])])
            self.dense = torch.nn.Linear(sizes[-1], DEPTH)

        def forward(self, ids):
            x = F.one_hot(ids, DEPTH).float()
            for gru in self.grus:
                x, _ = gru(x)
            return self.dense(x)

    model = CharGRU()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.0003)
    batches = [torch.from_numpy(b.astype(np.int64))
               for b in common.lecture_batches(tweets, warmup + steps * repeats, seed)]
    losses = []

    def step(i):
        ids = batches[i]
        logits = model(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, DEPTH), ids[:, 1:].reshape(-1),
                               reduction='sum')
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    seconds = common.measure(step, steps, repeats, warmup)
    return common.result(seconds, steps * BATCH_SIZE * WINDOW, 'char', steps=steps,
                         torch=torch.__version__, threads=torch.get_num_threads(),
                         final_loss=losses[-1])


KERAS_MNIST_CELLS = {'simple_rnn': 'SimpleRNN', 'lstm': 'LSTM', 'gru': 'GRU'}


def keras_mnist_step(cell, steps, repeats, warmup, seed=0):
    """tf.keras Model.fit on row-by-row MNIST (31 units, batch 128, Adam 0.001): s per step."""
    _, keras = _tensorflow()
    keras.utils.set_random_seed(seed)
    layer = getattr(keras.layers, KERAS_MNIST_CELLS[cell])
    model = keras.Sequential([keras.Input(shape=(MNIST_SEQ_LEN, MNIST_INPUT_UNITS), batch_size=MB),
                              layer(MNIST_HIDDEN_UNITS), keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    rng = np.random.RandomState(seed)
    total = MB * (max(warmup, 1) + steps * repeats)
    x = rng.rand(total, MNIST_SEQ_LEN, MNIST_INPUT_UNITS).astype(np.float32)
    y = rng.randint(0, 10, size=total).astype(np.int64)
    seconds, _ = _fit_blocks(keras, model, x, y, None, MB, steps, repeats, warmup)
    return common.result(seconds, steps, 'step', cell=cell, keras=keras.__version__)


def _fit_blocks(keras, model, x, y, w, batch_size, steps, repeats, warmup):
    """One Model.fit over warm-up and timed batches; seconds per block of `steps` batches.

    A callback notes the time at the end of each batch, so a block is the time
    between the ends of its first batch's predecessor and its last batch, Keras'
    own loop included, its per-call set-up (the first batch) left out.
    """
    warmup = max(warmup, 1)

    class Clock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    clock = Clock()
    history = model.fit(x, y, sample_weight=w, batch_size=batch_size, epochs=1, shuffle=False,
                        verbose=0, callbacks=[clock])
    seconds = []
    for r in range(repeats):
        first = warmup + r * steps - 1
        seconds.append(clock.ends[first + steps] - clock.ends[first])
        common.log('  repeat {}/{}: {:.3f} s for {} steps'.format(
            r + 1, repeats, seconds[-1], steps))
    return seconds, history
