"""Ctrl-C, SIGTERM and bad input as exit statuses: 130 and 143 (128 + the signal), 2.

A signal becomes `Interrupted` from the moment `main` starts, so that no run ends in a
traceback or in a report half written; bad input is one `voxelmetrics: error:` line.
"""

import signal
import sys
import threading
import warnings

EXIT_BAD_INPUT = 2


def fail(message: str) -> int:
    """Print `message` as the one `voxelmetrics: error:` line on stderr; `EXIT_BAD_INPUT`."""
    print(f"voxelmetrics: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `signum` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Signals:
    """Turn SIGINT and SIGTERM into `Interrupted`, and remember that they came.

    `main` installs it first thing, so that a signal during the imports, the parsing or
    the first compilation counts; nested uses share the installed one. JAX runs Python
    callbacks from the garbage collector, where an exception is printed and swallowed:
    `check()` at every chunk, between report files and before the report is committed
    stops the run even then, and a run whose signal was swallowed ends with 128 + its
    number all the same. The swallowed `Interrupted` is not printed (`_quiet_unraisable`).
    SIGTERM becomes an exception (not a silent death) so that the report's staging files
    are removed on the way out.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    active: "Signals | None" = None  # the installed one

    def __init__(self):
        self.received: int | None = None
        self.previous: dict = {}
        self.hook = None

    def __enter__(self):
        if Signals.active is not None:
            return Signals.active
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
            self.hook, sys.unraisablehook = sys.unraisablehook, self._quiet_unraisable
            Signals.active = self
        return self

    def __exit__(self, *exc):
        if Signals.active is self:
            Signals.active = None
            sys.unraisablehook = self.hook
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}

    def _handle(self, signum, frame):
        self.received = signum
        raise Interrupted(signum)

    def _quiet_unraisable(self, unraisable) -> None:
        """Python's report of an exception nobody could catch, except our `Interrupted`
        (recorded in `received`, acted on at the next `check`)."""
        if not isinstance(unraisable.exc_value, Interrupted):
            self.hook(unraisable)

    def check(self) -> None:
        if self.received is not None:
            raise Interrupted(self.received)


def exit_status(signum: int) -> int:
    """The exit status of a run that signal `signum` stopped: 128 + signum, as a shell's."""
    return 128 + signum


def stopped(signum: int, unwritten: str) -> int:
    """Say that signal `signum` stopped the run and what it left unwritten; its exit status."""
    name = signal.Signals(signum).name
    print(f"voxelmetrics: {name} received: stopped; {unwritten}.", file=sys.stderr)
    return exit_status(signum)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Input warnings as one `voxelmetrics: warning:` line; others as Python shows them."""
    from voxelmetrics.evaluate.readers import InputWarning

    if issubclass(category, InputWarning):
        print(f"voxelmetrics: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def guarded(work, output: str = "report") -> int:
    """`work(signals)` with signals turned into `Interrupted` and input warnings shown as one
    line; returns its exit status, 2 after an `InputError` (its message on stderr), 128 +
    the signal's number after Ctrl-C or SIGTERM (`output`, what the run writes, unwritten;
    or written, when the signal came once it was)."""
    from voxelmetrics.evaluate.readers import InputError, InputWarning

    with Signals() as signals, warnings.catch_warnings():
        warnings.simplefilter("always", InputWarning)
        warnings.showwarning = _show_warning
        try:
            signals.check()  # one that came during the imports
            status = work(signals)
        except InputError as e:
            return fail(str(e))
        except Interrupted as e:
            return stopped(e.signum, f"no {output} written")
        if signals.received is not None:  # swallowed after the last check
            return stopped(signals.received, f"the {output} was complete")
        return status
