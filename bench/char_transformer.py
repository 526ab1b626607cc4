"""A character-level GPT baseline in PyTorch, trained for a wall-time budget.

The model and training follow nanoGPT's CPU recipe for shakespeare_char: 4 layers, 4 heads,
128 wide, context 64, batch 12, no dropout, no biases, learned positional embeddings,
pre-LayerNorm blocks, GELU MLP 4x wide, input/output embeddings tied; AdamW (lr 1e-3,
betas 0.9/0.99, weight decay 0.1 on 2-D weights only), gradient clip 1.0, linear warm-up over
100 steps, then cosine decay to 1e-4. Unlike nanoGPT, the cosine is driven by wall time: it
runs from the end of warm-up to the end of --minutes, and training stops there. The clock
starts once the data is loaded and the model built; it counts training steps and the
periodic evaluations, not the final one.

    python bench/char_transformer.py --data corpus.txt --minutes 10 --out /tmp/gpt.json

Data: the whole UTF-8 file is one string (newlines and indentation kept); the vocabulary is
every distinct character of it, sorted. Contiguous split by characters: train the first 90%,
validation the next 5%, test the last 5%. Training batches start at random train offsets.

Losses are mean cross-entropy in nats per character (bits = nats / ln 2) over a WHOLE split,
see evaluate(): every character is scored exactly once, except the split's first, which only
conditions. The periodic evaluations (every --eval-seconds) may use the first --eval-chars
characters of the validation split; the final one uses all of it, then the test split.

Bad input is one line on stderr and exit status 2. Ctrl-C stops at once, writes the JSON with
"stopped": true (the final losses are null if the final evaluation had not ended) and exits 130.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

WARMUP_STEPS = 100
MIN_LR = 1e-4
LN2 = math.log(2)  # nats per bit


class UserError(Exception):
    """Bad input: reported as one line, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, as other bad input
        raise UserError(message)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: causal self-attention, then a GELU MLP 4x wide."""

    def __init__(self, n_embd, n_head, bias):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.attn_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.mlp_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(b, t, c))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class GPT(nn.Module):
    """nanoGPT's model without dropout: returns logits (batch, time, vocab)."""

    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, bias):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList(Block(n_embd, n_head, bias) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as nanoGPT
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if getattr(module, 'bias', None) is not None:
                    nn.init.zeros_(module.bias)
        for name, p in self.named_parameters():  # nanoGPT's scaled init of residual projections
            if name.endswith('proj.weight'):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def configure_optimizer(model, lr, weight_decay, betas):
    """AdamW, weight decay on the 2-D weights (matrices, embeddings) only, as nanoGPT."""
    params = list(model.parameters())  # the tied embedding only once
    groups = [{'params': [p for p in params if p.dim() >= 2], 'weight_decay': weight_decay},
              {'params': [p for p in params if p.dim() < 2], 'weight_decay': 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


def learning_rate(step, warmup_end, elapsed, budget, lr, min_lr=MIN_LR):
    """Linear warm-up over WARMUP_STEPS steps, then cosine to min_lr by wall-time fraction."""
    if step < WARMUP_STEPS:
        return lr * (step + 1) / (WARMUP_STEPS + 1)
    frac = min(max((elapsed - warmup_end) / max(budget - warmup_end, 1e-9), 0.0), 1.0)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * frac)) * (lr - min_lr)


def eval_windows(n, block_size):
    """(start, first scored offset) of each window over a split of n characters.

    A window feeds ids[s:s+T] and predicts ids[s+1:s+T+1]. The first window scores all T
    targets; each next one is T // 2 further on and scores its last T // 2 targets, so every
    character scored after the first window has more than T - T // 2 characters of context
    (33 or more for T = 64). A last window ends exactly at the split's end and scores only what
    is still unscored. Targets are positions 1..n-1: position 0 has no prediction, it is the
    conditioning start.
    """
    if n < block_size + 1:
        raise ValueError('{} characters: shorter than one window ({})'.format(n, block_size + 1))
    windows, covered, stride = [(0, 0)], block_size, block_size // 2
    while covered < n - 1:
        end = min(covered + stride, n - 1)
        start = end - block_size
        windows.append((start, covered - start))
        covered = end
    return windows


@torch.no_grad()
def evaluate(model, ids, block_size, batch):
    """Mean cross-entropy (nats per character) over the split ids, and how many were scored.

    Every position but the first is scored exactly once (see eval_windows): count == len - 1.
    """
    ids = torch.as_tensor(ids, dtype=torch.long)
    windows = eval_windows(len(ids), block_size)
    offsets = torch.arange(block_size)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(windows), batch):
        chunk = windows[i:i + batch]
        starts = torch.tensor([s for s, _ in chunk])
        x = ids[starts[:, None] + offsets]
        y = ids[starts[:, None] + offsets + 1]
        mask = offsets[None, :] >= torch.tensor([o for _, o in chunk])[:, None]
        losses = F.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction='none')
        total += losses[mask.flatten()].double().sum().item()
        count += int(mask.sum())
    model.train(was_training)
    return total / count, count


