"""Errors caused by the user's input (config, paths, files), not by a bug.

``launch.py`` prints their message as one line and exits with the error's
``exit_code`` instead of a traceback; library callers can catch them like any
``ValueError``. Exit statuses of ``launch.py``:

* 0: done;
* 1: an unexpected error (a bug: a traceback is printed);
* 2: a mistake in the command, the config or an input file (:class:`UserError`);
* 3: no prediction could be made: the record has no usable 10-s window (:class:`NoPrediction`);
* 130: interrupted (Ctrl-C); the same command resumes.
"""


class UserError(ValueError):
    """A mistake in the command, the config or an input file; the message says how to fix it."""

    exit_code = 2


class NoPrediction(UserError):
    """A record without a single usable window: no diagnosis is given."""

    exit_code = 3
