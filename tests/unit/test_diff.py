"""The plan (diff.py): a pure function of local files, the listing, digests, details and settings."""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from typing import Dict, List, Mapping, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings as hyp_settings
from hypothesis import strategies as st

from drone_s3_sync import diff, needs
from drone_s3_sync.config import Settings, build_settings
from drone_s3_sync.s3vocab import MULTIPART_THRESHOLD
from drone_s3_sync.digest import Digest, MiB, candidate_part_sizes, our_part_size
from drone_s3_sync.model import (
    Action,
    Kind,
    LocalFile,
    ObjectHeaders,
    Plan,
    Reason,
    RemoteDetails,
    RemoteObject,
)
from drone_s3_sync.diff import COPY_LIMIT
from drone_s3_sync.rules import HeaderRules
from drone_s3_sync.state import Entry

EMPTY_MD5 = hashlib.md5(b"").hexdigest()
SRC = "/src"


def make(**raw) -> Settings:
    raw.setdefault("bucket", "my-bucket")
    return build_settings(raw)


def md5_of(content: str) -> str:
    return hashlib.md5(content.encode("utf-8")).hexdigest()


def local(rel: str, size: int = 10, target: str = "") -> LocalFile:
    return LocalFile(rel=rel, key=target + rel, path=f"{SRC}/{rel}", size=size, mtime_ns=1)


def remote(key: str, size: int = 10, etag: str = "") -> RemoteObject:
    return RemoteObject(key=key, size=size, etag=etag)


def desired(s: Settings, f: LocalFile) -> ObjectHeaders:
    return HeaderRules(s).headers_for(f.rel, f.path)


def only(plan: Plan, key: str) -> Action:
    found = [a for a in plan.actions if a.key == key]
    assert len(found) == 1, plan.actions
    return found[0]


def plan_one(s: Settings, f: LocalFile, r: Optional[RemoteObject], digest: Optional[Digest] = None,
             detail: Optional[RemoteDetails] = None) -> Action:
    remotes = {r.key: r} if r is not None else {}
    digests = {f.key: digest} if digest is not None else {}
    details = {f.key: detail} if detail is not None else {}
    return only(diff.make_plan([f], remotes, digests, details, s), f.key)


# ---------------------------------------------------------------- single files


def test_new_file_is_uploaded() -> None:
    s = make()
    f = local("index.html", 5)
    a = plan_one(s, f, None)
    assert (a.kind, a.reason) == (Kind.UPLOAD, Reason.NEW)
    assert a.local == f and a.size == 5
    assert a.headers == desired(s, f)
    assert a.headers.content_type == "text/html; charset=utf-8"


def test_size_change_is_uploaded_without_hashing() -> None:
    s = make()
    f = local("a.txt", 5)
    r = remote("a.txt", 6, md5_of("x"))
    assert needs.hash_needs(f, r) is None
    assert needs.next_need(f, r, None, None, None) is None  # nothing to learn: not read at all
    a = plan_one(s, f, r)
    assert (a.kind, a.reason) == (Kind.UPLOAD, Reason.SIZE)


def test_unchanged_file_is_skipped() -> None:
    s = make(cache_control="max-age=60")
    f = local("a.txt")
    d = desired(s, f)
    a = plan_one(s, f, remote("a.txt", 10, md5_of("a")), Digest(md5=md5_of("a")), RemoteDetails(headers=d))
    assert (a.kind, a.reason) == (Kind.SKIP, Reason.UNCHANGED)
    assert not a.writes


@pytest.mark.parametrize("with_details", [False, True])
def test_changed_content_same_size_is_uploaded(with_details: bool) -> None:
    s = make()
    f = local("a.txt")
    detail = RemoteDetails(headers=desired(s, f)) if with_details else None
    a = plan_one(s, f, remote("a.txt", 10, md5_of("old")), Digest(md5=md5_of("new")), detail)
    assert (a.kind, a.reason) == (Kind.UPLOAD, Reason.CONTENT)


def test_missing_digest_never_skips() -> None:
    s = make()
    f = local("a.txt")
    a = plan_one(s, f, remote("a.txt", 10, md5_of("a")), None, RemoteDetails(headers=desired(s, f)))
    assert a.kind is Kind.UPLOAD


# ---------------------------------------------------------------- header and ACL drift


def _drift(**changes) -> Tuple[Settings, LocalFile, ObjectHeaders]:
    s = make(cache_control="max-age=60", metadata={"owner": "web", "team": "a"}, acl="public-read")
    f = local("page.html")
    return s, f, replace(desired(s, f), **changes)


