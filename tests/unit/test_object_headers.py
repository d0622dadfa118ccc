"""content_disposition, content_language, expires, storage_class, encryption and
kms_key_id: parsing, rules, what counts as a difference, and the request
arguments of uploads and header copies. Pure (the copy test records the call)."""

from __future__ import annotations

import datetime
from dataclasses import replace
from pathlib import Path
from typing import Optional

import pytest

from drone_s3_sync import diff, needs
from drone_s3_sync.config import Settings, build_settings
from drone_s3_sync.sources import from_sources, load_config_file
from drone_s3_sync.ruleparsers import http_date
from drone_s3_sync.digest import Digest
from drone_s3_sync.errors import ConfigError
from drone_s3_sync.model import Kind, LocalFile, ObjectHeaders, Reason, RemoteDetails, RemoteObject
from drone_s3_sync.remote import Store
from drone_s3_sync.s3args import header_args, kept_args
from drone_s3_sync.rules import HeaderRules

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
MD5 = "0123456789abcdef0123456789abcdef"


def make(**raw) -> Settings:
    raw.setdefault("bucket", "my-bucket")
    return build_settings(raw)


def env(**variables) -> Settings:
    return from_sources([], {"PLUGIN_BUCKET": "my-bucket", **{"PLUGIN_" + k.upper(): v for k, v in variables.items()}})


# ---------------------------------------------------------------- parsing


def test_plain_header_rules_like_cache_control():
    s = env(content_disposition='{".pdf": "attachment", "*": "inline"}', content_language="de-CH")
    assert s.content_disposition == ((".pdf", "attachment"), ("*", "inline"))
    assert s.content_language == (("*", "de-CH"),)


@pytest.mark.parametrize("raw, expected", [
    ("Tue, 01 Jan 2030 00:00:00 GMT", "Tue, 01 Jan 2030 00:00:00 GMT"),
    ("Thu, 01 Jan 2030 00:00:00 GMT", "Tue, 01 Jan 2030 00:00:00 GMT"),  # a wrong weekday is corrected
    ("Tuesday, 01-Jan-30 00:00:00 GMT", "Tue, 01 Jan 2030 00:00:00 GMT"),  # RFC 850
    ("Tue Jan  1 00:00:00 2030", "Tue, 01 Jan 2030 00:00:00 GMT"),  # asctime
    ("2030-01-01", "Tue, 01 Jan 2030 00:00:00 GMT"),
    ("2030-01-01T12:30:00Z", "Tue, 01 Jan 2030 12:30:00 GMT"),
    ("2030-01-01T12:30:00.75+02:00", "Tue, 01 Jan 2030 10:30:00 GMT"),
    ("2030-01-01 12:30", "Tue, 01 Jan 2030 12:30:00 GMT"),  # no zone: UTC
])
def test_expires_is_normalised_to_the_http_date_s3_returns(raw, expected):
    assert env(expires=raw).expires == (("*", expected),)
    assert http_date(expected) == expected  # what S3 returns compares exactly


def test_expires_from_yaml_dates_and_as_a_map(tmp_path: Path):
    # PyYAML turns these into date and datetime objects.
    (tmp_path / "deploy.yml").write_text("bucket: my-bucket\nexpires:\n  .pdf: 2030-01-01\n"
                                         "  '*': 2030-01-01T06:00:00+01:00\n")
    values, _ = load_config_file(str(tmp_path / "deploy.yml"))
    assert isinstance(values["expires"][".pdf"], datetime.date)
    assert build_settings(values).expires == ((".pdf", "Tue, 01 Jan 2030 00:00:00 GMT"),
                                              ("*", "Tue, 01 Jan 2030 05:00:00 GMT"))


@pytest.mark.parametrize("raw, expected", [("standard_ia", "STANDARD_IA"), ("glacier-ir", "GLACIER_IR"),
                                           ("INTELLIGENT_TIERING", "INTELLIGENT_TIERING")])
def test_storage_class_names_are_normalised(raw, expected):
    assert env(storage_class=raw).storage_class == (("*", expected),)


