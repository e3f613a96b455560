"""The retrieval baseline (``model.variant: retrieval``): a dance assembled from training dances.

What a practical tool without learning would do, and the bound of what
"realistic" means on this data. For every beat-aligned piece of a new song
(``retrieval_beats`` beats), the training piece whose music matches best is
chosen, its tempo adjusted to the song's beats, turned to face where the
previous piece ended, and joined with a short blend:

- **music match**: the song's music features (the features stage's, normalised
  like training) sampled at ``4 * retrieval_beats`` points spread over the
  piece's beats, against the same for every beat of every training dance;
  squared distance per value;
- **tempo**: a training piece is read at ``s = its beat period / the song's``
  frames per song frame, so its beats land on the song's; ``|log s|`` is a
  cost, so similar tempos (and with them similar styles) are preferred;
- **continuity**: distance (cm per joint) from the previous piece's last pose
  to the candidate's first pose after turning it; the natural continuation of
  the previous piece is one of the candidates, so long real runs are kept when
  the music allows;
- the last ``recent`` choices are not reused, so a repeating song does not loop
  one piece; the blend adds the pose offset at the seam, fading linearly over
  ``retrieval_blend_s`` seconds.

Everything the model needs is stored as plain tensors (:meth:`state_dict`), so
a bundle holding it loads with ``torch.load(weights_only=True)``. The
interface is the one :class:`~melodance.models.bundle.DanceBundle` uses:
``music_dim``, ``temporal_dim``, ``motion_dim``, ``cfg`` and ``generate(music,
temporal)`` on normalised features, returning normalised motion features.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from melodance import FPS
from melodance.data.skeleton import N_JOINTS
from melodance.errors import InputError
from melodance.features.temporal import BEAT_FLAG, flagged_beats
from melodance.models.config import ModelConfig

POINTS_PER_BEAT = 4
RECENT = 8
HEIGHT_BLEND_S = 2.0
_X, _Y, _Z = slice(0, N_JOINTS), slice(N_JOINTS, 2 * N_JOINTS), slice(2 * N_JOINTS, 3 * N_JOINTS)
_VEL, _HEIGHT = slice(69, 71), 71
_HIP_A, _HIP_B = 7, 16

BUFFERS = ("music", "motion", "seq_start", "seq_end", "cand_row", "cand_period", "cand_desc",
           "cand_dance", "dance_desc", "motion_offset", "motion_scale")


class RetrievalModel(nn.Module):
    """The training dances as a database; see the module docstring."""

    def __init__(self, cfg: ModelConfig, music_dim: int, temporal_dim: int, motion_dim: int):
        super().__init__()
        if cfg.variant != "retrieval":
            raise InputError(f"RetrievalModel needs model.variant 'retrieval', got {cfg.variant!r}")
        if motion_dim != 72:
            raise InputError(f"retrieval works on the 72 motion features, got {motion_dim}")
        self.cfg = cfg
        self.music_dim, self.temporal_dim, self.motion_dim = music_dim, temporal_dim, motion_dim
        for name in BUFFERS:
            self.register_buffer(name, torch.zeros(0))

    # ------------------------------------------------------------------ fitting

    @classmethod
    def fit(cls, fs, cfg: ModelConfig, split: str = "train") -> RetrievalModel:
        """Build the database from the ``split`` sequences of a features.pipeline.FeatureSet."""
        names = fs.split.get(split) or []
        if not names:
            raise InputError(f"retrieval needs training sequences, split {split!r} is empty")
        k = cfg.retrieval_beats
        music, motion, starts, ends, rows, periods, dance_of = [], [], [], [], [], [], []
        offset = 0
        for d, name in enumerate(names):
            seq = fs.sequences[name]
            norm = fs.normalized(name)
            n = len(seq.motion)
            music.append(norm["music"].astype(np.float32))
            motion.append(np.asarray(seq.motion, dtype=np.float32))
            beats = flagged_beats(seq.temporal)
            for i in range(len(beats) - k):
                rows.append(offset + beats[i])
                periods.append((beats[i + k] - beats[i]) / k)
                starts.append(offset)
                ends.append(offset + n)
                dance_of.append(d)
            offset += n
        if not rows:
            raise InputError(f"no training sequence has more than {k} beats: nothing to retrieve")
        music_all = np.concatenate(music)
        rows_a, periods_a = np.array(rows, np.int64), np.array(periods, np.float64)
        starts_a, ends_a = np.array(starts, np.int64), np.array(ends, np.int64)
        desc = np.stack([_descriptor(music_all, r, p, k, lo, hi)
                         for r, p, lo, hi in zip(rows_a, periods_a, starts_a, ends_a, strict=True)])
        dims = (music_all.shape[1], fs.normalizers["temporal"].dim, 72)
        model = cls(cfg, *dims)
        norm = fs.normalizers["motion"]
        model._set(music=music_all, motion=np.concatenate(motion), seq_start=starts_a,
                   seq_end=ends_a, cand_row=rows_a, cand_period=periods_a, cand_desc=desc,
                   cand_dance=np.array(dance_of, np.int64),
                   dance_desc=np.stack([_song_descriptor(m) for m in music]),
                   motion_offset=norm.offset, motion_scale=norm.scale)
        return model

    def _set(self, **arrays) -> None:
        for name, a in arrays.items():
            t = torch.as_tensor(np.asarray(a))
            t = t.to(torch.float32) if t.is_floating_point() else t.to(torch.int64)
            setattr(self, name, t)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Take the database tensors as they are (their sizes depend on the data)."""
        missing = [n for n in BUFFERS if n not in state_dict]
        extra = [n for n in state_dict if n not in BUFFERS]
        if strict and (missing or extra):
            raise RuntimeError(f"retrieval state: missing {missing}, unexpected {extra}")
        for n in BUFFERS:
            if n in state_dict:
                setattr(self, n, torch.as_tensor(state_dict[n]).clone())
        return nn.modules.module._IncompatibleKeys(missing, extra)

    # ------------------------------------------------------------------ generation

    @torch.no_grad()
    def generate(self, music: torch.Tensor, temporal: torch.Tensor | None = None,
                 chunk_frames: int | None = None) -> torch.Tensor:
        """Normalised music [T, Dm] and temporal [T, 3] -> normalised motion [T, 72]."""
        if len(self.cand_row) == 0:
            raise RuntimeError("retrieval model has no database: fit it first")
        m = music.detach().cpu().numpy().astype(np.float64)
        T = len(m)
        flags = (temporal.detach().cpu().numpy()[:, BEAT_FLAG] > 0.5) if temporal is not None \
            else np.zeros(T, bool)
        raw = self._assemble(m, np.flatnonzero(flags))
        out = (raw - self.motion_offset.numpy()) / self.motion_scale.numpy()
        return torch.from_numpy(out.astype(np.float32))

    def _assemble(self, m: np.ndarray, beats: np.ndarray) -> np.ndarray:
        cfg, k = self.cfg, self.cfg.retrieval_beats
        T = len(m)
        db_motion = self.motion.numpy().astype(np.float64)
        rows, periods = self.cand_row.numpy(), self.cand_period.numpy()
        lo_all, hi_all = self.seq_start.numpy(), self.seq_end.numpy() - 1
        desc_db = self.cand_desc.numpy().astype(np.float64)
        median_period = float(np.median(periods))
        allowed = self._nearest_dances(m)
        if len(beats) >= 2:
            anchors = beats[::k]
            beat_period = float(np.median(np.diff(beats)))
        else:
            beat_period = median_period
            anchors = np.arange(0, T, max(1, int(round(k * beat_period))))
        anchors = np.unique(np.concatenate([anchors, [0]]).astype(np.int64))
        bounds = np.concatenate([anchors, [T]])
        blend = max(1, int(round(cfg.retrieval_blend_s * FPS)))
        height_blend = max(blend, int(round(HEIGHT_BLEND_S * FPS)))
        out = np.empty((T, 72))
        recent: list[int] = []
        self.last_pieces = []  # (first frame, end frame, candidate, tempo scale, seam gap cm): diagnostics
        for i in range(len(anchors)):
            p0, p1, anchor = int(bounds[i]), int(bounds[i + 1]), int(anchors[i])
            if p1 <= p0:
                continue
            if anchor == 0 and len(beats) >= 1 and beats[0] > 0:
                anchor = int(beats[0])  # the head before the first beat runs into it
            later = beats[beats >= anchor]
            pq = (later[k] - later[0]) / k if len(later) > k else beat_period
            q_desc = _descriptor(m, anchor, pq, k, 0, T)
            s = periods / pq  # training frames per song frame
            need_lo = rows + (p0 - anchor) * s
            need_hi = rows + (p1 - 1 - anchor) * s
            ok = (need_lo >= lo_all) & (need_hi <= hi_all) & allowed
            if recent:
                ok[np.array(recent)] = False
            if not ok.any():
                ok = (need_lo >= lo_all) & (need_hi <= hi_all) & allowed
            if not ok.any():
                ok = (need_lo >= lo_all) & (need_hi <= hi_all)
            if not ok.any():  # a piece longer than any training dance: read what there is
                ok = np.ones(len(rows), bool)
            idx = np.flatnonzero(ok)
            music_cost = ((desc_db[idx] - q_desc) ** 2).mean(axis=1)
            cost = music_cost / max(float(np.median(music_cost)), 1e-12)
            cost = cost + cfg.retrieval_tempo_weight * np.abs(np.log(s[idx])) / math.log(1.25)
            if p0 > 0:
                prev = out[p0 - 1]
                starts = _lerp_rows(db_motion, need_lo[idx], lo_all[idx], hi_all[idx])
                pose_cost = _turned_pose_distance(prev, starts)
                cost = cost + cfg.retrieval_pose_weight * pose_cost / max(
                    float(np.median(pose_cost)), 1e-12)
            c = int(idx[np.argmin(cost)])
            recent = (recent + [c])[-RECENT:]
            pos = rows[c] + (np.arange(p0, p1) - anchor) * s[c]
            piece = _lerp_rows(db_motion, pos, lo_all[c], hi_all[c])
            piece[:, _VEL] *= s[c]  # per-frame travel grows when the piece is played faster
            seam_cm = 0.0
            if p0 > 0:
                piece = _turn(piece, _yaw(out[p0 - 1]) - _yaw(piece[0]))
                seam_cm = float(_turned_pose_distance(out[p0 - 1], piece[:1])[0])
                gap = np.zeros(72)
                gap[:69] = out[p0 - 1, :69] - piece[0, :69]
                n = min(blend, len(piece))
                w = np.linspace(1.0, 0.0, blend + 1)[:n]
                piece[:n] += w[:, None] * gap
                # The capture's floor level differs between dances by tens of cm: a height gap
                # closed within the pose blend would be a jump; it fades over HEIGHT_BLEND_S.
                n = min(height_blend, len(piece))
                w = np.linspace(1.0, 0.0, height_blend + 1)[:n]
                piece[:n, _HEIGHT] += w * (out[p0 - 1, _HEIGHT] - piece[0, _HEIGHT])
            out[p0:p1] = piece
            self.last_pieces.append((p0, p1, c, float(s[c]), seam_cm))
        return out

    def _nearest_dances(self, m: np.ndarray) -> np.ndarray:
        """Candidates from the ``retrieval_songs`` training dances whose whole song is nearest to
        ``m`` (all candidates when 0 or when there are no more dances than that): [N] bool."""
        n = self.cfg.retrieval_songs
        dance = self.cand_dance.numpy()
        db = self.dance_desc.numpy().astype(np.float64)
        if n <= 0 or n >= len(db):
            return np.ones(len(dance), bool)
        # Each value of the song descriptor counts in units of its spread over the training songs.
        scale = np.maximum(db.std(axis=0), 1e-6)
        dist = (((db - _song_descriptor(m)) / scale) ** 2).sum(axis=1)
        return np.isin(dance, np.argsort(dist, kind="stable")[:n])


