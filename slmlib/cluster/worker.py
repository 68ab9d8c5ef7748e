"""`python -m slmlib worker ADDRESS`: this machine as a Dask worker for studies run on a cluster.

The machine is checked first (`checks.capabilities`: the data packs as pinned, the environment as its lock
says; a writable model cache): a machine that cannot run units refuses to start, saying why.
Then a Dask nanny serves the scheduler with one worker process that runs one unit at a time on the
machine's cores (`--nthreads`: the unit's llama.cpp and torch threads), in a scratch folder of its own;
the nanny restarts the worker process when it dies. Each study's client checks the worker again against
its own machine and weights before giving it units (`execute.worker_problem`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import tempfile

from .. import paths, provenance
from ..params import ParamsError, parse_cluster
from . import checks, client, execute


def serve(address: str, tls_dir: str = "", nthreads: int = 0, local_directory: str = "") -> int:
    """Check this machine, then serve the scheduler at `address` until stopped; 1 when the machine cannot run
    units."""
    if parse_cluster(address).kind != "address":
        raise ParamsError(f"worker: {address!r} is not a scheduler's address; give tcp://HOST:8786 or tls://HOST:8786")
    if nthreads < 0:
        raise ParamsError(f"--nthreads: {nthreads}; give a number of threads, or 0 for this machine's cores")
    security = client.security_for(address, tls_dir)
    problem = machine_problem()
    if problem:
        print(f"worker: this machine cannot run units: {problem}", file=sys.stderr, flush=True)
        return 1
    threads = nthreads or provenance.usable_cores()
    print(f"[worker] machine checked; serving {address} with {threads} thread{'s' * (threads != 1)} per unit",
          flush=True)
    with contextlib.ExitStack() as stack:
        scratch = local_directory or stack.enter_context(tempfile.TemporaryDirectory(prefix="slm-worker-"))
        asyncio.run(_serve(address, security, threads, scratch))
    return 0


def machine_problem() -> str | None:
    """Why this machine cannot run units (`checks.capabilities` finds problems: a data pack missing or changed,
    packages beside the lock; the model cache is not writable), or None."""
    problems = checks.capabilities()["problems"]
    if problems:
        return "; ".join(problems.values())
    cache = paths.cache_root() / "models"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=cache).close()
    except OSError as exc:
        return (f"the model cache {cache} is not writable ({exc.strerror or exc}); set SLM_CACHE_DIR to a writable "
                "folder")
    return None


async def _serve(address: str, security, threads: int, scratch: str) -> None:
    from distributed import Nanny

    async with Nanny(address, nthreads=1, security=security, local_directory=scratch,
                     env={execute.THREADS_ENV: str(threads)}) as nanny:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(nanny.close()))
        await nanny.finished()
