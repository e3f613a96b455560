"""``melodance ui``: the page's API over HTTP, and the page itself in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = os.environ.get("MELODANCE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required"]
SONG = ("DANCE_C_2", 10.0, 4.0)  # sequence, start s, duration s


@pytest.fixture(scope="module")
def ui_url(tiny_bundle, real_data, tmp_path_factory):
    """``melodance ui`` on a free loopback port, as a separate process; its base URL."""
    env = {**os.environ, "MLFLOW_TRACKING_URI":
           f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "melodance.cli", "ui", "--port", "0", "--model", str(tiny_bundle),
         "--data", str(real_data)], stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stderr.readline()
    if "serving on http://" not in line:
        proc.kill()
        pytest.fail(f"melodance ui did not start: {line}{proc.stderr.read()}")
    url = line.split("serving on ", 1)[1].split()[0]
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stderr.close()


def _call(url: str, body: dict | bytes | None = None, raw: bool = False
          ) -> tuple[int, dict | bytes]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            status, data, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        status, data, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
    return status, json.loads(data) if ctype.startswith("application/json") and not raw else data


def _wait_job(base: str, job_id: str, timeout_s: float = 180) -> dict:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        _, s = _call(f"{base}api/jobs/{job_id}")
        if s["state"] in ("done", "error"):
            return s
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {s['state']} ({s['step']}) after {timeout_s} s")


# ----------------------------------------------------------------------------- API, no browser

def test_api_errors_in_words_and_server_stays_up(ui_url):
    assert _call(ui_url + "api/dance", b"{not json")[1]["error"].startswith("request is not JSON")
    status, body = _call(ui_url + "api/dance", {"filename": "x.mp3"})
    assert status == 400 and "no song" in body["error"]
    status, body = _call(ui_url + "api/dance", {"audio_base64": "AAAA", "start_s": "-3"})
    assert status == 400 and "start must be >= 0" in body["error"]
    for bad in ("-1", "1.5", "abc", 2**31, True):
        status, body = _call(ui_url + "api/dance", {"audio_base64": "AAAA", "seed": bad})
        assert status == 400 and body["error"].startswith("seed:"), body
    status, body = _call(ui_url + "api/compare", {"sequence": "DANCE_X_9"})
    assert status == 400 and "no sequence 'DANCE_X_9'" in body["error"]
    assert _call(ui_url + "api/jobs/nope")[0] == 404
    # Not audio: predict's own message comes back through the job.
    text = b"this is not a song\n" * 200
    import base64

    status, body = _call(ui_url + "api/dance",
                         {"audio_base64": base64.b64encode(text).decode(), "filename": "x.mp3"})
    assert status == 202
    s = _wait_job(ui_url, body["id"])
    assert s["state"] == "error" and "not a decodable song" in s["error"]
    status, models = _call(ui_url + "api/models")
    assert status == 200 and models["choices"][0] == {"id": "default", "label": "model.pt (default)"}
    _, seqs = _call(ui_url + "api/sequences")
    assert {"name": "DANCE_C_2", "style": "C"} in [
        {k: s[k] for k in ("name", "style")} for s in seqs["sequences"]]


def test_api_dance_audio_span_and_checked_downloads(ui_url, real_data, tmp_path):
    """The span's audio is the song's, the MP4 passed the output checks, the motion is the
    dataset's layout."""
    import base64

    import imageio_ffmpeg
    import soundfile as sf

    from melodance.data.layout import read_skeletons
    from melodance.render.bvh import read_bvh
    from melodance.render.video import video_facts

    name, start, dur = SONG
    song = real_data / name / "audio.mp3"
    status, body = _call(ui_url + "api/dance", {
        "audio_base64": base64.b64encode(song.read_bytes()).decode(), "filename": "audio.mp3",
        "start_s": start, "duration_s": dur})
    assert status == 202, body
    s = _wait_job(ui_url, body["id"])
    assert s["state"] == "done", s["error"]
    res = s["result"]
    n = int(dur * 25)
    assert res["frames"] == n and np.asarray(res["panels"]["generated"]).shape == (n, 27, 3)

    status, wav = _call(ui_url + res["audio_url"].lstrip("/"))
    (tmp_path / "span.wav").write_bytes(wav)
    y, sr = sf.read(tmp_path / "span.wav", dtype="float32")
    assert y.shape == (int(dur * sr), 2)
    # The same seconds of the song decoded by ffmpeg, independently of our code.
    ref = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-ss", str(start),
                          "-t", str(dur), "-i", str(song), "-f", "f32le", "-ac", "1", "-ar",
                          str(sr), "-"], capture_output=True, check=True).stdout
    ref = np.frombuffer(ref, np.float32)
    m = min(len(ref), len(y)) - 2000
    # Allow the decoders' few-sample offset: best correlation within +-1000 samples.
    best = max(np.corrcoef(y[1000:1000 + m - 1000, :].mean(1), ref[1000 + k:1000 + k + m - 1000])[0, 1]
               for k in range(-1000, 1001, 10) if 0 <= 1000 + k and 1000 + k + m - 1000 <= len(ref))
    assert best > 0.9

    for kind in ("mp4", "json", "bvh"):
        status, data = _call(ui_url + res["downloads"][kind].lstrip("/"), raw=True)
        assert status == 200, data
        (tmp_path / f"m.{kind}").write_bytes(data)
    facts = video_facts(tmp_path / "m.mp4")
    assert facts["frames"] == n and facts["fps"] == pytest.approx(25.0)
    assert abs(facts["audio_minus_video_s"]) <= 1 / 25
    joints, root = read_skeletons(tmp_path / "m.json")
    world = np.asarray(res["panels"]["generated"])[:, :23]
    np.testing.assert_allclose(joints + root[:, None], world, atol=0.06)
    assert len(read_bvh(tmp_path / "m.bvh").motion) == n


