"""One reader for songs: the validation gate, serving, the page and ``melodance dance``.

:func:`decode_song` decodes a file to its end and reports what is wrong with
it without raising (the gate turns that into the facts ``audio_readable`` and
``audio_complete``). :func:`check_song` is the same check for a song given by
a user: it raises :class:`AudioError` naming the song and the problem, so a
truncated MP3 (whose header still promises the full duration) is refused
instead of being danced to as silence.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melodance.errors import InputError, MissingInput

BLOCK_FRAMES = 1 << 16
"""Frames decoded per read when the samples are not kept (bounded memory)."""

_STDERR_LOCK = threading.Lock()


class AudioError(InputError):
    """A song cannot be used: undecodable, empty, truncated or too long."""


@contextlib.contextmanager
def captured_c_stderr() -> Iterator[list[str]]:
    """Capture what C libraries (libsndfile's mpg123) print on file descriptor 2.

    A truncated MP3 makes mpg123 print warnings straight to fd 2; we fold them
    into the error message instead of spilling them on the terminal. fd 2 is
    process-wide: the lock keeps two threads (a server's requests) from
    swapping it under each other, which would leave stderr pointing at a
    deleted temporary file.
    """
    out: list[str] = []
    with _STDERR_LOCK:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield out
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                out.extend(line.strip() for line in
                           tmp.read().decode("utf-8", "replace").splitlines() if line.strip())


def libsndfile_reason(err: Exception | None, path: Path) -> str:
    # For a file in an unknown format libsndfile says "Error opening '<path>': File
    # does not exist or is not a regular file (possibly a pipe?)", which misleads.
    msg = str(err).split(": ", 1)[-1] if str(err).startswith("Error opening") else str(err)
    if "does not exist or is not a regular file" in msg and path.is_file():
        return "format not recognised"
    return msg.replace(str(path), "the file")


@dataclass
class Decoded:
    """What decoding a song to its end found.

    Attributes:
        sample_rate: Hz (0 when unreadable).
        channels: channel count.
        header_s: duration the header promises, seconds.
        decoded_s: duration actually decoded from the file's start, seconds.
        missing_s: header minus decoded, seconds (> 0: truncated).
        unreadable: why the file does not open as audio (None: it does).
        incomplete: why decoding stops early (None: complete).
        mono: mono samples from ``start_s`` to the end (only with ``keep=True``).
    """

    sample_rate: int = 0
    channels: int = 0
    header_s: float | None = None
    decoded_s: float | None = None
    missing_s: float | None = None
    unreadable: str | None = None
    incomplete: str | None = None
    mono: np.ndarray | None = None


def _read_to_end(f, keep: bool, res: Decoded) -> int:
    """Frames read from an open ``soundfile.SoundFile`` to its end; with ``keep`` the mono
    mix is put in ``res.mono``, otherwise blocks are decoded and dropped."""
    if keep:
        y = f.read(dtype="float32", always_2d=True)
        # A matrix-vector product mixes channels far faster than y.mean(axis=1).
        res.mono = y @ np.full(y.shape[1], 1 / y.shape[1], np.float32)
        return len(y)
    got = 0
    buf = np.empty((BLOCK_FRAMES, f.channels), np.float32)
    while True:
        n = len(f.read(BLOCK_FRAMES, dtype="float32", always_2d=True, out=buf))
        got += n
        if n < BLOCK_FRAMES:
            return got


def decode_song(path: str | Path, start_s: float = 0.0, *, keep: bool = False,
                max_s: float | None = None) -> Decoded:
    """Decode ``path`` from ``start_s`` to its end; never raises on a broken file.

    Reading on to the end catches truncated files whose header still promises
    the full duration. With ``keep`` the mono mix from ``start_s`` is returned
    (the gate's onsets); otherwise blocks are decoded and dropped. ``max_s``:
    a header promising longer is reported unreadable without decoding.
    """
    import soundfile as sf

    path = Path(path)
    res = Decoded()
    info = err = None
    with captured_c_stderr() as notes:
        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            err = e
    if info is None or info.frames <= 0 or info.samplerate <= 0 or info.channels <= 0:
        detail = libsndfile_reason(err, path) if info is None else "no audio frames"
        if notes:
            detail += f"; decoder said: {' / '.join(notes[:3])}"
        res.unreadable = detail
        return res
    sr = int(info.samplerate)
    res.sample_rate, res.channels, res.header_s = sr, int(info.channels), info.frames / sr
    if max_s is not None and res.header_s > max_s:
        res.unreadable = f"lasts {res.header_s:.0f} s; the limit is {max_s:.0f} s"
        return res
    first = min(max(0, round(start_s * sr)), info.frames)
    got = 0
    with captured_c_stderr() as notes:
        try:
            with sf.SoundFile(str(path)) as f:
                if first:
                    f.seek(first)
                got = _read_to_end(f, keep, res)
            err = None
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            err = e
            if keep and res.mono is None:
                res.mono = np.zeros(0, np.float32)
    res.decoded_s = (first + got) / sr
    res.missing_s = (info.frames - first - got) / sr
    if err is not None or res.missing_s > 0:
        why = (f"decoding failed ({libsndfile_reason(err, path)})" if err is not None else
               f"header promises {res.header_s:.2f} s but decoding stops at "
               f"{res.decoded_s:.2f} s (truncated?)")
        if notes:
            why += f"; decoder said: {' / '.join(notes[:3])}"
        res.incomplete = why
    return res


@dataclass(frozen=True)
class Song:
    """A song that decodes completely."""

    path: Path
    sample_rate: int
    channels: int
    duration_s: float


def check_song(path: str | Path, name: str | None = None, max_s: float | None = None) -> Song:
    """Refuse a song that does not decode, or not to its end; return its facts.

    Args:
        path: the audio file.
        name: how messages name it (default: the path), e.g. ``audio_base64``
            for a song sent over HTTP, whose temporary path means nothing to the sender.
        max_s: longest song accepted, seconds (checked on the header, before decoding).

    Raises:
        AudioError: ``"<name>: cannot decode audio (...)"``, or
            ``"<name>: truncated audio (header promises ... but decoding stops at ...)"``.
    """
    path = Path(path)
    name = str(path) if name is None else name
    if not path.exists():
        raise MissingInput(f"{name}: no such file")
    if not path.is_file():
        raise AudioError(f"{name}: not a file")
    d = decode_song(path, max_s=max_s)
    if d.unreadable is not None:
        raise AudioError(f"{name}: cannot decode audio ({d.unreadable})")
    if d.incomplete is not None:
        kind = "truncated audio" if d.missing_s and d.missing_s > 0 else "damaged audio"
        raise AudioError(f"{name}: {kind}: {d.incomplete}")
    return Song(path, d.sample_rate, d.channels, float(d.decoded_s))
