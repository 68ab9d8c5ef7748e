"""Tests for slmlib.benchmarks.sandbox: real child processes under bwrap, no mocks, no network needed.

Measured on the dev machine (bwrap 0.8.0, root, Python 3.11, 2 cores): a trivial program
(`print('hi')`) takes ~0.03-0.06 s end to end; the whole file runs in ~17 s, dominated by
the deliberate 1-2 s wall/CPU-limit tests and the harness-kill tests.

The "escape" tests are the cases of issue 16 (hostile input): each one failed on the
sandbox before bwrap (an in-process audit hook over ``unshare -rn``).
"""
from __future__ import annotations

import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from slmlib.benchmarks import coding, sandbox  # noqa: E402
from slmlib.benchmarks.sandbox import Limits, SandboxUnavailable, isolation, run_program  # noqa: E402

# A process started with _posixsubprocess.fork_exec (no audit event, so the audit hook never
# sees it), in a session of its own, sleeping with MARKER in its argv so the host can find it.
SPAWN = """
import _posixsubprocess, os, sys
def spawn(marker, seconds=30, setsid=True):
    r, w = os.pipe()
    args = [sys.executable, "-c", "import time; time.sleep(%d)" % seconds, marker]
    return _posixsubprocess.fork_exec(args, [os.fsencode(sys.executable)], True, (w,), None, None,
                                      -1, -1, -1, -1, -1, -1, r, w, False, setsid, -1, None, None, None,
                                      -1, None, False)
"""


def _marked(marker: str) -> list[int]:
    """Host pids of live processes whose command line holds ``marker``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{pid}/stat", "rb") as f:
                zombie = f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
        except OSError:
            continue
        if marker.encode() in cmdline and not zombie and int(pid) != os.getpid():
            found.append(int(pid))
    return found


def _survivors(marker: str, grace: float = 2.0) -> list[int]:
    """Processes holding ``marker`` still alive after ``grace`` seconds; they are killed (test hygiene)."""
    deadline = time.monotonic() + grace
    while (alive := _marked(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    return alive


def _harness(program: str, limits: str = "Limits()") -> subprocess.Popen:
    """A separate harness process running ``program`` in the sandbox and printing the status."""
    code = ("import sys\nfrom slmlib.benchmarks.sandbox import Limits, run_program\n"
            f"r = run_program(sys.argv[1], {limits})\nprint('STATUS', r.status, flush=True)\n")
    return subprocess.Popen([sys.executable, "-c", code, program], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


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


def test_child_is_isolated_python_in_its_own_namespaces(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    monkeypatch.setenv("SLM_SECRET_TOKEN", "leak")
    program = f"""
import os, sys
cwd = os.getcwd()
assert sys.flags.isolated == 1 and sys.flags.no_site and sys.flags.dont_write_bytecode
assert cwd == "/sandbox" and os.environ["HOME"] == cwd and os.environ["TMPDIR"] == cwd
assert os.environ["PYTHONDONTWRITEBYTECODE"] == "1"
assert not any("proxy" in k.lower() for k in os.environ), sorted(os.environ)
assert "SLM_SECRET_TOKEN" not in os.environ
assert sys.stdin.read() == ""
assert os.getpid() == 2 and os.getppid() == 1  # a PID namespace: bwrap's init, then the program
assert sorted(p for p in os.listdir("/proc") if p.isdigit()) == ["1", "2"]
assert sorted(os.listdir("/proc/self/fd")) == ["0", "1", "2", "3"]  # 3: the listing itself
status = open("/proc/self/status").read()
assert "CapEff:\\t0000000000000000" in status and "NoNewPrivs:\\t1" in status
assert os.getuid() != 0 or {os.geteuid() != 0}
for hidden in ({str(ROOT)!r}, {str(Path.home() / ".cache")!r}, {sys.prefix!r}):
    assert not os.path.exists(hidden), hidden
assert os.path.isdir({sys.base_prefix!r}) and not os.access({sys.base_prefix!r}, os.W_OK)
assert os.listdir(cwd) == ["program.py"]
"""
    result = run_program(program)
    assert result.status == "passed", result.output_tail


def test_writing_inside_the_sandbox_dir_works():
    program = """
