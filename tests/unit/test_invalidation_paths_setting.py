"""`invalidation_paths`: CloudFront paths given by the user, checked and escaped
like the computed ones (invalidate.normalize_path / check_paths), and the
setting's accepted forms (ruleparsers.parse_invalidation_paths)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from drone_s3_sync import config
from drone_s3_sync import sources
from drone_s3_sync import ruleparsers
from drone_s3_sync.errors import ConfigError
from drone_s3_sync.invalidate import check_paths, invalidation_paths, normalize_path

FORMS = "use CloudFront paths that start with '/'"


def settings_from(environ: dict, argv: list = ()) -> config.Settings:
    return sources.from_sources(list(argv), {"PLUGIN_BUCKET": "my-bucket", **environ})


# --- one path ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_path", "expected"),
    [
        ("/index.html", "/index.html"),
        ("/", "/"),
        ("/*", "/*"),
        ("/docs/*", "/docs/*"),
        ("/images/logo.*", "/images/logo.*"),
        ("/my file.txt", "/my%20file.txt"),  # escaped as invalidate.py escapes keys
        ("/café.html", "/caf%C3%A9.html"),
        ("/~user/", "/%7Euser/"),
        ("/a#b.html", "/a%23b.html"),
        ('/q"<>{}|\\^[]`.txt', "/q%22%3C%3E%7B%7D%7C%5C%5E%5B%5D%60.txt"),
        ("/tab\there", "/tab%09here"),
        ("/100%.html", "/100%25.html"),  # a lone % is a character
        ("/a%2", "/a%252"),
        ("/a%zz", "/a%25zz"),
        ("/my%20file.txt", "/my%20file.txt"),  # an escape already written is kept
        ("/caf%c3%a9.html", "/caf%c3%a9.html"),
        ("/search?q=a", "/search?q=a"),  # ? starts the query string of one cached version
        ("/search?q=a b", "/search?q=a%20b"),
        ("/images/image.jpg*", "/images/image.jpg*"),
        ("/a,b;c=d(e)+f!$@'&.html", "/a,b;c=d(e)+f!$@'&.html"),  # not unsafe: kept
    ],
)
def test_normalize_path(given_path: str, expected: str) -> None:
    assert normalize_path(given_path) == expected


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("docs/index.html", "does not start with '/'"),
        ("", "does not start with '/'"),
        ("*", "does not start with '/'"),
        ("https://example.com/a", "does not start with '/'"),
        ("/a*/b", "'*' is a wildcard only as the last character"),
        ("/**", "'*' is a wildcard only as the last character"),
        ("/" + "x" * 4000, "a path of 4,001 characters"),
        ("/" + "é" * 1000, "6,001 characters once escaped"),
    ],
)
def test_normalize_path_refuses(bad: str, words: str) -> None:
    with pytest.raises(ValueError) as info:
        normalize_path(bad)
    assert words in str(info.value)


def test_longest_path_is_accepted() -> None:
    path = "/" + "x" * 3999
    assert normalize_path(path) == path


_KEY = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="*?%"), min_size=1, max_size=30)


@given(_KEY)
def test_a_key_written_as_a_path_is_escaped_as_the_computed_path(key: str) -> None:
    # Keys without '*', '?' and '%' (in a path: wildcard, query string and
    # escape): "/" + key gives exactly the path computed for the key.
    assume(not key.endswith("index.html"))  # that key also gives its folder's path
    assert invalidation_paths([key]) == [normalize_path("/" + key)]


@given(st.lists(_KEY, min_size=1, max_size=20))
def test_computed_paths_pass_unchanged(keys: list) -> None:
    paths = invalidation_paths(keys)
    assert check_paths(paths) == paths


# --- the list --------------------------------------------------------------------


def test_check_paths_keeps_order_and_drops_repeats() -> None:
    assert check_paths(["/b", "/a b", "/a", "/a%20b", "/b"]) == ["/b", "/a%20b", "/a"]


def test_wildcard_quota() -> None:
    fifteen = [f"/d{i}/*" for i in range(15)]
    assert check_paths(fifteen) == fifteen
    with pytest.raises(ValueError, match="16 wildcard paths: CloudFront accepts at most 15"):
        check_paths(fifteen + ["/x*"])


def test_file_path_quota() -> None:
    files = [f"/f{i}" for i in range(3000)]
    assert len(check_paths(files + ["/d/*"])) == 3001  # wildcards are a separate quota
    with pytest.raises(ValueError, match="3,001 file paths: CloudFront accepts at most 3,000"):
        check_paths(files + ["/one-more"])


# --- the setting ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/index.html", ("/index.html",)),
        ("/index.html,/docs/*", ("/index.html", "/docs/*")),  # how Drone and Woodpecker send a list
        (" /a , /b ,, ", ("/a", "/b")),
        ('["/a,b.html", "/c d"]', ("/a,b.html", "/c%20d")),  # JSON: a comma inside a path
        ("[]", ()),
    ],
)
def test_setting_forms(raw: str, expected: tuple) -> None:
    assert settings_from({"PLUGIN_INVALIDATION_PATHS": raw}).invalidation_paths == expected


def test_default_is_the_computed_paths() -> None:
    assert settings_from({}).invalidation_paths == ()


def test_yaml_list_and_flag(tmp_path: Path) -> None:
    cfg = tmp_path / "deploy.yml"
    cfg.write_text("bucket: b-1\ninvalidation_paths:\n  - /index.html\n  - /docs/*\n", encoding="utf-8")
    assert sources.from_sources(["--config", str(cfg)], {}).invalidation_paths == ("/index.html", "/docs/*")
    s = sources.from_sources(["--config", str(cfg), "--invalidation-paths", "/x"], {})
    assert s.invalidation_paths == ("/x",)
    cfg.write_text("bucket: b-1\ninvalidation_paths: /only\n", encoding="utf-8")
    assert sources.from_sources(["--config", str(cfg)], {}).invalidation_paths == ("/only",)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("docs/*", "'docs/*' does not start with '/'"),
        ("/a,docs", "'docs' does not start with '/'"),
        ("/a*/b", "wildcard only as the last character"),
        ('{"a": "/b"}', "got a map"),
        ('["/a", ["/b"]]', "expected a path, got a list"),
        ('["/a", null]', "expected a path, got nothing"),
        ('["/a",', "invalid JSON"),
    ],
)
def test_setting_refusals_name_the_variable(raw: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from({"PLUGIN_INVALIDATION_PATHS": raw})
    message = str(info.value)
    assert message.startswith("PLUGIN_INVALIDATION_PATHS: ")
    assert words in message and FORMS in message


def test_refusal_in_a_config_file_names_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "deploy.yml"
    cfg.write_text("bucket: b-1\ninvalidation_paths:\n  - /ok\n  - not-a-path\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        sources.from_sources(["--config", str(cfg)], {})
    assert str(info.value).startswith(f"invalidation_paths (in {cfg}): 'not-a-path' does not start with '/'")


# --- cloudfront_wait, cloudfront_wait_timeout ----------------------------------------


def test_wait_settings() -> None:
    s = settings_from({})
    assert (s.cloudfront_wait, s.cloudfront_wait_timeout) == (False, 900.0)
    s = settings_from({"PLUGIN_CLOUDFRONT_WAIT": "true", "PLUGIN_CLOUDFRONT_WAIT_TIMEOUT": "120"})
    assert (s.cloudfront_wait, s.cloudfront_wait_timeout) == (True, 120.0)
    with pytest.raises(ConfigError, match="^PLUGIN_CLOUDFRONT_WAIT_TIMEOUT: "):
        settings_from({"PLUGIN_CLOUDFRONT_WAIT_TIMEOUT": "0"})


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"PLUGIN_INVALIDATION_PATHS": "/a"}, ["PLUGIN_INVALIDATION_PATHS has no effect without cloudfront_distribution"]),
        ({"PLUGIN_CLOUDFRONT_WAIT": "true"}, ["PLUGIN_CLOUDFRONT_WAIT has no effect without cloudfront_distribution"]),
        ({"PLUGIN_CLOUDFRONT_WAIT": "false"}, []),
        ({"PLUGIN_CLOUDFRONT_WAIT_TIMEOUT": "60", "PLUGIN_CLOUDFRONT_DISTRIBUTION": "E1"},
         ["PLUGIN_CLOUDFRONT_WAIT_TIMEOUT has no effect without cloudfront_wait"]),
        ({"PLUGIN_CLOUDFRONT_WAIT_TIMEOUT": "60", "PLUGIN_CLOUDFRONT_WAIT": "1", "PLUGIN_CLOUDFRONT_DISTRIBUTION": "E1"},
         []),
        ({"PLUGIN_INVALIDATION_PATHS": "/a", "PLUGIN_CLOUDFRONT_DISTRIBUTION": "E1"}, []),
    ],
)
def test_warnings(environ: dict, expected: list) -> None:
    warnings = sources.setting_warnings(settings_from(environ))
    assert len(warnings) == len(expected), warnings
    for warning, start in zip(warnings, expected):
        assert warning.startswith(start)
