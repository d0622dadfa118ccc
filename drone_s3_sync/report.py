"""What the run prints: one line per action with its reason, a summary line,
a tqdm progress bar on a terminal or a periodic progress line in a CI log,
colors on a terminal only, and the JSON report (`report: FILE`, `--json`).
The only module that imports tqdm."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import IO, Any, Callable, Dict, List, Mapping, Optional, Sequence

from .jsonreport import dumps, redact_all, report_document, write_atomically
from .model import Action, Kind, Outcome, Reason, Summary
from .redact import public_endpoint

log = logging.getLogger("drone_s3_sync")

_VERB = {Kind.UPLOAD: "upload", Kind.UPDATE: "update", Kind.REDIRECT: "redirect", Kind.DELETE: "delete", Kind.SKIP: "skip"}


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


# ---------------------------------------------------------------- colors

# SGR codes: green for writes, cyan for in-place changes, yellow for deletes and
# warnings, red for failures.
_STYLES = {"upload": "32", "update": "36", "redirect": "36", "delete": "33", "failed": "1;31", "error": "31",
           "warning": "33"}


def color_wanted(stream: Any, environ: Optional[Mapping[str, str]] = None) -> bool:
    """Colors on `stream`? Only on a terminal, never with NO_COLOR set to
    anything (https://no-color.org) nor with TERM=dumb. FORCE_COLOR (any value
    but 0/false/no/off) turns them on without a terminal, e.g. for a CI system
    whose log shows colors; NO_COLOR still wins."""
    environ = os.environ if environ is None else environ
    if environ.get("NO_COLOR", ""):
        return False
    force = environ.get("FORCE_COLOR", "").strip().lower()
    if force:
        return force not in ("0", "false", "no", "off")
    if environ.get("TERM", "") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


class Paint:
    """`paint(text, style)`: the text in the style's color, or as is when colors are off."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, text: str, style: str) -> str:
        if not self.enabled or not text:
            return text
        return f"\x1b[{_STYLES[style]}m{text}\x1b[0m"


_PLAIN = Paint(False)


def describe(action: Action, paint: Paint = _PLAIN) -> str:
    """`upload   site/a.css  (content changed, 1.2 KiB)`; only the verb is colored.
    A compressed upload gives both sizes: `(new, 12.0 KiB -> 3.1 KiB gzip)`."""
    key = action.key
    if action.kind is Kind.REDIRECT and action.headers is not None:
        key = f"{key} -> {action.headers.redirect}"
    reason = action.reason.value
    if action.detail and action.reason in (Reason.HEADERS, Reason.ACL, Reason.REDIRECT_CHANGED, Reason.ORPHAN,
                                           Reason.GRACE, Reason.PART_SIZE):
        reason += f": {action.detail}"
    if action.kind is Kind.UPLOAD:
        if action.local is not None and action.local.encoding:  # "new, 12.0 KiB -> 3.1 KiB gzip"
            reason += f", {human_bytes(action.local.size)} -> {human_bytes(action.size)} {action.local.encoding}"
        else:
            reason += f", {human_bytes(action.size)}"
    verb = _VERB[action.kind]
    return f"{paint(verb, verb) if action.kind is not Kind.SKIP else verb}{' ' * (8 - len(verb))} {key}  ({reason})"



# ---------------------------------------------------------------- progress


def _count(n: int) -> str:
    return f"{n:,}"


class _Progress:
    """What the transfer stage has done so far, for the periodic progress line."""

    def __init__(self, total_count: int, total_bytes: int, started: float):
        self.total_count, self.total_bytes = total_count, total_bytes
        self.count = 0
        self.bytes = 0
        self.started = self.last = started
        self.wave = ""  # the wave running, when there are several

    def line(self, now: float) -> str:
        """`progress: 1,204/5,000 objects, 12.1/78.3 MiB (15%), 31 s`"""
        done_bytes = min(max(self.bytes, 0), self.total_bytes)
        text = f"progress: {_count(self.count)}/{_count(self.total_count)} objects"
        if self.total_bytes:
            share = done_bytes / self.total_bytes
            text += f", {_mib(done_bytes)}/{_mib(self.total_bytes)} MiB"
        else:
            share = self.count / self.total_count if self.total_count else 1.0
        wave = f", {self.wave}" if self.wave else ""
        return f"{text} ({int(share * 100)}%), {now - self.started:.0f} s{wave}"


def _mib(count: int) -> str:
    return f"{count / (1 << 20):,.1f}"


# ---------------------------------------------------------------- the reporter


