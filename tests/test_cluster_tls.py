"""TLS for a cluster (slmlib/cluster/tls.py): the CA folder `make_ca` writes, and a real scheduler and workers,
each a process of its own on loopback: a worker holding the group's certificate joins and runs a client's
function; a worker with another CA's certificate, one without a certificate and a plain tcp:// client do not."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import distributed
import pytest
from cryptography import x509

from slmlib.cluster import tls


def test_make_ca_writes_a_ca_and_a_certificate_it_signs_with_a_private_key(tmp_path):
    files = tls.make_ca(tmp_path / "tls", hosts=("127.0.0.1", "node-1.example"))
    assert set(files) == {"ca", "cert", "key"} and all(p.is_file() for p in files.values())
    assert stat.S_IMODE(files["key"].stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700
    ca = x509.load_pem_x509_certificate(files["ca"].read_bytes())
    cert = x509.load_pem_x509_certificate(files["cert"].read_bytes())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == ["node-1.example"]
    assert not list(tmp_path.joinpath("tls").glob(".*"))  # no temp files left


def test_make_ca_refuses_to_replace_a_ca_unless_asked(tmp_path):
    first = tls.make_ca(tmp_path)
    before = first["ca"].read_bytes()
    with pytest.raises(FileExistsError, match="already holds a cluster CA.*locked out"):
        tls.make_ca(tmp_path)
    assert first["ca"].read_bytes() == before
    assert tls.make_ca(tmp_path, overwrite=True)["ca"].read_bytes() != before


def test_security_requires_encryption_and_names_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="lacks ca.pem, cluster.pem, cluster-key.pem.*make_ca"):
        tls.security(tmp_path)
    tls.make_ca(tmp_path)
    sec = tls.security(tmp_path)
    assert sec.require_encryption and sec.tls_ca_file == str(tmp_path / "ca.pem")
    assert sec.tls_worker_cert == sec.tls_scheduler_cert == sec.tls_client_cert == str(tmp_path / "cluster.pem")


def tls_args(folder) -> list[str]:
    return ["--tls-ca-file", str(folder / "ca.pem"), "--tls-cert", str(folder / "cluster.pem"),
            "--tls-key", str(folder / "cluster-key.pem")]


def start_scheduler(folder, log, procs: list, *options: str) -> str:
    """A Dask scheduler on loopback as a process (appended to `procs`), its scheduler file in `folder`; its
    address. It ends after 2 idle minutes, and ends its workers, even if the test process is killed."""
    scheduler_file = folder / "scheduler.json"
    procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                   "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file),
                                   "--idle-timeout", "120s", *options], stdout=log, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 30
    while not scheduler_file.exists() and time.monotonic() < deadline and procs[-1].poll() is None:
        time.sleep(0.2)
    return json.loads(scheduler_file.read_text())["address"]


def stop(proc: subprocess.Popen) -> None:
    """Terminate a process (killed after 20 s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def worker(address: str, name: str, log, extra: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--no-nanny", "--nthreads",
                             "1", "--no-dashboard", "--name", name, "--death-timeout", "5", *extra],
                            stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A TLS scheduler and one worker with the group's certificate, as processes; the CA folder and address."""
    root = tmp_path_factory.mktemp("tls-cluster")
    folder = root / "group"
    tls.make_ca(folder)
    log = open(root / "cluster.log", "w")
    procs = []
    try:
        address = start_scheduler(root, log, procs, "--protocol", "tls", *tls_args(folder))
        assert address.startswith("tls://127.0.0.1:")
        procs.append(worker(address, "member", log, tls_args(folder)))
        yield folder, address, root
    finally:
        for proc in reversed(procs):  # the worker first: it leaves while its scheduler is there
            stop(proc)
        log.close()


def workers_seen(folder, address) -> list[str]:
    with distributed.Client(address, security=tls.security(folder), timeout=10) as client:
        client.wait_for_workers(1, timeout=20)
        return sorted(w["name"] for w in client.scheduler_info()["workers"].values())


def test_a_worker_with_the_groups_certificate_runs_a_clients_function(cluster):
    folder, address, _ = cluster
    with distributed.Client(address, security=tls.security(folder), timeout=10) as client:
        client.wait_for_workers(1, timeout=20)
        pid = client.submit(os.getpid, pure=False).result(timeout=10)
        assert pid != os.getpid()  # it ran in the worker's process
        assert client.submit(sum, [1, 2, 3]).result(timeout=10) == 6


@pytest.mark.parametrize("credentials", ["another CA", "no certificate", "plain tcp"])
def test_a_worker_without_the_groups_certificate_cannot_join(cluster, tmp_path, credentials):
    folder, address, root = cluster
    extra = tls_args(tls.make_ca(tmp_path / "other")["ca"].parent) if credentials == "another CA" else []
    target = address.replace("tls://", "tcp://") if credentials == "plain tcp" else address
    with open(tmp_path / "outsider.log", "w") as log:
        proc = worker(target, "outsider", log, extra)
        try:
            code = proc.wait(timeout=20)  # gives up after its death timeout (5 s) or fails at once
        finally:
            if proc.poll() is None:
                proc.kill()
    assert code != 0
    assert workers_seen(folder, address) == ["member"]
    if credentials == "another CA":
        assert "TLS handshake failed" in (root / "cluster.log").read_text()


def test_a_plain_tcp_client_cannot_connect(cluster):
    _, address, _ = cluster
    started = time.monotonic()
    with pytest.raises((OSError, TimeoutError)):
        distributed.Client(address.replace("tls://", "tcp://"), timeout=5)
    assert time.monotonic() - started < 15
