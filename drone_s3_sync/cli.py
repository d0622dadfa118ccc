"""The `drone-s3-sync` command: settings, logging, exit codes. The only sys.exit."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Iterator, List, Optional, Sequence

from .errors import ConfigError, Interrupted, SyncError

log = logging.getLogger("drone_s3_sync")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 130  # 143 for SIGTERM: 128 + signal


class RedactSecrets(logging.Filter):
    """Masks secret values in every record, whatever logged them."""

    def __init__(self, secrets: Sequence[str]):
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            for secret in self.secrets:
                text = text.replace(secret, "****")
            record.msg, record.args = text, ()
        return True


def setup_logging(debug: bool, secrets: Sequence[str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s" if not debug else
                                           "%(asctime)s %(threadName)s %(name)s %(levelname)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
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
    with stop_on_signals():
        try:
            return _run(argv, environ)
        except KeyboardInterrupt as exc:
            stop = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
            print(f"drone-s3-sync: interrupted by {stop.signal_name}; "
                  f"{stop.note or 'nothing was uploaded or deleted'}", file=sys.stderr, flush=True)
            return stop.exit_code


def _run(argv: Sequence[str], environ) -> int:
    from . import config

    try:
        settings = config.from_sources(argv, environ)
    except ConfigError as exc:
        print(f"drone-s3-sync: invalid setting {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except SystemExit as exc:  # argparse: --help, --version, or a usage error (already printed)
        return EXIT_CONFIG if exc.code not in (0, None) else EXIT_OK
    setup_logging(settings.debug, config.secrets_of(settings, environ))
    log.debug("settings: %r", settings)

    from .pipeline import sync

    try:
        summary = sync(settings)
    except ConfigError as exc:
        print(f"drone-s3-sync: invalid setting {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except SyncError as exc:
        print(f"drone-s3-sync: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return summary.exit_code
