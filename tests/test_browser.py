"""The web app in a real headless Chromium against a real `zsindex serve` on a loopback port.

Debian's /usr/bin/chromium and /usr/bin/chromedriver, driven by selenium, which is pointed
at that driver so it never downloads one (tests/browser_kit.py). The index is made with the
shipped demo model over drawn shapes. Screenshots go to test-artifacts/browser/ (git-ignored)
for a person to look at. Skipped where the browser, its driver or selenium is missing.
"""

from __future__ import annotations

import json
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from .browser_kit import (  # skips this module where Chromium, chromedriver or selenium is missing
    CAMERA,
    CAMERA_FILE,
    ODD_NAME,
    TOKEN,
    By,
    Keys,
    Select,
    api,
    browser_session,
    call,
    console_errors,
    loaded_thumbnails,
    log_in_by_cookie,
    make_library,
    no_horizontal_overflow,
    search_for,
    serve,
    shot,
    tag_colours,
    tiles,
    visit,
    wait,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def library(tmp_path_factory, demo_embedder) -> dict[str, Path]:
    return make_library(tmp_path_factory.mktemp("browser"), demo_embedder)


@pytest.fixture(scope="module")
def server(library) -> Iterator[str]:
    """One server with a token for every test; the page fixture logs in by cookie,
    test_token_login through the login page."""
    with serve(library["index"], library["photos"], library["root"] / "serve.log", "--token", TOKEN) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with browser_session() as driver:
        yield driver


@pytest.fixture
def page(browser, server, request) -> Iterator[Any]:
    """The browser at laptop size, logged in; fails the test on any script or CSP error, and
    keeps a screenshot of the page where a test failed."""
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    log_in_by_cookie(browser, server)
    console_errors(browser)  # drop what earlier tests left
    failed_before = request.session.testsfailed
    yield browser
    if request.session.testsfailed > failed_before:
        shot(browser, f"failed-{request.node.name}")
    errors = console_errors(browser)
    assert not errors, errors


@pytest.fixture
def colours_tagged(server) -> dict[str, int]:
    return tag_colours(server)


# -- the tests -------------------------------------------------------------------------------------
def test_text_search_shows_red_circles_first_and_the_url_replays_it(server, page, library):
    red_circles = len(list(library["photos"].rglob("*-red-circle.png")))
    assert red_circles >= 2
    visit(page, server + "/")
    wait(page, lambda d: d.find_element(By.ID, "empty-state").is_displayed())
    hits = search_for(page, "a red circle")
    names = [Path(t["path"]).name for t in hits]
    assert all("-red-circle" in n for n in names[:red_circles]), names[:5]
    scores = [float(t["score"]) for t in hits]
    assert scores == sorted(scores, reverse=True)
    expected = api(server, "/api/search?q=a+red+circle&k=24")["results"]
    assert [int(t["id"]) for t in hits] == [r["id"] for r in expected]
    wait(page, lambda d: loaded_thumbnails(d, "results") >= 10)
    assert "a red circle" in page.find_element(By.ID, "results-head").text
    shot(page, "search")

    bookmarked = page.current_url
    page.back()
    wait(page, lambda d: urlparse(d.current_url).query == "" and not tiles(d))
    assert page.find_element(By.ID, "q").get_attribute("value") == ""
    page.forward()
    wait(page, lambda d: [t["id"] for t in tiles(d)] == [t["id"] for t in hits])
    assert page.find_element(By.ID, "q").get_attribute("value") == "a red circle"
    visit(page, bookmarked)  # a shared link: a fresh page load gives the same results
    wait(page, lambda d: [t["id"] for t in tiles(d)] == [t["id"] for t in hits])


def test_filters_and_paging_live_in_the_url(server, page):
    visit(page, server + "/?q=a+square&k=6")
    wait(page, lambda d: len(tiles(d)) == 6)
    first_page = [t["id"] for t in tiles(page)]
    page.find_element(By.CSS_SELECTOR, "#pager a[rel=next]").click()
    wait(page, lambda d: parse_qs(urlparse(d.current_url).query).get("offset") == ["6"])
    wait(page, lambda d: tiles(d) and [t["id"] for t in tiles(d)] != first_page)
    second = [int(t["id"]) for t in tiles(page)]
    assert second == [r["id"] for r in api(server, "/api/search?q=a+square&k=6&offset=6")["results"]]
    assert not set(second) & {int(i) for i in first_page}
    page.back()
    wait(page, lambda d: [t["id"] for t in tiles(d)] == first_page)
    wait(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#format option")) > 1)
    Select(page.find_element(By.ID, "format")).select_by_value("PNG")
    wait(page, lambda d: parse_qs(urlparse(d.current_url).query).get("format") == ["PNG"])
    wait(page, lambda d: len(tiles(d)) == 6)
    assert page.find_element(By.ID, "filter-count").text == "1"
    # Camera and dates, from the one JPEG with EXIF.
    visit(page, server + "/?q=a+green+square")
    wait(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#camera option")) > 1 and tiles(d))
    Select(page.find_element(By.ID, "camera")).select_by_value(CAMERA)
    wait(page, lambda d: parse_qs(urlparse(d.current_url).query).get("camera") == [CAMERA])
    wait(page, lambda d: [Path(t["path"]).name for t in tiles(d)] == [CAMERA_FILE])
    page.execute_script("const f = document.getElementById('before'); f.value = '2019-01-01';"
                        " f.dispatchEvent(new Event('change'))")
    wait(page, lambda d: parse_qs(urlparse(d.current_url).query).get("before") == ["2019-01-01"])
    wait(page, lambda d: "No images match" in d.find_element(By.ID, "empty-state").text)
    visit(page, server + f"/?q=a+green+square&after=2019-05-01&before=2019-05-31&camera={CAMERA}")
    wait(page, lambda d: [Path(t["path"]).name for t in tiles(d)] == [CAMERA_FILE])
    assert page.find_element(By.ID, "after").get_attribute("value") == "2019-05-01"
    assert page.find_element(By.ID, "filter-count").text == "3"
    # A page that ends exactly at the last result offers no next page (it would be empty).
    visit(page, server + f"/?q=a+green+square&camera={CAMERA}&k=1")
    wait(page, lambda d: [Path(t["path"]).name for t in tiles(d)] == [CAMERA_FILE])
    assert not page.find_element(By.ID, "pager").is_displayed()
    visit(page, server + f"/?q=a+green+square&camera={CAMERA}&k=1&offset=1")  # past it: only "Previous"
    wait(page, lambda d: "No images match" in d.find_element(By.ID, "empty-state").text)
    links = {a.get_attribute("rel"): a.get_attribute("aria-disabled")
             for a in page.find_elements(By.CSS_SELECTOR, "#pager a")}
    assert links == {"prev": "false", "next": "true"}, links
    visit(page, server + "/?format=PNG")  # a filter but no query: the page says what is missing
    wait(page, lambda d: "type what you are looking for" in d.find_element(By.ID, "empty-state").text)
    assert not tiles(page)


def test_image_page_shows_the_image_its_details_and_more_like_this(server, page):
    visit(page, server + "/?q=a+red+circle")
    wait(page, lambda d: tiles(d))
    first = tiles(page)[0]
    page.find_element(By.CSS_SELECTOR, "#results .tile-link").click()
    wait(page, lambda d: urlparse(d.current_url).path == f"/image/{first['id']}")
    wait(page, lambda d: d.execute_script("const i = document.getElementById('image-large');"
                                          " return i.complete && i.naturalWidth > 0"))
    assert page.find_element(By.ID, "image-title").text == Path(first["path"]).name
    meta = page.find_element(By.ID, "image-meta").text
    assert "192 × 192 px" in meta and "PNG" in meta
    wait(page, lambda d: tiles(d, "more-results"))
    more = tiles(page, "more-results")
    assert first["id"] not in [t["id"] for t in more]
    similar = [r["id"] for r in api(server, f"/api/search?like={first['id']}&k=13")["results"]
               if str(r["id"]) != first["id"]]
    assert [int(t["id"]) for t in more] == similar[:12]
    wait(page, lambda d: loaded_thumbnails(d, "more-results") == len(more))
    shot(page, "image")
    back = page.find_element(By.ID, "back-link")
    assert parse_qs(urlparse(back.get_attribute("href")).query)["q"] == ["a red circle"]
    page.find_element(By.ID, "more-all").click()
    wait(page, lambda d: parse_qs(urlparse(d.current_url).query).get("like") == [first["id"]] and tiles(d))
    assert "Similar to" in page.find_element(By.ID, "query-chips").text


def test_search_by_a_picked_or_dropped_image(server, page, library):
    visit(page, server + "/")
    picture = next(library["photos"].glob("*-red-circle.png"))
    page.find_element(By.ID, "image-file").send_keys(str(picture))
    wait(page, lambda d: tiles(d) and picture.name in d.find_element(By.ID, "query-chips").text)
    assert Path(tiles(page)[0]["path"]).name == picture.name  # the picked image is in the index: itself first
    assert "red-" in tiles(page)[1]["path"]
    # Drop a file on the page: a yellow star, drawn in the browser's memory from its thumbnail.
    star = next(r for r in api(server, "/api/search?q=a+yellow+star&k=5")["results"] if "yellow-star" in r["path"])
    page.execute_script("""
        const [url, done] = arguments;
        fetch(url).then(r => r.blob()).then(blob => {
          const data = new DataTransfer();
          data.items.add(new File([blob], 'dropped star.jpg', {type: 'image/jpeg'}));
          document.dispatchEvent(new DragEvent('dragenter', {dataTransfer: data, bubbles: true}));
          window.overlayShown = !document.getElementById('drop-overlay').hidden;
          document.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
        });""", star["thumbnail"])
    wait(page, lambda d: "dropped star.jpg" in d.find_element(By.ID, "query-chips").text)
    wait(page, lambda d: tiles(d) and "yellow-star" in tiles(d)[0]["path"])
    assert page.execute_script("return window.overlayShown")
    assert page.find_element(By.ID, "drop-overlay").get_attribute("hidden") is not None


def test_file_names_are_shown_as_text_never_as_markup(server, page):
    hits = api(server, "/api/search?q=a+purple+star&k=200")["results"]
    odd = next(r for r in hits if r["path"].endswith(ODD_NAME))
    visit(page, f"{server}/image/{odd['id']}")
    wait(page, lambda d: d.find_element(By.ID, "image-title").text)
    assert page.find_element(By.ID, "image-title").text == ODD_NAME
    assert not page.find_elements(By.CSS_SELECTOR, "main b, main img[src='x']")
    visit(page, f"{server}/?like={odd['id']}")
    wait(page, lambda d: tiles(d))
    assert tiles(page)[0]["name"] == ODD_NAME
    assert not page.find_elements(By.CSS_SELECTOR, "main b, main img[src='x']")


def test_a_label_set_from_a_file_is_created_edited_and_deleted(server, page, tmp_path):
    visit(page, server + "/labels")
    wait(page, lambda d: d.find_element(By.ID, "set-list").text != "Loading…")
    label_file = tmp_path / "shapes.txt"
    label_file.write_text("# shapes\ncircle\nsquare\ntriangle\nstar\n")
    page.find_element(By.ID, "set-file").send_keys(str(label_file))
    wait(page, lambda d: d.find_element(By.ID, "set-labels").get_attribute("value") == "circle\nsquare\ntriangle\nstar")
    assert page.find_element(By.ID, "set-name").get_attribute("value") == "shapes"  # named after the file
    page.find_element(By.ID, "create-submit").click()
    wait(page, lambda d: d.find_element(By.ID, "set-title").text == "shapes")
    assert parse_qs(urlparse(page.current_url).query)["set"] == ["shapes"]
    # Edit: the form comes back filled in; saving makes the set hold exactly the new list.
    page.find_element(By.ID, "set-edit").click()
    assert page.find_element(By.ID, "set-labels").get_attribute("value") == "circle\nsquare\ntriangle\nstar"
    page.find_element(By.ID, "set-labels").send_keys("\nhexagon")
    page.find_element(By.ID, "create-submit").click()
    wait(page, lambda d: d.find_element(By.ID, "set-summary").text.startswith("5 labels"))
    assert api(server, "/api/labels/shapes")["labels"] == ["circle", "square", "triangle", "star", "hexagon"]
    assert page.find_element(By.ID, "create-submit").text == "Create"
    # A second set of the same name is refused before it reaches the server.
    page.find_element(By.ID, "set-name").send_keys("shapes")
    page.find_element(By.ID, "set-labels").send_keys("oval")
    page.find_element(By.ID, "create-submit").click()
    wait(page, lambda d: "exists" in d.find_element(By.ID, "create-error").text)
    # Delete.
    page.find_element(By.ID, "set-delete").click()
    page.switch_to.alert.accept()
    wait(page, lambda d: urlparse(d.current_url).query == "" and "shapes" not in d.find_element(By.ID, "set-list").text)
    assert "shapes" not in {s["name"] for s in api(server, "/api/labels")["label_sets"]}


def test_tagging_from_the_page_follows_the_job_live_and_shows_the_counts(server, page):
    visit(page, server + "/labels")
    wait(page, lambda d: d.find_element(By.ID, "set-list").text != "Loading…")
    page.find_element(By.ID, "set-name").send_keys("colours")
    page.find_element(By.ID, "set-labels").send_keys("red, green, blue, yellow, purple, orange")
    page.find_element(By.ID, "create-submit").click()
    wait(page, lambda d: d.find_element(By.ID, "set-title").text == "colours")
    Select(page.find_element(By.ID, "tag-mode")).select_by_value("multi")
    page.find_element(By.ID, "tag-run").click()
    job = page.find_element(By.ID, "tag-job")
    wait(page, lambda d: job.get_attribute("data-state") in ("queued", "running", "done"))
    wait(page, lambda d: job.get_attribute("data-state") in ("done", "failed"), 90)
    assert job.get_attribute("data-state") == "done", job.text
    assert page.execute_script("const p = document.getElementById('tag-progress'); return p.value === p.max")
    followed = page.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert any("/api/jobs/" in name and name.endswith("/events") for name in followed), followed
    counts = {c["label"]: c["count"] for c in api(server, "/api/labels/colours")["counts"] if c["count"]}
    assert sum(counts.values()) >= 40  # every image shows one of the six colours
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "#counts tr[data-label='red'] .count").text != "0")
    shown = {row.get_attribute("data-label"): int(row.find_element(By.CSS_SELECTOR, ".count").text)
             for row in page.find_elements(By.CSS_SELECTOR, "#counts tr")}
    assert {k: v for k, v in shown.items() if v} == counts
    assert "Tagging finished" in page.find_element(By.ID, "set-message").text
    shot(page, "labels")


def test_the_images_of_a_label_and_their_tags(server, page, colours_tagged):
    visit(page, server + "/labels?set=colours")
    wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#counts tr[data-label='red'] .label-link"))
    page.find_element(By.CSS_SELECTOR, "#counts tr[data-label='red'] .label-link").click()
    wait(page, lambda d: parse_qs(urlparse(d.current_url).query).get("label") == ["red"] and tiles(d, "label-grid"))
    reds = tiles(page, "label-grid")
    assert len(reds) == colours_tagged["red"]
    assert sum("red-" in t["path"] for t in reds) >= 0.8 * len(reds), [t["path"] for t in reds]
    wait(page, lambda d: loaded_thumbnails(d, "label-grid") == len(reds))
    shot(page, "labels-red")
    # An image of the label shows its tags with scores, and leads back to the label.
    tagged = next(t for t in reds if "red-circle" in t["path"])
    page.find_element(By.CSS_SELECTOR, f"#label-grid .tile[data-id='{tagged['id']}'] .tile-link").click()
    wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#image-tags .tag-score"))
    tags = {t["label"]: t["score"] for t in api(server, f"/api/images/{tagged['id']}")["tags"]}
    shown = [(e.find_element(By.CSS_SELECTOR, ".tag-name").text,
              float(e.find_element(By.CSS_SELECTOR, ".tag-value").text))
             for e in page.find_elements(By.CSS_SELECTOR, "#image-tags .tag-score")]
    assert "red" in tags and {name for name, _ in shown} == set(tags)
    assert all(abs(score - tags[name]) < 0.001 for name, score in shown)
    assert page.find_element(By.ID, "back-link").text == "← Back to “red”"
    wait(page, lambda d: tiles(d, "more-results"))
    shot(page, "image-tagged")
    # The search page offers the tags as filters.
    visit(page, server + "/?q=a+red+circle")
    wait(page, lambda d: tiles(d) and len(d.find_elements(By.CSS_SELECTOR, ".facet-tag")) >= 6)
    wait(page, lambda d: loaded_thumbnails(d, "results") >= 10)
    shot(page, "search-with-tags")  # the README's screenshot
    page.find_element(By.CSS_SELECTOR, ".facet-tag[data-tag='red']").click()
    wait(page, lambda d: parse_qs(urlparse(d.current_url).query).get("tag") == ["red"])
    wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, ".facet-tag[data-tag='red'][aria-pressed='true']"))
    wait(page, lambda d: {t["id"] for t in tiles(d)} <= {t["id"] for t in reds})
    assert len(tiles(page)) == len(reds)