@pytest.mark.parametrize(
    "changes, fields, reason",
    [
        ({"cache_control": "max-age=0"}, ["cache_control"], Reason.HEADERS),
        ({"cache_control": None}, ["cache_control"], Reason.HEADERS),
        ({"content_type": "text/plain"}, ["content_type"], Reason.HEADERS),
        ({"content_encoding": "gzip"}, ["content_encoding"], Reason.HEADERS),
        ({"metadata": (("owner", "old"), ("team", "a"))}, ["metadata"], Reason.HEADERS),  # changed value
        ({"metadata": (("owner", "web"), ("tteam", "a"))}, ["metadata"], Reason.HEADERS),  # renamed key
        ({"metadata": (("owner", "web"),)}, ["metadata"], Reason.HEADERS),  # removed key
        ({"metadata": (("extra", "1"), ("owner", "web"), ("team", "a"))}, ["metadata"], Reason.HEADERS),  # added key
        ({"acl": "private"}, ["acl"], Reason.ACL),
        ({"acl": "private", "cache_control": None}, ["cache_control", "acl"], Reason.HEADERS),
        ({"content_type": "text/plain", "metadata": ()}, ["content_type", "metadata"], Reason.HEADERS),
    ],
)
def test_header_drift_is_updated_in_place(changes: dict, fields: List[str], reason: Reason) -> None:
    s, f, observed = _drift(**changes)
    detail = RemoteDetails(headers=observed)
    a = plan_one(s, f, remote(f.key, 10, md5_of("a")), Digest(md5=md5_of("a")), detail)
    assert (a.kind, a.reason) == (Kind.UPDATE, reason)
    for name in fields:
        assert name in a.detail
    others = {"content_type", "content_encoding", "cache_control", "metadata", "acl"} - set(fields)
    for name in others:
        assert name not in a.detail.split(", ")
    assert a.headers == desired(s, f)
    assert a.remote == detail


def test_header_drift_above_copy_limit_is_uploaded() -> None:
    s, _, observed = _drift(cache_control="max-age=0")
    f = local("page.html", COPY_LIMIT + 1)
    parts = math.ceil(f.size / our_part_size(f.size))
    etag = f"{md5_of('mp')}-{parts}"
    digest = Digest(md5=None, multipart={our_part_size(f.size): etag})
    a = plan_one(s, f, remote(f.key, f.size, etag), digest, RemoteDetails(headers=observed))
    assert (a.kind, a.reason) == (Kind.UPLOAD, Reason.HEADERS)
    assert "cache_control" in a.detail


def test_unknown_details_with_matching_content_update_not_skip() -> None:
    s = make()
    f = local("a.txt")
    a = plan_one(s, f, remote("a.txt", 10, md5_of("a")), Digest(md5=md5_of("a")), None)
    assert a.kind is Kind.UPDATE


@pytest.mark.parametrize(
    "desired_acl, observed, matches",
    [
        ("private", "private", True),
        ("public-read", "public-read", True),
        ("public-read", "private", False),
        ("private", "public-read", False),
        ("bucket-owner-full-control", "private", True),
        ("bucket-owner-read", "private", True),
        ("private", "bucket-owner-full-control", False),
        ("public-read", "custom", False),
    ],
)
def test_acl_matches(desired_acl: str, observed: str, matches: bool) -> None:
    assert diff.acl_matches(desired_acl, observed) is matches


# ---------------------------------------------------------------- multipart and non-MD5 ETags


def test_hash_needs() -> None:
    f = local("big.bin", 18 * MiB + 1)
    assert needs.hash_needs(f, None) is None
    assert needs.hash_needs(f, remote(f.key, f.size + 1, "x")) is None
    assert needs.hash_needs(f, remote(f.key, f.size, md5_of("x"))) == (True, [])
    need = needs.hash_needs(f, remote(f.key, f.size, f"{md5_of('x')}-3"))
    assert need is not None and need[0] is False
    assert 8 * MiB in need[1]
    assert need[1] == candidate_part_sizes(f.size, 3)


def test_multipart_etag_matching_a_candidate_is_skipped() -> None:
    s = make()
    f = local("big.bin", 18 * MiB + 1)
    etag = f"{md5_of('parts')}-4"
    digest = Digest(md5=None, multipart={8 * MiB: f"{md5_of('other')}-3", 5 * MiB: etag})
    a = plan_one(s, f, remote(f.key, f.size, etag), digest, RemoteDetails(headers=desired(s, f)))
    assert a.kind is Kind.SKIP
    assert diff.content_matches(remote(f.key, f.size, etag), digest, None) is True


