"""What the browser page asks for, independent of HTTP: dances, comparisons, downloads.

A request from the page becomes a :class:`Job` run on one worker thread (a
batch of one is sequential work: two at once on a small machine only slow
each other down); at most ``MAX_PENDING`` jobs wait or run at once, more are
refused (:class:`Busy`, HTTP 429). The page polls the job for its step and elapsed time and,
when it is done, fetches the motion, the song's span as WAV and, on demand,
the MP4, the motion JSON and the BVH.

Generation goes through :func:`melodance.serve.predict.predict`, the code
behind ``/invocations``: uploaded songs as ``audio_base64``, a dataset
sequence as its ``music`` + ``temporal`` features. Every MP4 goes through
the Great Expectations output suite (:func:`melodance.render.checks.ge_check`)
before it is handed out.

Models are chosen by id among the ones this page lists itself (the model given
on the command line, the registry's versions and aliases): a request never
names a path or a URI, so nothing a browser sends decides what is loaded.
"""

from __future__ import annotations

import base64
import binascii
import math
import queue
import re
import shutil
import tempfile
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from melodance import FPS
from melodance.errors import InputError

if TYPE_CHECKING:
    from melodance.evaluate.config import EvaluateConfig

KEEP_JOBS = 8
"""Finished jobs kept (with their files) before the oldest are deleted."""
COMPARE_DEFAULT_S = 20.0
"""Default span of a Compare, seconds (a whole sequence lasts a minute or more)."""
KIN_CLIP_S = 2.0
"""Clip length for the per-sequence kinetic-feature term, seconds (see :func:`sequence_metrics`)."""
MAX_PENDING = 4
"""Jobs queued or running at once; one more is refused with :class:`Busy` (each holds a song)."""
MODEL_CACHE = 2
"""Loaded models kept in memory (least recently used dropped first)."""
MAX_START_S = 24 * 3600.0
"""Latest start of a span, seconds (a song of the largest upload lasts far less)."""
DEFAULT_MODEL = "default"
"""The model id of the default model (``--model``, else the registry's champion)."""


class UiError(InputError):
    """An error the page shows to the user as it is (bad input, no such sequence, no model)."""


class Busy(UiError):
    """Too many jobs waiting: try again later (HTTP 429)."""


_ABS_PATH = re.compile(r"(?<![\w.:/~-])(?:/[^\s/'\"`:,;()\[\]{}]+)+/?")


def redact(message: str) -> str:
    """``message`` with every absolute path cut to its last part: answers never show where
    the server keeps its files (nor, by the wording, whether some path exists)."""
    def last(m: re.Match) -> str:
        parts = [p for p in m.group(0).split("/") if p]
        if len(parts) < 2 or parts[0] in ("api", "static"):  # the page's own addresses
            return m.group(0)
        return f"…/{parts[-1]}"

    return _ABS_PATH.sub(last, message)


@dataclass
class Job:
    """One dance or comparison; ``state`` is queued, running, done or error."""

    id: str
    kind: str
    folder: Path
    state: str = "queued"
    step: str = "waiting for the worker"
    error: str | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    result: dict | None = None
    # Generated (and for a comparison, ground truth) motion: root-relative joints and root, cm.
    motion: dict = field(default_factory=dict)
    audio_path: Path | None = None
    start_s: float = 0.0
    label: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def status(self) -> dict:
        end = self.finished or time.monotonic()
        return {"id": self.id, "kind": self.kind, "state": self.state, "step": self.step,
                "error": self.error, "elapsed_s": round(end - self.started, 2),
                "result": self.result if self.state == "done" else None}


def skeleton_points(joints: np.ndarray, root: np.ndarray) -> np.ndarray:
    """World points to draw: the 23 joints plus the virtual midpoints the bones use.

    Args:
        joints: [T, 23, 3] root-relative, cm.
        root: [T, 3] world, cm.

    Returns:
        [T, 27, 3] float32 world cm (see :data:`melodance.data.skeleton.BONES`).
    """
    from melodance.data.skeleton import with_virtual_points

    world = np.asarray(joints, np.float32) + np.asarray(root, np.float32)[:, None, :]
    return with_virtual_points(world).astype(np.float32)


def bone_table() -> list[list]:
    """The bones to draw: ``[i, j, side]`` over :func:`skeleton_points` (side a, b or centre)."""
    from melodance.data.skeleton import BONES, bone_side

    return [[i, j, bone_side((i, j))] for i, j in BONES]