def test_untag_from_the_page(server, page, colours_tagged):
    visit(page, server + "/labels?set=colours")
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "#counts tr[data-label='red'] .count").text != "0")
    page.find_element(By.ID, "untag").click()
    page.switch_to.alert.accept()
    wait(page, lambda d: "Removed" in d.find_element(By.ID, "set-message").text)
    assert all(c.text == "0" for c in page.find_elements(By.CSS_SELECTOR, "#counts .count"))
    assert sum(c["count"] for c in api(server, "/api/labels/colours")["counts"]) == 0


LABEL_FILES = {
    "birds.txt": "# garden birds\nrobin\n\n  blue tit  \nwren\n",
    "birds.csv": "label,description,template\nrobin,a small red-breasted bird,a photo of {}.\n"
                 "\"blue tit\",a small blue and yellow bird,\nwren,,\n",
    "birds.json": json.dumps({"labels": [{"label": "robin", "descriptions": ["a robin"]}, "blue tit",
                                         {"name": "wren"}]}),
    "keyed.json": json.dumps({"robin": ["a robin"], "blue tit": {"descriptions": ["a tit"]}, "wren": []}),
}


# CSV as RFC 4180 has it: doubled quotes, commas and line breaks inside quotes, CRLF, a label over two rows.
QUOTED_CSV = {
    "quoted.csv": ('label,description\r\n"say ""hi""",a greeting\r\n"multi\nline","spans\ntwo lines"\r\n'
                   '"red, dark",a colour\r\n"say ""hi""",another greeting\r\n'),
    "bare.csv": '"say ""hi""",a greeting\n"multi\nline"\n"red, dark"\n',
}


