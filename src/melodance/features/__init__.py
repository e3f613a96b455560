"""Features: music (16-dim seed set or 80-band log-mel), temporal indexes and
motion, aligned frame by frame at 25 fps, normalised, windowed and split.

Submodules import heavy libraries themselves; importing this package is cheap.
"""
