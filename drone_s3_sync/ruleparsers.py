"""Parsers of the settings that are lists or maps of patterns (header rules,
metadata, redirects, include/exclude, compression, CloudFront paths), with
the same contract as parsers.py."""

from __future__ import annotations

import difflib
import email.utils
import json
import re
import unicodedata
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .errors import ConfigError
from .parsers import MetadataRules, Rules, _text, check_relative
from .keys import STATE_NAME
from .s3vocab import KEPT_FIELDS, CANNED_ACLS, ENCRYPTIONS, STORAGE_CLASSES



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


def parse_ignore_unsupported(name: str, raw: Any) -> Tuple[str, ...]:
    """What a server may drop without failing the run: names from KEPT_FIELDS."""
    forms = f"use one or more of {', '.join(KEPT_FIELDS)}, separated by commas (or a JSON or YAML list)"
    names = []
    for item in _text_items(name, raw, forms, many="names", one="a name"):
        item = item.strip().lower()
        if item not in KEPT_FIELDS:
            raise ConfigError(name, f"{item!r} is not something a server can leave out; {forms}")
        if item not in names:
            names.append(item)
    return tuple(names)


def parse_order(name: str, raw: Any) -> Tuple[str, ...]:
    """`none`, or the patterns of the upload waves (the forms of parse_globs)."""
    if isinstance(raw, str) and raw.strip().lower() == "none":
        return ("none",)
    return parse_globs(name, raw)


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
    return _one_of(name, CANNED_ACLS, "a canned ACL", lambda value: value)


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


DISTRIBUTIONS_FORMS = "use ids like E2QWRUHAPOMQZL, several separated by commas (or a JSON or YAML list)"


def parse_distributions(name: str, raw: Any) -> Tuple[str, ...]:
    ids = tuple(_text_items(name, raw, DISTRIBUTIONS_FORMS, many="distribution ids", one="a distribution id"))
    for dist in ids:
        if not re.match(r"^[A-Za-z0-9]+$", dist):
            raise ConfigError(name, f"{dist!r} is not a distribution id; {DISTRIBUTIONS_FORMS}")
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
