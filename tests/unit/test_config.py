"""Settings from PLUGIN_* variables, flags and a YAML file (config.py, pure)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Dict, Optional

import pytest

from drone_s3_sync import cli, config
from drone_s3_sync import sources
from drone_s3_sync.config import OPTIONS, Settings, build_settings
from drone_s3_sync.sources import from_sources, secrets_of
from drone_s3_sync.errors import ConfigError

BUCKET = {"PLUGIN_BUCKET": "my-bucket"}


def env_settings(extra: Optional[Dict[str, str]] = None, argv: tuple = ()) -> Settings:
    environ = dict(BUCKET)
    environ.update(extra or {})
    return from_sources(list(argv), environ)


def write_yaml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- defaults


def test_defaults_with_only_a_bucket() -> None:
    s = env_settings()
    assert s.bucket == "my-bucket"
    assert s.region == "us-east-1"
    assert s.source == "."
    assert s.target == ""
    assert s.delete is False
    assert s.dry_run is False
    assert s.path_style is False
    assert s.acl == () and s.content_type == () and s.content_encoding == () and s.cache_control == ()
    assert s.metadata == () and s.redirects == () and s.cloudfront_distribution == ()
    assert s.endpoint == ""
    assert s.max_concurrency == 64
    assert s.read_timeout == 60 and s.max_attempts == 8
    assert s.access_key == "" and s.secret_key == ""


# ---------------------------------------------------------------- every setting by its PLUGIN_* name


@pytest.mark.parametrize(
    "var, value, attr, expected",
    [
        ("PLUGIN_BUCKET", "other-bucket", "bucket", "other-bucket"),
        ("PLUGIN_REGION", "eu-west-1", "region", "eu-west-1"),
        ("PLUGIN_SOURCE", "folder/to/archive", "source", "folder/to/archive"),
        ("PLUGIN_TARGET", "/target/location", "target", "target/location/"),
        ("PLUGIN_DELETE", "true", "delete", True),
        ("PLUGIN_ACL", "public-read", "acl", (("*", "public-read"),)),
        ("PLUGIN_CONTENT_TYPE", "text/plain", "content_type", (("*", "text/plain"),)),
        ("PLUGIN_CONTENT_ENCODING", "gzip", "content_encoding", (("*", "gzip"),)),
        ("PLUGIN_CACHE_CONTROL", "public, max-age: 31536000", "cache_control", (("*", "public, max-age: 31536000"),)),
        ("PLUGIN_METADATA", '{"custom-meta": "abc123"}', "metadata", (("*", (("custom-meta", "abc123"),)),)),
        ("PLUGIN_REDIRECTS", '{"some/missing/file": "/somewhere/that/actually/exists"}', "redirects",
         (("some/missing/file", "/somewhere/that/actually/exists"),)),
        ("PLUGIN_CLOUDFRONT_DISTRIBUTION", "9c5785d3ece6a9cdefa4", "cloudfront_distribution", ("9c5785d3ece6a9cdefa4",)),
        ("PLUGIN_DRY_RUN", "true", "dry_run", True),
        ("PLUGIN_ENDPOINT", "http://127.0.0.1:9000", "endpoint", "http://127.0.0.1:9000"),
        ("PLUGIN_PATH_STYLE", "true", "path_style", True),
        ("PLUGIN_MAX_CONCURRENCY", "8", "max_concurrency", 8),
        ("PLUGIN_READ_TIMEOUT", "5", "read_timeout", 5.0),
        ("PLUGIN_READ_TIMEOUT", "0.5", "read_timeout", 0.5),
        ("PLUGIN_MAX_ATTEMPTS", "3", "max_attempts", 3),
        ("PLUGIN_MAX_ATTEMPTS", "1", "max_attempts", 1),
        # aliases
        ("PLUGIN_ACCESS", "public-read", "acl", (("*", "public-read"),)),
        ("DRY_RUN", "true", "dry_run", True),
        ("S3_SYNC_ENDPOINT", "http://minio:9000", "endpoint", "http://minio:9000"),
        ("S3_ENDPOINT", "http://minio:9000", "endpoint", "http://minio:9000"),
        ("AWS_REGION", "ap-southeast-2", "region", "ap-southeast-2"),
    ],
)
def test_each_setting_from_its_variable(var: str, value: str, attr: str, expected: Any) -> None:
    assert getattr(env_settings({var: value}), attr) == expected


def test_key_pair_from_plugin_variables_trimmed() -> None:
    s = env_settings({"PLUGIN_ACCESS_KEY": " AKIAEXAMPLE \n", "PLUGIN_SECRET_KEY": "\tsecret/value+1 "})
    assert s.access_key == "AKIAEXAMPLE"
    assert s.secret_key == "secret/value+1"


@pytest.mark.parametrize(
    "environ, attr, expected",
    [
        ({"PLUGIN_ACL": "private", "PLUGIN_ACCESS": "public-read"}, "acl", (("*", "private"),)),
        ({"PLUGIN_DRY_RUN": "false", "DRY_RUN": "true"}, "dry_run", False),
        ({"PLUGIN_ENDPOINT": "http://a:1", "S3_SYNC_ENDPOINT": "http://b:2", "S3_ENDPOINT": "http://c:3"},
         "endpoint", "http://a:1"),
        ({"S3_SYNC_ENDPOINT": "http://b:2", "S3_ENDPOINT": "http://c:3"}, "endpoint", "http://b:2"),
        ({"PLUGIN_REGION": "eu-west-1", "AWS_REGION": "us-west-2"}, "region", "eu-west-1"),
        # an empty variable (Drone sets unset settings to "") does not hide the alias
        ({"PLUGIN_ACL": "", "PLUGIN_ACCESS": "public-read"}, "acl", (("*", "public-read"),)),
        ({"PLUGIN_DRY_RUN": "", "DRY_RUN": "1"}, "dry_run", True),
    ],
)
def test_alias_priority(environ: Dict[str, str], attr: str, expected: Any) -> None:
    assert getattr(env_settings(environ), attr) == expected


@pytest.mark.parametrize(
    "environ",
    [
        {"PLUGIN_ACCESS_KEY": "AKIAPLUGIN", "AWS_SECRET_ACCESS_KEY": "aws-secret"},
        {"AWS_ACCESS_KEY_ID": "AKIAPLUGIN", "PLUGIN_SECRET_KEY": "aws-secret"},
    ],
    ids=["plugin-access+aws-secret", "aws-access+plugin-secret"],
)
def test_key_pair_completed_from_aws_variables(environ: Dict[str, str]) -> None:
    # Issue 3: PLUGIN_ACCESS_KEY (else AWS_ACCESS_KEY_ID), PLUGIN_SECRET_KEY (else
    # AWS_SECRET_ACCESS_KEY), as the original plugin's flags declared. A pair made
    # of one PLUGIN_* and one AWS_* variable worked there.
    s = env_settings(environ)
    assert (s.access_key, s.secret_key) == ("AKIAPLUGIN", "aws-secret")


@pytest.mark.parametrize(
    "environ",
    [{"PLUGIN_ACCESS_KEY": "AKIAONLY"}, {"PLUGIN_SECRET_KEY": "only-the-secret"}],
)
def test_half_a_key_pair_is_dropped(environ: Dict[str, str]) -> None:
    s = env_settings(environ)
    assert s.access_key == "" and s.secret_key == ""


# ---------------------------------------------------------------- Drone's encodings


@pytest.mark.parametrize(
    "raw, expected",
    [("true", True), ("false", False), ("1", True), ("0", False), ("TRUE", True), ("False", False)],
)
def test_boolean_strings(raw: str, expected: bool) -> None:
    s = env_settings({"PLUGIN_DELETE": raw, "PLUGIN_DRY_RUN": raw, "PLUGIN_PATH_STYLE": raw})
    assert (s.delete, s.dry_run, s.path_style) == (expected, expected, expected)


@pytest.mark.parametrize("raw, expected", [("1", 1), ("64", 64), (" 16 ", 16)])
def test_int_strings(raw: str, expected: int) -> None:
    assert env_settings({"PLUGIN_MAX_CONCURRENCY": raw}).max_concurrency == expected


@pytest.mark.parametrize("raw, expected", [
    ("8388608", 8 * 1024 * 1024), ("8MiB", 8 << 20), ("8MB", 8 << 20), ("8m", 8 << 20), (" 16 MiB ", 16 << 20),
    ("1GiB", 1 << 30), ("5.5MiB", int(5.5 * (1 << 20))), ("5GiB", 5 << 30),
])
def test_sizes(raw: str, expected: int) -> None:
    s = env_settings({"PLUGIN_PART_SIZE": raw, "PLUGIN_MULTIPART_THRESHOLD": raw})
    assert (s.part_size, s.multipart_threshold) == (expected, expected)


def test_size_defaults() -> None:
    s = env_settings({})
    assert (s.multipart_threshold, s.part_size) == (100 << 20, 16 << 20)


@pytest.mark.parametrize("raw, words", [
    ("4MiB", "out of range; use 5MiB to 5GiB"), ("6GiB", "out of range"), ("ten", "not a size"),
    ("-8MiB", "not a size"), ("8 parsecs", "not a size"), ("true", "not a size"),
])
def test_bad_sizes_name_the_variable(raw: str, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        env_settings({"PLUGIN_PART_SIZE": raw})
    assert "PLUGIN_PART_SIZE" in str(raised.value) and words in str(raised.value)


def test_json_map_keeps_key_order() -> None:
    s = env_settings({"PLUGIN_ACL": '{"public/*": "public-read", "private/*": "private"}'})
    assert s.acl == (("public/*", "public-read"), ("private/*", "private"))
    s = env_settings({"PLUGIN_ACL": '{"z/*": "private", "a/*": "public-read"}'})
    assert s.acl == (("z/*", "private"), ("a/*", "public-read"))


def test_json_maps_for_extension_rules() -> None:
    s = env_settings({
        "PLUGIN_CONTENT_TYPE": '{".svg": "image/svg+xml"}',
        "PLUGIN_CONTENT_ENCODING": '{".js": "gzip", ".css": "gzip"}',
        "PLUGIN_CACHE_CONTROL": '{".html": "max-age=60", "": "no-cache"}',
    })
    assert s.content_type == ((".svg", "image/svg+xml"),)
    assert s.content_encoding == ((".js", "gzip"), (".css", "gzip"))
    assert s.cache_control == ((".html", "max-age=60"), ("", "no-cache"))


@pytest.mark.parametrize("var, attr", [
    ("PLUGIN_ACL", "acl"),
    ("PLUGIN_CONTENT_TYPE", "content_type"),
    ("PLUGIN_CONTENT_ENCODING", "content_encoding"),
    ("PLUGIN_CACHE_CONTROL", "cache_control"),
])
def test_plain_string_rule_applies_to_all(var: str, attr: str) -> None:
    value = "private" if attr == "acl" else "x-value"
    assert getattr(env_settings({var: value}), attr) == (("*", value),)


def test_metadata_flat_map_for_all_files() -> None:
    s = env_settings({"PLUGIN_METADATA": '{"Custom-Meta": "abc123", "b": "2"}'})
    assert s.metadata == (("*", (("b", "2"), ("custom-meta", "abc123"))),)


def test_metadata_glob_to_map_in_order() -> None:
    s = env_settings({"PLUGIN_METADATA": '{"*.png": {"CustomMeta": "abc123"}, "*": {"all": "yes"}}'})
    assert s.metadata == (("*.png", (("custommeta", "abc123"),)), ("*", (("all", "yes"),)))


def test_redirects() -> None:
    s = env_settings({"PLUGIN_REDIRECTS": '{"old/page.html": "/new/page.html", "/lead/slash": "https://example.com/"}'})
    assert s.redirects == (("old/page.html", "/new/page.html"), ("lead/slash", "https://example.com/"))


def test_cloudfront_distribution_list() -> None:
    assert env_settings({"PLUGIN_CLOUDFRONT_DISTRIBUTION": "ABC123, DEF456"}).cloudfront_distribution == ("ABC123", "DEF456")
    # The list forms every list setting takes: a JSON list, a YAML list in the file.
    assert env_settings({"PLUGIN_CLOUDFRONT_DISTRIBUTION": '["ABC123", "DEF456"]'}).cloudfront_distribution == (
        "ABC123", "DEF456")
    assert build_settings({"bucket": "my-site", "cloudfront_distribution": ["ABC123", " "]}).cloudfront_distribution == (
        "ABC123",)
    with pytest.raises(ConfigError, match=r"'E1/2' is not a distribution id; use ids like E2QWRUHAPOMQZL"):
        env_settings({"PLUGIN_CLOUDFRONT_DISTRIBUTION": "ABC123,E1/2"})
    with pytest.raises(ConfigError, match=r"expected distribution ids, got a map"):
        build_settings({"bucket": "my-site", "cloudfront_distribution": {"a": "b"}})


# ---------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("minio.local:9000", "https://minio.local:9000"),
        ("storage.example.com", "https://storage.example.com"),
        ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
        ("https://s3.example.com/", "https://s3.example.com"),
        ("  https://s3.example.com  ", "https://s3.example.com"),
    ],
)
def test_endpoint_normalisation(raw: str, expected: str) -> None:
    assert env_settings({"PLUGIN_ENDPOINT": raw}).endpoint == expected


@pytest.mark.parametrize(
    "raw, expected",
    [("/", ""), ("", ""), ("/site", "site/"), ("site/", "site/"), ("site", "site/"), ("//a//b/", "a/b/"),
     ("/target/location", "target/location/")],
)
def test_target_normalisation(raw: str, expected: str) -> None:
    assert build_settings({"bucket": "my-bucket", "target": raw}).target == expected


@pytest.mark.parametrize(
    "raw, bucket, region",
    [
        ("my-bucket.s3-website-us-east-1.amazonaws.com", "my-bucket", "us-east-1"),
        ("my-bucket.s3-website-eu-west-1.amazonaws.com", "my-bucket", "eu-west-1"),
        ("my-bucket.s3-website.eu-central-1.amazonaws.com", "my-bucket", "eu-central-1"),
        ("my.dotted.bucket.s3.ap-southeast-2.amazonaws.com", "my.dotted.bucket", "ap-southeast-2"),
        ("s3://bucket", "bucket", "us-east-1"),
        ("s3://bucket/", "bucket", "us-east-1"),
        ("  plain-bucket ", "plain-bucket", "us-east-1"),
    ],
)
def test_bucket_forms(raw: str, bucket: str, region: str) -> None:
    s = from_sources([], {"PLUGIN_BUCKET": raw})
    assert (s.bucket, s.region) == (bucket, region)


def test_region_setting_wins_over_bucket_host() -> None:
    s = from_sources([], {"PLUGIN_BUCKET": "my-bucket.s3-website-eu-west-1.amazonaws.com", "PLUGIN_REGION": "us-east-1"})
    assert (s.bucket, s.region) == ("my-bucket", "us-east-1")


def test_docs_first_example_as_drone_sends_it() -> None:
    # The docs' YAML has `bucket:` twice; YAML keeps the last one.
    s = from_sources([], {
        "PLUGIN_BUCKET": "my-bucket.s3-website-us-east-1.amazonaws.com",
        "PLUGIN_ACCESS_KEY": "a50d28f4dd477bc184fbd10b376de753",
        "PLUGIN_SECRET_KEY": "bc5785d3ece6a9cdefa42eb99b58986f9095ff1c",
        "PLUGIN_REGION": "us-east-1",
        "PLUGIN_SOURCE": "folder/to/archive",
        "PLUGIN_TARGET": "/target/location",
        "PLUGIN_ACL": '{"public/*":"public-read","private/*":"private"}',
        "PLUGIN_CONTENT_TYPE": '{".svg":"image/svg+xml"}',
        "PLUGIN_CONTENT_ENCODING": '{".js":"gzip",".css":"gzip"}',
        "PLUGIN_CACHE_CONTROL": "public, max-age: 31536000",
    })
    assert s.bucket == "my-bucket"
    assert s.target == "target/location/"
    assert s.acl == (("public/*", "public-read"), ("private/*", "private"))
    assert s.cache_control == (("*", "public, max-age: 31536000"),)
    assert s.access_key == "a50d28f4dd477bc184fbd10b376de753"


# ---------------------------------------------------------------- secrets


def test_repr_never_shows_keys() -> None:
    s = env_settings({"PLUGIN_ACCESS_KEY": "AKIASECRETACCESS", "PLUGIN_SECRET_KEY": "VerySecretValue123"})
    assert s.secret_key == "VerySecretValue123"  # the value is there...
    for text in (repr(s), str(s)):
        assert "VerySecretValue123" not in text  # ...but never printed
        assert "AKIASECRETACCESS" not in text


def test_secrets_of_lists_every_secret_trimmed() -> None:
    environ = {
        "PLUGIN_BUCKET": "my-bucket",
        "PLUGIN_ACCESS_KEY": "AKIAPAIR",
        "PLUGIN_SECRET_KEY": " pair-secret ",
        "AWS_SESSION_TOKEN": "session-token-value",
        "AWS_SECRET_ACCESS_KEY": "env-secret",
    }
    found = secrets_of(from_sources([], environ), environ)
    for value in ("pair-secret", "session-token-value", "env-secret"):
        assert value in found
    assert " pair-secret " not in found
    assert "AKIAPAIR" not in found  # the access key id is not a secret


@pytest.mark.parametrize("value", ["test", "minio12", "1234567"])
def test_secrets_of_leaves_out_values_too_short_to_be_a_secret(value: str) -> None:
    environ = {"PLUGIN_BUCKET": "my-bucket", "PLUGIN_ACCESS_KEY": "test", "PLUGIN_SECRET_KEY": value}
    assert secrets_of(from_sources([], environ), environ) == []
    longer = value.ljust(8, "x")  # 8 characters and more: a secret
    environ["PLUGIN_SECRET_KEY"] = longer
    assert secrets_of(from_sources([], environ), environ) == [longer, longer]


@pytest.mark.parametrize("password, masked", [
    ("pw", []),  # ":pw@" is too short to mask
    ("pw-417x", [":pw-417x@"]),  # too short alone, but not as it stands in the URL
    ("long-password", ["long-password", ":long-password@"]),
])
def test_secrets_of_masks_an_endpoint_password_as_it_stands_in_the_url(password: str, masked: list) -> None:
    environ = {"PLUGIN_BUCKET": "my-bucket", "PLUGIN_ENDPOINT": f"http://user:{password}@127.0.0.1:9000"}
    assert set(secrets_of(from_sources([], environ), environ)) == set(masked)


def test_secrets_of_includes_a_dropped_half_pair() -> None:
    environ = {"PLUGIN_BUCKET": "my-bucket", "PLUGIN_SECRET_KEY": "lonely-secret"}
    s = from_sources([], environ)
    assert s.secret_key == ""
    assert "lonely-secret" in secrets_of(s, environ)


def test_secrets_of_ignores_empty_values() -> None:
    assert secrets_of(Settings(bucket="my-bucket"), {}) == []


# ---------------------------------------------------------------- precedence and the config file


def test_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path / "deploy.yml", "bucket: file-bucket\nregion: eu-west-1\ntarget: file\nmax_concurrency: 4\n")
    only_file = from_sources(["--config", str(cfg)], {})
    assert (only_file.bucket, only_file.region, only_file.target, only_file.max_concurrency, only_file.delete) == (
        "file-bucket", "eu-west-1", "file/", 4, False)

    env = {"PLUGIN_BUCKET": "env-bucket", "PLUGIN_TARGET": "env"}
    env_over_file = from_sources(["--config", str(cfg)], env)
    assert (env_over_file.bucket, env_over_file.target, env_over_file.region) == ("env-bucket", "env/", "eu-west-1")

    flag_over_env = from_sources(["--config", str(cfg), "--bucket", "flag-bucket"], env)
    assert (flag_over_env.bucket, flag_over_env.target) == ("flag-bucket", "env/")


@pytest.mark.parametrize(
    "argv, environ, expected",
    [
        (["--delete"], {"PLUGIN_DELETE": "false"}, True),
        (["--no-delete"], {"PLUGIN_DELETE": "true"}, False),
        ([], {"PLUGIN_DELETE": "true"}, True),
        ([], {}, False),
    ],
)
def test_boolean_flags_override_env(argv: list, environ: Dict[str, str], expected: bool) -> None:
    assert env_settings(environ, argv=tuple(argv)).delete is expected


def test_flags_for_every_map_setting() -> None:
    s = from_sources([
        "--bucket", "flag-bucket", "--source", "dist", "--target", "/site", "--delete",
        "--acl", '{"public/*": "public-read"}', "--content-type", '{".svg": "image/svg+xml"}',
        "--content-encoding", "gzip", "--cache-control", "max-age=60", "--metadata", '{"a": "1"}',
        "--redirects", '{"old": "/new"}', "--cloudfront-distribution", "DIST1", "--dry-run",
        "--endpoint", "minio:9000", "--path-style", "--max-concurrency", "3", "--region", "eu-west-2",
    ], {})
    assert s.bucket == "flag-bucket" and s.source == "dist" and s.target == "site/" and s.delete
    assert s.acl == (("public/*", "public-read"),)
    assert s.content_type == ((".svg", "image/svg+xml"),)
    assert s.content_encoding == (("*", "gzip"),)
    assert s.cache_control == (("*", "max-age=60"),)
    assert s.metadata == (("*", (("a", "1"),)),)
    assert s.redirects == (("old", "/new"),)
    assert s.cloudfront_distribution == ("DIST1",)
    assert s.dry_run and s.path_style
    assert s.endpoint == "https://minio:9000"
    assert s.max_concurrency == 3 and s.region == "eu-west-2"


def test_config_file_with_real_yaml_types(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path / "deploy.yml", """\
bucket: my-bucket
delete: true
dry_run: no
max-concurrency: 12
acl:
  "public/*": public-read
  "private/*": private
