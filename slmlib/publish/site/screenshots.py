"""Screenshots of every page type of a built site (`python -m slmlib screenshots [SITE_DIR]`).

Opens the site from its files in headless Chromium (`browser`) and writes PNGs to
`<site>/screenshots/`: leaderboard, a model page, compare with two models, methodology,
submit, the leaderboard and a model page in the dark theme and at phone width, and the reports
index next to the site when there is one.
"""

from __future__ import annotations

from pathlib import Path

from ... import artifacts
from . import browser

DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
MAX_HEIGHT = 6000  # px: longer pages are cut here (the methodology page is long)


def shots(data: dict, with_reports: bool = False) -> list[tuple[str, str, str, dict, str]]:
    """(file name, page, fragment, viewport, theme) of each screenshot, from the site's data.js content;
    `with_reports` adds the reports index next to the site (`../index.html`)."""
    order = [e for e in data["order"] if data["entries"][e].get("track") == data.get("shown_track")]  # one track
    first = f"model/{data['entries'][order[0]]['slug']}.html" if order else "index.html"
    pair = ",".join(order[:2])
    return [
        ("leaderboard.png", "index.html", "", DESKTOP, "light"),
        ("model.png", first, "", DESKTOP, "light"),
        ("compare.png", "compare.html", f"m={pair}", DESKTOP, "light"),
        ("methodology.png", "methodology.html", "", DESKTOP, "light"),
        ("submit.png", "submit.html", "", DESKTOP, "light"),
        ("leaderboard-dark.png", "index.html", "", DESKTOP, "dark"),
        ("model-dark.png", first, "", DESKTOP, "dark"),
        ("leaderboard-phone.png", "index.html", "", PHONE, "light"),
        ("model-phone.png", first, "", PHONE, "light"),
    ] + ([("reports.png", "../index.html", "", DESKTOP, "light")] if with_reports else [])


def site_data(site_dir: Path) -> dict:
    """The data a built site embeds (data.js sets `window.SLM = {...};`)."""
    import json

    text = (Path(site_dir) / "data.js").read_text(encoding="utf-8")
    return json.loads(text[text.index("=") + 1:].strip().rstrip(";"))


def take_screenshots(site_dir: Path, out_dir: Path | None = None, chromium=None) -> list[Path]:
    """Capture every page type; returns the PNG paths. `chromium`: an already launched browser
    (else one is started here)."""
    if chromium is None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            own = browser.launch(p)
            try:
                return take_screenshots(site_dir, out_dir, own)
            finally:
                own.close()
    site_dir = Path(site_dir)
    out_dir = Path(out_dir) if out_dir is not None else site_dir / "screenshots"
    written = []
    for name, page_path, fragment, viewport, theme in shots(site_data(site_dir),
                                                            (site_dir.parent / "index.html").is_file()):
        context = chromium.new_context(viewport=viewport, color_scheme=theme)
        page = context.new_page()
        page.goto(browser.page_url(site_dir, page_path, fragment))
        page.wait_for_load_state("load")
        height = min(page.evaluate("document.documentElement.scrollHeight"), MAX_HEIGHT)
        png = page.screenshot(clip={"x": 0, "y": 0, "width": viewport["width"], "height": height}, full_page=True)
        written.append(artifacts.write_bytes_atomic(out_dir / name, png))
        context.close()
    return written
