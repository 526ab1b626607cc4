"""The plumbing of char_rnn.py and mnist_rnn.py, a module per role: read the scripts first.

The scripts hold the seeds' science (configs, model, training loop, sampling); utils.py
holds what they share (the stack shim, vocabulary, batching, the gradient step). Here,
each module imports only those below it:

    cli          one error line instead of a traceback; argparse types with ranges
    decoding     temperature (the lecture's formula and the one it meant), top-k, greedy;
                 the characters after each seed drawn in the graph
    files        sha256, atomic and checked downloads
    layer_norm   the notebook's layer-norm LSTM cell, ported
    stacked      cell_stack: stacked GRU, LSTM or RNN layers in one loop, gradient written out
    kernels      the fast graphs: fast_stack per cell kind, gru_stack, the fused LSTM
    corpus       a text file as vocabulary ids, in bounded memory, and its cache
    windows      char_rnn.py's windows, split and batched in a resumable order
    streams      char_rnn.py's stream mode: contiguous splits, streams carrying the state
    mnist_data   MNIST's IDX files, split as TF1's read_data_sets
    runs         signals, sessions, checkpoints, folder locks, JSON and event files
    stats        comparisons over seeds: intervals, verdicts, tables, plots
    model_dir    char_rnn.py's model folder: config.json, data.encoded, checkpoints, resume
                 refusals, what --evaluate scores; the flags of a model's kind and shape
    training     char_rnn.py's run around its loop: batches, settings, session and signals,
                 event files, values kept with checkpoints, a wall-time budget, validation
    cell_runs    mnist_rnn.py's run per cell in its folder (lock, history.json, restore, events,
                 saves), the runs over seeds, results
    export       SavedModels with serving signatures, and the models in ONNX Runtime
    distributed  TensorFlow's distributed runtime: parameter servers and workers; a training
                 loop's counts on them
"""
