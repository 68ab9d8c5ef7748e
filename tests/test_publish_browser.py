"""The published site in headless Chromium (Debian's `chromium`, driven by Playwright for Python).

The site is built from the synthetic study (tests/site_study.py: seven models, a hostile name,
a DISPUTED entry, ties, three quantizations of one model, one model on fewer tasks in its own track) and
opened as files; one test serves it from a local static server. The protocol study (two models, each run
under params/default.yaml, micro.yaml and quick.yaml: three tracks) checks that no ranking, filter or
compare page mixes tracks. Expectations are computed from the registry, so setting
SLM_SITE_OUTPUTS to an outputs folder (registry.json + runs/) runs the generic tests on that
study's real site too. Every page load fails the test on a script error, a dialog, or a request
that leaves the machine.
"""
from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest

from site_study import HOSTILE_FAMILY, HOSTILE_NAME, write_protocol_study, write_study
from slmlib import artifacts
from slmlib import publish
from slmlib.publish.site import browser, data

pytestmark = pytest.mark.skipif(browser.missing() is not None, reason=f"browser tests: {browser.missing()}")
SITES = ["synthetic"] + (["real"] if os.environ.get("SLM_SITE_OUTPUTS") else [])
FILTERS = {"bucket": "size_bucket", "family": "family", "license": "license"}


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = browser.launch(p)
        yield instance
        instance.close()


@pytest.fixture(scope="module", params=SITES)
def site(request, tmp_path_factory):
    """(registry, site folder) of the synthetic study, or of SLM_SITE_OUTPUTS's real study."""
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "synthetic":
        runs = root / "outputs" / "runs"
        registry = write_study(runs)
    else:
        outputs = Path(os.environ["SLM_SITE_OUTPUTS"])
        runs, registry = outputs / "runs", artifacts.read_json(outputs / "registry.json")
    site_dir = root / "reports" / "site"
    publish.write_site(registry, site_dir, runs, root / "reports", progress=False)
    return {"kind": request.param, "registry": registry, "dir": site_dir, "data": data.site_data(registry)}


class Session:
    """A browser context that records script errors, dialogs and every request URL."""

    def __init__(self, chromium, allowed: tuple[str, ...] = ("file://",), **options):
        self.context = chromium.new_context(color_scheme="light", **options)
        self.context.set_default_timeout(5000)
        self.errors, self.dialogs, self.requests, self.allowed = [], [], [], allowed
        self.context.on("request", lambda r: self.requests.append(r.url))
        self.page = self.new_page()

    def new_page(self):
        page = self.context.new_page()
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        return page

    def check(self):
        assert not self.errors, self.errors
        assert not self.dialogs, f"a dialog opened: {self.dialogs}"
        outside = [u for u in self.requests if not u.startswith(self.allowed) and not u.startswith("data:")]
        assert not outside, f"requests left the machine: {outside}"


@pytest.fixture
def session(chromium):
    s = Session(chromium, viewport={"width": 1366, "height": 900})
    yield s
    s.check()
    s.context.close()


def open_page(session, site, page: str, fragment: str = ""):
    session.page.goto(browser.page_url(site["dir"], page, fragment))
    return session.page


def visible_ids(page) -> list[str]:
    return page.eval_on_selector_all("#board tbody tr:not([hidden])", "rows => rows.map(r => r.dataset.id)")


def primaries(site, track: str | None = None) -> list[dict]:
    """The primary entry views of one track's groups (default: the track shown first) in registry (rank)
    order: the rows shown by default."""
    d = site["data"]
    track = track or d["shown_track"]
    return [d["entries"][g["primary"]] for g in d["groups"] if g["track"] == track]


def expected_order(site, key, desc: bool, track: str | None = None) -> list[str]:
    """Primary ids of one track sorted like the page: missing values last, ties in registry order."""
    rows = primaries(site, track)
    order = {v["entry_id"]: i for i, v in enumerate(rows)}

    def value(v):
        x = v["pillars"].get(key[7:]) if key.startswith("pillar:") else v.get(key)
        return x.lower() if isinstance(x, str) else x

    present = [v for v in rows if value(v) is not None]
    missing = [v for v in rows if value(v) is None]
    present.sort(key=lambda v: order[v["entry_id"]])
    present.sort(key=value, reverse=desc)
    return [v["entry_id"] for v in present + missing]


