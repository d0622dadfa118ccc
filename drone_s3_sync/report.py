"""What the run prints: one line per action with its reason, a summary line,
a tqdm progress bar on a terminal. The only module that imports tqdm."""

from __future__ import annotations

import logging
import sys
from typing import IO, Callable, Optional, Sequence

from .model import Action, Kind, Outcome, Plan, Reason, Summary

log = logging.getLogger("drone_s3_sync")

_VERB = {Kind.UPLOAD: "upload", Kind.UPDATE: "update", Kind.REDIRECT: "redirect", Kind.DELETE: "delete", Kind.SKIP: "skip"}


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


def describe(action: Action) -> str:
    """`upload   site/a.css  (content changed, 1.2 KiB)`; a compressed upload
    gives both sizes: `(new, 12.0 KiB -> 3.1 KiB gzip)`."""
    key = action.key
    if action.kind is Kind.REDIRECT and action.headers is not None:
        key = f"{key} -> {action.headers.redirect}"
    reason = action.reason.value
    if action.detail and action.reason in (Reason.HEADERS, Reason.ACL, Reason.REDIRECT_CHANGED):
        reason += f": {action.detail}"
    if action.kind is Kind.UPLOAD:
        if action.local is not None and action.local.encoding:  # "new, 12.0 KiB -> 3.1 KiB gzip"
            reason += f", {human_bytes(action.local.size)} -> {human_bytes(action.size)} {action.local.encoding}"
        else:
            reason += f", {human_bytes(action.size)}"
    return f"{_VERB[action.kind]:<8} {key}  ({reason})"


class Reporter:
    """Prints to `out` (stdout: the CI log); progress and problems go to `err`."""

    def __init__(self, out: IO[str] = sys.stdout, err: IO[str] = sys.stderr, *, progress: Optional[bool] = None,
                 dry_run: bool = False, quiet: bool = False, redact: Optional[Callable[[str], str]] = None):
        self.out, self.err = out, err
        # Every printed line goes through it: failure reasons quote S3's error
        # messages, and those could echo a key id.
        self.redact = redact or (lambda text: text)
        self.dry_run = dry_run
        self.quiet = quiet
        self.progress_enabled = err.isatty() if progress is None else progress
        self._bar = None

    def line(self, text: str) -> None:
        text = self.redact(text)
        if self._bar is not None:
            self._bar.write(text, file=self.out)
        else:
            print(text, file=self.out, flush=True)

    def info(self, text: str) -> None:
        """A progress line (CloudFront retries and waits); not with `quiet`."""
        if not self.quiet:
            self.line(text)

    def warn(self, text: str) -> None:
        text = self.redact(text)
        if self._bar is not None:
            self._bar.write(f"warning: {text}", file=self.err)
        else:
            print(f"warning: {text}", file=self.err, flush=True)

    def start(self, bucket: str, target: str, endpoint: str) -> None:
        if self.quiet:
            return
        where = f"s3://{bucket}/{target}"
        self.line(f"Synchronizing with bucket \"{bucket}\" ({where}{', ' + endpoint if endpoint else ''})"
                  + (" [dry run: nothing will be written]" if self.dry_run else ""))

    def plan(self, plan: Plan) -> None:
        """Dry run: the whole plan, each action with its reason."""
        for action in plan.actions:
            if action.kind is Kind.SKIP:
                log.debug("%s", describe(action))
            else:
                self.line("would " + describe(action))

    def done(self, outcome: Outcome) -> None:
        if outcome.ok:
            if not self.quiet:
                self.line(describe(outcome.action))
        else:
            self.line(f"FAILED {describe(outcome.action)}: {outcome.error}")

    def skipped(self, actions: Sequence[Action]) -> None:
        for action in actions:
            log.debug("%s", describe(action))

    # ---------------------------------------------------------------- progress
    def begin_transfer(self, total_bytes: int, total_actions: int) -> None:
        if self.progress_enabled and total_actions:
            from tqdm import tqdm

            self._bar = tqdm(total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024, file=self.err,
                             desc="transfer", leave=False, dynamic_ncols=True)

    def advance(self, byte_count: int) -> None:
        if self._bar is not None:
            self._bar.update(byte_count)

    def end_transfer(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # ---------------------------------------------------------------- summary
    def summary(self, summary: Summary) -> None:
        """`Done: 3 uploaded, 1 updated, 0 redirects, 2 deleted, 120 unchanged; 1.2 MiB in 0.84 s`"""
        plan = summary.plan
        if summary.dry_run:
            acted = plan.actions
            head = "Dry run, would do:"
        else:
            acted = [o.action for o in summary.outcomes if o.ok]
            head = "Done:"
        count = {kind: 0 for kind in Kind}
        for action in acted:
            count[action.kind] += 1
        nbytes = sum(a.size for a in acted if a.kind is Kind.UPLOAD)
        parts = [f"{count[Kind.UPLOAD]} uploaded", f"{count[Kind.UPDATE]} updated",
                 f"{count[Kind.REDIRECT]} redirects", f"{count[Kind.DELETE]} deleted",
                 f"{plan.counts()[Kind.SKIP]} unchanged"]
        if summary.failures:
            parts.append(f"{len(summary.failures)} failed")
        if summary.delete_blocked_reason:
            self.line(f"Deletes skipped: {summary.delete_blocked_reason}")
        if summary.invalidation_paths:
            shown = " ".join(summary.invalidation_paths[:10])
            more = " ..." if len(summary.invalidation_paths) > 10 else ""
            verb = "would invalidate" if summary.dry_run else "invalidated"
            self.line(f"CloudFront: {verb} {len(summary.invalidation_paths)} path(s): {shown}{more}")
        self.line(f"{head} {', '.join(parts)}; {human_bytes(nbytes)} in {summary.seconds:.2f} s")
        for outcome in summary.failures:
            self.line(f"  failed: {outcome.action.key}: {outcome.error}")
        for error in summary.errors:
            self.line(f"  error: {error}")