def _delete(base: str, path: str) -> None:
    import urllib.request

    request = urllib.request.Request(base + path, method="DELETE", headers={"Authorization": f"Bearer {TOKEN}"})
    urllib.request.urlopen(request, timeout=30).close()


def _file_labels(page, name: str, text: str) -> Any:
    return page.execute_async_script("""
        const [name, text, done] = arguments;
        import('/static/labelfile.js').then(m => m.labelsFromFile(new File([text], name)))
          .then(done, (err) => done({error: err.message}));""", name, text)


def test_label_files_are_read_as_the_cli_reads_them(server, page, tmp_path):
    from zsindex.labels import parse_label_file

    visit(page, server + "/labels")
    for name, text in LABEL_FILES.items():
        (tmp_path / name).write_text(text)
        expected = [label.name for label in parse_label_file(tmp_path / name)]
        assert _file_labels(page, name, text) == expected == ["robin", "blue tit", "wren"], name
    for name, text in QUOTED_CSV.items():
        (tmp_path / name).write_bytes(text.encode())
        expected = [label.name for label in parse_label_file(tmp_path / name)]
        assert _file_labels(page, name, text) == expected == ['say "hi"', "multi\nline", "red, dark"], name
    # A header names the label column wherever it stands, in any case (description,label,template).
    assert _file_labels(page, "moved.csv", "Description,LABEL,template\na small bird,robin,\n,\"blue, tit\",a {}\n") \
        == ["robin", "blue, tit"]
    assert _file_labels(page, "named.csv", "description,name\na bird,wren\n") == ["wren"]
    # An unterminated quote is an error, as in the CLI, never a label.
    assert "quote" in _file_labels(page, "broken.csv", 'robin\n"wren,a bird\n')["error"]