def _song_descriptor(music: np.ndarray) -> np.ndarray:
    """What a whole song sounds like: mean and standard deviation of its normalised music
    features over time, ``[2 * Dm]``. In this data it tells the dance style from the song
    (nearest training song of the same style for 25 of 26 training songs, leave one out)."""
    m = np.asarray(music, dtype=np.float64)
    return np.concatenate([m.mean(axis=0), m.std(axis=0)])


def _descriptor(music: np.ndarray, row: float, period: float, k: int, lo: int, hi: int) -> np.ndarray:
    """Music at ``POINTS_PER_BEAT * k`` points over ``k`` beats from ``row`` (rows clipped to
    ``[lo, hi)``), flattened: ``[POINTS_PER_BEAT * k * Dm]``."""
    n = POINTS_PER_BEAT * k
    pos = row + np.arange(n) * (k * period / n)
    return _lerp_rows(music, pos, lo, hi - 1).reshape(-1)


def _lerp_rows(x: np.ndarray, pos, lo, hi) -> np.ndarray:
    """Rows of ``x`` at fractional positions, clipped to ``[lo, hi]`` (scalars or per position)."""
    pos = np.clip(np.asarray(pos, dtype=np.float64), lo, hi)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, np.maximum(hi, i0)).astype(np.int64)
    f = (pos - i0)[..., None]
    return x[i0] * (1.0 - f) + x[i1] * f


