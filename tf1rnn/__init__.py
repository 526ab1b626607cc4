"""Modules of tf1-rnn that the scripts (char_rnn.py, mnist_rnn.py) import."""
