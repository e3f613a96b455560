"""The songs: a click, kick, bass and chords on the beat grid of a sequence's plan, as PCM samples."""

from __future__ import annotations

import numpy as np

from melodance.data.synth.plan import HARMONIC_MINOR, MAJOR, SequencePlan, plan_rng
from melodance.data.synth.pmath import LN2, pexp, psin


def _midi_hz(note: float) -> float:
    return 440.0 * float(pexp(LN2 * (note - 69.0) / 12.0))


def _triad(plan: SequencePlan, degree: int) -> tuple[int, int, int]:
    """MIDI notes of the triad on a scale degree, in the octave of the key."""
    scale = HARMONIC_MINOR if plan.minor else MAJOR
    notes = []
    for k in (degree, degree + 2, degree + 4):
        notes.append(plan.key + scale[k % 7] + 12 * (k // 7))
    return tuple(notes)


def tone(freq: float, n: int, sr: int, decay_s: float, attack_s: float = 0.004,
         harmonics: tuple[float, ...] = (1.0, 0.4, 0.2)) -> np.ndarray:
    """A plucked or struck note: harmonic partials under an attack-decay envelope.

    freq: Hz; n: samples; decay_s: time constant of the exponential decay, s.
    Returns ``[n]`` float64, peak about ``sum(harmonics)``.
    """
    t = np.arange(n) / sr
    env = (1.0 - pexp(-t / attack_s)) * pexp(-t / decay_s)
    # fade the last 10 ms out so a cut note does not click
    fade = min(n, int(0.01 * sr))
    if fade:
        env[n - fade:] *= np.linspace(1.0, 0.0, fade)
    phase = 2.0 * np.pi * freq * t
    out = np.zeros(n)
    for k, a in enumerate(harmonics, start=1):
        if a and k * freq < 0.45 * sr:
            out += a * psin(k * phase)
    return out * env


def kick(n: int, sr: int) -> np.ndarray:
    """Bass drum: a sine gliding from 120 Hz to 45 Hz, fast decay. ``[n]``."""
    t = np.arange(n) / sr
    freq = 45.0 + 75.0 * pexp(-t / 0.03)
    phase = 2.0 * np.pi * np.cumsum(freq) / sr
    return psin(phase) * pexp(-t / 0.12)


def click(n: int, sr: int, rng: np.random.Generator, decay_s: float = 0.015) -> np.ndarray:
    """Hi-hat like click (or, with a longer decay, a cymbal): differentiated
    white noise under an exponential decay. ``[n]``."""
    noise = rng.standard_normal(n + 1)
    t = np.arange(n) / sr
    return 0.5 * np.diff(noise) * pexp(-t / decay_s)


class _Mix:
    """A mono buffer of ``n_total`` samples at ``sr`` Hz that notes and drums are added into."""

    def __init__(self, n_total: int, sr: int):
        self.sr, self.n_total = sr, n_total
        self.buf = np.zeros(n_total)
        self._notes: dict[tuple, np.ndarray] = {}  # chords repeat: synthesise each note once

    def add(self, t: float, sig: np.ndarray, gain: float) -> None:
        i = int(round(t * self.sr))
        if i >= self.n_total:
            return
        m = min(len(sig), self.n_total - i)
        self.buf[i:i + m] += gain * sig[:m]

    def note(self, midi: int, n: int, decay: float, harmonics=(1.0, 0.4, 0.2)) -> np.ndarray:
        key = (midi, n, decay, harmonics)
        if key not in self._notes:
            self._notes[key] = tone(_midi_hz(midi), n, self.sr, decay, harmonics=harmonics)
        return self._notes[key]


def _drums(mix: _Mix, style: str, pos: int, t: float, beat: float, rng: np.random.Generator,
           kick_sig: np.ndarray) -> None:
    """A kick with an accented downbeat, a click on every beat, a cymbal on the bar."""
    sr, downbeat = mix.sr, pos == 0
    if style == "W":
        if downbeat:
            mix.add(t, kick_sig, 0.9)
    elif style == "T":
        mix.add(t, kick_sig, 0.9 if downbeat else 0.45)
    elif pos in (0, 2):
        mix.add(t, kick_sig, 0.9 if downbeat else 0.5)
    mix.add(t, click(int(0.06 * sr), sr, rng), 0.35 if downbeat else 0.25)
    if downbeat:  # a cymbal marks the bar
        mix.add(t, click(int(0.4 * sr), sr, rng, decay_s=0.1), 0.3)
    if style == "C" and pos == 3:  # the "and" of 4: cha-cha-cha
        mix.add(t + beat / 2, click(int(0.06 * sr), sr, rng), 0.15)


def _bass(mix: _Mix, style: str, pos: int, t: float, beat: float, root: int) -> None:
    """The root on the downbeat, the fifth mid-bar (not in a waltz)."""
    dec = 0.12 if style == "T" else 0.5
    if pos == 0:
        n = int(beat * (1.5 if style == "W" else 1.0) * mix.sr)
        mix.add(t, mix.note(root - 24, n, dec, (1.0, 0.5, 0.3)), 0.5)
    elif style != "W" and pos == 2:
        mix.add(t, mix.note(root - 17, int(beat * mix.sr), dec, (1.0, 0.5, 0.3)), 0.4)


def _chords(mix: _Mix, style: str, pos: int, t: float, beat: float, bpb: int, triad) -> None:
    """Oom-pah-pah (waltz), stabs (tango, cha-cha), a pad (rumba)."""
    chord_on = {"W": pos != 0, "T": True, "C": pos != 0, "R": pos == 0}[style]
    if chord_on:
        length = {"W": 1.0, "T": 0.35, "C": 0.6, "R": float(bpb)}[style]
        dec = {"W": 0.3, "T": 0.08, "C": 0.15, "R": 1.2}[style]
        n = int(length * beat * mix.sr)
        gain = 0.16 if (style == "T" and pos not in (0, 3)) else 0.22
        for note in triad:
            mix.add(t, mix.note(note, n, dec), gain)


def render_song(plan: SequencePlan, sr: int, noise: float = 0.005) -> np.ndarray:
    """The song of a sequence: drums on every beat, bass, chords per bar, a melody.

    Returns ``[samples]`` float64 in [-1, 1], mono at ``sr`` Hz.
    """
    rng = plan_rng(plan.seed, 1)
    n_total = int(round(plan.song_s * sr))
    mix = _Mix(n_total, sr)
    beat = plan.beat_s
    bpb = plan.beats_per_bar
    style = plan.style
    kick_sig = kick(int(0.35 * sr), sr)
    for b, t in enumerate(plan.beat_times()):
        pos = b % bpb
        bar = b // bpb
        triad = _triad(plan, plan.chords[min(bar, len(plan.chords) - 1)])
        _drums(mix, style, pos, t, beat, rng, kick_sig)
        _bass(mix, style, pos, t, beat, triad[0])
        _chords(mix, style, pos, t, beat, bpb, triad)
        # melody: a chord tone an octave up, once per beat (waltz: per bar)
        if style != "W" or pos == 0:
            note = triad[int(rng.integers(0, 3))] + 12
            length = float(bpb) if style == "W" else 1.0
            n = int(length * beat * sr)
            mix.add(t, mix.note(note, n, 0.25 * length * beat + 0.05, (1.0, 0.2)), 0.25)
    buf = mix.buf
    buf /= max(np.max(np.abs(buf)), 1e-9)
    buf = 0.85 * buf + noise * rng.standard_normal(n_total)
    return np.clip(buf, -1.0, 1.0)