def _yaw(frame: np.ndarray) -> float:
    """Heading of the hip line (hip a -> hip b) of one motion feature frame, radians."""
    return math.atan2(frame[2 * N_JOINTS + _HIP_B] - frame[2 * N_JOINTS + _HIP_A],
                      frame[_HIP_B] - frame[_HIP_A])


def _turn(piece: np.ndarray, angle: float) -> np.ndarray:
    """Rotate motion features about the vertical axis by ``angle`` radians (joints and travel)."""
    c, s = math.cos(angle), math.sin(angle)
    out = piece.copy()
    x, z = piece[:, _X], piece[:, _Z]
    out[:, _X], out[:, _Z] = c * x - s * z, s * x + c * z
    vx, vz = piece[:, 69], piece[:, 70]
    out[:, 69], out[:, 70] = c * vx - s * vz, s * vx + c * vz
    return out


def _turned_pose_distance(prev: np.ndarray, cands: np.ndarray) -> np.ndarray:
    """Mean joint distance (cm) from ``prev`` [72] to each of ``cands`` [N, 72] after turning
    each candidate to face like ``prev``."""
    yaw_p = _yaw(prev)
    ang = yaw_p - np.arctan2(cands[:, 2 * N_JOINTS + _HIP_B] - cands[:, 2 * N_JOINTS + _HIP_A],
                             cands[:, _HIP_B] - cands[:, _HIP_A])
    c, s = np.cos(ang)[:, None], np.sin(ang)[:, None]
    x, z = cands[:, _X], cands[:, _Z]
    dx = c * x - s * z - prev[_X]
    dz = s * x + c * z - prev[_Z]
    dy = cands[:, _Y] - prev[_Y]
    return np.sqrt(dx ** 2 + dy ** 2 + dz ** 2).mean(axis=1)
