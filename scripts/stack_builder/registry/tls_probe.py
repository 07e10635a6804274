"""Whether a registry speaks TLS at all, asked with one bare handshake before the first request.

A loopback or insecure registry may be spoken to in plain HTTP (dockerd's rule: HTTPS first, then plain
HTTP). Finding that out with a real HTTPS request costs the CA certificates loaded for it (about 20 ms,
a fifteenth of a whole `tag`), only to learn that the server does not speak TLS. This asks the same question
for the price of a connection: a ClientHello, with no certificate trusted or checked, and nothing believed
but "this server answered as plain HTTP does". Nothing else is sent. Any other outcome (TLS spoken, the
connection refused, no answer in time) leaves the scheme to the requests, which check it properly and say
what is wrong.
"""
from __future__ import annotations

import logging
import socket
import ssl
from urllib.parse import urlsplit

LOGGER = logging.getLogger(__name__)

# What a TLS client hears from a plain-HTTP server (OpenSSL's words, in the error's text).
PLAIN_HTTP = ("WRONG_VERSION_NUMBER", "wrong version number", "RECORD_LAYER_FAILURE", "record layer failure",
              "UNKNOWN_PROTOCOL", "unknown protocol", "HTTP_REQUEST")


def answers_as_plain_http(exc: Exception) -> bool:
    """Whether a TLS failure is a plain-HTTP server's answer (not an untrusted certificate, not a reset)."""
    text = str(exc)
    return any(marker in text for marker in PLAIN_HTTP)


def speaks_plain_http(host: str, timeout: float) -> bool:
    """True when ``host`` (HOST[:PORT], 443 by default) answers a TLS ClientHello as a plain-HTTP server does."""
    parts = urlsplit(f"//{host}")
    try:
        port = parts.port or 443
    except ValueError:
        return False
    if not parts.hostname:
        return False
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bare.check_hostname, bare.verify_mode = False, ssl.CERT_NONE  # only "is this TLS?" is asked, never trusted
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout) as raw:
            with bare.wrap_socket(raw, server_hostname=parts.hostname):
                return False
    except ssl.SSLError as exc:
        plain = answers_as_plain_http(exc)
        if plain:
            LOGGER.debug("registry %s does not speak TLS: plain HTTP, as dockerd does for it", host)
        return plain
    except OSError:
        return False
