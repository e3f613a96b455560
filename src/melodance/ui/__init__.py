"""The browser page: ``melodance ui`` (see :mod:`melodance.ui.server`)."""
