"""Trained models for use elsewhere: SavedModels with serving signatures, and ONNX.

char_rnn.py --export and mnist_rnn.py --export call export_char_rnn and export_classifier,
passing what only the scripts know: a function that builds the model's inference graph under
the checkpoint's variable names, the checkpoint, the vocabulary. A SavedModel is written to
DIR/<version> (1, 2, ...: the layout TensorFlow Serving watches), whole or not at all, with the
tag 'serve'. Its graph holds everything it needs, the vocabulary and the end marker included,
and no training op; TF 1.15 and TF 2.21 load each other's (docs/export.md).

    char model: generate (prime strings -> texts), score (strings -> nats per character),
                step (one character: ids and states -> logits and states)
    classifier: classify (images -> probabilities, classes)

to_onnx converts a signature with tf2onnx; onnx_generate writes text with the ONNX step.
"""
import os
import shutil
import tempfile

import numpy as np

import utils
from tf1rnn import files, runs
from utils import tf
from tf1rnn.cli import UserError

SERVE = tf.saved_model.tag_constants.SERVING
PREDICT = tf.saved_model.signature_constants.PREDICT_METHOD_NAME


# ---------------------------------------------------------------------------
# Writing: a restored session's graph as DIR/<version>.
# ---------------------------------------------------------------------------

