"""``melodance ui``: the browser page (song in, dance out; Compare on the dataset)."""

from __future__ import annotations

import argparse

from melodance.errors import InputError


def register(sub) -> None:
    p = sub.add_parser(
        "ui", help="a web page on loopback: drop a song, watch and hear its dance",
        description="Serve a page where you pick or drop a song (mp3, wav, flac, ogg), choose "
        "the model and a span, and watch the generated dance as an animated skeleton in sync "
        "with the song; download the MP4 (checked by the Great Expectations output suite), "
        "the motion JSON and BVH. The Compare view shows a dataset sequence's ground truth "
        "beside the generated dance under the same music, with its metrics. The page offers "
        "only the models it lists itself (--model, the registry's versions and aliases); a "
        "request never names a file or a URI. See docs/security.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; anything but loopback opens the page to the "
                   "network and needs a token (generated and printed unless --token)")
    p.add_argument("--port", type=int, default=5050, help="port (0: any free port)")
    p.add_argument("--token", default=None,
                   help="secret the page's callers must present (required off loopback; "
                   "default there: a random one, printed at start). Prefer the environment "
                   "variable MELODANCE_UI_TOKEN: a command line is visible to other users")
    p.add_argument("--model", default=None,
                   help="default model: a models:/ or runs:/ URI, or a model.pt bundle "
                   "(default: the registry's champion). Trusted input: give only a file or "
                   "a tracking server you trust (a bundle holds only tensors and data and is "
                   "read with torch.load(weights_only=True))")
    p.add_argument("--data", default="data", help="dataset folder for the Compare view")
    p.set_defaults(func=_ui)


def _ui(args) -> int:
    import os
    import secrets
    import signal
    import sys
    import tempfile
    from pathlib import Path

    from melodance.tracking import Terminated
    from melodance.ui.app import UiApp
    from melodance.ui.server import is_loopback, make_server

    token = args.token or os.environ.get("MELODANCE_UI_TOKEN") or None
    loopback = is_loopback(args.host)
    if not loopback and token is None:
        token = secrets.token_urlsafe(24)
    data = Path(args.data)
    app = UiApp(args.model, data if data.is_dir() else None)
    # Every temporary file of this process (uploaded songs being decoded included) goes
    # into the app's folder, which close() removes, also on SIGTERM.
    tmp = app.workdir / "tmp"
    tmp.mkdir()
    tempfile.tempdir = str(tmp)
    try:
        server = make_server(app, args.host, args.port, token=token)
    except (OSError, ValueError) as e:
        app.close()
        why = e.strerror if isinstance(e, OSError) and e.strerror else e
        raise InputError(f"cannot listen on {args.host}:{args.port}: {why}") from e

    def stop(signum, frame):
        raise Terminated  # serve_forever leaves through the finally below (exit 143)

    signal.signal(signal.SIGTERM, stop)
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in host else host
    if not loopback:
        print(f"melodance ui: WARNING: listening on {args.host}, reachable from other machines. "
              "Anyone with the token can upload songs and use this machine's CPU; the page is "
              "plain HTTP, so use it only on a network you trust (or behind a TLS proxy).",
              file=sys.stderr, flush=True)
    query = f"?token={token}" if token else ""
    # Tests and scripts read this line to find the port when --port 0.
    print(f"melodance ui: serving on http://{shown}:{port}/{query} (Ctrl-C to stop)",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        app.close()
    return 0
