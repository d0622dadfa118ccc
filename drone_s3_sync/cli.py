"""The `drone-s3-sync` command: settings, logging, exit codes. The only sys.exit."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from typing import Callable, Iterator, List, Optional, Sequence

from .errors import ConfigError, GuardError, Interrupted, SyncError
from .redact import Redactor, one_line

log = logging.getLogger("drone_s3_sync")

# An interrupted run exits with 128 + the signal: 130 for SIGINT, 143 for SIGTERM.
# The exit codes come from the errors that cause them (errors.py): one place.
EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_REFUSED = 0, SyncError.exit_code, ConfigError.exit_code, GuardError.exit_code
EXIT_INTERRUPTED = Interrupted(signal.SIGINT).exit_code


class RedactingFormatter(logging.Formatter):
    """Masks secret values in the whole formatted record: the message and what
    the formatter adds after any filter has run (traceback, stack)."""

    def __init__(self, fmt: str, redact: Callable[[str], str]):
        super().__init__(fmt)
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


def setup_logging(debug: bool, redact: Callable[[str], str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(levelname)s: %(message)s" if not debug else
                                            "%(asctime)s %(threadName)s %(name)s %(levelname)s: %(message)s", redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    # DEBUG shows this tool's decisions only: botocore's own debug output would
    # include request headers and signing details.
    log.setLevel(logging.DEBUG if debug else logging.INFO)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise Interrupted in the main thread, so the run stops
    the way it does on Ctrl-C: uploads cancelled, multipart uploads aborted,
    no deletes. A second signal ends the process at once. A signal the parent
    process ignored stays ignored (as Python does for SIGINT). Also needed
    because as PID 1 in a container a signal without a handler is dropped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: List[int] = []

    def handler(signum: int, frame) -> None:
        if received:
            sys.stderr.write(f"drone-s3-sync: {signal.Signals(signum).name} again; stopping now without "
                             "waiting for requests in flight\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        received.append(signum)
        raise Interrupted(signum)

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)


def main(argv: Optional[List[str]] = None) -> int:
    code = run(sys.argv[1:] if argv is None else argv, os.environ)
    if argv is None:
        if code > 128:
            # Interrupted, and everything that matters is done (uploads cancelled,
            # multipart uploads aborted). Threads still hashing a file or waiting
            # for an answer to a read would hold the exit up: do not wait for them.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        sys.exit(code)
    return code


def run(argv: Sequence[str], environ) -> int:
    from . import sources

    redact = Redactor(sources.secrets_of(None, environ))
    with stop_on_signals():
        try:
            return _run(argv, environ, redact)
        except KeyboardInterrupt as exc:
            stop = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
            print(redact(f"drone-s3-sync: interrupted by {stop.signal_name}; "
                         f"{stop.note or 'nothing was uploaded or deleted'}"), file=sys.stderr, flush=True)
            return stop.exit_code
        except Exception as exc:  # a bug, or an environment this code does not expect
            debug = sources.debug_of(environ)
            hint = "" if debug else " (set DEBUG=1 for the traceback)"
            print(f"drone-s3-sync: internal error: {redact(one_line(exc))}{hint}", file=sys.stderr)
            if debug:
                print(redact(traceback.format_exc()), file=sys.stderr, end="")
            return EXIT_FAILED


def _warn(warnings: Sequence[str], environ) -> None:
    from .report import Paint, color_wanted

    paint = Paint(color_wanted(sys.stderr, environ))
    for text in warnings:
        print(f"{paint('warning:', 'warning')} {text}", file=sys.stderr, flush=True)


def _run(argv: Sequence[str], environ, redact: Redactor) -> int:
    from . import sources
    from .report import Reporter

    # An unknown variable that is only warned about (see sources.check_plugin_variables)
    # is reported even when the settings are refused: it may be the reason they are.
    warnings = sources.plugin_variable_warnings(environ)
    try:
        settings = sources.from_sources(argv, environ)
    except ConfigError as exc:
        _warn(warnings, environ)
        print(redact(f"drone-s3-sync: invalid setting {exc}"), file=sys.stderr)
        return EXIT_CONFIG
    except SystemExit as exc:  # argparse: --help, --version, or a usage error (already printed)
        return EXIT_CONFIG if exc.code not in (0, None) else EXIT_OK
    redact.add(sources.secrets_of(settings, environ))
    setup_logging(settings.debug, redact)
    log.debug("settings: %r", settings)
    # With --json, standard output carries the JSON report and nothing else:
    # what people read goes to standard error.
    reporter = Reporter(out=sys.stderr if settings.json else sys.stdout, err=sys.stderr,
                        document=sys.stdout if settings.json else None, dry_run=settings.dry_run,
                        quiet=settings.quiet, redact=redact, environ=environ,
                        progress_interval=settings.progress_interval)
    fallbacks = fallback_line(settings)
    if fallbacks and (not settings.quiet or settings.dry_run):
        reporter.line(fallbacks)
    for text in warnings + sources.setting_warnings(settings):
        reporter.warn(text)

    from .pipeline import sync

    try:
        summary = sync(settings, redact=redact, reporter=reporter)
    except ConfigError as exc:
        print(redact(f"drone-s3-sync: invalid setting {exc}"), file=sys.stderr)
        return EXIT_CONFIG
    except GuardError as exc:
        print(redact(f"drone-s3-sync: refused: {exc}"), file=sys.stderr)
        return EXIT_REFUSED
    except SyncError as exc:
        print(redact(f"drone-s3-sync: error: {exc}"), file=sys.stderr)
        return exc.exit_code
    return summary.exit_code


def fallback_line(settings) -> str:
    """`Using region eu-west-1 (from AWS_REGION)`: the settings whose value came
    from a fallback variable, not from anything written for this tool; "" for none."""
    from . import sources
    from .redact import public_endpoint

    notes = []
    for name, value, variable in sources.fallbacks(settings):
        if isinstance(value, bool):
            value = str(value).lower()
        elif name == "endpoint":
            value = public_endpoint(value)
        notes.append(f"{name} {value} (from {variable})")
    return "Using " + ", ".join(notes) if notes else ""
