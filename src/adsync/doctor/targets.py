"""Each target is reachable: TCP, then the TLS handshake with the backend's own TLS settings,
then the product's own probe where it has one that needs no user password and changes
nothing (SCIM: GET /ServiceProviderConfig, RFC 7644 §4). Soffid's ``test=true`` is not
one: it takes a password."""

from __future__ import annotations

import asyncio
import email.utils
import ssl
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from adsync.doctor.model import Context, Result
from adsync.plugin import BackendConfig, TLSConfig

DEFAULT_PORTS = {"https": 443, "http": 80, "ldaps": 636, "ldap": 389}


def target_urls(backend: BackendConfig) -> list[str]:
    """The URLs a backend sends to: ``url`` and ``urls`` (failover lists)."""
    found: list[str] = []
    url = getattr(backend, "url", None)
    if isinstance(url, str):
        found.append(url)
    urls = getattr(backend, "urls", None)
    if isinstance(urls, list | tuple):
        found.extend(u for u in urls if isinstance(u, str))
    return found


async def _handshake(url: str, tls: TLSConfig | None, limit: float) -> str:
    """'' when the connection (and TLS) works, else why not (no secret can be in it)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or DEFAULT_PORTS.get(parts.scheme, 443)
    wants_tls = parts.scheme in ("https", "ldaps")
    context: ssl.SSLContext | None = None
    if wants_tls:
        context = (tls or TLSConfig()).client_context()
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host, port, ssl=context, server_hostname=host if context else None
            ),
            limit,
        )
    except ssl.SSLCertVerificationError as exc:
        return f"TLS certificate not trusted: {exc.verify_message}"
    except ssl.SSLError as exc:
        return f"TLS handshake failed: {exc.reason or type(exc).__name__}"
    except TimeoutError:
        return f"no answer from {host}:{port} within {limit:g}s"
    except OSError as exc:
        return f"cannot connect to {host}:{port}: {exc.strerror or type(exc).__name__}"
    writer.close()
    try:
        await writer.wait_closed()
    except (OSError, ssl.SSLError):
        pass
    return ""


async def probe_backend(ctx: Context, name: str, backend: BackendConfig) -> list[Result]:
    urls = target_urls(backend)
    if not urls:
        return [Result.skip(f"target {name}", "no url in its settings: not probed")]
    tls = getattr(backend, "tls", None)
    starttls = bool(getattr(backend, "starttls", False))
    results = []
    for url in urls:
        label = f"target {name} {url}"
        problem = await _handshake(
            url, tls if isinstance(tls, TLSConfig) else None, backend.timeout
        )
        if problem:
            results.append(
                Result.fail(
                    label,
                    problem,
                    "check the url, the firewall, and tls.ca_file (the CA that signed the "
                    "target's certificate)",
                )
            )
            continue
        scheme = urlsplit(url).scheme
        how = "TLS handshake ok" if scheme in ("https", "ldaps") else "TCP connect ok"
        if scheme == "ldap" and starttls:
            how += " (STARTTLS not probed)"
        probe = PROBES.get(backend.type)
        if probe is not None:
            extra = await probe(ctx, name, backend, url)
            if extra is not None:
                results.append(extra)
                continue
        results.append(Result.ok(label, how))
    return results


async def _scim(ctx: Context, name: str, backend: Any, url: str) -> Result | None:
    """GET {url}/ServiceProviderConfig (RFC 7644 §4: the endpoint exists; servers often
    answer it without a token), then GET {url}/Users?count=0 with the token (§3.4.2.4: no
    resource is returned, only ``totalResults``): the endpoint the deliveries use accepts it.
    Nothing is written."""
    import aiohttp

    from adsync.secret import SecretRefError, resolve_secret_ref

    label = f"target {name} {url}"
    try:
        token = resolve_secret_ref(backend.token, base_dir=ctx.config_path.absolute().parent)
    except SecretRefError:
        return None  # reported by the secrets check
    base = url.rstrip("/")
    headers = {"Authorization": f"Bearer {token.reveal()}", "Accept": "application/scim+json"}
    connector = aiohttp.TCPConnector(ssl=backend.tls.client_context())
    timeout = aiohttp.ClientTimeout(total=backend.timeout)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            async with session.get(f"{base}/ServiceProviderConfig", headers=headers) as resp:
                discovery = resp.status
                _note_skew(ctx, name, resp.headers.get("Date"))
            async with session.get(f"{base}/Users", params={"count": "0"}, headers=headers) as resp:
                search = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Result.fail(label, f"SCIM probe: {type(exc).__name__}", "check the url")
    if discovery == 404 or search == 404:
        return Result.fail(
            label,
            "GET /ServiceProviderConfig 404: no SCIM endpoint at this url",
            "the url must be the SCIM base (before /Users), tenant included",
        )
    if search in (401, 403):
        return Result.fail(
            label,
            f"GET /Users {search}: the token is refused",
            "put a valid bearer token in the token file (the IdP's SCIM app)",
        )
    if search != 200:
        return Result.fail(label, f"GET /Users?count=0 answered {search}", "see the target's log")
    return Result.ok(
        label, "TLS ok; GET /ServiceProviderConfig and /Users?count=0 answer (token accepted)"
    )


def _note_skew(ctx: Context, name: str, date: str | None) -> None:
    if not date:
        return
    try:
        theirs = email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return
    ctx.skews.append((name, theirs - ctx.now()))


Probe = Callable[[Context, str, Any, str], Awaitable[Result | None]]
PROBES: dict[str, Probe] = {"scim": _scim}


async def targets(ctx: Context) -> list[Result]:
    groups = await asyncio.gather(
        *(probe_backend(ctx, name, b) for name, b in ctx.config.backends.items())
    )
    return [r for group in groups for r in group]
