"""The features stage: corpus -> aligned, split, normalised features on disk.

Output folder (written atomically: all of it or nothing):

- ``segments/<segment>.npz``: one file per continuous segment, named
  ``<sequence>.<k>`` (``DANCE_W_1.0``): unnormalised ``music`` [T, Dm],
  ``temporal`` [T, 3], ``motion`` [T, 72], ``root_start`` [3], ``beat_frames``.
- ``split.json``: {"train" | "val" | "test": [segment names]}, split by
  original sequence; evaluation reads it.
- ``normalizers.json``: the music, temporal and motion normalisers, fitted on
  the training split only.
- ``meta.json``: fps, feature groups and dims, the config used, per-segment
  provenance (source sequence, style, audio time of frame 0).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from melodance.errors import InputError, MissingInput
from melodance.features.config import FeaturesConfig
from melodance.features.motion import MOTION_DIM, MOTION_GROUPS, find_segments, motion_features
from melodance.features.normalize import Normalizer
from melodance.features.split import SPLITS, group_by_key, opening_key, split_groups
from melodance.features.temporal import TEMPORAL_DIM, TEMPORAL_GROUPS, temporal_indexes
from melodance.features.windows import window_starts

STREAMS = ("music", "temporal", "motion")
FORMAT_VERSION = 2  # 2: root height absolute (motion dims 69:72 = vx, vz, height)


@dataclass
class SequenceFeatures:
    """Features of one continuous segment, unnormalised, frame-aligned.

    Attributes:
        name: segment name, ``<source>.<k>``.
        style: style letter.
        source: original sequence name (``DANCE_W_1``).
        music: [T, Dm] music features.
        temporal: [T, 3] temporal indexes.
        motion: [T, 72] motion features.
        root_start: [3] world root position at frame 0, cm.
        start_s: song time of frame 0, seconds.
        beat_frames: beat positions relative to frame 0 (may lie outside [0, T)).
        source_start: frame of the source sequence where the segment starts.
    """

    name: str
    style: str
    source: str
    music: np.ndarray = field(repr=False)
    temporal: np.ndarray = field(repr=False)
    motion: np.ndarray = field(repr=False)
    root_start: np.ndarray = field(repr=False)
    start_s: float = 0.0
    beat_frames: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    source_start: int = 0

    @property
    def n_frames(self) -> int:
        return int(self.motion.shape[0])


@dataclass
class FeatureSet:
    """All segments with their split and train-fitted normalisers."""

    meta: dict
    sequences: dict[str, SequenceFeatures]
    split: dict[str, list[str]]
    normalizers: dict[str, Normalizer]

    @property
    def settings(self) -> FeaturesConfig:
        """The typed feature settings these features were made with (``meta["config"]``)."""
        return FeaturesConfig.model_validate(self.meta["config"])

    def normalized(self, name: str) -> dict[str, np.ndarray]:
        """Full-length normalised ``music``, ``temporal``, ``motion`` of a segment."""
        seq = self.sequences[name]
        return {k: self.normalizers[k].transform(getattr(seq, k)) for k in STREAMS}

    def windows(self, split: str, window: int | None = None,
                stride: int | None = None) -> dict[str, np.ndarray]:
        """Normalised overlapping windows of one split.

        Windows never cross a segment boundary (segments are continuous
        pieces of one sequence).

        Returns:
            ``music`` [n, W, Dm], ``temporal`` [n, W, 3], ``motion`` [n, W, 72]
            float32, and ``segment`` [n] (index into ``self.split[split]``) and
            ``start`` [n] (first frame in the segment), int64.
        """
        if split not in self.split:
            raise InputError(f"unknown split {split!r} (have {sorted(self.split)})")
        cfg = self.settings
        W = int(window or cfg.window)
        S = int(stride or cfg.stride)
        out: dict[str, list] = {k: [] for k in (*STREAMS, "segment", "start")}
        for i, name in enumerate(self.split[split]):
            starts = window_starts(self.sequences[name].n_frames, W, S)
            if len(starts) == 0:
                continue
            norm = self.normalized(name)
            idx = starts[:, None] + np.arange(W)
            for k in STREAMS:
                out[k].append(norm[k][idx])
            out["segment"].append(np.full(len(starts), i, dtype=np.int64))
            out["start"].append(starts)
        dims = self.meta["dims"]
        result = {}
        for k in STREAMS:
            result[k] = (np.concatenate(out[k]) if out[k]
                         else np.zeros((0, W, dims[k]), dtype=np.float32))
        for k in ("segment", "start"):
            result[k] = np.concatenate(out[k]) if out[k] else np.zeros(0, dtype=np.int64)
        return result

    def source_split(self) -> dict[str, list[str]]:
        """Split as original sequence names."""
        return {s: sorted({self.sequences[n].source for n in names})
                for s, names in self.split.items()}


def _extract(job: tuple) -> tuple[str, dict]:
    """Worker: music and beats of one span."""
    from melodance.features.music import song_features

    key, audio_path, start_s, n_frames, cfg = job
    return key, song_features(audio_path, start_s, n_frames, cfg)


def _single_thread_blas():
    """Limit BLAS to one thread (until the returned object's ``restore_original_limits``).

    Each worker owns one core, so BLAS threads on top would oversubscribe it;
    and a matrix product summed in a different order by another thread count
    differs in the last bit, which would make the output depend on ``workers``.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


def extract_music(spans: list[tuple], cfg: FeaturesConfig, workers: int | None = None,
                  progress: bool = False):
    """Music features of many song spans, in a pool of processes.

    Args:
        spans: (key, audio_path, start_s, n_frames) tuples.
        cfg: feature settings.
        workers: processes (default cfg.workers); 1 runs in this process.
        progress: show a progress bar.

    Yields:
        (key, song_features result) in completion order.
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from melodance.features.music import warm_up

    workers = cfg.workers if workers is None else workers
    # Longest first, so that no worker is left with a long song at the end.
    jobs = sorted(((*sp, cfg) for sp in spans), key=lambda j: -(j[3] or 0))
    pooled = workers > 1 and len(jobs) > 1
    if pooled:
        # Forked workers inherit librosa, its compiled beat tracker and the
        # filter banks from this process instead of paying seconds each.
        warm_up(cfg)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="features", unit="seq")
    try:
        if not pooled:
            for job in jobs:
                limits = _single_thread_blas()
                try:
                    result = _extract(job)
                finally:
                    limits.restore_original_limits()
                yield result
                if bar is not None:
                    bar.update()
            return
        import multiprocessing as mp

        ctx = mp.get_context("fork")
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx,
                                 initializer=_single_thread_blas) as pool:
            futures = [pool.submit(_extract, job) for job in jobs]
            try:
                for fut in as_completed(futures):
                    yield fut.result()
                    if bar is not None:
                        bar.update()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    finally:
        if bar is not None:
            bar.close()


def _read_included(data_dir: Path, include: list[str] | None) -> list:
    """The corpus's sequences, only those of ``include`` (the accepted list) when given."""
    from melodance.data.layout import read_corpus, sequence_dirs

    if include is not None:
        have = {d.name for d in sequence_dirs(data_dir)}
        missing = sorted(set(include) - have)
        if missing:
            raise InputError(f"{data_dir}: accepted sequences not found: {', '.join(missing)}")
        if not include:
            raise InputError("no sequences to extract features from (the accepted list is empty)")
    return read_corpus(data_dir, names=include)


def _segments(seqs: list, cfg: FeaturesConfig) -> dict[str, list[tuple[int, int]]]:
    """Segments per sequence: continuous pieces ``[a, b)`` of frames (the whole sequence
    unless ``split_discontinuities``)."""
    segments: dict[str, list[tuple[int, int]]] = {}
    for s in seqs:
        if abs(s.fps - cfg.fps) > 1e-9:
            raise InputError(f"{s.name}: motion at {s.fps} fps, music features at {cfg.fps}")
        if cfg.split_discontinuities:
            segments[s.name] = find_segments(s.joints, s.root, cfg.max_jump_cm,
                                             cfg.max_root_step_cm, cfg.min_segment_frames)
        else:
            segments[s.name] = [(0, s.n_frames)]
    return segments


def _segment_features(seqs: list, segments: dict, cfg: FeaturesConfig, progress: bool
                      ) -> tuple[dict[str, SequenceFeatures], list]:
    """Music, temporal and motion features of every segment (music aligned frame by frame),
    and the music's column groups."""
    # 1d ablation: without alignment the music is read from the song's start.
    spans = [(s.name, s.audio_path, s.start_s if cfg.align else 0.0, s.n_frames) for s in seqs]
    by_name = {s.name: s for s in seqs}
    sequences: dict[str, SequenceFeatures] = {}
    music_groups = None
    for name, song in extract_music(spans, cfg, progress=progress):
        s = by_name[name]
        music_groups = song["groups"]
        start_s = s.start_s if cfg.align else 0.0
        for k, (a, b) in enumerate(segments[name]):
            beats = song["beat_frames"] - a
            sequences[f"{name}.{k}"] = SequenceFeatures(
                name=f"{name}.{k}", style=s.style, source=name,
                music=song["music"][a:b],
                temporal=temporal_indexes(b - a, beats, cfg.temporal_normalize),
                motion=motion_features(s.joints[a:b], s.root[a:b]),
                root_start=s.root[a].astype(np.float64),
                start_s=start_s + a / cfg.fps, beat_frames=beats, source_start=a,
            )
    return sequences, music_groups


def _fit_normalizers(train: list[SequenceFeatures], music_groups, cfg: FeaturesConfig
                     ) -> dict[str, Normalizer]:
    """Normalisers of the three streams, fitted on the training segments only."""
    temporal_method = cfg.normalize if cfg.temporal_normalize else "identity"
    return {
        "music": Normalizer.fit(np.concatenate([f.music for f in train]), music_groups,
                                cfg.normalize),
        "temporal": Normalizer.fit(np.concatenate([f.temporal for f in train]),
                                   TEMPORAL_GROUPS, temporal_method),
        "motion": Normalizer.fit(np.concatenate([f.motion for f in train]), MOTION_GROUPS,
                                 cfg.normalize),
    }


def build_features(data_dir: str | Path, out_dir: str | Path, cfg: FeaturesConfig,
                   include: list[str] | None = None, progress: bool = False) -> FeatureSet:
    """Extract, split, normalise and write the features of a corpus.

    Args:
        data_dir: dataset root in the Music-to-Dance layout.
        out_dir: output folder, replaced atomically.
        cfg: the ``features`` section.
        include: sequence names to use (those accepted by validation); None: all.
        progress: show a progress bar over sequences.
    """
    from melodance.io import atomic_dir

    seqs = _read_included(Path(data_dir), include)
    segments = _segments(seqs, cfg)
    sequences, music_groups = _segment_features(seqs, segments, cfg, progress)

    # Split by original sequence; identical openings share a side.
    names = [s.name for s in seqs]
    keys = [opening_key(s.joints, s.root, cfg.split.opening_frames) for s in seqs]
    groups = group_by_key(names, keys)
    src_split = split_groups(groups, {s.name: s.style for s in seqs}, cfg.split.val_fraction,
                             cfg.split.test_fraction, cfg.split.seed)
    split = {sp: sorted(n for n, f in sequences.items() if f.source in src_split[sp])
             for sp in SPLITS}
    if not split["train"]:
        raise InputError("the training split holds no segment; nothing to fit normalisers on")

    normalizers = _fit_normalizers([sequences[n] for n in split["train"]], music_groups, cfg)
    meta = {
        "format_version": FORMAT_VERSION,
        "fps": cfg.fps,
        # Without `workers`: the output must not depend on the pool size.
        "config": cfg.model_dump(mode="json", exclude={"workers"}),
        "dims": {"music": int(music_groups[-1][2]), "temporal": TEMPORAL_DIM,
                 "motion": MOTION_DIM},
        "groups": {"music": [list(g) for g in music_groups],
                   "temporal": [list(g) for g in TEMPORAL_GROUPS],
                   "motion": [list(g) for g in MOTION_GROUPS]},
        "split_sequences": src_split,
        "opening_groups": [g for g in groups if len(g) > 1],
        "segments": {n: {"source": f.source, "style": f.style, "start_s": f.start_s,
                         "source_start": f.source_start, "n_frames": f.n_frames}
                     for n, f in sorted(sequences.items())},
        "dropped_frames": {s.name: s.n_frames - sum(b - a for a, b in segments[s.name])
                           for s in seqs},
    }
    fs = FeatureSet(meta=meta, sequences=dict(sorted(sequences.items())), split=split,
                    normalizers=normalizers)
    with atomic_dir(out_dir) as tmp:
        save_features(fs, tmp)
    return fs


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An uncompressed .npz with fixed timestamps: same content, same bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0)),
                        buf.getvalue())


