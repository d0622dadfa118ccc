"""The JSON report of a run (`report: FILE`, `--json`): one versioned document,
built from the Summary however the run ended, every string masked, written
atomically."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import tempfile
from typing import Any, Callable, Dict, List, Mapping, Sequence

from .redact import public_endpoint
from .model import Kind, Reason, Summary



# The JSON report's layout. Raised only when a field is removed or changes its
# meaning; new fields may be added within a format.
REPORT_FORMAT = 1
# The stages timed in the report, in the order they run (scan and list at once).
STAGES = ("scan", "list", "hash", "plan", "lock", "transfer", "delete", "state", "invalidate")


# ---------------------------------------------------------------- the document


def _iso(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def reason_code(reason: Reason) -> str:
    """`content changed` -> `content_changed`: the reason as the report gives it."""
    return reason.value.replace(" ", "_")


def status_of(exit_code: int) -> str:
    if exit_code == 0:
        return "ok"
    if exit_code == 3:
        return "refused"
    if exit_code > 128:
        return "interrupted"
    return "failed"


def report_document(settings: Any, summary: Summary, *, exit_code: int, finished: float,
                    warnings: Sequence[str] = (), refused: str = "", interrupted: str = "",
                    error: str = "", line: str = "") -> Dict[str, Any]:
    """The JSON report (format 1) as a dict: every action but the skipped ones
    (those are counted), with what became of it; totals; problems; timings.
    `line`: the summary line as the log prints it. Not yet redacted: see `redact_all`."""
    from . import __version__

    plan = summary.plan
    outcomes = {o.action.key: o for o in summary.outcomes}
    actions: List[Dict[str, Any]] = []
    failures: List[Dict[str, Any]] = []
    totals: Dict[str, int] = {kind.value: 0 for kind in Kind}
    totals.update(failed=0, not_done=0, bytes=0)
    for action in plan.actions:
        if action.kind is Kind.SKIP:
            totals["skip"] += 1
            continue
        outcome = outcomes.get(action.key)
        if summary.dry_run:
            result, ok = "planned", None
        elif outcome is None:
            result, ok = "not_done", None
        else:
            result, ok = ("done", True) if outcome.ok else ("failed", False)
        if result in ("planned", "done"):
            totals[action.kind.value] += 1
            if action.kind is Kind.UPLOAD:
                totals["bytes"] += action.size
        elif result == "failed":
            totals["failed"] += 1
            failures.append({"kind": action.kind.value, "key": action.key, "error": outcome.error})
        else:
            totals["not_done"] += 1
        actions.append({
            "kind": action.kind.value,
            "key": action.key,
            "reason": reason_code(action.reason),
            "detail": action.detail,
            "redirect": action.headers.redirect if action.kind is Kind.REDIRECT and action.headers else None,
            "bytes": action.size if action.kind is Kind.UPLOAD else 0,
            "result": result,
            "ok": ok,
            "error": outcome.error if outcome is not None and not outcome.ok else None,
            "seconds": round(outcome.seconds, 3) if outcome is not None else None,
        })
    errors = list(summary.errors) + ([error] if error else [])
    invalidation = None
    if settings.cloudfront_distribution:
        invalidation = {"distributions": list(settings.cloudfront_distribution),
                        "paths": list(summary.invalidation_paths), "ids": list(summary.invalidation_ids)}
    started = summary.started or finished
    return {
        "format": REPORT_FORMAT,
        "tool": "drone-s3-sync",
        "version": __version__,
        "status": status_of(exit_code),
        "exit_code": exit_code,
        "dry_run": bool(settings.dry_run),
        "bucket": settings.bucket,
        "target": settings.target,
        "region": settings.region,
        "endpoint": public_endpoint(settings.endpoint) or None,
        "started": _iso(started),
        "finished": _iso(finished),
        "seconds": round(summary.seconds or max(finished - started, 0.0), 3),
        "summary": line or None,
        "actions": actions,
        "totals": totals,
        "failures": failures,
        "errors": errors,
        "warnings": list(warnings),
        "delete_blocked": summary.delete_blocked_reason or None,
        "refused": refused or None,
        "interrupted": interrupted or None,
        "invalidation": invalidation,
        "waves": {"order": list(summary.waves), "reached": summary.wave or None} if summary.waves else None,
        "pending_deletes": [{"key": a.key, "until": a.detail.replace("deleted after ", "")}
                            for a in plan.actions if a.kind is Kind.SKIP and a.reason is Reason.GRACE],
        "timings": {stage: (round(summary.timings[stage], 3) if stage in summary.timings else None)
                    for stage in STAGES},
    }


def redact_all(value: Any, redact: Callable[[str], str]) -> Any:
    """Every string in a JSON value masked, map keys included; not an object
    key (a "key" field), which is published in the bucket anyway."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_all(k, redact): v if k == "key" and isinstance(v, str) else redact_all(v, redact)
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact_all(v, redact) for v in value]
    return value


def dumps(document: Mapping[str, Any]) -> str:
    """One JSON document and a newline; ASCII only, so any file name (even one
    that is not valid UTF-8) survives any locale."""
    return json.dumps(document, indent=2, ensure_ascii=True) + "\n"


def write_atomically(path: str, text: str) -> None:
    """Readers see the old file or the whole new one, never a part: written
    to a temporary file in the same folder, then renamed over `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="ascii") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, _mode_for(path))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _mode_for(path: str) -> int:
    """The mode the file has, or the one a new file gets (mkstemp makes it 0600)."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask
