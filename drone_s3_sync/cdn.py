"""The invalidation stage: after the writes, invalidate in CloudFront what the
run changed. The path reduction and the CloudFront calls are in invalidate.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, List, Sequence, Set, Tuple

from .errors import error_text
from .invalidate import (InvalidationError, create_invalidation, create_invalidation_retrying, invalidation_paths,
                         new_caller_reference, wait_for_invalidations)
from .model import Action, Kind


@dataclass(frozen=True)
class Invalidated:
    """What the stage did: the paths, the invalidations created, the problems."""

    paths: List[str] = field(default_factory=list)
    created: List[Tuple[str, str]] = field(default_factory=list)  # (distribution, invalidation id)
    errors: List[str] = field(default_factory=list)


def paths_for(actions: Sequence[Action], settings) -> List[str]:
    """What to invalidate for these actions: nothing when none of them changes
    anything, else the `invalidation_paths` setting or the changed paths."""
    keys = [a.key for a in actions if a.kind is not Kind.SKIP]
    if not keys:
        return []
    if settings.invalidation_paths:
        return list(settings.invalidation_paths)
    return invalidation_paths(keys, root=settings.target)


def invalidate(actions: Sequence[Action], settings, *, client: Callable[[bool], Any], notify: Callable[[str], None],
               skip: Set[str] = frozenset(), quick: bool = False) -> Invalidated:
    """Invalidate what `actions` changed in each distribution not in `skip`;
    nothing when nothing changed. All invalidations are created first, then,
    with `cloudfront_wait`, waited for together. `client(quick)` gives the
    CloudFront client. `quick`, for a run that is stopping: one attempt each,
    no wait."""
    paths = paths_for(actions, settings)
    if not paths or not settings.cloudfront_distribution:
        return Invalidated(paths)
    cloudfront = client(quick)
    created: List[Tuple[str, str]] = []
    errors: List[str] = []
    for distribution in settings.cloudfront_distribution:
        if distribution in skip:
            continue
        try:
            if quick:
                invalidation = create_invalidation(cloudfront, distribution, paths,
                                                   caller_reference=new_caller_reference())
            else:
                invalidation = create_invalidation_retrying(cloudfront, distribution, paths,
                                                            caller_reference=new_caller_reference(), notify=notify)
        except InvalidationError as exc:
            errors.append(f"CloudFront invalidation of {distribution} failed: {exc}")
        except Exception as exc:  # the client's errors, after its own retries
            errors.append(f"CloudFront invalidation of {distribution} failed: {error_text(exc)}")
        else:
            created.append((distribution, invalidation))
    if settings.cloudfront_wait and created and not quick:
        errors.extend(wait_for_invalidations(
            cloudfront, created, timeout=settings.cloudfront_wait_timeout, notify=notify,
            describe=error_text, timeout_name=settings.label("cloudfront_wait_timeout")))
    return Invalidated(paths, created, errors)