def test_rows_match_the_registry(session, site):
    page = open_page(session, site, "index.html")
    rows = primaries(site)
    assert visible_ids(page) == [v["entry_id"] for v in rows]
    assert page.inner_text("#count") == f"{len(rows)} of {len(rows)} models"
    for v in rows:
        cells = page.eval_on_selector_all(f'#board tr[data-id="{v["entry_id"]}"] td', "tds => tds.map(t => t.innerText)")
        assert cells[1].split()[0] == str(v["rank"] if v["rank"] is not None else "\u2014")
        assert cells[2].splitlines()[0] == v["name"]
        assert " ".join(cells[3].split()) == v["track_name"] and v["track"] == site["data"]["shown_track"]
        assert cells[4].split()[0] == ("\u2014" if v["aggregate"] is None else f"{v['aggregate']:.1f}")
        assert cells[5] == v["family"] and cells[6] == v["parameters"]
        for i, p in enumerate(site["data"]["pillars"]):
            score = v["pillars"].get(p)
            assert cells[8 + i] == ("\u2014" if score is None else f"{score:.1f}")
        assert cells[13].split() == v["badges"]
        assert cells[14] == v["license"]
        assert ("DISPUTED" in cells[2]) == v["disputed"]
        if v["source_url"]:
            assert page.get_attribute(f'#board tr[data-id="{v["entry_id"]}"] a.repo', "href") == v["source_url"]


def test_variants_expand_under_their_model(session, site):
    groups = [g for g in site["data"]["groups"] if g["variants"] and g["track"] == site["data"]["shown_track"]]
    if not groups:
        pytest.skip("no model with several entries in this registry")
    page = open_page(session, site, "index.html")
    g = groups[0]
    button = page.locator(f'#board tr[data-id="{g["primary"]}"] button.variants')
    button.click()
    ids = visible_ids(page)
    at = ids.index(g["primary"])
    assert ids[at + 1:at + 1 + len(g["variants"])] == g["variants"]
    assert button.get_attribute("aria-expanded") == "true"
    entries = site["data"]["entries"]
    for entry_id in [g["primary"], *g["variants"]]:  # each row names its quantization
        quant = page.inner_text(f'#board tr[data-id="{entry_id}"] td:nth-child(8)')
        assert quant == (entries[entry_id]["quantization_label"] or "\u2014")
    names = ", ".join(dict.fromkeys(entries[v]["quantization_label"] or "\u2014" for v in g["variants"]))
    assert button.get_attribute("title").endswith(": " + names)
    button.click()
    assert not set(g["variants"]) & set(visible_ids(page))


@pytest.mark.parametrize("label,key,first_desc", [
    ("Params", "parameter_count", True), ("Aggregate [95% CI]", "aggregate", True), ("Model", "name", False),
    ("Coding", "pillar:coding", True), ("Family", "family", False), ("Rank", "rank", True)])
def test_sorting_by_each_kind_of_column(session, site, label, key, first_desc):
    page = open_page(session, site, "index.html")
    header = page.locator(f'#board th button[data-key="{key}"]')
    assert header.inner_text().startswith(label)
    header.click()
    assert visible_ids(page) == expected_order(site, key, first_desc)
    th = page.locator(f'#board th:has(button[data-key="{key}"])')
    assert th.get_attribute("aria-sort") == ("descending" if first_desc else "ascending")
    header.click()
    assert visible_ids(page) == expected_order(site, key, not first_desc)
    assert f"sort={key.replace(':', '%3A')}" in page.url or key == "rank"


def test_each_filter_and_the_search_change_the_rows(session, site):
    page = open_page(session, site, "index.html")
    rows = primaries(site)
    everything = [v["entry_id"] for v in rows]
    for control, field in FILTERS.items():
        for option in site["data"]["filters"][{"bucket": "size_bucket"}.get(control, control)]:
            page.select_option(f"#f-{control}", option)
            assert visible_ids(page) == [v["entry_id"] for v in rows if v[field] == option], (control, option)
        page.select_option(f"#f-{control}", "")
        assert visible_ids(page) == everything
    for badge in site["data"]["filters"]["badge"]:
        page.select_option("#f-badge", badge)
        assert visible_ids(page) == [v["entry_id"] for v in rows if badge in v["badges"]], badge
    page.select_option("#f-badge", "")
    for pillar in site["data"]["pillars"]:
        page.select_option("#f-pillar", pillar)
        assert visible_ids(page) == [v["entry_id"] for v in rows if v["pillars"].get(pillar) is not None], pillar
        page.fill("#f-min", "40")
        assert visible_ids(page) == [v["entry_id"] for v in rows if (v["pillars"].get(pillar) or -1) >= 40], pillar
        page.fill("#f-min", "")
    page.select_option("#f-pillar", "")
    page.fill("#f-min", "20")  # without a pillar: the aggregate
    assert visible_ids(page) == [v["entry_id"] for v in rows if (v["aggregate"] or -1) >= 20]
    page.fill("#f-min", "")
    for v in rows:
        for query in {v["name"], v["family"], v.get("hf_repo") or v["model_id"]}:
            page.fill("#q", query.upper())
            expected = [w["entry_id"] for w in rows if all(
                term in " ".join(str(w.get(k) or "") for k in ("name", "family", "hf_repo", "model_id")).lower()
                for term in query.lower().split())]
            assert visible_ids(page) == expected, query
    page.fill("#q", "no such model anywhere")
    assert visible_ids(page) == [] and page.is_visible("#empty")
    page.click("#reset")
    page.locator("#board tbody tr.model:not([hidden])").first.wait_for()  # the reset applies after the event
    assert visible_ids(page) == everything and "#" not in page.url


