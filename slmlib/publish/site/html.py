"""HTML building blocks shared by every page: the page shell, escaped cells, number formats.

Every string that may come from a submission goes through `esc` (html.escape, quotes too);
functions taking `html` arguments expect already-escaped markup.
"""

from __future__ import annotations

from html import escape

from ...aggregate import fmt_interval

DASH = "\u2014"
# No request leaves the machine: scripts, styles and images only from the site itself.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'none'; base-uri 'none'; form-action 'none'")
NAV = (("index.html", "Leaderboard"), ("compare.html", "Compare"), ("methodology.html", "Methodology"),
       ("submit.html", "Submit"))


def esc(value: object) -> str:
    """Escape any value for HTML text or a quoted attribute; None becomes an empty string."""
    return "" if value is None else escape(str(value), quote=True)


def fmt(value: float | None, digits: int = 1) -> str:
    """A number with `digits` decimals, or an em dash when missing."""
    return DASH if value is None else f"{value:,.{digits}f}"


def fmt_ci(ci: list[float] | None) -> str:
    """A 95% interval as `[lo, hi]` (`aggregate.fmt_interval`), or an empty string."""
    return fmt_interval(ci) or ""


def fmt_bytes(n: float | None) -> str:
    """A size in MB (10^6 bytes), or an em dash."""
    return DASH if n is None else f"{n / 1e6:,.1f} MB"


def link(href: str, text: str, cls: str = "", external: bool = False) -> str:
    """An anchor; `href` and `text` are escaped here. External links open without a referrer."""
    attrs = (f' class="{cls}"' if cls else "") + (' rel="noopener noreferrer"' if external else "")
    return f'<a href="{esc(href)}"{attrs}>{esc(text)}</a>'


def table(heads: list[str], rows: list[list[str]], cls: str = "", numeric: set[int] = frozenset()) -> str:
    """A table; `heads` are plain text, `rows` hold escaped HTML; columns in `numeric` align right."""
    def cell(tag: str, i: int, html: str) -> str:
        return f'<{tag}{" class=num" if i in numeric else ""}>{html}</{tag}>'

    head = "".join(cell("th", i, esc(h)) for i, h in enumerate(heads))
    body = "\n".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(r)) + "</tr>" for r in rows)
    attrs = f' class="{cls}"' if cls else ""
    return (f'<div class="scroll"><table{attrs}>\n<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{body}\n</tbody></table></div>")


def definitions(items: list[tuple[str, str]]) -> str:
    """A definition list; terms are plain text, descriptions escaped HTML."""
    return "<dl class=facts>" + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def page(title: str, body: str, active: str = "", depth: int = 0, scripts: tuple[str, ...] = (),
         reports_href: str = "../index.html") -> str:
    """A whole page: head (CSP, stylesheet, theme), navigation, `body` (escaped HTML), scripts.

    `depth` is how many folders below the site root the page is (model pages: 1); `scripts`
    are site-relative JavaScript files loaded after `data.js` and `site.js`.
    """
    up = "../" * depth
    nav = "".join(f'<a href="{up}{href}"{" aria-current=page" if href == active else ""}>{esc(text)}</a>'
                  for href, text in NAV)
    tags = "".join(f'<script src="{up}{s}"></script>' for s in ("data.js", "site.js", *scripts))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)} \u00b7 SLM Study</title>\n"
        f'<link rel="icon" href="data:,">\n<link rel="stylesheet" href="{up}site.css">\n'
        f'<script src="{up}theme.js"></script>\n</head>\n<body>\n'
        f'<header><nav><strong class="brand">SLM Study</strong>{nav}'
        f'<a href="{up}{esc(reports_href)}">Reports</a>'
        '<button id="theme-toggle" type="button" aria-label="switch between dark and light theme">'
        "theme</button></nav></header>\n"
        f"<main>\n<h1>{esc(title)}</h1>\n{body}\n</main>\n"
        '<footer>Static files, no outside requests. Scores are normalized: 0 = random guessing, '
        "100 = perfect.</footer>\n"
        f"{tags}\n</body>\n</html>\n"
    )


def quorum_text(q: dict) -> str:
    """Why an entry is provisional, in a sentence."""
    agreeing, waiting = len(q.get("agreeing") or []), len(q.get("unaudited") or [])
    return (f"not ranked until {q['required']} independent runners agree with its median on every task: "
            f"{agreeing} agree" + (f"; {waiting} run(s) from other machines wait for an audit" if waiting else ""))
