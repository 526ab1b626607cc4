"""Where a char_rnn training step and a generation go: ops executed and the share of matmuls.

One traced step (RunMetadata, FULL_TRACE) of each graph after a warm-up: the lecture's own
graph (bench/lecture_char_rnn.py), char_rnn.py --graph lecture, and char_rnn.py's default
fast graph. "ops" counts the kernels the executor ran (loop machinery included); kernel ms
sums every kernel's time in that step (kernels on two threads overlap, so the sum exceeds
the step), matmul ms the MatMul kernels' part, and "matmul share" the ratio (tracing slows
every op a little: read these as shares, not as speeds). Then the same for one call of
char_rnn.py's generate(): the lecture's 11 seeds, 200 characters each, in one in-graph loop.

    python bench/op_count.py        # writes bench/results/op-count-<stack>.md
"""
from __future__ import print_function

import collections
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'bench'))

import common  # noqa: E402
import utils  # noqa: E402
from tf1rnn import decoding, runs
from utils import tf  # noqa: E402

MATMULS = ('MatMul', '_FusedMatMul', 'BatchMatMul', 'BatchMatMulV2', 'BlockLSTM', 'GRUBlockCell')


def lecture_graph(tweets):
    import lecture_char_rnn
    model = lecture_char_rnn.CharRNN()
    model.create_model()
    batches = common.lecture_batches(tweets, 10)
    return model.seq, [model.loss, model.opt], lambda i: batches[i % len(batches)]


def project_graph(tweets, graph):
    import char_rnn
    import project
    _, model, batches = project.char_training(char_rnn, tweets, graph=graph)
    return model.seq, [model.loss, model.opt], lambda i: next(batches)


def generation_graph(tweets):
    import char_rnn
    args = char_rnn.parse_args([])
    cfg = char_rnn.make_config(args)
    model = char_rnn.build_model(char_rnn.TRUMP_VOCAB, cfg.hidden_sizes, args, cfg)
    seeds = utils.pad([utils.vocab_encode(seed, model.vocab)
                       for seed in decoding.default_seeds(char_rnn.SEEDS, model.vocab)])
    return model.seq, model.generated, lambda i: seeds


def trace(build, tweets, warmup=5, timed=10):
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(0)
        seq, fetches, batch = build(tweets)
        init = tf.global_variables_initializer()
    with tf.Session(graph=graph, config=runs.session_config(common.THREADS)) as sess:
        sess.run(init)
        for i in range(warmup):
            sess.run(fetches, {seq: batch(i)})
        start = time.perf_counter()
        for i in range(timed):
            sess.run(fetches, {seq: batch(i)})
        seconds = (time.perf_counter() - start) / timed
        meta = tf.RunMetadata()
        sess.run(fetches, {seq: batch(0)}, run_metadata=meta,
                 options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE))
    counts, micros = collections.Counter(), collections.Counter()
    for device in meta.step_stats.dev_stats:
        if device.device.startswith('/host'):
            continue   # the same kernels again, as the host sees them
        for node in device.node_stats:
            kind = node.timeline_label.split('(')[0].split(' = ')[-1].strip() or node.node_name
            counts[kind] += 1
            micros[kind] += node.all_end_rel_micros
    total = sum(micros.values())
    matmul = sum(micros[k] for k in MATMULS)
    loop = sum(counts[k] for k in ('Enter', 'Exit', 'Merge', 'Switch', 'NextIteration',
                                   'LoopCond', 'Identity'))
    return dict(ops=sum(counts.values()), loop_ops=loop, matmuls=sum(counts[k] for k in MATMULS),
                matmul_share=matmul / max(total, 1), matmul_ms=matmul / 1e3, kernel_ms=total / 1e3,
                seconds=seconds)


def main():
    tweets = common.tweets_path(None)
    rows = [('the lecture\'s graph (bench/lecture_char_rnn.py)', lecture_graph),
            ('char_rnn.py --graph lecture', lambda t: project_graph(t, 'lecture')),
            ('char_rnn.py (fast graph, the default)', lambda t: project_graph(t, 'fast'))]
    results = []
    for label, build in rows:
        r = trace(build, tweets)
        results.append((label, r))
        print(label, r, flush=True)
    generation = trace(generation_graph, tweets, warmup=2, timed=5)
    print('generation', generation, flush=True)
    load = os.getloadavg()[0]
    lines = ['# One char_rnn training step: ops and matmul share ({}, TensorFlow {})'.format(
                 utils.STACK, tf.__version__), '',
             '`python bench/op_count.py`, {}, load average {:.2f}; batch 64 x window 50, '
             'the tweets. "s/step" is a mean of 10 untraced steps (noisy: BENCHMARKS.md has '
             'the speed).'.format(time.strftime('%Y-%m-%d %H:%M'), load), '',
             '| graph | ops per step | of them loop machinery | matmul kernels | kernel ms '
             '(all, summed) | matmul ms | matmul share | s/step |',
             '|---|--:|--:|--:|--:|--:|--:|--:|']
    for label, r in results:
        lines.append('| {} | {:,} | {:,} | {:,} | {:.0f} | {:.0f} | {:.0%} | {:.3f} |'.format(
            label, r['ops'], r['loop_ops'], r['matmuls'], r['kernel_ms'], r['matmul_ms'],
            r['matmul_share'], r['seconds']))
    g, chars = generation, common.LEN_GENERATED
    lines += ['', '## One generate() call: {} seeds x {} characters'.format(
                  len(common.SEEDS), chars), '',
              '| graph | ops per character | of them loop machinery | matmul kernels per '
              'character | kernel ms (all, summed) | matmul ms | matmul share | s/run |',
              '|---|--:|--:|--:|--:|--:|--:|--:|',
              '| char_rnn.py generate() (in-graph loop, the lecture\'s cells) | {:.0f} | {:.0f} | '
              '{:.1f} | {:.0f} | {:.0f} | {:.0%} | {:.3f} |'.format(
                  g['ops'] / chars, g['loop_ops'] / chars, g['matmuls'] / chars, g['kernel_ms'],
                  g['matmul_ms'], g['matmul_share'], g['seconds']),
              '', 'Removing every op but the matmuls would make generation at most 1 / '
              '(matmul share) times faster.']
    out = os.path.join(ROOT, 'bench', 'results', 'op-count-{}.md'.format(utils.STACK))
    with open(out, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    print('written: ' + os.path.relpath(out, ROOT))


if __name__ == '__main__':
    main()
