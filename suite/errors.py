"""Errors a user can fix. The CLI prints them without a traceback and exits non-zero."""

from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """Bad input: the message names the problem and the fix."""

    exit_code = 2


class UnknownNameError(UserError):
    """An unknown backend, task, model or device, answered with the valid ones."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        super().__init__(f"unknown {kind} '{name}'.{hint} Known {kind}s: {', '.join(known) or '(none)'}")
        self.kind, self.name, self.known, self.suggestion = kind, name, known, (close[0] if close else None)


class DataError(UserError):
    """A dataset file that cannot be used; the message names the file."""


class UnavailableError(UserError):
    """A backend that cannot run here, with every reason why."""

    exit_code = 3


class JobFailed(Exception):
    """One job cannot give a trustworthy result (e.g. its model answers NaN); the others may. The
    message says why; no traceback, and the run goes on."""