@pytest.mark.parametrize("raw, expected", [("aes256", "AES256"), ("AWS:KMS", "aws:kms"),
                                           ("aws:kms:dsse", "aws:kms:dsse")])
def test_encryption_names_are_normalised(raw, expected):
    assert env(encryption=raw).encryption == (("*", expected),)


@pytest.mark.parametrize("variables, setting, words", [
    ({"storage_class": "STANDART_IA"}, "PLUGIN_STORAGE_CLASS", ["did you mean 'STANDARD_IA'?", "use one of STANDARD,"]),
    ({"storage_class": '{"*.iso": "ARCHIVE"}'}, "PLUGIN_STORAGE_CLASS", ["rule '*.iso'", "not an S3 storage class"]),
    ({"encryption": "kms"}, "PLUGIN_ENCRYPTION", ["did you mean 'aws:kms'?", "AES256, aws:kms, aws:kms:dsse"]),
    ({"encryption": '["AES256"]'}, "PLUGIN_ENCRYPTION", ["map of pattern to value"]),
    ({"expires": "next week"}, "PLUGIN_EXPIRES", ["not a date", "ISO 8601"]),
    ({"expires": '{".pdf": "2030-13-01"}'}, "PLUGIN_EXPIRES", ["rule '.pdf'", "not a date"]),
    ({"content_language": "fran\u00e7ais"}, "PLUGIN_CONTENT_LANGUAGE", ["printable ASCII"]),
    ({"content_disposition": '{".pdf": ""}'}, "PLUGIN_CONTENT_DISPOSITION", ["give a value or leave the rule out"]),
    ({"kms_key_id": "my key", "encryption": "aws:kms"}, "PLUGIN_KMS_KEY_ID", ["not a KMS key", "alias/NAME"]),
    ({"kms_key_id": KEY_ID}, "PLUGIN_KMS_KEY_ID", ["set encryption to one of them too"]),
    ({"kms_key_id": KEY_ID, "encryption": "AES256"}, "PLUGIN_KMS_KEY_ID", ["aws:kms or aws:kms:dsse"]),
])
def test_bad_values_name_the_setting(variables, setting, words):
    with pytest.raises(ConfigError) as err:
        env(**variables)
    assert str(err.value).startswith(setting + ": "), str(err.value)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("key", [KEY_ID, KEY_ARN, "alias/site-key", "arn:aws:kms:eu-west-1:123456789012:alias/site",
                                 "mrk-1234abcd12ab34cd56ef1234567890ab"])
def test_kms_key_forms(key):
    assert env(encryption="aws:kms", kms_key_id=key).kms_key_id == key


# ---------------------------------------------------------------- rules


def test_rules_give_each_file_its_headers_and_the_key_only_with_kms():
    rules = HeaderRules(make(content_disposition='{".pdf": "attachment"}', content_language="en",
                             expires="2030-01-01", storage_class='{"archive/*": "GLACIER_IR"}',
                             encryption='{"private/*": "aws:kms", "*": "AES256"}', kms_key_id=KEY_ARN))
    pdf = rules.headers_for("archive/report.pdf")
    assert (pdf.content_disposition, pdf.content_language, pdf.expires, pdf.storage_class, pdf.encryption,
            pdf.kms_key_id) == ("attachment", "en", "Tue, 01 Jan 2030 00:00:00 GMT", "GLACIER_IR", "AES256", None)
    secret = rules.headers_for("private/a.txt")
    assert (secret.content_disposition, secret.storage_class, secret.encryption, secret.kms_key_id) == \
        (None, None, "aws:kms", KEY_ARN)


def test_defaults_leave_every_new_field_unset():
    headers = HeaderRules(make()).headers_for("index.html")
    assert headers == ObjectHeaders(content_type="text/html; charset=utf-8")
    assert (headers.content_disposition, headers.content_language, headers.expires, headers.storage_class,
            headers.encryption, headers.kms_key_id) == (None,) * 6


# ---------------------------------------------------------------- differences

