"""Naive labels from catalog text: keyword definitions, text normalisation, matching, the labeling report.

Pure text: nothing here imports torch or the store.
"""
