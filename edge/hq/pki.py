"""The fleet's certificate authority: one CA, a broker certificate, one client certificate per identity.

The broker trusts exactly this CA and takes each client's certificate CN (`device-<id>`, `handheld-<id>`,
`hq-<id>`) as its MQTT username, so a certificate *is* the client's identity on the broker; the ACL does
the rest. Keys are ECDSA P-256 (every TLS stack on a Jetson and in a broker speaks it); private keys are
written 0600.
"""

import datetime as dt
import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge.errors import EdgeError
from edge.fsio import write_atomic
from edge.protocol.topics import Identity

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
BROKER_CERT = "broker.crt"
BROKER_KEY = "broker.key"
BROKER_CN = "edge-broker"


class PkiError(EdgeError):
    """A CA or certificate file is missing, unreadable, or would be overwritten."""


@dataclass(frozen=True)
class ClientFiles:
    """What a client needs to connect: the CA to trust, its certificate and its private key."""

    ca: Path
    cert: Path
    key: Path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_atomic(path, data, mode=0o600)


def _write_public(path: Path, data: bytes) -> None:
    write_atomic(path, data, mode=0o644)


def _refuse_existing(paths: Sequence[Path], force: bool) -> None:
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise PkiError(f"{', '.join(existing)} already exist(s); choose another --out or pass --force to replace")


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edge fleet"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in dict.fromkeys(["localhost", "127.0.0.1", *names]):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _leaf(
    subject: str,
    public: ec.EllipticCurvePublicKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    usage: x509.ObjectIdentifier,
    not_before: dt.datetime,
    not_after: dt.datetime,
    san: x509.SubjectAlternativeName | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_encipherment=False, content_commitment=False, data_encipherment=False,
                key_agreement=True, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def init_ca(out: Path, broker_names: Sequence[str] = (), days: int = 3650, force: bool = False) -> Path:
    """Create the fleet CA and the broker's certificate in `out`; return `out`.

    The broker certificate names `localhost`, 127.0.0.1 and every `broker_names` entry (DNS name or IP).
    Only ca.crt, broker.crt and broker.key belong on the broker; keep ca.key offline.
    """
    out.mkdir(parents=True, exist_ok=True)
    _refuse_existing([out / CA_KEY, out / CA_CERT], force)
    now = _now() - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"edge fleet CA {secrets.token_hex(4)}")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, key_encipherment=False, content_commitment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(out / CA_KEY, ca_key)
    _write_public(out / CA_CERT, ca_cert.public_bytes(serialization.Encoding.PEM))
    broker_key = ec.generate_private_key(ec.SECP256R1())
    broker_cert = _leaf(
        BROKER_CN, broker_key.public_key(), ca_cert, ca_key, ExtendedKeyUsageOID.SERVER_AUTH,
        now, now + dt.timedelta(days=min(days, 825)), _san(broker_names),
    )
    _write_private(out / BROKER_KEY, broker_key)
    _write_public(out / BROKER_CERT, broker_cert.public_bytes(serialization.Encoding.PEM))
    return out


def load_ca(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate((ca_dir / CA_CERT).read_bytes())
        key = serialization.load_pem_private_key((ca_dir / CA_KEY).read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise PkiError(
            f"cannot read the CA in {ca_dir} ({exc}); create one with `edge hq pki init --out {ca_dir}`"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{ca_dir / CA_KEY} is not an EC key made by `edge hq pki init`")
    return cert, key


def issue(
    ca_dir: Path,
    identity: Identity,
    out: Path,
    days: int = 825,
    not_before: dt.datetime | None = None,
    force: bool = False,
) -> ClientFiles:
    """Issue a client certificate whose CN is `identity.name`; write `<name>.crt`, `<name>.key` and `ca.crt` to `out`.

    `not_before` (default: now) with `days` sets the validity window; tests use a past window to make an
    expired certificate.
    """
    ca_cert, ca_key = load_ca(ca_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = ClientFiles(out / CA_CERT, out / f"{identity.name}.crt", out / f"{identity.name}.key")
    _refuse_existing([files.cert, files.key], force)
    start = (not_before or _now()) - dt.timedelta(minutes=5)
    end = start + dt.timedelta(days=days)
    if end > ca_cert.not_valid_after_utc:
        end = ca_cert.not_valid_after_utc
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _leaf(identity.name, key.public_key(), ca_cert, ca_key, ExtendedKeyUsageOID.CLIENT_AUTH, start, end)
    _write_private(files.key, key)
    _write_public(files.cert, cert.public_bytes(serialization.Encoding.PEM))
    if files.ca.resolve() != (ca_dir / CA_CERT).resolve():
        _write_public(files.ca, ca_cert.public_bytes(serialization.Encoding.PEM))
    return files