# What HeadObject reports for an object whose storage class and encryption came
# from a lifecycle rule and the bucket's default encryption.
OBSERVED = ObjectHeaders(content_type="text/plain", storage_class="STANDARD_IA", encryption="aws:kms",
                         kms_key_id=KEY_ARN)


def test_unset_storage_class_and_encryption_never_differ():
    wanted = ObjectHeaders(content_type="text/plain")
    assert diff.header_differences(wanted, OBSERVED, "STANDARD_IA") == []
    assert diff.header_differences(wanted, replace(OBSERVED, encryption="AES256", kms_key_id=None), "GLACIER") == []
    # and an object written before these settings existed (state rows without them)
    assert diff.header_differences(wanted, ObjectHeaders(content_type="text/plain"), "STANDARD") == []


def test_unset_plain_headers_mean_no_header_as_cache_control_does():
    wanted = ObjectHeaders(content_type="text/plain")
    observed = replace(wanted, content_disposition="attachment", content_language="en", expires="x")
    assert diff.header_differences(wanted, observed) == ["content_disposition", "content_language", "expires"]


@pytest.mark.parametrize("wanted, listed, changed", [
    (dict(storage_class="STANDARD"), "STANDARD_IA", ["storage_class"]),
    (dict(storage_class="STANDARD_IA"), "STANDARD_IA", []),
    (dict(encryption="AES256"), "STANDARD_IA", ["encryption"]),
    (dict(encryption="aws:kms"), "STANDARD_IA", []),
    (dict(encryption="aws:kms", kms_key_id=KEY_ARN), "STANDARD_IA", []),
    (dict(encryption="aws:kms", kms_key_id=KEY_ID), "STANDARD_IA", []),  # the id of the key S3 names by ARN
    (dict(encryption="aws:kms", kms_key_id="alias/site"), "STANDARD_IA", []),  # only KMS could tell
    (dict(encryption="aws:kms", kms_key_id="9999abcd-12ab-34cd-56ef-1234567890ab"), "STANDARD_IA", ["kms_key_id"]),
    (dict(encryption="aws:kms:dsse", kms_key_id=KEY_ARN), "STANDARD_IA", ["encryption"]),
])
def test_set_values_are_compared(wanted, listed, changed):
    assert diff.header_differences(ObjectHeaders(content_type="text/plain", **wanted), OBSERVED, listed) == changed


def test_storage_class_is_compared_with_the_listing_not_the_state():
    # The state recorded GLACIER_IR when it wrote the object; a lifecycle rule has
    # moved it since (the ETag stays): the listing tells.
    wanted = ObjectHeaders(content_type="text/plain", storage_class="GLACIER_IR")
    recorded = wanted
    assert diff.header_differences(wanted, recorded, "GLACIER_IR") == []
    assert diff.header_differences(wanted, recorded, "DEEP_ARCHIVE") == ["storage_class"]
    assert diff.header_differences(wanted, replace(recorded, storage_class=None)) == ["storage_class"]


def test_kms_key_matching():
    assert diff.kms_key_matches(KEY_ID, KEY_ARN)
    assert diff.kms_key_matches(KEY_ARN, KEY_ARN)
    assert not diff.kms_key_matches(KEY_ID, None)
    assert not diff.kms_key_matches("abcd", KEY_ARN)  # a suffix of the id is not the id
    assert diff.kms_key_matches("alias/x", KEY_ARN)


# ---------------------------------------------------------------- plan


def local(rel: str, size: int = 5) -> LocalFile:
    return LocalFile(rel=rel, key=rel, path="/src/" + rel, size=size, mtime_ns=0)


def plan_one(settings: Settings, remote: Optional[RemoteObject], detail: Optional[RemoteDetails],
             digest: Optional[Digest] = None, rel: str = "a.txt"):
    f = local(rel)
    remotes = {f.key: remote} if remote else {}
    digests = {f.key: digest or Digest(md5=MD5)}
    details = {f.key: detail} if detail else {}
    (action,) = diff.make_plan([f], remotes, digests, details, settings).actions
    return action


