"""The `drone-s3-sync` command: settings, logging, exit codes. The only sys.exit."""

from __future__ import annotations

import logging
import os
import sys
from typing import List, Optional, Sequence

from .errors import ConfigError, GuardError, SyncError

log = logging.getLogger("drone_s3_sync")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_REFUSED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


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


def _warn(warnings: Sequence[str]) -> None:
    for text in warnings:
        print(f"warning: {text}", file=sys.stderr, flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    code = run(sys.argv[1:] if argv is None else argv, os.environ)
    if argv is None:
        sys.exit(code)
    return code


def run(argv: Sequence[str], environ) -> int:
    from . import config

    # A misspelt variable is reported even when the settings are refused: it may
    # be the reason they are (PLUGIN_BUCKT and "bucket is required").
    warnings = config.unknown_plugin_variables(environ)
    try:
        settings = config.from_sources(argv, environ)
    except ConfigError as exc:
        _warn(warnings)
        print(f"drone-s3-sync: invalid setting {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except SystemExit as exc:  # argparse: --help, --version, or a usage error (already printed)
        return EXIT_CONFIG if exc.code not in (0, None) else EXIT_OK
    setup_logging(settings.debug, config.secrets_of(settings, environ))
    log.debug("settings: %r", settings)
    _warn(warnings + config.setting_warnings(settings))

    from .pipeline import sync

    try:
        summary = sync(settings)
    except ConfigError as exc:
        print(f"drone-s3-sync: invalid setting {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except GuardError as exc:
        print(f"drone-s3-sync: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except SyncError as exc:
        print(f"drone-s3-sync: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("drone-s3-sync: interrupted; nothing was deleted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return summary.exit_code