def test_the_view_round_trips_through_the_url(session, site):
    page = open_page(session, site, "index.html")
    rows = primaries(site)
    family = rows[0]["family"]
    page.select_option("#f-family", family)
    page.fill("#q", rows[0]["name"][:4])
    page.click('#board button[data-key="parameter_count"]')
    url, shown = page.url, visible_ids(page)
    assert "family=" in url and "q=" in url and "sort=parameter_count" in url and "dir=desc" in url
    other = session.new_page()
    other.goto(url)
    assert visible_ids(other) == shown and shown
    assert other.input_value("#f-family") == family and other.input_value("#q") == rows[0]["name"][:4]
    assert other.get_attribute("#board th:has(button[data-key=parameter_count])", "aria-sort") == "descending"
    other.goto(browser.page_url(site["dir"], "index.html", "license=" + rows[-1]["license"] + "&family=nonsense"))
    assert visible_ids(other) == [v["entry_id"] for v in rows if v["license"] == rows[-1]["license"]]
    assert other.input_value("#f-family") == ""  # an unknown value is ignored


def test_model_pages_render_card_radar_and_tables(session, site):
    for v in site["data"]["entries"].values():
        page = open_page(session, site, f"model/{v['slug']}.html")
        assert page.inner_text("h1") == v["name"]
        assert page.locator("svg.radar polygon.series").count() == 1
        assert page.locator("svg.radar circle").count() == len(site["data"]["pillars"])
        assert page.locator("table.tasks tbody tr").count() == len(v["tasks"])
        normalized = page.eval_on_selector_all("table.tasks tbody tr td:nth-child(6)", "tds => tds.map(t => t.innerText)")
        assert normalized == [f"{t['normalized']:.1f}" for t in v["tasks"]]
        assert page.locator("#card + p + dl.facts dt").count() >= 10
        assert page.locator("h2#failures ~ details").count() == len(v["tasks"])
        for href in page.eval_on_selector_all("a[href*='../samples/']", "as => as.map(a => a.getAttribute('href'))"):
            assert (site["dir"] / "model" / href).resolve().is_file(), href
        assert page.locator("h2#provenance").count() == 1


def quantization_sets(site) -> list[dict]:
    sets = site["registry"].get("quantizations") or []
    if not sets:
        pytest.skip("no model with several quantizations in this registry")
    return sets


def delta_text(d: dict | None) -> str:
    """What a difference cell reads: signed value, interval, `*` when significant."""
    if d is None:
        return "\u2014"
    if not d["paired"]:
        return f"{d['difference']:+.1f} unpaired"
    lo, hi = d["difference_ci"]
    return f"{d['difference']:+.1f} [{lo:.1f}, {hi:.1f}]" + (" *" if d["significant"] else "")


def quantization_rows(page, scope: str) -> list[list[str]]:
    return page.eval_on_selector_all(f"{scope} table.quantizations tbody tr",
                                     "trs => trs.map(tr => Array.from(tr.cells).map(td => td.innerText))")