def test_foreign_multipart_not_matching_is_uploaded() -> None:
    s = make()
    f = local("big.bin", 18 * MiB + 1)
    etag = f"{md5_of('foreign')}-3"
    digest = Digest(md5=None, multipart={8 * MiB: f"{md5_of('ours')}-3"})
    detail = RemoteDetails(headers=desired(s, f))
    a = plan_one(s, f, remote(f.key, f.size, etag), digest, detail)
    # Uploaded again, and said to be for want of the part size, not a content change.
    assert (a.kind, a.reason) == (Kind.UPLOAD, Reason.PART_SIZE)
    assert a.detail == "its ETag (3 parts) does not match the one part size tried; the content may be the same"
    assert diff.content_matches(remote(f.key, f.size, etag), digest, detail) is False
    several = Digest(md5=None, multipart={8 * MiB: f"{md5_of('a')}-3", 7 * MiB: f"{md5_of('b')}-3"})
    assert plan_one(s, f, remote(f.key, f.size, etag), several, detail).detail.startswith(
        "its ETag (3 parts) matches none of the 2 part sizes tried;")


def test_a_content_change_proven_otherwise_is_not_blamed_on_the_part_size() -> None:
    s = make()
    f = local("big.bin", 18 * MiB + 1)
    r = remote(f.key, f.size, f"{md5_of('foreign')}-3")
    # An MD5 in the object's metadata that differs: the content changed.
    recorded = RemoteDetails(headers=desired(s, f), md5=md5_of("before"))
    digest = Digest(md5=md5_of("after"), multipart={8 * MiB: f"{md5_of('ours')}-3"})
    assert plan_one(s, f, r, digest, recorded).reason is Reason.CONTENT
    # A plain (single-part) ETag that is not the file's MD5: the content changed.
    plain = remote(f.key, f.size, md5_of("before"))
    assert plan_one(s, f, plain, digest, RemoteDetails(headers=desired(s, f))).reason is Reason.CONTENT


def test_foreign_multipart_settled_by_recorded_md5() -> None:
    s = make()
    f = local("big.bin", 18 * MiB + 1)
    r = remote(f.key, f.size, f"{md5_of('foreign')}-3")
    detail = RemoteDetails(headers=desired(s, f), md5=md5_of("content"))
    only_parts = Digest(md5=None, multipart={8 * MiB: f"{md5_of('ours')}-3"})
    # the whole-file MD5 is not known yet: the pipeline must hash it again
    assert diff.content_matches(r, only_parts, detail) is None
    full = Digest(md5=md5_of("content"), multipart=only_parts.multipart)
    assert plan_one(s, f, r, full, detail).kind is Kind.SKIP
    changed = Digest(md5=md5_of("changed"), multipart=only_parts.multipart)
    assert plan_one(s, f, r, changed, detail).kind is Kind.UPLOAD


@pytest.mark.parametrize("sse", ["aws:kms", "aws:kms:dsse", "SSE-C"])
def test_non_md5_etag_without_record_is_uploaded_and_records_md5(sse: str) -> None:
    s = make()
    f = local("a.txt")
    r = remote(f.key, f.size, md5_of("kms-etag-is-not-the-md5"))
    detail = RemoteDetails(headers=desired(s, f), sse=sse)
    a = plan_one(s, f, r, Digest(md5=md5_of("content")), detail)
    assert (a.kind, a.reason) == (Kind.UPLOAD, Reason.CONTENT)
    assert a.md5 == md5_of("content")


def test_kms_object_with_recorded_md5_is_skipped() -> None:
    s = make()
    f = local("a.txt")
    r = remote(f.key, f.size, md5_of("kms-etag-is-not-the-md5"))
    detail = RemoteDetails(headers=desired(s, f), sse="aws:kms", md5=md5_of("content"))
    assert plan_one(s, f, r, Digest(md5=md5_of("content")), detail).kind is Kind.SKIP
    changed = plan_one(s, f, r, Digest(md5=md5_of("changed")), detail)
    assert changed.kind is Kind.UPLOAD and changed.md5 == md5_of("changed")


def test_kms_object_header_update_keeps_recorded_md5() -> None:
    s = make(cache_control="max-age=60")
    f = local("a.txt")
    r = remote(f.key, f.size, md5_of("kms-etag"))
    detail = RemoteDetails(headers=replace(desired(s, f), cache_control=None), sse="aws:kms", md5=md5_of("content"))
    a = plan_one(s, f, r, Digest(md5=md5_of("content")), detail)
    assert a.kind is Kind.UPDATE
    assert a.remote is not None and a.remote.md5 == md5_of("content")


