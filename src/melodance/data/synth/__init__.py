"""The embedded synthetic corpus: songs and dances that belong together.

``write_corpus`` writes ``DANCE_<style>_<n>/`` folders in the exact layout of
the real Music-to-Dance dataset (``audio.wav``, ``config.json``,
``skeletons.json``), so everything downstream runs on it unchanged. The corpus
is small but learnable:

- every song has a steady tempo and metre of its style (cha-cha, rumba and
  tango in 4/4, waltz in 3/4), percussive onsets on every beat with accented
  downbeats, a bass line and chords that change every bar;
- every dance is driven by the beat and bar phase of its own song: feet lift
  and land on the style's step beats, the hips sway onto the standing foot,
  the body rises and falls with the bar, the arms swing or hold, and the
  dancer travels around the floor with small noise on top.

Output is byte-identical on every run and machine: a seeded numpy
``Generator`` per sequence (independent of how many other sequences there
are), PCM16 WAV through the stdlib ``wave`` module (no timestamps or PEAK
chunks), JSON with coordinates rounded to 1e-4 cm like the real files. The
only platform dependence left is the last bit of ``sin``/``exp``, which would
have to land exactly on a rounding boundary of the 1e-4 cm or PCM16 grid to
change a byte.

Modules, by what they make: ``config`` (the params section), ``plan`` (styles and
the random draws of a sequence), ``pmath`` (portable math), ``music`` (the songs),
``dance`` (the dances), ``files`` (the dataset layout on disk).
"""

from melodance.data.synth.config import SequenceCounts, SynthConfig
from melodance.data.synth.dance import render_dance
from melodance.data.synth.files import tree_digest, write_corpus, write_sequence
from melodance.data.synth.music import render_song
from melodance.data.synth.plan import STYLES, SequencePlan, Style, corpus_plan
from melodance.data.synth.pmath import pcos, pexp, psin

__all__ = [
    "STYLES",
    "SequenceCounts",
    "SequencePlan",
    "Style",
    "SynthConfig",
    "corpus_plan",
    "pcos",
    "pexp",
    "psin",
    "render_dance",
    "render_song",
    "tree_digest",
    "write_corpus",
    "write_sequence",
]
