"""A second Docker engine beside the first one (test helper).

``running_engine`` starts a second ``dockerd`` with its own data root, exec root, Linux bridge and
unix socket, plus a TCP socket on loopback that demands a client certificate (``--tlsverify``).
``make_tls`` makes the certificates it uses, in Docker's ``DOCKER_CERT_PATH`` layout.

The engine stops what it started by its pid only, and never touches the first engine's ``docker0``
(it never runs with ``--bridge=none``, which would delete it). Starting one takes 1 to 3 s, so tests
share one per module.
"""
from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import docker
import docker.tls
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from docker.constants import MINIMUM_DOCKER_API_VERSION
from stacks import free_port, machine_lock, release_port

LOG = logging.getLogger(__name__)

START_S = 60.0
STOP_S = 30.0
UNIX_PATH_MAX = 100  # sun_path holds 108 bytes; keep a margin
_CALLS = count()


# --- certificates ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class TlsFiles:
    """The three DOCKER_CERT_PATH-style folders, each with ca.pem, cert.pem and key.pem."""

    server: Path
    client: Path
    wrong: Path  # a client certificate from an unrelated CA (its ca.pem is still the real CA)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    public = key.public_key()
    cert = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _leaf(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, common_name: str, *,
          server: bool) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False, key_agreement=False,
                                            key_cert_sign=False, crl_sign=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_set(folder: Path, ca_cert: x509.Certificate, key: ec.EllipticCurvePrivateKey,
               cert: x509.Certificate) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ca.pem").write_bytes(_pem(ca_cert))
    (folder / "cert.pem").write_bytes(_pem(cert))
    key_path = folder / "key.pem"
    key_path.touch(mode=0o600)
    key_path.chmod(0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))


def make_tls(folder: Path) -> TlsFiles:
    """A throwaway CA with a server (127.0.0.1, localhost) and a client certificate, plus a client
    certificate from an unrelated CA, written as folder/{server,client,wrong}/{ca,cert,key}.pem."""
    ca_key, ca_cert = _ca("second-engine test CA")
    other_key, other_cert = _ca("unrelated test CA")
    files = TlsFiles(server=folder / "server", client=folder / "client", wrong=folder / "wrong")
    _write_set(files.server, ca_cert, *_leaf(ca_key, ca_cert, "127.0.0.1", server=True))
    _write_set(files.client, ca_cert, *_leaf(ca_key, ca_cert, "second-engine client", server=False))
    _write_set(files.wrong, ca_cert, *_leaf(other_key, other_cert, "wrong client", server=False))
    return files


# --- the engine -----------------------------------------------------------------------------------

