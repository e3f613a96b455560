"""``melodance ui``: the browser page (song in, dance out; Compare on the dataset)."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "ui", help="a web page on loopback: drop a song, watch and hear its dance",
        description="Serve a page where you pick or drop a song (mp3, wav, flac, ogg), choose "
        "the model and a span, and watch the generated dance as an animated skeleton in sync "
        "with the song; download the MP4 (checked by the Great Expectations output suite), "
        "the motion JSON and BVH. The Compare view shows a dataset sequence's ground truth "
        "beside the generated dance under the same music, with its metrics.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=5050, help="port (0: any free port)")
    p.add_argument("--model", default=None,
                   help="default model: a models:/ or runs:/ URI, or a model.pt bundle "
                   "(default: models:/melodance@champion)")
    p.add_argument("--data", default="data", help="dataset folder for the Compare view")
    p.set_defaults(func=_ui)


def _ui(args) -> int:
    import sys
    from pathlib import Path

    from melodance.ui.app import UiApp
    from melodance.ui.server import make_server

    data = Path(args.data)
    app = UiApp(args.model, data if data.is_dir() else None)
    try:
        server = make_server(app, args.host, args.port)
    except OSError as e:
        app.close()
        raise ValueError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from e
    host, port = server.server_address[:2]
    # Tests and scripts read this line to find the port when --port 0.
    print(f"melodance ui: serving on http://{host}:{port}/ (Ctrl-C to stop)", file=sys.stderr,
          flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        app.close()
    return 0
