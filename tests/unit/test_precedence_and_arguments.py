"""sources.from_sources: fallback variables rank below every explicit setting;
switches with =value; SOURCE s3://BUCKET/PREFIX arguments; unknown PLUGIN_*
variables; bucket names S3 would refuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from drone_s3_sync import config
from drone_s3_sync import sources
from drone_s3_sync import parsers
from drone_s3_sync.config import AMBIENT_VARIABLES
from drone_s3_sync.sources import from_sources
from drone_s3_sync.errors import ConfigError

BUCKET = {"PLUGIN_BUCKET": "my-bucket"}


def test_every_fallback_variable_is_a_variable_of_a_setting() -> None:
    variables = {var for option in config.OPTIONS for var in option.env}
    assert set(AMBIENT_VARIABLES) <= variables
    assert not any(var.startswith("PLUGIN_") for var in AMBIENT_VARIABLES)


@pytest.mark.parametrize("variable, value, setting, key, explicit", [
    ("AWS_REGION", "ap-south-1", "region", "region", "eu-west-1"),
    ("AWS_DEFAULT_REGION", "ap-south-1", "region", "region", "eu-west-1"),
    ("S3_SYNC_ENDPOINT", "http://fallback:9000", "endpoint", "endpoint", "http://file:9000"),
    ("S3_ENDPOINT", "http://fallback:9000", "endpoint", "endpoint", "http://file:9000"),
    ("DRY_RUN", "1", "dry_run", "dry_run", False),
])
def test_a_config_file_key_beats_each_fallback(tmp_path: Path, variable: str, value: str, setting: str, key: str,
                                               explicit: object) -> None:
    alone = from_sources([], {**BUCKET, variable: value})
    assert sources.fallbacks(alone) == [(setting, getattr(alone, setting), variable)]
    cfg = tmp_path / "deploy.yml"
    cfg.write_text(f"{key}: {str(explicit).lower() if isinstance(explicit, bool) else explicit}\n", encoding="utf-8")
    s = from_sources(["--config", str(cfg)], {**BUCKET, variable: value})
    assert getattr(s, setting) == explicit and sources.fallbacks(s) == []


def test_the_region_of_a_website_host_beats_the_fallbacks_not_an_explicit_region() -> None:
    website = "my-bucket.s3-website-eu-west-1.amazonaws.com"
    s = from_sources([], {"PLUGIN_BUCKET": website, "AWS_REGION": "ap-south-1", "AWS_DEFAULT_REGION": "sa-east-1"})
    assert (s.region, sources.fallbacks(s)) == ("eu-west-1", [])
    s = from_sources([], {"PLUGIN_BUCKET": website, "PLUGIN_REGION": "us-east-1", "AWS_REGION": "ap-south-1"})
    assert s.region == "us-east-1"  # the docs' examples write both; the setting wins, as before


def test_switches_with_values_and_abbreviations() -> None:
    assert from_sources(["--delete=false"], {**BUCKET, "PLUGIN_DELETE": "true"}).delete is False
    assert from_sources(["--delete=on", "--state=no"], BUCKET).delete is True
    assert from_sources(["--verif"], BUCKET).verify is True  # argparse's abbreviations still work
    with pytest.raises(ConfigError) as info:
        from_sources(["--no-delete=true"], BUCKET)
    assert str(info.value) == "--no-delete: takes no value; use --delete=true or --no-delete alone"


def test_source_and_bucket_url_arguments() -> None:
    s = from_sources(["public", "s3://site/docs/v2/", "--delete"], {})
    assert (s.source, s.bucket, s.target, s.delete) == ("public", "site", "docs/v2/", True)
    s = from_sources(["--dry-run", "dist", "s3://site"], {"PLUGIN_BUCKET": "other", "PLUGIN_TARGET": "x"})
    assert (s.source, s.bucket, s.target) == ("dist", "site", "")  # arguments rank as flags
    assert s.label("bucket") == "--bucket"


@pytest.mark.parametrize("argv, words", [
    (["--target", "x", "public", "s3://site/y"], "--target: is given twice"),
    (["public", "s3://My_Bucket"], "--bucket: 'My_Bucket' is not a valid bucket name"),
    (["--delete", "no"], "write --delete=no"),
    (["a", "b", "c"], "unexpected arguments 'a b c'"),
])
def test_bad_arguments(argv, words) -> None:
    with pytest.raises(ConfigError) as info:
        from_sources(argv, BUCKET)
    assert words in str(info.value)


@pytest.mark.parametrize("name, ok", [
    ("my-bucket", True), ("my.site.example.com", True), ("abc", True), ("a" * 63, True),
    ("My_Bucket", False), ("my_bucket", False), ("ab", False), ("a" * 64, False), ("-abc", False),
    ("abc-", False), ("a..b", False), ("10.0.0.1", False), ("my bucket", False),
])
def test_bucket_names(name: str, ok: bool) -> None:
    if ok:
        assert parsers.parse_bucket("bucket", name) == (name, None)
    else:
        with pytest.raises(ConfigError):
            parsers.parse_bucket("bucket", name)


def test_unknown_plugin_variables_refused_or_warned() -> None:
    environ = {**BUCKET, "PLUGIN_DEBUG": "true", "PLUGIN_EMPTY": " ", "PLUGIN_CACHECONTROL": "max-age=1"}
    assert sources.plugin_variable_warnings(environ) == [
        "PLUGIN_DEBUG is not a setting of drone-s3-sync; set DEBUG=1 for detailed logs",
        "PLUGIN_EMPTY is not a setting of drone-s3-sync"]
    with pytest.raises(ConfigError) as info:
        from_sources([], environ)
    assert info.value.setting == "PLUGIN_CACHECONTROL"
    del environ["PLUGIN_CACHECONTROL"]
    assert from_sources([], environ).bucket == "my-bucket"
