"""Sandboxed execution of model-generated Python for the coding pillar (stage: evaluate).

HumanEval / MBPP pass@1 run untrusted programs (solution + tests). ``run_program`` runs
each one under bubblewrap (``bwrap``), never in the harness process, and the kernel holds
the walls:

* its own PID, mount, network, IPC, UTS (and cgroup, where possible) namespaces: the
  program sees and signals only its own processes, has no network (a down loopback), and
  when the outer ``bwrap`` dies (wall-clock kill, or the harness killed) ``--die-with-parent``
  kills the namespace's init and with it every process inside, ``setsid`` or not;
* a file system of its own: ``/usr`` and the interpreter's prefix (``sys.base_prefix``)
  read-only, fresh ``/proc`` and ``/dev``, and a size-bounded tmpfs ``/sandbox`` as working
  directory (also HOME and TMPDIR) holding ``program.py``; nothing of the home, the repository, the venv or the
  caches, and nothing on the host's disk to clean up, even if the harness is killed;
* ``python -I -S`` (standard library only), a scrubbed environment, stdin at EOF;
* as root, the child drops to a per-run unprivileged uid (no capabilities) after setting
  RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_CORE=0 and RLIMIT_NPROC, which the kernel
  enforces only for a uid other than 0: the process bound holds, and memory is at most
  RLIMIT_AS per process times RLIMIT_NPROC plus the tmpfs size. A non-root harness runs
  bwrap in a user namespace under its own uid instead (rlimits apply as they are).

A second layer inside the child, an audit hook (``sys.addaudithook``), refuses process
creation, os.kill, ctypes (beyond a bare ``import ctypes``), sockets, rlimit changes, gc
introspection and writes outside the working directory; a refusal marks the run
"blocked". Python code can defeat that hook; the namespaces above do not depend on it.

A run passes only if the program ran to its end: after it, the child writes a random
per-run token that reaches it through a pipe it reads and closes before the program
starts (not in the program's file, argv or environment). ``exit()``, ``sys.exit(0)`` or
``os._exit(0)`` before the end leave no token and fail. The token does live in the child's
memory meanwhile: code written against this harness can read it from the bootstrap's frame
(``sys._getframe(1).f_locals``) and forge a pass; that stays inside the namespaces.

Without a working ``bwrap`` nothing is executed: ``run_program`` and ``isolation`` raise
``SandboxUnavailable`` naming ``apt-get install bubblewrap``.
"""
from __future__ import annotations

import functools
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

__all__ = ["Limits", "ExecResult", "SandboxUnavailable", "run_program", "isolation"]

_TAIL_CHARS = 2000
_WORKDIR = "/sandbox"  # inside the sandbox: a tmpfs of its own, the working directory
_UID_BASE = 1_500_000_000  # per-run uids are drawn from [_UID_BASE, _UID_BASE + 2**24): no shared process count
_EARLY_EXIT_NOTE = b"\nsandbox: the program stopped before its end (no end marker): not passed\n"

