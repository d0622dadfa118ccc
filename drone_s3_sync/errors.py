"""One exception hierarchy; only the CLI maps it to exit codes."""

from __future__ import annotations

from typing import List, Tuple


def error_text(exc: BaseException) -> str:
    """A one-line reason from an S3 or CloudFront client error, without request
    ids or signatures: "Code: Message", the HTTP status when there is no code,
    else the exception's own text."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        code = err.get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
        message = err.get("Message") or ""
        if str(code) == "404" and not message:
            message = "not found"
        return f"{code}: {message}".strip(": ") if message else str(code)
    return str(exc) or type(exc).__name__


def error_code(exc: BaseException) -> str:
    """The service error code of a client error (or the HTTP status), else ""."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                   or "")
    return ""


CREDENTIALS_HINT = ("; no AWS credentials were found: set access_key and secret_key (PLUGIN_ACCESS_KEY and "
                    "PLUGIN_SECRET_KEY, or --access-key and --secret-key), or AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, or a profile (profile, AWS_PROFILE), or assume_role with oidc_token_id, "
                    "or run where an instance, container or web identity role provides them")


class SyncError(Exception):
    """Base class for errors this tool reports without a traceback. Each
    class's `exit_code` and `meaning` are the one definition of its exit
    status (the help text and the README's table come from `exit_statuses`)."""

    exit_code = 1
    meaning = "some operation failed"


class ConfigError(SyncError):
    """A setting is missing or invalid. Raised before any request is sent."""

    exit_code = 2
    meaning = "invalid settings: no request was sent"

    def __init__(self, setting: str, message: str):
        self.setting = setting
        super().__init__(f"{setting}: {message}")


class GuardError(SyncError):
    """A safety guard refused the run (the plan looks like a broken build).
    Raised after planning and before the first write: nothing was written."""

    exit_code = 3
    meaning = "refused by a safety guard (allow_empty_source, allow_nested_delete, max_delete): nothing written"


class RemoteError(SyncError):
    """S3 or CloudFront refused a request that the whole run depends on."""

    exit_code = 1


class StoreError(SyncError):
    """One request to S3 failed (after the client's retries). The message is one
    line without request ids or signatures; `code` is S3's error code, or the
    HTTP status, or "" for a network error. Raised only by the remote store:
    a stage turns it into a failed outcome of one key, not a failed run."""

    exit_code = 1

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


class LockError(SyncError):
    """The deploy lock could not be taken (held by another run past
    lock_timeout), or was lost while writing."""

    exit_code = 4
    meaning = "the deploy lock is held by another run past lock_timeout: nothing written"


class Interrupted(KeyboardInterrupt):
    """The run was stopped by SIGINT or SIGTERM.

    A KeyboardInterrupt, so code that already stops cleanly on Ctrl-C stops
    the same way on SIGTERM. `note` says what the run had done when it stopped.
    """

    def __init__(self, signum: int, note: str = ""):
        super().__init__(signum)
        self.signum = int(signum)
        self.note = note

    meaning = "interrupted by SIGINT / SIGTERM: nothing deleted"

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM

    @property
    def signal_name(self) -> str:
        import signal

        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"


def exit_statuses() -> List[Tuple[str, str]]:
    """(exit status, what it means), as `--help` and the README list them."""
    return [("0", "success")] + [(str(cls.exit_code), cls.meaning) for cls in (SyncError, ConfigError, GuardError, LockError)] \
        + [("130 / 143", Interrupted.meaning)]