def observed(settings: Settings, **changes) -> RemoteDetails:
    headers = replace(HeaderRules(settings).headers_for("a.txt"), **changes)
    return RemoteDetails(headers=headers, sse=headers.encryption, kms_key=headers.kms_key_id,
                         storage_class=headers.storage_class)


def test_existing_deployment_sees_no_change():
    s = make()
    detail = observed(s, storage_class="STANDARD_IA", encryption="AES256")
    action = plan_one(s, RemoteObject("a.txt", 5, MD5, "STANDARD_IA"), detail)
    assert (action.kind, action.reason) == (Kind.SKIP, Reason.UNCHANGED)


@pytest.mark.parametrize("change, detail_text", [
    (dict(content_disposition="attachment"), "content_disposition"),
    (dict(content_language="en"), "content_language"),
    (dict(expires="2030-01-01"), "expires"),
    (dict(storage_class="GLACIER_IR"), "storage_class"),
    (dict(encryption="AES256"), "encryption"),
])
def test_a_changed_setting_is_a_header_update(change, detail_text):
    s = make(**change)
    action = plan_one(s, RemoteObject("a.txt", 5, MD5), observed(make()))
    assert (action.kind, action.reason, action.detail) == (Kind.UPDATE, Reason.HEADERS, detail_text)


@pytest.mark.parametrize("listed", ["GLACIER", "DEEP_ARCHIVE"])
def test_archived_objects_are_uploaded_again_instead_of_copied(listed):
    # CopyObject cannot read an object in GLACIER or DEEP_ARCHIVE before a restore.
    s = make(cache_control="max-age=60")
    action = plan_one(s, RemoteObject("a.txt", 5, MD5, listed), observed(make()))
    assert (action.kind, action.reason, action.detail) == (Kind.UPLOAD, Reason.HEADERS, "cache_control")
    # What a copy would keep, the upload keeps (see kept_args): the object as it is, with the listed class.
    assert action.headers == HeaderRules(s).headers_for("a.txt")
    assert action.remote is not None and action.remote.storage_class == listed
    ir = plan_one(s, RemoteObject("a.txt", 5, MD5, "GLACIER_IR"), observed(make()))
    assert ir.kind is Kind.UPDATE


def test_kms_encryption_records_the_md5_on_upload_and_on_copy():
    s = make(encryption="aws:kms")
    new = plan_one(s, None, None)
    assert (new.kind, new.md5) == (Kind.UPLOAD, MD5)  # its ETag will not be the MD5
    update = plan_one(s, RemoteObject("a.txt", 5, MD5), observed(make(), encryption="AES256"))
    assert (update.kind, update.detail, update.md5) == (Kind.UPDATE, "encryption", MD5)
    plain = plan_one(make(encryption="AES256"), None, None)
    assert plain.md5 is None


def test_md5_needs_names_new_and_resized_files_encrypted_with_kms():
    rules = HeaderRules(make(encryption='{"private/*": "aws:kms"}'))
    files = [local("private/new.txt"), local("private/resized.txt"), local("private/same.txt"), local("public.txt")]
    remotes = {"private/resized.txt": RemoteObject("private/resized.txt", 9, "e"),
               "private/same.txt": RemoteObject("private/same.txt", 5, "e")}
    def md5_needed(rules: HeaderRules) -> set:
        """Files whose MD5 is read for their upload, not for a comparison."""
        return {f.key for f in files
                if (need := needs.next_need(f, remotes.get(f.key), None, None, None,
                                            rules.headers_for(f.rel, f.path).encryption)) is not None
                and need.md5 and needs.hash_needs(f, remotes.get(f.key)) is None}

    assert md5_needed(rules) == {"private/new.txt", "private/resized.txt"}
    assert md5_needed(HeaderRules(make())) == set()


# ---------------------------------------------------------------- request arguments


