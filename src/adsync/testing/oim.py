"""OIM's SPML-DSML service (the one the AD password connector calls), strict.

What it models, and where each behaviour comes from:

* ``POST`` at ``/spmlws/OIMProvisioning`` (configurable), SOAP 1.1 over HTTP:
  shared/protocols.md §2.2; OpenPTK's client (sfehrman/openptk
  ``ext/Misc/SPML2/.../OpenPTKSpml2Client.java``) posts ``text/xml`` with a SOAPAction.
* Envelope namespace other than SOAP 1.1's: ``VersionMismatch`` fault (SOAP 1.1 §4.4.1).
  No SOAPAction header: ``Client`` fault (SOAP 1.1 §6.1.1 makes it mandatory).
* Credentials in the ``OIMUser`` header (``OIMUserId``/``OIMUserPassword`` in
  ``http://xmlns.oracle.com/OIM/provisioning``): OpenPTKSpml2Client.buildXmlSOAP.
  A header entry the service does not process that carries ``mustUnderstand="1"``
  (``wsse:Security`` for one): ``MustUnderstand`` fault (SOAP 1.1 §4.2.3).
  Missing or wrong credentials: a ``Client`` fault naming the authentication failure
  [inferred: the exact fault of the real service is not public].
* The SPML request wrapped in ``processRequest/sOAPElement`` (``sOAPElement``
  unqualified), the answer wrapped in ``processRequestResponse``: OpenPTKSpml2Client
  (buildXmlSOAP, getResponseContent). An unwrapped body is a ``Client`` fault.
* The inner SPML is validated against the OASIS SPML v2 schemas in ``data/spml`` (core,
  search, password, async and the DSML v2 filter); invalid: ``Client`` fault.
* Search: DSML ``equalityMatch`` on OIM attribute names (``Users.User ID``); OpenPTK's
  Spml2OIMOperations sends ``scope="pso"`` with an empty ``basePsoID``. Not found is
  ``success`` with no ``pso`` (protocols.md §2.4). A name that is not an OIM user
  attribute: ``failure``/``malformedRequest`` with a message [inferred kind].
* setPassword: ``success``; ``failure``/``customError`` + ``errorMessage`` for a policy
  refusal; ``noSuchIdentifier`` for an unknown psoID (SPML v2 ErrorCode); ``pending``
  when asynchronous, then ``statusRequest`` (SPML v2 async capability) answers pending
  until done (Oracle OIM Developer's Guide ch. 32: "Oracle Identity Manager responds
  immediately with a pending status, and it is up to the requestor to get the current
  state by issuing a statusRequest").

Needs lxml (the ``testing`` extra), imported when a ``FakeOim`` is made: the module itself
imports in a production install.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from adsync.extras import MissingExtra

from .fake import FakeTarget, Mode, Received, sha256_hex

if TYPE_CHECKING:
    from lxml import etree  # type: ignore[import-untyped]

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
OIM = "http://xmlns.oracle.com/OIM/provisioning"
SPML = "urn:oasis:names:tc:SPML:2:0"
SEARCH = "urn:oasis:names:tc:SPML:2:0:search"
PASS = "urn:oasis:names:tc:SPML:2:0:password"  # noqa: S105 (a namespace)
ASYNC = "urn:oasis:names:tc:SPML:2:0:async"
DSML = "urn:oasis:names:tc:DSML:2:0:core"
DEFAULT_PATH = "/spmlws/OIMProvisioning"
# OIM user attributes as the SPML-DSML service names them (form "Users.<label>").
OIM_USER_ATTRIBUTES = frozenset(
    {
        "Users.User ID",
        "Users.Key",
        "Users.First Name",
        "Users.Last Name",
        "Users.Email",
        "Users.Status",
        "Users.Xellerate Type",
        "Users.Role",
    }
)
_SCHEMAS = {
    SPML: "pstc_spmlv2_core.xsd",
    PASS: "pstc_spmlv2_password.xsd",
    SEARCH: "pstc_spmlv2_search.xsd",
    ASYNC: "pstc_spmlv2_async.xsd",
    DSML: "dsml_filter.xsd",
}


@functools.cache
def _lxml() -> Any:
    """lxml's ``etree``, or one line naming the extra that brings it."""
    try:
        from lxml import etree
    except ImportError:
        raise MissingExtra("testing", "the OIM SPML fake (lxml)") from None
    return etree


def _localname(tag: str) -> str:
    """``{namespace}name`` -> ``name`` (lxml's ``QName(tag).localname``)."""
    return tag.rpartition("}")[2]


@functools.cache
def spml_schema() -> etree.XMLSchema:
    """The SPML v2 core, password, search and async schemas and the DSML v2 filter."""
    folder = Path(str(files("adsync.testing") / "data" / "spml"))
    imports = "".join(
        f'<xs:import namespace="{ns}" schemaLocation="{(folder / name).as_uri()}"/>'
        for ns, name in _SCHEMAS.items()
    )
    driver = (
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        f'targetNamespace="urn:adsync:spml-bundle">{imports}</xs:schema>'
    )
    lxml = _lxml()
    return lxml.XMLSchema(lxml.fromstring(driver.encode(), _parser()))


