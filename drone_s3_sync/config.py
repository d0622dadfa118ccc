"""Settings from flags, PLUGIN_* environment variables and a YAML file.

One table (`OPTIONS`) names every setting once: its flag, its environment
variables in priority order, its type and default. Precedence is
flags > environment > config file > defaults. Nothing here reads
`os.environ` itself: callers pass the environment in, so tests and the
Python API stay hermetic.
"""

from __future__ import annotations

import argparse
import difflib
import email.utils
import json
import os
import re
import unicodedata
from datetime import datetime, timezone
from functools import partial
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlparse

from .errors import ConfigError

CANNED_ACLS = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
)

Rules = Tuple[Tuple[str, str], ...]
MetadataRules = Tuple[Tuple[str, Tuple[Tuple[str, str], ...]], ...]

_TRUE = {"1", "t", "true", "y", "yes", "on"}
_FALSE = {"0", "f", "false", "n", "no", "off", ""}


# ---------------------------------------------------------------- value parsers
# Each parser takes the raw value (a string from the environment or a flag, or a
# YAML value from the config file) and returns the typed value or raises
# ConfigError naming the setting.


def _text(name: str, raw: Any) -> str:
    if isinstance(raw, (dict, list)):
        raise ConfigError(name, f"expected a single value, got {'a map' if isinstance(raw, dict) else 'a list'}")
    return str(raw).strip()


def parse_bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = _text(name, raw).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(name, f"{raw!r} is not a boolean; use true or false")


def parse_int(name: str, raw: Any, *, minimum: int = 1, maximum: int = 1000) -> int:
    if isinstance(raw, bool):
        raise ConfigError(name, f"expected a whole number from {minimum} to {maximum}")
    try:
        value = raw if isinstance(raw, int) else int(_text(name, raw), 0)
    except ValueError:
        raise ConfigError(name, f"{raw!r} is not a whole number; use {minimum} to {maximum}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(name, f"{value} is out of range; use {minimum} to {maximum}")
    return value


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(name: str, raw: Any, *, minimum: int, maximum: int) -> int:
    """Bytes from `8388608`, `8MiB`, `8MB` or `8M`; units are binary, as in aws-cli's s3 settings."""
    if isinstance(raw, bool):
        raise ConfigError(name, "expected a size like 16MiB")
    match = _SIZE.match(_text(name, raw))
    if not match:
        raise ConfigError(name, f"{raw!r} is not a size; use bytes or a number with KiB, MiB or GiB, like 16MiB")
    value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if not minimum <= value <= maximum:
        raise ConfigError(name, f"{raw!r} is out of range; use {_human(minimum)} to {_human(maximum)}")
    return value


def _human(size: int) -> str:
    for unit in ("GiB", "MiB", "KiB"):
        scale = _UNITS[unit[0].lower()]
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size} bytes"


MiB, GiB = 1 << 20, 1 << 30
MIN_PART, MAX_PART = 5 * MiB, 5 * GiB  # S3's limits for a part (and for a single PutObject)
# AWS advises multipart uploads from 100 MB: below that one PutObject is one
# request instead of a handful, and the ETag is the file's MD5. 16 MiB parts keep
# a 100 MiB file in 7 parallel requests.
MULTIPART_THRESHOLD = 100 * MiB
PART_SIZE = 16 * MiB


def parse_seconds(name: str, raw: Any, *, maximum: float = 3600.0) -> float:
    """A positive number of seconds; decimals allowed ("0.5")."""
    if isinstance(raw, bool):
        raise ConfigError(name, "expected a number of seconds")
    try:
        value = float(raw) if isinstance(raw, (int, float)) else float(_text(name, raw))
    except ValueError:
        raise ConfigError(name, f"{raw!r} is not a number of seconds") from None
    if not 0 < value <= maximum:  # also rejects nan
        raise ConfigError(name, f"{raw!r} is out of range; use more than 0 and at most {maximum:g} seconds")
    return value


def parse_interval(name: str, raw: Any, *, maximum: float = 3600.0) -> float:
    """Seconds between two progress lines; 0 turns them off."""
    if isinstance(raw, bool):
        raise ConfigError(name, f"expected a number of seconds; use 0 to {maximum:g} (0 turns it off)")
    try:
        value = float(raw) if isinstance(raw, (int, float)) else float(_text(name, raw))
    except ValueError:
        raise ConfigError(name, f"{raw!r} is not a number of seconds; use 0 to {maximum:g} (0 turns it off)") from None
    if not 0 <= value <= maximum:  # also rejects nan
        raise ConfigError(name, f"{raw!r} is out of range; use 0 to {maximum:g} seconds (0 turns it off)")
    return value


REPORT_FORMS = "give a file name such as report.json or /tmp/sync-report.json, in a folder that exists"