def test_model_pages_show_every_quantization_side_by_side(session, site):
    pillars = site["data"]["pillars"]
    for qset in quantization_sets(site):
        for current in qset["variants"]:
            page = open_page(session, site, f"model/{data.entry_slug(current['entry_id'])}.html")
            rows = quantization_rows(page, "main")
            assert [r[0].replace(" (this page)", "") for r in rows] == [v["name"] for v in qset["variants"]]
            for r, v in zip(rows, qset["variants"]):
                diffs = v["differences"]
                want = ([delta_text(diffs["aggregate"]), *(delta_text(diffs["pillars"].get(p)) for p in pillars)]
                        if diffs else ["reference"] * (1 + len(pillars)))
                assert [" ".join(c.split()) for c in r[6:]] == want, v["name"]
                assert r[5].split()[0] == f"{v['aggregate']:.1f}"
        other = next(v for v in qset["variants"] if v is not current)
        page.click(f'table.quantizations a:text-is("{other["name"]}")')
        assert page.url.endswith(f"model/{data.entry_slug(other['entry_id'])}.html")
        assert "(this page)" in page.inner_text(f'table.quantizations tbody tr:nth-child('
                                                f'{qset["variants"].index(other) + 1}) td:first-child')


def test_compare_page_shows_the_quantization_rows_of_one_model(session, site):
    qset = quantization_sets(site)[0]
    ids = [v["entry_id"] for v in qset["variants"]]
    page = open_page(session, site, "compare.html", "m=" + ",".join(ids[:2]))
    assert page.is_visible("#quantizations")
    scope = f'section.quantization-set[data-entries="{" ".join(ids)}"]'
    assert page.is_visible(scope)
    assert [r[0] for r in quantization_rows(page, scope)] == [v["name"] for v in qset["variants"]]
    others = [e for e in site["data"]["order"] if site["data"]["entries"][e]["group"] != qset["model_key"]]
    page = open_page(session, site, "compare.html", "m=" + ",".join([ids[0], *others[:1]]))
    assert page.is_hidden("#quantizations")  # one quantization of the model: nothing to set side by side


def test_compare_page_draws_the_chosen_models(session, site):
    d = site["data"]
    if len(d["order"]) < 2:
        pytest.skip("compare needs two entries")
    page = open_page(session, site, "compare.html")
    a, b = d["order"][:2]
    assert page.url.endswith("#m=" + ",".join(x.replace("@", "%40") for x in (a, b)))  # default: the two best
    assert page.locator("#radar polygon.series").count() == 2
    bars = sum(len(d["entries"][x]["tasks"]) for x in (a, b))
    assert page.locator("#task-bars rect.bar").count() == bars
    comparison = next(c for c in d["comparisons"] if {c["a"], c["b"]} == {a, b})
    cells = page.eval_on_selector_all("#significance tbody td", "tds => tds.map(t => t.innerText)")
    diff = comparison["difference"] if comparison["a"] == a else -comparison["difference"]
    assert cells[1].startswith(f"{diff:.1f}") and cells[5] == ("yes" if comparison["significant"] else "no")
    if comparison["paired"]:
        assert cells[3] == f"{comparison['p_value']:.4f}"
    spec_rows = page.eval_on_selector_all("#specs tbody tr", "trs => trs.map(tr => [tr.cells[0].innerText, "
                                          "Array.from(tr.cells).slice(1).map(c => c.classList.contains('best'))])")
    by_label = dict((label, best) for label, best in spec_rows)
    for key, label, unit, better, _ in data.SPEC_ROWS:
        values = [d["entries"][x]["spec"][key] for x in (a, b)]
        if better and None not in values and values[0] != values[1]:
            pick = min(values) if better == "lower" else max(values)
            assert by_label[f"{label} ({unit})"] == [x == pick for x in values], label
    if len(d["order"]) >= 3:
        third = d["order"][2]
        page.check(f'#picker input[value="{third}"]')
        assert page.locator("#radar polygon.series").count() == 3 and third.replace("@", "%40") in page.url
    if len(d["order"]) >= 5:
        page.check(f'#picker input[value="{d["order"][3]}"]')
        page.locator(f'#picker input[value="{d["order"][4]}"]').click()
        assert page.locator("#radar polygon.series").count() == 4 and "At most 4" in page.inner_text("#pick-status")
    other = session.new_page()
    other.goto(browser.page_url(site["dir"], "compare.html", "m=" + d["order"][-1]))
    assert "at least two" in other.inner_text("#pick-status") and other.is_hidden("#comparison")


def test_theme_toggle_persists_across_reload_and_pages(session, site):
    page = open_page(session, site, "index.html")
    theme = lambda p: p.get_attribute("html", "data-theme")  # noqa: E731
    assert theme(page) == "light"
    page.click("#theme-toggle")
    assert theme(page) == "dark" and page.evaluate("localStorage.getItem('slm-theme')") == "dark"
    background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    page.reload()
    assert theme(page) == "dark"
    assert page.evaluate("getComputedStyle(document.documentElement).backgroundColor") == background != "rgb(255, 255, 255)"
    page.goto(browser.page_url(site["dir"], "methodology.html"))
    assert theme(page) == "dark"
    page.click("#theme-toggle")
    page.reload()
    assert theme(page) == "light"