def test_create_refuses_a_name_that_differs_only_in_case(server, page):
    call(server, "PUT", "/api/labels/pets", {"labels": ["cat", "dog", "hamster"], "templates": None, "auto": False})
    visit(page, server + "/labels")
    wait(page, lambda d: "pets" in d.find_element(By.ID, "set-list").text)
    page.find_element(By.ID, "set-name").send_keys("PETS")
    page.find_element(By.ID, "set-labels").send_keys("cat, dog")
    page.find_element(By.ID, "create-submit").click()
    wait(page, lambda d: "exists" in d.find_element(By.ID, "create-error").text)
    assert "“pets” exists" in page.find_element(By.ID, "create-error").text
    time.sleep(0.3)
    assert api(server, "/api/labels/pets")["labels"] == ["cat", "dog", "hamster"]  # untouched
    # Labels that differ only in case are one label twice.
    page.find_element(By.ID, "set-name").clear()
    page.find_element(By.ID, "set-name").send_keys("animals2")
    page.find_element(By.ID, "set-labels").clear()
    page.find_element(By.ID, "set-labels").send_keys("Cat, cat")
    page.find_element(By.ID, "create-submit").click()
    wait(page, lambda d: "twice" in d.find_element(By.ID, "create-error").text)
    # A name the server's rule refuses is explained in words about the name, before anything is sent.
    for name, words in (("cats/dogs", "cannot hold “/”"), ("..", "cannot name a set")):  # (the field takes 200)
        page.find_element(By.ID, "set-name").clear()
        page.find_element(By.ID, "set-name").send_keys(name)
        page.find_element(By.ID, "set-labels").clear()
        page.find_element(By.ID, "set-labels").send_keys("cat, dog")
        page.find_element(By.ID, "create-submit").click()
        wait(page, lambda d, words=words: words in d.find_element(By.ID, "create-error").text)
        assert "%2F" not in page.find_element(By.ID, "create-error").text
    _delete(server, "/api/labels/pets")