def parse_report_path(name: str, raw: Any) -> str:
    """A file the JSON report can be written to: checked now, before any request,
    so that a typo does not surface after the whole sync ran."""
    text = _text(name, raw)
    if not text:
        return ""
    path = os.path.expanduser(text)
    if any(ord(c) < 32 for c in path):
        raise ConfigError(name, f"{text!r} contains a control character; {REPORT_FORMS}")
    if os.path.isdir(path) or path.endswith(("/", os.sep)):
        raise ConfigError(name, f"{text!r} is a folder; {REPORT_FORMS}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        what = "is not a folder" if os.path.exists(folder) else "does not exist"
        raise ConfigError(name, f"the folder of {text!r} ({folder}) {what}; create it first, or {REPORT_FORMS}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(name, f"cannot write in the folder {folder} (permission denied); {REPORT_FORMS}")
    if os.path.exists(path) and not os.path.isfile(path):
        raise ConfigError(name, f"{text!r} exists and is not a regular file; {REPORT_FORMS}")
    return path


def _header_value(name: str, value: Any, where: str = "") -> str:
    if isinstance(value, (dict, list)) or value is None:
        got = "nothing" if value is None else ("a map" if isinstance(value, dict) else "a list")
        raise ConfigError(name, f"{where}expected a text value, got {got}")
    text = str(value).strip() if not isinstance(value, bool) else str(value).lower()
    if not text:
        raise ConfigError(name, f"{where}empty value; give a value or leave the rule out")
    if any(ord(c) < 32 or ord(c) > 126 for c in text):
        raise ConfigError(name, f"{where}{text!r}: header values must be printable ASCII")
    return text


RULES_FORMS = 'use one value for every file, or a map of pattern to value like {".html": "...", "assets/*": "..."}'
METADATA_FORMS = 'use a map like {"key": "value"} or {"*.png": {"key": "value"}}'
REDIRECTS_FORMS = 'use a map of key to location, like {"old/page.html": "/new/page.html"}'


def _unique_pairs(name: str) -> Callable[[List[Tuple[str, Any]]], Dict[str, Any]]:
    """json.loads keeps the last of two equal keys; a map that says two things is refused."""
    def hook(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
        result: Dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise ConfigError(name, f"{key!r} appears twice in the map; give each key once")
            result[key] = value
        return result

    return hook


def _json_or_value(name: str, raw: Any, forms: str) -> Any:
    """Drone sends YAML maps as JSON text; a YAML file gives real maps."""
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("{") or text.startswith("["):
            try:
                return json.loads(text, object_pairs_hook=_unique_pairs(name))
            except json.JSONDecodeError as exc:
                raise ConfigError(name, f"invalid JSON ({exc.msg} at character {exc.pos}); {forms}") from None
        return text
    return raw


def parse_rules(name: str, raw: Any, check: Optional[Callable[[str, str], str]] = None) -> Rules:
    """A plain value for every file, or an ordered map of pattern -> value."""
    value = _json_or_value(name, raw, RULES_FORMS)
    if isinstance(value, list):
        raise ConfigError(name, f"expected a value or a map of pattern to value, got a list; {RULES_FORMS}")
    if not isinstance(value, dict):
        items = [("*", value)]
    else:
        items = list(value.items())
    rules = []
    for pattern, item in items:
        where = "" if not isinstance(value, dict) else f"rule {pattern!r}: "
        text = _header_value(name, item, where)
        if check is not None:
            text = check(text, where)
        rules.append((str(pattern), text))
    return tuple(rules)


STORAGE_CLASSES = (
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
    "OUTPOSTS",
    "SNOW",
    "EXPRESS_ONEZONE",
)
ENCRYPTIONS = ("AES256", "aws:kms", "aws:kms:dsse")
KMS_ENCRYPTIONS = ("aws:kms", "aws:kms:dsse")


def _one_of(name: str, choices: Sequence[str], what: str, normalise: Callable[[str], str]) -> Callable[[str, str], str]:
    """A rule check: the value must be one of `choices` (compared after `normalise`)."""
    canonical = {normalise(c): c for c in choices}

    def check(value: str, where: str) -> str:
        found = canonical.get(normalise(value))
        if found is None:
            hint = difflib.get_close_matches(normalise(value), list(canonical), n=1)
            suggestion = f" (did you mean {canonical[hint[0]]!r}?)" if hint else ""
            raise ConfigError(name, f"{where}{value!r} is not {what}{suggestion}; use one of {', '.join(choices)}")
        return found

    return check


def parse_storage_class(name: str, raw: Any) -> Rules:
    return parse_rules(name, raw, _one_of(name, STORAGE_CLASSES, "an S3 storage class",
                                          lambda v: v.upper().replace("-", "_")))


def parse_encryption(name: str, raw: Any) -> Rules:
    return parse_rules(name, raw, _one_of(name, ENCRYPTIONS, "a server-side encryption", str.lower))


def http_date(value: Any) -> Optional[str]:
    """The HTTP-date (as S3 returns it in Expires) of an HTTP-date or an ISO 8601
    date or date and time; None when it is neither. A time without a zone is UTC."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            iso = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
            # An HTTP-date has whole seconds; Python before 3.11 parses only 3 or 6 decimals.
            iso = re.sub(r"(T|\s)(\d\d:\d\d:\d\d)[.,]\d+", r"\1\2", iso)
            try:
                moment = datetime.fromisoformat(iso)
            except ValueError:
                return None
        if moment is None:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        moment = moment.astimezone(timezone.utc).replace(microsecond=0)
    except (OverflowError, ValueError):
        return None
    return email.utils.format_datetime(moment, usegmt=True)


EXPIRES_FORMS = "use an HTTP-date like 'Tue, 01 Jan 2030 00:00:00 GMT' or an ISO 8601 date like 2030-01-01 or 2030-01-01T12:00:00Z"


def parse_expires(name: str, raw: Any) -> Rules:
    def check(value: str, where: str) -> str:
        date = http_date(value)
        if date is None:
            raise ConfigError(name, f"{where}{value!r} is not a date; {EXPIRES_FORMS}")
        return date

    return parse_rules(name, raw, check)


_KMS_KEY = re.compile(r"^(?:arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(?:key|alias)/[A-Za-z0-9/_-]+"
                      r"|alias/[A-Za-z0-9/_-]+|[A-Za-z0-9-]+)$")


def parse_kms_key(name: str, raw: Any) -> str:
    text = _text(name, raw)
    if text and (len(text) > 2048 or not _KMS_KEY.match(text)):
        raise ConfigError(name, f"{text!r} is not a KMS key; use a key id like 1234abcd-12ab-34cd-56ef-1234567890ab, "
                                "a key ARN, alias/NAME or an alias ARN")
    return text


GLOBS_FORMS = ("use patterns relative to the source like 'drafts/*' or '.map', several separated by commas "
               "(or a list)")


def _text_items(name: str, raw: Any, forms: str, *, many: str, one: str) -> List[str]:
    """The items of a list setting: a list (YAML file), a JSON list, or text
    separated by commas (how Drone and Woodpecker pass a YAML list); stripped,
    blank items left out. `many` / `one` name what is expected in messages."""
    value = raw
    if isinstance(raw, str):
        text = raw.strip()
        # '["a", "b"]' is a JSON list, "[abc]*" a glob.
        if re.match(r"^\[\s*[\"\]]", text) or text.startswith("{"):
            value = _json_or_value(name, text, forms)
        else:
            value = text.split(",")
    if isinstance(value, dict):
        raise ConfigError(name, f"expected {many}, got a map; {forms}")
    if not isinstance(value, list):
        value = [value]
    items = []
    for item in value:
        if isinstance(item, (dict, list)) or item is None:
            raise ConfigError(name, f"expected {one}, got {'nothing' if item is None else _kind(item)}; {forms}")
        text = str(item).strip()
        if text:
            items.append(text)
    return items


def parse_globs(name: str, raw: Any) -> Tuple[str, ...]:
    """Glob patterns (see `_text_items` for the forms), NFC, without repeats."""
    patterns: List[str] = []
    for item in _text_items(name, raw, GLOBS_FORMS, many="patterns", one="a pattern"):
        pattern = unicodedata.normalize("NFC", item)
        if any(ord(c) < 32 or ord(c) == 127 for c in pattern):
            raise ConfigError(name, f"{pattern!r} contains a control character; {GLOBS_FORMS}")
        check_relative(name, pattern, GLOBS_FORMS)
        if pattern not in patterns:
            patterns.append(pattern)
    return tuple(patterns)


def _check_acl(name: str) -> Callable[[str, str], str]:
    def check(value: str, where: str) -> str:
        if value not in CANNED_ACLS:
            hint = difflib.get_close_matches(value, CANNED_ACLS, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(name, f"{where}{value!r} is not a canned ACL{suggestion}; use one of {', '.join(CANNED_ACLS)}")
        return value

    return check


COMPRESS_VALUES = ("gzip", "br", "none")
COMPRESS_FORMS = ('use gzip, br or none for every file, a map of pattern to gzip/br/none like '
                  '{".html": "br", ".css": "gzip", "*.min.js": "none"}, or a list of extensions to gzip like .html,.css,.js')
_EXTENSION = re.compile(r"^\.[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*$")


def _check_compress(name: str) -> Callable[[str, str], str]:
    def check(value: str, where: str) -> str:
        lowered = value.lower()
        if lowered in COMPRESS_VALUES:
            return lowered
        hint = {"brotli": " (brotli is 'br', its Content-Encoding name)", "true": " (for gzip write gzip)",
                "yes": " (for gzip write gzip)", "on": " (for gzip write gzip)", "false": " (write none)",
                "no": " (write none)", "off": " (write none)"}.get(lowered, "")
        if not hint:
            close = difflib.get_close_matches(lowered, COMPRESS_VALUES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(name, f"{where}{value!r} is not a compression{hint}; {COMPRESS_FORMS}")

    return check


def parse_compress(name: str, raw: Any) -> Rules:
    """`compress`: rules like cache_control's whose values are gzip, br or none;
    also a list of extensions (Drone and Woodpecker send a YAML list comma-joined)
    that are all gzipped. Refuses br when the optional Brotli package is missing."""
    value = _json_or_value(name, raw, COMPRESS_FORMS)
    if isinstance(value, list) or (isinstance(value, str) and value.startswith(".")):
        items = value if isinstance(value, list) else value.split(",")
        rules = []
        for item in items:
            text = _header_value(name, item, "list item: ") if not isinstance(item, str) else item.strip()
            if not text:
                continue
            if not _EXTENSION.match(text):
                raise ConfigError(name, f"{text!r} is not an extension like .html (a list names extensions to gzip); "
                                        f"{COMPRESS_FORMS}")
            rules.append((text, "gzip"))
        if not rules:
            raise ConfigError(name, f"the list names no extension; {COMPRESS_FORMS}")
        return tuple(rules)
    if isinstance(value, str) and not value.strip():
        raise ConfigError(name, f"empty value; {COMPRESS_FORMS}")
    rules = parse_rules(name, value, _check_compress(name))
    if any(encoding == "br" for _, encoding in rules):
        from .compress import BROTLI_HINT, brotli_module

        if brotli_module() is None:
            raise ConfigError(name, f"br (brotli) needs the Brotli package, which is not installed: {BROTLI_HINT} "
                                    "(or compress with gzip)")
    return rules


_META_NAME = re.compile(r"^[A-Za-z0-9!#$&'*+.^_`|~-]+$")


def _metadata_map(name: str, value: Mapping, where: str) -> Tuple[Tuple[str, str], ...]:
    pairs: Dict[str, str] = {}
    for key, item in value.items():
        key = str(key).strip()
        if not _META_NAME.match(key):
            raise ConfigError(name, f"{where}{key!r} is not a valid metadata name; use letters, digits and "
                                    "- _ . (no spaces)")
        if key.lower() in pairs:
            raise ConfigError(name, f"{where}{key!r} is given twice (metadata names ignore case); give it once")
        pairs[key.lower()] = _header_value(name, item, f"{where}{key}: ")
    return tuple(sorted(pairs.items()))


def parse_metadata(name: str, raw: Any) -> MetadataRules:
    """A flat map for every file, or an ordered map of glob -> map."""
    value = _json_or_value(name, raw, METADATA_FORMS)
    if not isinstance(value, dict):
        raise ConfigError(name, f"expected a map, got {_kind(value)}; {METADATA_FORMS}")
    nested = [isinstance(v, dict) for v in value.values()]
    if value and all(nested):
        return tuple((str(p), _metadata_map(name, m, f"rule {p!r}: ")) for p, m in value.items())
    if any(nested):
        raise ConfigError(name, 'mixes plain values and per-pattern maps; use one form: {"key": "value"} for '
                                'every file, or {"*.png": {"key": "value"}}')
    return (("*", _metadata_map(name, value, "")),) if value else ()


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, list):
        return "a list"
    return f"the value {value!r}"


def parse_redirects(name: str, raw: Any) -> Tuple[Tuple[str, str], ...]:
    from .state import STATE_NAME

    value = _json_or_value(name, raw, REDIRECTS_FORMS)
    if not isinstance(value, dict):
        raise ConfigError(name, f"expected a map, got {_kind(value)}; {REDIRECTS_FORMS}")
    result: Dict[str, str] = {}
    for key, location in value.items():
        key_text = str(key).strip().lstrip("/")
        if not key_text or key_text.endswith("/"):
            raise ConfigError(name, f"{key!r} is not an object key; give a file's key relative to the target, "
                                    "like 'old/page.html'")
        check_relative(name, key_text, "give a key relative to the target, like 'old/page.html'")
        if key_text == STATE_NAME:
            raise ConfigError(name, f"{key!r} is the name of the state object this tool keeps under the target; "
                                    "choose another key")
        if key_text in result:
            raise ConfigError(name, f"{key!r} names the key {key_text!r} twice; give each key once")
        result[key_text] = _header_value(name, location, f"{key}: ")
    return tuple(result.items())


def check_relative(name: str, path: str, forms: str) -> None:
    if any(part in (".", "..") for part in path.split("/")):
        raise ConfigError(name, f"{path!r} must not contain '.' or '..' segments; {forms}")


def parse_target(name: str, raw: Any) -> str:
    """Normalise to a key prefix: "" for the bucket root, else "a/b/"."""
    text = _text(name, raw)
    parts = [p for p in text.split("/") if p]
    check_relative(name, "/".join(parts), "use a key prefix such as 'site' or 'docs/v2', or '/' for the bucket root")
    if "\\" in text:
        raise ConfigError(name, "use '/' to separate folders")
    return "/".join(parts) + "/" if parts else ""


ENDPOINT_FORMS = "use a URL such as https://s3.example.com or http://127.0.0.1:9000 (a bare host name gets https://)"


def parse_endpoint(name: str, raw: Any) -> str:
    text = _text(name, raw)
    if not text:
        return ""
    if "://" not in text:
        text = "https://" + text
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or any(c.isspace() for c in text):
        raise ConfigError(name, f"{raw!r} is not an http(s) URL or host name; {ENDPOINT_FORMS}")
    try:
        parsed.port
    except ValueError:
        raise ConfigError(name, f"{raw!r} has an invalid port (use 1 to 65535); {ENDPOINT_FORMS}") from None
    return text.rstrip("/")


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,61}[a-z0-9]$", re.IGNORECASE)
# Website and virtual-host names that the plugin's own docs put in `bucket:`.
_BUCKET_HOST = re.compile(
    r"^(?P<bucket>.+?)\.s3(?:-website)?(?:[.-](?P<region>[a-z]{2}(?:-[a-z]+)+-\d))?\.amazonaws\.com$"
)


def parse_bucket(name: str, raw: Any) -> Tuple[str, Optional[str]]:
    """Returns (bucket, region found in a host name or None)."""
    text = _text(name, raw)
    if text.startswith("s3://"):
        text = text[5:].rstrip("/")
    match = _BUCKET_HOST.match(text)
    region = None
    if match:
        text, region = match.group("bucket"), match.group("region")
    if not _BUCKET.match(text):
        raise ConfigError(name, f"{raw!r} is not a bucket name; use the bucket's name (3 to 63 letters, digits, "
                                "'.' and '-'), s3://name, or a host name like "
                                "my-bucket.s3-website-us-east-1.amazonaws.com")
    return text, region


def parse_region(name: str, raw: Any) -> str:
    text = _text(name, raw)
    if not re.match(r"^[a-z0-9-]+$", text):
        raise ConfigError(name, f"{raw!r} is not a region name like us-east-1")
    return text


def parse_distributions(name: str, raw: Any) -> Tuple[str, ...]:
    items = raw if isinstance(raw, list) else _text(name, raw).split(",")
    ids = tuple(str(i).strip() for i in items if str(i).strip())
    for dist in ids:
        if not re.match(r"^[A-Za-z0-9]+$", dist):
            raise ConfigError(name, f"{dist!r} is not a distribution id; use ids like E2QWRUHAPOMQZL, "
                                    "several separated by commas")
    return ids


INVALIDATION_PATHS_FORMS = ("use CloudFront paths that start with '/', separated by commas (or a JSON or YAML list), "
                            "like /index.html,/docs/*")


def parse_invalidation_paths(name: str, raw: Any) -> Tuple[str, ...]:
    """CloudFront paths: a comma list (Drone and Woodpecker join a YAML list
    with commas), a JSON list, or a YAML list. Normalized and checked against
    CloudFront's limits; () when empty."""
    from .invalidate import check_paths

    items = _text_items(name, raw, INVALIDATION_PATHS_FORMS, many="a list of paths", one="a path")
    try:
        return tuple(check_paths(items))
    except ValueError as exc:
        raise ConfigError(name, f"{exc}; {INVALIDATION_PATHS_FORMS}") from None


def parse_text(name: str, raw: Any) -> str:
    return _text(name, raw)


def parse_credential(name: str, raw: Any, *, secret: bool) -> str:
    """A key as pasted into a secret store. The message never shows the value."""
    text = _text(name, raw)
    if secret:
        bad = any(ord(c) < 32 or ord(c) == 127 for c in text)
        what = "a line break or another control character"
    else:
        bad = any(ord(c) <= 32 or ord(c) >= 127 for c in text)
        what = "a space, a line break or a character that is not ASCII"
    if bad:
        raise ConfigError(name, f"contains {what}, which a key cannot have; give the key alone, without quotes or "
                                "other lines (the value is not shown)")
    return text


@dataclass(frozen=True)
class DeleteLimit:
    """`max_delete`: a number of objects, or a percentage of the objects under the target."""

    value: Decimal
    percent: bool = False

    def allowed(self, total: int) -> int:
        """How many deletes a run may make when `total` objects are under the target."""
        if not self.percent:
            return int(self.value)
        return int(self.value * total // 100)

    def __str__(self) -> str:
        return f"{self.value}%" if self.percent else str(self.value)


MAX_DELETE_FORMS = "use a whole number of objects such as 100, or a percentage of the objects under the target such as 10%"


def parse_max_delete(name: str, raw: Any) -> DeleteLimit:
    if isinstance(raw, bool) or isinstance(raw, float):
        raise ConfigError(name, f"{raw!r} is not a limit; {MAX_DELETE_FORMS}")
    if isinstance(raw, int) and raw >= 0:
        return DeleteLimit(Decimal(raw))
    text = _text(name, raw)
    if text.endswith("%"):
        number = text[:-1].strip()
        if not re.match(r"^\d+(\.\d+)?\Z", number):
            raise ConfigError(name, f"{raw!r} is not a percentage; {MAX_DELETE_FORMS}")
        if Decimal(number) > 100:
            raise ConfigError(name, f"{raw!r} is more than 100%; {MAX_DELETE_FORMS}")
        return DeleteLimit(Decimal(number), percent=True)
    if not re.match(r"^\d+\Z", text):
        raise ConfigError(name, f"{raw!r} is not a whole number of 0 or more; {MAX_DELETE_FORMS}")
    return DeleteLimit(Decimal(int(text)))


_ROLE_ARN = re.compile(r"^arn:aws[-a-z]*:iam::\d{12}:role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}$")


def parse_role_arn(name: str, raw: Any) -> str:
    text = _text(name, raw)
    if text and not _ROLE_ARN.match(text):
        raise ConfigError(name, f"{text!r} is not an IAM role ARN like arn:aws:iam::123456789012:role/deploy")
    return text


def _sts_text(pattern: str, what: str) -> Callable[[str, Any], str]:
    """A value STS checks against `pattern` (its documented character set and length)."""
    def parse(name: str, raw: Any) -> str:
        text = _text(name, raw)
        if text and not re.match(pattern, text):
            raise ConfigError(name, f"{text!r} is not a valid {what}")
        return text

    return parse


def parse_token(name: str, raw: Any) -> str:
    """A web identity (OIDC) token: the token itself. The value is never echoed."""
    text = _text(name, raw)
    if text and (len(text) < 4 or len(text) > 20000 or any(c.isspace() for c in text)):
        raise ConfigError(name, "is not a web identity token (4 to 20,000 characters, no spaces)")
    if text and os.path.isfile(text):
        raise ConfigError(name, "takes the token itself, not a file name (for a token file set "
                                "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE instead)")
    return text


# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class Option:
    name: str
    env: Tuple[str, ...]
    parse: Callable[[str, Any], Any]
    help: str
    metavar: str = "VALUE"
    flag: bool = False  # a boolean switch on the command line
    secret: bool = False


OPTIONS: Tuple[Option, ...] = (
    Option("bucket", ("PLUGIN_BUCKET",), parse_text, "Bucket name (required). An S3 website or virtual-host name such as my-bucket.s3-website-us-east-1.amazonaws.com is accepted too.", "NAME"),
    Option("region", ("PLUGIN_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"), parse_region, "Bucket region. Default: us-east-1.", "REGION"),
    Option("source", ("PLUGIN_SOURCE",), parse_text, "Local folder to publish, or a glob such as 'dist/**/*.html' (keys are relative to the part before the first wildcard). Relative to the working directory (to the config file's folder for --config). Default: '.'.", "PATH"),
    Option("allow_external_symlinks", ("PLUGIN_ALLOW_EXTERNAL_SYMLINKS",), parse_bool, "Follow symbolic links that point outside the source. Default: such links are skipped with a warning (neither uploaded nor deleted).", flag=True),
    Option("exclude", ("PLUGIN_EXCLUDE",), parse_globs, "Patterns (comma-separated, or a list) of files not to sync, matched like rule keys against the path relative to the source and against each of its folders: 'drafts' leaves out that folder, '.map' every file ending in .map, '*.psd' any PSD. Such files are not uploaded and their objects are never deleted.", "GLOB,..."),
    Option("include", ("PLUGIN_INCLUDE",), parse_globs, "Patterns (comma-separated, or a list), as for exclude: sync only the files one matches (or that are in a folder one matches), less those excluded. Objects of other files are never deleted. Default: every file.", "GLOB,..."),
    Option("target", ("PLUGIN_TARGET",), parse_target, "Key prefix in the bucket; '/' is the bucket root. Default: '/'.", "PREFIX"),
    Option("delete", ("PLUGIN_DELETE",), parse_bool, "Delete objects under the target that are not in the source (after all uploads succeeded).", flag=True),
    Option("allow_empty_source", ("PLUGIN_ALLOW_EMPTY_SOURCE",), parse_bool, "With delete: let a source that has no files (an empty folder, a glob matching nothing) delete everything under the target. Without it such a run is refused before any write (exit 3).", flag=True),
    Option("max_delete", ("PLUGIN_MAX_DELETE",), parse_max_delete, "With delete: refuse the run before any write (exit 3) when it would delete more than N objects, or more than N% of the objects under the target. Default: no limit.", "N|N%"),
    Option("acl", ("PLUGIN_ACL", "PLUGIN_ACCESS"), lambda n, r: parse_rules(n, r, _check_acl(n)), "Canned ACL for all files, or a JSON/YAML map of pattern to canned ACL. Default: private.", "ACL|MAP"),
    Option("content_type", ("PLUGIN_CONTENT_TYPE",), parse_rules, "Content-Type for all files, or a map of '.ext'/glob to type. Default: built-in table.", "TYPE|MAP"),
    Option("content_encoding", ("PLUGIN_CONTENT_ENCODING",), parse_rules, "Content-Encoding for all files, or a map of '.ext'/glob to encoding. Default: none.", "ENC|MAP"),
    Option("compress", ("PLUGIN_COMPRESS",), parse_compress, "Compress files on the fly for upload, with Content-Encoding set: gzip, br (brotli; needs drone-s3-sync[brotli]) or none for all files, a map of '.ext'/glob to gzip/br/none, or a list of extensions to gzip (.html,.css,.js). Deterministic output: unchanged files are not uploaded again. Default: none.", "ENC|MAP|LIST"),
    Option("cache_control", ("PLUGIN_CACHE_CONTROL",), parse_rules, "Cache-Control for all files, or a map of '.ext'/glob to value. Default: none.", "VALUE|MAP"),
    Option("content_disposition", ("PLUGIN_CONTENT_DISPOSITION",), parse_rules, "Content-Disposition for all files, or a map of '.ext'/glob to value (e.g. attachment). Default: none.", "VALUE|MAP"),
    Option("content_language", ("PLUGIN_CONTENT_LANGUAGE",), parse_rules, "Content-Language for all files, or a map of '.ext'/glob to value (e.g. en, de-CH). Default: none.", "LANG|MAP"),
    Option("expires", ("PLUGIN_EXPIRES",), parse_expires, "Expires header: an HTTP-date or an ISO 8601 date/time (UTC unless it gives a zone), for all files or as a map of '.ext'/glob to date. Default: none.", "DATE|MAP"),
    Option("storage_class", ("PLUGIN_STORAGE_CLASS",), parse_storage_class, "S3 storage class (STANDARD, STANDARD_IA, INTELLIGENT_TIERING, GLACIER_IR, ...) for all files, or a map of '.ext'/glob to class. Default: unset, objects keep the class they have (e.g. from a lifecycle rule); new ones get STANDARD.", "CLASS|MAP"),
    Option("encryption", ("PLUGIN_ENCRYPTION",), parse_encryption, "Server-side encryption: AES256, aws:kms or aws:kms:dsse, for all files or as a map of '.ext'/glob to value. Default: unset, objects keep their encryption; new ones get the bucket default.", "SSE|MAP"),
    Option("kms_key_id", ("PLUGIN_KMS_KEY_ID",), parse_kms_key, "KMS key (id, ARN, alias/NAME or alias ARN) for objects whose encryption is aws:kms or aws:kms:dsse. Default: the object's current key, else the bucket's or AWS managed key.", "KEY"),
    Option("metadata", ("PLUGIN_METADATA",), parse_metadata, "User metadata: a map for all files, or a map of glob to map.", "MAP"),
    Option("redirects", ("PLUGIN_REDIRECTS",), parse_redirects, "Map of key (relative to the target) to redirect location, written as zero-byte objects with x-amz-website-redirect-location.", "MAP"),
    Option("cloudfront_distribution", ("PLUGIN_CLOUDFRONT_DISTRIBUTION",), parse_distributions, "CloudFront distribution id(s) to invalidate for the paths this run changed.", "ID"),
    Option("invalidation_paths", ("PLUGIN_INVALIDATION_PATHS",), parse_invalidation_paths, "CloudFront paths to invalidate instead of the paths this run changed (comma-separated, or a list), like /index.html,/docs/*. Used only when the run changed something. Default: the changed paths.", "PATHS"),
    Option("cloudfront_wait", ("PLUGIN_CLOUDFRONT_WAIT",), parse_bool, "Wait until each CloudFront invalidation has completed, with a progress line; not completed within cloudfront_wait_timeout is a failure (exit 1).", flag=True),
    Option("cloudfront_wait_timeout", ("PLUGIN_CLOUDFRONT_WAIT_TIMEOUT",), parse_seconds, "With cloudfront_wait: seconds to wait for the invalidations to complete. Default: 900.", "SECONDS"),
    Option("dry_run", ("PLUGIN_DRY_RUN", "DRY_RUN"), parse_bool, "Print the plan; write nothing and invalidate nothing.", flag=True),
    Option("endpoint", ("PLUGIN_ENDPOINT", "S3_SYNC_ENDPOINT", "S3_ENDPOINT"), parse_endpoint, "S3-compatible endpoint URL (a bare host gets https://).", "URL"),
    Option("path_style", ("PLUGIN_PATH_STYLE",), parse_bool, "Use path-style addressing (http://host/bucket/key).", flag=True),
    Option("max_concurrency", ("PLUGIN_MAX_CONCURRENCY",), lambda n, r: parse_int(n, r), "Concurrent requests. Default: 32.", "N"),
    Option("read_timeout", ("PLUGIN_READ_TIMEOUT",), parse_seconds, "Seconds to wait for S3 to start (or go on) answering a request before that attempt counts as failed and is retried. Default: 60.", "SECONDS"),
    Option("max_attempts", ("PLUGIN_MAX_ATTEMPTS",), lambda n, r: parse_int(n, r, maximum=20), "Attempts per request, the first one included, for failures worth retrying (5xx, throttling, dropped connections, timeouts). Default: 8.", "N"),
    Option("state", ("PLUGIN_STATE",), parse_bool, "Keep the state object (<target>.drone-s3-sync-state.json.gz) that lets a run skip per-object requests. Default: true.", flag=True),
    Option("verify", ("PLUGIN_VERIFY",), parse_bool, "Ignore the state object for this run: check every object's headers and ACL with S3 (for objects changed by other tools).", flag=True),
    Option("multipart_threshold", ("PLUGIN_MULTIPART_THRESHOLD",), lambda n, r: parse_size(n, r, minimum=MIN_PART, maximum=MAX_PART), "Files from this size up are uploaded in parts, the rest with one PutObject. Default: 100MiB (the size from which AWS advises multipart uploads).", "SIZE"),
    Option("part_size", ("PLUGIN_PART_SIZE",), lambda n, r: parse_size(n, r, minimum=MIN_PART, maximum=MAX_PART), "Part size of multipart uploads (raised automatically past 10,000 parts). Default: 16MiB.", "SIZE"),
    Option("progress_interval", ("PLUGIN_PROGRESS_INTERVAL",), parse_interval, "When standard error is not a terminal (a CI log), print a one-line progress report at most every this many seconds while objects are written (uploads, header updates, redirects); nothing for a run shorter than that. 0 turns it off; so does quiet. Default: 30.", "SECONDS"),
    Option("quiet", ("PLUGIN_QUIET",), parse_bool, "Print only failures and the summary line (for cron).", flag=True),
    Option("report", ("PLUGIN_REPORT",), parse_report_path, "Write a JSON report of the run (the plan in a dry run) to this file, replaced atomically; its folder must exist. Written for every run whose settings are valid, also when it fails, is refused or is interrupted.", "FILE"),
    Option("json", ("PLUGIN_JSON",), parse_bool, "Print the JSON report (see report) on standard output instead of the action lines; the action lines and the summary go to standard error.", flag=True),
    Option("access_key", ("PLUGIN_ACCESS_KEY", "AWS_ACCESS_KEY_ID"), partial(parse_credential, secret=False), "Access key id; used only with secret_key. Default: the AWS credential chain.", "KEY", secret=True),
    Option("secret_key", ("PLUGIN_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"), partial(parse_credential, secret=True), "Secret access key; used only with access_key.", "SECRET", secret=True),
    Option("session_token", ("PLUGIN_SESSION_TOKEN", "AWS_SESSION_TOKEN"), partial(parse_credential, secret=True), "Session token of temporary keys; needs access_key and secret_key.", "TOKEN", secret=True),
    Option("assume_role", ("PLUGIN_ASSUME_ROLE", "ASSUME_ROLE"), parse_role_arn, "IAM role ARN to assume with STS for this run (with the other credentials, or with oidc_token_id). Refreshed before it expires.", "ARN"),
    Option("assume_role_session_name", ("PLUGIN_ASSUME_ROLE_SESSION_NAME",), _sts_text(r"^[\w+=,.@-]{2,64}$", "role session name (2-64 of A-Z a-z 0-9 _+=,.@-)"), "Session name for assume_role, shown in CloudTrail. Default: drone-s3-sync.", "NAME"),
    Option("external_id", ("PLUGIN_EXTERNAL_ID",), _sts_text(r"^[\w+=,.@:/-]{2,1224}$", "external id (2-1224 of A-Z a-z 0-9 _+=,.@:/-)"), "External id the role's trust policy requires; used with assume_role.", "ID"),
    Option("oidc_token_id", ("PLUGIN_OIDC_TOKEN_ID",), parse_token, "OIDC (web identity) token to assume the assume_role role with (STS AssumeRoleWithWebIdentity); no other credentials needed.", "TOKEN", secret=True),
    Option("profile", ("PLUGIN_PROFILE",), parse_text, "AWS profile from ~/.aws/config and ~/.aws/credentials. Default: AWS_PROFILE, else 'default'.", "NAME"),
)
OPTION_NAMES = tuple(o.name for o in OPTIONS)


@dataclass(frozen=True)
class Settings:
    """Every setting, parsed and validated. Build it with `from_sources` or by keyword."""

    bucket: str = ""
    region: str = "us-east-1"
    source: str = "."
    allow_external_symlinks: bool = False
    exclude: Tuple[str, ...] = ()
    include: Tuple[str, ...] = ()
    target: str = ""
    delete: bool = False
    allow_empty_source: bool = False
    max_delete: Optional[DeleteLimit] = None  # None: no limit
    acl: Rules = ()
    content_type: Rules = ()
    content_encoding: Rules = ()
    compress: Rules = ()
    cache_control: Rules = ()
    content_disposition: Rules = ()
    content_language: Rules = ()
    expires: Rules = ()
    storage_class: Rules = ()
    encryption: Rules = ()
    kms_key_id: str = ""
    metadata: MetadataRules = ()
    redirects: Tuple[Tuple[str, str], ...] = ()
    cloudfront_distribution: Tuple[str, ...] = ()
    invalidation_paths: Tuple[str, ...] = ()  # (): the paths the run changed
    cloudfront_wait: bool = False
    cloudfront_wait_timeout: float = 900.0
    dry_run: bool = False
    endpoint: str = ""
    path_style: bool = False
    max_concurrency: int = 32
    read_timeout: float = 60.0
    max_attempts: int = 8
    progress_interval: float = 30.0  # seconds; 0: off
    quiet: bool = False
    report: str = ""  # a file for the JSON report; "": none
    json: bool = False  # the JSON report on stdout
    state: bool = True
    verify: bool = False
    multipart_threshold: int = MULTIPART_THRESHOLD
    part_size: int = PART_SIZE
    access_key: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)
    assume_role: str = ""
    assume_role_session_name: str = "drone-s3-sync"
    external_id: str = ""
    oidc_token_id: str = field(default="", repr=False)
    profile: str = ""
    base_dir: str = ""  # folder a relative source is resolved against; "" = cwd
    debug: bool = False
    # Where each given setting came from ("PLUGIN_SOURCE", "--source", ...), for messages.
    labels: Tuple[Tuple[str, str], ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def create(cls, **values: Any) -> "Settings":
        """The Python API: raw values (strings, maps, lists) in, validated Settings out."""
        return build_settings(values)

    def source_path(self) -> str:
        base = self.base_dir or os.getcwd()
        return os.path.normpath(os.path.join(base, os.path.expanduser(self.source)))

    def with_changes(self, **changes: Any) -> "Settings":
        return replace(self, **changes)

    def label(self, name: str) -> str:
        """How the user spelled a setting: its variable, flag or config-file key."""
        return dict(self.labels).get(name, name)


def build_settings(raw: Mapping[str, Any], *, base_dir: str = "", debug: bool = False,
                   origin: Optional[Mapping[str, str]] = None) -> Settings:
    """Validate raw values keyed by setting name. `origin` maps a name to where it came from."""
    origin = origin or {}
    by_name = {o.name: o for o in OPTIONS}
    values: Dict[str, Any] = {"base_dir": base_dir, "debug": debug,
                              "labels": tuple((name, origin[name]) for name in raw if name in origin)}
    region_from_bucket = None
    for name, raw_value in raw.items():
        if name not in by_name:
            raise ConfigError(name, unknown_setting_message(name))
        if raw_value is None:
            continue
        label = origin.get(name, name)
        if name == "bucket":
            values["bucket"], region_from_bucket = parse_bucket(label, raw_value)
            continue
        values[name] = by_name[name].parse(label, raw_value)
    if not values.get("bucket"):
        raise ConfigError(origin.get("bucket", "bucket"), "is required (PLUGIN_BUCKET, --bucket or 'bucket:' in the config file)")
    if "region" not in values or not values["region"]:
        values["region"] = region_from_bucket or "us-east-1"
    if not values.get("source"):
        values.pop("source", None)
    if bool(values.get("access_key")) != bool(values.get("secret_key")):
        # Half a key pair is ignored, as the original plugin did; the credential chain applies.
        values["access_key"] = values["secret_key"] = ""
    check_credentials(values, {o.name: origin.get(o.name, o.name) for o in OPTIONS})
    if values.get("kms_key_id") and not any(v in KMS_ENCRYPTIONS for _, v in values.get("encryption", ())):
        raise ConfigError(origin.get("kms_key_id", "kms_key_id"), "is used only for objects encrypted with aws:kms or "
                                                                  "aws:kms:dsse; set encryption to one of them too")
    if not values.get("assume_role_session_name"):
        values.pop("assume_role_session_name", None)
    return Settings(**values)


_VARIABLE_HINTS = {"PLUGIN_DEBUG": "set DEBUG=1 for detailed logs"}


def unknown_plugin_variables(environ: Mapping[str, str]) -> List[str]:
    """A warning for each PLUGIN_* variable that is no setting's (a typo in a
    step's `settings:` would otherwise be ignored without a word)."""
    known = {var: option for option in OPTIONS for var in option.env}
    candidates = {var[len("PLUGIN_"):].lower(): var for var in known if var.startswith("PLUGIN_")}
    warnings = []
    for var in sorted(environ):
        if not var.startswith("PLUGIN_") or var in known or var.replace("-", "_").replace(".", "_") in known:
            continue
        text = f"{var} is not a setting of drone-s3-sync"
        hint = _VARIABLE_HINTS.get(var)
        close = difflib.get_close_matches(var[len("PLUGIN_"):].lower(), candidates, n=1, cutoff=0.7)
        if hint:
            text += f"; {hint}"
        elif close:
            match = candidates[close[0]]
            text += f"; did you mean {known[match].name} ({match})?"
        warnings.append(text)
    return warnings


def setting_warnings(settings: Settings) -> List[str]:
    """Settings that are valid but do nothing in this combination."""
    warnings = []
    if not settings.delete:
        if settings.max_delete is not None:
            warnings.append(f"{settings.label('max_delete')} has no effect without delete (this run deletes nothing)")
        if settings.allow_empty_source:
            warnings.append(f"{settings.label('allow_empty_source')} has no effect without delete "
                            "(this run deletes nothing)")
    given = dict(settings.labels)
    if not settings.cloudfront_distribution:
        for name in ("invalidation_paths", "cloudfront_wait", "cloudfront_wait_timeout"):
            if name in given and getattr(settings, name):
                warnings.append(f"{settings.label(name)} has no effect without cloudfront_distribution "
                                "(this run invalidates nothing)")
    elif "cloudfront_wait_timeout" in given and not settings.cloudfront_wait:
        warnings.append(f"{settings.label('cloudfront_wait_timeout')} has no effect without cloudfront_wait")
    return warnings


def check_credentials(values: Mapping[str, Any], label: Mapping[str, str]) -> None:
    """Credential settings that cannot work together, refused before any request."""
    keys = bool(values.get("access_key"))
    role = bool(values.get("assume_role"))

    def refuse(name: str, message: str) -> None:
        raise ConfigError(label[name], message)

    if values.get("session_token") and not keys:
        refuse("session_token", "a session token belongs to a temporary key pair: set access_key and secret_key too")
    for name in ("oidc_token_id", "external_id", "assume_role_session_name"):
        if values.get(name) and not role:
            refuse(name, "is used only with assume_role (the ARN of the role to assume); set assume_role too")
    if values.get("oidc_token_id"):
        if values.get("external_id"):
            refuse("external_id", "cannot be used with oidc_token_id (AssumeRoleWithWebIdentity takes no external id)")
        if keys:
            refuse("oidc_token_id", "needs no access_key / secret_key (the token is the credential); remove the keys")
    if values.get("profile") and keys:
        refuse("profile", "and access_key / secret_key both name credentials; use one of them")


def unknown_setting_message(name: str) -> str:
    hint = difflib.get_close_matches(name.lower().replace("-", "_"), OPTION_NAMES, n=1, cutoff=0.6)
    return "unknown setting" + (f"; did you mean {hint[0]!r}?" if hint else "; drone-s3-sync --help lists them")


# ---------------------------------------------------------------- sources


def spelled_variables(environ: Mapping[str, str]) -> Dict[str, str]:
    """PLUGIN_* names as written, keyed by their canonical form.

    Drone only upper-cases a setting's name, so `cache-control:` arrives as
    PLUGIN_CACHE-CONTROL; Woodpecker also turns '-' and '.' into '_'. Both
    spellings name the same setting.
    """
    return {var.replace("-", "_").replace(".", "_"): var for var in environ
            if var.startswith("PLUGIN_") and ("-" in var or "." in var)}


def from_environment(environ: Mapping[str, str]) -> Tuple[Dict[str, str], Dict[str, str]]:
    """Values and their variable names; the first non-empty variable of an option wins."""
    values, origin = {}, {}
    spelled = spelled_variables(environ)
    for option in OPTIONS:
        for var in option.env:
            name = var if var in environ else spelled.get(var, var)
            value = environ.get(name)
            if value is not None and value.strip() != "":
                values[option.name] = value
                origin[option.name] = name
                break
    return values, origin


def load_config_file(path: str) -> Tuple[Dict[str, Any], str]:
    """The YAML file's settings and the folder relative paths are resolved against."""
    import yaml  # only needed for --config; keeps start-up lean otherwise

    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError("config", f"{path} is not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if isinstance(data, dict) and set(data) == {"settings"} and isinstance(data["settings"], dict):
        data = data["settings"]
    if not isinstance(data, dict):
        raise ConfigError("config", f"{path} must hold a map of settings")
    normalized = {}
    for key, value in data.items():
        name = str(key).strip().lower().replace("-", "_")
        if name not in OPTION_NAMES:
            raise ConfigError(f"config {path}: {key}", unknown_setting_message(name))
        normalized[name] = value
    folder = os.path.dirname(os.path.abspath(path))
    report = normalized.get("report")
    if isinstance(report, str) and report.strip() and not os.path.isabs(os.path.expanduser(report.strip())):
        # Like `source`: a path in the file is relative to the file's folder.
        normalized["report"] = os.path.join(folder, report.strip())
    return normalized, folder


def build_parser(prog: str = "drone-s3-sync") -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=prog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=HELP_DESCRIPTION,
        epilog=HELP_EPILOG,
    )
    for option in OPTIONS:
        flag = "--" + option.name.replace("_", "-")
        env = ", ".join(option.env)
        text = f"{option.help} [env: {env}]".replace("%", "%%")  # argparse %-formats help
        if option.flag:
            parser.add_argument(flag, dest=option.name, action="store_const", const="true", default=None, help=text)
            parser.add_argument("--no-" + option.name.replace("_", "-"), dest=option.name, action="store_const",
                                const="false", help=argparse.SUPPRESS)
        else:
            parser.add_argument(flag, dest=option.name, metavar=option.metavar, default=None, help=text)
    parser.add_argument("--config", metavar="FILE", help="YAML file with the same keys as the Drone 'settings:' block.")
    parser.add_argument("--version", action=_VersionAction, version=__version__)
    return parser


def version_text(version: str) -> str:
    import boto3
    import s3transfer

    return f"drone-s3-sync {version} (boto3 {boto3.__version__}, s3transfer {s3transfer.__version__})"


class _VersionAction(argparse.Action):
    """--version: boto3's and s3transfer's versions are looked up only when it
    is given, so that building the parser (every run, --help) does not import them."""

    def __init__(self, option_strings, version: str, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show program's version number and exit"):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)
        self.version = version

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text(self.version), flush=True)
        parser.exit()


def from_sources(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """Flags over environment over config file over defaults."""
    parser = build_parser()
    args = parser.parse_args(list(argv))
    raw: Dict[str, Any] = {}
    origin: Dict[str, str] = {}
    base_dir = ""
    if args.config:
        file_values, base_dir = load_config_file(args.config)
        raw.update(file_values)
        origin.update({k: f"{k} (in {args.config})" for k in file_values})
    env_values, env_origin = from_environment(environ)
    token_given = (args.session_token is not None or "session_token" in raw
                   or env_origin.get("session_token") == "PLUGIN_SESSION_TOKEN")
    if (env_origin.get("access_key") == "AWS_ACCESS_KEY_ID" and env_origin.get("secret_key") == "AWS_SECRET_ACCESS_KEY"
            and not token_given):
        # A key pair only in AWS_* variables is left to boto3's credential chain,
        # which reads these same variables and AWS_SESSION_TOKEN with them; it comes
        # after an explicit profile there, as with the AWS CLI. With a session_token
        # setting the pair is used as static keys, so that token goes with them.
        # The values are still checked: a line break in a key would otherwise fail
        # inside the HTTP client.
        by_name = {o.name: o for o in OPTIONS}
        for name in ("access_key", "secret_key", "session_token"):
            if env_origin.get(name, "").startswith("AWS_"):
                by_name[name].parse(env_origin.pop(name), env_values.pop(name))
    raw.update(env_values)
    origin.update(env_origin)
    for option in OPTIONS:
        value = getattr(args, option.name)
        if value is not None:
            raw[option.name] = value
            origin[option.name] = "--" + option.name.replace("_", "-")
    if origin.get("session_token") == "AWS_SESSION_TOKEN":
        # AWS_SESSION_TOKEN is the token of AWS_ACCESS_KEY_ID: it goes with static
        # keys only when no other access key is in that variable, and without a
        # key pair it is not a setting (boto3 ignores it too).
        key = str(raw.get("access_key") or "").strip()
        env_key = environ.get("AWS_ACCESS_KEY_ID", "").strip()
        if not key or not str(raw.get("secret_key") or "").strip() or env_key not in ("", key):
            raw.pop("session_token")
            origin.pop("session_token")
    if "source" in env_values or args.source is not None:
        base_dir = ""  # a source given on the command line or by Drone is relative to the cwd
    return build_settings(raw, base_dir=base_dir, debug=debug_of(environ), origin=origin)


def debug_of(environ: Mapping[str, str]) -> bool:
    """DEBUG=1 (any value but empty, 0, false, no) turns on detailed logs."""
    return environ.get("DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def secrets_of(settings: Optional[Settings], environ: Mapping[str, str]) -> List[str]:
    """Every secret value this run could print by accident; output and logs mask them.
    Without settings (they could not be read): the secrets in the environment."""
    values = [environ.get("AWS_SECURITY_TOKEN", "")]
    for option in OPTIONS:
        if option.secret:
            if settings is not None:
                values.append(getattr(settings, option.name))
            values.extend(environ.get(var, "") for var in option.env)
    # A password someone put into the endpoint URL (http://user:password@host).
    endpoints = [settings.endpoint] if settings is not None else []
    endpoints += [environ.get(var, "") for option in OPTIONS if option.name == "endpoint" for var in option.env]
    values.extend(_url_password(url) for url in endpoints)
    return [v.strip() for v in values if v and len(v.strip()) >= 4]


def _url_password(url: str) -> str:
    if "@" not in url:
        return ""
    try:
        return urlparse(url.strip()).password or ""
    except ValueError:
        return ""


HELP_DESCRIPTION = """\
Publish a folder to an S3 bucket: upload what changed, fix headers that drifted,
write website redirects, optionally delete what is gone, and invalidate exactly
the CloudFront paths that changed.

Settings come from (highest priority first) these flags, PLUGIN_* environment
variables (how Drone and Woodpecker pass a step's `settings:`), a YAML file given
with --config, and the defaults. Maps are JSON in flags and variables, YAML maps
in the file. In a rule map, a key like ".svg" or "" matches by extension (""
means no extension); any other key is a glob on the path relative to the source,
where * also matches '/'. The first matching rule, in the order written, wins.
include and exclude take the same patterns, tried on the relative path and on
each of its folders: files they leave out are neither uploaded nor deleted.
"""

HELP_EPILOG = """\
examples:
  drone-s3-sync --bucket my-site --source public --delete \\
      --cache-control '{".html": "max-age=60", "assets/*": "max-age=31536000"}'
  PLUGIN_BUCKET=my-site PLUGIN_SOURCE=public drone-s3-sync
  drone-s3-sync --config deploy.yml --dry-run

exit status: 0 success, 1 some operation failed, 2 invalid settings,
  3 refused by a safety guard (allow_empty_source, max_delete): nothing written,
  130 / 143 interrupted by SIGINT / SIGTERM: nothing deleted.
Set DEBUG=1 for detailed logs (secrets are never printed).
"""
