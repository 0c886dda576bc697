"""Errors caused by the user's input (config, paths, files), not by a bug.

``launch.py`` prints their message as one line and exits with status 2
instead of a traceback; library callers can catch them like any ``ValueError``.
"""


class UserError(ValueError):
    """A mistake in the command, the config or an input file; the message says how to fix it."""