def motion_payload(joints: np.ndarray, root: np.ndarray) -> list:
    """[T][27][3] world cm rounded to 0.1 cm, as nested lists for JSON."""
    return np.round(skeleton_points(joints, root), 1).tolist()


def sequence_metrics(gen_joints: np.ndarray, gen_root: np.ndarray, gt_joints: np.ndarray,
                     gt_root: np.ndarray, music_beats_s: np.ndarray, fps: float,
                     cfg: EvaluateConfig | None = None) -> dict:
    """The metrics of one generated dance beside its ground truth (same music, same frames).

    Args:
        gen_joints, gt_joints: [T, 23, 3] root-relative joints, cm.
        gen_root, gt_root: [T, 3] world root, cm.
        music_beats_s: beat times of the music span, seconds from frame 0.
        fps: frames per second.
        cfg: the beat alignment settings (default: the ``evaluate`` section's defaults).

    Returns:
        ``{"generated": {...}, "ground_truth": {...}, "kinetic_term": float}``: per dance
        ``bas_music``, ``bas_motion`` (beat alignment scores, 0..1), the foot metrics of
        :func:`melodance.evaluate.metrics.foot_skating` and ``jitter`` (cm/s^3);
        ``kinetic_term`` is this sequence's FID_k mean term: the squared distance between
        the mean kinetic features of generated and ground-truth ``KIN_CLIP_S`` clips, in
        ground-truth standard deviations (one sequence has too few clips for the
        covariance term). ``metric_loss_per_frame_cm``: the paper's metric loss per frame
        (pose-vector distance of the root-relative joints, cm).
    """
    from melodance.evaluate import metrics as M
    from melodance.evaluate.config import EvaluateConfig
    from melodance.evaluate.scoring import beat_alignment, clips

    cfg = cfg or EvaluateConfig()
    gen_world = gen_joints + gen_root[:, None]
    gt_world = gt_joints + gt_root[:, None]
    out: dict = {}
    for key, world in (("generated", gen_world), ("ground_truth", gt_world)):
        bas_music, bas_motion = beat_alignment(music_beats_s, world, fps, cfg)
        m = {"bas_music": bas_music, "bas_motion": bas_motion,
             **M.foot_skating(world, fps), "jitter": M.jitter(world, fps)}
        out[key] = {k: _finite(v) for k, v in m.items()}
    clip = int(round(KIN_CLIP_S * fps))
    gen_k = np.stack([M.kinetic_features(c, fps) for c in clips(gen_world, clip)])
    gt_k = np.stack([M.kinetic_features(c, fps) for c in clips(gt_world, clip)])
    g, r = M.normalize_by_reference(gen_k, gt_k)
    out["kinetic_term"] = _finite(float(np.sum((g.mean(0) - r.mean(0)) ** 2)))
    out["metric_loss_per_frame_cm"] = _finite(M.metric_loss_per_frame(gen_joints, gt_joints))
    return out


