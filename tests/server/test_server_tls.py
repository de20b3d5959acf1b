"""TLS and mutual TLS: a real server with certificates made for the test, clients with and without."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError
from server_helpers import ROOT, config, running

from dsl.types import Outcome
from engine.cli import main as cli
from engine.client.guard_client import GuardClient, GuardError
from engine.client.tls import ClientTls
from engine.config import Tls
from engine.guard import StartError
from engine.server.app import GuardServer

Key = ec.EllipticCurvePrivateKey


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(subject: str, key: Key, issuer: tuple[x509.Name, Key] | None, *, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(folder: Path, stem: str, cert: x509.Certificate, key: Key) -> tuple[str, str]:
    cert_path, key_path = folder / f"{stem}.pem", folder / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA, a server certificate for localhost and 127.0.0.1, and a client certificate, all from that CA."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("palisade test CA", ca_key, None, ca=True)
    files = dict(zip(("ca", "ca_key"), _write(folder, "ca", ca, ca_key), strict=True))
    for who in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(who, key, (ca.subject, ca_key), ca=False)
        files[who], files[f"{who}_key"] = _write(folder, who, cert, key)
    return files


@pytest.fixture()
def mutual(pki: dict[str, str]) -> Iterator[str]:
    tls = Tls(cert_file=pki["server"], key_file=pki["server_key"], client_ca_file=pki["ca"])
    with running(config(tls=tls)) as server:
        yield f"127.0.0.1:{server.port}"


def _check(target: str, tls: ClientTls | None) -> Outcome:
    with GuardClient(target, timeout=5.0, tls=tls) as client:
        return client.check(ruleset="server_test", text="hello").outcome


def test_a_tls_server_answers_clients_that_trust_its_ca_and_refuses_plaintext(pki: dict[str, str]) -> None:
    with running(config(tls=Tls(cert_file=pki["server"], key_file=pki["server_key"]))) as server:
        target = f"127.0.0.1:{server.port}"
        assert _check(target, ClientTls(ca_file=pki["ca"])) is Outcome.ALLOW
        for client_tls in (None, ClientTls()):  # plaintext; TLS trusting only the system's roots
            with pytest.raises(GuardError) as refused:
                _check(target, client_tls)
            assert refused.value.code is grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_needs_a_client_certificate_from_the_client_ca(mutual: str, pki: dict[str, str]) -> None:
    with pytest.raises(GuardError) as refused:
        _check(mutual, ClientTls(ca_file=pki["ca"]))
    assert refused.value.code is grpc.StatusCode.UNAVAILABLE
    tls = ClientTls(ca_file=pki["ca"], cert_file=pki["client"], key_file=pki["client_key"])
    assert _check(mutual, tls) is Outcome.ALLOW


def test_the_cli_reaches_a_mutual_tls_server_with_its_tls_flags(
    mutual: str, pki: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ask = ["ask", "--server", mutual, "--ruleset", "server_test", "--text", "hello"]
    flags = ["--tls-ca", pki["ca"], "--tls-cert", pki["client"], "--tls-key", pki["client_key"]]
    assert cli.main([*ask, *flags]) == 0
    assert '"outcome": "allow"' in capsys.readouterr().out
    assert cli.main([*ask, "--tls-ca", pki["ca"], "--tls-cert", pki["client"]]) == 2
    assert "go together" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("setting", "message"),
    [("cert_file", "cert_file .*: not PEM certificates"), ("key_file", "key_file .*: not an unencrypted")],
)
def test_a_bad_tls_file_stops_the_server_starting_and_names_it(
    pki: dict[str, str], tmp_path: Path, setting: str, message: str
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a pem file\n")
    files = {"cert_file": pki["server"], "key_file": pki["server_key"]} | {setting: str(garbage)}
    with pytest.raises(StartError, match=f"tls: {message}"):
        GuardServer(config(tls=Tls(**files)))
    with pytest.raises(StartError, match=r"tls: cert_file .*: cannot read it"):
        GuardServer(config(tls=Tls(cert_file=str(tmp_path / "none.pem"), key_file=pki["server_key"])))


def _authority(folder: Path, name: str) -> dict[str, str]:
    """A CA of its own and a server certificate from it, written into ``folder``."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _issue(name, ca_key, None, ca=True)
    files = dict(zip(("ca", "ca_key"), _write(folder, name, ca, ca_key), strict=True))
    server = _issue("server", key, (ca.subject, ca_key), ca=False)
    files["server"], files["server_key"] = _write(folder, f"{name}-server", server, key)
    return files


def test_a_reload_rotates_the_certificate_for_new_connections(tmp_path: Path) -> None:
    old, new = _authority(tmp_path, "old"), _authority(tmp_path, "new")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    cert.write_bytes(Path(old["server"]).read_bytes())
    key.write_bytes(Path(old["server_key"]).read_bytes())
    with running(config(tls=Tls(cert_file=str(cert), key_file=str(key)))) as server:
        target = f"127.0.0.1:{server.port}"
        assert _check(target, ClientTls(ca_file=old["ca"])) is Outcome.ALLOW

        cert.write_bytes(Path(new["server"]).read_bytes())
        key.write_bytes(Path(new["server_key"]).read_bytes())
        assert server.reload()
        assert _check(target, ClientTls(ca_file=new["ca"])) is Outcome.ALLOW
        with pytest.raises(GuardError) as refused:  # the old certificate is no longer presented
            _check(target, ClientTls(ca_file=old["ca"]))
        assert refused.value.code is grpc.StatusCode.UNAVAILABLE

        key.write_text("not a key\n")
        assert not server.reload()  # refused: the new certificate stays
        assert _check(target, ClientTls(ca_file=new["ca"])) is Outcome.ALLOW


def test_tls_settings_that_cannot_work_are_refused_by_the_config() -> None:
    with pytest.raises(ValidationError, match="go together"):
        Tls(cert_file="server.pem")
    with pytest.raises(ValidationError, match="mutual TLS is TLS first"):
        Tls(client_ca_file="ca.pem")


def test_the_bench_drives_a_tls_server_given_its_ca(pki: dict[str, str], tmp_path: Path) -> None:
    bench_dir = ROOT / "tests" / "cli" / "bench"
    tls = Tls(cert_file=pki["server"], key_file=pki["server_key"])
    with running(config(rulesets=str(bench_dir / "rulesets"), tls=tls)) as server:
        report = tmp_path / "bench.json"
        command = [
            sys.executable, "-m", "engine.cli.main", "bench", "--rulesets", str(bench_dir / "rulesets"),
            "--scenario", str(bench_dir / "slow_budget.toml"), "--target", f"127.0.0.1:{server.port}",
            "--tls-ca", pki["ca"], "--rate", "20", "--duration", "1", "--warmup", "0.5", "--repeat", "1",
            "--processes", "1", "--json", str(report),
        ]  # fmt: skip
        done = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: this ruleset is slower than its budget
    (ruleset,) = json.loads(report.read_text())["rulesets"]
    assert ruleset["median"]["errors"] == {} and ruleset["median"]["sent"] > 0