import os, shutil, tempfile
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
"""
    result = run_program(program)
    assert result.status == "passed", result.output_tail


def test_the_working_directory_is_size_bounded():
    program = "for i in range(8):\n    open(f'f{i}', 'wb').write(b'0' * 1024**2)\n"
    result = run_program(program, Limits(workdir_mb=4))
    assert result.status == "failed" and "No space left on device" in result.output_tail


# --- runaway programs ----------------------------------------------------------------------

def test_infinite_loop_times_out_and_parent_regains_control():
    program = "import time\nwhile True:\n    time.sleep(0.05)\n"
    result = run_program(program, Limits(cpu_seconds=1, wall_seconds=2))
    assert result.status == "timeout" and result.returncode is None
    assert 2.0 <= result.duration_s < 3.5


def test_busy_loop_hits_wall_timeout():
    result = run_program("while True:\n    pass\n", Limits(cpu_seconds=5, wall_seconds=1))
    assert result.status == "timeout"
    assert result.duration_s < 2.5


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


# --- process creation (the audit hook, second layer) -----------------------------------------

def test_fork_bomb_is_blocked():
    result = run_program("import os\nwhile True:\n    os.fork()\n", Limits(wall_seconds=2))
    assert result.status == "blocked", result.output_tail
    assert "SandboxViolation" in result.output_tail and "os.fork" in result.output_tail


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
    "os.chdir('/')\nopen(VICTIM[1:], 'a').write('x')",
])
def test_mutating_files_outside_the_sandbox_is_blocked(tmp_path, program):
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    victim.chmod(0o644)
    result = run_program(f"import os, shutil\nVICTIM = {str(victim)!r}\n{program}\n")
    assert result.status == "blocked", result.output_tail
    assert victim.read_text() == "original" and (victim.stat().st_mode & 0o777) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim.txt"]


def test_host_files_are_invisible_but_the_standard_library_is_readable(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("42")
    program = (f"import json, os\nassert not os.path.exists({str(data)!r})\n"
               "assert 'json' in open(json.__file__.replace('__init__.py', '__init__.py')).read()\n")
    result = run_program(program)
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


def test_child_has_its_own_network_namespace():
    program = "import os\nprint(os.readlink('/proc/self/ns/net'))\nprint(open('/proc/net/dev').read())"
    result = run_program(program)
    assert result.status == "passed", result.output_tail
    first, *rest = result.output_tail.splitlines()
    assert first != os.readlink("/proc/self/ns/net")
    interfaces = {ln.split(":")[0].strip() for ln in rest if ":" in ln}
    assert interfaces == {"lo"}


# --- isolation in force, and none without bwrap ------------------------------------------------

def test_isolation_names_bwrap_and_its_namespaces():
    described = isolation()
    assert described.startswith("bwrap ") and "pid, mount, net" in described
    assert ("unprivileged uid" in described) == (os.geteuid() == 0)


def test_without_bwrap_nothing_runs_and_the_error_names_the_fix(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    sandbox._bwrap.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
            run_program("print('scored')")
    finally:
        sandbox._bwrap.cache_clear()


# --- issue 16: hostile programs ------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_pidfd_signal_to_the_parent_leaves_the_harness_alive(sig):
    program = f"import os, signal\nsignal.pidfd_send_signal(os.pidfd_open(os.getppid()), {int(sig)})\n"
    harness = _harness(program)
    out, _ = harness.communicate(timeout=60)
    assert harness.returncode == 0, out
    assert "STATUS failed" in out


def test_setsid_fork_exec_does_not_outlive_the_wall_clock_kill():
    marker = f"slm-sbx-{uuid.uuid4().hex}"
    program = SPAWN + f"spawn({marker!r})\nimport time\ntime.sleep(30)\n"
    result = run_program(program, Limits(wall_seconds=1.5))
    assert result.status == "timeout"
    assert _survivors(marker) == []


def test_a_finished_program_leaves_no_process_behind():
    marker = f"slm-sbx-{uuid.uuid4().hex}"
    result = run_program(SPAWN + f"spawn({marker!r})\n")
    assert result.status == "passed", result.output_tail
    assert _survivors(marker) == []


def test_rewriting_the_audit_hooks_closure_escapes_nothing(tmp_path):
    marker = f"slm-sbx-{uuid.uuid4().hex}"
    target = tmp_path / "escaped.txt"
    program = f"""
import os, subprocess, sys
hook = sys._getframe(1).f_locals["hook"]  # the bootstrap's frame
for cell in hook.__closure__:
    if getattr(cell.cell_contents, "__name__", "") == "refuse":
        cell.cell_contents = lambda *args: None
if os.fork() == 0:
    os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(30)", {marker!r}])
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", {marker!r}], start_new_session=True)
open({str(target)!r}, "w").write("escaped")
"""
    result = run_program(program, Limits(wall_seconds=5))
    assert not result.passed
    assert "No such file or directory" in result.output_tail
    assert not target.exists()
    assert _survivors(marker) == []


def test_open_with_dir_fd_cannot_write_outside(tmp_path):
    program = (f"import os\nd = os.open({str(tmp_path)!r}, os.O_RDONLY)\n"
               "os.close(os.open('escaped.txt', os.O_WRONLY | os.O_CREAT, dir_fd=d))\n")
    result = run_program(program)
    assert not result.passed
    assert list(tmp_path.iterdir()) == []


def test_patching_joinrealpath_cannot_write_outside(tmp_path):
    target = tmp_path / "escaped.txt"
    program = ("import os, posixpath\n"
               "posixpath._joinrealpath = lambda path, rest, strict, seen: (os.getcwd() + '/x', True)\n"
               f"open({str(target)!r}, 'w').write('escaped')\n")
    result = run_program(program)
    assert not result.passed
    assert not target.exists()


def test_a_fork_bomb_that_bypasses_the_hook_is_bounded_by_the_kernel():
    marker = f"slm-sbx-{uuid.uuid4().hex}"
    program = SPAWN + f"""
