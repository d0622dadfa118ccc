"""Parsers of single setting values. Each takes the label the value came
with (a flag, a variable, a config-file key: errors name it) and the raw value,
and returns the value or raises ConfigError saying what to write instead."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Optional, Tuple
from urllib.parse import urlparse

from .errors import ConfigError



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


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw]?)$", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION_FORMS = "use a duration such as 7d, 12h, 30m or 90s (or a number of seconds; 0 for none)"


def parse_duration(name: str, raw: Any) -> float:
    """Seconds from `7d`, `12h`, `30m`, `90s`, `2w` or a plain number; 0 allowed, at most a year."""
    if isinstance(raw, bool):
        raise ConfigError(name, f"expected a duration; {DURATION_FORMS}")
    match = _DURATION.match(str(raw).strip()) if isinstance(raw, (str, int, float)) else None
    if match is None:
        raise ConfigError(name, f"{raw!r} is not a duration; {DURATION_FORMS}")
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
    if seconds > 366 * 86400:
        raise ConfigError(name, f"{raw!r} is more than a year; {DURATION_FORMS}")
    return seconds


def parse_seconds(name: str, raw: Any, *, maximum: float = 3600.0, zero_off: bool = False) -> float:
    """A number of seconds, decimals allowed ("0.5"): more than 0, or with
    `zero_off` 0 too, meaning off."""
    forms = f"use 0 to {maximum:g} (0 turns it off)" if zero_off else ""
    if isinstance(raw, bool):
        raise ConfigError(name, "expected a number of seconds" + (f"; {forms}" if forms else ""))
    try:
        value = float(raw) if isinstance(raw, (int, float)) else float(_text(name, raw))
    except ValueError:
        raise ConfigError(name, f"{raw!r} is not a number of seconds" + (f"; {forms}" if forms else "")) from None
    if zero_off and not 0 <= value <= maximum:  # also rejects nan
        raise ConfigError(name, f"{raw!r} is out of range; use 0 to {maximum:g} seconds (0 turns it off)")
    if not zero_off and not 0 < value <= maximum:
        raise ConfigError(name, f"{raw!r} is out of range; use more than 0 and at most {maximum:g} seconds")
    return value


def parse_interval(name: str, raw: Any, *, maximum: float = 3600.0) -> float:
    """Seconds between two progress lines; 0 turns them off."""
    return parse_seconds(name, raw, maximum=maximum, zero_off=True)


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


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Website and virtual-host names that the plugin's own docs put in `bucket:`.
_BUCKET_HOST = re.compile(
    r"^(?P<bucket>.+?)\.s3(?:-website)?(?:[.-](?P<region>[a-z]{2}(?:-[a-z]+)+-\d))?\.amazonaws\.com$"
)
BUCKET_FORMS = ("use the bucket's name (3 to 63 lowercase letters, digits, '.' and '-', starting and ending with a "
                "letter or digit), s3://name, or a host name like my-bucket.s3-website-us-east-1.amazonaws.com")


def _flag_or_key(label: str, name: str) -> str:
    """How to write setting `name` where `label` (a flag, a variable, a file key) was written."""
    if label.startswith("--"):
        return "--" + name.replace("_", "-")
    return f"PLUGIN_{name.upper()}" if label.startswith("PLUGIN_") else f"{name}:"


def parse_bucket(name: str, raw: Any) -> Tuple[str, Optional[str]]:
    """Returns (bucket, region found in a host name or None). A name S3 would
    refuse is refused here, before any request: S3 would only answer that no
    such bucket exists."""
    text = _text(name, raw)
    if text.lower().startswith("s3://"):
        bucket, _, prefix = text[5:].partition("/")
        if prefix.strip("/"):
            raise ConfigError(name, f"{text!r} names a bucket and a folder in it; give them apart: "
                                    f"{_flag_or_key(name, 'bucket')} {bucket} {_flag_or_key(name, 'target')} "
                                    f"{prefix.strip('/')}")
        text = bucket
    match = _BUCKET_HOST.match(text)
    region = None
    if match:
        text, region = match.group("bucket"), match.group("region")
    if not text:
        raise ConfigError(name, f"is empty; {BUCKET_FORMS}")
    if not _BUCKET.match(text) or ".." in text or re.match(r"^\d+\.\d+\.\d+\.\d+$", text):
        problem = "is not a valid bucket name"
        if re.search(r"[A-Z_]", text) and _BUCKET.match(text.lower().replace("_", "-")):
            problem += f" (bucket names have no capitals or '_'; did you mean {text.lower().replace('_', '-')!r}?)"
        elif "/" in text:
            problem += " (a bucket name has no '/'; put the folder in target)"
        raise ConfigError(name, f"{str(raw).strip()!r} {problem}; {BUCKET_FORMS}")
    return text, region


def parse_region(name: str, raw: Any) -> str:
    text = _text(name, raw)
    if not re.match(r"^[a-z0-9-]+$", text):
        raise ConfigError(name, f"{raw!r} is not a region name like us-east-1")
    return text


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
