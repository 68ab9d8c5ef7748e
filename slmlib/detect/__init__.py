"""Detect stage: a YAML submission becomes a validated model card (no weights loaded).

`submission` reads and checks the YAML, `card` completes it from the weights and validates it,
`ledger` holds the duplicate and rate-limit checks, `estimate` the runtime estimate, `intake`
the front door (a submission issue's body checked and answered in markdown).
"""

from ..params import validate as read_params
from .card import MAX_PARAMETERS, card_frame, detect_submission, estimate_frame, load_card, report_frame, save_card
from .estimate import project_workers, workers_line
from .intake import MAX_BODY_BYTES, check_issue
from .intake import reply as intake_reply
from .intake import write as write_submission
from .ledger import RATE_LIMIT, RATE_WINDOW_DAYS
from .submission import (HF_REPO_FORMAT, LICENSES, MAX_BYTES, MAX_DEPTH, SCHEMA_PATH, SubmissionError,
                         choose_quantizations, json_schema, quantization_names, schema_text)
from .submission import read as read_submission

__all__ = [  # what the notebook calls
    "read_params", "detect_submission", "card_frame", "report_frame", "estimate_frame", "workers_line", "save_card",
] + [  # for the runner, the command line and the other stages
    "HF_REPO_FORMAT", "LICENSES", "MAX_BODY_BYTES", "MAX_BYTES", "MAX_DEPTH", "MAX_PARAMETERS", "RATE_LIMIT",
    "RATE_WINDOW_DAYS", "SCHEMA_PATH", "SubmissionError", "check_issue", "choose_quantizations", "intake_reply",
    "json_schema", "load_card", "project_workers", "write_submission", "quantization_names", "read_submission",
    "schema_text",
]
