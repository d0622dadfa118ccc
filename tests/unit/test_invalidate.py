from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drone_s3_sync.invalidate import (
    create_invalidation,
    invalidation_paths,
    new_caller_reference,
)

_UNSAFE = ' "#%<>{}|\\^~[]`?'  # RFC 1738 unsafe characters, plus '?' (it would start a query string)
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in _UNSAFE)


def oracle_escape(text: str) -> str:
    # An independent implementation of the CloudFront rule for checking;
    # quote() never encodes "~", which CloudFront wants encoded.
    return quote(text, safe=_SAFE).replace("~", "%7E")


def expected_exact_paths(keys: list[str]) -> set[str]:
    paths = set()
    for key in keys:
        paths.add("/" + oracle_escape(key))
        head, _, last = key.rpartition("/")
        if last == "index.html":
            paths.add("/" + oracle_escape(head + "/" if head else ""))
    return paths


def wildcards(paths: list[str]) -> list[str]:
    return [path for path in paths if path.endswith("*")]


def is_covered(path: str, output: list[str]) -> bool:
    return path in output or any(path.startswith(w[:-1]) for w in wildcards(output))


def assert_covers(keys: list[str], output: list[str]) -> None:
    missing = [path for path in expected_exact_paths(keys) if not is_covered(path, output)]
    assert not missing, f"not invalidated: {missing[:10]}"


# --- mapping and escaping -------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "root", "expected"),
    [
        (["index.html"], "", ["/", "/index.html"]),
        (["site/index.html"], "site/", ["/site/", "/site/index.html"]),
        (["site/docs/index.html"], "site/", ["/site/docs/", "/site/docs/index.html"]),
        (["docs/index.html", "docs/a.css"], "", ["/docs/", "/docs/a.css", "/docs/index.html"]),
        (["docs/notindex.html"], "", ["/docs/notindex.html"]),
        (["docs/index.html.bak"], "", ["/docs/index.html.bak"]),
        (["docs/Index.html"], "", ["/docs/Index.html"]),
        (["a/b/c.txt"], "", ["/a/b/c.txt"]),
    ],
)
def test_key_to_path_mapping(keys: list[str], root: str, expected: list[str]) -> None:
    assert invalidation_paths(keys, root=root) == expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("my file.txt", "/my%20file.txt"),
        ("~user/a.txt", "/%7Euser/a.txt"),
        ("a#b.html", "/a%23b.html"),
        ("100%.html", "/100%25.html"),
        ("café.html", "/caf%C3%A9.html"),
        ("日本/東京.html", "/%E6%97%A5%E6%9C%AC/%E6%9D%B1%E4%BA%AC.html"),
        ("emoji-😀.png", "/emoji-%F0%9F%98%80.png"),
        ('q"<>.txt', "/q%22%3C%3E.txt"),
        ("b{}|\\^[]`.txt", "/b%7B%7D%7C%5C%5E%5B%5D%60.txt"),
        ("ctl\x01\x1f\x7f.txt", "/ctl%01%1F%7F.txt"),
        ("tab\there.txt", "/tab%09here.txt"),
        ("a+b&c=d(e)'f!$,;:@.txt", "/a+b&c=d(e)'f!$,;:@.txt"),
        ("plus+sign.html", "/plus+sign.html"),
        ("a&b.html", "/a&b.html"),
        ("k=v.html", "/k=v.html"),
        ("(1).html", "/(1).html"),
        ("it's.html", "/it's.html"),
    ],
)
def test_escaping(key: str, expected: str) -> None:
    assert invalidation_paths([key]) == [expected]


def test_escaping_of_directory_path_for_index() -> None:
    assert invalidation_paths(["my docs/index.html"]) == ["/my%20docs/", "/my%20docs/index.html"]


def test_output_is_sorted_and_deduplicated() -> None:
    keys = ["b.txt", "a.txt", "b.txt", "c/index.html", "c/index.html", "a.txt"]
    assert invalidation_paths(keys) == ["/a.txt", "/b.txt", "/c/", "/c/index.html"]


def test_generator_input_is_accepted() -> None:
    assert invalidation_paths(key for key in ["x", "y"]) == ["/x", "/y"]


def test_empty_input() -> None:
    assert invalidation_paths([]) == []
    assert invalidation_paths([], root="site/") == []


