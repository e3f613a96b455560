"""The command line: fast help, every stage command present, clear errors."""

from __future__ import annotations

import subprocess
import sys
import time

from melodance.cli import main


def test_help_is_fast_and_lists_commands():
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "melodance.cli", "--help"], capture_output=True,
                         text=True, check=True)
    elapsed = time.perf_counter() - t0
    for cmd in ("data", "validate", "features", "train", "evaluate"):
        assert cmd in out.stdout
    # Generous bound for a noisy 2-core machine; benchmarks/ measures the real figure.
    assert elapsed < 5.0
    # No heavy library is imported to answer --help.
    probe = ("import sys, melodance.cli as c; c.build_parser(); "
             "print(sorted(m for m in ('torch','mlflow','librosa','great_expectations','dvc')"
             " if m in sys.modules))")
    mods = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert mods.stdout.strip() == "[]"


def test_user_error_is_one_line_without_traceback(tmp_path, capsys):
    rc = main(["evaluate", "--features", str(tmp_path / "nope"), "--model",
               str(tmp_path / "none.pt"), "--no-mlflow"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "Traceback" not in err
    assert "nope" in err or "none.pt" in err


def test_only_melodance_errors_are_user_errors(monkeypatch, capsys):
    """A user error prints one line; any other exception is a bug and keeps its traceback."""
    import pytest

    import melodance.evaluate.commands as ec
    from melodance.errors import InputError

    def fails_with(exc):
        def handler(args):
            raise exc
        return handler

    monkeypatch.setattr(ec, "_evaluate", fails_with(InputError("params.yaml: evaluate.x: bad")))
    assert main(["evaluate"]) == 1
    assert "evaluate: error: params.yaml: evaluate.x: bad" in capsys.readouterr().err
    monkeypatch.setattr(ec, "_evaluate", fails_with(ValueError("a bug")))
    with pytest.raises(ValueError, match="a bug"):
        main(["evaluate"])


def test_every_error_class_has_the_one_root():
    from melodance.data.importer import DvcError
    from melodance.data.layout import LayoutError
    from melodance.errors import MelodanceError, UserError
    from melodance.features.audio import AudioError
    from melodance.render.checks import StillDanceError
    from melodance.render.video import VideoCheckError
    from melodance.serve.predict import RequestError
    from melodance.ui.app import Busy, UiError
    from melodance.validate.stage import ValidationFailed

    for cls in (DvcError, LayoutError, UserError, AudioError, StillDanceError, VideoCheckError,
                RequestError, UiError, Busy, ValidationFailed):
        assert issubclass(cls, MelodanceError), cls
