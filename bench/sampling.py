"""Lecture sampling against softmax sampling, on a trained char_rnn.py checkpoint.

The lecture draws from multinomial(exp(logits / T)), i.e. probabilities proportional to
exp(exp(logits / T)); standard temperature sampling draws from softmax(logits / T). For
each, this generates samples from the lecture's seeds and reports:

  - distinct bigrams: distinct character bigrams / all bigrams in the generated text
    (low: repetitive);
  - model NLL: the model's own negative log-likelihood of the generated characters,
    nats per character at T = 1 (low: the model finds the text likely, which greedy,
    repetitive text is);
  - the most repeated 8-character string's share of the generated text.

    python bench/sampling.py --checkpoint-dir checkpoints --model trump_tweets \
        [--temperature 1.5] [--rounds 3] [--length 200]
"""
from __future__ import print_function

import argparse
import collections
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import char_rnn  # noqa: E402
import utils  # noqa: E402
from utils import tf  # noqa: E402


def generated_stats(model, sess, vocab, seeds, texts):
    """(distinct bigram share, model NLL nats/char, top 8-gram share) of the generated parts."""
    generated = [text[len(seed):] for seed, text in zip(seeds, texts)]
    bigrams = [g[i:i + 2] for g in generated for i in range(len(g) - 1)]
    grams8 = collections.Counter(g[i:i + 8] for g in generated for i in range(len(g) - 7))
    top8 = grams8.most_common(1)[0][1] * 8.0 / max(1, sum(len(g) for g in generated))
    # NLL of each generated character given everything before it (seed included),
    # minus the seed's own characters.
    rows = [utils.vocab_encode(t, vocab) for t in texts]
    seed_rows = [utils.vocab_encode(s, vocab) for s in seeds]
    feed_all = {model.seq: char_rnn.pad(rows), model.temp: 1.0}
    feed_seed = {model.seq: char_rnn.pad(seed_rows), model.temp: 1.0}
    loss_all, n_all = sess.run([model.loss, model.num_targets], feed_all)
    loss_seed, n_seed = sess.run([model.loss, model.num_targets], feed_seed)
    nll = (loss_all - loss_seed) / (n_all - n_seed)
    return len(set(bigrams)) / float(len(bigrams)), nll, top8


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--checkpoint-dir', default='checkpoints')
    p.add_argument('--model', default='trump_tweets')
    p.add_argument('--temperature', type=float, default=1.5)
    p.add_argument('--length', type=int, default=200)
    p.add_argument('--rounds', type=int, default=3, help='batches of the 11 seeds per sampling')
    args = p.parse_args(argv)
    model_dir = os.path.join(args.checkpoint_dir, args.model)
    stored = char_rnn.read_stored_config(model_dir)
    ckpt = char_rnn.latest_checkpoint(model_dir)
    if not ckpt or not stored:
        raise utils.UserError('no checkpoint in {}'.format(model_dir))
    vocab, sizes = stored['vocab'], stored['hidden_sizes']
    seeds = char_rnn.default_seeds(vocab)
    print('checkpoint {}, T = {}, {} x {} samples of {} characters ({})'.format(
        ckpt, args.temperature, args.rounds, len(seeds), args.length, utils.STACK))
    print('| sampling | distinct bigrams | model NLL (nats/char) | top 8-gram share |')
    print('|---|---|---|---|')
    for sampling in ('lecture', 'softmax'):
        cargs = char_rnn.parse_args(['--sampling', sampling, '--temperature',
                                     str(args.temperature), '--seed', '0'])
        cfg = char_rnn.make_config(cargs)
        with tf.Graph().as_default():
            model = char_rnn.build_model(vocab, sizes, cargs, cfg)
            with tf.Session(config=utils.session_config()) as sess:
                char_rnn.restore(sess, tf.train.Saver(), ckpt)
                texts, all_seeds = [], []
                for _ in range(args.rounds):
                    texts += model.generate(sess, seeds, args.length)
                    all_seeds += seeds
                distinct, nll, top8 = generated_stats(model, sess, vocab, all_seeds, texts)
        print('| {} | {:.1%} | {:.2f} | {:.1%} |'.format(sampling, distinct, nll, top8))
        print('|   e.g. | {} |'.format(texts[0][:100].replace('|', '/')), file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(utils.run_main(main))