started = 0
try:
    for _ in range(40):
        spawn({marker!r}, seconds=20, setsid=False)
        started += 1
except OSError as e:
    print("refused:", e)
print("started", started)
"""
    result = run_program(program, Limits(max_processes=8, wall_seconds=10))
    assert result.status == "passed", result.output_tail
    assert "Resource temporarily unavailable" in result.output_tail
    started = int(result.output_tail.split("started ")[1].split()[0])
    assert started < 8
    assert result.duration_s < 5
    assert _survivors(marker) == []


EXITS = ["exit()", "quit()", "import sys\nsys.exit(0)", "import sys\nsys.exit()", "raise SystemExit",
         "import os\nos._exit(0)", "import sys\nsys.exit('done')"]


@pytest.mark.parametrize("early_exit", EXITS)
def test_exiting_before_the_tests_end_fails(early_exit):
    result = run_program(SOLUTION.replace("nlargest", "nsmallest") + early_exit + "\n" + TESTS)
    assert result.status == "failed" and not result.passed
    if result.returncode == 0:
        assert "stopped before its end" in result.output_tail


@pytest.mark.parametrize("early_exit", EXITS)
def test_an_early_exit_in_a_completion_scores_zero(early_exit):
    completion = "    return 0\n" + "".join(f"{ln}\n" for ln in early_exit.splitlines())
    humaneval = {"prompt": "def add(a, b):\n", "entry_point": "add",
                 "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n"}
    mbpp = {"test_list": ["assert add(1, 2) == 3"], "test_setup_code": ""}
    assert coding.humaneval_pass(humaneval, [completion]) == {"pass@1": 0.0}
    assert coding.mbpp_pass(mbpp, ["def add(a, b):\n" + completion]) == {"pass@1": 0.0}


def test_faking_the_blocked_exit_code_is_just_a_failure():
    result = run_program("import os\nos._exit(120)")
    assert result.status == "failed" and result.returncode == 120


def test_printing_a_guessed_end_marker_does_not_pass():
    program = "import os\nos.write(1, b'\\n' + b'0' * 32 + b':end\\n')\nos._exit(0)\n"
    result = run_program(program)
    assert result.status == "failed"


def test_killing_the_harness_leaves_no_folder_and_no_process():
    before = set(Path("/tmp").glob("slm_sbx_*"))
    harness = _harness("import time\ntime.sleep(30)\n", "Limits(wall_seconds=60)")
    deadline = time.monotonic() + 10
    while not (children := _descendants(harness.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let the sandbox start its program
    children = _descendants(harness.pid)
    assert children
    harness.kill()
    harness.wait()
    deadline = time.monotonic() + 2
    while (alive := [p for p in children if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert alive == []
    assert set(Path("/tmp").glob("slm_sbx_*")) == before


def _descendants(pid: int) -> list[int]:
    """Host pids below ``pid`` in the process tree."""
    parents = {}
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                parents[int(p)] = int(f.read().rsplit(b")", 1)[1].split()[1])
        except OSError:
            continue
    found, frontier = [], [pid]
    while frontier:
        kids = [c for c, parent in parents.items() if parent in frontier]
        found += kids
        frontier = kids
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


# --- honest solutions ----------------------------------------------------------------------

def _canonical(name: str, solution_key: str, n: int) -> list[tuple[dict, str]]:
    from slmlib.benchmarks import get_benchmark
    from slmlib.datapacks import DataPackError
    from slmlib.evaluate import suites
    bench = get_benchmark(name)
    try:
        docs = bench.load(suites.verify(bench)[1])
    except DataPackError as exc:
        pytest.skip(f"data pack {bench.pack} missing; run `make setup`: {exc}")
    step = len(docs) // n
    return [(d, d[solution_key]) for d in docs[::step][:n]]


def test_canonical_humaneval_solutions_pass():
    for doc, solution in _canonical("humaneval", "canonical_solution", 12):
        assert coding.humaneval_pass(doc, [solution]) == {"pass@1": 1.0}, doc["task_id"]


def test_canonical_mbpp_solutions_pass():
    for doc, solution in _canonical("mbpp", "code", 12):
        assert coding.mbpp_pass(doc, [solution]) == {"pass@1": 1.0}, doc["task_id"]