content_type:
  ".svg": image/svg+xml
metadata:
  "*.png":
    CustomMeta: abc123
redirects:
  some/missing/file: /somewhere/that/actually/exists
cloudfront_distribution: 9c5785d3ece6a9cdefa4
""")
    s = from_sources(["--config", str(cfg)], {})
    assert s.delete is True and s.dry_run is False
    assert s.max_concurrency == 12
    assert s.acl == (("public/*", "public-read"), ("private/*", "private"))
    assert s.content_type == ((".svg", "image/svg+xml"),)
    assert s.metadata == (("*.png", (("custommeta", "abc123"),)),)
    assert s.redirects == (("some/missing/file", "/somewhere/that/actually/exists"),)
    assert s.cloudfront_distribution == ("9c5785d3ece6a9cdefa4",)


def test_config_file_nested_settings_block(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path / "deploy.yml", "settings:\n  bucket: nested-bucket\n  target: /site\n")
    s = from_sources(["--config", str(cfg)], {})
    assert (s.bucket, s.target) == ("nested-bucket", "site/")


def test_relative_source_in_file_resolves_against_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write_yaml(tmp_path / "conf" / "deploy.yml", "bucket: my-bucket\nsource: public\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    s = from_sources(["--config", str(cfg)], {})
    assert s.source_path() == os.path.normpath(str(tmp_path / "conf" / "public"))


def test_relative_config_path_resolves_against_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_yaml(tmp_path / "conf" / "deploy.yml", "bucket: my-bucket\nsource: public\n")
    monkeypatch.chdir(tmp_path)
    s = from_sources(["--config", "conf/deploy.yml"], {})
    monkeypatch.chdir(tmp_path / "conf")
    assert s.source_path() == os.path.normpath(str(tmp_path / "conf" / "public"))


@pytest.mark.parametrize("how", ["env", "flag"])
def test_source_from_env_or_flag_resolves_against_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    cfg = write_yaml(tmp_path / "conf" / "deploy.yml", "bucket: my-bucket\nsource: public\n")
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    argv = ["--config", str(cfg)]
    environ: Dict[str, str] = {}
    if how == "env":
        environ["PLUGIN_SOURCE"] = "dist"
    else:
        argv += ["--source", "dist"]
    s = from_sources(argv, environ)
    assert s.source == "dist"
    assert s.source_path() == os.path.normpath(str(cwd / "dist"))


def test_absolute_source_stays_absolute(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path / "conf" / "deploy.yml", f"bucket: my-bucket\nsource: {tmp_path / 'abs'}\n")
    assert from_sources(["--config", str(cfg)], {}).source_path() == str(tmp_path / "abs")


def test_source_without_config_resolves_against_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = env_settings({"PLUGIN_SOURCE": "folder/to/archive"})
    assert s.source_path() == str(tmp_path / "folder" / "to" / "archive")


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "environ, setting, words",
    [
        ({"PLUGIN_ACL": '{"public/*": "public-read"'}, "PLUGIN_ACL", ["invalid JSON"]),
        ({"PLUGIN_METADATA": "{not json}"}, "PLUGIN_METADATA", ["invalid JSON"]),
        ({"PLUGIN_ACL": '["public-read"]'}, "PLUGIN_ACL", ["list"]),
        ({"PLUGIN_REDIRECTS": '["a", "b"]'}, "PLUGIN_REDIRECTS", ["map"]),
        ({"PLUGIN_METADATA": '["a"]'}, "PLUGIN_METADATA", ["map"]),
        ({"PLUGIN_ACL": "pubic-read"}, "PLUGIN_ACL", ["canned ACL", "did you mean 'public-read'"]),
        ({"PLUGIN_ACCESS": "public_read"}, "PLUGIN_ACCESS", ["canned ACL", "did you mean 'public-read'"]),
        ({"PLUGIN_ACL": '{"public/*": "publc-read"}'}, "PLUGIN_ACL", ["public/*", "did you mean 'public-read'"]),
        ({"PLUGIN_DELETE": "maybe"}, "PLUGIN_DELETE", ["maybe", "true or false"]),
        ({"DRY_RUN": "perhaps"}, "DRY_RUN", ["perhaps", "boolean"]),
        ({"PLUGIN_PATH_STYLE": "2"}, "PLUGIN_PATH_STYLE", ["boolean"]),
        ({"PLUGIN_MAX_CONCURRENCY": "0"}, "PLUGIN_MAX_CONCURRENCY", ["0"]),
        ({"PLUGIN_MAX_CONCURRENCY": "-4"}, "PLUGIN_MAX_CONCURRENCY", ["-4"]),
        ({"PLUGIN_MAX_CONCURRENCY": "lots"}, "PLUGIN_MAX_CONCURRENCY", ["lots", "whole number"]),
        ({"PLUGIN_MAX_CONCURRENCY": "2.5"}, "PLUGIN_MAX_CONCURRENCY", ["whole number"]),
        ({"PLUGIN_READ_TIMEOUT": "0"}, "PLUGIN_READ_TIMEOUT", ["out of range", "seconds"]),
        ({"PLUGIN_READ_TIMEOUT": "-1"}, "PLUGIN_READ_TIMEOUT", ["out of range"]),
        ({"PLUGIN_READ_TIMEOUT": "nan"}, "PLUGIN_READ_TIMEOUT", ["out of range"]),
        ({"PLUGIN_READ_TIMEOUT": "inf"}, "PLUGIN_READ_TIMEOUT", ["out of range"]),
        ({"PLUGIN_READ_TIMEOUT": "7200"}, "PLUGIN_READ_TIMEOUT", ["at most 3600"]),
        ({"PLUGIN_READ_TIMEOUT": "1m"}, "PLUGIN_READ_TIMEOUT", ["1m", "number of seconds"]),
        ({"PLUGIN_READ_TIMEOUT": '{"a": 1}'}, "PLUGIN_READ_TIMEOUT", ["number of seconds"]),
        ({"PLUGIN_MAX_ATTEMPTS": "0"}, "PLUGIN_MAX_ATTEMPTS", ["out of range", "1 to 20"]),
        ({"PLUGIN_MAX_ATTEMPTS": "21"}, "PLUGIN_MAX_ATTEMPTS", ["out of range"]),
        ({"PLUGIN_MAX_ATTEMPTS": "many"}, "PLUGIN_MAX_ATTEMPTS", ["whole number"]),
        ({"PLUGIN_ENDPOINT": "ftp://x"}, "PLUGIN_ENDPOINT", ["ftp://x"]),
        ({"PLUGIN_ENDPOINT": "http://"}, "PLUGIN_ENDPOINT", ["http://"]),
        ({"S3_ENDPOINT": "my host:9000"}, "S3_ENDPOINT", ["my host"]),
        ({"PLUGIN_ENDPOINT": "http://minio:99999"}, "PLUGIN_ENDPOINT", ["port"]),
        ({"PLUGIN_TARGET": "site/../other"}, "PLUGIN_TARGET", [".."]),
        ({"PLUGIN_TARGET": ".."}, "PLUGIN_TARGET", [".."]),
        ({"PLUGIN_REDIRECTS": '{"../x": "/y"}'}, "PLUGIN_REDIRECTS", [".."]),
        ({"PLUGIN_REDIRECTS": '{"folder/": "/y"}'}, "PLUGIN_REDIRECTS", ["folder/"]),
        ({"PLUGIN_METADATA": "abc123"}, "PLUGIN_METADATA", ["map"]),
        ({"PLUGIN_METADATA": '{"a": "1", "*.png": {"b": "2"}}'}, "PLUGIN_METADATA", ["mixes"]),
        ({"PLUGIN_METADATA": '{"bad name": "1"}'}, "PLUGIN_METADATA", ["bad name"]),
        ({"PLUGIN_CACHE_CONTROL": "max-age=60 \u00e9t\u00e9"}, "PLUGIN_CACHE_CONTROL", ["ASCII"]),
        ({"PLUGIN_CONTENT_TYPE": '{".txt": "text/plain; charset=\u00fc"}'}, "PLUGIN_CONTENT_TYPE", ["ASCII"]),
        ({"PLUGIN_METADATA": '{"author": "Ren\u00e9e"}'}, "PLUGIN_METADATA", ["ASCII", "author"]),
        ({"PLUGIN_REDIRECTS": '{"old": "/caf\u00e9"}'}, "PLUGIN_REDIRECTS", ["ASCII"]),
        ({"PLUGIN_CONTENT_ENCODING": '{".js": ""}'}, "PLUGIN_CONTENT_ENCODING", ["empty"]),
        ({"PLUGIN_REGION": "EU West"}, "PLUGIN_REGION", ["region"]),
        ({"PLUGIN_BUCKET": "x"}, "PLUGIN_BUCKET", ["bucket name"]),
        ({"PLUGIN_BUCKET": "my bucket"}, "PLUGIN_BUCKET", ["bucket name"]),
        ({"PLUGIN_CLOUDFRONT_DISTRIBUTION": "E1/../x"}, "PLUGIN_CLOUDFRONT_DISTRIBUTION", ["distribution"]),
    ],
)
def test_bad_environment_values(environ: Dict[str, str], setting: str, words: list) -> None:
    full = dict(BUCKET)
    full.update(environ)
    with pytest.raises(ConfigError) as info:
        from_sources([], full)
    assert info.value.setting == setting
    message = str(info.value)
    assert message.startswith(setting)
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    "argv, setting, words",
    [
        (["--acl", "world-readable"], "--acl", ["canned ACL"]),
        (["--max-concurrency", "0"], "--max-concurrency", ["out of range"]),
        (["--target", "a/../../etc"], "--target", [".."]),
    ],
)
def test_bad_flag_values_name_the_flag(argv: list, setting: str, words: list) -> None:
    with pytest.raises(ConfigError) as info:
        from_sources(argv, dict(BUCKET))
    assert info.value.setting == setting
    for word in words:
        assert word in str(info.value)


def test_missing_bucket_names_plugin_bucket() -> None:
    with pytest.raises(ConfigError) as info:
        from_sources([], {"PLUGIN_SOURCE": "dist"})
    assert info.value.setting == "bucket"
    assert "PLUGIN_BUCKET" in str(info.value) and "required" in str(info.value)


def test_empty_bucket_variable_is_missing() -> None:
    with pytest.raises(ConfigError, match="PLUGIN_BUCKET"):
        from_sources([], {"PLUGIN_BUCKET": "   "})


@pytest.mark.parametrize(
    "text, words",
    [
        ("bucket: b-1\nbuckt: other\n", ["buckt", "did you mean 'bucket'"]),
        ("bucket: b-1\ncache-contrl: x\n", ["cache-contrl", "did you mean 'cache_control'"]),
        ("settings:\n  bucket: b-1\n  acces: private\n", ["acces", "unknown setting"]),
        ("- bucket: b-1\n", ["must hold a map"]),
        ("just a string\n", ["must hold a map"]),
        ("bucket: [unclosed\n", ["not valid YAML"]),
        ("bucket: b-1\nacl:\n  - public-read\n", ["acl", "list"]),
        ("bucket: b-1\ndelete: sometimes\n", ["delete", "boolean"]),
        ("bucket: b-1\nmetadata: plain\n", ["metadata", "map"]),
        ("target: /site\n", ["bucket", "required"]),
    ],
)
def test_bad_config_files(tmp_path: Path, text: str, words: list) -> None:
    cfg = write_yaml(tmp_path / "deploy.yml", text)
    with pytest.raises(ConfigError) as info:
        from_sources(["--config", str(cfg)], {})
    message = str(info.value)
    for word in words:
        assert word in message


def test_setting_from_file_names_the_file(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path / "deploy.yml", "bucket: b-1\nacl: pubic-read\n")
    with pytest.raises(ConfigError) as info:
        from_sources(["--config", str(cfg)], {})
    assert "acl" in info.value.setting and str(cfg) in info.value.setting


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    with pytest.raises(ConfigError) as info:
        from_sources(["--config", str(missing)], dict(BUCKET))
    assert info.value.setting == "config"
    assert str(missing) in str(info.value)


def test_build_settings_rejects_unknown_names() -> None:
    with pytest.raises(ConfigError) as info:
        build_settings({"bucket": "my-bucket", "regoin": "eu-west-1"})
    assert info.value.setting == "regoin"
    assert "did you mean 'region'" in str(info.value)


def test_build_settings_python_api_values() -> None:
    s = Settings.create(bucket="my-bucket", acl={"public/*": "public-read"}, delete=True, max_concurrency=5,
                        metadata={"k": "v"}, target="/x/")
    assert s.acl == (("public/*", "public-read"),)
    assert s.delete is True and s.max_concurrency == 5 and s.target == "x/"
    assert s.metadata == (("*", (("k", "v"),)),)


# ---------------------------------------------------------------- the CLI's handling


def test_cli_config_error_exits_2(capsys: pytest.CaptureFixture) -> None:
    code = cli.run([], {"PLUGIN_BUCKET": "my-bucket", "PLUGIN_ACL": "pubic-read"})
    err = capsys.readouterr().err
    assert code == 2
    assert "invalid setting" in err and "PLUGIN_ACL" in err


def test_cli_missing_bucket_exits_2(capsys: pytest.CaptureFixture) -> None:
    assert cli.run([], {}) == 2
    assert "invalid setting" in capsys.readouterr().err


def test_cli_config_error_does_not_print_secret(capsys: pytest.CaptureFixture) -> None:
    code = cli.run([], {"PLUGIN_BUCKET": "b", "PLUGIN_ACCESS_KEY": "AKIAHIDDEN", "PLUGIN_SECRET_KEY": "HiddenSecret99"})
    out = capsys.readouterr()
    assert code == 2
    assert "HiddenSecret99" not in out.err + out.out


def test_cli_unknown_flag_exits_2(capsys: pytest.CaptureFixture) -> None:
    assert cli.run(["--no-such-flag"], dict(BUCKET)) == 2
    assert "--no-such-flag" in capsys.readouterr().err


def test_cli_help(capsys: pytest.CaptureFixture) -> None:
    assert cli.run(["--help"], {}) == 0
    out = capsys.readouterr().out
    for word in ("--bucket", "--acl", "--config", "PLUGIN_BUCKET", "PLUGIN_ACCESS", "S3_SYNC_ENDPOINT", "--dry-run"):
        assert word in out


def test_cli_version(capsys: pytest.CaptureFixture) -> None:
    import botocore
    import s3transfer

    from drone_s3_sync import __version__

    assert cli.run(["--version"], {}) == 0
    out = capsys.readouterr().out
    assert __version__ in out
    assert f"botocore {botocore.__version__}" in out
    assert f"s3transfer {s3transfer.__version__}" in out


def test_option_table_covers_every_settings_field() -> None:
    fields = set(Settings.__dataclass_fields__) - {"base_dir", "debug", "labels"}
    assert fields == set(config.OPTION_NAMES)


# ---------------------------------------------------------------- delete guards: allow_empty_source, max_delete


def test_guard_defaults() -> None:
    s = env_settings()
    assert s.allow_empty_source is False
    assert s.max_delete is None  # no limit


@pytest.mark.parametrize(
    "raw, value, percent, text",
    [
        ("0", 0, False, "0"),
        ("25", 25, False, "25"),
        (" 25 ", 25, False, "25"),
        ("10%", 10, True, "10%"),
        ("0%", 0, True, "0%"),
        ("100%", 100, True, "100%"),
        ("12.5%", 12.5, True, "12.5%"),
        ("10 %", 10, True, "10%"),
    ],
)
def test_max_delete_forms(raw: str, value: float, percent: bool, text: str) -> None:
    limit = env_settings({"PLUGIN_MAX_DELETE": raw}).max_delete
    assert limit is not None
    assert (float(limit.value), limit.percent, str(limit)) == (value, percent, text)


@pytest.mark.parametrize(
    "limit, total, allowed",
    [("10", 0, 10), ("10", 5, 10), ("10%", 100, 10), ("10%", 99, 9), ("10%", 9, 0), ("12.5%", 8, 1),
     ("100%", 7, 7), ("0%", 7, 0)],
)
def test_max_delete_allowed_count(limit: str, total: int, allowed: int) -> None:
    assert build_settings({"bucket": "b-1", "max_delete": limit}).max_delete.allowed(total) == allowed


@pytest.mark.parametrize("raw", ["150%", "100.5%", "-1", "-5%", "ten", "1.5", "%", "", "10%%", "1e3", "0x10", "5 objects"])
def test_max_delete_invalid(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_settings({"bucket": "b-1", "max_delete": raw}, origin={"max_delete": "PLUGIN_MAX_DELETE"})
    assert info.value.setting == "PLUGIN_MAX_DELETE"
    assert "whole number of objects such as 100" in str(info.value) and "such as 10%" in str(info.value)


@pytest.mark.parametrize("raw, ok", [(10, True), (0, True), ("10%", True), (-1, False), (True, False), (2.5, False)])
def test_max_delete_python_and_yaml_values(raw: Any, ok: bool) -> None:
    if ok:
        assert Settings.create(bucket="b-1", max_delete=raw).max_delete is not None
    else:
        with pytest.raises(ConfigError, match="max_delete"):
            Settings.create(bucket="b-1", max_delete=raw)


def test_guard_settings_from_config_file_and_flags(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path / "deploy.yml", "bucket: b-1\ndelete: true\nallow-empty-source: yes\nmax_delete: 5%\n")
    s = from_sources(["--config", str(cfg)], {})
    assert s.allow_empty_source is True and str(s.max_delete) == "5%"
    s = from_sources(["--config", str(cfg), "--max-delete", "7", "--no-allow-empty-source"], {})
    assert s.allow_empty_source is False and str(s.max_delete) == "7"


def test_help_shows_the_guard_settings(capsys: pytest.CaptureFixture) -> None:
    assert cli.run(["--help"], {}) == 0
    out = capsys.readouterr().out
    for word in ("--allow-empty-source", "PLUGIN_ALLOW_EMPTY_SOURCE", "--max-delete", "PLUGIN_MAX_DELETE", "N%",
                 "3         refused by a safety guard"):
        assert word in out


def test_guard_options_follow_delete_in_the_table() -> None:
    names = list(config.OPTION_NAMES)
    assert names[names.index("delete") + 1:names.index("delete") + 5] == ["allow_empty_source", "allow_nested_delete",
                                                                          "max_delete", "delete_grace"]


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({"PLUGIN_MAX_DELETE": "5"}, ["PLUGIN_MAX_DELETE has no effect without delete"]),
        ({"PLUGIN_ALLOW_EMPTY_SOURCE": "true"}, ["PLUGIN_ALLOW_EMPTY_SOURCE has no effect without delete"]),
        ({"PLUGIN_ALLOW_EMPTY_SOURCE": "false"}, []),
        ({"PLUGIN_MAX_DELETE": "5", "PLUGIN_DELETE": "true"}, []),
        # verify without state is no conflict: there is no state to ignore.
        ({"PLUGIN_VERIFY": "true", "PLUGIN_STATE": "false"}, []),
    ],
)
def test_setting_warnings(environ: Dict[str, str], expected: list) -> None:
    warnings = sources.setting_warnings(env_settings(environ))
    assert len(warnings) == len(expected), warnings
    for warning, start in zip(warnings, expected):
        assert warning.startswith(start)


def test_labels_name_the_variable_flag_or_file_key(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path / "deploy.yml", "bucket: b-1\ntarget: site\n")
    s = from_sources(["--config", str(cfg), "--delete"], {"PLUGIN_SOURCE": "dist"})
    assert s.label("source") == "PLUGIN_SOURCE"
    assert s.label("delete") == "--delete"
    assert s.label("target") == f"target (in {cfg})"
    assert s.label("acl") == "acl"  # not given: its plain name
    assert s == s.with_changes()  # labels take no part in comparisons


# ---------------------------------------------------------------- unknown PLUGIN_* variables


@pytest.mark.parametrize(
    "var, suggestion",
    [
        ("PLUGIN_CACHECONTROL", "did you mean cache_control (PLUGIN_CACHE_CONTROL)?"),
        ("PLUGIN_BUCKT", "did you mean bucket (PLUGIN_BUCKET)?"),
        ("PLUGIN_MAXDELETE", "did you mean max_delete (PLUGIN_MAX_DELETE)?"),
        ("PLUGIN_SOURCES", "did you mean source (PLUGIN_SOURCE)?"),
        ("PLUGIN_ACCES", "did you mean acl (PLUGIN_ACCESS)?"),
        ("PLUGIN_DRYRUN", "did you mean dry_run (PLUGIN_DRY_RUN)?"),
        ("PLUGIN_DEBUG", "set DEBUG=1 for detailed logs"),
        ("PLUGIN_ZZZ", None),
        ("PLUGIN_TAGS", None),
    ],
)
def test_unknown_plugin_variable_warning(var: str, suggestion: Optional[str]) -> None:
    warnings = sources.unknown_plugin_variables({"PLUGIN_BUCKET": "b", var: "value-417"})
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{var} is not a setting of drone-s3-sync")
    if suggestion is None:
        assert warnings[0] == f"{var} is not a setting of drone-s3-sync"
    else:
        assert warnings[0].endswith(suggestion), warnings[0]
    assert "value-417" not in warnings[0]


def test_exact_warning_text_for_a_misspelt_variable() -> None:
    assert sources.unknown_plugin_variables({"PLUGIN_CACHECONTROL": "max-age=60"}) == [
        "PLUGIN_CACHECONTROL is not a setting of drone-s3-sync; did you mean cache_control (PLUGIN_CACHE_CONTROL)?"]


def test_every_known_variable_and_other_variables_pass_silently() -> None:
    environ = {var: "x" for option in config.OPTIONS for var in option.env}
    environ.update({"AWS_PROFILE": "p", "DRONE_BRANCH": "main", "CI_REPO": "r", "DEBUG": "1", "plugin_lower": "x"})
    assert sources.unknown_plugin_variables(environ) == []


def test_cli_refuses_a_misspelt_variable_with_the_closest_name(capsys: pytest.CaptureFixture) -> None:
    assert cli.run([], {"PLUGIN_BUCKT": "my-bucket"}) == 2
    err = capsys.readouterr().err
    assert err == ("drone-s3-sync: invalid setting PLUGIN_BUCKT: is not a setting of drone-s3-sync; "
                   "did you mean bucket (PLUGIN_BUCKET)?\n")


def test_cli_prints_tolerated_variable_warnings_also_before_a_settings_error(capsys: pytest.CaptureFixture) -> None:
    # PLUGIN_DEBUG (a `debug:` setting copied from another plugin) and an empty
    # unknown variable set nothing: a warning, printed before the error it may explain.
    assert cli.run([], {"PLUGIN_DEBUG": "true", "PLUGIN_BUCKT": ""}) == 2
    err = capsys.readouterr().err
    assert "warning: PLUGIN_DEBUG is not a setting of drone-s3-sync; set DEBUG=1 for detailed logs" in err
    assert "warning: PLUGIN_BUCKT is not a setting of drone-s3-sync; did you mean bucket (PLUGIN_BUCKET)?" in err
    assert err.index("warning: PLUGIN_BUCKT") < err.index("invalid setting bucket: is required")


# ---------------------------------------------------------------- credentials, duplicates, state name


@pytest.mark.parametrize(
    "environ, setting",
    [
        ({"PLUGIN_ACCESS_KEY": "AKIA EXAMPLE", "PLUGIN_SECRET_KEY": "s3cr3tValue"}, "PLUGIN_ACCESS_KEY"),
        ({"PLUGIN_ACCESS_KEY": "AKIA\nEXAMPLE", "PLUGIN_SECRET_KEY": "s3cr3tValue"}, "PLUGIN_ACCESS_KEY"),
        ({"PLUGIN_ACCESS_KEY": "AKIAEXAMPLÉ", "PLUGIN_SECRET_KEY": "s3cr3tValue"}, "PLUGIN_ACCESS_KEY"),
        ({"PLUGIN_ACCESS_KEY": "AKIAEXAMPLE", "PLUGIN_SECRET_KEY": "s3cr3t\nValue"}, "PLUGIN_SECRET_KEY"),
        ({"PLUGIN_ACCESS_KEY": "AKIAEXAMPLE", "PLUGIN_SECRET_KEY": "s3cr3t\x7fValue"}, "PLUGIN_SECRET_KEY"),
    ],
)
def test_malformed_keys_are_refused_without_showing_them(environ: Dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        env_settings(environ)
    assert info.value.setting == setting
    message = str(info.value)
    assert "key alone" in message
    for value in environ.values():
        for part in value.split():
            assert part not in message


def test_a_secret_with_a_space_is_accepted() -> None:
    # Some S3-compatible servers allow any printable secret; only line breaks are surely a paste error.
    assert env_settings({"PLUGIN_ACCESS_KEY": "AKIAEXAMPLE", "PLUGIN_SECRET_KEY": "a b"}).secret_key == "a b"


@pytest.mark.parametrize(
    "environ, setting, words",
    [
        ({"PLUGIN_CACHE_CONTROL": '{".html": "a", ".html": "b"}'}, "PLUGIN_CACHE_CONTROL", ["'.html' appears twice"]),
        ({"PLUGIN_REDIRECTS": '{"a": "/x", "/a": "/y"}'}, "PLUGIN_REDIRECTS", ["twice"]),
        ({"PLUGIN_METADATA": '{"Author": "x", "author": "y"}'}, "PLUGIN_METADATA", ["twice", "ignore case"]),
        ({"PLUGIN_REDIRECTS": '{".drone-s3-sync-state.json.gz": "/x"}'}, "PLUGIN_REDIRECTS", ["state object"]),
        ({"PLUGIN_SOURCE": "dist", "PLUGIN_MAX_CONCURRENCY": "many"}, "PLUGIN_MAX_CONCURRENCY", ["use 1 to 1000"]),
        ({"PLUGIN_ENDPOINT": "ftp://x"}, "PLUGIN_ENDPOINT", ["https://s3.example.com"]),
        ({"PLUGIN_BUCKET": "a"}, "PLUGIN_BUCKET", ["3 to 63"]),
        ({"PLUGIN_TARGET": "../x"}, "PLUGIN_TARGET", ["'/' for the bucket root"]),
        ({"PLUGIN_ACL": '{"a/*": "public-read",'}, "PLUGIN_ACL", ["invalid JSON", "map of pattern to value"]),
    ],
)
def test_conflicting_or_malformed_maps_and_accepted_forms(environ: Dict[str, str], setting: str, words: list) -> None:
    full = dict(BUCKET)
    full.update(environ)
    with pytest.raises(ConfigError) as info:
        from_sources([], full)
    assert info.value.setting == setting
    for word in words:
        assert word in str(info.value)
def test_retry_settings_from_a_file_and_flags(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path / "deploy.yml", "bucket: my-bucket\nread_timeout: 2.5\nmax-attempts: 4\n")
    s = from_sources(["--config", str(cfg)], {})
    assert (s.read_timeout, s.max_attempts) == (2.5, 4)
    s = from_sources(["--config", str(cfg), "--read-timeout", "10", "--max-attempts", "1"], {})
    assert (s.read_timeout, s.max_attempts) == (10.0, 1)
    with pytest.raises(ConfigError) as info:
        from_sources(["--config", str(cfg), "--read-timeout", "true"], {})
    assert info.value.setting == "--read-timeout"


def test_drone_dashed_setting_names_are_read() -> None:
    # Drone upper-cases `cache-control:` to PLUGIN_CACHE-CONTROL; Woodpecker writes PLUGIN_CACHE_CONTROL.
    environ = {"PLUGIN_BUCKET": "b-1", "PLUGIN_CACHE-CONTROL": "max-age=60", "PLUGIN_CLOUDFRONT.DISTRIBUTION": "E1"}
    s = from_sources([], environ)
    assert s.cache_control == (("*", "max-age=60"),)
    assert s.cloudfront_distribution == ("E1",)
    assert sources.unknown_plugin_variables(environ) == []
    with pytest.raises(ConfigError) as info:
        from_sources([], {"PLUGIN_BUCKET": "b-1", "PLUGIN_MAX-CONCURRENCY": "lots"})
    assert info.value.setting == "PLUGIN_MAX-CONCURRENCY"  # named as written


def test_the_underscore_spelling_wins_over_the_dashed_one() -> None:
    s = from_sources([], {"PLUGIN_BUCKET": "b-1", "PLUGIN_CACHE-CONTROL": "dashed", "PLUGIN_CACHE_CONTROL": "plain"})
    assert s.cache_control == (("*", "plain"),)


def test_the_default_the_help_states_is_the_default_a_run_has() -> None:
    """Each option's help says its default once; the Settings field must agree
    (a default written twice, checked here, instead of two that drift apart)."""
    import dataclasses

    fields = {f.name: f.default for f in dataclasses.fields(Settings)}
    checked = []
    for option in OPTIONS:
        match = re.search(r"Default: ([A-Za-z0-9_-]+(?:\.[0-9]+)?%?)", option.help)
        default = fields.get(option.name)
        if match is None or isinstance(default, tuple) or default in ("", None):
            continue  # rules and lists: "none", "built-in table" describe an empty value
        try:
            stated = option.parse(option.name, match.group(1))
        except ConfigError:
            continue  # the default told in words ("such links are skipped")
        assert stated == default, option.name
        checked.append(option.name)
    assert {"region", "max_concurrency", "lock_timeout", "part_size", "state", "cloudfront_wait_timeout"} <= set(checked)


def test_help_lists_the_exit_statuses_the_error_classes_define(capsys: pytest.CaptureFixture) -> None:
    from drone_s3_sync.errors import ConfigError, GuardError, LockError, SyncError, exit_statuses

    assert cli.run(["--help"], {}) == 0
    out = capsys.readouterr().out
    statuses = exit_statuses()
    assert [code for code, _ in statuses] == ["0", "1", "2", "3", "4", "130 / 143"]
    assert [int(code) for code, _ in statuses[1:5]] == [c.exit_code for c in (SyncError, ConfigError, GuardError, LockError)]
    for code, meaning in statuses:
        assert f"  {code:<9} {meaning}\n" in out
