"""Evaluate stage: the model loaded once, every task of the suite through lm-evaluation-harness,
then edge and energy figures.

`loop` is the resumable run, `harness` the lm-eval glue, `suites` which tasks and items a run
evaluates (`standard`: lm-eval's own tasks on Hub data), `edge` and `energy` the informational
figures. The backends that score and generate are `slmlib.backends`.
"""

from ..detect import load_card
from ..params import validate as read_params
from .edge import edge_frame, hf_generator, llamacpp_generator, measure_edge, peak_rss_mb
from .energy import energy_note
from .harness import make_lm, run_task, save_task, set_offline_env, task_config, task_manager
from .loop import (cost_frame, evaluate_run, finished_record, llamacpp_threads, load_backend, prepare_tasks,
                   results_frame, settings_of, uses_chat_template, write_results)
from .suites import SUITES, PreparedTask, benchmark_table, prepare_task, shard_slice, slice_count, suite_tasks

__all__ = [  # what the notebook calls
    "read_params", "load_card", "evaluate_run", "results_frame", "cost_frame", "edge_frame", "energy_note",
] + [  # for the runner, the command line and the other stages
    "SUITES", "PreparedTask", "benchmark_table", "finished_record", "hf_generator", "llamacpp_generator",
    "llamacpp_threads", "load_backend", "make_lm", "measure_edge", "peak_rss_mb", "prepare_task", "prepare_tasks",
    "run_task", "save_task", "set_offline_env", "settings_of", "shard_slice", "slice_count", "suite_tasks",
    "task_config", "task_manager", "uses_chat_template", "write_results",
]
