"""Decide what to do with every key: `make_plan`, a pure function of the local
files, the bucket listing, the state, the evidence gathered (digests and
object details: what `needs.next_need` asked for), and the settings.
"""

from __future__ import annotations

from dataclasses import replace
from typing import AbstractSet, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from .config import Settings
from .keys import OWN_NAMES
from .digest import Digest, parse_etag
from .model import Action, Kind, LocalFile, ObjectHeaders, Plan, Reason, RemoteDetails, RemoteObject
from .rules import HeaderRules, Selection
from .s3vocab import ARCHIVED, COPY_LIMIT, KMS_ENCRYPTIONS
from .state import Entry


# Canned ACLs that S3 reports back as plain owner FULL_CONTROL when the bucket
# owner and the object owner are the same account.
_ACL_SAME_AS = {
    "bucket-owner-full-control": {"private", "bucket-owner-full-control"},
    "bucket-owner-read": {"private", "bucket-owner-read"},
    "aws-exec-read": {"bucket-owner-read", "aws-exec-read"},
}


def acl_matches(desired: str, observed: str) -> bool:
    return desired == observed or observed in _ACL_SAME_AS.get(desired, ())


def kms_key_matches(desired: str, observed: Optional[str]) -> bool:
    """S3 reports a KMS key by its ARN; a setting may give the key id, or an alias,
    which only KMS could resolve: an object under some key counts as under it."""
    if observed is None:
        return False
    if desired == observed or observed.endswith(":key/" + desired):
        return True
    return desired.startswith("alias/") or ":alias/" in desired


def header_differences(desired: ObjectHeaders, remote: ObjectHeaders, listed_class: Optional[str] = None) -> List[str]:
    """Fields the object must change. `listed_class`: the storage class the listing
    shows, which is current even where `remote` comes from the state object.
    Storage class, encryption and KMS key left unset in the settings never differ."""
    names = []
    for name in desired.differences(remote):
        if name == "acl" and acl_matches(desired.acl, remote.acl):
            continue
        if name == "storage_class" and listed_class is not None:
            continue  # compared below, with the listing
        if name == "kms_key_id" and remote.encryption in KMS_ENCRYPTIONS and kms_key_matches(desired.kms_key_id,
                                                                                             remote.kms_key_id):
            continue
        names.append(name)
    if desired.storage_class and listed_class is not None and listed_class != desired.storage_class:
        names.append("storage_class")
    return names


def object_size(local: LocalFile, digest: Optional[Digest]) -> Optional[int]:
    """The size of the object made from `local`: the file's size, or for a
    compressed file the compressed size, None while it was not compressed."""
    if local.encoding is None:
        return local.size
    return digest.size if digest is not None else None


def _state_compares(remote: RemoteObject, digest: Digest, entry: Optional[Entry]) -> bool:
    """The state's entry describes the listed object and both have an xxh3: those decide."""
    return bool(entry is not None and entry.xxh and digest.xxh and entry.describes(remote))


def content_matches(remote: RemoteObject, digest: Optional[Digest], details: Optional[RemoteDetails],
                    entry: Optional[Entry] = None) -> Optional[bool]:
    """True/False when known; None when only the object's details can tell."""
    if digest is None:
        return False
    if _state_compares(remote, digest, entry):
        # The listing shows the very object the state recorded, made from bytes
        # with this digest: whatever its ETag is (multipart, SSE-KMS), it is settled.
        return digest.xxh == entry.xxh
    value, parts = parse_etag(remote.etag)
    etag = f"{value}-{parts}" if parts else value
    if parts and etag in digest.multipart.values():
        return True
    if not parts and digest.md5 == value:
        return True
    # The ETag is not the MD5 we computed: the content changed, or the ETag is not
    # an MD5 at all (SSE-KMS, SSE-C, a multipart size we could not infer). An MD5
    # recorded in the object's metadata settles it.
    if details is None:
        return None
    if details.md5:
        return None if digest.md5 is None else details.md5 == digest.md5
    return False


def needs_md5_metadata(details: Optional[RemoteDetails], desired: Optional[ObjectHeaders] = None) -> bool:
    """Objects whose ETag will not be an MD5 get the MD5 recorded in metadata:
    those encrypted with KMS (by the settings or as the object is now) or SSE-C."""
    if desired is not None and desired.encryption in KMS_ENCRYPTIONS:
        return True
    if details is None or (desired is not None and desired.encryption == "AES256"):
        return False
    return details.sse in ("aws:kms", "aws:kms:dsse", "SSE-C")


