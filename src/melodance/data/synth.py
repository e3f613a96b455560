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
"""

from __future__ import annotations

import io
import json
import math
import os
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import Field, model_validator

from melodance import FPS
from melodance.data.skeleton import N_JOINTS
from melodance.errors import InputError, OutputExists
from melodance.params import Section

# ----------------------------------------------------------------------------
# config


class SequenceCounts(Section):
    """How many sequences of each style the corpus holds."""

    cha_cha: int = Field(3, ge=0, le=99)
    rumba: int = Field(3, ge=0, le=99)
    tango: int = Field(2, ge=0, le=99)
    waltz: int = Field(4, ge=0, le=99)


class SynthConfig(Section):
    """``data.synth`` in ``params.yaml``: the embedded synthetic corpus."""

    seed: int = Field(2018, ge=0)
    sequences: SequenceCounts = SequenceCounts()
    min_dance_s: float = Field(20.0, gt=2.0, description="shortest dance, seconds")
    max_dance_s: float = Field(32.0, le=600.0, description="longest dance, seconds")
    sample_rate: int = Field(22050, ge=8000, le=48000, description="audio rate, Hz (mono)")
    lead_in_s: float = Field(2.0, ge=0.0, le=30.0, description="music before the dance, s")
    lead_out_s: float = Field(1.0, ge=0.0, le=30.0, description="music after the dance, s")
    motion_noise_cm: float = Field(0.3, ge=0.0, le=5.0, description="joint jitter, cm")
    audio_noise: float = Field(0.005, ge=0.0, le=0.2, description="white noise, of full scale")

    @model_validator(mode="after")
    def _check(self) -> SynthConfig:
        if self.min_dance_s > self.max_dance_s:
            raise InputError(f"min_dance_s {self.min_dance_s} > max_dance_s {self.max_dance_s}")
        if sum(self.sequences.model_dump().values()) == 0:
            raise InputError("sequences: at least one sequence is needed")
        return self


# ----------------------------------------------------------------------------
# styles


@dataclass(frozen=True)
class Style:
    """What makes a style: music (tempo, metre, harmony) and its dance."""

    letter: str
    name: str
    bpm: tuple[float, float]
    beats_per_bar: int
    minor_p: float  # chance that a song is in a minor key
    # Steps: (landing beat within a cycle of `cycle_beats`, forward offset cm
    # of the landing foot in the body frame). Feet alternate; an odd number of
    # steps per cycle starts the next cycle on the other foot, as in the dance.
    steps: tuple[tuple[float, float], ...]
    cycle_beats: int
    rock_flips: bool  # forward offsets flip sign every cycle (forward / back basic)
    swing_beats: float  # longest swing of a foot; short = staccato (wait, then snap)
    lift_cm: float
    speed_cm_s: float  # travel along the line of dance
    sway_cm: float  # hips shift over the standing foot
    sway_beats: float  # duration of that weight transfer
    roll_deg: float  # pelvis roll with the weight transfer
    bob_cm: tuple[float, ...]  # root height offset at each beat of the bar
    twist_deg: float  # torso twist, once per bar
    turn_deg: float  # body facing swings around the travel direction
    hold: bool  # closed hold (arms up, still) or free arms (swing and raise)
    arm_swing_deg: float  # arm swing on the beat (free arms) or with the bar (hold)
    arm_raise_deg: float  # free arm opening out and up over the bar


STYLES: dict[str, Style] = {
    "C": Style(
        "C", "cha-cha", bpm=(112.0, 128.0), beats_per_bar=4, minor_p=0.3,
        # 2 (rock), 3 (replace), 4 & 1 (cha-cha-cha)
        steps=((1.0, 14.0), (2.0, 0.0), (3.0, 0.0), (3.5, 0.0), (4.0, 0.0)),
        cycle_beats=4, rock_flips=True, swing_beats=0.5, lift_cm=6.0, speed_cm_s=50.0,
        sway_cm=4.0, sway_beats=0.4, roll_deg=6.0, bob_cm=(-1.0, 0.5, -0.5, 0.5),
        twist_deg=30.0, turn_deg=8.0, hold=False, arm_swing_deg=40.0, arm_raise_deg=70.0,
    ),
    "R": Style(
        "R", "rumba", bpm=(96.0, 108.0), beats_per_bar=4, minor_p=0.6,
        # 2, 3, 4-1 (quick, quick, slow)
        steps=((1.0, 12.0), (2.0, 0.0), (3.0, 0.0)),
        cycle_beats=4, rock_flips=True, swing_beats=1.0, lift_cm=4.0, speed_cm_s=38.0,
        sway_cm=6.0, sway_beats=1.0, roll_deg=9.0, bob_cm=(-1.0, 0.0, 0.5, 0.0),
        twist_deg=30.0, turn_deg=10.0, hold=False, arm_swing_deg=40.0, arm_raise_deg=80.0,
    ),
    "T": Style(
        "T", "tango", bpm=(120.0, 132.0), beats_per_bar=4, minor_p=1.0,
        # slow, slow, quick, quick, slow over two bars
        steps=((0.0, 0.0), (2.0, 0.0), (4.0, 0.0), (5.0, 0.0), (6.0, 0.0)),
        cycle_beats=8, rock_flips=False, swing_beats=1.0, lift_cm=6.0, speed_cm_s=50.0,
        sway_cm=1.5, sway_beats=0.25, roll_deg=2.0, bob_cm=(0.0, 0.0, 0.0, 0.0),
        twist_deg=25.0, turn_deg=12.0, hold=True, arm_swing_deg=10.0, arm_raise_deg=0.0,
    ),
    "W": Style(
        "W", "waltz", bpm=(84.0, 96.0), beats_per_bar=3, minor_p=0.2,
        # 1, 2, 3: forward, side, close
        steps=((0.0, 0.0), (1.0, 0.0), (2.0, 0.0)),
        cycle_beats=3, rock_flips=False, swing_beats=1.0, lift_cm=5.0, speed_cm_s=50.0,
        sway_cm=2.0, sway_beats=0.5, roll_deg=3.0, bob_cm=(-4.0, 0.0, 1.5),
        twist_deg=15.0, turn_deg=15.0, hold=True, arm_swing_deg=8.0, arm_raise_deg=0.0,
    ),
}
STYLE_ORDER = ("C", "R", "T", "W")
_COUNT_FIELD = {"C": "cha_cha", "R": "rumba", "T": "tango", "W": "waltz"}

# Scale steps and chord progressions (scale degrees, 0-based), one per bar.
MAJOR = (0, 2, 4, 5, 7, 9, 11)
HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (0, 3, 4, 0), (0, 5, 1, 4), (0, 3, 0, 4)),
    "minor": ((0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 5, 4), (0, 6, 5, 4)),
}

# ----------------------------------------------------------------------------
# the dancer

# Rest pose, root-relative cm, body frame: y up, +z forward (the toes), side a
# (joints 3-11, 22) at -x. Measured on the 43 real sequences of
# shared/data/music-to-dance: every frame rotated about y so that the hip
# vector 7->16 points along +x, per-joint median over all frames, then each
# bone rescaled (from the root outwards, keeping the median direction) to the
# median bone length over all frames (the neck offset is scaled so that the
# bone from mid head-neck to mid shoulders gets its median length too). It is
# a typical ballroom pose (arms in hold); the generator never needs the real data.
TEMPLATE = np.array([
    (-9.9, 57.6, -9.6),  # 0 head
    (0.5, 60.7, -8.0),  # 1 neck
    (-0.1, 13.0, 4.0),  # 2 pelvis
    (-15.2, 42.2, -2.2),  # 3 shoulder a
    (-42.9, 35.4, 1.6),  # 4 elbow a
    (-45.3, 36.5, 12.5),  # 5 wrist a
    (-40.9, 40.2, 26.9),  # 6 hand a
    (-10.4, -3.3, 0.1),  # 7 hip a
    (-13.6, -47.7, 5.7),  # 8 knee a
    (-12.1, -78.9, -4.6),  # 9 ankle a
    (-6.3, -87.6, -13.1),  # 10 foot a1
    (-10.7, -91.0, 7.4),  # 11 foot a2
    (11.6, 44.0, -5.1),  # 12 shoulder b
    (37.9, 36.1, -3.0),  # 13 elbow b
    (45.2, 52.3, 0.4),  # 14 wrist b
    (56.8, 48.8, 4.1),  # 15 hand b
    (11.4, -3.0, 0.0),  # 16 hip b
    (14.4, -49.7, 4.5),  # 17 knee b
    (10.7, -80.4, -6.6),  # 18 ankle b
    (2.9, -87.1, -15.3),  # 19 foot b1
    (12.4, -91.4, 4.9),  # 20 foot b2
    (42.1, 47.1, -1.8),  # 21 hand direction b
    (-39.5, 39.3, 31.4),  # 22 hand direction a
])
CHEST = np.array((-1.8, 43.1, -3.7))  # top of the spine, mid-shoulders, same fit
THIGH = {"a": 44.86, "b": 47.01}  # median bone lengths (7,8), (16,17), cm
SHIN = {"a": 32.86, "b": 32.90}  # (8,9), (17,18)
ROOT_HEIGHT_CM = 88.0  # median root height above the lowest foot point, real data
FLOOR_Y_CM = 15.0  # world height of the floor (the real capture's floor is near 17)
# Per side: hip, knee, ankle, foot points, shoulder, elbow, wrist, hand, hand direction.
LEG = {"a": (7, 8, 9, 10, 11), "b": (16, 17, 18, 19, 20)}
ARM = {"a": (3, 4, 5, 6, 22), "b": (12, 13, 14, 15, 21)}
SIDE_SIGN = {"a": -1.0, "b": 1.0}


# ----------------------------------------------------------------------------
# the plan: everything about one sequence that is drawn at random


@dataclass(frozen=True)
class SequencePlan:
    """One sequence of the corpus, drawn from the seed.

    Times are in seconds of the song; frames at 25 fps.
    """

    name: str
    style: str
    seed: tuple[int, ...]
    bpm: float
    beats_per_bar: int
    first_beat_s: float  # the first downbeat of the song
    key: int  # tonic as a MIDI note number (57 = A3)
    minor: bool
    chords: tuple[int, ...]  # scale degree of the chord of each bar
    start_frame: int
    n_frames: int
    song_s: float

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.n_frames

    @property
    def beat_s(self) -> float:
        return 60.0 / self.bpm

    def beat_times(self) -> np.ndarray:
        """Song times of every beat, seconds: ``[n_beats]``."""
        n = int(math.floor((self.song_s - self.first_beat_s) / self.beat_s)) + 1
        return self.first_beat_s + self.beat_s * np.arange(n)

    def downbeat_times(self) -> np.ndarray:
        return self.beat_times()[:: self.beats_per_bar]


def _rng(plan_seed: tuple[int, ...], stream: int) -> np.random.Generator:
    # One stream per purpose, so that e.g. changing the audio does not change the dance.
    return np.random.default_rng([*plan_seed, stream])


def corpus_plan(cfg: SynthConfig) -> list[SequencePlan]:
    """Every sequence of the corpus, in folder-name order of creation."""
    plans = []
    counts = cfg.sequences.model_dump()
    for si, letter in enumerate(STYLE_ORDER):
        style = STYLES[letter]
        for n in range(1, counts[_COUNT_FIELD[letter]] + 1):
            seed = (cfg.seed, si, n)
            rng = _rng(seed, 0)
            bpm = round(float(rng.uniform(*style.bpm)), 2)
            beat = 60.0 / bpm
            dance_s = float(rng.uniform(cfg.min_dance_s, cfg.max_dance_s))
            n_frames = int(round(dance_s * FPS))
            start = int(round(cfg.lead_in_s * FPS))
            song_s = (start + n_frames) / FPS + cfg.lead_out_s
            first = round(float(rng.uniform(0.05, 0.05 + beat)), 4)
            minor = bool(rng.random() < style.minor_p)
            key = 52 + int(rng.integers(0, 12))  # E3 .. D#4
            n_bars = int(math.ceil(song_s / (beat * style.beats_per_bar))) + 1
            progs = PROGRESSIONS["minor" if minor else "major"]
            chords: list[int] = []
            while len(chords) < n_bars:
                chords.extend(progs[int(rng.integers(0, len(progs)))])
            plans.append(SequencePlan(
                name=f"DANCE_{letter}_{n}", style=letter, seed=seed, bpm=bpm,
                beats_per_bar=style.beats_per_bar, first_beat_s=first, key=key, minor=minor,
                chords=tuple(chords[:n_bars]), start_frame=start, n_frames=n_frames,
                song_s=song_s,
            ))
    return plans


# ----------------------------------------------------------------------------
# portable math
#
# numpy's sin, cos and exp (and BLAS-backed matmul, einsum, norm) pick SIMD
# kernels by CPU, so their last bits can differ between machines, and a last
# bit can flip a rounded output byte. The generator therefore uses only
# + - * / sqrt rint floor ldexp, which IEEE 754 defines exactly, each in its
# own ufunc call (numpy never fuses them into FMAs). Accuracy ~1e-15.

_HALF_PI = np.pi / 2.0
_LN2 = 0.6931471805599453  # ln 2, a literal rather than a libm call
_DEG = np.pi / 180.0


def _sin_cos_reduced(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Taylor series (Horner form) of sin and cos for |r| <= pi/4, error < 1e-16."""
    r2 = r * r
    s = np.ones_like(r)
    for d in (210.0, 156.0, 110.0, 72.0, 42.0, 20.0, 6.0):  # (2k)(2k+1)
        s = 1.0 - (r2 / d) * s
    c = np.ones_like(r)
    for d in (240.0, 182.0, 132.0, 90.0, 56.0, 30.0, 12.0, 2.0):  # (2k-1)(2k)
        c = 1.0 - (r2 / d) * c
    return r * s, c