def test_hostile_model_name_renders_as_text(session, site):
    if site["kind"] != "synthetic":
        pytest.skip("the hostile entry is in the synthetic study")
    evil = next(v for v in site["data"]["entries"].values() if v["model_id"] == "evil")
    page = open_page(session, site, "index.html")
    row = f'#board tr[data-id="{evil["entry_id"]}"]'
    assert page.inner_text(f"{row} a.model-link") == HOSTILE_NAME
    assert page.inner_text(f"{row} td:nth-child(6)") == HOSTILE_FAMILY
    page.fill("#q", "<img src=x")
    assert visible_ids(page) == [evil["entry_id"]]
    for target, fragment in ((f"model/{evil['slug']}.html", ""), ("compare.html", "m=" + evil["entry_id"] + ","
                                                                   + site["data"]["order"][0]), ("index.html", "")):
        page = open_page(session, site, target, fragment)
        assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
        assert page.evaluate("Array.from(document.scripts).every(s => s.src.startsWith('file://'))")
        assert HOSTILE_NAME in page.inner_text("body")
    page = open_page(session, site, f"model/{evil['slug']}.html")
    assert page.inner_text("h1") == HOSTILE_NAME and HOSTILE_NAME in page.title()
    assert "<script>alert(3)</script>" in page.locator("details", has_text="gsm8k_cot").text_content()  # an answer
    assert session.dialogs == []