def selected_remotes(remotes: Mapping[str, RemoteObject], settings: Settings,
                     selection: Selection) -> Dict[str, RemoteObject]:
    """The listed objects this run manages: those whose key relative to the target
    `include`/`exclude` select, and every redirect key. The others are neither
    compared nor deleted, and do not count as objects under the target."""
    if not selection:
        return dict(remotes)
    redirects = {key for key, _, _ in redirect_keys(settings)}
    start = len(settings.target)
    return {key: remote for key, remote in remotes.items() if key in redirects or selection.selects(key[start:])}


def redirect_keys(settings: Settings) -> List[Tuple[str, str, str]]:
    """(key, relative key, location) of each redirect."""
    return [(settings.target + rel, rel, location) for rel, location in settings.redirects]


def known_details(remotes: Mapping[str, RemoteObject], state: Mapping[str, Entry]) -> Dict[str, RemoteDetails]:
    """Headers and ACL the state object vouches for: those of unchanged objects."""
    shared: Dict[int, RemoteDetails] = {}  # entries share their header sets; share the details too
    known = {}
    for key, entry in state.items():
        if entry.describes(remotes.get(key)):
            details = shared.get(id(entry.headers))
            if details is None:
                details = shared[id(entry.headers)] = RemoteDetails(headers=entry.headers)
            known[key] = details
    return known


def make_plan(locals_: Sequence[LocalFile], remotes: Mapping[str, RemoteObject],
              digests: Mapping[str, Digest], details: Mapping[str, RemoteDetails],
              settings: Settings, rules: Optional[HeaderRules] = None,
              state: Optional[Mapping[str, Entry]] = None, *, kept_keys: AbstractSet[str] = frozenset(),
              kept_prefixes: Sequence[str] = ()) -> Plan:
    """`kept_keys` and `kept_prefixes` name local entries that exist but are not
    synced (unreadable, skipped links): their objects are never deleted."""
    rules = rules or HeaderRules(settings)
    kept_prefixes = tuple(kept_prefixes)
    state = state or {}
    actions: List[Action] = []
    written: Set[str] = set()
    redirects = redirect_keys(settings)
    redirect_set = {key for key, _, _ in redirects}
    for local in locals_:
        if local.key in redirect_set:
            continue  # the redirect takes the key; make_plan's caller reports the clash
        written.add(local.key)
        desired = rules.headers_for(local.rel, local.path, encoding=local.encoding)
        actions.append(_file_action(local, desired, remotes.get(local.key), digests.get(local.key),
                                    details.get(local.key), state.get(local.key)))
    for key, rel, location in redirects:
        written.add(key)
        desired = rules.headers_for(rel, "", redirect=location)
        actions.append(_redirect_action(key, desired, remotes.get(key), details.get(key)))
    if settings.delete:
        for key, remote in remotes.items():
            if key in written or key.endswith("/") or not key.startswith(settings.target):
                continue  # folder markers are not files; keys outside the target are never ours
            if key in kept_keys or key.startswith(kept_prefixes):
                continue  # its local file exists but was not synced
            if key in details and details[key].headers.redirect:
                continue  # redirects are never deleted
            if key.endswith(OWN_NAMES):
                continue  # the state or lock of a deployment nested under this target: that one's own
            actions.append(Action(Kind.DELETE, key, Reason.ORPHAN, size=remote.size))
    actions.sort(key=lambda a: a.key.encode("utf-8"))
    return Plan(actions)


