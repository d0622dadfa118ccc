"""The `drone-s3-sync` command: settings, logging, exit codes. The only sys.exit."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Callable, List, Optional, Sequence

from .errors import ConfigError, GuardError, SyncError
from .redact import Redactor, one_line

log = logging.getLogger("drone_s3_sync")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_REFUSED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


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


def main(argv: Optional[List[str]] = None) -> int:
    code = run(sys.argv[1:] if argv is None else argv, os.environ)
    if argv is None:
        sys.exit(code)
    return code


def run(argv: Sequence[str], environ) -> int:
    from . import config

    redact = Redactor(config.secrets_of(None, environ))
    try:
        return _run(argv, environ, redact)
    except KeyboardInterrupt:
        print("drone-s3-sync: interrupted; nothing was deleted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug, or an environment this code does not expect
        debug = config.debug_of(environ)
        hint = "" if debug else " (set DEBUG=1 for the traceback)"
        print(f"drone-s3-sync: internal error: {redact(one_line(exc))}{hint}", file=sys.stderr)
        if debug:
            print(redact(traceback.format_exc()), file=sys.stderr, end="")
        return EXIT_FAILED


def _warn(warnings: Sequence[str]) -> None:
    for text in warnings:
        print(f"warning: {text}", file=sys.stderr, flush=True)


def _run(argv: Sequence[str], environ, redact: Redactor) -> int:
    from . import config
    from .report import Reporter

    # A misspelt variable is reported even when the settings are refused: it may
    # be the reason they are (PLUGIN_BUCKT and "bucket is required").
    warnings = config.unknown_plugin_variables(environ)
    try:
        settings = config.from_sources(argv, environ)
    except ConfigError as exc:
        _warn(warnings)
        print(redact(f"drone-s3-sync: invalid setting {exc}"), file=sys.stderr)
        return EXIT_CONFIG
    except SystemExit as exc:  # argparse: --help, --version, or a usage error (already printed)
        return EXIT_CONFIG if exc.code not in (0, None) else EXIT_OK
    redact.add(config.secrets_of(settings, environ))
    setup_logging(settings.debug, redact)
    log.debug("settings: %r", settings)
    _warn(warnings + config.setting_warnings(settings))

    from .pipeline import sync

    try:
        summary = sync(settings, redact=redact,
                       reporter=Reporter(dry_run=settings.dry_run, quiet=settings.quiet, redact=redact))
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
