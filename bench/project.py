"""The project rows: char_rnn.py and mnist_rnn.py, imported as modules.

One small function per row, each building the graph through the script's own
public functions and classes and timing the step its training loop runs, so a
change of the scripts' interface is fixed here only.

    char_rnn:  parse_args, make_config, build_model -> CharRNN (seq, loss, opt,
               generate), TRUMP_VOCAB, SEEDS; its windows.Corpus(...).train.batches
    mnist_rnn: MnistRnn (optimize, loss, accuracy), DataSet(...).batches,
               NotebookConfig, INPUT_UNITS, MAX_SEQ_LEN
"""
from __future__ import print_function

import importlib
import time

import numpy as np

import common
from common import THREADS


def _script(name):
    """The project module, or None when it does not exist."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        if getattr(e, 'name', None) == name:
            return None
        raise


def _char_model(char_rnn, tweets, seed, graph='fast'):
    """The lecture-config CharRNN of char_rnn.py (trump vocabulary) in the default graph.

    graph: char_rnn.py's --graph (fast, its default; lecture: dynamic_rnn).
    """
    args = char_rnn.parse_args(['--data', tweets, '--seed', str(seed), '--threads', str(THREADS),
                                '--graph', graph])
    cfg = char_rnn.make_config(args)
    vocab = char_rnn.TRUMP_VOCAB
    model = char_rnn.build_model(vocab, cfg.hidden_sizes, args, cfg)
    return args, cfg, vocab, model


def char_training(char_rnn, tweets, seed=0, graph='fast'):
    """(config, CharRNN, its training batches): what char_rnn.py's training loop runs."""
    # (the script's own modules, which may be another checkout's)
    windows, corpus = char_rnn.windows, char_rnn.model_dir.corpus
    args, cfg, vocab, model = _char_model(char_rnn, tweets, seed, graph)
    split = windows.Corpus(corpus.encode_file(tweets, vocab), cfg.window, args.val_frac, seed)
    return cfg, model, split.train.batches(cfg.batch_size, [seed])


def char_train(tweets, steps, repeats, warmup, seed=0, graph='fast'):
    """char_rnn.py's training step (loss and update; generation, summaries, log lines off)."""
    char_rnn = _script('char_rnn')
    if char_rnn is None:
        return common.skipped('char_rnn.py not found')
    from tf1rnn.runs import session_config
    from utils import tf
    cfg, model, batches = char_training(char_rnn, tweets, seed, graph)
    with tf.Session(config=session_config(THREADS)) as sess:
        sess.run(tf.global_variables_initializer())

        def step(i):
            sess.run([model.loss, model.opt], {model.seq: next(batches)})

        seconds = common.measure(step, steps, repeats, warmup)
    return common.result(seconds, steps * cfg.batch_size * cfg.window, 'char', steps=steps)


def char_generate(repeats, seed=0):
    """char_rnn.py's generate(): the lecture's 11 seeds x 200 chars in one session call."""
    char_rnn = _script('char_rnn')
    if char_rnn is None:
        return common.skipped('char_rnn.py not found')
    from tf1rnn import decoding
    from tf1rnn.runs import session_config
    from utils import tf
    _, cfg, vocab, model = _char_model(char_rnn, char_rnn.DEFAULT_DATA, seed)
    seeds = decoding.default_seeds(char_rnn.SEEDS, vocab)
    with tf.Session(config=session_config(THREADS)) as sess:
        sess.run(tf.global_variables_initializer())
        model.generate(sess, seeds, common.LEN_GENERATED)   # warm-up
        seconds = []
        for r in range(repeats):
            start = time.perf_counter()
            out = model.generate(sess, seeds, common.LEN_GENERATED)
            seconds.append(time.perf_counter() - start)
            common.log('  run {}/{}: {:.3f} s'.format(r + 1, repeats, seconds[-1]))
    return common.result(seconds, 1, 'run', seeds=len(seeds),
                         chars=sum(len(s) - len(seed) for s, seed in zip(out, seeds)),
                         sample=out[0][:60])


def mnist_step(cell, steps, repeats, warmup, seed=0, graph='fast'):
    """mnist_rnn.py's training step for one cell (feed_dict per batch of 128): s per step.

    graph: mnist_rnn.py's --graph (fast, its default; notebook: dynamic_rnn with lengths).
    """
    mnist_rnn = _script('mnist_rnn')
    if mnist_rnn is None:
        return common.skipped('mnist_rnn.py not found')
    from tf1rnn.mnist_data import DataSet
    from tf1rnn.runs import session_config
    from utils import tf
    cfg = mnist_rnn.NotebookConfig()
    tf.set_random_seed(seed)
    rng = np.random.RandomState(seed)
    count = cfg.batch_size * (warmup + steps * repeats)
    shape = [count, mnist_rnn.MAX_SEQ_LEN, mnist_rnn.INPUT_UNITS]
    data = DataSet(rng.rand(*shape).astype(np.float32),
                   rng.randint(0, 10, size=count).astype(np.int64))
    batches = data.batches(cfg.batch_size)
    inputs = tf.placeholder(tf.float32, [cfg.batch_size] + shape[1:], name='inputs')
    labels = tf.placeholder(tf.int64, [cfg.batch_size], name='labels')
    model = mnist_rnn.MnistRnn(inputs, labels, mnist_rnn.INPUT_UNITS, cfg.hidden, cfg.batch_size,
                               mnist_rnn.MAX_SEQ_LEN, cell, lstm_forget_bias=cfg.forget_bias,
                               lr=cfg.lr, graph=graph)
    fetches = [model.optimize, model.loss, model.accuracy]
    with tf.Session(config=session_config(THREADS)) as sess:
        sess.run(tf.global_variables_initializer())

        def step(i):
            batch_input, batch_label = batches[i]
            sess.run(fetches, feed_dict={inputs: batch_input, labels: batch_label})

        seconds = common.measure(step, steps, repeats, warmup)
    return common.result(seconds, steps, 'step', cell=cell, graph=graph)
