"""The original CLEO names, kept for code written against them: ``helpers`` and ``definitions``.

Nothing inside muses imports this package; the code lives in :mod:`muses.model` and
:mod:`muses.labeling`.
"""