def test_no_champion_yet_is_an_error_in_words(mlflow_store, tmp_path):
    from melodance.ui.app import UiApp

    app = UiApp(model=None, data_dir=None, workdir=tmp_path / "jobs")
    try:
        job = app.submit_dance({"audio_base64": "AAAA", "filename": "song.mp3"})
        t0 = time.monotonic()
        while job.state not in ("done", "error") and time.monotonic() - t0 < 60:
            time.sleep(0.1)
        assert job.state == "error" and "no champion registered yet" in job.error
        assert "Traceback" not in job.error
    finally:
        app.close()


def test_sequence_metrics_of_the_ground_truth_against_itself(real_data):
    from melodance.data.layout import read_sequence
    from melodance.ui.app import sequence_metrics

    seq = read_sequence(real_data / "DANCE_C_2")
    j, r = seq.joints[:250], seq.root[:250]
    beats = np.arange(0.5, 10, 0.6)
    m = sequence_metrics(j, r, j, r, beats, 25.0)
    assert m["kinetic_term"] == pytest.approx(0.0, abs=1e-9)
    assert m["metric_loss_per_frame_cm"] == pytest.approx(0.0, abs=1e-6)
    assert m["generated"] == m["ground_truth"]
    assert 0 <= m["ground_truth"]["bas_music"] <= 1 and m["ground_truth"]["jitter"] > 0
    # Standing still in the first pose: no sliding, far from the dance's kinetics.
    still_j, still_r = (np.broadcast_to(x[:1], x.shape).copy() for x in (j, r))
    m = sequence_metrics(still_j, still_r, j, r, beats, 25.0)
    assert m["kinetic_term"] > 1.0 and m["generated"]["foot_sliding_cm_s"] == pytest.approx(0.0)
    assert m["metric_loss_per_frame_cm"] > 1.0


# ----------------------------------------------------------------------------- the page

@pytest.fixture(scope="module")
def browser():
    strict = os.environ.get("CI") == "true" or os.environ.get("MELODANCE_REQUIRE_SHARED") == "1"
    why = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        why = "playwright is not installed (pip install -e '.[ui]')"
    if why is None and not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        why = f"{CHROMIUM} not found (apt-get install chromium chromium-driver)"
    if why:
        if strict:
            pytest.fail(why + " (CI=true or MELODANCE_REQUIRE_SHARED=1)")
        pytest.skip(why)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _canvas_png(page, selector: str) -> np.ndarray:
    import cv2

    png = page.locator(selector).screenshot()
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def _changed_px(a: np.ndarray, b: np.ndarray) -> int:
    return int((np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 40).sum())


def test_page_song_to_dance_in_sync_and_errors(browser, ui_url, real_data, tmp_path):
    name, start, dur = SONG
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(ui_url)
    page.wait_for_function("document.querySelector('#model').options.length > 0")

    # A malformed file: the page says so in words, and the server keeps working.
    bad = tmp_path / "notes.mp3"
    bad.write_text("this is not a song\n" * 200)
    page.set_input_files("#song", str(bad))
    page.click("#go")
    page.wait_for_selector("body[data-state=error]", timeout=60_000)
    assert "not a decodable song" in page.inner_text("#error")

    page.set_input_files("#song", str(real_data / name / "audio.mp3"))
    page.fill("#start", str(start))
    page.fill("#duration", str(dur))
    page.click("#go")
    page.wait_for_selector("#progress:not([hidden])", timeout=10_000)
    page.wait_for_selector("body[data-state=ready]", timeout=180_000)
    assert page.is_hidden("#error")
    audio = page.evaluate("""() => new Promise((ok) => { const a = document.querySelector('#audio');
        const done = () => ok({duration: a.duration, src: a.src});
        a.readyState >= 1 ? done() : a.addEventListener('loadedmetadata', done); })""")
    assert audio["duration"] == pytest.approx(dur, abs=0.05)  # the song's span, not the song
    first = _canvas_png(page, "#canvas-generated")
    page.click("#play")
    page.wait_for_function("document.querySelector('#audio').currentTime > 0.5", timeout=20_000)
    a = _canvas_png(page, "#canvas-generated")
    t_a = page.evaluate("document.querySelector('#audio').currentTime")
    page.wait_for_function(f"document.querySelector('#audio').currentTime > {t_a + 1.0}",
                           timeout=20_000)
    b = _canvas_png(page, "#canvas-generated")
    assert _changed_px(a, b) > 200, "the skeleton did not move while the song played"
    assert _changed_px(first, a) > 200
    assert "frame" in page.inner_text("#frame")
    page.select_option("#view", "side")
    page.wait_for_timeout(200)
    assert page.evaluate("document.querySelector('#audio').paused") is False

    # Compare: ground truth beside the generated dance, with the sequence's metrics.
    page.click("#tab-compare")
    page.select_option("#sequence", name)
    page.fill("#cmp-duration", "4")
    page.click("#compare-go")
    page.wait_for_selector("body[data-state=ready] #canvas-ground_truth", timeout=180_000)
    assert "BAS" in page.inner_text("#metrics") and page.is_visible("#canvas-generated")
    assert not errors, errors
    page.close()
