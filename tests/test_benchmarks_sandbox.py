"""Tests for slmlib.benchmarks.sandbox: real child processes, no mocks, no network needed.

Measured on the dev machine (netns isolation, Python 3.11): a trivial program
(`print('hi')`) takes ~0.03 s end to end (median of 5 runs, ~0.025-0.035 s); the whole
file runs in ~10 s, dominated by the deliberate 1-2 s wall/CPU-limit tests.
"""
from __future__ import annotations

import os
import resource
import signal
import socket
import statistics
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from slmlib.benchmarks.sandbox import ExecResult, Limits, network_isolation, run_program  # noqa: E402

PRINT_CWD = "import os\nprint('CWD=' + os.getcwd(), flush=True)\n"


def _cwd_of(result: ExecResult) -> str:
    line = next(ln for ln in result.output_tail.splitlines() if ln.startswith("CWD="))
    return line[len("CWD="):]


def _pids() -> set[int]:
    return {int(p) for p in os.listdir("/proc") if p.isdigit()}


def _procs_in(directory: str) -> list[int]:
    """Live processes whose cwd is (or was, before deletion) the given sandbox directory."""
    found = []
    for pid in _pids():
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if cwd.removesuffix(" (deleted)") == directory:
            found.append(pid)
    return found


def _assert_cleaned_up(result: ExecResult) -> None:
    cwd = _cwd_of(result)
    assert cwd.startswith(os.path.realpath(os.environ.get("TMPDIR", "/tmp")))
    assert not os.path.exists(cwd), "sandbox temp dir must be deleted"
    assert _procs_in(cwd) == [], "no process may survive the run"


# --- pass / fail ---------------------------------------------------------------------------

SOLUTION = '''
import math, collections, re, itertools, heapq
from typing import List

def top_k(nums: List[int], k: int) -> List[int]:
    return heapq.nlargest(k, nums)

def words(s: str) -> collections.Counter:
    return collections.Counter(re.findall(r"[a-z]+", s.lower()))
'''
TESTS = '''
assert top_k([5, 1, 9, 3], 2) == [9, 5]
assert words("a B a")["a"] == 2
assert list(itertools.islice(itertools.count(), 3)) == [0, 1, 2]
assert math.isclose(math.pi, 3.14159, rel_tol=1e-5)
'''


def test_correct_solution_passes():
    result = run_program(SOLUTION + TESTS)
    assert result.status == "passed", result.output_tail
    assert result.passed and result.returncode == 0


def test_wrong_solution_fails():
    result = run_program(SOLUTION.replace("nlargest", "nsmallest") + TESTS)
    assert result.status == "failed" and not result.passed
    assert result.returncode == 1
    assert "AssertionError" in result.output_tail


@pytest.mark.parametrize("program", ["def f(:\n    pass\n", "raise ValueError('x')", "import sys\nsys.exit(3)"])
def test_syntax_error_exception_or_nonzero_exit_fails(program):
    assert run_program(program).status == "failed"


def test_trivial_program_is_fast():
    durations = [run_program("print('hi')").duration_s for _ in range(5)]
    assert statistics.median(durations) < 1.0, durations