def versions(export_dir):
    """The version numbers (folders named by an integer) in export_dir."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(int(name) for name in os.listdir(export_dir)
                  if name.isdigit() and name.isascii() and
                  os.path.isdir(os.path.join(export_dir, name)))


def save(export_dir, checkpoint, signatures, threads=0):
    """Restores checkpoint into the default graph's variables and writes the graph with its
    signatures (name: (inputs, outputs), dicts of tensors) as export_dir/<version>, one more
    than the highest there (1 at first). Returns that folder."""
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise UserError('--export {}: a file, not a folder'.format(export_dir))
    info = tf.saved_model.utils.build_tensor_info
    signature_defs = {name: tf.saved_model.signature_def_utils.build_signature_def(
        {key: info(t) for key, t in inputs.items()},
        # named after the signature: what `saved_model_cli show` lists says what they are
        {key: info(tf.identity(t, name='{}_{}'.format(name, key))) for key, t in outputs.items()},
        PREDICT) for name, (inputs, outputs) in signatures.items()}
    try:
        files.safe_mkdir(export_dir)
        # Written beside the versions under a name that is no number, which TensorFlow
        # Serving ignores, then renamed: a server never sees half a model.
        staging = tempfile.mkdtemp(prefix='.export-', dir=export_dir)
    except OSError as e:
        raise UserError('--export {}: cannot write there ({})'.format(export_dir, e.strerror or e))
    try:
        written = os.path.join(staging, 'model')
        with tf.Session(config=runs.session_config(threads)) as sess:
            runs.restore(sess, tf.train.Saver(), checkpoint)
            builder = tf.saved_model.builder.SavedModelBuilder(written)
            # Without default-valued attributes and devices: an older TensorFlow reads the
            # graph of a newer one as long as it knows its ops. (So reference variables, TF 1's:
            # TF 2's resource variables carry an attribute, debug_name, that TF 1.15 rejects.)
            builder.add_meta_graph_and_variables(sess, [SERVE], signature_def_map=signature_defs,
                                                 clear_devices=True, strip_default_attrs=True)
            builder.save()
        while True:
            target = os.path.join(export_dir, str(max(versions(export_dir), default=0) + 1))
            try:
                os.rename(written, target)
                return target
            except OSError:
                if not os.path.isdir(target):   # not another export's version: a real error
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------------
# The character model: text in, text out.
# ---------------------------------------------------------------------------

def encode(texts, vocab):
    """Ids [N, width] (1..len(vocab), 0 padding) of the strings texts [N] and their lengths
    [N]: characters outside vocab dropped, as utils.vocab_encode does. The padding column
    past the longest row keeps the width at 1 or more, as the graph needs."""
    points = [ord(ch) for ch in vocab]
    # A repeated character keeps its first id (utils.vocab_encode): its copies match nothing.
    points = [-1 if p in points[:i] else p for i, p in enumerate(points)]
    chars = tf.strings.unicode_decode(texts, 'UTF-8').to_tensor(-1)   # [N, W], -1 past the end
    # One comparison per character and vocabulary entry: a table would need initialising,
    # and cost more than this for short texts and vocabularies of a few hundred characters.
    ids = tf.reduce_sum(tf.cast(tf.equal(chars[:, :, None], points), tf.int32) *
                        tf.range(1, len(points) + 1), 2)
    known = ids > 0
    lengths = tf.reduce_sum(tf.cast(known, tf.int32), 1)
    # Each kept id moves to the column of its rank among its row's. Plain ops, not
    # RaggedTensor's: TF 2 builds those with an op TF 1.15 lacks (DenseBincount).
    where = tf.where(known)
    column = tf.gather_nd(tf.cumsum(tf.cast(known, tf.int32), 1), where) - 1
    packed = tf.scatter_nd(tf.stack([tf.cast(where[:, 0], tf.int32), column], 1),
                           tf.gather_nd(ids, where), tf.shape(ids))
    return tf.pad(packed[:, :tf.reduce_max(lengths)], [[0, 0], [0, 1]]), lengths


def decode(ids, vocab):
    """The strings [N] of ids [N, width]; 0 (padding) decodes to nothing."""
    return tf.strings.reduce_join(tf.gather(tf.constant([''] + list(vocab)), ids), axis=1)


def cut_after(texts, end):
    """Each of texts up to its first `end` included (CharRNN.generate's cut)."""
    if not end:
        return texts
    literal = ''.join('\\x{{{:x}}}'.format(ord(ch)) for ch in end)   # RE2 escapes any character
    return tf.strings.regex_replace(texts, '(?s)^(.*?' + literal + ').*$', r'\1')


def draw(logits, temperature, seed, i, greedy):
    """Ids [N] (1..V) from logits [N, V]: the most likely, or drawn with p proportional to
    exp(logits / temperature) (char_rnn.py's default sampling), stateless: the same seed
    and position i draw the same ids."""
    sampled = lambda: tf.cast(tf.random.stateless_multinomial(
        logits / temperature, 1, tf.stack([seed, tf.cast(i, tf.int64)]))[:, 0], tf.int32)
    return tf.cond(greedy, lambda: tf.argmax(logits, 1, output_type=tf.int32), sampled) + 1


def export_char_rnn(export_dir, checkpoint, vocab, end_marker, build, temperature=0.9,
                    length=200, threads=0):
    """Writes the char model of `checkpoint` as a SavedModel in export_dir/<version>;
    returns that folder.

    build(seq) builds the model (CharRNN's layers, under the checkpoint's names) over ids
    seq [N, T] (0: padding), each row from the zero state, and returns (logits [N, T, V],
    the states after each row's last character (a tuple of [N, units]), step), where
    step(ids [N], states) -> (logits [N, V], states) runs it one character on.

    Signatures:
      generate: prime [N] strings, temperature, length (>= 1), seed (int64), greedy ->
        text [N]: each prime, its characters outside vocab dropped, then `length` characters
        cut after the first end_marker among them, as `char_rnn.py --sample`. A prime left
        empty is primed with vocab[0], which then begins its text (as the script's seeds in
        a vocabulary that has none of them). Draws are stateless: a seed gives one text.
        Scalars left out (TF 1.15, saved_model_cli; TF 2 wants them all) take their defaults:
        temperature and length as given here, seed 0, greedy false.
      score: text [N] -> nats_per_char [N], the mean of -log p(char | the chars before it)
        over each text's characters but the first, each text from the zero state as the
        training loss (characters outside vocab dropped; NaN without two left), and
        predicted_chars [N], how many characters that mean is over.
      step: ids [N] and state_0.. [N, units] -> logits [N, V] and next_state_0..
    """
    with tf.Graph().as_default():
        # generate and score share the text input and the model's pass over it.
        texts = tf.placeholder(tf.string, [None], name='text')
        ids, lengths = encode(texts, vocab)
        # A text with no vocabulary character: vocab[0] (id 1) alone.
        empty = tf.cast(tf.equal(lengths, 0), tf.int32)
        ids += empty[:, None] * tf.one_hot(0, tf.shape(ids)[1], dtype=tf.int32)
        lengths += empty
        logits, states, step = build(ids)

        targets = ids[:, 1:]
        mask = tf.cast(targets > 0, tf.float32)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.maximum(targets - 1, 0), logits=logits[:, :-1])
        predicted = tf.reduce_sum(mask, 1)
        nats = tf.reduce_sum(losses * mask, 1) / predicted   # 0 / 0: NaN, no character predicted

        temp = tf.placeholder_with_default(float(temperature), [], name='temperature')
        count = tf.placeholder_with_default(int(length), [], name='length')
        seed = tf.placeholder_with_default(tf.constant(0, tf.int64), [], name='seed')
        greedy = tf.placeholder_with_default(False, [], name='greedy')
        checks = [tf.Assert(count > 0, ['length must be 1 or more, not', count]),
                  tf.Assert(greedy | (temp > 0), ['temperature must be positive, not', temp])]
        batch = tf.shape(ids)[0]
        last = tf.gather_nd(logits, tf.stack([tf.range(batch), lengths - 1], 1))

        def body(i, logits, states, drawn):
            new = draw(logits, temp, seed, i, greedy)
            logits, states = step(new, states)
            return i + 1, logits, states, drawn.write(i, new)

        with tf.control_dependencies(checks):
            drawn = tf.TensorArray(tf.int32, size=count)
        # The step after the last draw is computed and not used: the loop stays one body.
        _, _, _, drawn = tf.while_loop(lambda i, *_: i < count, body, [0, last, states, drawn],
                                       name='generate')
        primes = decode(ids, vocab)
        generated = primes + cut_after(decode(tf.transpose(drawn.stack()), vocab), end_marker)

        step_ids = tf.placeholder(tf.int32, [None], name='step_ids')
        # Each state part a tensor of its own (an LSTM layer's c and h: two), in nest order.
        flat = tf.nest.flatten(states)
        names = ['state_{}'.format(i) for i in range(len(flat))]
        step_states = [tf.placeholder(tf.float32, [None, s.shape[1]], name=name)
                       for name, s in zip(names, flat)]
        step_logits, next_states = step(step_ids, tf.nest.pack_sequence_as(states, step_states))
        next_states = tf.nest.flatten(next_states)
        return save(export_dir, checkpoint, {
            'generate': ({'prime': texts, 'temperature': temp, 'length': count, 'seed': seed,
                          'greedy': greedy}, {'text': generated}),
            'score': ({'text': texts}, {'nats_per_char': nats,
                                        'predicted_chars': tf.cast(predicted, tf.int32)}),
            'step': (dict(zip(names, step_states), ids=step_ids),
                     dict(zip(['next_' + n for n in names], next_states), logits=step_logits)),
        }, threads)