def _kms_store(action: Action, content: str) -> Tuple[RemoteObject, RemoteDetails]:
    """What a bucket with default SSE-KMS holds after executing an upload action."""
    assert action.headers is not None
    obj = RemoteObject(action.key, action.size, md5_of("kms:" + content))  # the ETag is not the MD5
    return obj, RemoteDetails(headers=action.headers, sse="aws:kms", md5=action.md5)


def _kms_store_plain(content: str) -> tuple:
    """A KMS-encrypted object written without a recorded MD5 (its ETag is not an MD5)."""
    obj = remote("a.txt", len(content), md5_of("kms-" + content))
    return obj, RemoteDetails(headers=HeaderRules(make()).headers_for("a.txt", ""), sse="aws:kms", md5=None)


@pytest.mark.parametrize("content", ["content", "longer"])
def test_kms_object_is_uploaded_at_most_once_more(content: str) -> None:
    # A new upload into a bucket with default SSE-KMS cannot know that its ETag
    # will not be an MD5. The next run sees the encryption, uploads once more
    # recording the MD5 in metadata, and from then on the object is skipped:
    # never re-uploaded on every run.
    s = make()
    f = local("a.txt", len(content))
    digest = Digest(md5=md5_of(content))
    obj, detail = _kms_store_plain(content)
    second = plan_one(s, f, obj, digest, detail)
    assert (second.kind, second.md5) == (Kind.UPLOAD, digest.md5)
    obj, detail = _kms_store(second, content)
    assert plan_one(s, f, obj, digest, detail).kind is Kind.SKIP


# ---------------------------------------------------------------- redirects


def redirect_plan(s: Settings, remotes: Mapping[str, RemoteObject], details: Mapping[str, RemoteDetails]) -> Plan:
    return diff.make_plan([], remotes, {}, details, s)


def test_new_redirect_key_is_target_plus_key() -> None:
    s = make(target="/site", redirects={"some/missing/file": "/somewhere/that/actually/exists"})
    plan = redirect_plan(s, {}, {})
    a = only(plan, "site/some/missing/file")
    assert (a.kind, a.reason) == (Kind.REDIRECT, Reason.NEW)
    assert a.headers is not None and a.headers.redirect == "/somewhere/that/actually/exists"
    assert diff.redirect_keys(s) == [("site/some/missing/file", "some/missing/file", "/somewhere/that/actually/exists")]


def _redirect_headers(s: Settings, rel: str, location: str) -> ObjectHeaders:
    return HeaderRules(s).headers_for(rel, "", redirect=location)


def test_same_redirect_is_skipped() -> None:
    s = make(target="site", redirects={"old": "/new"}, cache_control="max-age=60")
    detail = RemoteDetails(headers=_redirect_headers(s, "old", "/new"))
    a = only(redirect_plan(s, {"site/old": remote("site/old", 0, EMPTY_MD5)}, {"site/old": detail}), "site/old")
    assert (a.kind, a.reason) == (Kind.SKIP, Reason.UNCHANGED)


def test_changed_redirect_is_rewritten() -> None:
    s = make(redirects={"old": "/new"})
    detail = RemoteDetails(headers=_redirect_headers(s, "old", "/elsewhere"))
    a = only(redirect_plan(s, {"old": remote("old", 0, EMPTY_MD5)}, {"old": detail}), "old")
    assert (a.kind, a.reason) == (Kind.REDIRECT, Reason.REDIRECT_CHANGED)
    assert a.headers is not None and a.headers.redirect == "/new"


def test_redirect_header_drift_is_rewritten() -> None:
    s = make(redirects={"old": "/new"}, cache_control="max-age=60")
    detail = RemoteDetails(headers=replace(_redirect_headers(s, "old", "/new"), cache_control=None))
    a = only(redirect_plan(s, {"old": remote("old", 0, EMPTY_MD5)}, {"old": detail}), "old")
    assert (a.kind, a.reason) == (Kind.REDIRECT, Reason.HEADERS)
    assert "cache_control" in a.detail


def test_redirect_over_a_non_empty_object_is_rewritten() -> None:
    s = make(redirects={"old": "/new"})
    a = only(redirect_plan(s, {"old": remote("old", 100, md5_of("page"))}, {}), "old")
    assert a.kind is Kind.REDIRECT


def test_redirect_wins_over_a_local_file_with_the_same_key() -> None:
    s = make(redirects={"a.html": "/b.html"})
    plan = diff.make_plan([local("a.html")], {}, {}, {}, s)
    assert [(a.key, a.kind) for a in plan.actions] == [("a.html", Kind.REDIRECT)]
    assert diff.clashes([local("a.html"), local("b.html")], s) == ["a.html"]


