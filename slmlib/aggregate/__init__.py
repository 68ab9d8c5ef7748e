"""Aggregate stage: every run folder (and archives from other machines) into the ranked registry.

`reconcile` takes runs in and finds nondeterminism, `scoring` normalizes and weighs, `uncertainty`
bootstraps intervals and rank bands, `tracks` names the protocol each entry was measured under (ranks
never cross a track), `registry` builds and writes the registry (`schemas` checks it),
`quantization_compare` compares quantizations of one model, `tables` shows it in the notebook.
"""

from . import uncertainty
from ..params import validate as read_params
from .quantization_compare import METHOD as QUANTIZATION_METHOD, model_key
from ..signing import read_contributors as trusted_keys
from .archives import ARCHIVE_SUFFIXES, extract_safely
from .contributions import earn_submit_problem
from .quorum import todo
from .reconcile import load_study, read_run
from .registry import DISPUTE_POINTS, build_registry, write_registry
from .tracks import TRACK_RULE, default_track
from .scoring import (BADGES, NORMALIZATION, RENORMALIZATION, SIZE_BUCKETS, WEIGHTS, aggregate_score,
                      check_weights, normalize, pillar_scores, weight_problems)
from .tables import (attention_frame, fmt_interval, intervals_frame, leaderboard_frame, quantization_frame,
                     quantization_pillars_frame, registry_summary, significance_matrix, track_entries, track_of,
                     tracks_frame, weights_frame)

__all__ = [  # what the notebook calls
    "read_params", "check_weights", "WEIGHTS", "weights_frame", "trusted_keys", "load_study", "build_registry",
    "tracks_frame",
    "leaderboard_frame", "intervals_frame", "significance_matrix", "quantization_frame", "quantization_pillars_frame",
    "attention_frame", "write_registry", "registry_summary",
] + [  # for the runner, the command line and the other stages
    "BADGES", "DISPUTE_POINTS", "NORMALIZATION", "QUANTIZATION_METHOD", "RENORMALIZATION",
    "SIZE_BUCKETS", "aggregate_score", "fmt_interval", "model_key", "normalize", "pillar_scores", "weight_problems",
    "TRACK_RULE", "default_track", "track_entries", "track_of", "uncertainty",
    "ARCHIVE_SUFFIXES", "extract_safely", "read_run", "todo", "earn_submit_problem",
]