# ---------------------------------------------------------------------------
# The MNIST classifier.
# ---------------------------------------------------------------------------

def export_classifier(export_dir, checkpoint, build, image_shape, threads=0):
    """Writes the classifier of `checkpoint` as a SavedModel in export_dir/<version>; returns
    that folder. build(images [N, *image_shape]) builds the model under the checkpoint's
    names and returns its logits [N, classes].

    Signature classify: images float32 [N, *image_shape] (pixels in [0, 1]) ->
    probabilities [N, classes], classes int64 [N] (the most likely).
    """
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [None] + list(image_shape), name='images')
        logits = build(images)
        outputs = {'probabilities': tf.nn.softmax(logits, name='probabilities'),
                   'classes': tf.argmax(logits, 1, name='classes')}
        return save(export_dir, checkpoint, {'classify': ({'images': images}, outputs)}, threads)


# ---------------------------------------------------------------------------
# ONNX (tf2onnx, onnxruntime: requirements*.txt).
# ---------------------------------------------------------------------------

def to_onnx(saved_model, signature, opset=13):
    """The signature of a SavedModel folder as an onnx.ModelProto, converted by tf2onnx from
    its graph with the variables frozen to constants; inputs and outputs are named by the
    signature's keys. The char model's step and the classifier convert; generate and score
    do not (their string ops have no ONNX counterpart)."""
    import tf2onnx
    with tf.Graph().as_default() as graph, tf.Session() as sess:
        meta = tf.saved_model.loader.load(sess, [SERVE], saved_model)
        if signature not in meta.signature_def:
            raise UserError('{} has no signature {!r} (it has {})'.format(
                saved_model, signature, ', '.join(sorted(meta.signature_def))))
        inputs = {key: t.name for key, t in meta.signature_def[signature].inputs.items()}
        outputs = {key: t.name for key, t in meta.signature_def[signature].outputs.items()}
        frozen = tf.graph_util.convert_variables_to_constants(
            sess, graph.as_graph_def(), [name.split(':')[0] for name in outputs.values()])
    rename = {name: key for key, name in list(inputs.items()) + list(outputs.items())}
    model, _ = tf2onnx.convert.from_graph_def(
        frozen, input_names=sorted(inputs.values()), output_names=sorted(outputs.values()),
        opset=opset, tensors_to_rename=rename)
    return model


def onnx_generate(session, vocab, primes, length, temperature=1.0, seed=0, greedy=False,
                  end=''):
    """Texts from the char model's step in onnxruntime (session: an InferenceSession of
    to_onnx(..., 'step')), one character per call: each prime (characters outside vocab
    dropped; empty: vocab[0]) from the zero state, then `length` characters, the most likely
    or drawn from softmax(logits / temperature) by numpy (RandomState(seed)), cut after the
    first `end`."""
    rng = np.random.RandomState(seed)
    zero = {i.name: np.zeros([1, i.shape[1]], np.float32) for i in session.get_inputs()
            if i.name != 'ids'}
    texts = []
    for prime in primes:
        ids, states, drawn = utils.vocab_encode(prime, vocab) or [1], zero, []
        for i in range(len(ids) + length - 1):
            current = ids[i] if i < len(ids) else drawn[-1]
            logits, states = _onnx_step(session, current, states)
            if i >= len(ids) - 1:
                if greedy:
                    drawn.append(int(np.argmax(logits)) + 1)
                else:
                    p = np.exp((logits - logits.max()) / temperature)
                    drawn.append(int(rng.choice(len(p), p=p / p.sum())) + 1)
        text = utils.vocab_decode(drawn, vocab)
        if end and end in text:
            text = text[:text.index(end) + len(end)]
        texts.append(utils.vocab_decode(ids, vocab) + text)
    return texts


def _onnx_step(session, current, states):
    """One step of the ONNX step model: (logits [V] as float64, the next states)."""
    results = session.run(None, dict(states, ids=np.array([current], np.int32)))
    named = dict(zip([o.name for o in session.get_outputs()], results))
    return (named['logits'][0].astype(np.float64),
            {name: named['next_' + name] for name in states})