def test_header_args_carry_every_set_field():
    headers = ObjectHeaders(content_type="application/pdf", content_disposition="attachment", content_language="en",
                            expires="Tue, 01 Jan 2030 00:00:00 GMT", storage_class="STANDARD_IA",
                            encryption="aws:kms", kms_key_id=KEY_ARN)
    args = header_args(headers)
    assert args == {"ContentType": "application/pdf", "ContentDisposition": "attachment", "ContentLanguage": "en",
                    "Expires": "Tue, 01 Jan 2030 00:00:00 GMT", "StorageClass": "STANDARD_IA",
                    "ServerSideEncryption": "aws:kms", "SSEKMSKeyId": KEY_ARN}
    assert header_args(ObjectHeaders(content_type="text/plain")) == {"ContentType": "text/plain"}


class _Recorder:
    def __init__(self):
        self.calls = []

    def copy_object(self, **kwargs):
        self.calls.append(kwargs)
        return {"CopyObjectResult": {"ETag": "\"0\""}}


def copy_args(headers: ObjectHeaders, details: RemoteDetails, md5: Optional[str] = None) -> dict:
    store = Store(Settings.create(bucket="my-bucket", endpoint="http://127.0.0.1:9"))
    store.client = _Recorder()
    store.copy_headers("k", headers, details, md5)
    (call,) = store.client.calls
    return {k: v for k, v in call.items() if k in ("ServerSideEncryption", "SSEKMSKeyId", "StorageClass", "Metadata")}


OTHER_KEY = "arn:aws:kms:us-east-1:123456789012:key/other"
KMS_IA = RemoteDetails(headers=ObjectHeaders(content_type="text/plain"), sse="aws:kms", kms_key=OTHER_KEY,
                       storage_class="STANDARD_IA")


def test_kept_args_fill_in_only_what_the_settings_leave_unset():
    plain = ObjectHeaders(content_type="text/plain")
    assert kept_args(plain, None) == {}
    assert kept_args(plain, KMS_IA) == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": OTHER_KEY,
                                        "StorageClass": "STANDARD_IA"}
    assert kept_args(replace(plain, storage_class="STANDARD", encryption="AES256"), KMS_IA) == {}
    assert kept_args(replace(plain, encryption="aws:kms:dsse"), KMS_IA) == {"SSEKMSKeyId": OTHER_KEY,
                                                                             "StorageClass": "STANDARD_IA"}
    sse_c = RemoteDetails(headers=plain, sse="SSE-C", storage_class="STANDARD")
    assert kept_args(plain, sse_c) == {}  # only its owner's key could keep it


def test_copy_keeps_what_the_settings_leave_unset():
    assert copy_args(ObjectHeaders(content_type="text/plain"), KMS_IA) == {
        "ServerSideEncryption": "aws:kms", "SSEKMSKeyId": OTHER_KEY, "StorageClass": "STANDARD_IA"}
    aes = RemoteDetails(headers=ObjectHeaders(content_type="text/plain"), sse="AES256", storage_class="STANDARD")
    assert copy_args(ObjectHeaders(content_type="text/plain"), aes) == {"ServerSideEncryption": "AES256"}


def test_copy_applies_what_the_settings_set():
    wanted = ObjectHeaders(content_type="text/plain", storage_class="STANDARD", encryption="aws:kms", kms_key_id=KEY_ARN)
    assert copy_args(wanted, KMS_IA) == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": KEY_ARN,
                                         "StorageClass": "STANDARD"}
    # aws:kms without a key: the object's key stays; AES256: no key at all
    assert copy_args(ObjectHeaders(content_type="text/plain", encryption="aws:kms"), KMS_IA)["SSEKMSKeyId"] == OTHER_KEY
    assert copy_args(ObjectHeaders(content_type="text/plain", encryption="AES256"), KMS_IA) == {
        "ServerSideEncryption": "AES256", "StorageClass": "STANDARD_IA"}
    # the MD5 of the plan goes into the metadata (base64), as on upload
    assert copy_args(ObjectHeaders(content_type="text/plain", encryption="aws:kms"), KMS_IA, MD5)["Metadata"] == {
        "md5chksum": "ASNFZ4mrze8BI0VniavN7w=="}
