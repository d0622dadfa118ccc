"""The write waves (order.py): a pure function of the plan's actions."""

from __future__ import annotations

from drone_s3_sync.model import Action, Kind, LocalFile, ObjectHeaders, Reason
from drone_s3_sync.order import NO_ORDER, is_page, waves

HTML, CSS = ObjectHeaders("text/html; charset=utf-8"), ObjectHeaders("text/css")


def upload(rel: str, headers: ObjectHeaders = CSS, target: str = "") -> Action:
    local = LocalFile(rel=rel, key=target + rel, path="/x/" + rel, size=1, mtime_ns=0)
    return Action(Kind.UPLOAD, target + rel, Reason.NEW, local, headers, 1)


ACTIONS = [
    upload("index.html", HTML), upload("app.js"), upload("docs/page.htm", HTML), upload("site.css"),
    upload("feed", HTML),  # no extension, served as a page
    Action(Kind.UPDATE, "img/logo.png", Reason.HEADERS, upload("img/logo.png").local, CSS, 1),
    Action(Kind.REDIRECT, "old.html", Reason.NEW, headers=ObjectHeaders("text/html", redirect="/")),
    Action(Kind.DELETE, "gone.js", Reason.ORPHAN), Action(Kind.SKIP, "same.css", Reason.UNCHANGED),
]


def keys(result):
    return [(w.name, [a.key for a in w.actions]) for w in result]


def test_by_default_files_then_pages_then_redirects_and_no_deletes():
    assert keys(waves(ACTIONS, (), "")) == [
        ("files", ["app.js", "site.css", "img/logo.png"]),
        ("pages", ["index.html", "docs/page.htm", "feed"]),
        ("redirects", ["old.html"]),
    ]


def test_patterns_come_first_in_their_order_then_the_rest_then_pages():
    result = waves(ACTIONS, (".css", "img/*", "docs/*"), "")
    assert keys(result) == [
        (".css", ["site.css"]), ("img/*", ["img/logo.png"]), ("docs/*", ["docs/page.htm"]),
        ("files", ["app.js"]), ("pages", ["index.html", "feed"]), ("redirects", ["old.html"]),
    ]


def test_patterns_match_keys_relative_to_the_target():
    result = waves([upload("a.css", target="site/"), upload("index.html", HTML, target="site/")], ("*.css",), "site/")
    assert keys(result) == [("*.css", ["site/a.css"]), ("pages", ["site/index.html"])]


def test_none_is_one_wave_and_nothing_to_write_is_no_wave():
    assert keys(waves(ACTIONS, NO_ORDER, "")) == [
        ("all", ["index.html", "app.js", "docs/page.htm", "site.css", "feed", "img/logo.png", "old.html"])]
    assert waves(ACTIONS[-2:], (), "") == [] and waves(ACTIONS[-2:], NO_ORDER, "") == []


def test_a_page_is_known_by_its_extension_or_its_content_type():
    assert is_page(upload("x.HTML", CSS)) and is_page(upload("x", HTML)) and not is_page(upload("x.css"))
