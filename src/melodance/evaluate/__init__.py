"""Evaluation: the seed's metric loss and the field's dance metrics.

- :mod:`melodance.evaluate.metrics`: metric loss, kinetic and geometric
  features, FID, diversity, foot skating, physical foot contact, jitter;
- :mod:`melodance.evaluate.beats`: music and kinematic beats, beat alignment
  (``bas_music``, ``bas_motion``).

Nothing is imported here so that ``melodance.evaluate.commands`` (and with it
``melodance --help``) stays free of numpy/scipy imports.
"""
