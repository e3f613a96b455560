"""The metric-validity tool: does a music-conditioned metric carry information on this data?

Its own wing beside the evaluate stage (docs/metrics-validity.md), layered
bottom-up, each module importing only those below it (the import-linter
contract in pyproject.toml checks it):

- ``music``: :class:`~melodance.evaluate.validity.music.MusicInfo`, the score-function type;
- ``alignment`` (analytic metrics) and ``matching`` (the learned matching model);
- ``core``: the permutation test itself (score tables, p-values, verdicts);
- ``report``: the ``melodance validity`` report; ``commands``: its command line.

The evaluate stage uses ``core`` and ``music`` for its ``music_validity`` block.
"""