def _parser() -> etree.XMLParser:
    return _lxml().XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )


def validate_spml(element: etree._Element) -> str | None:
    """None if the element is valid SPML v2; otherwise the first schema error."""
    schema = spml_schema()
    if schema.validate(element):
        return None
    error = schema.error_log.last_error
    return f"line {error.line}: {error.message}" if error else "invalid"


class Refused(Exception):
    """The service answers with a SOAP fault (``code`` is the qualified faultcode)."""

    def __init__(self, code: str, text: str, *, invalid: bool = True) -> None:
        super().__init__(text)
        self.code, self.text, self.invalid = code, text, invalid


class FakeOim(FakeTarget):
    """Users are ``{login: psoID}`` under ``Users.User ID``; credentials are fixed.

    ``pending(polls)`` makes setPassword asynchronous: it answers ``pending`` and
    ``polls`` statusRequests answer ``pending`` before the result (None: never done).
    """

    def __init__(
        self,
        *,
        username: str = "xelsysadm",
        password: str = "oim-secret",  # noqa: S107
        match_attribute: str = "Users.User ID",
        users: dict[str, str] | None = None,
        path: str = DEFAULT_PATH,
        **kwargs: Any,
    ) -> None:
        _lxml()  # without lxml: MissingExtra now, not a 500 at the first request
        super().__init__(**kwargs)
        self.username = username
        self.password = password
        self.match_attribute = match_attribute
        self.users = users if users is not None else {"jdoe": "81"}
        self.path = path
        self.server_fault = False
        self.pending_polls: int | None = 0
        self.asynchronous = False
        self._async: dict[str, tuple[int, str]] = {}  # asyncRequestID -> (polls left, psoID)

    def pending(self, polls: int | None = 1) -> None:
        self.asynchronous = True
        self.pending_polls = polls

    def accept(self) -> None:
        super().accept()
        self.asynchronous = False

    @property
    def endpoint(self) -> str:
        return self.url + self.path

    def routes(self, app: web.Application) -> None:
        app.router.add_post(self.path, self._soap)

    async def _soap(self, request: web.Request) -> web.Response:
        await self.gate()
        body = await request.read()
        received = self.record(request, body)
        if not request.headers.get("Content-Type", "").startswith("text/xml"):
            received.valid, received.problem = False, "Content-Type is not text/xml (SOAP 1.1)"
            return web.Response(status=415, text="Unsupported Media Type")
        try:
            element = self._unwrap(request, body, received)
        except Refused as refused:
            if refused.invalid:
                received.valid, received.problem = False, refused.text
            return _fault(refused.code, refused.text)
        if self.server_fault:
            return _fault("soap:Server", "oracle.iam.platform: internal error")
        request_id = element.get("requestID")
        if element.tag == f"{{{SEARCH}}}searchRequest":
            return self._search(received, element, request_id)
        if element.tag == f"{{{PASS}}}setPasswordRequest":
            return self._set_password(received, element, request_id)
        if element.tag == f"{{{ASYNC}}}statusRequest":
            return self._status(received, element, request_id)
        received.operation = _localname(element.tag)
        name = received.operation.replace("Request", "Response")
        return _response(name, SPML, "spml", request_id, "failure", "unsupportedOperation")

    def _unwrap(self, request: web.Request, body: bytes, received: Received) -> etree._Element:
        """The SPML request inside a valid envelope, or the fault the service answers."""
        if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
            raise Refused("soap:Client", "DTDs are not accepted")
        lxml = _lxml()
        try:
            root = lxml.fromstring(body, _parser())
        except lxml.XMLSyntaxError:
            raise Refused("soap:Client", "not well-formed XML") from None
        if _localname(root.tag) == "Envelope" and root.tag != f"{{{SOAP}}}Envelope":
            raise Refused("soap:VersionMismatch", "the envelope is not SOAP 1.1")
        if root.tag != f"{{{SOAP}}}Envelope":
            raise Refused("soap:Client", "not a SOAP envelope")
        if "SOAPAction" not in request.headers:
            raise Refused("soap:Client", "no SOAPAction header (SOAP 1.1 HTTP binding)")
        header = root.find(f"{{{SOAP}}}Header")
        entries = [] if header is None else [e for e in header if isinstance(e.tag, str)]
        for entry in entries:
            if entry.tag != f"{{{OIM}}}OIMUser" and entry.get(f"{{{SOAP}}}mustUnderstand") == "1":
                raise Refused(
                    "soap:MustUnderstand",
                    f"header {_localname(entry.tag)} was not understood",
                    invalid=False,
                )
        wrapper = root.find(f"{{{SOAP}}}Body/{{{OIM}}}processRequest/sOAPElement")
        inner = [] if wrapper is None else [e for e in wrapper if isinstance(e.tag, str)]
        if len(inner) != 1:
            raise Refused(
                "soap:Client", "the body is not processRequest/sOAPElement with one SPML request"
            )
        problem = validate_spml(inner[0])
        if problem is not None:
            raise Refused("soap:Client", f"malformed SPML request: {problem}")
        user = None if header is None else header.find(f"{{{OIM}}}OIMUser")
        login = None if user is None else user.findtext(f"{{{OIM}}}OIMUserId")
        secret = None if user is None else user.findtext(f"{{{OIM}}}OIMUserPassword")
        received.extra["oim_user"] = login
        if login != self.username or (secret or "") != self.password:
            raise Refused(
                "soap:Client",
                "OIMUser authentication failed: invalid OIMUserId or OIMUserPassword",
                invalid=False,
            )
        return inner[0]

    def _search(
        self, received: Received, element: etree._Element, request_id: str | None
    ) -> web.Response:
        received.operation = "search"
        query = element.find(f"{{{SEARCH}}}query")
        base = None if query is None else query.find(f"{{{SEARCH}}}basePsoID")
        received.extra["scope"] = None if query is None else query.get("scope")
        received.extra["base_pso_id"] = None if base is None else base.get("ID")
        match = element.find(f"{{{SEARCH}}}query/{{{DSML}}}filter/{{{DSML}}}equalityMatch")
        if match is None:
            return _response(
                "searchResponse", SEARCH, "spmlsearch", request_id, "failure",
                "unsupportedSelectionType", ["only equalityMatch is supported"],
            )  # fmt: skip
        name = match.get("name")
        value = match.findtext(f"{{{DSML}}}value") or ""
        received.account = value
        if name not in OIM_USER_ATTRIBUTES:
            return _response(
                "searchResponse", SEARCH, "spmlsearch", request_id, "failure",
                "malformedRequest", [f"{name} is not an attribute of OIM users"],
            )  # fmt: skip
        pso_id = None
        if self.mode is not Mode.UNKNOWN_USER and name == self.match_attribute:
            pso_id = self.users.get(value)
        psos = (
            f"<spmlsearch:pso><spml:psoID ID={quoteattr(pso_id)}/></spmlsearch:pso>"
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
                "setPasswordResponse", PASS, "pass", request_id, "failure", "noSuchIdentifier",
                [f"no user with key {pso_id}"],
            )  # fmt: skip
        received.account = known[pso_id]
        if self.asynchronous and request_id:
            polls = -1 if self.pending_polls is None else self.pending_polls
            self._async[request_id] = (polls, pso_id)
            return _response("setPasswordResponse", PASS, "pass", request_id, "pending")
        return self._password_result("setPasswordResponse", PASS, "pass", request_id)

    def _password_result(
        self, name: str, namespace: str, prefix: str, request_id: str | None, extra: str = ""
    ) -> web.Response:
        if self.mode is Mode.REJECT:
            return _response(
                name, namespace, prefix, request_id, "failure", "customError",
                [self.reject_reason], attrs=extra,
            )  # fmt: skip
        return _response(name, namespace, prefix, request_id, "success", attrs=extra)

    def _status(
        self, received: Received, element: etree._Element, request_id: str | None
    ) -> web.Response:
        received.operation = "status"
        async_id = element.get("asyncRequestID") or ""
        extra = f" asyncRequestID={quoteattr(async_id)}"
        if async_id not in self._async:
            return _response(
                "statusResponse", ASYNC, "async", request_id, "failure", "noSuchRequest",
                [f"no request {async_id}"], attrs=extra,
            )  # fmt: skip
        polls, pso_id = self._async[async_id]
        received.account = {v: k for k, v in self.users.items()}.get(pso_id)
        if polls != 0:
            self._async[async_id] = (polls - 1 if polls > 0 else polls, pso_id)
            return _response("statusResponse", ASYNC, "async", request_id, "pending", attrs=extra)
        del self._async[async_id]
        return self._password_result("statusResponse", ASYNC, "async", request_id, extra)


