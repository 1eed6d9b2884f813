"""Each target is reachable: TCP, then the TLS handshake with the backend's own TLS settings,
then the plugin's own ``probe()`` where it has one: a request that needs no user password
and changes nothing (scim: discovery and an empty search; ldap: bind and read base_dn).
Soffid's ``test=true`` is not one: it takes a password."""

from __future__ import annotations

import asyncio
import email.utils
import ssl
from urllib.parse import urlsplit

from adsync.doctor.model import Context, Result, Status
from adsync.plugin import BackendConfig, TLSConfig, safe_url

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
        label = f"target {name} {safe_url(url)}"  # never a query-string token
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
        if scheme in ("http", "https"):
            await _date_skew(ctx, name, backend, url)
        results.append(Result.ok(label, how))
    if all(r.status is not Status.FAIL for r in results):  # else the probe only repeats it
        probe = await _plugin_probe(ctx, name, backend)
        if probe is not None:
            results.append(probe)
    return results


async def _plugin_probe(ctx: Context, name: str, backend: BackendConfig) -> Result | None:
    """The plugin's own ``probe()`` when it has one (no password, nothing written):
    started as the daemon starts it, probed, closed. None when it has none."""
    from adsync.plugin import OutcomeKind, load_backend_class
    from adsync.reloader import BackendStartError, start_backend

    label = f"target {name}"
    if not callable(getattr(load_backend_class(backend.type), "probe", None)):
        return None
    try:
        plugin = await start_backend(name, backend)
    except BackendStartError as exc:
        return Result.fail(label, f"the plugin does not start: {exc.reason}", "fix its settings")
    try:
        outcome = await plugin.probe()  # type: ignore[attr-defined]
    except Exception as exc:  # a plugin's bug: its type only
        return Result.fail(label, f"probe raised {type(exc).__name__}", "report it to its author")
    finally:
        await plugin.close()
    if outcome.kind is OutcomeKind.DELIVERED:
        return Result.ok(f"{label} probe", outcome.reason)
    fix = (
        "fix the backend's settings (url, credentials, base)"
        if outcome.misconfigured or outcome.kind is OutcomeKind.FAILED
        else "check the target and the network"
    )
    return Result.fail(f"{label} probe", f"{outcome.kind.value}: {outcome.reason}", fix)


async def _date_skew(ctx: Context, name: str, backend: BackendConfig, url: str) -> None:
    """A target's HTTP ``Date`` against our clock: one unauthenticated HEAD, any status."""
    import aiohttp

    tls = getattr(backend, "tls", None)
    context = tls.client_context() if isinstance(tls, TLSConfig) else None
    try:
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context if context else True),
                timeout=aiohttp.ClientTimeout(total=backend.timeout),
            ) as session,
            session.head(url, allow_redirects=False) as resp,
        ):
            _note_skew(ctx, name, resp.headers.get("Date"))
    except (aiohttp.ClientError, TimeoutError, OSError):
        return


def _note_skew(ctx: Context, name: str, date: str | None) -> None:
    if not date:
        return
    try:
        theirs = email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return
    ctx.skews.append((name, theirs - ctx.now()))


async def targets(ctx: Context) -> list[Result]:
    groups = await asyncio.gather(
        *(probe_backend(ctx, name, b) for name, b in ctx.config.backends.items())
    )
    return [r for group in groups for r in group]