def psin(x) -> np.ndarray:
    """Portable sin of ``x`` (rad), bit-identical on every IEEE 754 machine."""
    x = np.asarray(x, dtype=np.float64)
    k = np.rint(x / _HALF_PI)
    s, c = _sin_cos_reduced(x - k * _HALF_PI)
    q = np.mod(k, 4.0)
    return np.where(q == 0, s, np.where(q == 1, c, np.where(q == 2, -s, -c)))


def pcos(x) -> np.ndarray:
    """Portable cos of ``x`` (rad)."""
    x = np.asarray(x, dtype=np.float64)
    k = np.rint(x / _HALF_PI)
    s, c = _sin_cos_reduced(x - k * _HALF_PI)
    q = np.mod(k, 4.0)
    return np.where(q == 0, c, np.where(q == 1, -s, np.where(q == 2, -c, s)))


def pexp(x) -> np.ndarray:
    """Portable exp of ``x`` (clipped to [-700, 700])."""
    x = np.clip(np.asarray(x, dtype=np.float64), -700.0, 700.0)
    k = np.rint(x / _LN2)
    r = x - k * _LN2
    p = np.ones_like(r)
    for d in range(13, 0, -1):  # Taylor to degree 13, |r| <= ln2/2: error < 1e-16
        p = 1.0 + (r / d) * p
    return np.ldexp(p, k.astype(np.int64))


