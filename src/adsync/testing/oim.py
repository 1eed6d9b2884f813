"""An OIM SPML v2 service (SOAP 1.1, WS-Security UsernameToken) that validates every request.

Each request's SPML element (the single child of ``soap:Body``) is validated
against the OASIS SPML v2 schemas kept in ``data/spml`` (core, search,
password, and the DSML v2 filter used as the search's query clause); an invalid
request is recorded as invalid and answered with a ``soap:Client`` fault.
Needs lxml (the ``test`` extra).
"""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web
from lxml import etree  # type: ignore[import-untyped]

from .contract import FakeTarget, Mode, Received, sha256_hex

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
PASSWORD_TEXT = _PROFILE + "#PasswordText"
SPML = "urn:oasis:names:tc:SPML:2:0"
SEARCH = "urn:oasis:names:tc:SPML:2:0:search"
PASS = "urn:oasis:names:tc:SPML:2:0:password"  # noqa: S105 (a namespace)
DSML = "urn:oasis:names:tc:DSML:2:0:core"
DEFAULT_PATH = "/spml-xsd/SPMLService"
_SCHEMAS = {
    SPML: "pstc_spmlv2_core.xsd",
    PASS: "pstc_spmlv2_password.xsd",
    SEARCH: "pstc_spmlv2_search.xsd",
    DSML: "dsml_filter.xsd",
}


@functools.cache
def spml_schema() -> etree.XMLSchema:
    """The SPML v2 core + password + search schemas and the DSML v2 filter, as one set."""
    folder = Path(str(files("adsync.testing") / "data" / "spml"))
    imports = "".join(
        f'<xs:import namespace="{ns}" schemaLocation="{(folder / name).as_uri()}"/>'
        for ns, name in _SCHEMAS.items()
    )
    driver = (
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        f'targetNamespace="urn:adsync:spml-bundle">{imports}</xs:schema>'
    )
    return etree.XMLSchema(etree.fromstring(driver.encode(), _parser()))


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def validate_spml(element: etree._Element) -> str | None:
    """None if the element is valid SPML v2; otherwise the first schema error."""
    schema = spml_schema()
    if schema.validate(element):
        return None
    error = schema.error_log.last_error
    return f"line {error.line}: {error.message}" if error else "invalid"