class SecondEngine:
    """A running second dockerd: where it answers, its certificates, and ``stop()``."""

    def __init__(self, proc: subprocess.Popen[bytes], *, unix_url: str, tcp_url: str, tls: TlsFiles,
                 log: Path, exec_root: Path) -> None:
        self._proc = proc
        self._exec_root = exec_root
        self.unix_url = unix_url
        self.tcp_url = tcp_url
        self.tls = tls
        self.pid = proc.pid
        self.log = log

    def __repr__(self) -> str:
        return f"SecondEngine(pid={self.pid}, tcp_url={self.tcp_url!r}, unix_url={self.unix_url!r})"

    @property
    def running(self) -> bool:
        """Whether this dockerd process is still alive."""
        return self._proc.poll() is None

    def env(self, tls_dir: Path | None = None) -> dict[str, str]:
        """DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH for the TCP endpoint.

        The docker CLI takes these as they are. The docker SDK does too, but requests lets a
        REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE in the environment replace the SDK's CA (psf/requests#3829),
        so an SDK client made from them needs ``client.api.trust_env = False``.
        """
        return {"DOCKER_HOST": self.tcp_url, "DOCKER_TLS_VERIFY": "1",
                "DOCKER_CERT_PATH": str(tls_dir or self.tls.client)}

    def client(self, tls_dir: Path | None = None, *, timeout: int = 60,
               version: str | None = None) -> docker.DockerClient:
        """A docker SDK client for the TCP endpoint with the client certificate in ``tls_dir``.

        With ``version`` None it asks the engine for its API version first, so a refused certificate
        fails here already. The client ignores REQUESTS_CA_BUNDLE and proxies from the environment.
        """
        if version is None:
            with closing(self._client(tls_dir, timeout, MINIMUM_DOCKER_API_VERSION)) as probe:
                version = str(probe.api.version(api_version=False)["ApiVersion"])
        return self._client(tls_dir, timeout, version)

    def _client(self, tls_dir: Path | None, timeout: int, version: str) -> docker.DockerClient:
        folder = tls_dir or self.tls.client
        tls = docker.tls.TLSConfig(client_cert=(str(folder / "cert.pem"), str(folder / "key.pem")),
                                   ca_cert=str(folder / "ca.pem"), verify=True)
        client = docker.DockerClient(base_url=self.tcp_url, tls=tls, timeout=timeout, version=version)
        client.api.trust_env = False  # else REQUESTS_CA_BUNDLE would replace our CA (psf/requests#3829)
        return client

    def stop(self) -> None:
        """Stop this dockerd (SIGTERM, SIGKILL after 30 s); does nothing once it has stopped."""
        if self._proc.poll() is None:
            LOG.info("stopping the second dockerd (pid %d)", self.pid)
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                LOG.warning("the second dockerd (pid %d) ignored SIGTERM for %.0f s; killing it", self.pid, STOP_S)
                self._proc.kill()
                self._proc.wait(timeout=STOP_S)
        _kill_own_containerd(self._exec_root)


def _kill_own_containerd(exec_root: Path) -> None:
    """Kill the containerd this dockerd started, if it outlived it (only after a SIGKILL)."""
    pidfile = exec_root / "containerd" / "containerd.pid"
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if str(exec_root).encode() in cmdline:  # that pid is still our containerd, not a reused one
        LOG.warning("killing the second engine's leftover containerd (pid %d)", pid)
        os.kill(pid, signal.SIGKILL)


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def _used_networks() -> list[ipaddress.IPv4Network]:
    networks: list[ipaddress.IPv4Network] = []
    for entry in json.loads(_ip("-j", "-4", "addr", "show").stdout or "[]"):
        for info in entry.get("addr_info", []):
            networks.append(ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False))
    for route in json.loads(_ip("-j", "-4", "route", "show").stdout or "[]"):
        if route.get("dst", "default") != "default":
            networks.append(ipaddress.IPv4Network(route["dst"], strict=False))
    return networks


def _create_bridge(name: str) -> tuple[str, str]:
    """Create a bridge of this call's own with an address in a free 172.30.n.0/24: (name, address)."""
    pid = os.getpid()
    with machine_lock("second-engine-bridge"):  # two workers must not pick the same name or subnet
        while True:
            bridge = f"sb-{name[:5]}-{pid % 1000}-{next(_CALLS)}"[:15]
            if _ip("link", "show", bridge).returncode != 0:
                break
        used = _used_networks()
        for step in range(250):
            n = (pid + step) % 250 + 1
            subnet = ipaddress.IPv4Network(f"172.30.{n}.0/24")
            if not any(subnet.overlaps(other) for other in used):
                break
        else:
            raise RuntimeError("no free 172.30.n.0/24 for the second engine's bridge")
        address = f"172.30.{n}.1/24"
        for args in (("link", "add", "name", bridge, "type", "bridge"), ("addr", "add", address, "dev", bridge),
                     ("link", "set", bridge, "up")):
            done = _ip(*args)
            if done.returncode != 0:
                _ip("link", "delete", bridge)
                raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    LOG.info("created bridge %s with %s", bridge, address)
    return bridge, address


def _delete_bridge(bridge: str) -> None:
    done = _ip("link", "delete", bridge)
    if done.returncode != 0 and _ip("link", "show", bridge).returncode == 0:
        LOG.warning("could not delete bridge %s: %s", bridge, done.stderr.strip())