def _file_action(local: LocalFile, desired: ObjectHeaders, remote: Optional[RemoteObject],
                 digest: Optional[Digest], detail: Optional[RemoteDetails], entry: Optional[Entry]) -> Action:
    md5 = digest.md5 if digest and needs_md5_metadata(detail, desired) else None
    # What the object would hold: a compressed file not compressed in this run
    # (the state settled it) has the size of the object the state describes.
    size = object_size(local, digest)
    if remote is None:
        return Action(Kind.UPLOAD, local.key, Reason.NEW, local, desired, local.size if size is None else size,
                      md5=md5)
    if size is not None and remote.size != size:
        return Action(Kind.UPLOAD, local.key, Reason.SIZE, local, desired, size, md5=md5)
    size = remote.size
    if not content_matches(remote, digest, detail, entry):
        reason, why = _content_reason(remote, digest, detail, entry)
        return Action(Kind.UPLOAD, local.key, reason, local, desired, object_size(local, digest) or size,
                      why, md5=md5)
    if detail is None:  # headers unknown: the pipeline always fetches them; stay safe anyway
        return Action(Kind.UPDATE, local.key, Reason.HEADERS, local, desired, size, detail="unknown")
    changed = header_differences(desired, detail.headers, remote.storage_class)
    if not changed:
        return Action(Kind.SKIP, local.key, Reason.UNCHANGED, local, desired, size)
    reason = Reason.ACL if changed == ["acl"] else Reason.HEADERS
    if needs_md5_metadata(detail, desired):
        md5 = md5 or detail.md5
    if size > COPY_LIMIT or remote.storage_class in ARCHIVED:
        # CopyObject cannot copy it (too big, or archived): upload the bytes again,
        # keeping what a copy would keep (the listing knows the current class).
        return Action(Kind.UPLOAD, local.key, reason, local, desired, size, ", ".join(changed),
                      md5=md5 or detail.md5, remote=replace(detail, storage_class=remote.storage_class))
    return Action(Kind.UPDATE, local.key, reason, local, desired, size, ", ".join(changed), md5=md5,
                  remote=detail, listed_etag=remote.etag)


def _content_reason(remote: RemoteObject, digest: Optional[Digest], detail: Optional[RemoteDetails],
                    entry: Optional[Entry]) -> Tuple[Reason, str]:
    """Why an object of the file's size does not match it: its content, or a
    multipart ETag that no part size we tried reproduces (another tool's parts)
    with nothing else to compare (no state entry, no MD5 in its metadata)."""
    _, parts = parse_etag(remote.etag)
    settled = (detail is not None and detail.md5) or (digest is not None and _state_compares(remote, digest, entry))
    if not parts or digest is None or settled:
        return Reason.CONTENT, ""
    tried = len(digest.multipart)
    if tried > 1:
        why = f"its ETag ({parts} parts) matches none of the {tried} part sizes tried"
    elif tried == 1:
        why = f"its ETag ({parts} parts) does not match the one part size tried"
    else:
        why = f"no part size gives its {parts} parts"
    return Reason.PART_SIZE, why + "; the content may be the same"


def _redirect_action(key: str, desired: ObjectHeaders, remote: Optional[RemoteObject],
                     detail: Optional[RemoteDetails]) -> Action:
    if remote is None:
        return Action(Kind.REDIRECT, key, Reason.NEW, headers=desired)
    if remote.size != 0 or detail is None:
        return Action(Kind.REDIRECT, key, Reason.REDIRECT_CHANGED, headers=desired)
    changed = header_differences(desired, detail.headers, remote.storage_class)
    if not changed:
        return Action(Kind.SKIP, key, Reason.UNCHANGED, headers=desired)
    reason = Reason.REDIRECT_CHANGED if "redirect" in changed else Reason.HEADERS
    return Action(Kind.REDIRECT, key, reason, headers=desired, detail=", ".join(changed))


def clashes(locals_: Iterable[LocalFile], settings: Settings) -> List[str]:
    """Keys that are both a local file and a redirect."""
    redirect_set = {key for key, _, _ in redirect_keys(settings)}
    return sorted(local.key for local in locals_ if local.key in redirect_set)


def settle_unreadable(plan: Plan, read_errors: Mapping[str, str], detail_errors: Mapping[str, str],
                      problems: Sequence[str] = ()) -> Tuple[Plan, List[str]]:
    """A file that could not be read, or whose object's headers could not be
    read, is left as it is (and never deleted: it is in the plan). Returns the
    plan with those keys as SKIP, and the problems to report: `problems`
    (the scan's) first."""
    unsettled = {key: f"{key}: cannot read its headers: {error}" for key, error in detail_errors.items()}
    unsettled.update((key, f"{key}: {error}") for key, error in read_errors.items())
    found = list(problems)
    if not unsettled:
        return plan, found
    found.extend(unsettled[key] for key in sorted(unsettled))
    actions = [a if a.key not in unsettled else Action(Kind.SKIP, a.key, a.reason, a.local, a.headers)
               for a in plan.actions]
    return Plan(actions), found
