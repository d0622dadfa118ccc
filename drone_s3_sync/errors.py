"""One exception hierarchy; only the CLI maps it to exit codes."""

from __future__ import annotations


class SyncError(Exception):
    """Base class for errors this tool reports without a traceback."""

    exit_code = 1


class ConfigError(SyncError):
    """A setting is missing or invalid. Raised before any request is sent."""

    exit_code = 2

    def __init__(self, setting: str, message: str):
        self.setting = setting
        super().__init__(f"{setting}: {message}")


class GuardError(SyncError):
    """A safety guard refused the run (the plan looks like a broken build).
    Raised after planning and before the first write: nothing was written."""

    exit_code = 3


class RemoteError(SyncError):
    """S3 or CloudFront refused a request that the whole run depends on."""

    exit_code = 1


class Interrupted(KeyboardInterrupt):
    """The run was stopped by SIGINT or SIGTERM.

    A KeyboardInterrupt, so code that already stops cleanly on Ctrl-C stops
    the same way on SIGTERM. `note` says what the run had done when it stopped.
    """

    def __init__(self, signum: int, note: str = ""):
        super().__init__(signum)
        self.signum = int(signum)
        self.note = note

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
