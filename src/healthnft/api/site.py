"""Where this service is reached: its public origin, configured, never read from a request.

A sign-in message (EIP-4361) names the site it is for, and the wallet shows that
name to the person signing. Taking it from the request's ``Host`` header let a
phishing site's backend ask for a message naming the phishing site, relay the
victim's signature and get the victim's session. So the origin is configuration
(``healthnft serve --origin``; default the bound address): challenges name it,
verification accepts only it, and requests for any other host are refused before
they reach a route. Its scheme also decides whether the session cookie is
``Secure`` (an https origin behind a TLS-terminating proxy gets one).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from healthnft.errors import InvalidInput

#: Addresses that listen everywhere: no browser can be sent there, so no default origin.
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


@dataclass(frozen=True)
class Site:
    """This service's origin (``scheme://host[:port]``)."""

    origin: str

    @property
    def _parts(self) -> urllib.parse.SplitResult:
        return urllib.parse.urlsplit(self.origin)

    @property
    def domain(self) -> str:
        """The EIP-4361 ``domain``: the origin's authority (host and port)."""
        return self._parts.netloc

    @property
    def hostname(self) -> str:
        """The host requests must name (what the trusted-host check compares)."""
        return self._parts.hostname or ""

    @property
    def secure(self) -> bool:
        """Whether people reach the service over TLS (then cookies are ``Secure``)."""
        return self._parts.scheme == "https"


def parse_origin(origin: str) -> Site:
    """Check ``origin`` is ``http(s)://host[:port]`` and nothing more; normalize it."""
    try:
        parts = urllib.parse.urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        raise InvalidInput("the origin is not a URL like https://wallet.example.org") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("the origin must be http:// or https:// and name a host, "
                           "like https://wallet.example.org")  # fmt: skip
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise InvalidInput("the origin is a scheme, a host and a port only (no path, "
                           "query or user)")  # fmt: skip
    if parts.hostname in _WILDCARD_HOSTS:
        raise InvalidInput("the origin must name the host people open, not 0.0.0.0")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = {"http": 80, "https": 443}[parts.scheme]
    netloc = host if port in (None, default) else f"{host}:{port}"
    return Site(f"{parts.scheme}://{netloc}")


def default_origin(host: str, port: int) -> str:
    """The origin of a server bound to ``host:port`` (refused for a wildcard address)."""
    if host in _WILDCARD_HOSTS:
        raise InvalidInput(f"listening on {host or 'every address'} needs --origin: the "
                           "address people open, e.g. https://wallet.example.org")  # fmt: skip
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"