def _norm(v: np.ndarray) -> np.ndarray:
    """Length of vectors ``[..., 3]`` -> ``[...]``."""
    return np.sqrt(v[..., 0] * v[..., 0] + v[..., 1] * v[..., 1] + v[..., 2] * v[..., 2])


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[..., 3, 3] @ [..., 3, 3]`` with a fixed order of operations."""
    return (a[..., :, 0:1] * b[..., 0:1, :] + a[..., :, 1:2] * b[..., 1:2, :]) \
        + a[..., :, 2:3] * b[..., 2:3, :]


def _apply(r: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors: ``r`` [..., 3, 3] applied to ``v`` [..., 3] (broadcast) -> [..., 3]."""
    v = np.asarray(v)
    return (r[..., 0] * v[..., 0:1] + r[..., 1] * v[..., 1:2]) + r[..., 2] * v[..., 2:3]


# ----------------------------------------------------------------------------
# music


def _midi_hz(note: float) -> float:
    return 440.0 * float(pexp(_LN2 * (note - 69.0) / 12.0))


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


def render_song(plan: SequencePlan, sr: int, noise: float = 0.005) -> np.ndarray:
    """The song of a sequence: drums on every beat, bass, chords per bar, a melody.

    Returns ``[samples]`` float64 in [-1, 1], mono at ``sr`` Hz.
    """
    rng = _rng(plan.seed, 1)
    n_total = int(round(plan.song_s * sr))
    buf = np.zeros(n_total)

    def add(t: float, sig: np.ndarray, gain: float) -> None:
        i = int(round(t * sr))
        if i >= n_total:
            return
        m = min(len(sig), n_total - i)
        buf[i:i + m] += gain * sig[:m]

    notes: dict[tuple, np.ndarray] = {}  # chords repeat: synthesise each note once

    def note_sig(midi: int, n: int, decay: float, harmonics=(1.0, 0.4, 0.2)) -> np.ndarray:
        key = (midi, n, decay, harmonics)
        if key not in notes:
            notes[key] = tone(_midi_hz(midi), n, sr, decay, harmonics=harmonics)
        return notes[key]

    beat = plan.beat_s
    bpb = plan.beats_per_bar
    style = plan.style
    kick_sig = kick(int(0.35 * sr), sr)
    for b, t in enumerate(plan.beat_times()):
        pos = b % bpb
        bar = b // bpb
        triad = _triad(plan, plan.chords[min(bar, len(plan.chords) - 1)])
        root = triad[0]
        downbeat = pos == 0
        # drums: a kick with an accented downbeat, a click on every beat
        if style == "W":
            if downbeat:
                add(t, kick_sig, 0.9)
        elif style == "T":
            add(t, kick_sig, 0.9 if downbeat else 0.45)
        elif pos in (0, 2):
            add(t, kick_sig, 0.9 if downbeat else 0.5)
        add(t, click(int(0.06 * sr), sr, rng), 0.35 if downbeat else 0.25)
        if downbeat:  # a cymbal marks the bar
            add(t, click(int(0.4 * sr), sr, rng, decay_s=0.1), 0.3)
        if style == "C" and pos == 3:  # the "and" of 4: cha-cha-cha
            add(t + beat / 2, click(int(0.06 * sr), sr, rng), 0.15)
        # bass: root on the downbeat, fifth mid-bar
        if downbeat:
            n = int(beat * (1.5 if style == "W" else 1.0) * sr)
            dec = 0.12 if style == "T" else 0.5
            add(t, note_sig(root - 24, n, dec, (1.0, 0.5, 0.3)), 0.5)
        elif style != "W" and pos == 2:
            n = int(beat * sr)
            dec = 0.12 if style == "T" else 0.5
            add(t, note_sig(root - 17, n, dec, (1.0, 0.5, 0.3)), 0.4)
        # chords: oom-pah-pah (waltz), stabs (tango, cha-cha), a pad (rumba)
        chord_on = {"W": pos != 0, "T": True, "C": pos != 0, "R": downbeat}[style]
        if chord_on:
            length = {"W": 1.0, "T": 0.35, "C": 0.6, "R": float(bpb)}[style]
            dec = {"W": 0.3, "T": 0.08, "C": 0.15, "R": 1.2}[style]
            n = int(length * beat * sr)
            gain = 0.16 if (style == "T" and pos not in (0, 3)) else 0.22
            for note in triad:
                add(t, note_sig(note, n, dec), gain)
        # melody: a chord tone an octave up, once per beat (waltz: per bar)
        if style != "W" or downbeat:
            note = triad[int(rng.integers(0, 3))] + 12
            length = float(bpb) if style == "W" else 1.0
            n = int(length * beat * sr)
            add(t, note_sig(note, n, 0.25 * length * beat + 0.05, (1.0, 0.2)), 0.25)
    buf /= max(np.max(np.abs(buf)), 1e-9)
    buf = 0.85 * buf + noise * rng.standard_normal(n_total)
    return np.clip(buf, -1.0, 1.0)