def load_data(path, block_size):
    """Returns (vocab, train, val, test), the splits as int64 tensors of character ids."""
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except OSError as e:
        raise UserError('cannot read {}: {}'.format(path, e.strerror or e))
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as e:
        raise UserError('{} is not UTF-8 text (byte {} of {})'.format(path, e.start, len(raw)))
    codes = np.frombuffer(text.encode('utf-32-le'), dtype=np.uint32)  # one code point each
    vocab = np.unique(codes)
    ids = torch.from_numpy(np.searchsorted(vocab, codes).astype(np.int64))
    n = len(ids)
    a, b = int(n * 0.90), int(n * 0.95)
    splits = ids[:a], ids[a:b], ids[b:]
    for name, split in zip(('train', 'validation', 'test'), splits):
        if len(split) < block_size + 1:
            raise UserError('{} has {} characters: its {} split ({}) is shorter than one window '
                            'of {} characters'.format(path, n, name, len(split), block_size + 1))
    return [chr(c) for c in vocab], splits[0], splits[1], splits[2]


def parse_args(argv):
    p = ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', required=True, help='UTF-8 text file')
    p.add_argument('--minutes', type=float, default=10.0, help='wall-time budget (default 10)')
    p.add_argument('--threads', type=int, default=2, help='torch.set_num_threads (default 2)')
    p.add_argument('--seed', type=int, default=0, help='torch and numpy seed (default 0)')
    p.add_argument('--eval-seconds', type=float, default=30.0,
                   help='validation every S seconds of wall time (default 30)')
    p.add_argument('--eval-chars', type=int, default=0,
                   help='periodic validation on the first N characters only (default 0: all)')
    p.add_argument('--eval-batch', type=int, default=64, help='windows per evaluation batch')
    p.add_argument('--out', help='write the results to this JSON file')
    for flag, kind, default in [('--n-layer', int, 4), ('--n-head', int, 4), ('--n-embd', int, 128),
                                ('--block-size', int, 64), ('--batch-size', int, 12),
                                ('--lr', float, 1e-3)]:
        p.add_argument(flag, type=kind, default=default, help='default {}'.format(default))
    args = p.parse_args(argv)
    checks = [(min(args.minutes, args.eval_seconds) > 0, '--minutes, --eval-seconds must be > 0'),
              (min(args.threads, args.eval_batch, args.batch_size, args.n_layer, args.n_head) >= 1
               and args.block_size >= 2, 'sizes must be >= 1 (--block-size >= 2)'),
              (args.eval_chars == 0 or args.eval_chars > args.block_size,
               '--eval-chars must be 0 or more than --block-size'),
              (args.n_embd % max(args.n_head, 1) == 0, '--n-embd must be a multiple of --n-head'),
              (not args.out or os.path.isdir(os.path.dirname(os.path.abspath(args.out))),
               'the folder of --out does not exist')]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    return args