def _unmount_under(*roots: Path) -> None:
    """Unmount what a killed dockerd may have left mounted under its own folders, deepest first."""
    prefixes = [str(root.resolve()) for root in roots]
    points: list[str] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")  # octal escapes such as \040
        if any(point == prefix or point.startswith(prefix + "/") for prefix in prefixes):
            points.append(point)
    for point in sorted(points, key=len, reverse=True):
        LOG.warning("unmounting leftover %s", point)
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def _pings(path: str) -> bool:
    connection = _UnixConnection(path, timeout=2.0)
    try:
        connection.request("GET", "/_ping")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2.0):
            return True
    except OSError:
        return False


def _wait_until_ready(proc: subprocess.Popen[bytes], sock: str, port: int, log: Path) -> None:
    deadline = time.monotonic() + START_S
    problem = f"neither /_ping on {sock} nor 127.0.0.1:{port} answered within {START_S:.0f} s"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            problem = f"it exited with code {proc.returncode}"
            break
        if _pings(sock) and _listens(port):
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace").strip()[-4000:] if log.exists() else ""
    raise RuntimeError(f"the second dockerd did not start: {problem}; its log ({log}):\n{tail or '(empty)'}")


@contextmanager
def running_engine(folder: Path, *, name: str = "b") -> Iterator[SecondEngine]:
    """A second dockerd with its own state, bridge, unix socket and TLS-verified TCP socket.

    Its files live in ``folder`` (log in folder/dockerd.log, certificates in folder/tls); its exec root
    in a short /tmp folder (socket paths there must stay short). On exit it is stopped, even after
    ``stop()``, and its bridge and exec root are removed.
    """
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise RuntimeError("dockerd is not installed: apt-get install docker.io (setup.sh does)")
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    tls = make_tls(folder / "tls")
    short = Path(tempfile.mkdtemp(prefix="sbe-"))
    exec_root, data_root, log = short / "exec", folder / "data", folder / "dockerd.log"
    sock = folder / "docker.sock"
    if len(str(sock)) > UNIX_PATH_MAX:
        sock = short / "docker.sock"
        LOG.info("the folder's path is too long for a unix socket; using %s", sock)
    config = folder / "daemon.json"
    # A config of its own, so that an /etc/docker/daemon.json does not apply to this engine. Its ID comes
    # from this key file; the default /etc/docker/key.json is the first engine's (20.10 has no flag for it).
    config.write_text(json.dumps({"deprecated-key-path": str(folder / "key.json")}) + "\n")
    port = free_port()  # held (never listening) until the end, so the port stays closed after stop()
    bridge: str | None = None
    engine: SecondEngine | None = None
    try:
        bridge, _ = _create_bridge(name)
        server = tls.server
        command = [
            dockerd, "--data-root", str(data_root), "--exec-root", str(exec_root),
            "--pidfile", str(folder / "docker.pid"), "--config-file", str(config),
            "--containerd-namespace", f"sb-{name}", "--containerd-plugins-namespace", f"sb-{name}-plugins",
            "-H", f"unix://{sock}", "-H", f"tcp://127.0.0.1:{port}",
            "--tlsverify", "--tlscacert", str(server / "ca.pem"), "--tlscert", str(server / "cert.pem"),
            "--tlskey", str(server / "key.pem"),
            "--bridge", bridge, "--iptables=false", "--ip-masq=false",
        ]
        LOG.info("starting a second dockerd: %s", " ".join(command))
        with log.open("wb") as out:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        engine = SecondEngine(proc, unix_url=f"unix://{sock}", tcp_url=f"tcp://127.0.0.1:{port}", tls=tls,
                              log=log, exec_root=exec_root)
        _wait_until_ready(proc, str(sock), port, log)
        LOG.info("second dockerd up: %r", engine)
        yield engine
    finally:
        try:
            if engine is not None:
                engine.stop()
        finally:
            _unmount_under(exec_root, data_root)
            if bridge is not None:
                _delete_bridge(bridge)
            shutil.rmtree(short, ignore_errors=True)
            release_port(port)