# Runs in the child (python -I -S -c) before the untrusted program. Names stay local to
# _setup so the program's fresh __main__ module sees none of them.
_BOOTSTRAP = r'''
def _setup(token_fd, cpu, mem, nproc, fsize, uid):
    import _sitebuiltins, builtins, os, resource, sys, traceback, types
    builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")  # what -S leaves out of site
    builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")
    token = b""
    while chunk := os.read(token_fd, 64):
        token += chunk
    os.close(token_fd)
    inf = resource.RLIM_INFINITY
    for res, soft, hard in ((resource.RLIMIT_CPU, cpu, cpu + 1), (resource.RLIMIT_AS, mem, mem),
                            (resource.RLIMIT_NPROC, nproc, nproc), (resource.RLIMIT_FSIZE, fsize, fsize),
                            (resource.RLIMIT_CORE, 0, 0)):
        cap = resource.getrlimit(res)[1]  # never try to raise an existing hard limit
        resource.setrlimit(res, (soft, hard) if cap == inf else (min(soft, cap), min(hard, cap)))
    if uid:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    path = "program.py"
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
    verdict = b""
    try:
        exec(compile(source, path, "exec"), main.__dict__)
        rc, verdict = 0, b"end"
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else int(e.code is not None)
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except MemoryError:
        write(2, b"\nMemoryError (memory limit)\n")
        rc, verdict = 1, b"memory"
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
    if refused:
        verdict = b"blocked"
    try:
        if verdict:
            write(1, b"\n" + token + b":" + verdict + b"\n")
    finally:
        os._exit(rc if 0 <= rc < 128 else 1)

import sys
_setup(*map(int, sys.argv[1:]))
'''


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces here: generated code is not run."""


@dataclass(frozen=True)
class Limits:
    """Per-run limits for a sandboxed program."""

    cpu_seconds: int = 10  # RLIMIT_CPU (SIGXCPU at the soft limit)
    wall_seconds: float = 15.0  # the whole PID namespace is SIGKILLed after this
    memory_mb: int = 1024  # RLIMIT_AS, per process
    max_processes: int = 64  # RLIMIT_NPROC of the run's own unprivileged uid (threads count)
    max_file_mb: int = 10  # RLIMIT_FSIZE
    workdir_mb: int = 64  # size of the tmpfs working directory


@dataclass(frozen=True)
class ExecResult:
    """Outcome of one sandboxed run."""

    status: str  # "passed" | "failed" | "timeout" | "killed" | "blocked"
    returncode: int | None  # child exit code, -N for signal N, None on wall timeout
    duration_s: float
    output_tail: str  # last ~2000 chars of combined stdout/stderr

    @property
    def passed(self) -> bool:
        """True iff the program ran to its end and exited 0 within the limits without a sandbox refusal."""
        return self.status == "passed"


def isolation() -> str:
    """The isolation in force, to record with results; raises SandboxUnavailable without bwrap."""
    uid = "per-run unprivileged uid, no capabilities" if os.geteuid() == 0 else "user namespace, own uid"
    prefix = _interpreter()[1]
    system = "/usr" if (prefix + "/").startswith("/usr/") else f"/usr and {prefix}"
    return (f"bwrap {_bwrap()[1]}: pid, mount, net, ipc, uts, cgroup namespaces; {uid}; "
            f"read-only {system}; tmpfs working directory; rlimits cpu, as, fsize, nproc")


@functools.lru_cache(maxsize=1)
def _interpreter() -> tuple[str, str]:
    """The base interpreter (not the venv's link) and its prefix, to bind read-only."""
    prefix = os.path.realpath(sys.base_prefix)
    exe = os.path.realpath(sys.executable)
    if not exe.startswith(prefix + "/"):
        raise SandboxUnavailable(f"the interpreter {exe} is not under sys.base_prefix {prefix}")
    return exe, prefix


@functools.lru_cache(maxsize=1)
def _bwrap() -> tuple[str, str]:
    """Path and version of a bwrap that can create the sandbox here (probed once)."""
    exe = shutil.which("bwrap")
    if exe is None:
        raise SandboxUnavailable("generated code runs only under bubblewrap, which is not installed: "
                                 "`apt-get install bubblewrap` (or `make setup` as root)")
    probe = subprocess.run([*_bwrap_argv(exe, Limits()), "--", _interpreter()[0], "-I", "-S", "-c", ""],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        raise SandboxUnavailable(f"bwrap cannot create the sandbox here ({probe.stderr.strip()[-300:]}); "
                                 "generated code is not run without it")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
    return exe, version.split()[-1] if version.strip() else "?"


def _bwrap_argv(exe: str, limits: Limits) -> list[str]:
    """bwrap and its flags up to the command: namespaces, read-only system, tmpfs working directory."""
    argv = [exe, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--clearenv", "--ro-bind", "/usr", "/usr"]
    argv += (["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
             if os.geteuid() == 0 else ["--unshare-user"])
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    prefix = _interpreter()[1]
    parents = [p for p in _ancestors(prefix) if not p.startswith("/usr")]
    for parent in parents:  # bwrap would create them 0700: unreadable once the uid is dropped
        argv += ["--perms", "0755", "--dir", parent]
    argv += ["--ro-bind", prefix, prefix, "--proc", "/proc", "--dev", "/dev",
             "--perms", "1777", "--size", str(limits.workdir_mb * 1024 * 1024), "--tmpfs", _WORKDIR,
             "--chdir", _WORKDIR]
    for key, value in (("PATH", "/usr/local/bin:/usr/bin:/bin"), ("HOME", _WORKDIR), ("TMPDIR", _WORKDIR),
                       ("LANG", "C.UTF-8"), ("LC_ALL", "C.UTF-8"), ("PYTHONDONTWRITEBYTECODE", "1")):
        argv += ["--setenv", key, value]
    return argv


def _ancestors(path: str) -> list[str]:
    """'/a/b/c' -> ['/a', '/a/b'] (outermost first)."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def run_program(program: str, limits: Limits = Limits()) -> ExecResult:
    """Run a full Python program (solution + tests) in the sandbox; passed iff it ran to its end and exited 0."""
    exe, _ = _bwrap()
    token = secrets.token_hex(16).encode()
    source = os.memfd_create("program.py", os.MFD_CLOEXEC)
    token_r, token_w = os.pipe()
    try:
        os.write(source, program.encode("utf-8", "replace"))
        os.lseek(source, 0, os.SEEK_SET)
        os.write(token_w, token)
        os.close(token_w)
        mb = 1024 * 1024
        uid = _UID_BASE + secrets.randbelow(1 << 24) if os.geteuid() == 0 else 0
        cmd = [*_bwrap_argv(exe, limits), "--perms", "0444", "--file", str(source), f"{_WORKDIR}/program.py",
               "--", _interpreter()[0], "-I", "-S", "-B", "-u", "-X", "utf8", "-c", _BOOTSTRAP, str(token_r),
               str(limits.cpu_seconds), str(limits.memory_mb * mb), str(limits.max_processes),
               str(limits.max_file_mb * mb), str(uid)]
        start = time.monotonic()
        proc = subprocess.Popen(cmd, env={}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True, pass_fds=(source, token_r))
    finally:
        for fd in (source, token_r):
            os.close(fd)
    tail = bytearray()
    try:
        timed_out = _collect(proc, tail, start + limits.wall_seconds)
    finally:
        try:  # the leader is not reaped yet (WNOWAIT), so its pgid cannot have been reused
            os.killpg(proc.pid, signal.SIGKILL)  # bwrap; --die-with-parent then kills the namespace
        except (ProcessLookupError, PermissionError):
            pass
        _drain(proc.stdout.fileno(), tail)
        proc.stdout.close()
        returncode = proc.wait()
    return _result(timed_out, returncode, time.monotonic() - start, tail, token)


def _result(timed_out: bool, returncode: int, duration: float, tail: bytearray, token: bytes) -> ExecResult:
    """Status from the end marker and exit code; the marker is removed from the output."""
    marker = re.search(rb"\n" + re.escape(token) + rb":(end|blocked|memory)\n", tail)
    verdict = marker.group(1) if marker else None
    if marker:
        del tail[marker.start():marker.end()]
    if returncode > 128:  # bwrap reports death by signal N as 128 + N
        returncode = 128 - returncode
    if not timed_out and returncode == 0 and verdict is None:
        tail += _EARLY_EXIT_NOTE
    output = bytes(tail).decode("utf-8", "replace")[-_TAIL_CHARS:]
    status = ("timeout" if timed_out else "blocked" if verdict == b"blocked"
              else "killed" if verdict == b"memory" or returncode < 0
              else "passed" if verdict == b"end" and returncode == 0 else "failed")
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
