"""Real registries that demand credentials (test helpers).

- ``basic_tls_registry``: the distribution registry with htpasswd (bcrypt) auth over TLS, with a
  self-signed certificate for 127.0.0.1.
- ``bearer_registry``: the registry with token auth, and a token issuer written for the tests that
  checks Basic credentials and signs RS256 JWTs the registry verifies against our certificate, as
  GHCR's and Docker Hub's token services do.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import textwrap
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, urlparse
import ipaddress

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from stacks import running_registry


def _key_and_cert(folder: Path) -> tuple[rsa.RSAPrivateKey, x509.Certificate, Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return key, cert, cert_path, key_path


@contextmanager
def basic_tls_registry(binary: str, folder: Path, user: str, password: str) -> Iterator[tuple[str, Path]]:
    """Yield (host, CA certificate path)."""
    _, _, cert_path, key_path = _key_and_cert(folder)
    htpasswd = folder / "htpasswd"
    htpasswd.write_text(f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}\n")
    auth = f"auth:\n  htpasswd: {{realm: stack-tests, path: {htpasswd}}}\n"
    with running_registry(binary, folder, tls=(cert_path, key_path), auth=auth) as host:
        yield host, cert_path


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@contextmanager
def token_issuer(key: rsa.RSAPrivateKey, cert: x509.Certificate, user: str, password: str,
                 issuer: str, service: str) -> Iterator[tuple[str, dict[str, int]]]:
    """A token service: Basic credentials in, a signed JWT with the requested access out."""
    counts = {"issued": 0, "refused": 0}
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.headers.get("Authorization") != expected:
                counts["refused"] += 1
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            query = parse_qs(urlparse(self.path).query)
            access = []
            for scope in query.get("scope", []):
                for item in scope.split(" "):
                    parts = item.split(":")
                    if len(parts) >= 3:
                        access.append({"type": parts[0], "name": ":".join(parts[1:-1]), "actions": parts[-1].split(",")})
            now = int(time.time())
            header = {"alg": "RS256", "typ": "JWT", "x5c": x5c}
            claims = {"iss": issuer, "sub": user, "aud": service, "exp": now + 300, "nbf": now - 10, "iat": now,
                      "jti": secrets.token_hex(8), "access": access}
            signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
            signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
            body = json.dumps({"token": f"{signing_input}.{_b64(signature)}", "expires_in": 300}).encode()
            counts["issued"] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/token", counts
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def bearer_registry(binary: str, folder: Path, user: str, password: str) -> Iterator[tuple[str, dict[str, int]]]:
    """Yield (host, token issuer counters): a plain-HTTP loopback registry that demands Bearer tokens."""
    key, cert, cert_path, _ = _key_and_cert(folder)
    with token_issuer(key, cert, user, password, issuer="stack-tests-issuer", service="stack-tests") as (realm, counts):
        auth = textwrap.dedent(f"""\
            auth:
              token:
                realm: {realm}
                service: stack-tests
                issuer: stack-tests-issuer
                rootcertbundle: {cert_path}
            """)
        with running_registry(binary, folder, auth=auth) as host:
            yield host, counts