def progress(seconds, step, train_losses, val_loss, lr):
    """A progress line; the train loss is the mean over the steps since the last one."""
    train_loss = sum(train_losses) / len(train_losses) if train_losses else float('nan')
    return 't {:.0f}s step {} train loss {:.4f} val {:.4f} nats/char ({:.4f} bits/char) ' \
        'lr {:.2e}'.format(seconds, step, train_loss, val_loss, val_loss / LN2, lr)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    vocab, train, val, test = load_data(args.data, args.block_size)
    T = args.block_size
    model = GPT(len(vocab), T, args.n_layer, args.n_head, args.n_embd, bias=False)
    optimizer = configure_optimizer(model, args.lr, weight_decay=0.1, betas=(0.9, 0.99))
    print('data {}: vocab {}, split {}/{}/{} characters; {} parameters, {} threads'.format(
        args.data, len(vocab), len(train), len(val), len(test),
        sum(p.numel() for p in model.parameters()), args.threads), flush=True)
    result = {'model': 'char-transformer', 'data': args.data, 'vocab_size': len(vocab),
              'settings': dict(vars(args), bias=False, dropout=0.0, tied_embeddings=True,
                               weight_decay=0.1, betas=[0.9, 0.99], grad_clip=1.0,
                               warmup_steps=WARMUP_STEPS, min_lr=MIN_LR),
              'split': [len(train), len(val), len(test)], 'curve': [],
              'final': {'val': None, 'test': None, 'steps': 0, 'seconds': 0.0},
              'threads': args.threads, 'torch': torch.__version__}
    periodic_val = val[:args.eval_chars] if args.eval_chars else val
    budget = args.minutes * 60.0
    step, warmup_end, lr, train_losses = 0, None, args.lr, []
    start = time.perf_counter()
    next_eval = args.eval_seconds
    try:
        while True:
            elapsed = time.perf_counter() - start
            if elapsed >= budget:
                break
            if elapsed >= next_eval:
                loss, _ = evaluate(model, periodic_val, T, args.eval_batch)
                result['curve'].append([round(elapsed, 2), step, loss])
                print(progress(elapsed, step, train_losses, loss, lr), flush=True)
                train_losses = []
                after = time.perf_counter() - start
                next_eval = (math.floor(after / args.eval_seconds) + 1) * args.eval_seconds
                continue  # the evaluation took time: check the budget again
            if step == WARMUP_STEPS:
                warmup_end = elapsed
            lr = learning_rate(step, warmup_end, elapsed, budget, args.lr)
            for group in optimizer.param_groups:
                group['lr'] = lr
            ix = torch.randint(len(train) - T, (args.batch_size,))
            x = torch.stack([train[i:i + T] for i in ix])
            y = torch.stack([train[i + 1:i + T + 1] for i in ix])
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            train_losses.append(loss.item())
            step += 1
        seconds = time.perf_counter() - start
        result['final'].update(steps=step, seconds=round(seconds, 2))
        val_loss, _ = evaluate(model, val, T, args.eval_batch)
        result['curve'].append([round(seconds, 2), step, val_loss])
        result['final']['val'] = val_loss
        print(progress(seconds, step, train_losses, val_loss, lr), flush=True)
        test_loss, _ = evaluate(model, test, T, args.eval_batch)
        result['final']['test'] = test_loss
        print('final: {} steps in {:.1f}s ({:.2f} steps/s), val {:.4f} nats/char ({:.4f} '
              'bits/char), test {:.4f} nats/char ({:.4f} bits/char)'.format(
                  step, seconds, step / seconds, val_loss, val_loss / LN2, test_loss,
                  test_loss / LN2), flush=True)
    except KeyboardInterrupt:
        if not result['final']['steps']:
            result['final'].update(steps=step, seconds=round(time.perf_counter() - start, 2))
        result['stopped'] = True
        print('stopped by Ctrl-C after {} steps'.format(step), file=sys.stderr)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(json.dumps(result, indent=1) + '\n')
        print('wrote {}'.format(args.out), flush=True)
    return 130 if result.get('stopped') else 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except UserError as e:
        print('{}: error: {}'.format(os.path.basename(sys.argv[0]), e), file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # before training started: nothing measured
        print('{}: interrupted'.format(os.path.basename(sys.argv[0])), file=sys.stderr)
        sys.exit(130)
