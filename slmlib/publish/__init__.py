"""Publish stage: the registry and the run folders into the static site (`reports/site/`).

`site_writer` writes it, `site/` renders its pages (and the reports index), `plots` draws its charts,
`study_report` writes the study report (`reports/study.html`), the page a reader cites.
"""

from ..aggregate import leaderboard_frame
from ..params import validate as read_params
from .plots import aggregate_vs_energy, aggregate_vs_parameters, co2_per_model, pillar_bars
from .site.browser import missing as browser_missing
from .site.data import spec_values
from .site.reports_index import render_reports_index
from .site.screenshots import take_screenshots
from .site_writer import read_registry, site_path, write_site
from .study_report import figure_rows, fmt_figure, write_study_report

__all__ = [  # what the notebook calls
    "read_params", "read_registry", "site_path", "write_site", "leaderboard_frame", "pillar_bars",
    "aggregate_vs_parameters", "aggregate_vs_energy", "co2_per_model", "write_study_report",
] + [  # for the runner, the command line and the other stages
    "browser_missing", "render_reports_index", "take_screenshots", "figure_rows", "fmt_figure", "spec_values",
]
