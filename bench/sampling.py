"""What char_rnn.py's samples look like, by sampling formula and temperature, on a checkpoint.

For each (formula, temperature) it generates from the lecture's seeds and measures, over
all generated characters:

  - rare chars: the share of characters that are rare in the corpus (each under 0.05% of
    it), against their share of the corpus itself: noise shows here first;
  - model < 1%: the share of characters to which the model itself (at T = 1) gave under 1%
    probability where they were drawn, against the same share of the held-out lines;
  - model NLL: the model's negative log-likelihood of its samples, nats per character;
    sampling at T = 1 from the model matches its validation loss.

softmax is p ~ exp(logits / T), char_rnn.py's default; lecture is the lecture's literal
multinomial(exp(logits / T)), p ~ exp(exp(logits / T)). Samples end at the data's end
marker (the tweets' _E_), as char_rnn.py prints them. The table and a sample of each row
go to bench/results/sampling-<stack>.md (the command that made it is written there too).

    python char_rnn.py --data ../shared/data/trump_tweets.txt --steps 5000
    python bench/sampling.py --data ../shared/data/trump_tweets.txt
"""
from __future__ import print_function

import argparse
import collections
import datetime
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import char_rnn  # noqa: E402
import utils  # noqa: E402
from tf1rnn import cli, corpus, decoding, model_dir, runs, windows
from utils import tf  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RARE = 0.0005        # a character is rare when it is under 0.05% of the corpus
UNLIKELY = 0.01      # the model gives it under 1% probability
ROWS = [('softmax', 0.5), ('softmax', 0.7), ('softmax', 0.8), ('softmax', 0.9),
        ('softmax', 1.0), ('softmax', 1.5), ('lecture', 1.0), ('lecture', 1.5)]


def target_probabilities(sess, model, batch):
    """The model's probability (T = 1) of each next character of the rows of batch:
    [rows, width - 1], meaningful where the target is not padding."""
    logits = sess.run(model.logits, {model.seq: batch}).astype(np.float64)
    logits -= logits.max(axis=-1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=-1, keepdims=True)
    targets = np.asarray(batch)[:, 1:]
    return np.take_along_axis(probs[:, :-1], np.maximum(targets - 1, 0)[..., None], -1)[..., 0]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default=char_rnn.DEFAULT_DATA, help='the corpus the model trained on')
    p.add_argument('--checkpoint-dir', default='checkpoints')
    p.add_argument('--model', default='trump_tweets')
    p.add_argument('--rounds', type=int, default=40, help='batches of the seeds per row')
    p.add_argument('--length', type=int, default=200)
    p.add_argument('--out', default=None,
                   help='markdown file (default: bench/results/sampling-<stack>.md)')
    args = p.parse_args(argv)
    folder = os.path.join(args.checkpoint_dir, args.model)
    stored, ckpt = model_dir.read(folder)
    if not ckpt or not stored:
        raise cli.UserError('no checkpoint in {}'.format(folder))
    vocab, sizes = stored['vocab'], stored['hidden_sizes']
    with open(args.data, encoding='utf-8') as f:
        lines = [line.strip() for line in f]
    counts = collections.Counter(''.join(lines))
    total = float(sum(counts[ch] for ch in vocab))
    rare = {ch for ch in vocab if counts[ch] / total < RARE}
    corpus_rare = sum(counts[ch] for ch in rare) / total
    validation = stored.get('validation', {})
    split = windows.Corpus(corpus.encode_lines(lines, vocab), 50,
                           validation.get('val_frac', 0.05), validation.get('seed', 0))
    seeds = decoding.default_seeds(char_rnn.SEEDS, vocab)
    rows = []
    for sampling, temperature in ROWS:
        cargs = char_rnn.parse_args(['--sampling', sampling, '--seed', '0'])
        cfg = char_rnn.make_config(cargs)
        with tf.Graph().as_default():
            model = char_rnn.build_model(vocab, sizes, cargs, cfg)
            with tf.Session(config=runs.session_config()) as sess:
                runs.restore(sess, tf.train.Saver(), ckpt)
                step = sess.run(model.gstep)
                if not rows:
                    held_out = np.concatenate([target_probabilities(sess, model, batch)[
                        batch[:, 1:] > 0] for batch in split.val.fixed_batches(64)])
                texts, probs = [], []
                for _ in range(args.rounds):
                    batch = model.generate(sess, seeds, args.length, temperature=temperature,
                                           end=stored.get('end_marker', ''))
                    picked = target_probabilities(sess, model, utils.pad(
                        [utils.vocab_encode(text, vocab) for text in batch]))
                    # The generated characters' targets: after each seed's last character.
                    probs += [row[len(seed) - 1:len(text) - 1]
                              for row, seed, text in zip(picked, seeds, batch)]
                    texts += batch
                probs = np.concatenate(probs)
        generated = ''.join(t[len(s):] for t, s in zip(texts, seeds * args.rounds))
        rows.append((sampling, temperature, sum(ch in rare for ch in generated) / len(generated),
                     float(np.mean(probs < UNLIKELY)), float(-np.mean(np.log(probs))), texts[0]))
        print('{} T={}: rare {:.2%}, model<1% {:.2%}, NLL {:.2f}'.format(*rows[-1][:5]))
    out = args.out or os.path.join(ROOT, 'bench', 'results', 'sampling-{}.md'.format(utils.STACK))
    command = 'python bench/sampling.py ' + ' '.join(argv if argv is not None else sys.argv[1:])
    with open(out, 'w', encoding='utf-8') as f:
        f.write('# Sampling: formula and temperature ({})\n\n'.format(utils.STACK))
        f.write('Written by `{}` on {}, checkpoint `{}` (step {}, held-out loss {:.3f} nats/char '
                'by this measure). {} x {} seeds x up to {} characters, to the end marker {!r}, per row.\n\n'.format(
                    command.strip(), datetime.date.today(), ckpt, step,
                    float(-np.mean(np.log(held_out))), args.rounds, len(seeds), args.length,
                    stored.get('end_marker', '')))
        f.write('| sampling | T | rare chars | model < 1% | model NLL (nats/char) |\n'
                '|---|--:|--:|--:|--:|\n')
        f.write('| (corpus / held-out lines) | | {:.2%} | {:.2%} | {:.3f} |\n'.format(
            corpus_rare, float(np.mean(held_out < UNLIKELY)), float(-np.mean(np.log(held_out)))))
        for sampling, temperature, rare_share, unlikely, nll, _ in rows:
            f.write('| {} | {} | {:.2%} | {:.2%} | {:.3f} |\n'.format(
                sampling, temperature, rare_share, unlikely, nll))
        f.write('\nrare chars: characters each under {:.2%} of the corpus ({} of {}: {}). '
                'model < 1%: drawn where the model gave them under 1%.\n\n'
                'The first sample of each row:\n\n'.format(
                    RARE, len(rare), len(vocab), ''.join(sorted(rare)).replace('|', '/')))
        for sampling, temperature, _, _, _, text in rows:
            f.write('- {} T={}: `{}`\n'.format(sampling, temperature, text.replace('`', "'")))
    print('wrote', os.path.relpath(out, ROOT))
    return 0


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
