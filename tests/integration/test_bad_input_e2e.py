"""Bad input, table-driven over every setting: the real `drone-s3-sync`
command, one run per case, against the recording moto server.

Each case must end with exit 2, a message on stderr that names the setting
the way the user wrote it (the variable, flag or config-file key) and says
which forms are accepted, no Python traceback, and not one request to the
server (for any bucket or none). The table is walked through `OPTIONS`, so a
setting added without a row here fails `test_bad_input`; boolean settings
share the generic rows.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from drone_s3_sync.config import OPTIONS


@dataclass(frozen=True)
class Bad:
    env: Dict[str, Optional[str]]  # None unsets a variable run_sync would set
    names: str  # how the message must name the setting
    forms: Tuple[str, ...]  # words of the accepted forms the message must give
    args: Tuple[str, ...] = ()
    files: Dict[str, str] = field(default_factory=dict)  # config files, written into the workspace
    id: str = ""


def bad(var: str, value: Optional[str], *forms: str, id: str, **more) -> Bad:
    return Bad(env={var: value}, names=var, forms=forms, id=id, **more)


RULES = "map of pattern to value"

# Every boolean setting gets these.
BOOLEAN_ROWS = (("maybe", "maybe"), ("2", "two"))

ROWS: Dict[str, List[Bad]] = {
    "bucket": [
        bad("PLUGIN_BUCKET", "my bucket", "3 to 63", "s3://name", id="space"),
        bad("PLUGIN_BUCKET", "x", "3 to 63", id="too-short"),
        bad("PLUGIN_BUCKET", "-bucket-", "3 to 63", id="hyphens"),
        bad("PLUGIN_BUCKET", None, "--bucket", "'bucket:' in the config file", id="missing"),
        bad("PLUGIN_BUCKET", "   ", "--bucket", id="blank"),
    ],
    "region": [
        bad("PLUGIN_REGION", "EU West", "like us-east-1", id="words"),
        bad("PLUGIN_REGION", "us_east_1", "like us-east-1", id="underscores"),
        bad("AWS_REGION", "Frankfurt!", "like us-east-1", id="alias"),
    ],
    "source": [
        bad("PLUGIN_SOURCE", "no-such-folder", "does not exist", "a folder, a single file, or a glob", id="missing"),
        bad("PLUGIN_SOURCE", "missing/**/*.html", "does not exist", "a glob such as", id="glob-base-missing"),
        bad("PLUGIN_SOURCE", "a.txt/*.html", "not a folder or a file", "a folder, a single file", id="glob-in-file"),
    ] + ([bad("PLUGIN_SOURCE", "/dev/null", "not a folder or a file", "a glob such as", id="device")]
         if sys.platform != "win32" else []),
    "exclude": [
        bad("PLUGIN_EXCLUDE", "../secret/*", "'.' or '..' segments", "relative to the source like 'drafts/*'",
            id="dotdot"),
        bad("PLUGIN_EXCLUDE", '{"drafts": true}', "got a map", "several separated by commas", id="map"),
        bad("PLUGIN_EXCLUDE", '["drafts",', "invalid JSON", id="bad-json"),
    ],
    "include": [
        bad("PLUGIN_INCLUDE", "./docs/*", "'.' or '..' segments", "relative to the source like 'drafts/*'",
            id="dot"),
        bad("PLUGIN_INCLUDE", '["docs", ["api"]]', "got a list", id="nested-list"),
    ],
    "target": [
        bad("PLUGIN_TARGET", "../x", "'/' for the bucket root", id="dotdot"),
        bad("PLUGIN_TARGET", "site/../../other", "a key prefix such as", id="dotdot-inside"),
        bad("PLUGIN_TARGET", "site\\docs", "use '/' to separate folders", id="backslash"),
    ],
    "max_delete": [
        bad("PLUGIN_MAX_DELETE", "150%", "more than 100%", "such as 100", "such as 10%", id="over-100"),
        bad("PLUGIN_MAX_DELETE", "-1", "such as 100", "such as 10%", id="negative"),
        bad("PLUGIN_MAX_DELETE", "ten", "such as 100", id="word"),
        bad("PLUGIN_MAX_DELETE", "1.5", "whole number", id="fraction"),
        bad("PLUGIN_MAX_DELETE", "%", "not a percentage", id="percent-sign"),
        Bad(env={}, names="--max-delete", forms=("such as 10%",), args=("--max-delete", "150%"), id="flag"),
        Bad(env={}, names="max_delete (in deploy.yml)", forms=("such as 10%",), args=("--config", "deploy.yml"),
            files={"deploy.yml": "max_delete: -5\n"}, id="config-file"),
    ],
    "acl": [
        bad("PLUGIN_ACL", "pubic-read", "did you mean 'public-read'", "use one of private, public-read", id="unknown"),
        bad("PLUGIN_ACL", '["public-read"]', RULES, id="list"),
        bad("PLUGIN_ACL", '{"img/*": "world"}', "use one of private", id="unknown-in-map"),
        bad("PLUGIN_ACL", '{"img/*": "public-read"', "invalid JSON", RULES, id="bad-json"),
        bad("PLUGIN_ACCESS", "public", "use one of private", id="alias"),
    ],
    "content_type": [
        bad("PLUGIN_CONTENT_TYPE", '{".svg": "image/svg+xml",}', "invalid JSON", RULES, id="bad-json"),
        bad("PLUGIN_CONTENT_TYPE", '["text/plain"]', RULES, id="list"),
        bad("PLUGIN_CONTENT_TYPE", '{".txt": "text/plain; charset=\u00fc"}', "printable ASCII", id="non-ascii"),
        bad("PLUGIN_CONTENT_TYPE", '{".txt": {"a": "b"}}', "expected a text value", id="nested-map"),
    ],
    "content_encoding": [
        bad("PLUGIN_CONTENT_ENCODING", '{".js": ""}', "give a value or leave the rule out", id="empty"),
        bad("PLUGIN_CONTENT_ENCODING", '["gzip"]', RULES, id="list"),
        bad("PLUGIN_CONTENT_ENCODING", "{gzip}", "invalid JSON", RULES, id="bad-json"),
    ],
    "compress": [
        bad("PLUGIN_COMPRESS", "zip", "did you mean 'gzip'", "use gzip, br or none", id="unknown"),
        bad("PLUGIN_COMPRESS", "brotli", "brotli is 'br'", "use gzip, br or none", id="brotli-name"),
        bad("PLUGIN_COMPRESS", '{".html": "br", ".css": "7z"}', "rule '.css'", "use gzip, br or none", id="unknown-in-map"),
        bad("PLUGIN_COMPRESS", ".html,css", "not an extension like .html", "a list of extensions", id="list-item"),
        bad("PLUGIN_COMPRESS", '{".html": "gzip"', "invalid JSON", "use gzip, br or none", id="bad-json"),
        # br with the Brotli package hidden: a module on PYTHONPATH whose import fails.
        Bad(env={"PLUGIN_COMPRESS": '{".html": "br"}', "PYTHONPATH": "no-brotli"}, names="PLUGIN_COMPRESS",
            forms=("pip install 'drone-s3-sync[brotli]'",), files={"no-brotli/brotli.py": "raise ImportError('hidden')\n"},
            id="br-without-brotli"),
    ],
    "cache_control": [
        bad("PLUGIN_CACHE_CONTROL", '{".html": "max-age=60",', "invalid JSON", RULES, id="bad-json"),
        bad("PLUGIN_CACHE_CONTROL", '["max-age=60"]', RULES, id="list"),
        bad("PLUGIN_CACHE_CONTROL", '{".html": "a", ".html": "b"}', "give each key once", id="duplicate-key"),
    ],
    "content_disposition": [
        bad("PLUGIN_CONTENT_DISPOSITION", '["attachment"]', RULES, id="list"),
        bad("PLUGIN_CONTENT_DISPOSITION", '{".pdf": ""}', "give a value or leave the rule out", id="empty"),
    ],
    "content_language": [
        bad("PLUGIN_CONTENT_LANGUAGE", "fran\u00e7ais", "printable ASCII", id="non-ascii"),
        bad("PLUGIN_CONTENT_LANGUAGE", '{"*.html": "en",', "invalid JSON", RULES, id="bad-json"),
    ],
    "expires": [
        bad("PLUGIN_EXPIRES", "next week", "not a date", "HTTP-date", "ISO 8601", id="words"),
        bad("PLUGIN_EXPIRES", '{".pdf": "2030-02-30"}', "rule '.pdf'", "not a date", id="no-such-day"),
        Bad(env={}, names="expires (in deploy.yml)", forms=(RULES,), args=("--config", "deploy.yml"),
            files={"deploy.yml": "expires: [2030-01-01]\n"}, id="config-file-list"),
    ],
    "storage_class": [
        bad("PLUGIN_STORAGE_CLASS", "STANDART_IA", "did you mean 'STANDARD_IA'?", "use one of STANDARD,", id="typo"),
        bad("PLUGIN_STORAGE_CLASS", '{"*.iso": "COLD"}', "not an S3 storage class", "EXPRESS_ONEZONE", id="in-map"),
    ],
    "encryption": [
        bad("PLUGIN_ENCRYPTION", "kms", "did you mean 'aws:kms'?", "AES256, aws:kms, aws:kms:dsse", id="typo"),
        bad("PLUGIN_ENCRYPTION", "SSE-C", "not a server-side encryption", "AES256, aws:kms", id="sse-c"),
    ],
    "kms_key_id": [
        bad("PLUGIN_KMS_KEY_ID", "1234abcd-12ab-34cd-56ef-1234567890ab", "set encryption to one of them too",
            id="without-encryption"),
        Bad(env={"PLUGIN_ENCRYPTION": "AES256", "PLUGIN_KMS_KEY_ID": "alias/site"}, names="PLUGIN_KMS_KEY_ID",
            forms=("aws:kms or aws:kms:dsse",), id="with-aes256"),
        Bad(env={"PLUGIN_ENCRYPTION": "aws:kms", "PLUGIN_KMS_KEY_ID": "my key"}, names="PLUGIN_KMS_KEY_ID",
            forms=("a key ARN, alias/NAME",), id="space"),
    ],
    "metadata": [
        bad("PLUGIN_METADATA", "{not json}", "invalid JSON", '{"key": "value"}', id="bad-json"),
        bad("PLUGIN_METADATA", '["a"]', '{"key": "value"}', id="list"),
        bad("PLUGIN_METADATA", "abc", '{"key": "value"}', id="plain-string"),
        bad("PLUGIN_METADATA", '{"a": "1", "*.png": {"b": "2"}}', "use one form", id="mixed-forms"),
        bad("PLUGIN_METADATA", '{"bad name": "1"}', "letters, digits", id="bad-name"),
        bad("PLUGIN_METADATA", '{"Author": "a", "author": "b"}', "give it once", id="same-name-twice"),
    ],
    "redirects": [
        bad("PLUGIN_REDIRECTS", '{"old": "/new"', "invalid JSON", '{"old/page.html": "/new/page.html"}',
            id="bad-json"),
        bad("PLUGIN_REDIRECTS", '["old", "/new"]', '{"old/page.html": "/new/page.html"}', id="list"),
        bad("PLUGIN_REDIRECTS", "old.html", '{"old/page.html": "/new/page.html"}', id="plain-string"),
        bad("PLUGIN_REDIRECTS", '{"../x": "/y"}', "relative to the target", id="dotdot"),
        bad("PLUGIN_REDIRECTS", '{"folder/": "/y"}', "like 'old/page.html'", id="folder"),
        # Conflicts: with the source, with the state object, with itself.
        bad("PLUGIN_REDIRECTS", '{"a.txt": "/b.txt"}', "remove the file or the redirect", id="clash-with-file"),
        bad("PLUGIN_REDIRECTS", '{".drone-s3-sync-state.json.gz": "/"}', "choose another key", id="state-name"),
        bad("PLUGIN_REDIRECTS", '{"a": "/x", "/a": "/y"}', "give each key once", id="same-key-twice"),
    ],
    "cloudfront_distribution": [
        bad("PLUGIN_CLOUDFRONT_DISTRIBUTION", "E1/../x", "ids like", "separated by commas", id="path"),
        bad("PLUGIN_CLOUDFRONT_DISTRIBUTION", '{"id": "E1"}', "ids like", id="map"),
    ],
    "invalidation_paths": [
        bad("PLUGIN_INVALIDATION_PATHS", "docs/*", "does not start with '/'", "like /index.html,/docs/*", id="no-slash"),
        bad("PLUGIN_INVALIDATION_PATHS", "/index.html,about.html", "'about.html' does not start with '/'",
            id="second-item"),
        bad("PLUGIN_INVALIDATION_PATHS", "/docs/*.html", "'*' is a wildcard only as the last character",
            id="inner-wildcard"),
        bad("PLUGIN_INVALIDATION_PATHS", "/" + "x" * 4000, "longer than CloudFront's limit of 4,000", id="too-long"),
        bad("PLUGIN_INVALIDATION_PATHS", ",".join(f"/d{i}/*" for i in range(16)), "at most 15", id="16-wildcards"),
        bad("PLUGIN_INVALIDATION_PATHS", '{"/a": "/b"}', "got a map", "a JSON or YAML list", id="map"),
        Bad(env={}, names="invalidation_paths (in deploy.yml)", forms=("does not start with '/'",),
            args=("--config", "deploy.yml"), files={"deploy.yml": "invalidation_paths:\n  - /ok\n  - docs/\n"},
            id="config-file"),
    ],
    "cloudfront_wait_timeout": [
        bad("PLUGIN_CLOUDFRONT_WAIT_TIMEOUT", "0", "more than 0 and at most 3600 seconds", id="zero"),
        bad("PLUGIN_CLOUDFRONT_WAIT_TIMEOUT", "15m", "not a number of seconds", id="unit"),
    ],
    "order": [bad("PLUGIN_ORDER", "../x", "patterns relative to the source", id="outside")],
    "acl_scrub": [bad("PLUGIN_ACL_SCRUB", "lots", "not a whole number of 0 or more", id="words")],
    "delete_grace": [
        bad("PLUGIN_DELETE_GRACE", "7 days", "not a duration; use a duration such as 7d", id="words"),
        bad("PLUGIN_DELETE_GRACE", "400d", "more than a year", id="too-long"),
    ],
    "ignore_unsupported": [
        bad("PLUGIN_IGNORE_UNSUPPORTED", "acl,tags", "'tags' is not something a server can leave out", id="unknown"),
    ],
    "lock_timeout": [
        bad("PLUGIN_LOCK_TIMEOUT", "-1", "more than 0 and at most 3600 seconds", id="negative"),
        bad("PLUGIN_LOCK_TIMEOUT", "5m", "not a number of seconds", id="unit"),
    ],
    "dry_run": [bad("DRY_RUN", "perhaps", "true or false", id="alias")],
    "endpoint": [
        bad("PLUGIN_ENDPOINT", "ftp://x", "https://s3.example.com", id="ftp"),
        bad("PLUGIN_ENDPOINT", "not a url", "https://s3.example.com", id="words"),
        bad("PLUGIN_ENDPOINT", "http://", "https://s3.example.com", id="no-host"),
        bad("PLUGIN_ENDPOINT", "http://127.0.0.1:99999", "1 to 65535", id="bad-port"),
        Bad(env={"PLUGIN_ENDPOINT": None, "S3_ENDPOINT": "minio :9000"}, names="S3_ENDPOINT",
            forms=("https://s3.example.com",), id="alias"),
    ],
    "max_concurrency": [
        bad("PLUGIN_MAX_CONCURRENCY", "0", "use 1 to 1000", id="zero"),
        bad("PLUGIN_MAX_CONCURRENCY", "-4", "use 1 to 1000", id="negative"),
        bad("PLUGIN_MAX_CONCURRENCY", "lots", "use 1 to 1000", id="word"),
        bad("PLUGIN_MAX_CONCURRENCY", "2.5", "use 1 to 1000", id="fraction"),
        bad("PLUGIN_MAX_CONCURRENCY", "100000", "use 1 to 1000", id="huge"),
    ],
    "read_timeout": [
        bad("PLUGIN_READ_TIMEOUT", "0", "more than 0 and at most 3600 seconds", id="zero"),
        bad("PLUGIN_READ_TIMEOUT", "soon", "not a number of seconds", id="word"),
    ],
    "max_attempts": [
        bad("PLUGIN_MAX_ATTEMPTS", "0", "use 1 to 20", id="zero"),
        bad("PLUGIN_MAX_ATTEMPTS", "many", "use 1 to 20", id="word"),
    ],
    "multipart_threshold": [
        bad("PLUGIN_MULTIPART_THRESHOLD", "1MiB", "use 5MiB to 5GiB", id="small"),
        bad("PLUGIN_MULTIPART_THRESHOLD", "big", "like 16MiB", id="word"),
    ],
    "part_size": [
        bad("PLUGIN_PART_SIZE", "6GiB", "use 5MiB to 5GiB", id="huge"),
        bad("PLUGIN_PART_SIZE", "-8MiB", "like 16MiB", id="negative"),
        bad("PLUGIN_PART_SIZE", '{"a": 1}', "like 16MiB", id="map"),
    ],
    "progress_interval": [
        bad("PLUGIN_PROGRESS_INTERVAL", "-5", "use 0 to 3600 seconds", "0 turns it off", id="negative"),
        bad("PLUGIN_PROGRESS_INTERVAL", "often", "not a number of seconds", "0 turns it off", id="word"),
    ],
    "report": [
        bad("PLUGIN_REPORT", "no-such-folder/report.json", "does not exist", "create it first", "such as report.json",
            id="missing-folder"),
        bad("PLUGIN_REPORT", ".", "is a folder", "such as report.json", id="folder"),
        bad("PLUGIN_REPORT", "a.txt/report.json", "is not a folder", id="under-a-file"),
        Bad(env={}, names="--report", forms=("does not exist",), args=("--report", "out/r.json"), id="flag"),
        Bad(env={}, names="report (in deploy.yml)", forms=("does not exist",), args=("--config", "deploy.yml"),
            files={"deploy.yml": "report: reports/run.json\n"}, id="config-file"),
    ],
    "session_token": [
        Bad(env={"PLUGIN_SESSION_TOKEN": "a-token-without-keys", "AWS_ACCESS_KEY_ID": None,
                 "AWS_SECRET_ACCESS_KEY": None}, names="PLUGIN_SESSION_TOKEN",
            forms=("set access_key and secret_key too",), id="no-keys"),
        Bad(env={"PLUGIN_ACCESS_KEY": "AKIAEXAMPLE", "PLUGIN_SECRET_KEY": "pair-secret-417",
                  "PLUGIN_SESSION_TOKEN": "tok\nen"}, names="PLUGIN_SESSION_TOKEN",
            forms=("give the key alone",), id="line-break"),
    ],
    "assume_role": [
        bad("PLUGIN_ASSUME_ROLE", "arn:aws:iam::1234:role/x", "arn:aws:iam::123456789012:role/", id="short-account"),
        bad("ASSUME_ROLE", "deploy", "arn:aws:iam::", id="alias-name-only"),
    ],
    "assume_role_session_name": [
        Bad(env={"PLUGIN_ASSUME_ROLE": "arn:aws:iam::123456789012:role/deploy", "PLUGIN_ASSUME_ROLE_SESSION_NAME": "my session"},
            names="PLUGIN_ASSUME_ROLE_SESSION_NAME", forms=("2-64 of A-Z a-z 0-9",), id="space"),
        bad("PLUGIN_ASSUME_ROLE_SESSION_NAME", "deploy", "set assume_role too", id="without-role"),
    ],
    "external_id": [
        Bad(env={"PLUGIN_ASSUME_ROLE": "arn:aws:iam::123456789012:role/deploy", "PLUGIN_EXTERNAL_ID": "x"},
            names="PLUGIN_EXTERNAL_ID", forms=("2-1224 of",), id="short"),
    ],
    "oidc_token_id": [
        Bad(env={"PLUGIN_ASSUME_ROLE": "arn:aws:iam::123456789012:role/deploy", "PLUGIN_OIDC_TOKEN_ID": "a b"},
            names="PLUGIN_OIDC_TOKEN_ID", forms=("4 to 20,000 characters",), id="space"),
        bad("PLUGIN_OIDC_TOKEN_ID", "eyJhbGciOi", "set assume_role too", id="without-role"),
    ],
    "profile": [
        bad("PLUGIN_PROFILE", "no-such-profile", "AWS config or credentials file", id="unknown"),
        Bad(env={"PLUGIN_PROFILE": "deploy", "PLUGIN_ACCESS_KEY": "AKIAEXAMPLE", "PLUGIN_SECRET_KEY": "pair-secret-417"},
            names="PLUGIN_PROFILE", forms=("use one of them",), id="with-keys"),
    ],
    "access_key": [
        Bad(env={"PLUGIN_ACCESS_KEY": "AKIA EXAMPLE", "PLUGIN_SECRET_KEY": "pair-secret-417"},
            names="PLUGIN_ACCESS_KEY", forms=("give the key alone",), id="space"),
        # Left to boto3's credential chain (with AWS_SESSION_TOKEN), but checked all the same.
        Bad(env={"AWS_ACCESS_KEY_ID": "AKIA\nEXAMPLE417"}, names="AWS_ACCESS_KEY_ID",
            forms=("give the key alone",), id="aws-variable"),
    ],
    "secret_key": [
        Bad(env={"PLUGIN_ACCESS_KEY": "AKIAEXAMPLE", "PLUGIN_SECRET_KEY": "first-line-417\nsecond-line-417"},
            names="PLUGIN_SECRET_KEY", forms=("give the key alone",), id="two-lines"),
    ],
}


def cases() -> Iterator:
    for option in OPTIONS:
        rows = list(ROWS.get(option.name, ()))
        if option.flag:
            rows += [bad(option.env[0], value, "true or false", id=name) for value, name in BOOLEAN_ROWS]
        if not rows:
            yield pytest.param(option.name, None, id=f"{option.name}-NO-ROW")
        for row in rows:
            yield pytest.param(option.name, row, id=f"{option.name}-{row.id}")


@pytest.mark.parametrize("setting, row", list(cases()))
def test_bad_input(setting: str, row: Optional[Bad], run_sync, s3_server, bucket, make_tree) -> None:
    if row is None:
        pytest.fail(f"the setting {setting!r} has no bad-input row in ROWS")
    ws = make_tree({"a.txt": "a", **row.files})
    env: Dict[str, Optional[str]] = {"PLUGIN_BUCKET": bucket, "PLUGIN_SOURCE": "."}
    env.update(row.env)
    s3_server.reset()

    proc = run_sync(env, cwd=ws, args=row.args)

    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, (proc.returncode, output)
    assert "Traceback" not in output
    assert s3_server.requests == [], s3_server.requests  # for this bucket, any other, or none
    message = [line for line in proc.stderr.splitlines() if line.startswith("drone-s3-sync: invalid setting ")]
    assert len(message) == 1, proc.stderr
    assert row.names in message[0], message[0]
    for words in row.forms:
        assert words in message[0], message[0]
    if setting in ("access_key", "secret_key"):
        for value in row.env.values():
            for part in (value or "").split():
                assert part not in output, "a key was printed"


def test_every_setting_has_rows() -> None:
    # Also caught per setting above; this names all missing ones at once.
    missing = [o.name for o in OPTIONS if not o.flag and o.name not in ROWS]
    assert missing == []
    assert set(ROWS) <= {o.name for o in OPTIONS}, "a row for a setting that no longer exists"


def test_settings_that_only_warn(run_sync, s3_server, bucket, make_tree) -> None:
    """Combinations that are valid but do nothing get a warning, not an error:
    a pipeline may switch `delete` with a variable and keep its limits."""
    ws = make_tree({"a.txt": "a"})
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_MAX_DELETE": "5", "PLUGIN_ALLOW_EMPTY_SOURCE": "true",
                     "PLUGIN_VERIFY": "true", "PLUGIN_STATE": "false"}, cwd=ws)
    assert proc.returncode == 0, proc.stderr
    assert "warning: PLUGIN_MAX_DELETE has no effect without delete" in proc.stderr
    assert "warning: PLUGIN_ALLOW_EMPTY_SOURCE has no effect without delete" in proc.stderr
    assert "verify" not in proc.stderr.lower()  # verify without state is no conflict
    assert s3_server.ops(bucket)["PutObject"] == 1  # a.txt, and no state object
