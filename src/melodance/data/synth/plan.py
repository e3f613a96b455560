"""The dance styles (tempo, metre, steps) and the plan: all that is drawn at random for one sequence."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from melodance import FPS
from melodance.data.synth.config import SynthConfig


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


def plan_rng(plan_seed: tuple[int, ...], stream: int) -> np.random.Generator:
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
            rng = plan_rng(seed, 0)
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


