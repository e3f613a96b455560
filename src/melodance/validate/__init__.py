"""Data validation: measure every sequence, check the facts with Great Expectations.

- :mod:`.config`: the ``validate`` section of ``params.yaml`` (bounds and why);
- :mod:`.facts`: per-sequence measurements, never raising on broken files;
- :mod:`.suite`: the Great Expectations suite over the facts table, Data Docs;
- :mod:`.stage`: :func:`~.stage.run_validation`, the gate in front of training;
- :mod:`.commands`: ``melodance validate``.
"""