def test_pages_fit_a_phone_screen(chromium, site):
    s = Session(chromium, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    pages = ["index.html", "compare.html", "methodology.html", "submit.html"]
    pages += [f"model/{v['slug']}.html" for v in list(site["data"]["entries"].values())[:2]]
    for target in pages:
        s.page.goto(browser.page_url(site["dir"], target))
        width = s.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{target} is {width}px wide on a 390px screen"
    s.check()
    s.context.close()


def test_a_phone_first_screen_shows_rank_model_track_and_aggregate(chromium, site):
    """On a 390 px phone the leaderboard opens with rank, model, track and aggregate of every row inside
    the screen, without scrolling sideways (family and the rest follow to the right)."""
    s = Session(chromium, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    s.page.goto(browser.page_url(site["dir"], "index.html"))
    heads = s.page.eval_on_selector_all("#board thead th", "ths => ths.map(t => t.innerText.trim())")
    assert heads[1:5] == ["Rank", "Model", "Track", "Aggregate [95% CI]"]
    for v in primaries(site)[:4]:
        boxes = s.page.eval_on_selector_all(
            f'#board tr[data-id="{v["entry_id"]}"] td', "tds => tds.slice(1, 5).map(t => t.getBoundingClientRect().right)")
        assert max(boxes) <= 390, (v["name"], boxes)
        assert s.page.is_visible(f'#board tr[data-id="{v["entry_id"]}"] span.track')
    assert s.page.evaluate("document.querySelector('#board').closest('.scroll').scrollLeft") == 0
    s.check()
    s.context.close()


@pytest.fixture(scope="module")
def tracks_site(tmp_path_factory):
    """The protocol study's registry and site: two models, each under three protocols (three tracks)."""
    root = tmp_path_factory.mktemp("tracks")
    registry = write_protocol_study(root / "outputs" / "runs")
    site_dir = root / "reports" / "site"
    publish.write_site(registry, site_dir, root / "outputs" / "runs", root / "reports", progress=False)
    return {"kind": "tracks", "registry": registry, "dir": site_dir, "data": data.site_data(registry)}


def shown_tracks(page) -> set[str]:
    """The tracks of the rows on screen."""
    return set(page.eval_on_selector_all("#board tbody tr:not([hidden])", "rows => rows.map(r => r.dataset.track)"))


def test_each_track_is_ranked_on_its_own_and_kept_in_the_url(session, tracks_site):
    site, d = tracks_site, tracks_site["data"]
    assert len(d["tracks"]) == 3 and d["tracks"][0]["default"] and d["shown_track"] == d["tracks"][0]["id"]
    page = open_page(session, site, "index.html")
    options = page.eval_on_selector_all("#f-track option", "os => os.map(o => [o.value, o.textContent])")
    assert [v for v, _ in options] == [t["id"] for t in d["tracks"]] and "(default)" in options[0][1]
    for t in d["tracks"]:
        if t["id"] != d["shown_track"]:
            page.select_option("#f-track", t["id"])
        rows = primaries(site, t["id"])
        assert visible_ids(page) == [v["entry_id"] for v in rows] and shown_tracks(page) == {t["id"]}
        ranks = page.eval_on_selector_all("#board tbody tr:not([hidden]) td:nth-child(2)",
                                          "tds => tds.map(td => td.innerText.split(/\\s/)[0])")
        assert ranks == [str(v["rank"]) for v in rows] == ["1", "2"]  # ranked among this track's entries only
        names = page.eval_on_selector_all("#board tbody tr:not([hidden]) span.track", "s => s.map(x => x.innerText)")
        assert [" ".join(n.split()) for n in names] == [t["name"]] * len(rows)
        assert t["name"] in page.inner_text("#track-protocol") and page.inner_text("#count") == "2 of 2 models"
        charts = page.eval_on_selector_all("section.charts-track:not([hidden])", "ss => ss.map(s => s.dataset.track)")
        assert charts == [t["id"]]  # the charts of this track only, drawn from its own files
        page.wait_for_function("Array.from(document.querySelectorAll('section.charts-track:not([hidden]) img'))"
                               ".every(i => i.complete && i.naturalWidth > 0)")
        srcs = page.eval_on_selector_all("section.charts-track:not([hidden]) img", "is => is.map(i => i.getAttribute('src'))")
        assert srcs and all(x.startswith(f"charts/{t['id']}/") for x in srcs)
        if t["id"] != d["shown_track"]:
            assert "track=" + t["id"] in page.url
            other = session.new_page()
            other.goto(page.url)  # the URL brings the track back
            assert other.input_value("#f-track") == t["id"] and visible_ids(other) == visible_ids(page)
            other.close()
    page.goto(browser.page_url(site["dir"], "index.html", "track=no-such-track"))
    assert page.input_value("#f-track") == d["shown_track"] and shown_tracks(page) == {d["shown_track"]}


def test_no_filter_or_sort_mixes_tracks(session, tracks_site):
    site, d = tracks_site, tracks_site["data"]
    for t in d["tracks"]:
        page = open_page(session, site, "index.html", "track=" + t["id"])
        rows = primaries(site, t["id"])
        for control, field in FILTERS.items():
            for option in d["filters"][{"bucket": "size_bucket"}.get(control, control)]:
                page.select_option(f"#f-{control}", option)
                assert visible_ids(page) == [v["entry_id"] for v in rows if v[field] == option], (t["id"], option)
                assert shown_tracks(page) <= {t["id"]}
            page.select_option(f"#f-{control}", "")
        page.fill("#q", "smol")  # both tracks hold smol: the search finds this track's only
        assert visible_ids(page) == [v["entry_id"] for v in rows if v["model_id"] == "smol"]
        page.fill("#q", "")
        page.fill("#f-min", "0")
        assert shown_tracks(page) == {t["id"]}
        page.fill("#f-min", "")
        for key, desc in (("aggregate", True), ("name", False)):
            page.click(f'#board button[data-key="{key}"]')
            if page.get_attribute(f'#board th:has(button[data-key="{key}"])', "aria-sort") != \
                    ("descending" if desc else "ascending"):
                page.click(f'#board button[data-key="{key}"]')
            assert visible_ids(page) == expected_order(site, key, desc, t["id"]) and shown_tracks(page) == {t["id"]}
        for box in page.locator("#board tbody tr:not([hidden]) input.pick").all():
            box.check()
        href = page.get_attribute("#compare-link", "href")
        picked = [x.replace("%40", "@") for x in href.split("#m=")[1].split(",")]
        assert sorted(picked) == sorted(v["entry_id"] for v in rows)  # only this track's boxes count


def test_compare_pairs_only_entries_of_one_track_and_says_why_not_across(session, tracks_site):
    site, d = tracks_site, tracks_site["data"]
    by_track = {t["id"]: [e for e in d["order"] if d["entries"][e]["track"] == t["id"]] for t in d["tracks"]}
    page = open_page(session, site, "compare.html")
    first = by_track[d["shown_track"]]
    assert page.url.endswith("#m=" + ",".join(x.replace("@", "%40") for x in first[:2]))  # default: first track
    legends = page.eval_on_selector_all("#picker legend", "ls => ls.map(l => l.innerText)")
    assert legends == [f"Track {t['name']}" for t in d["tracks"]]
    for t in d["tracks"]:
        inside = page.eval_on_selector_all(f'#picker fieldset[data-track="{t["id"]}"] input', "is => is.map(i => i.value)")
        assert inside == by_track[t["id"]]
    for ids in by_track.values():  # one track: a paired test
        page.goto(browser.page_url(site["dir"], "compare.html", "m=" + ",".join(ids)))
        cells = page.eval_on_selector_all("#significance tbody td", "tds => tds.map(t => t.innerText)")
        assert cells[2] in ("paired", "unpaired (different items)") and page.is_hidden("#cross-track")
        assert page.locator("#specs td.best").count() > 0
    smol = [e for e in d["order"] if d["entries"][e]["model_id"] == "smol"]
    page.goto(browser.page_url(site["dir"], "compare.html", "m=" + ",".join(smol)))  # one model, three tracks
    rows = page.eval_on_selector_all("#significance tbody tr", "trs => trs.map(tr => Array.from(tr.cells).map(c => c.innerText))")
    assert len(rows) == 3 and all(r[2] == "not paired: different tracks" and r[5] == "not tested" for r in rows)
    why = page.inner_text("#cross-track")
    assert page.is_visible("#cross-track") and "3 tracks" in why and "cannot be paired" in why
    assert all(d["entries"][e]["track_name"] in why for e in smol)
    best = page.eval_on_selector_all("#specs tbody tr", "trs => trs.filter(tr => tr.cells[0].innerText.startsWith("
                                     "'Aggregate')).map(tr => tr.querySelectorAll('td.best').length)")
    assert best == [0]  # no score is marked best across tracks
    tracks_row = page.eval_on_selector_all("#specs tbody tr", "trs => Array.from(trs[0].cells).map(c => c.innerText)")
    assert tracks_row == ["Track", *(d["entries"][e]["track_name"] for e in smol)]


def test_model_pages_name_their_track_and_link_the_model_in_other_tracks(session, tracks_site):
    site, d = tracks_site, tracks_site["data"]
    for v in d["entries"].values():
        page = open_page(session, site, f"model/{v['slug']}.html")
        assert page.inner_text(".track-name") == v["track_name"]
        assert page.inner_text(".summary").startswith(f"Rank in its track {v['rank']}")
        others = [w for w in d["entries"].values() if w["model_id"] == v["model_id"] and w is not v]
        hrefs = page.eval_on_selector_all(".summary + p a", "as => as.map(a => a.getAttribute('href'))")
        assert sorted(h for h in hrefs if h.endswith(".html") and "compare" not in h) == \
            sorted(f"{w['slug']}.html" for w in others)
        assert "in other tracks (not comparable)" in page.inner_text(".summary + p")


def test_the_leaderboard_of_the_synthetic_study_keeps_its_second_track_apart(session, site):
    d = site["data"]
    if len(d["tracks"]) < 2:
        pytest.skip("one track in this registry")
    page = open_page(session, site, "index.html")
    assert shown_tracks(page) == {d["shown_track"]}
    offered = lambda: page.eval_on_selector_all(  # noqa: E731
        "#f-family option:not([value=''])", "os => os.filter(o => !o.hidden).map(o => o.value)")
    assert offered() == sorted({v["family"] for v in primaries(site)}, key=str.lower)
    other = d["tracks"][1]
    page.select_option("#f-track", other["id"])
    assert visible_ids(page) == [v["entry_id"] for v in primaries(site, other["id"])]
    assert shown_tracks(page) == {other["id"]}
    assert offered() == sorted({v["family"] for v in primaries(site, other["id"])}, key=str.lower)  # its own only


@pytest.fixture
def served(site):
    """The site from a local static server (127.0.0.1, a free port)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site["dir"]))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_the_site_works_from_a_static_server(chromium, site, served):
    s = Session(chromium, allowed=(served,))
    s.page.goto(served + "index.html#sort=aggregate&dir=desc")
    assert visible_ids(s.page) == expected_order(site, "aggregate", True)
    s.page.click('#board button[data-key="name"]')
    assert visible_ids(s.page) == expected_order(site, "name", False)
    first = site["data"]["entries"][site["data"]["order"][0]]
    s.page.goto(served + f"model/{first['slug']}.html")
    assert s.page.locator("svg.radar polygon.series").count() == 1
    for target in ("compare.html", "methodology.html", "submit.html"):
        s.page.goto(served + target)
    s.page.goto(served + "index.html")
    shown = "Array.from(document.images).filter(i => !i.closest('[hidden]'))"  # other tracks' charts load lazily
    assert s.page.evaluate(f"{shown}.length > 0 && {shown}.every(i => i.complete && i.naturalWidth > 0)")
    s.check()
    assert any(u.endswith(f"charts/{site['data']['shown_track']}/pillars.svg") for u in s.requests)
    s.context.close()


def test_empty_site_says_no_models_yet(chromium, tmp_path):
    from slmlib.aggregate.registry import build_registry

    publish.write_site(build_registry([]), tmp_path / "site", tmp_path / "runs", tmp_path, progress=False)
    s = Session(chromium)
    for target in ("index.html", "compare.html", "methodology.html", "submit.html"):
        s.page.goto(browser.page_url(tmp_path / "site", target))
    s.page.goto(browser.page_url(tmp_path / "site", "index.html"))
    assert "No models yet" in s.page.inner_text("main")
    s.check()
    s.context.close()


def test_screenshots_of_every_page_type(chromium, site, tmp_path):
    if site["kind"] != "synthetic":
        pytest.skip("once is enough")
    from PIL import Image

    from slmlib.publish.site import screenshots

    written = screenshots.take_screenshots(site["dir"], tmp_path / "shots", chromium)
    expected = screenshots.shots(site["data"], with_reports=False)
    assert [p.name for p in written] == [name for name, *_ in expected]
    for path, (_, _, _, viewport, _) in zip(written, expected):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width == viewport["width"]
            assert 600 <= image.height <= screenshots.MAX_HEIGHT


@pytest.fixture(scope="module")
def quorum_site(tmp_path_factory):
    """A community study (quorum 2): models run on two machines that agree are confirmed and ranked, models
    run on one machine are provisional."""
    from site_study import MODELS, make_run
    from slmlib.aggregate import build_registry

    root = tmp_path_factory.mktemp("quorum")
    runs, samples = [], {}
    for i, key in enumerate(k for k in MODELS if k != "evil"):
        first, rows = make_run(key, 0, seed=1234)
        copies = [first] + ([{**first, "run_id": f"{key}__again"}] if i % 2 == 0 else [])
        for machine, run in enumerate(copies):
            run = {**run, "provenance": {**run["provenance"], "machine_id": f"machine{machine}"}}
            folder = root / "outputs" / "runs" / run["run_id"]
            artifacts.write_json(folder / "results.json", run)
            for task, task_rows in rows.items():
                artifacts.write_jsonl(folder / "samples" / f"{task}.jsonl", task_rows)
            runs.append(run)
            samples[run["run_id"]] = rows
    registry = build_registry(runs, samples=samples, resamples=200, quorum=2)
    site_dir = root / "reports" / "site"
    publish.write_site(registry, site_dir, root / "outputs" / "runs", root / "reports", progress=False)
    return {"kind": "quorum", "registry": registry, "dir": site_dir, "data": data.site_data(registry)}


def test_provisional_entries_are_unranked_and_shown_only_when_asked(session, quorum_site):
    site, d = quorum_site, quorum_site["data"]
    groups = [g for g in d["groups"] if g["track"] == d["shown_track"]]
    confirmed = [g["primary"] for g in groups if not d["entries"][g["primary"]]["provisional"]]
    provisional = [g["primary"] for g in groups if d["entries"][g["primary"]]["provisional"]]
    assert confirmed and provisional and all(d["entries"][e]["rank"] is None for e in provisional)
    page = open_page(session, site, "index.html")
    assert visible_ids(page) == confirmed  # ranked entries only, in rank order
    assert page.inner_text("#count") == f"{len(confirmed)} of {len(groups)} models"
    page.check("#f-provisional")
    assert visible_ids(page) == confirmed + provisional and "provisional=1" in page.url
    for eid in provisional:
        row = page.locator(f'#board tbody tr[data-id="{eid}"]')
        assert row.locator("td").nth(1).inner_text().strip() == "\u2014" and "PROVISIONAL" in row.inner_text()
    other = session.new_page()
    other.goto(page.url)  # the URL brings the switch back
    assert other.is_checked("#f-provisional") and visible_ids(other) == confirmed + provisional
    other.close()
    page.goto(browser.page_url(site["dir"], f"model/{data.entry_slug(provisional[0])}.html"))
    text = page.inner_text("main")
    assert "PROVISIONAL" in text and "not ranked until 2 independent runners agree" in text
    assert "Verification" in text and "machine:machine0" in text
