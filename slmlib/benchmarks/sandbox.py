"""Sandboxed execution of model-generated Python for the coding pillar (stage: evaluate).

HumanEval / MBPP pass@1 run untrusted programs (solution + tests). ``run_program`` never
executes them in the harness process: each program runs in a fresh ``sys.executable -I``
child, in a throwaway temp directory, with a scrubbed environment, stdin at EOF (/dev/null),
its own session (the whole process group is SIGKILLed at the wall-clock limit), and:

* OS limits set in the child before the program runs: RLIMIT_CPU, RLIMIT_AS,
  RLIMIT_FSIZE, RLIMIT_NPROC, RLIMIT_CORE=0 (RLIMIT_NPROC is not enforced for root,
  hence the process guard below);
* a network namespace (``unshare -rn``: user + net namespace, only a down loopback)
  when the machine allows it -- see ``network_isolation()``, recorded with results;
* an audit hook (``sys.addaudithook``; hooks cannot be removed) installed before the
  program runs that refuses process creation (fork, exec, spawn, system, Popen, pty),
  os.kill, ctypes (beyond a bare ``import ctypes``), every socket operation, rlimit
  changes, gc introspection, and any write/create/delete/rename/chmod of a path outside
  the temp directory (paths resolved through symlinks). A refusal raises ``SandboxViolation`` (a BaseException, so ``except
  Exception`` does not hide it) and marks the run "blocked" even if the program
  swallows the exception.

Threat model: containment for buggy or naive model outputs (infinite loops, fork bombs,
memory hogs, stray file writes, network calls), layered with OS limits. It is NOT a
security boundary against an adversary: Python code can defeat an in-process audit hook
(e.g. by monkeypatching the stdlib helpers it calls, or raw memory access via
extension modules), and only the rlimits, the session kill and the namespace are
enforced by the kernel.
"""
from __future__ import annotations

import functools
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

__all__ = ["Limits", "ExecResult", "run_program", "network_isolation"]

_BLOCKED_EXIT = 120  # child exit code: the audit hook refused an action
_MEMORY_EXIT = 121  # child exit code: uncaught MemoryError (RLIMIT_AS hit)
_TAIL_CHARS = 2000

# Runs in the child (python -I -c) before the untrusted program. Names stay local to
# _setup so the program's fresh __main__ module sees none of them.
_BOOTSTRAP = r'''
def _setup(path, cpu, mem, nproc, fsize, blocked_exit, memory_exit):
    import builtins, os, resource, sys, traceback, types
    inf = resource.RLIM_INFINITY
    for res, soft, hard in ((resource.RLIMIT_CPU, cpu, cpu + 1), (resource.RLIMIT_AS, mem, mem),
                            (resource.RLIMIT_NPROC, nproc, nproc), (resource.RLIMIT_FSIZE, fsize, fsize),
                            (resource.RLIMIT_CORE, 0, 0)):
        cap = resource.getrlimit(res)[1]  # never try to raise an existing hard limit
        resource.setrlimit(res, (soft, hard) if cap == inf else (min(soft, cap), min(hard, cap)))
    with open(path, encoding="utf-8") as f:
        source = f.read()
    root = os.path.realpath(os.getcwd())
    realpath, fsdecode, write = os.path.realpath, os.fsdecode, os.write
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    devices = ("/dev/null", "/dev/stdout", "/dev/stderr")
    deny = frozenset(("os.system", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec",
                      "os.startfile", "subprocess.Popen", "pty.spawn", "os.kill", "os.killpg",
                      "signal.pthread_kill", "resource.setrlimit", "resource.prlimit",
                      "gc.get_objects", "gc.get_referrers", "gc.get_referents"))
    deny_prefixes = ("socket.", "ctypes.")
    path_args = {"os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1),
                 "os.link": (0, 1), "os.symlink": (1,), "os.chmod": (0,), "os.chown": (0,),
                 "os.chflags": (0,), "os.truncate": (0,), "os.utime": (0,), "os.setxattr": (0,),
                 "os.removexattr": (0,), "shutil.rmtree": (0,), "shutil.copyfile": (1,),
                 "shutil.copymode": (1,), "shutil.copystat": (1,), "shutil.copytree": (1,),
                 "shutil.move": (1,), "shutil.unpack_archive": (1,), "sqlite3.connect": (0,)}
    refused = []

    class SandboxViolation(BaseException):
        """Raised by the sandbox audit hook when the program attempts a refused action."""
    SandboxViolation.__module__, SandboxViolation.__qualname__ = "sandbox", "SandboxViolation"

    def inside(p):
        if isinstance(p, int):
            return True  # an already-open file descriptor
        try:
            p = fsdecode(p)
            r = realpath(p)
        except Exception:
            return False
        return p in devices or r == root or r.startswith(root + "/")

    def refuse(event, detail):
        refused.append(event)
        write(2, ("sandbox: blocked %s %.200r\n" % (event, detail)).encode("utf-8", "replace"))
        raise SandboxViolation("%s %.200r" % (event, detail))

    def hook(event, args):
        if event == "open":
            p, mode, flags = args
            writing = (flags or 0) & write_flags or (isinstance(mode, str) and any(c in mode for c in "wax+"))
            if writing and not inside(p):
                refuse(event, p)
        elif event in path_args:
            for i in path_args[event]:
                if i < len(args) and not inside(args[i]):
                    refuse(event, args[i])
        elif event == "ctypes.dlopen" and args[0] is None:
            pass  # `import ctypes` (numpy imports it); loading libraries or symbols is refused
        elif event in deny or event.startswith(deny_prefixes):
            refuse(event, args)

    main = types.ModuleType("__main__")
    main.__file__, main.__builtins__ = path, builtins
    sys.modules["__main__"], sys.argv = main, [path]
    sys.addaudithook(hook)
    try:
        exec(compile(source, path, "exec"), main.__dict__)
        rc = 0
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else int(e.code is not None)
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except MemoryError:
        write(2, b"\nMemoryError (memory limit)\n")
        os._exit(memory_exit)
    except BaseException as e:
        try:  # skip this bootstrap frame in the traceback
            traceback.print_exception(type(e), e, e.__traceback__.tb_next)
        except BaseException:
            pass
        rc = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(blocked_exit if refused else (rc if 0 <= rc <= 255 else 1))

import sys
_setup(sys.argv[1], *map(int, sys.argv[2:]))
'''