ROUND_TRIP_SETS = [
    ["a,b", "c"],                        # a comma inside a label, among others
    ["red, dark"],                       # a comma in the only label
    ['say "hi"', '"quoted"', "x,\"y\""],  # quotes
    ['"only"'],                          # a lone label that starts with a quote
    ["one"],
]


@pytest.mark.parametrize("labels", ROUND_TRIP_SETS, ids=lambda v: "|".join(v))
def test_edit_and_save_keeps_any_label_set_unchanged(server, page, labels):
    call(server, "PUT", "/api/labels/roundtrip", {"labels": labels, "templates": None, "auto": False})
    try:
        visit(page, server + "/labels?set=roundtrip")
        wait(page, lambda d: d.find_element(By.ID, "set-title").text == "roundtrip")
        page.find_element(By.ID, "set-edit").click()
        page.find_element(By.ID, "create-submit").click()
        wait(page, lambda d: d.find_element(By.ID, "create-submit").text == "Create")
        assert not page.find_element(By.ID, "create-error").text
        assert api(server, "/api/labels/roundtrip")["labels"] == labels
    finally:
        _delete(server, "/api/labels/roundtrip")


@pytest.mark.parametrize(("typed", "labels"), [
    ('red, "dark, deep",blue', ["red", "dark, deep", "blue"]),  # one line: CSV, as --labels
    ("tabby, ginger\nblack\n\n", ["tabby, ginger", "black"]),   # several lines: one label a line
    ("  cat  ,dog,", ["cat", "dog"]),
])
def test_typed_label_lists_follow_one_rule(server, page, typed, labels):
    visit(page, server + "/labels")
    got = page.execute_script("""
        return import('/static/labelfile.js').then(m => m.splitLabels(arguments[0]));""", typed)
    assert got == labels


