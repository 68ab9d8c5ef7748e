"""Publish stage: the registry and the run folders into the static site (`reports/site/`).

`site_writer` writes it, `site/` renders its pages (and the reports index), `plots` draws its charts.
"""

from ..aggregate import leaderboard_frame
from ..params import validate as read_params
from .plots import aggregate_vs_energy, aggregate_vs_parameters, co2_per_model, pillar_bars
from .site.browser import missing as browser_missing
from .site.reports_index import render_reports_index
from .site.screenshots import take_screenshots
from .site_writer import read_registry, site_path, write_site

__all__ = [  # what the notebook calls
    "read_params", "read_registry", "site_path", "write_site", "leaderboard_frame", "pillar_bars",
    "aggregate_vs_parameters", "aggregate_vs_energy", "co2_per_model",
] + [  # for the runner, the command line and the other stages
    "browser_missing", "render_reports_index", "take_screenshots",
]