class FakeOim(FakeTarget):
    """Users are ``{attribute value: psoID}`` under ``match_attribute``; credentials are fixed."""

    def __init__(
        self,
        *,
        username: str = "xelsysadm",
        password: str = "oim-secret",  # noqa: S107
        match_attribute: str = "usrLogin",
        users: dict[str, str] | None = None,
        target_id: str = "OIM",
        path: str = DEFAULT_PATH,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.username = username
        self.password = password
        self.match_attribute = match_attribute
        self.users = users if users is not None else {"jdoe": "81"}
        self.target_id = target_id
        self.path = path
        self.server_fault = False

    @property
    def endpoint(self) -> str:
        return self.url + self.path

    def routes(self, app: web.Application) -> None:
        app.router.add_post(self.path, self._soap)

    async def _soap(self, request: web.Request) -> web.Response:
        await self.gate()
        body = await request.read()
        received = self.record(request, body)
        if self.server_fault:
            return _fault("soap:Server", "oracle.iam.platform: internal error")
        if not request.headers.get("Content-Type", "").startswith("text/xml"):
            return self._invalid(received, "Content-Type is not text/xml (SOAP 1.1)")
        if "SOAPAction" not in request.headers:
            return self._invalid(received, "no SOAPAction header (SOAP 1.1)")
        try:
            if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
                raise etree.XMLSyntaxError("DTD refused", None, 0, 0)
            root = etree.fromstring(body, _parser())
        except etree.XMLSyntaxError:
            return self._invalid(received, "not well-formed XML (or a DTD)")
        if root.tag != f"{{{SOAP}}}Envelope":
            return self._invalid(received, "not a SOAP 1.1 envelope")
        token = root.find(f"{{{SOAP}}}Header/{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
        spml_body = root.find(f"{{{SOAP}}}Body")
        elements = [] if spml_body is None else [e for e in spml_body if isinstance(e.tag, str)]
        if len(elements) != 1:
            return self._invalid(received, "soap:Body must hold exactly one element")
        request_element = elements[0]
        problem = validate_spml(request_element)
        if problem is not None:
            return self._invalid(received, f"SPML schema: {problem}")
        if token is None:
            return _fault("wsse:InvalidSecurity", "no UsernameToken")
        user = token.findtext(f"{{{WSSE}}}Username")
        password_element = token.find(f"{{{WSSE}}}Password")
        if password_element is None or password_element.get("Type") != PASSWORD_TEXT:
            return _fault("wsse:InvalidSecurity", "UsernameToken without PasswordText")
        if user != self.username or (password_element.text or "") != self.password:
            return _fault(
                "wsse:FailedAuthentication",
                "The security token could not be authenticated or authorized",
            )
        request_id = request_element.get("requestID")
        if request_element.tag == f"{{{SEARCH}}}searchRequest":
            return self._search(received, request_element, request_id)
        if request_element.tag == f"{{{PASS}}}setPasswordRequest":
            return self._set_password(received, request_element, request_id)
        received.operation = etree.QName(request_element).localname
        return _response(
            received.operation.replace("Request", "Response"),
            SPML,
            "spml",
            request_id,
            "failure",
            "unsupportedOperation",
            ["not supported here"],
        )

    def _invalid(self, received: Received, problem: str) -> web.Response:
        received.valid, received.problem = False, problem
        return _fault("soap:Client", f"malformed request: {problem}")

    def _search(
        self, received: Received, element: etree._Element, request_id: str | None
    ) -> web.Response:
        received.operation = "search"
        match = element.find(f"{{{SEARCH}}}query/{{{DSML}}}filter/{{{DSML}}}equalityMatch")
        if match is None:
            return _response(
                "searchResponse",
                SEARCH,
                "spmlsearch",
                request_id,
                "failure",
                "unsupportedSelectionType",
                ["only equalityMatch is supported"],
            )
        value = match.findtext(f"{{{DSML}}}value") or ""
        received.account = value
        pso_id = None
        if self.mode is not Mode.UNKNOWN_USER and match.get("name") == self.match_attribute:
            pso_id = self.users.get(value)
        psos = (
            f"<spmlsearch:pso><spml:psoID ID={quoteattr(pso_id)} "
            f"targetID={quoteattr(self.target_id)}/></spmlsearch:pso>"
            if pso_id is not None
            else ""
        )
        return _response("searchResponse", SEARCH, "spmlsearch", request_id, "success", inner=psos)

    def _set_password(
        self, received: Received, element: etree._Element, request_id: str | None
    ) -> web.Response:
        received.operation = "setPassword"
        pso = element.find(f"{{{PASS}}}psoID")
        password = element.findtext(f"{{{PASS}}}password") or ""
        received.password_sha256 = sha256_hex(password)
        pso_id = pso.get("ID") if pso is not None else None
        known = {v: k for k, v in self.users.items()}
        if self.mode is Mode.UNKNOWN_USER or pso_id not in known:
            return _response(
                "setPasswordResponse",
                PASS,
                "pass",
                request_id,
                "failure",
                "noSuchIdentifier",
                [f"no user with key {pso_id}"],
            )
        received.account = known[pso_id]
        if self.mode is Mode.REJECT:
            return _response(
                "setPasswordResponse",
                PASS,
                "pass",
                request_id,
                "failure",
                "customError",
                [self.reject_reason],
            )
        return _response("setPasswordResponse", PASS, "pass", request_id, "success")


def _response(
    name: str,
    namespace: str,
    prefix: str,
    request_id: str | None,
    status: str,
    error: str | None = None,
    messages: list[str] | None = None,
    inner: str = "",
) -> web.Response:
    attrs = f' status="{status}"'
    if request_id:
        attrs += f" requestID={quoteattr(request_id)}"
    if error:
        attrs += f' error="{error}"'
    errors = "".join(f"<spml:errorMessage>{escape(m)}</spml:errorMessage>" for m in messages or [])
    xmlns = f'xmlns:spml="{SPML}"' + (f' xmlns:{prefix}="{namespace}"' if prefix != "spml" else "")
    element = f"<{prefix}:{name} {xmlns}{attrs}>{errors}{inner}</{prefix}:{name}>"
    return _envelope(element, 200)


def _fault(code: str, text: str) -> web.Response:
    fault = (
        f'<soap:Fault xmlns:wsse="{WSSE}"><faultcode>{escape(code)}</faultcode>'
        f"<faultstring>{escape(text)}</faultstring></soap:Fault>"
    )
    return _envelope(fault, 500)


def _envelope(inner: str, status: int) -> web.Response:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP}">'
        f"<soap:Body>{inner}</soap:Body></soap:Envelope>"
    )
    return web.Response(
        status=status,
        body=body.encode("utf-8"),
        headers={"Content-Type": "text/xml; charset=utf-8"},
    )


__all__ = ["DEFAULT_PATH", "FakeOim", "spml_schema", "validate_spml"]
