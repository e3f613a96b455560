"""Writing the corpus in the Music-to-Dance layout (``audio.wav``, ``config.json``,
``skeletons.json``), byte-identical."""

from __future__ import annotations

import io
import json
import os
import wave
from pathlib import Path

import numpy as np

from melodance.data.synth.config import SynthConfig
from melodance.data.synth.dance import render_dance
from melodance.data.synth.music import render_song
from melodance.data.synth.plan import SequencePlan, corpus_plan
from melodance.errors import OutputExists


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