class Reporter:
    """Prints to `out` (stdout: the CI log); progress and problems go to `err`.
    With `document` (stdout for --json) the JSON report is printed there at the end."""

    def __init__(self, out: Optional[IO[str]] = None, err: Optional[IO[str]] = None, *,
                 progress: Optional[bool] = None, dry_run: bool = False, quiet: bool = False,
                 redact: Optional[Callable[[str], str]] = None, color: Optional[bool] = None,
                 environ: Optional[Mapping[str, str]] = None, progress_interval: float = 0.0,
                 document: Optional[IO[str]] = None):
        self.out = sys.stdout if out is None else out
        self.err = sys.stderr if err is None else err
        # Every printed line goes through it: failure reasons quote S3's error
        # messages, and those could echo a key id.
        self.redact = redact or (lambda text: text)
        self.dry_run = dry_run
        self.quiet = quiet
        self.progress_enabled = _isatty(self.err) if progress is None else progress
        self.paint_out = Paint(color_wanted(self.out, environ) if color is None else color)
        self.paint_err = Paint(color_wanted(self.err, environ) if color is None else color)
        # The periodic progress line stands in for the bar where there is none.
        self.progress_interval = 0.0 if (quiet or self.progress_enabled) else max(progress_interval, 0.0)
        self.document = document
        self.warnings: List[str] = []  # as printed, for the report
        self._bar = None
        self._progress: Optional[_Progress] = None
        self._lock = threading.RLock()  # lines from several threads never interleave
        # The order the plan gives the writes (wave by wave, by key within one):
        # outcomes that end early wait here, so that the lines come in that order.
        self._order: List[str] = []
        self._next = 0
        self._ready: Dict[str, Outcome] = {}

    def _emit(self, text: str, stream: IO[str]) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.write(text, file=stream)
            else:
                stream.write(text + "\n")
                stream.flush()

    def line(self, text: str) -> None:
        self._emit(self.redact(text), self.out)

    def info(self, text: str) -> None:
        """A progress line (CloudFront retries and waits); not with `quiet`."""
        if not self.quiet:
            self.line(text)

    def warn(self, text: str) -> None:
        text = self.redact(text)
        with self._lock:
            self.warnings.append(text)
            self._emit(f"{self.paint_err('warning:', 'warning')} {text}", self.err)

    def start(self, bucket: str, target: str, endpoint: str) -> None:
        if self.quiet:
            return
        where = f"s3://{bucket}/{target}"
        endpoint = public_endpoint(endpoint)
        self.line(f"Synchronizing with bucket \"{bucket}\" ({where}{', ' + endpoint if endpoint else ''})"
                  + (" [dry run: nothing will be written]" if self.dry_run else ""))

    def plan(self, actions: Sequence[Action]) -> None:
        """Dry run: the whole plan, each action with its reason, in the order given."""
        for action in actions:
            if action.kind is not Kind.SKIP:
                self.line("would " + describe(action, self.paint_out))
            elif action.reason is Reason.GRACE:
                self.line("would keep " + describe(action)[len("skip"):].lstrip())
            else:
                log.debug("%s", describe(action))

    def done(self, outcome: Outcome) -> None:
        with self._lock:
            if self._order and outcome.action.key not in self._ready and \
                    outcome.action.key in self._order[self._next:]:
                self._ready[outcome.action.key] = outcome
                self._flush()
            else:
                self._print(outcome)
            if self._progress is not None:
                self._progress.count += 1
                self._tick()

    def _flush(self, every: bool = False) -> None:
        """Prints the outcomes that are next in the plan's order (`every`: all
        that ended, in that order, skipping those that never will)."""
        while self._next < len(self._order):
            outcome = self._ready.pop(self._order[self._next], None)
            if outcome is None and not every:
                return
            self._next += 1
            if outcome is not None:
                self._print(outcome)

    def _print(self, outcome: Outcome) -> None:
        if outcome.ok:
            if not self.quiet:
                self.line(describe(outcome.action, self.paint_out))
        else:
            self.line(f"{self.paint_out('FAILED', 'failed')} {describe(outcome.action)}: {outcome.error}")

    def skipped(self, actions: Sequence[Action]) -> None:
        for action in actions:
            log.debug("%s", describe(action))

    def kept(self, actions: Sequence[Action]) -> None:
        """Objects delete_grace keeps for now: one line, the first to go named."""
        if actions:
            first = min(actions, key=lambda a: a.detail)
            self.info(f"delete_grace: {_count(len(actions))} object(s) no longer in the source kept for now "
                      f"(the first, {first.key}, {first.detail})")

    # ---------------------------------------------------------------- progress
    def begin_transfer(self, total_bytes: int, total_actions: int, order: Sequence[str] = ()) -> None:
        """`order`: the keys of the writes in the plan's order, which the action
        lines keep whatever order the writes end in."""
        with self._lock:
            self._order, self._next, self._ready = list(order), 0, {}
        if not total_actions:
            return
        if self.progress_interval:
            self._progress = _Progress(total_actions, total_bytes, time.monotonic())
        if self.progress_enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024, file=self.err,
                             desc="transfer", leave=False, dynamic_ncols=True)

    def advance(self, byte_count: int) -> None:
        if self._bar is None and self._progress is None:
            return
        with self._lock:
            if self._bar is not None:
                self._bar.update(byte_count)
            if self._progress is not None:
                self._progress.bytes += byte_count
                self._tick()

    def _tick(self) -> None:
        """A progress line when `progress_interval` has passed since the last one
        (or since the transfer began): never more than one per interval, and
        none for a transfer shorter than that."""
        progress = self._progress
        now = time.monotonic()
        if progress is not None and now - progress.last >= self.progress_interval:
            progress.last = now
            self._emit(self.redact(progress.line(now)), self.err)

    def wave(self, number: int, count: int, name: str, writes: int) -> None:
        """Which wave of writes begins (see order.py); said only when there are several."""
        if count < 2:
            return
        with self._lock:
            if self._progress is not None:
                self._progress.wave = f"wave {number}/{count} ({name})"
        self.info(f"wave {number}/{count}: {name}, {_count(writes)} write{'' if writes == 1 else 's'}")

    def end_transfer(self) -> None:
        with self._lock:
            self._flush(every=True)
            self._order, self._next = [], 0
            self._progress = None
            if self._bar is not None:
                self._bar.close()
                self._bar = None

    # ---------------------------------------------------------------- summary
    def summary(self, summary: Summary) -> None:
        """The summary line, with what was refused or failed around it."""
        paint = self.paint_out
        if summary.delete_blocked_reason:
            self.line(f"{paint('Deletes skipped:', 'warning')} {summary.delete_blocked_reason}")
        if summary.invalidation_paths:
            shown = " ".join(summary.invalidation_paths[:10])
            more = " ..." if len(summary.invalidation_paths) > 10 else ""
            verb = "would invalidate" if summary.dry_run else "invalidated"
            self.line(f"CloudFront: {verb} {len(summary.invalidation_paths)} path(s): {shown}{more}")
        self.line(summary_text(summary, paint))
        for outcome in summary.failures:
            self.line(f"  {paint('failed:', 'error')} {outcome.action.key}: {outcome.error}")
        for error in summary.errors:
            self.line(f"  {paint('error:', 'error')} {error}")

    # ---------------------------------------------------------------- JSON report
    def finish(self, settings: Any, summary: Summary, exit_code: int, *, refused: str = "",
               interrupted: str = "", error: str = "") -> None:
        """The JSON report, however the run ended: written to `settings.report`
        (atomically) and printed on `document`. A report file that cannot be
        written is an error of the run: it is added to `summary.errors`."""
        if not settings.report and self.document is None:
            return

        def render() -> str:
            document = report_document(settings, summary, exit_code=exit_code, finished=time.time(),
                                       warnings=self.warnings, refused=refused, interrupted=interrupted,
                                       error=error, line=summary_text(summary))
            return dumps(redact_all(document, self.redact))

        text = render()
        if settings.report:
            try:
                write_atomically(settings.report, text)
            except OSError as exc:
                message = f"cannot write the report {settings.report}: {exc.strerror or type(exc).__name__}"
                self._emit(self.redact(f"drone-s3-sync: {self.paint_err('error:', 'error')} {message}"), self.err)
                summary.errors.append(message)
                exit_code = exit_code or 1
                text = render()
        if self.document is not None:
            with self._lock:
                self.document.write(text)
                self.document.flush()