def test_child_is_isolated_python_in_scrubbed_throwaway_dir(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    monkeypatch.setenv("SLM_SECRET_TOKEN", "leak")
    program = PRINT_CWD + '''
import sys, tempfile
cwd = os.getcwd()
assert sys.flags.isolated == 1 and sys.flags.dont_write_bytecode
assert os.environ["HOME"] == cwd and os.environ["TMPDIR"] == cwd
assert os.environ["PYTHONDONTWRITEBYTECODE"] == "1"
assert not any("proxy" in k.lower() for k in os.environ), sorted(os.environ)
assert "SLM_SECRET_TOKEN" not in os.environ
assert sys.stdin.read() == ""
assert os.getpgid(0) == os.getpid() and os.getsid(0) == os.getpid()
'''
    result = run_program(program)
    assert result.status == "passed", result.output_tail
    _assert_cleaned_up(result)


def test_writing_inside_the_sandbox_dir_works():
    program = PRINT_CWD + '''
import shutil, tempfile
with open("out.txt", "w") as f:
    f.write("hello")
os.mkdir("sub")
with open(os.path.join("sub", "x.bin"), "ab") as f:
    f.write(b"1")
os.rename("out.txt", "sub/out.txt")
with tempfile.NamedTemporaryFile("w", delete=False) as t:
    t.write("tmp")
assert open("sub/out.txt").read() == "hello"
shutil.rmtree("sub")
os.remove(t.name)
'''
    result = run_program(program)
    assert result.status == "passed", result.output_tail
    _assert_cleaned_up(result)


# --- runaway programs ----------------------------------------------------------------------

def test_infinite_loop_times_out_and_parent_regains_control():
    program = PRINT_CWD + "import time\nwhile True:\n    time.sleep(0.05)\n"
    result = run_program(program, Limits(cpu_seconds=1, wall_seconds=2))
    assert result.status == "timeout" and result.returncode is None
    assert 2.0 <= result.duration_s < 3.5
    _assert_cleaned_up(result)


def test_busy_loop_hits_wall_timeout():
    result = run_program(PRINT_CWD + "while True:\n    pass\n", Limits(cpu_seconds=5, wall_seconds=1))
    assert result.status == "timeout"
    assert result.duration_s < 2.5
    _assert_cleaned_up(result)


def test_busy_loop_is_killed_by_cpu_limit():
    result = run_program("while True:\n    pass\n", Limits(cpu_seconds=1, wall_seconds=10))
    assert result.status == "killed"
    assert result.returncode == -signal.SIGXCPU
    assert result.duration_s < 5


@pytest.mark.parametrize("program", [
    "x = bytearray(4 * 1024**3)",
    "x = []\nwhile True:\n    x.append(bytearray(10**6))\n",
])
def test_memory_hog_is_killed_not_the_parent(program):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run_program(program, Limits(memory_mb=256, wall_seconds=10))
    assert result.status == "killed", result.output_tail
    assert "MemoryError" in result.output_tail
    grew_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grew_kb < 100 * 1024


def test_file_size_limit():
    program = "with open('big.bin', 'wb') as f:\n    f.write(b'0' * (3 * 1024**2))\n"
    result = run_program(program, Limits(max_file_mb=1))
    assert result.status == "failed"
    assert "File too large" in result.output_tail


def test_huge_output_is_truncated():
    result = run_program("print('x' * 5_000_000)\nprint('END')\n")
    assert result.status == "passed"
    assert len(result.output_tail) <= 2000
    assert result.output_tail.endswith("x\nEND\n")


def test_endless_output_does_not_hang_the_parent():
    result = run_program("while True:\n    print('y' * 1000)\n", Limits(wall_seconds=2))
    assert result.status == "timeout"
    assert result.duration_s < 3.5
    assert 0 < len(result.output_tail) <= 2000 and set(result.output_tail) <= {"y", "\n"}


# --- process creation ----------------------------------------------------------------------

def test_fork_bomb_is_blocked_and_spawns_nothing():
    before = len(_pids())
    result = run_program(PRINT_CWD + "while True:\n    os.fork()\n", Limits(wall_seconds=2))
    assert result.status == "blocked", result.output_tail
    assert "SandboxViolation" in result.output_tail and "os.fork" in result.output_tail
    _assert_cleaned_up(result)
    assert len(_pids()) <= before + 20  # slack for unrelated activity on the machine


@pytest.mark.parametrize("program, event", [
    ("import subprocess\nsubprocess.run(['echo', 'x'])", "subprocess.Popen"),
    ("import os\nos.system('echo x')", "os.system"),
    ("import os\nos.execv('/bin/echo', ['echo', 'x'])", "os.exec"),
    ("import os\nos.posix_spawn('/bin/echo', ['echo', 'x'], {})", "os.posix_spawn"),
    ("import pty\npty.spawn(['echo', 'x'])", "pty.spawn"),
    ("import multiprocessing as m\np = m.Process(target=print)\np.start()\np.join()", "os.fork"),
    ("import ctypes\nctypes.CDLL('libc.so.6').fork()", "ctypes.dlopen"),
    ("import ctypes\nctypes.CDLL(None).fork()", "ctypes.dlsym"),
    ("import os\nos.kill(os.getppid(), 0)", "os.kill"),
    ("import resource\nresource.setrlimit(resource.RLIMIT_CPU, (100, 100))", "resource.setrlimit"),
    ("import os\ntry:\n    os.fork()\nexcept Exception:\n    pass\nexcept BaseException:\n    pass\n", "os.fork"),
])
def test_process_creation_and_escapes_are_blocked(program, event):
    result = run_program(program)
    assert result.status == "blocked", result.output_tail
    assert f"sandbox: blocked {event}" in result.output_tail
    assert "\nx\n" not in "\n" + result.output_tail  # echo never ran


# --- file system ---------------------------------------------------------------------------

def test_writing_outside_the_sandbox_is_blocked(tmp_path):
    targets = [Path("/tmp") / f"slm_sandbox_escape_{uuid.uuid4().hex}.txt",
               tmp_path / "escape.txt"]
    for target in targets:
        result = run_program(f"open({str(target)!r}, 'w').write('escaped')")
        assert result.status == "blocked", result.output_tail
        assert not target.exists()


@pytest.mark.parametrize("program", [
    "os.remove(VICTIM)",
    "os.rename(VICTIM, VICTIM + '.moved')",
    "os.rename(VICTIM, 'stolen.txt')",
    "os.chmod(VICTIM, 0o777)",
    "shutil.rmtree(os.path.dirname(VICTIM))",
    "os.mkdir(os.path.join(os.path.dirname(VICTIM), 'newdir'))",
    "os.open(VICTIM, os.O_WRONLY | os.O_TRUNC)",
    "open(VICTIM, 'a').write('x')",
    "import pathlib\npathlib.Path(VICTIM).write_text('x')",
    "os.symlink(VICTIM, 'link')\nopen('link', 'w').write('x')",
    "os.chdir(os.path.dirname(VICTIM))\nopen('other.txt', 'w').write('x')",
])
def test_mutating_files_outside_the_sandbox_is_blocked(tmp_path, program):
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    victim.chmod(0o644)
    result = run_program(f"import os, shutil\nVICTIM = {str(victim)!r}\n{program}\n")
    assert result.status == "blocked", result.output_tail
    assert victim.read_text() == "original" and (victim.stat().st_mode & 0o777) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim.txt"]


def test_reading_outside_the_sandbox_still_works(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("42")
    result = run_program(f"assert open({str(data)!r}).read() == '42'\nimport json, os\nos.listdir('/')")
    assert result.status == "passed", result.output_tail


# --- network -------------------------------------------------------------------------------

@pytest.fixture
def loopback_server():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.3)
    yield server
    server.close()


@pytest.mark.parametrize("swallow", [False, True])
def test_connecting_to_a_loopback_server_is_blocked(loopback_server, swallow):
    port = loopback_server.getsockname()[1]
    call = f"socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'escaped')"
    body = f"try:\n    {call}\nexcept Exception:\n    pass\n" if swallow else call
    result = run_program("import socket\n" + body)
    assert result.status == "blocked", result.output_tail
    with pytest.raises(socket.timeout):
        loopback_server.accept()  # the server never saw a connection


def test_name_resolution_is_blocked():
    result = run_program("import socket\nsocket.getaddrinfo('localhost', 80)")
    assert result.status == "blocked"
    assert "socket.getaddrinfo" in result.output_tail


def test_network_isolation_is_reported_and_cached():
    assert network_isolation() in ("netns", "guard")
    assert network_isolation() == network_isolation()


@pytest.mark.skipif(network_isolation() != "netns", reason="no network namespace on this machine")
def test_netns_child_has_its_own_network_namespace():
    program = "import os\nprint(os.readlink('/proc/self/ns/net'))\nprint(open('/proc/net/dev').read())"
    result = run_program(program)
    assert result.status == "passed", result.output_tail
    first, *rest = result.output_tail.splitlines()
    assert first != os.readlink("/proc/self/ns/net")
    interfaces = {ln.split(":")[0].strip() for ln in rest if ":" in ln}
    assert interfaces == {"lo"}