def test_token_login(server, page):
    page.delete_all_cookies()
    with pytest.raises(urllib.error.HTTPError) as refused:
        api(server, "/api/status", token=None)
    assert refused.value.code == 401
    visit(page, server + "/labels")
    wait(page, lambda d: urlparse(d.current_url).path == "/login")
    shot(page, "login")
    page.find_element(By.ID, "token").send_keys("not the token", Keys.ENTER)
    wait(page, lambda d: "error" in parse_qs(urlparse(d.current_url).query))
    assert page.find_element(By.ID, "login-error").is_displayed()
    visit(page, server + "/?q=a+red+circle")
    wait(page, lambda d: urlparse(d.current_url).path == "/login")
    page.find_element(By.ID, "token").send_keys(TOKEN, Keys.ENTER)
    wait(page, lambda d: urlparse(d.current_url).path == "/" and tiles(d))
    assert parse_qs(urlparse(page.current_url).query)["q"] == ["a red circle"]
    assert "red-circle" in tiles(page)[0]["path"]
    indexed = api(server, "/api/status", token=TOKEN)["images"]["indexed"]
    page.find_element(By.CSS_SELECTOR, "[data-nav='status']").click()
    wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#status-cards .stat-card"))
    assert f"indexed\n{indexed}" in page.find_element(By.ID, "status-cards").text
    assert page.find_element(By.CSS_SELECTOR, "#runs table")  # the ingest run that made the index
    shot(page, "status")


