"""Credential settings (config.py, pure): session_token, assume_role,
assume_role_session_name, external_id, oidc_token_id, profile; how they meet
the AWS_* variables that boto3's credential chain reads; and the combinations
refused before any request."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import pytest

from drone_s3_sync import cli
from drone_s3_sync.config import Settings
from drone_s3_sync.sources import from_sources, secrets_of
from drone_s3_sync.errors import ConfigError

ROLE = "arn:aws:iam::123456789012:role/site-deploy"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvIn0.c2lnbmF0dXJl"


def env_settings(extra: Optional[Dict[str, str]] = None, argv: tuple = ()) -> Settings:
    environ = {"PLUGIN_BUCKET": "my-bucket"}
    environ.update(extra or {})
    return from_sources(list(argv), environ)


def refused(environ: Dict[str, str], argv: tuple = ()) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        env_settings(environ, argv)
    return info.value


# ---------------------------------------------------------------- each setting


def test_defaults() -> None:
    s = env_settings()
    assert (s.session_token, s.assume_role, s.external_id, s.oidc_token_id, s.profile) == ("", "", "", "", "")
    assert s.assume_role_session_name == "drone-s3-sync"


@pytest.mark.parametrize(
    "environ, attr, expected",
    [
        ({"PLUGIN_ACCESS_KEY": "AKIAX", "PLUGIN_SECRET_KEY": "s", "PLUGIN_SESSION_TOKEN": " tok\n"}, "session_token", "tok"),
        ({"PLUGIN_ASSUME_ROLE": ROLE}, "assume_role", ROLE),
        ({"ASSUME_ROLE": ROLE}, "assume_role", ROLE),
        ({"PLUGIN_ASSUME_ROLE": ROLE, "ASSUME_ROLE": "arn:aws:iam::999999999999:role/other"}, "assume_role", ROLE),
        ({"PLUGIN_ASSUME_ROLE": ROLE, "PLUGIN_ASSUME_ROLE_SESSION_NAME": "build-7@ci"}, "assume_role_session_name", "build-7@ci"),
        ({"PLUGIN_ASSUME_ROLE": ROLE, "PLUGIN_EXTERNAL_ID": "ext:42/a"}, "external_id", "ext:42/a"),
        ({"PLUGIN_ASSUME_ROLE": ROLE, "PLUGIN_OIDC_TOKEN_ID": TOKEN + "\n"}, "oidc_token_id", TOKEN),
        ({"PLUGIN_PROFILE": "deploy"}, "profile", "deploy"),
    ],
)
def test_each_setting_from_its_variable(environ: Dict[str, str], attr: str, expected: Any) -> None:
    assert getattr(env_settings(environ), attr) == expected


def test_flags_and_config_file(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yml"
    path.write_text(f"bucket: my-bucket\nassume_role: {ROLE}\nexternal-id: from-file\nprofile: p\n", encoding="utf-8")
    s = from_sources(["--config", str(path), "--assume-role-session-name", "from-flag"], {})
    assert (s.assume_role, s.external_id, s.assume_role_session_name, s.profile) == (ROLE, "from-file", "from-flag", "p")


@pytest.mark.parametrize(
    "arn",
    [ROLE, "arn:aws-cn:iam::123456789012:role/x", "arn:aws-us-gov:iam::123456789012:role/path/to/Deploy_Role+=,.@-1"],
)
def test_role_arn_forms_accepted(arn: str) -> None:
    assert env_settings({"PLUGIN_ASSUME_ROLE": arn}).assume_role == arn


@pytest.mark.parametrize(
    "arn",
    ["site-deploy", "arn:aws:iam::12345678901:role/x", "arn:aws:iam::123456789012:user/x",
     "arn:aws:iam::123456789012:role/", "arn:aws:sts::123456789012:assumed-role/x/y", "arn:azure:iam::123456789012:role/x"],
)
def test_role_arn_forms_refused(arn: str) -> None:
    err = refused({"PLUGIN_ASSUME_ROLE": arn})
    assert err.setting == "PLUGIN_ASSUME_ROLE"
    assert "role ARN" in str(err) and "arn:aws:iam::123456789012:role/" in str(err)


@pytest.mark.parametrize(
    "environ, setting",
    [
        ({"PLUGIN_ASSUME_ROLE_SESSION_NAME": "a b"}, "PLUGIN_ASSUME_ROLE_SESSION_NAME"),
        ({"PLUGIN_ASSUME_ROLE_SESSION_NAME": "x" * 65}, "PLUGIN_ASSUME_ROLE_SESSION_NAME"),
        ({"PLUGIN_EXTERNAL_ID": "no spaces please"}, "PLUGIN_EXTERNAL_ID"),
        ({"PLUGIN_EXTERNAL_ID": "x"}, "PLUGIN_EXTERNAL_ID"),
    ],
)
def test_sts_value_forms_refused(environ: Dict[str, str], setting: str) -> None:
    environ = dict(environ, PLUGIN_ASSUME_ROLE=ROLE)
    assert refused(environ).setting == setting


@pytest.mark.parametrize("token", ["abc", "two words.x.y", "x" * 20001])
def test_bad_oidc_token_refused_without_echoing_it(token: str) -> None:
    err = refused({"PLUGIN_ASSUME_ROLE": ROLE, "PLUGIN_OIDC_TOKEN_ID": token})
    assert err.setting == "PLUGIN_OIDC_TOKEN_ID"
    assert token not in str(err)


def test_oidc_token_that_is_a_file_name_is_refused_with_a_hint(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN, encoding="utf-8")
    err = refused({"PLUGIN_ASSUME_ROLE": ROLE, "PLUGIN_OIDC_TOKEN_ID": str(token_file)})
    assert err.setting == "PLUGIN_OIDC_TOKEN_ID" and "AWS_WEB_IDENTITY_TOKEN_FILE" in str(err)


# ---------------------------------------------------------------- combinations refused


@pytest.mark.parametrize(
    "environ, setting, words",
    [
        ({"PLUGIN_SESSION_TOKEN": "tok1"}, "PLUGIN_SESSION_TOKEN", ["access_key", "secret_key"]),
        ({"PLUGIN_ACCESS_KEY": "AKIAX", "PLUGIN_SESSION_TOKEN": "tok1"}, "PLUGIN_SESSION_TOKEN", ["access_key"]),
        ({"PLUGIN_OIDC_TOKEN_ID": TOKEN}, "PLUGIN_OIDC_TOKEN_ID", ["assume_role"]),
        ({"PLUGIN_EXTERNAL_ID": "ext-1"}, "PLUGIN_EXTERNAL_ID", ["assume_role"]),
        ({"PLUGIN_ASSUME_ROLE_SESSION_NAME": "name"}, "PLUGIN_ASSUME_ROLE_SESSION_NAME", ["assume_role"]),
        ({"PLUGIN_ASSUME_ROLE": ROLE, "PLUGIN_OIDC_TOKEN_ID": TOKEN, "PLUGIN_EXTERNAL_ID": "ext-1"},
         "PLUGIN_EXTERNAL_ID", ["oidc_token_id"]),
        ({"PLUGIN_ASSUME_ROLE": ROLE, "PLUGIN_OIDC_TOKEN_ID": TOKEN, "PLUGIN_ACCESS_KEY": "AKIAX", "PLUGIN_SECRET_KEY": "s"},
         "PLUGIN_OIDC_TOKEN_ID", ["access_key"]),
        ({"PLUGIN_PROFILE": "p", "PLUGIN_ACCESS_KEY": "AKIAX", "PLUGIN_SECRET_KEY": "s"}, "PLUGIN_PROFILE", ["access_key"]),
    ],
    ids=["token-no-keys", "token-half-pair", "oidc-no-role", "external-id-no-role", "session-name-no-role",
         "oidc-and-external-id", "oidc-and-keys", "profile-and-keys"],
)
def test_conflicts_refused(environ: Dict[str, str], setting: str, words: list) -> None:
    err = refused(environ)
    assert err.setting == setting
    for word in words:
        assert word in str(err)


def test_conflict_named_by_flag() -> None:
    err = refused({}, argv=("--external-id", "ext-1"))
    assert err.setting == "--external-id"


def test_python_api_checks_the_same() -> None:
    with pytest.raises(ConfigError, match="assume_role"):
        Settings.create(bucket="my-bucket", oidc_token_id=TOKEN)
    s = Settings.create(bucket="my-bucket", assume_role=ROLE, oidc_token_id=TOKEN)
    assert s.oidc_token_id == TOKEN


# ---------------------------------------------------------------- the AWS_* variables


def test_aws_pair_and_its_token_are_left_to_boto3() -> None:
    # boto3's chain reads all three itself (and an explicit profile comes before them).
    s = env_settings({"AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "env-secret",
                      "AWS_SESSION_TOKEN": "env-token"})
    assert (s.access_key, s.secret_key, s.session_token) == ("", "", "")


def test_aws_pair_with_a_profile_is_not_a_conflict() -> None:
    s = env_settings({"AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "env-secret", "PLUGIN_PROFILE": "p"})
    assert (s.access_key, s.profile) == ("", "p")


def test_aws_pair_with_a_session_token_setting_becomes_static_keys() -> None:
    s = env_settings({"AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "env-secret",
                      "AWS_SESSION_TOKEN": "env-token", "PLUGIN_SESSION_TOKEN": "plugin-token"})
    assert (s.access_key, s.secret_key, s.session_token) == ("AKIAENV", "env-secret", "plugin-token")


def test_aws_pair_with_a_session_token_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("bucket: my-bucket\nsession_token: file-token\n", encoding="utf-8")
    s = from_sources(["--config", str(path)], {"AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "env-secret"})
    assert (s.access_key, s.session_token) == ("AKIAENV", "file-token")


def test_plugin_keys_take_aws_session_token_when_no_other_key_owns_it() -> None:
    # As the sibling plugins/s3 reads session_token: PLUGIN_SESSION_TOKEN, else AWS_SESSION_TOKEN.
    s = env_settings({"PLUGIN_ACCESS_KEY": "AKIAPLUGIN", "PLUGIN_SECRET_KEY": "s", "AWS_SESSION_TOKEN": "env-token"})
    assert s.session_token == "env-token"
    s = env_settings({"PLUGIN_ACCESS_KEY": "AKIAPLUGIN", "PLUGIN_SECRET_KEY": "s", "AWS_SESSION_TOKEN": "env-token",
                      "AWS_ACCESS_KEY_ID": "AKIAPLUGIN"})
    assert s.session_token == "env-token"


def test_aws_session_token_of_another_key_is_not_used() -> None:
    s = env_settings({"PLUGIN_ACCESS_KEY": "AKIAPLUGIN", "PLUGIN_SECRET_KEY": "s", "AWS_SESSION_TOKEN": "env-token",
                      "AWS_ACCESS_KEY_ID": "AKIAOTHER"})
    assert (s.access_key, s.session_token) == ("AKIAPLUGIN", "")


def test_aws_session_token_alone_is_not_an_error() -> None:
    # Not a setting without a key pair: boto3 ignores it as well.
    assert env_settings({"AWS_SESSION_TOKEN": "env-token"}).session_token == ""


# ---------------------------------------------------------------- secrets


def test_repr_never_shows_tokens() -> None:
    s = env_settings({"PLUGIN_ACCESS_KEY": "AKIAX", "PLUGIN_SECRET_KEY": "s", "PLUGIN_SESSION_TOKEN": "SessTokenValue9"})
    o = env_settings({"PLUGIN_ASSUME_ROLE": ROLE, "PLUGIN_OIDC_TOKEN_ID": TOKEN})
    assert "SessTokenValue9" not in repr(s)
    assert TOKEN not in repr(o) and ROLE in repr(o)


def test_secrets_of_covers_every_secret_setting_and_its_variables() -> None:
    environ = {"PLUGIN_BUCKET": "my-bucket", "PLUGIN_SECRET_KEY": "secret-1", "PLUGIN_SESSION_TOKEN": " plugin-token ",
               "AWS_SESSION_TOKEN": "unused-env-token", "PLUGIN_ASSUME_ROLE": ROLE, "PLUGIN_OIDC_TOKEN_ID": TOKEN}
    found = secrets_of(Settings(bucket="my-bucket"), environ)  # values in variables, used or not
    for value in ("secret-1", "plugin-token", "unused-env-token", TOKEN):
        assert value in found
    flagged = from_sources(["--access-key", "AKIAFLAG", "--secret-key", "flag-secret", "--session-token", "flag-token"],
                           {"PLUGIN_BUCKET": "my-bucket"})
    assert {"flag-secret", "flag-token"} <= set(secrets_of(flagged, {}))  # values from flags
    assert TOKEN in secrets_of(Settings.create(bucket="my-bucket", assume_role=ROLE, oidc_token_id=TOKEN), {})


def test_cli_refusal_never_prints_the_token(capsys: pytest.CaptureFixture) -> None:
    code = cli.run([], {"PLUGIN_BUCKET": "my-bucket", "PLUGIN_OIDC_TOKEN_ID": TOKEN})
    out = capsys.readouterr()
    assert code == 2
    assert "PLUGIN_OIDC_TOKEN_ID" in out.err and TOKEN not in out.err + out.out
