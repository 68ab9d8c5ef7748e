"""The study on Dask distributed: work units, the client, workers and their checks, TLS.

`units` cuts a study's evaluate stage into units and makes run folders whole from what they return,
`execute` runs a unit on a worker, `client` schedules a study's units from the runner, `worker` is the
worker command, `checks` what a machine must share with the study's client, `tls` the certificates.
"""

from .checks import cpu_summary
from .client import evaluate_runs
from .tls import make_ca
from .worker import serve

__all__ = ["cpu_summary", "evaluate_runs", "make_ca", "serve"]