@dataclass(frozen=True)
class Limits:
    """Per-run limits for a sandboxed program."""

    cpu_seconds: int = 10  # RLIMIT_CPU (SIGXCPU at the soft limit)
    wall_seconds: float = 15.0  # whole process group SIGKILLed after this
    memory_mb: int = 1024  # RLIMIT_AS
    max_processes: int = 64  # RLIMIT_NPROC (not enforced for root; the audit hook blocks forks)
    max_file_mb: int = 10  # RLIMIT_FSIZE


@dataclass(frozen=True)
class ExecResult:
    """Outcome of one sandboxed run."""

    status: str  # "passed" | "failed" | "timeout" | "killed" | "blocked"
    returncode: int | None  # child exit code, -N for signal N, None on wall timeout
    duration_s: float
    output_tail: str  # last ~2000 chars of combined stdout/stderr

    @property
    def passed(self) -> bool:
        """True iff the program exited 0 within the limits without a sandbox refusal."""
        return self.status == "passed"


@functools.lru_cache(maxsize=1)
def network_isolation() -> str:
    """Which network isolation is in force: 'netns' (fresh user+net namespace via
    ``unshare -rn``) or 'guard' (in-child audit-hook guard only). Detected once."""
    return "netns" if _unshare_prefix() else "guard"


@functools.lru_cache(maxsize=1)
def _unshare_prefix() -> tuple[str, ...]:
    exe = shutil.which("unshare")
    if exe is None:
        return ()
    try:
        ok = subprocess.run([exe, "-rn", "--", "true"], stdin=subprocess.DEVNULL,
                            capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return (exe, "-rn", "--") if ok else ()


def run_program(program: str, limits: Limits = Limits()) -> ExecResult:
    """Run a full Python program (solution + tests) in a sandboxed child; passed iff exit code 0 within limits."""
    workdir = tempfile.mkdtemp(prefix="slm_sbx_")
    try:
        with open(os.path.join(workdir, "program.py"), "w", encoding="utf-8") as f:
            f.write(program)
        mb = 1024 * 1024
        cmd = [*_unshare_prefix(), sys.executable, "-I", "-B", "-u", "-X", "utf8", "-c", _BOOTSTRAP,
               "program.py", str(limits.cpu_seconds), str(limits.memory_mb * mb),
               str(limits.max_processes), str(limits.max_file_mb * mb), str(_BLOCKED_EXIT), str(_MEMORY_EXIT)]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir,
               "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        tail = bytearray()
        try:
            timed_out = _collect(proc, tail, start + limits.wall_seconds)
        finally:
            try:  # the leader is not reaped yet (WNOWAIT), so its pgid cannot have been reused
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            _drain(proc.stdout.fileno(), tail)
            proc.stdout.close()
            returncode = proc.wait()
        duration = time.monotonic() - start
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    output = bytes(tail).decode("utf-8", "replace")[-_TAIL_CHARS:]
    status = ("timeout" if timed_out else "passed" if returncode == 0 else "blocked" if returncode == _BLOCKED_EXIT
              else "killed" if returncode < 0 or returncode == _MEMORY_EXIT else "failed")
    return ExecResult(status, None if timed_out else returncode, duration, output)


def _collect(proc: subprocess.Popen, tail: bytearray, deadline: float) -> bool:
    """Read output into ``tail`` (bounded) until the child exits; True if the deadline passed first."""
    fd, is_open, poller = proc.stdout.fileno(), True, select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        if is_open and poller.poll(min(left, 0.05) * 1000):
            chunk = os.read(fd, 65536)
            tail += chunk
            del tail[: -4 * _TAIL_CHARS]
            is_open = bool(chunk)
        if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return False
        if not is_open:
            time.sleep(0.002)


def _drain(fd: int, tail: bytearray) -> None:
    """Append whatever output is still buffered in the pipe (its writers are dead by now)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while poller.poll(0) and (chunk := os.read(fd, 65536)):
        tail += chunk
        del tail[: -4 * _TAIL_CHARS]