def test_key_outside_root_is_rejected() -> None:
    with pytest.raises(ValueError):
        invalidation_paths(["other/a.txt"], root="site/")


def test_empty_key_is_rejected() -> None:
    with pytest.raises(ValueError):
        invalidation_paths([""])


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        invalidation_paths(["a"], max_paths=0)
    with pytest.raises(ValueError):
        invalidation_paths(["a"], max_wildcards=0)


# --- limits and folding ---------------------------------------------------


def test_at_the_limit_no_wildcard() -> None:
    keys = [f"a/b/f{i:02d}.txt" for i in range(50)]
    result = invalidation_paths(keys)
    assert len(result) == 50
    assert not wildcards(result)
    assert result == sorted("/" + key for key in keys)


def test_index_directory_paths_count_towards_the_limit() -> None:
    keys = [f"d{i:02d}/index.html" for i in range(25)]
    assert len(invalidation_paths(keys)) == 50
    keys.append("d99/index.html")
    assert len(invalidation_paths(keys)) == 1


def test_fold_deepest_level_only() -> None:
    keys = [f"a/b/c/f{i}.txt" for i in range(60)] + ["index.html", "a/x.css"]
    result = invalidation_paths(keys)
    assert result == ["/", "/a/b/c/*", "/a/x.css", "/index.html"]
    assert_covers(keys, result)


def test_fold_goes_up_level_by_level() -> None:
    keys = [f"a/b{j}/c{k}/f.txt" for j in range(6) for k in range(10)]
    # Level 3 leaves 60 wildcards ("a/bj/ck/"), level 2 leaves 6 ("a/bj/").
    result = invalidation_paths(keys)
    assert result == [f"/a/b{j}/*" for j in range(6)]
    assert_covers(keys, result)


def test_fold_stops_as_soon_as_within_max_wildcards() -> None:
    keys = [f"site/a/b/f{i}.html" for i in range(60)] + [
        "site/c/1.html",
        "site/c/2.html",
        "site/c/3.html",
        "site/top.html",
    ]
    result = invalidation_paths(keys, root="site/")
    assert result == [
        "/site/a/b/*",
        "/site/c/1.html",
        "/site/c/2.html",
        "/site/c/3.html",
        "/site/top.html",
    ]


def test_wildcard_of_escaped_directory() -> None:
    keys = [f"my dir/sub/f{i}.txt" for i in range(60)]
    assert invalidation_paths(keys) == ["/my%20dir/sub/*"]


def test_over_limit_stays_within_max_wildcards_and_covers() -> None:
    keys = [f"assets/{kind}/{i}.bin" for kind in ("img", "css", "js", "font") for i in range(30)]
    keys += [f"docs/p{i}/index.html" for i in range(20)] + ["index.html"]
    result = invalidation_paths(keys, max_paths=50, max_wildcards=8)
    assert len(result) <= 8
    assert_covers(keys, result)
    assert "/*" not in result


def test_root_sync_falls_back_to_everything() -> None:
    keys = [f"f{i}.txt" for i in range(51)]
    assert invalidation_paths(keys) == ["/*"]


def test_prefix_sync_never_invalidates_whole_distribution() -> None:
    flat = [f"site/f{i}.txt" for i in range(51)]
    assert invalidation_paths(flat, root="site/") == ["/site/*"]
    many_dirs = [f"site/d{i}/x.html" for i in range(60)]
    assert invalidation_paths(many_dirs, root="site/") == ["/site/*"]
    nested_root = [f"site/v1/d{i}/x.html" for i in range(60)]
    assert invalidation_paths(nested_root, root="site/v1/") == ["/site/v1/*"]


def test_no_wildcard_above_root_even_when_it_would_fit() -> None:
    # Folding "site/v1/" would fit in one entry, but it is the root: the
    # result must be the fallback for that root, not "/site/*" or "/*".
    keys = [f"site/v1/f{i}.txt" for i in range(60)]
    assert invalidation_paths(keys, root="site/v1/") == ["/site/v1/*"]


def test_fallback_escapes_root() -> None:
    keys = [f"my site/f{i}.txt" for i in range(60)]
    assert invalidation_paths(keys, root="my site/") == ["/my%20site/*"]