# ---------------------------------------------------------------- delete


def test_no_deletes_unless_delete_is_on() -> None:
    remotes = {"gone.html": remote("gone.html")}
    plan = diff.make_plan([], remotes, {}, {}, make())
    assert plan.actions == ()
    plan = diff.make_plan([], remotes, {}, {}, make(delete=True))
    a = only(plan, "gone.html")
    assert (a.kind, a.reason) == (Kind.DELETE, Reason.ORPHAN)


def test_deletes_only_strictly_inside_the_target() -> None:
    s = make(target="site", delete=True)
    remotes = {k: remote(k) for k in ("site/old.html", "site-old/a.html", "sitemap.xml", "site", "other/x")}
    plan = diff.make_plan([], remotes, {}, {}, s)
    assert [(a.key, a.kind) for a in plan.actions] == [("site/old.html", Kind.DELETE)]


def test_never_deletes_what_this_run_writes() -> None:
    s = make(target="site", delete=True, redirects={"go": "/there"})
    remotes = {k: remote(k, 3, md5_of(k)) for k in ("site/keep.html", "site/go", "site/orphan.txt")}
    plan = diff.make_plan([local("keep.html", 99, "site/")], remotes, {}, {}, s)
    kinds = {a.key: a.kind for a in plan.actions}
    assert kinds == {"site/keep.html": Kind.UPLOAD, "site/go": Kind.REDIRECT, "site/orphan.txt": Kind.DELETE}


def test_never_deletes_folder_markers() -> None:
    s = make(delete=True)
    remotes = {"x/": remote("x/", 0, EMPTY_MD5), "x/y/": remote("x/y/", 0, EMPTY_MD5), "x/f": remote("x/f", 0, EMPTY_MD5)}
    plan = diff.make_plan([], remotes, {}, {"x/f": RemoteDetails(headers=ObjectHeaders("text/plain"))}, s)
    assert [(a.key, a.kind) for a in plan.actions] == [("x/f", Kind.DELETE)]
    assert "x/" not in heads([], remotes, s, {})


def test_never_deletes_what_exists_locally_but_was_not_synced() -> None:
    # Unreadable files, broken or external links (kept keys) and unreadable or
    # external folders (kept prefixes) are still in the source.
    s = make(target="site", delete=True)
    keys = ("site/locked.txt", "site/private/a.txt", "site/private/b/c.txt", "site/privateer.txt", "site/orphan")
    remotes = {k: remote(k) for k in keys}
    plan = diff.make_plan([], remotes, {}, {}, s, kept_keys={"site/locked.txt"}, kept_prefixes=["site/private/"])
    assert [(a.key, a.kind) for a in plan.actions] == [("site/orphan", Kind.DELETE), ("site/privateer.txt", Kind.DELETE)]
    # the source folder itself unreadable: the target prefix is kept whole
    assert diff.make_plan([], remotes, {}, {}, s, kept_prefixes=["site/"]).actions == ()


def test_never_deletes_a_redirect_object() -> None:
    s = make(delete=True)
    remotes = {"old-redirect": remote("old-redirect", 0, EMPTY_MD5), "empty.txt": remote("empty.txt", 0, EMPTY_MD5)}
    details = {
        "old-redirect": RemoteDetails(headers=ObjectHeaders("application/octet-stream", redirect="/new")),
        "empty.txt": RemoteDetails(headers=ObjectHeaders("text/plain")),
    }
    assert heads([], remotes, s, {}) == {"old-redirect", "empty.txt"}
    plan = diff.make_plan([], remotes, {}, details, s)
    assert [(a.key, a.kind) for a in plan.actions] == [("empty.txt", Kind.DELETE)]


# ---------------------------------------------------------------- needs


def heads(locals_: List[LocalFile], remotes: Dict[str, RemoteObject], s: Settings,
          known: Dict[str, RemoteDetails]) -> set:
    """Keys whose headers the evidence pass reads, once each file's hash needs are met."""
    keys = set(needs.other_heads(remotes, s, {f.key for f in locals_}, known))
    for f in locals_:
        hashed = Digest(md5=md5_of("local bytes"))
        if needs.next_need(f, remotes.get(f.key), None, hashed, known.get(f.key)) == needs.Need(needs.HEAD):
            keys.add(f.key)
    return keys