def summary_text(summary: Summary, paint: Callable[[str, str], str] = lambda text, kind: text) -> str:
    """`Done: 3 uploaded, 1 updated, 0 redirects, 2 deleted, 120 unchanged; 1.2 MiB in 0.84 s`,
    with the failures and errors counted so that a failed run never reads like success."""
    plan = summary.plan
    if summary.dry_run:
        acted = list(plan.actions)
        head = "Dry run, would do:"
    else:
        acted = [o.action for o in summary.outcomes if o.ok]
        head = "Done:"
    count = {kind: 0 for kind in Kind}
    for action in acted:
        count[action.kind] += 1
    nbytes = sum(a.size for a in acted if a.kind is Kind.UPLOAD)
    parts = [f"{count[Kind.UPLOAD]} uploaded", f"{count[Kind.UPDATE]} updated",
             _counted(count[Kind.REDIRECT], "redirect"), f"{count[Kind.DELETE]} deleted",
             f"{plan.counts()[Kind.SKIP]} unchanged"]
    if summary.failures:
        parts.append(paint(f"{len(summary.failures)} failed", "failed"))
    if summary.errors:
        parts.append(paint(_counted(len(summary.errors), "error"), "error"))
    return f"{head} {', '.join(parts)}; {human_bytes(nbytes)} in {summary.seconds:.2f} s"


def _counted(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