def save_features(fs: FeatureSet, out_dir: str | Path) -> None:
    """Write a FeatureSet into an existing folder (see the module docstring)."""
    from melodance.io import write_json

    out_dir = Path(out_dir)
    (out_dir / "segments").mkdir(parents=True, exist_ok=True)
    for name, f in fs.sequences.items():
        _write_npz(out_dir / "segments" / f"{name}.npz", {
            "music": f.music.astype(np.float32), "temporal": f.temporal.astype(np.float32),
            "motion": f.motion.astype(np.float32), "root_start": f.root_start,
            "beat_frames": f.beat_frames.astype(np.int64),
        })
    write_json(out_dir / "split.json", fs.split)
    write_json(out_dir / "normalizers.json", {k: n.to_dict() for k, n in fs.normalizers.items()})
    write_json(out_dir / "meta.json", fs.meta)


def load_features(out_dir: str | Path) -> FeatureSet:
    """Read a features folder written by :func:`build_features`."""
    out_dir = Path(out_dir)

    def read(name: str):
        p = out_dir / name
        if not p.is_file():
            raise MissingInput(f"{p}: missing (run `melodance features` first)")
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"{p}: malformed JSON ({e})") from e

    meta = read("meta.json")
    if meta.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{out_dir / 'meta.json'}: format version "
                         f"{meta.get('format_version')}, expected {FORMAT_VERSION}")
    split = read("split.json")
    normalizers = {k: Normalizer.from_dict(d) for k, d in read("normalizers.json").items()}
    sequences = {}
    for name, info in meta["segments"].items():
        p = out_dir / "segments" / f"{name}.npz"
        if not p.is_file():
            raise MissingInput(f"{p}: missing segment file")
        with np.load(p, allow_pickle=False) as z:
            sequences[name] = SequenceFeatures(
                name=name, style=info["style"], source=info["source"],
                music=z["music"], temporal=z["temporal"], motion=z["motion"],
                root_start=z["root_start"], start_s=float(info["start_s"]),
                beat_frames=z["beat_frames"], source_start=int(info["source_start"]),
            )
    for sp, names in split.items():
        unknown = sorted(set(names) - set(sequences))
        if unknown:
            raise InputError(f"{out_dir / 'split.json'}: {sp} names unknown segments {unknown}")
    return FeatureSet(meta=meta, sequences=sequences, split=split, normalizers=normalizers)