def test_detail_needs() -> None:
    s = make(redirects={"r1": "/x", "r2": "/y"})
    locals_ = [local("same", 10), local("bigger", 20), local("new", 5)]
    remotes = {
        "same": remote("same", 10, "e"),
        "bigger": remote("bigger", 10, "e"),
        "r1": remote("r1", 0, EMPTY_MD5),
        "r2": remote("r2", 50, "e"),
        "orphan-zero": remote("orphan-zero", 0, EMPTY_MD5),
    }
    assert heads(locals_, remotes, s, {}) == {"same", "r1"}
    known = {"same": RemoteDetails(headers=ObjectHeaders("text/plain"))}
    assert heads(locals_, remotes, s, known) == {"r1"}
    with_delete = replace(s, delete=True)
    assert heads(locals_, remotes, with_delete, {}) == {"same", "r1", "orphan-zero"}


def test_each_answer_leads_to_the_next_need_until_the_plan_can_decide() -> None:
    """A multipart object of the file's size: its part ETags, then its headers;
    a recorded MD5 in them then needs the file's whole MD5; then nothing."""
    f = local("big.bin", 18 * MiB + 1)
    r = remote(f.key, f.size, f"{md5_of('other')}-3")
    first = needs.next_need(f, r, None, None, None)
    assert first == needs.Need(needs.HASH, False, tuple(candidate_part_sizes(f.size, 3)))
    parts = Digest(xxh="x", multipart={p: "no-3" for p in first.part_sizes})
    assert needs.next_need(f, r, None, parts, None) == needs.Need(needs.HEAD)
    recorded = RemoteDetails(headers=ObjectHeaders("application/octet-stream"), md5=md5_of("content"))
    assert needs.next_need(f, r, None, parts, recorded, fetched=True) == needs.Need(needs.HASH, True, first.part_sizes)
    whole = replace(parts, md5=md5_of("content"))
    assert needs.next_need(f, r, None, whole, recorded, fetched=True) is None
    # Details from the state (not fetched) never ask for the MD5: the state's xxh3 settles it.
    assert needs.next_need(f, r, None, parts, recorded) is None


def test_a_file_the_state_vouches_for_needs_only_its_xxh3() -> None:
    f = local("a.html", 10)
    r = remote(f.key, 10, f"{md5_of('a')}-2")
    entry = Entry(r.etag, r.size, "xxh-of-a", ObjectHeaders("text/html"))
    assert needs.next_need(f, r, entry, None, None) == needs.Need(needs.HASH)  # xxh3 only: no MD5, no parts
    assert needs.next_need(f, r, entry, Digest(xxh="xxh-of-a"), RemoteDetails(headers=entry.headers)) is None


def test_a_new_file_encrypted_with_kms_needs_its_md5_for_the_upload() -> None:
    f = local("secret.txt", 10)
    assert needs.next_need(f, None, None, None, None, "aws:kms") == needs.Need(needs.HASH, True)
    assert needs.next_need(f, None, None, None, None, "AES256") is None
    assert needs.next_need(f, None, None, Digest(xxh="x", md5=md5_of("s")), None, "aws:kms") is None


# ---------------------------------------------------------------- the plan as a whole


def test_plan_has_every_key_once_sorted_by_utf8() -> None:
    s = make(delete=True, redirects={"a/redirect": "/x"})
    locals_ = [local(rel, 10) for rel in ("\u00e9.txt", "a0", "a-b", "B", "z/new")]
    remotes = {
        "a0": remote("a0", 10, md5_of("a0")),
        "a-b": remote("a-b", 9, "x"),
        "B": remote("B", 10, md5_of("old")),
        "orphan": remote("orphan", 1, "x"),
        "a/old": remote("a/old", 1, "x"),
    }
    digests = {"a0": Digest(md5=md5_of("a0")), "B": Digest(md5=md5_of("new"))}
    details = {k: RemoteDetails(headers=desired(s, f)) for f in locals_ for k in [f.key] if k in remotes}
    plan = diff.make_plan(locals_, remotes, digests, details, s)
    got = [a.key for a in plan.actions]
    assert got == sorted(got, key=lambda k: k.encode("utf-8"))
    assert len(got) == len(set(got))
    assert set(got) == {f.key for f in locals_} | {"a/redirect", "orphan", "a/old"}
    kinds = {a.key: (a.kind, a.reason) for a in plan.actions}
    assert kinds["a0"] == (Kind.SKIP, Reason.UNCHANGED)
    assert kinds["a-b"] == (Kind.UPLOAD, Reason.SIZE)
    assert kinds["B"] == (Kind.UPLOAD, Reason.CONTENT)
    assert kinds["z/new"] == (Kind.UPLOAD, Reason.NEW)
    assert kinds["orphan"] == (Kind.DELETE, Reason.ORPHAN)
    counts = plan.counts()
    assert counts[Kind.UPLOAD] == 4 and counts[Kind.SKIP] == 1 and counts[Kind.DELETE] == 2
    assert counts[Kind.REDIRECT] == 1


# ---------------------------------------------------------------- property: apply, then plan again


def fake_multipart(content: str, part: int, size: int) -> str:
    return f"{md5_of(f'{content}:{part}')}-{max(1, math.ceil(size / part))}"


def uploaded_etag(content: str, size: int) -> str:
    """What S3 reports for our upload: plain MD5 below the threshold, else our part size."""
    if size < MULTIPART_THRESHOLD:
        return md5_of(content)
    return fake_multipart(content, our_part_size(size), size)


class World:
    """A bucket simulated at the level the diff sees it."""

    def __init__(self, objects: Dict[str, RemoteObject], details: Dict[str, RemoteDetails],
                 contents: Dict[str, str]):
        self.objects = objects
        self.details = details
        self.contents = contents  # key -> content id of what the object holds

    def plan(self, locals_: List[LocalFile], local_content: Dict[str, str], s: Settings) -> Plan:
        digests, details = {}, {}
        for f in locals_:
            digest, fetched = None, None
            content = local_content[f.key]
            while (need := needs.next_need(f, self.objects.get(f.key), None, digest, fetched,
                                           fetched=fetched is not None)) is not None:
                if need.kind == needs.HASH:
                    digest = Digest(md5=md5_of(content) if need.md5 else None,
                                    multipart={p: fake_multipart(content, p, f.size) for p in need.part_sizes})
                elif f.key in self.details:
                    fetched = self.details[f.key]
                else:
                    break
            if digest is not None:
                digests[f.key] = digest
            if fetched is not None:
                details[f.key] = fetched
        for key in needs.other_heads(self.objects, s, {f.key for f in locals_}, {}):
            if key in self.details:
                details[key] = self.details[key]
        plan = diff.make_plan(locals_, self.objects, digests, details, s)
        keys = [a.key for a in plan.actions]
        assert keys == sorted(keys, key=lambda k: k.encode("utf-8"))
        assert len(keys) == len(set(keys))
        for a in plan.of(Kind.DELETE):
            assert a.key.startswith(s.target) and not a.key.endswith("/")
        return plan

    def apply(self, plan: Plan, local_content: Dict[str, str]) -> None:
        for a in plan.actions:
            if a.kind is Kind.UPLOAD:
                assert a.local is not None and a.headers is not None
                content = local_content[a.key]
                self.objects[a.key] = RemoteObject(a.key, a.local.size, uploaded_etag(content, a.local.size))
                self.details[a.key] = RemoteDetails(headers=a.headers, md5=a.md5)
                self.contents[a.key] = content
            elif a.kind is Kind.UPDATE:
                assert a.headers is not None
                old = self.details.get(a.key)
                self.details[a.key] = RemoteDetails(headers=a.headers, md5=old.md5 if old else None)
            elif a.kind is Kind.REDIRECT:
                assert a.headers is not None and a.headers.redirect
                self.objects[a.key] = RemoteObject(a.key, 0, EMPTY_MD5)
                self.details[a.key] = RemoteDetails(headers=a.headers)
                self.contents[a.key] = ""
            elif a.kind is Kind.DELETE:
                del self.objects[a.key]
                self.details.pop(a.key, None)
                self.contents.pop(a.key, None)


LOCAL_RELS = ["index.html", "a/b.css", "a/c.png", "img/x.svg", "README", "z/\u00e9.txt", "a-b.js", "empty"]
REDIRECT_RELS = ["old/page", "go/here.html"]
OTHER_KEYS = ["old.html", "gone/x.js", "x/", "zero.bin", "site-old/a.html", "sitemap.xml", "legacy-redirect"]
SIZES = [0, 1, 100, 5 * MiB + 3, 8 * MiB, 20 * MiB + 1]


