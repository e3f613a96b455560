"""The errors melodance raises for the user, under one root.

Every error the user can fix (bad input, params, data, an output that is in
the way) derives from :class:`MelodanceError`; the command line catches only
that root and prints its message on one line. Anything else (an ``IndexError``,
a bare ``ValueError`` from a numeric precondition) is a bug and prints a
traceback. The subclasses also derive from the builtin they replace, so code
that catches ``ValueError`` or ``FileNotFoundError`` keeps working.

This module imports nothing from melodance: any package may raise these.
"""

from __future__ import annotations


class MelodanceError(Exception):
    """Root of every user-facing melodance error; printed without a traceback."""


class UserError(MelodanceError):
    """An error caused by input or state the user can fix."""


class InputError(MelodanceError, ValueError):
    """A value the user gave is wrong: a params field, an argument, a file's content."""


class MissingInput(MelodanceError, FileNotFoundError):
    """A file or folder the user named (or an earlier stage should have written) is absent."""


class OutputExists(MelodanceError, FileExistsError):
    """An output is in the way and melodance does not overwrite what the user owns."""


class ToolError(MelodanceError, RuntimeError):
    """An external tool melodance runs (dvc, ffmpeg) failed; the message says how."""