# ----------------------------------------------------------------------------
# dance


def _smooth(x: np.ndarray) -> np.ndarray:
    """Smoothstep on [0, 1] (zero slope at both ends)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def rot_x(a: np.ndarray) -> np.ndarray:
    """Rotations about x by angles ``a`` [N] rad -> ``[N, 3, 3]``."""
    c, s = pcos(a), psin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(*a.shape, 3, 3)


def rot_y(a: np.ndarray) -> np.ndarray:
    """Rotations about y (the vertical); +z turns towards +x. ``[N] -> [N, 3, 3]``."""
    c, s = pcos(a), psin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(*a.shape, 3, 3)


def rot_z(a: np.ndarray) -> np.ndarray:
    """Rotations about z (the forward axis). ``[N] -> [N, 3, 3]``."""
    c, s = pcos(a), psin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(*a.shape, 3, 3)


def rot_axis(axis: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Rotations about a fixed unit ``axis`` [3] by angles ``a`` [N] (Rodrigues)."""
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    s, c = psin(a)[:, None, None], pcos(a)[:, None, None]
    return np.eye(3) + s * k + (1.0 - c) * _matmul(k, k)


def two_link_ik(hip: np.ndarray, target: np.ndarray, l1: float, l2: float,
                bend: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Place knee and ankle for a hip and an ankle target, keeping bone lengths.

    hip, target: ``[N, 3]``; l1, l2: thigh and shin length; bend: ``[3]`` the
    direction the knee bends towards (forward). A target out of reach is pulled
    towards the hip (the foot rises, as on the toes). Returns (knee, ankle),
    each ``[N, 3]``.
    """
    v = target - hip
    d = _norm(v)[:, None]
    u = v / np.maximum(d, 1e-9)
    d = np.clip(d, 0.35 * (l1 + l2), 0.998 * (l1 + l2))
    a = (l1 * l1 - l2 * l2 + d * d) / (2.0 * d)
    h = np.sqrt(np.maximum(l1 * l1 - a * a, 0.0))
    along = (bend[0] * u[:, 0] + bend[1] * u[:, 1]) + bend[2] * u[:, 2]
    w = bend[None, :] - along[:, None] * u
    w /= np.maximum(_norm(w), 1e-9)[:, None]
    return hip + a * u + h * w, hip + d * u


@dataclass(frozen=True)
class _Steps:
    """Every step of a dance: landing time, foot ("a"/"b"), world xz, foot yaw."""

    t: np.ndarray  # [K] landing times, s (sorted)
    lift_t: np.ndarray  # [K] times the foot leaves the floor, s
    foot: tuple[str, ...]
    xz: np.ndarray  # [K, 2]
    yaw: np.ndarray  # [K]


def _plan_path(plan: SequencePlan, style: Style, rng: np.random.Generator):
    """The line of dance: a slow counter-clockwise circle, plus the body facing (toward +z).

    Returns functions of song time ``t`` [N]: ``xz(t)`` [N, 2] and ``heading(t)``
    [N] (rad, the body's forward is (sin h, cos h) in (x, z)).
    """
    radius = float(rng.uniform(180.0, 260.0))
    centre = rng.uniform(-80.0, 80.0, size=2)
    theta0 = float(rng.uniform(0.0, 2.0 * np.pi))
    bar = plan.beat_s * plan.beats_per_bar
    turn_bars = 1.0

    def xz(t):
        th = theta0 + style.speed_cm_s * t / radius
        return centre + radius * np.stack([pcos(th), psin(th)], -1)

    def heading(t):
        # The dancer faces the audience (+z) while travelling the circle, and the
        # facing swings with the bars. A facing that followed the circle would rotate
        # the root-relative joints by an angle no music can predict (it depends on
        # where the dancer stands), which would make the corpus unlearnable. For the
        # same reason the swing starts on the first downbeat in every sequence.
        swing = psin(2.0 * np.pi * (t - plan.first_beat_s) / (turn_bars * bar))
        return _DEG * style.turn_deg * swing

    return xz, heading


def _plan_steps(plan: SequencePlan, style: Style, xz, heading) -> _Steps:
    beat = plan.beat_s
    n_cycles = int(math.ceil(plan.song_s / (beat * style.cycle_beats))) + 2
    times, fwd = [], []
    for c in range(-1, n_cycles):
        sign = -1.0 if (style.rock_flips and c % 2) else 1.0
        for b, f in style.steps:
            times.append(plan.first_beat_s + beat * (c * style.cycle_beats + b))
            fwd.append(sign * f)
    t = np.array(times)
    fwd = np.array(fwd)
    foot = tuple("a" if k % 2 == 0 else "b" for k in range(len(t)))
    prev = np.concatenate([[t[0] - beat], t[:-1]])
    lift_t = np.maximum(prev, t - style.swing_beats * beat)
    # Land half a step ahead of the path, so that the midpoint of the feet
    # (the root) follows the path.
    ahead = t + 0.5 * (t - prev)
    h = heading(ahead)
    side = np.array([SIDE_SIGN[f] for f in foot])
    half_width = 10.0
    # body frame (x right, z forward) -> world (x, z) for heading h
    lx, lz = side * half_width, fwd
    wx = lx * pcos(h) + lz * psin(h)
    wz = -lx * psin(h) + lz * pcos(h)
    pos = xz(ahead) + np.stack([wx, wz], -1)
    yaw = h + side * _DEG * 8.0  # feet slightly turned out
    return _Steps(t, lift_t, foot, pos, yaw)


def _foot_track(steps: _Steps, side: str, t: np.ndarray):
    """World xz [N,2], lift phase [N] (0 when planted) and yaw [N] of one foot."""
    idx = np.array([k for k, f in enumerate(steps.foot) if f == side])
    land, lift = steps.t[idx], steps.lift_t[idx]
    xz, yaw = steps.xz[idx], steps.yaw[idx]
    k = np.clip(np.searchsorted(land, t, side="right"), 1, len(land) - 1)  # next landing
    span = np.maximum(land[k] - lift[k], 1e-6)
    phase = np.clip((t - lift[k]) / span, 0.0, 1.0)
    s = _smooth(phase)[:, None]
    pos = xz[k - 1] + (xz[k] - xz[k - 1]) * s
    ang = yaw[k - 1] + (yaw[k] - yaw[k - 1]) * s[:, 0]
    swinging = (phase > 0.0) & (phase < 1.0)
    return pos, np.where(swinging, phase, 0.0), ang


def _weight(steps: _Steps, style: Style, beat: float, t: np.ndarray) -> np.ndarray:
    """Which foot carries the weight, -1 (a) .. +1 (b), moving after each landing."""
    side = np.array([SIDE_SIGN[f] for f in steps.foot])
    k = np.clip(np.searchsorted(steps.t, t, side="right") - 1, 1, len(steps.t) - 1)
    phase = (t - steps.t[k]) / (style.sway_beats * beat)
    return side[k - 1] + (side[k] - side[k - 1]) * _smooth(phase)


def _bob(style: Style, bar_pos: np.ndarray) -> np.ndarray:
    """Root height offset, cm, at fractional beat-of-bar ``bar_pos`` [N]."""
    v = np.array(style.bob_cm)
    i = np.floor(bar_pos).astype(int) % len(v)
    j = (i + 1) % len(v)
    return v[i] + (v[j] - v[i]) * _smooth(bar_pos - np.floor(bar_pos))


def _ankle_height(side: str) -> float:
    """Height of the ankle above the floor when the foot is flat, cm."""
    _, _, ankle, f1, f2 = LEG[side]
    return float(TEMPLATE[ankle, 1] - min(TEMPLATE[f1, 1], TEMPLATE[f2, 1]))


def render_dance(plan: SequencePlan, noise_cm: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """The dance of a sequence, driven by its song's beats and bars.

    Returns ``(joints [N, 23, 3], root [N, 3])``: joints relative to the root
    (world orientation), root in world coordinates, cm, y up, at 25 fps, for
    the frames ``start_frame .. end_frame - 1`` of the song.
    """
    style = STYLES[plan.style]
    rng = _rng(plan.seed, 2)
    t = (plan.start_frame + np.arange(plan.n_frames)) / FPS
    beat = plan.beat_s
    beats = (t - plan.first_beat_s) / beat  # fractional beat count
    bar_pos = np.mod(beats, plan.beats_per_bar)  # beat within the bar
    bar_phase = bar_pos / plan.beats_per_bar  # 0..1 over the bar
    n = len(t)

    xz_path, heading_path = _plan_path(plan, style, rng)
    steps = _plan_steps(plan, style, xz_path, heading_path)
    heading = heading_path(t)
    feet = {s: _foot_track(steps, s, t) for s in ("a", "b")}
    weight = _weight(steps, style, beat, t)

    # Root: between the feet, shifted over the standing foot, rising and falling.
    mid = 0.5 * (feet["a"][0] + feet["b"][0])
    sway = style.sway_cm * weight
    root = np.zeros((n, 3))
    root[:, 0] = mid[:, 0] + sway * pcos(heading)
    root[:, 2] = mid[:, 1] - sway * psin(heading)
    root[:, 1] = FLOOR_Y_CM + ROOT_HEIGHT_CM + _bob(style, bar_pos)
    # Long steps need bent knees: lower the root where a foot on the floor
    # would otherwise be out of the leg's reach.
    ch, sh = pcos(heading), psin(heading)
    for side in ("a", "b"):
        hip, ankle = LEG[side][0], LEG[side][2]
        hx = root[:, 0] + TEMPLATE[hip, 0] * ch + TEMPLATE[hip, 2] * sh
        hz = root[:, 2] - TEMPLATE[hip, 0] * sh + TEMPLATE[hip, 2] * ch
        dx, dz = feet[side][0][:, 0] - hx, feet[side][0][:, 1] - hz
        reach = 0.97 * (THIGH[side] + SHIN[side])
        drop = np.sqrt(np.maximum(reach * reach - (dx * dx + dz * dz), 0.0))
        top = FLOOR_Y_CM + _ankle_height(side) + drop - TEMPLATE[hip, 1]
        root[:, 1] = np.minimum(root[:, 1], top)

    # Upper body in the body frame (root at the origin, facing +z).
    roll = _DEG * style.roll_deg * weight
    twist = _DEG * style.twist_deg * psin(2.0 * np.pi * bar_phase)
    if style.letter == "T":
        # staccato: the torso snaps to a new angle on each downbeat, then holds
        flip = np.where(np.floor(beats / plan.beats_per_bar) % 2 == 0, 1.0, -1.0)
        snap = 2.0 * _smooth(bar_pos / 0.4) - 1.0  # -flip -> +flip within 0.4 beat
        twist = _DEG * style.twist_deg * flip * snap
    pelvis_r = _matmul(rot_y(0.5 * twist), rot_z(roll))
    torso_r = _matmul(_matmul(pelvis_r, rot_y(0.5 * twist)), rot_z(-0.6 * roll))
    body = np.zeros((n, N_JOINTS, 3))
    for j in (2, 7, 16):
        body[:, j] = _apply(pelvis_r, TEMPLATE[j])
    chest = body[:, 2] + _apply(torso_r, CHEST - TEMPLATE[2])
    for j in (1, 3, 12):
        body[:, j] = chest + _apply(torso_r, TEMPLATE[j] - CHEST)
    if style.letter == "T":  # head snaps to the side on accented bars
        head_yaw = -1.5 * twist
    else:
        head_yaw = 0.3 * twist
    nod = _DEG * 3.0 * pcos(2.0 * np.pi * beats)
    head_r = _matmul(_matmul(torso_r, rot_y(head_yaw)), rot_x(nod))
    body[:, 0] = body[:, 1] + _apply(head_r, TEMPLATE[0] - TEMPLATE[1])

    # Arms: a closed hold that breathes with the bar, or free arms that swing
    # on the beat and open out over the bar.
    for side in ("a", "b"):
        sh, el, wr, ha, hd = ARM[side]
        sg = SIDE_SIGN[side]
        swing = _DEG * style.arm_swing_deg
        if style.hold:
            abduct = swing * psin(2.0 * np.pi * bar_phase)
            flex = np.zeros(n)
            elbow = 0.5 * swing * psin(2.0 * np.pi * bar_phase)
        else:
            bump = psin(np.pi * bar_phase)
            raise_bar = _smooth(1.5 * bump * bump)
            if side == "a":  # the free arm opens out and up over the bar
                abduct = _DEG * (-30.0 + style.arm_raise_deg * raise_bar)
            else:
                abduct = _DEG * (-35.0 + 0.2 * style.arm_raise_deg * raise_bar)
            flex = swing * sg * psin(np.pi * beats)
            elbow = 0.5 * swing * (1.0 - pcos(np.pi * beats))
        upper = TEMPLATE[el] - TEMPLATE[sh]
        fore = TEMPLATE[wr] - TEMPLATE[el]
        hinge = np.cross(upper, fore)
        hinge /= _norm(hinge)
        shoulder_r = _matmul(_matmul(torso_r, rot_z(sg * abduct)), rot_x(-flex))
        fore_r = _matmul(shoulder_r, rot_axis(hinge, elbow))
        body[:, el] = body[:, sh] + _apply(shoulder_r, upper)
        body[:, wr] = body[:, el] + _apply(fore_r, fore)
        body[:, ha] = body[:, wr] + _apply(fore_r, TEMPLATE[ha] - TEMPLATE[wr])
        base = ha if side == "a" else wr  # 22 hangs off hand a, 21 off wrist b
        body[:, hd] = body[:, base] + _apply(fore_r, TEMPLATE[hd] - TEMPLATE[base])

    # Legs: inverse kinematics from each hip to its foot on the floor.
    inv_heading = rot_y(-heading)
    ground = FLOOR_Y_CM - root[:, 1]  # floor height relative to the root
    for side in ("a", "b"):
        hip, knee, ankle, f1, f2 = LEG[side]
        pos, lift_phase, yaw = feet[side]
        world = np.stack([pos[:, 0] - root[:, 0],
                          ground + _ankle_height(side) + style.lift_cm * psin(np.pi * lift_phase),
                          pos[:, 1] - root[:, 2]], -1)
        target = _apply(inv_heading, world)
        k, a = two_link_ik(body[:, hip], target, THIGH[side], SHIN[side],
                           np.array([0.0, 0.0, 1.0]))
        body[:, knee], body[:, ankle] = k, a
        # the foot keeps its own facing and points its toes down while lifted
        foot_r = _matmul(rot_y(yaw - heading),
                         rot_x(_DEG * 25.0 * psin(np.pi * lift_phase)))
        for f in (f1, f2):
            body[:, f] = a + _apply(foot_r, TEMPLATE[f] - TEMPLATE[ankle])

    joints = _apply(rot_y(heading)[:, None], body)

    # Small smooth jitter, like capture noise; the root gets a little too.
    if noise_cm > 0:
        kernel = np.array([0.25, 0.5, 0.25])
        jit = rng.standard_normal((n + 2, N_JOINTS, 3)) * noise_cm
        jit = kernel[0] * jit[:-2] + kernel[1] * jit[1:-1] + kernel[2] * jit[2:]
        joints = joints + jit
        rj = rng.standard_normal((n + 2, 3)) * (0.3 * noise_cm)
        root = root + kernel[0] * rj[:-2] + kernel[1] * rj[1:-1] + kernel[2] * rj[2:]
    return joints, root


# ----------------------------------------------------------------------------
# files


def encode_wav(samples: np.ndarray, sr: int) -> bytes:
    """PCM16 mono WAV bytes of ``samples`` [n] in [-1, 1] (no timestamps, no extra chunks)."""
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def _round4(a: np.ndarray) -> list:
    # +0.0 turns -0.0 into 0.0; repr of a float rounded to 1e-4 is its short decimal
    return (np.round(np.asarray(a, dtype=np.float64), 4) + 0.0).tolist()


def skeletons_json(joints: np.ndarray, root: np.ndarray) -> bytes:
    """``skeletons.json`` bytes in the real files' format (compact, keys in order)."""
    obj = {"length": int(joints.shape[0]), "center": _round4(root),
           "skeletons": _round4(joints)}
    return json.dumps(obj, separators=(",", ":")).encode("ascii")


def config_json(start: int, end: int) -> bytes:
    """``config.json`` bytes in the real files' format."""
    return json.dumps({"start_position": start, "end_position": end}).encode("ascii")


def write_sequence(seq_dir: Path, plan: SequencePlan, cfg: SynthConfig) -> None:
    """Write one ``DANCE_<style>_<n>`` folder (which must not exist yet)."""
    seq_dir.mkdir()
    joints, root = render_dance(plan, cfg.motion_noise_cm)
    song = render_song(plan, cfg.sample_rate, cfg.audio_noise)
    (seq_dir / "audio.wav").write_bytes(encode_wav(song, cfg.sample_rate))
    (seq_dir / "config.json").write_bytes(config_json(plan.start_frame, plan.end_frame))
    (seq_dir / "skeletons.json").write_bytes(skeletons_json(joints, root))


def write_corpus(out_dir: str | Path, cfg: SynthConfig | None = None) -> list[str]:
    """Write the synthetic corpus into ``out_dir`` (absent or empty); return the names.

    Callers that replace an existing corpus write into a temporary folder and
    swap it in (see ``melodance data synth``).
    """
    cfg = cfg or SynthConfig()
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise OutputExists(f"{out_dir}: exists and is not an empty folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for plan in corpus_plan(cfg):
        write_sequence(out_dir / plan.name, plan, cfg)
        names.append(plan.name)
    return names


def tree_digest(root: str | Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``root`` (sorted)."""
    import hashlib

    root = Path(root)
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            p = Path(dirpath) / f
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
