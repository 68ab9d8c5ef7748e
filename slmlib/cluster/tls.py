"""TLS for a cluster across machines: a self-signed CA and one certificate it signs, shared by the
scheduler, the workers and the client of a small group (`make_ca`), and the `distributed` security
object that uses them and refuses unencrypted connections (`security`).

Reads and writes the certificate folder only: `ca.pem` (the CA's certificate; its key is not kept),
`cluster.pem` and `cluster-key.pem` (the group's certificate and key, 0600). Copy the folder to
every machine of the group; a machine without it cannot join, nor can one holding another CA's."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from .. import artifacts

FILES = {"ca": "ca.pem", "cert": "cluster.pem", "key": "cluster-key.pem"}


def make_ca(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), days: int = 365,
            overwrite: bool = False) -> dict[str, Path]:
    """Write a new CA and a certificate+key it signs for `hosts` (IP addresses or DNS names: the
    scheduler's and workers' addresses) into `directory`; returns the paths by role (`FILES`). Refuses a
    folder that already holds a CA unless `overwrite`: replacing it locks out every machine holding the old one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory = Path(directory)
    out = {role: directory / name for role, name in FILES.items()}
    existing = [p.name for p in out.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{directory} already holds a cluster CA ({', '.join(existing)}); machines with "
                              "its certificate would be locked out; choose another folder, or overwrite it on purpose")
    if not hosts:
        raise ValueError("hosts: name at least one address or host name of the scheduler and workers")
    names = [_san(h, x509) for h in hosts]
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)  # 5 min of clock skew

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SLM Study cluster CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SLM Study cluster")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))

    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = serialization.Encoding.PEM
    artifacts.write_bytes_atomic(out["key"], key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                               serialization.NoEncryption()), mode=0o600)
    artifacts.write_bytes_atomic(out["cert"], cert.public_bytes(pem))
    artifacts.write_bytes_atomic(out["ca"], ca.public_bytes(pem))  # last: its presence marks a complete folder
    return out


def _san(host: str, x509):
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def security(directory: Path):
    """`distributed.security.Security` for the scheduler, a worker or the client, from a folder `make_ca`
    wrote; every connection must be TLS (`require_encryption`)."""
    from distributed.security import Security

    files = {role: Path(directory) / name for role, name in FILES.items()}
    missing = [p.name for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"TLS: {Path(directory)} lacks {', '.join(missing)}; copy the folder made by "
                                "make_ca on the first machine (the same CA on every machine), or make one")
    ca, cert, key = (str(files[r]) for r in ("ca", "cert", "key"))
    return Security(require_encryption=True, tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key,
                    tls_scheduler_cert=cert, tls_scheduler_key=key, tls_worker_cert=cert, tls_worker_key=key)