def test_read_only_server_disables_what_would_change_the_index(library, page):
    with serve(library["index"], library["photos"], library["root"] / "serve-ro.log", "--read-only") as base:
        visit(page, base + "/labels")
        wait(page, lambda d: d.find_element(By.ID, "mode-badge").is_displayed())
        assert page.find_element(By.ID, "mode-badge").text == "Read-only"
        wait(page, lambda d: not d.find_element(By.ID, "create-submit").is_enabled())
        visit(page, base + "/status")
        wait(page, lambda d: not d.find_element(By.ID, "ingest-button").is_enabled())


@pytest.mark.parametrize("width", [390])
def test_phone_width_layout_does_not_overflow(server, page, width):
    page.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                         {"width": width, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    visit(page, server + "/?q=a+red+circle")
    wait(page, lambda d: tiles(d))
    assert no_horizontal_overflow(page)
    assert not page.find_element(By.ID, "filters").get_attribute("open")  # filters fold away on a phone
    columns = page.execute_script("return new Set([...document.querySelectorAll('#results .tile')]"
                                  ".map(t => t.getBoundingClientRect().left)).size")
    assert columns >= 2
    wait(page, lambda d: loaded_thumbnails(d, "results") >= 4)
    shot(page, f"phone-search-{width}")
    first = tiles(page)[0]["id"]
    for path, ready in ((f"/image/{first}", "more-results"), ("/labels", None), ("/status", None)):
        visit(page, server + path)
        if ready:
            wait(page, lambda d, grid=ready: tiles(d, grid))
        else:
            wait(page, lambda d: d.execute_script("return document.readyState") == "complete")
            time.sleep(0.5)
        assert no_horizontal_overflow(page), path
        shot(page, f"phone-{path.strip('/').split('/')[0] or 'search'}-{width}")
    dark = [{"name": "prefers-color-scheme", "value": "dark"}]
    page.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": dark})
    try:
        visit(page, server + "/?q=a+red+circle")
        wait(page, lambda d: tiles(d) and loaded_thumbnails(d, "results") >= 4)
        background = page.execute_script("return getComputedStyle(document.body).backgroundColor")
        assert background != "rgb(246, 247, 249)"  # the dark palette applies
        shot(page, f"phone-search-dark-{width}")
    finally:
        page.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