@st.composite
def scenarios(draw):
    target = draw(st.sampled_from(["", "site/"]))
    raw: Dict[str, object] = {"bucket": "my-bucket", "target": target, "delete": draw(st.booleans())}
    if draw(st.booleans()):
        raw["cache_control"] = {".html": "max-age=60", "a/*": "max-age=3600"}
    if draw(st.booleans()):
        raw["acl"] = {"a/*": "public-read"}
    if draw(st.booleans()):
        raw["metadata"] = {"owner": "web"}
    if draw(st.booleans()):
        raw["content_encoding"] = {".css": "gzip"}
    redirects = draw(st.lists(st.sampled_from(REDIRECT_RELS), unique=True, max_size=2))
    if redirects:
        raw["redirects"] = {rel: draw(st.sampled_from(["/new", "/other", "https://example.com/"])) for rel in redirects}
    s = build_settings(raw)
    rules = HeaderRules(s)

    rels = draw(st.lists(st.sampled_from(LOCAL_RELS), unique=True, max_size=len(LOCAL_RELS)))
    locals_, local_content = [], {}
    for rel in rels:
        size = 0 if rel == "empty" else draw(st.sampled_from(SIZES))
        f = LocalFile(rel=rel, key=target + rel, path=f"{SRC}/{rel}", size=size, mtime_ns=1)
        locals_.append(f)
        local_content[f.key] = "" if size == 0 else draw(st.sampled_from(["v1", "v2"])) + rel

    objects: Dict[str, RemoteObject] = {}
    details: Dict[str, RemoteDetails] = {}
    contents: Dict[str, str] = {}

    def drifted(headers: ObjectHeaders) -> ObjectHeaders:
        choice = draw(st.sampled_from(["same", "cache", "acl", "meta", "type", "redirect"]))
        return {
            "same": headers,
            "cache": replace(headers, cache_control="no-store"),
            "acl": replace(headers, acl="public-read" if headers.acl == "private" else "private"),
            "meta": replace(headers, metadata=(("stale", "1"),)),
            "type": replace(headers, content_type="application/x-old"),
            "redirect": replace(headers, redirect="/stale"),
        }[choice]

    for f in locals_:
        state = draw(st.sampled_from(["absent", "same", "other-content", "other-size", "foreign-5mib", "kms-recorded"]))
        if state == "absent":
            continue
        content = local_content[f.key]
        size = f.size
        recorded = None
        sse = None
        if state == "same":
            etag = uploaded_etag(content, size)
        elif state == "other-content":
            content = "stale" + content
            etag = uploaded_etag(content, size)
        elif state == "other-size":
            size = f.size + 1
            content = "stale" + content
            etag = uploaded_etag(content, size)
        elif state == "foreign-5mib" and size > 5 * MiB:
            etag = fake_multipart(content, 5 * MiB, size)
        else:  # an object whose ETag is not an MD5, with the MD5 recorded
            etag = md5_of("kms:" + content)
            recorded, sse = md5_of(content), "aws:kms"
        objects[f.key] = RemoteObject(f.key, size, etag)
        details[f.key] = RemoteDetails(headers=drifted(rules.headers_for(f.rel, f.path)), md5=recorded, sse=sse)
        contents[f.key] = content

    for rel in redirects:
        key = target + rel
        if draw(st.booleans()):
            location = draw(st.sampled_from(["/new", "/stale"]))
            objects[key] = RemoteObject(key, 0, EMPTY_MD5)
            details[key] = RemoteDetails(headers=drifted(rules.headers_for(rel, "", redirect=location)))
            contents[key] = ""

    for key in draw(st.lists(st.sampled_from(OTHER_KEYS), unique=True)):
        full = key if key.startswith("site") else target + key
        if full in objects:
            continue
        zero = key in ("x/", "zero.bin", "legacy-redirect")
        objects[full] = RemoteObject(full, 0 if zero else 7, EMPTY_MD5 if zero else md5_of(full))
        redirect = "/somewhere" if key == "legacy-redirect" else None
        details[full] = RemoteDetails(headers=ObjectHeaders("application/octet-stream", redirect=redirect))
        contents[full] = ""
    return s, locals_, local_content, World(objects, details, contents)


@hyp_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_applying_a_plan_then_planning_again_only_skips(scenario) -> None:
    s, locals_, local_content, world = scenario
    first = world.plan(locals_, local_content, s)
    assert all(a.key.startswith(s.target) for a in first.actions)  # no key leaves the target
    expected_keys = {f.key for f in locals_} | {k for k, _, _ in diff.redirect_keys(s)}
    assert expected_keys <= {a.key for a in first.actions}
    world.apply(first, local_content)

    # the bucket now holds what the source says
    for f in locals_:  # local and redirect keys are disjoint here
        assert world.contents[f.key] == local_content[f.key]
    if s.delete:
        for key in world.objects:
            if key.startswith(s.target) and not key.endswith("/") and key not in expected_keys:
                assert world.details[key].headers.redirect, key  # only redirects survive

    second = world.plan(locals_, local_content, s)
    writes = [(a.key, a.kind, a.reason, a.detail) for a in second.actions if a.kind is not Kind.SKIP]
    assert writes == []
    assert {a.key for a in second.actions} == expected_keys