def _finite(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


class UiApp:
    """The page's back end: model cache, dataset listing and jobs.

    Args:
        model: default model (path or MLflow URI; None: the registry's champion). Trusted:
            it comes from the command line, never from a request.
        data_dir: the dataset the Compare view picks sequences from (None: no Compare).
        workdir: where job files go (None: a temporary folder removed by :meth:`close`).
        max_pending: jobs queued or running at once (see ``MAX_PENDING``).
    """

    def __init__(self, model: str | None = None, data_dir: str | Path | None = None,
                 workdir: str | Path | None = None, max_pending: int = MAX_PENDING):
        self.default_model = model
        self.data_dir = Path(data_dir) if data_dir else None
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="melodance-ui-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.jobs: dict[str, Job] = {}
        self._bundles: OrderedDict[tuple, tuple] = OrderedDict()
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()
        # A bounded queue and one daemon worker: a full queue refuses (429) instead of
        # piling up songs in memory, and a stopping server does not wait for a dance.
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, max_pending))
        self.max_pending = max(1, max_pending)
        self._pending = threading.BoundedSemaphore(self.max_pending)
        self._closed = threading.Event()
        self._worker = threading.Thread(target=self._work, name="melodance-ui-worker",
                                        daemon=True)
        self._worker.start()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            for j in self.jobs.values():
                if j.state == "queued":
                    j.state, j.error = "error", "the server stopped"
        try:
            self._queue.put_nowait(None)  # wake the worker so it ends
        except queue.Full:
            pass  # it ends at its next item, which sees _closed
        if self._own_workdir:
            # The worker may still be writing a file (it cannot be interrupted): try again
            # when one appeared while the folder was being removed.
            for _ in range(5):
                shutil.rmtree(self.workdir, ignore_errors=True)
                if not self.workdir.exists():
                    break
                time.sleep(0.05)

    def _work(self) -> None:
        while not self._closed.is_set():
            item = self._queue.get()
            if item is None or self._closed.is_set():
                return
            try:
                self._run(*item)
            finally:
                self._pending.release()

    def _submit(self, job: Job, fn, *args) -> None:
        self._queue.put_nowait((job, fn, *args))  # never full: _pending admits at most maxsize

    # ------------------------------------------------------------------ listings

    def models(self) -> dict:
        """The models a request may choose, by ``id``: the default (``--model``, else the
        registry's champion), then the registry's aliases (``@name``) and versions (``vN``);
        only the default when the registry is unreachable."""
        choices = [{"id": DEFAULT_MODEL, "label": f"{self._default_label()} (default)"}]
        note = None
        try:
            versions = self._registry()
        except Exception as e:  # an absent or broken registry must not break the page
            versions = []
            note = redact(f"model registry not readable: {str(e).splitlines()[0][:200]}")
        for v in reversed(versions):
            for a in v["aliases"]:
                choices.append({"id": f"@{a}", "label": f"{a} (version {v['version']})"})
        for v in reversed(versions):
            aliases = f" ({', '.join(v['aliases'])})" if v["aliases"] else ""
            what = " · ".join(t for t in (v["tags"].get("variant"), v["tags"].get("dvc_exp")) if t)
            choices.append({"id": f"v{v['version']}",
                            "label": f"version {v['version']}{aliases}" + (f" · {what}" if what else ""),
                            "description": v.get("description", "")})
        return {"default": DEFAULT_MODEL, "choices": choices, "note": note}

    def _default_label(self) -> str:
        from melodance.serve.registry import CHAMPION_URI

        if self.default_model is None:
            return CHAMPION_URI.removeprefix("models:/")
        m = str(self.default_model)
        return m.removeprefix("models:/") if ":/" in m else Path(m).name

    @staticmethod
    def _registry() -> list[dict]:
        """The registered versions with their aliases (a version search leaves them out)."""
        from melodance.serve import registry

        versions = registry.model_versions()
        if versions:
            aliases = dict(registry.client().get_registered_model(registry.REGISTERED_MODEL)
                           .aliases or {})
            for v in versions:
                v["aliases"] = sorted({*v["aliases"],
                                       *(a for a, n in aliases.items() if str(n) == v["version"])})
        return versions

    def resolve_model(self, model_id) -> tuple[tuple, str | None]:
        """A request's ``model`` (an id listed by :meth:`models`; None or "" = the default)
        -> (cache key, what :func:`~melodance.serve.registry.load_bundle` loads).

        Anything else is refused: a request never names a file or a URI.
        """
        from melodance.serve import registry

        if model_id is None or model_id == "" or model_id == DEFAULT_MODEL:
            if self.default_model is not None:
                return ("default",), str(self.default_model)
            try:
                version = registry.champion_version()
            except Exception:  # registry unreachable: load_bundle says so in words
                version = None
            return ("champion", version), None
        if not isinstance(model_id, str) or not re.fullmatch(r"v\d{1,9}|@[A-Za-z0-9_-]{1,64}",
                                                              model_id):
            raise UiError("model: not a model id of this page (choose one listed by "
                          "/api/models)")
        try:
            versions = self._registry()
        except Exception as e:
            raise UiError("model: the model registry is not readable") from e
        for v in versions:
            if model_id == f"v{v['version']}":
                uri = f"models:/{registry.REGISTERED_MODEL}/{v['version']}"
                return (uri,), uri
            if model_id.startswith("@") and model_id[1:] in v["aliases"]:
                return ((f"models:/{registry.REGISTERED_MODEL}{model_id}", v["version"]),
                        f"models:/{registry.REGISTERED_MODEL}{model_id}")
        raise UiError(f"model: no model {model_id} in the registry (choose one listed by "
                      "/api/models)")

    def sequences(self) -> list[dict]:
        """The dataset's sequences: name, style and dance length in seconds."""
        from melodance.data.layout import LayoutError, read_config, sequence_dirs

        if self.data_dir is None:
            return []
        try:
            dirs = sequence_dirs(self.data_dir)
        except LayoutError:
            return []
        out = []
        for d in dirs:
            try:
                s, e = read_config(d / "config.json")
            except (LayoutError, OSError):
                continue
            out.append({"name": d.name, "style": d.name.split("_")[1],
                        "seconds": round((e - s) / FPS, 1)})
        return out

    def bundle(self, model_id: str | None):
        """The loaded model a request chose (see :meth:`resolve_model`) and its label; the
        last ``MODEL_CACHE`` models stay loaded."""
        from melodance.errors import UserError
        from melodance.serve.registry import load_bundle

        key, source = self.resolve_model(model_id)
        with self._model_lock:
            if key in self._bundles:
                self._bundles.move_to_end(key)
                return self._bundles[key]
            try:
                loaded = load_bundle(source)
            except (UserError, ValueError, OSError) as e:
                raise UiError(redact(str(e))) from e
            self._bundles[key] = loaded
            while len(self._bundles) > MODEL_CACHE:
                self._bundles.popitem(last=False)
            return loaded

    # ------------------------------------------------------------------ jobs

    def job(self, job_id: str) -> Job:
        with self._lock:
            if job_id not in self.jobs:
                raise KeyError(job_id)
            return self.jobs[job_id]

    def _new_job(self, kind: str) -> Job:
        """A new job folder; the caller holds one ``_pending`` slot."""
        job_id = uuid.uuid4().hex[:12]
        folder = self.workdir / job_id
        folder.mkdir()
        job = Job(job_id, kind, folder)
        with self._lock:
            self.jobs[job_id] = job
            old = sorted((j for j in self.jobs.values() if j.state in ("done", "error")),
                         key=lambda j: j.started)
            for j in old[:max(0, len(old) - KEEP_JOBS)]:
                del self.jobs[j.id]
                shutil.rmtree(j.folder, ignore_errors=True)
        return job

    def _run(self, job: Job, fn, *args) -> None:
        job.state, job.started = "running", time.monotonic()
        try:
            job.result = fn(job, *args)
            job.state, job.step = "done", "done"
        except (ValueError, FileNotFoundError) as e:  # RequestError, UiError, LayoutError
            job.state, job.error = "error", redact(str(e))
        except Exception as e:  # the server stays up; the page says what happened
            traceback.print_exc()
            job.state, job.error = "error", f"internal error ({type(e).__name__}); see the server's log"
        finally:
            job.finished = time.monotonic()

    def _admit(self, kind: str) -> Job:
        if self._closed.is_set():
            raise UiError("the server is stopping")
        if not self._pending.acquire(blocking=False):
            raise Busy(f"busy: {self.max_pending} dances are already waiting or running; try again "
                       "in a moment")
        try:
            return self._new_job(kind)
        except BaseException:
            self._pending.release()
            raise

    def submit_dance(self, body: dict) -> Job:
        """Start a dance for an uploaded song: ``audio_base64`` (+ ``filename``, ``start_s``,
        ``duration_s``, ``seed``, ``model``: a model id of :meth:`models`)."""
        from melodance.serve.predict import MAX_AUDIO_BYTES, _sniff_suffix

        if not isinstance(body.get("audio_base64"), str) or not body["audio_base64"]:
            raise UiError("no song: choose or drop an audio file (mp3, wav, flac, ogg)")
        start_s, duration_s = _span(body)
        seed = _seed(body)
        self.resolve_model(body.get("model"))  # an unknown id is refused now, not in the job
        if len(body["audio_base64"]) > MAX_AUDIO_BYTES * 4 // 3 + 4:
            raise UiError(f"song too large: the limit is {MAX_AUDIO_BYTES // 2**20} MiB")
        try:
            data = base64.b64decode(body["audio_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise UiError("audio_base64: not valid base64") from None
        name = Path(str(body.get("filename") or "song")[:200]).name or "song"
        job = self._admit("dance")
        # The song waits on disk, in the job's folder, not in memory.
        job.audio_path = job.folder / f"song{_sniff_suffix(data)}"
        job.audio_path.write_bytes(data)
        del data
        self._submit(job, self._dance, body.get("model"), name, start_s, duration_s, seed)
        return job

    def submit_compare(self, body: dict) -> Job:
        """Start a comparison on a dataset sequence: ``sequence`` (+ ``start_s``, ``duration_s``,
        ``seed``, ``model``)."""
        if self.data_dir is None:
            raise UiError("no dataset configured: start `melodance ui --data FOLDER`")
        name = body.get("sequence")
        if not isinstance(name, str) or name not in {s["name"] for s in self.sequences()}:
            shown = repr(name)[:60] if isinstance(name, str) else "none"
            raise UiError(f"no sequence {shown} in the dataset (see /api/sequences)")
        start_s, duration_s = _span(body)
        seed = _seed(body)
        self.resolve_model(body.get("model"))
        job = self._admit("compare")
        self._submit(job, self._compare, name, body.get("model"), start_s,
                     duration_s or COMPARE_DEFAULT_S, seed)
        return job

    def _dance(self, job: Job, model_id: str | None, name: str, start_s: float,
               duration_s: float | None, seed: int = 0) -> dict:
        from melodance.serve.predict import predict

        job.step = "loading the model"
        bundle, label = self.bundle(model_id)
        job.step = "extracting the song's features and generating the dance"
        req = {"audio_base64": base64.b64encode(job.audio_path.read_bytes()).decode("ascii"),
               "start_s": start_s, "seed": seed}
        if duration_s is not None:
            req["duration_s"] = duration_s
        with _one_thread():
            res = predict(bundle, req)
        del req
        job.step = "preparing the song's span"
        _write_span_wav(job.folder / "audio.wav", job.audio_path, start_s, res["frames"] / res["fps"])
        job.motion = {"generated": (res["joints"], res["root"])}
        job.start_s, job.label = start_s, label
        return {"fps": res["fps"], "frames": res["frames"], "start_s": start_s, "seed": seed,
                "seconds": res["frames"] / res["fps"], "model": label, "song": name,
                "panels": {"generated": motion_payload(res["joints"], res["root"])},
                **_links(job)}

    def _compare(self, job: Job, name: str, model: str | None, start_s: float,
                 duration_s: float, seed: int = 0) -> dict:
        from melodance.data.layout import read_sequence
        from melodance.features.music import song_features
        from melodance.serve.predict import predict

        job.step = "loading the model"
        bundle, label = self.bundle(model)
        job.step = f"reading {name}"
        seq = read_sequence(self.data_dir / name)
        fps = seq.fps
        first = int(round(start_s * fps))
        if first >= seq.n_frames - fps:
            raise UiError(f"{name}: start {start_s:g} s is past its dance "
                          f"({seq.n_frames / fps:.1f} s)")
        n = min(seq.n_frames - first, int(round(duration_s * fps)))
        gt_j, gt_r = seq.joints[first:first + n], seq.root[first:first + n]
        song_start = seq.start_s + first / fps
        job.step = "extracting the music features"
        cfg = bundle.feature_settings
        feats = song_features(seq.audio_path, song_start, n, cfg)
        job.step = "generating the dance"
        # The sequence's root start, so both dancers begin on the same spot of the floor.
        req = {"music": feats["music"], "temporal": feats["temporal"], "root_start": gt_r[0],
               "seed": seed}
        with _one_thread():
            res = predict(bundle, req)
        job.step = "scoring"
        beats = np.flatnonzero(feats["temporal"][:, 1] > 0.5) / fps
        metrics = sequence_metrics(res["joints"], res["root"], gt_j, gt_r, beats, fps)
        job.step = "preparing the song's span"
        job.audio_path = seq.audio_path
        _write_span_wav(job.folder / "audio.wav", seq.audio_path, song_start, n / fps)
        job.motion = {"ground_truth": (gt_j, gt_r), "generated": (res["joints"], res["root"])}
        job.start_s, job.label = song_start, label
        return {"fps": fps, "frames": n, "start_s": start_s, "song_start_s": song_start, "seed": seed,
                "seconds": n / fps, "model": label, "song": name, "metrics": metrics,
                "panels": {"ground_truth": motion_payload(gt_j, gt_r),
                           "generated": motion_payload(res["joints"], res["root"])},
                **_links(job)}

    # ------------------------------------------------------------------ files

    def file(self, job_id: str, name: str, write: bool = True) -> Path:
        """A job's file for download, written on first request (MP4 checked by the GE suite);
        with ``write=False`` (a HEAD request) only a file already written, else KeyError."""
        job = self.job(job_id)
        if job.state != "done":
            raise UiError(f"job {job_id} is {job.state}")
        with job.lock:
            path = job.folder / name
            if path.is_file():
                return path
            if not write:
                raise KeyError(f"{name} (not written yet: a GET writes it)")
            if name == "audio.wav":
                raise UiError("no audio for this job")
            if name == "dance.mp4":
                self._write_mp4(job, path)
            elif name in ("motion.json", "motion.bvh"):
                from melodance.render.export import write_motion

                joints, root = job.motion["generated"]
                write_motion(path, joints, root, job.result["fps"])
            else:
                raise KeyError(name)
            return path

    def _write_mp4(self, job: Job, path: Path) -> None:
        from melodance.render.checks import ge_check
        from melodance.render.draw import SideBySide, SkeletonRenderer, View
        from melodance.render.video import song_span, write_video

        fps, n = job.result["fps"], job.result["frames"]
        caption = f"{job.result['song']} | {job.label}"
        panels = [SkeletonRenderer(*job.motion[k], fps, View(), caption=c)
                  for k, c in (("ground_truth", f"{job.result['song']} | ground truth"),
                               ("generated", caption)) if k in job.motion]
        frames = panels[0] if len(panels) == 1 else SideBySide(panels)
        audio = song_span(job.audio_path, job.start_s, n / fps)
        write_video(path, frames, fps, audio, check=ge_check(n, fps, name=path.name))


def _links(job: Job) -> dict:
    base = f"/api/jobs/{job.id}"
    return {"audio_url": f"{base}/audio.wav", "bones": bone_table(),
            "downloads": {"mp4": f"{base}/dance.mp4", "json": f"{base}/motion.json",
                          "bvh": f"{base}/motion.bvh"}}


def _span(body: dict) -> tuple[float, float | None]:
    """(start_s rounded to a frame, duration_s or None) from the page's form."""
    from melodance.serve.predict import MAX_DURATION_S
    from melodance.values import finite_number

    def number(key):
        v = body.get(key)
        if v is None or v == "":
            return None
        try:
            return finite_number(v, key.removesuffix("_s"), "number of seconds")
        except InputError as e:
            raise UiError(str(e)) from None

    start = number("start_s") or 0.0
    duration = number("duration_s")
    if start < 0:
        raise UiError(f"start must be >= 0 s, got {start:g}")
    if start > MAX_START_S:
        raise UiError(f"start must be at most {MAX_START_S:g} s, got {start:g}")
    if duration is not None and not 1 <= duration <= MAX_DURATION_S:
        raise UiError(f"duration must be between 1 and {MAX_DURATION_S:g} s, got {duration:g}")
    return round(start * FPS) / FPS, duration


def _seed(body: dict) -> int:
    """The page's sampling seed (default 0): an integer in [0, MAX_SEED]."""
    from melodance.models.families import check_seed

    v = body.get("seed")
    if v is None or v == "":
        return 0
    if isinstance(v, str):
        text = v.strip()
        if not re.fullmatch(r"[0-9]{1,10}", text):
            raise UiError(f"seed: expected a whole number >= 0, got {v[:20]!r}")
        v = int(text)
    try:
        return check_seed(v, "seed")
    except ValueError as e:
        raise UiError(str(e)) from None


def _write_span_wav(path: Path, song: Path, start_s: float, duration_s: float) -> None:
    """The song's span as 16-bit WAV: the page's <audio> plays exactly the danced frames."""
    import soundfile as sf

    from melodance.io import atomic_path
    from melodance.render.video import AUDIO_SR, song_span

    with atomic_path(path, ".wav") as tmp:
        sf.write(tmp, song_span(song, start_s, duration_s), AUDIO_SR, subtype="PCM_16",
                 format="WAV")


class _one_thread:
    """Torch on one thread while generating: a batch of one runs the LSTM step by step, and
    more threads only wait for each other (see :func:`melodance.render.dance.generate`)."""

    def __enter__(self):
        import torch

        self.prev = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self.prev)