def test_custom_limits() -> None:
    keys = ["a/1", "a/2", "b/1", "b/2"]
    assert invalidation_paths(keys, max_paths=4) == ["/a/1", "/a/2", "/b/1", "/b/2"]
    assert invalidation_paths(keys, max_paths=3, max_wildcards=2) == ["/a/*", "/b/*"]
    assert invalidation_paths(keys, max_paths=3, max_wildcards=1) == ["/*"]


# --- property test --------------------------------------------------------

_SEGMENTS = st.sampled_from(
    ["a", "b", "c", "d e", "~x", "café", "100%", "x+y", "index.html", "f.txt", "g.css"]
)
_FREE_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="*/"),
    min_size=1,
    max_size=6,
)


@st.composite
def key_sets(draw: st.DrawFn) -> tuple[str, list[str]]:
    root = draw(st.sampled_from(["", "site/", "site/v1/", "my dir/"]))
    segment = st.one_of(_SEGMENTS, _FREE_TEXT)
    relative = st.lists(segment, min_size=1, max_size=5).map("/".join)
    keys = draw(st.lists(relative, min_size=0, max_size=150))
    return root, [root + key for key in keys]


@settings(max_examples=300, deadline=None)
@given(
    data=key_sets(),
    max_paths=st.integers(min_value=1, max_value=60),
    max_wildcards=st.integers(min_value=1, max_value=15),
)
def test_property_bounded_and_covering(
    data: tuple[str, list[str]], max_paths: int, max_wildcards: int
) -> None:
    root, keys = data
    result = invalidation_paths(keys, max_paths=max_paths, max_wildcards=max_wildcards, root=root)
    exact = expected_exact_paths(keys)
    escaped_root = "/" + oracle_escape(root)

    assert result == sorted(set(result))
    assert_covers(keys, result)

    if len(exact) <= max(max_paths, max_wildcards):
        # Under the exact-path limit nothing is folded; over it, folding
        # only starts once the count exceeds max_wildcards.
        assert result == sorted(exact)
    else:
        assert len(result) <= max_wildcards
        assert wildcards(result)
    assert len(result) <= max(max_paths, max_wildcards)

    for wildcard in wildcards(result):
        # Nothing above the sync root, and the root itself only as the
        # sole fallback entry.
        assert wildcard.startswith(escaped_root)
        if wildcard == escaped_root + "*":
            assert result == [wildcard]
    if root:
        assert "/*" not in result

    # No entry is redundant with a wildcard that covers it.
    for wildcard in wildcards(result):
        others = [path for path in result if path != wildcard]
        assert not any(path.startswith(wildcard[:-1]) for path in others)


# --- API call ---------------------------------------------------------------


def test_create_invalidation_sends_batch_and_returns_id(cloudfront, distribution, s3_server) -> None:
    # Against the local CloudFront server, not a stub: the request must be valid.
    paths = ["/index.html", "/"]
    invalidation_id = create_invalidation(cloudfront, distribution, paths, caller_reference="ref-1")
    with s3_server.paused():
        got = cloudfront.get_invalidation(DistributionId=distribution, Id=invalidation_id)["Invalidation"]
    assert sorted(got["InvalidationBatch"]["Paths"]["Items"]) == sorted(paths)
    assert got["InvalidationBatch"]["CallerReference"] == "ref-1"


class _RecordingClient:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def create_invalidation(self, **kwargs: object) -> dict:
        self.calls.append(kwargs)
        return {"Invalidation": {"Id": "IABC"}}


def test_create_invalidation_with_plain_fake() -> None:
    client = _RecordingClient()
    assert create_invalidation(client, "EDIST", ["/a"], caller_reference="r") == "IABC"
    assert client.calls == [
        {
            "DistributionId": "EDIST",
            "InvalidationBatch": {
                "Paths": {"Quantity": 1, "Items": ["/a"]},
                "CallerReference": "r",
            },
        }
    ]


def test_create_invalidation_rejects_empty_paths() -> None:
    client = _RecordingClient()
    with pytest.raises(ValueError):
        create_invalidation(client, "EDIST", [], caller_reference="r")
    assert client.calls == []


def test_new_caller_reference_is_unique() -> None:
    refs = {new_caller_reference() for _ in range(1000)}
    assert len(refs) == 1000
    assert all(isinstance(ref, str) and ref for ref in refs)