def _response(
    name: str,
    namespace: str,
    prefix: str,
    request_id: str | None,
    status: str,
    error: str | None = None,
    messages: list[str] | None = None,
    inner: str = "",
    attrs: str = "",
) -> web.Response:
    attrs = f' status="{status}"' + attrs
    if request_id:
        attrs += f" requestID={quoteattr(request_id)}"
    if error:
        attrs += f' error="{error}"'
    errors = "".join(f"<spml:errorMessage>{escape(m)}</spml:errorMessage>" for m in messages or [])
    xmlns = f'xmlns:spml="{SPML}"' + (f' xmlns:{prefix}="{namespace}"' if prefix != "spml" else "")
    element = f"<{prefix}:{name} {xmlns}{attrs}>{errors}{inner}</{prefix}:{name}>"
    wrapped = (
        f'<ns1:processRequestResponse xmlns:ns1="{OIM}">{element}</ns1:processRequestResponse>'
    )
    return _envelope(wrapped, 200)


def _fault(code: str, text: str) -> web.Response:
    fault = (
        f"<soap:Fault><faultcode>{escape(code)}</faultcode>"
        f"<faultstring>{escape(text)}</faultstring></soap:Fault>"
    )
    return _envelope(fault, 500)  # SOAP 1.1 §6.2: a fault travels with HTTP 500


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


__all__ = ["DEFAULT_PATH", "OIM_USER_ATTRIBUTES", "FakeOim", "spml_schema", "validate_spml"]
