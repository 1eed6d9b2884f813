"""SPML v2 (DSML profile) for OIM's SPML-DSML service, as pure functions: build
requests, read answers.

The wire is the one OpenPTK's client of that service writes (sfehrman/openptk,
``OpenPTKSpml2Client.java``; shared/protocols.md §2.2): a SOAP 1.1 envelope whose
header carries the ``OIMUser`` credentials and whose body wraps the SPML request in
``processRequest/sOAPElement``; the answer is the first element inside
``processRequestResponse``. Requests are built from templates so their bytes are
fixed (the fake validates the inner SPML against the OASIS schemas). Answers are
parsed without any DTD: a DOCTYPE or entity declaration is refused outright, so no
entity expansion or external fetch can happen (the defusedxml approach, with expat).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

from adsync.plugin import Outcome, Secret

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
OIM = "http://xmlns.oracle.com/OIM/provisioning"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
PASSWORD_TEXT = _PROFILE + "#PasswordText"
SPML = "urn:oasis:names:tc:SPML:2:0"
SPML_SEARCH = "urn:oasis:names:tc:SPML:2:0:search"
SPML_PASSWORD = "urn:oasis:names:tc:SPML:2:0:password"  # noqa: S105 (a namespace)
SPML_ASYNC = "urn:oasis:names:tc:SPML:2:0:async"
DSML = "urn:oasis:names:tc:DSML:2:0:core"
CONTENT_TYPE = "text/xml; charset=utf-8"
NOT_IN_OIM = "the user does not exist in OIM"

# OIM attribute names carry spaces and dots ("Users.User ID"): only what would break the
# XML attribute or the log line is refused.
ATTRIBUTE_NAME = re.compile(r"^[^<>&\"'\x00-\x1f\x7f]+$")
_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class NotXmlText(ValueError):
    """A value XML 1.0 cannot carry (control characters)."""


def text(value: str) -> str:
    if _XML_CHAR.search(value):
        raise NotXmlText("contains characters that XML 1.0 cannot carry")
    return escape(value)


def attr(value: str) -> str:
    if _XML_CHAR.search(value):
        raise NotXmlText("contains characters that XML 1.0 cannot carry")
    return quoteattr(value)


def oim_user_header(username: str, password: Secret) -> str:
    """The ``OIMUser`` header the SPML-DSML service reads (OpenPTK: mustUnderstand="0")."""
    return (
        f'<oim:OIMUser xmlns:oim="{OIM}" soap:mustUnderstand="0">'
        f"<oim:OIMUserId>{text(username)}</oim:OIMUserId>"
        f"<oim:OIMUserPassword>{text(password.reveal())}</oim:OIMUserPassword>"
        "</oim:OIMUser>"
    )


def wss_header(username: str, password: Secret) -> str:
    """WS-Security 1.0 UsernameToken (PasswordText): only for ``auth: wss_username_token``,
    when the site fronts the service with OWSM."""
    return (
        f'<wsse:Security xmlns:wsse="{WSSE}" soap:mustUnderstand="1">'
        "<wsse:UsernameToken>"
        f"<wsse:Username>{text(username)}</wsse:Username>"
        f'<wsse:Password Type="{PASSWORD_TEXT}">{text(password.reveal())}</wsse:Password>'
        "</wsse:UsernameToken>"
        "</wsse:Security>"
    )


def envelope(header: str, spml: str) -> bytes:
    """SOAP 1.1: the credentials header, and the SPML request in processRequest/sOAPElement.

    ``sOAPElement`` is unqualified, as OpenPTK writes it (``<m:processRequest
    xmlns:m="…OIM/provisioning"><sOAPElement>``).
    """
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP}">'
        f"<soap:Header>{header}</soap:Header>"
        "<soap:Body>"
        f'<oim:processRequest xmlns:oim="{OIM}"><sOAPElement>{spml}</sOAPElement>'
        "</oim:processRequest>"
        "</soap:Body>"
        "</soap:Envelope>"
    ).encode()


def search_request(
    request_id: str, attribute: str, value: str, target_id: str | None, base_pso_id: str = ""
) -> str:
    """Step one: find the user whose OIM attribute equals the account (scope="pso" under
    an empty basePsoID, as OpenPTK's OIM operations do; a DSML equalityMatch filter)."""
    target = f" targetID={attr(target_id)}" if target_id else ""
    return (
        f'<spmlsearch:searchRequest xmlns:spml="{SPML}" xmlns:spmlsearch="{SPML_SEARCH}"'
        f' xmlns:dsml="{DSML}" requestID={attr(request_id)} executionMode="synchronous"'
        ' returnData="identifier">'
        f'<spmlsearch:query scope="pso"{target}>'
        f"<spmlsearch:basePsoID ID={attr(base_pso_id)}/>"
        f"<dsml:filter><dsml:equalityMatch name={attr(attribute)}>"
        f"<dsml:value>{text(value)}</dsml:value>"
        "</dsml:equalityMatch></dsml:filter>"
        "</spmlsearch:query>"
        "</spmlsearch:searchRequest>"
    )


@dataclass(frozen=True, slots=True)
class PsoId:
    id: str
    target_id: str | None = None


def set_password_request(request_id: str, pso: PsoId, password: Secret) -> str:
    """Step two: setPasswordRequest for the PSO found in step one."""
    target = f" targetID={attr(pso.target_id)}" if pso.target_id else ""
    return (
        f'<pass:setPasswordRequest xmlns:spml="{SPML}" xmlns:pass="{SPML_PASSWORD}"'
        f' requestID={attr(request_id)} executionMode="synchronous">'
        f"<pass:psoID ID={attr(pso.id)}{target}/>"
        f"<pass:password>{text(password.reveal())}</pass:password>"
        "</pass:setPasswordRequest>"
    )


def status_request(request_id: str, async_request_id: str) -> str:
    """The async capability's statusRequest: is the pending request done yet?"""
    return (
        f'<async:statusRequest xmlns:spml="{SPML}" xmlns:async="{SPML_ASYNC}"'
        f' requestID={attr(request_id)} executionMode="synchronous"'
        f' asyncRequestID={attr(async_request_id)} returnResults="true"/>'
    )


# --- answers ---------------------------------------------------------------------------------


class UnsafeXml(ValueError):
    """A document with a DTD or entity declarations: refused, never expanded."""


def safe_parse(data: bytes) -> ET.Element:
    """Parse with expat, refusing any DOCTYPE or entity declaration before it takes effect."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")

    def name(raw: str) -> str:
        return "{" + raw if "}" in raw else raw

    def start(tag: str, attrs: dict[str, str]) -> None:
        builder.start(name(tag), {name(k): v for k, v in attrs.items()})

    def refuse(*_: object) -> None:
        raise UnsafeXml("DTDs and entity declarations are not accepted")

    parser.StartElementHandler = start
    parser.EndElementHandler = lambda tag: builder.end(name(tag))
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse  # type: ignore[assignment]
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise ET.ParseError(str(exc)) from None
    return builder.close()


@dataclass(frozen=True, slots=True)
class SpmlAnswer:
    """The SPML response inside processRequestResponse, or the SOAP fault, or neither."""

    fault_code: str | None = None
    fault_string: str = ""
    element: ET.Element | None = None
    problem: str = ""  # a SOAP envelope, but not the SPML-DSML service's answer

    @property
    def status(self) -> str:
        return "" if self.element is None else self.element.get("status", "")

    @property
    def error(self) -> str:
        return "" if self.element is None else self.element.get("error", "")

    @property
    def messages(self) -> list[str]:
        if self.element is None:
            return []
        return [(m.text or "").strip() for m in self.element.iter(f"{{{SPML}}}errorMessage")]


def _first_element(parent: ET.Element) -> ET.Element | None:
    return parent[0] if len(parent) else None


def read_answer(data: bytes) -> SpmlAnswer | None:
    """None when the bytes are not a SOAP 1.1 envelope."""
    try:
        root = safe_parse(data)
    except (ET.ParseError, UnsafeXml):
        return None
    body = root.find(f"{{{SOAP}}}Body") if root.tag == f"{{{SOAP}}}Envelope" else None
    if body is None:
        return None
    first = _first_element(body)
    if first is None:
        return SpmlAnswer(problem="an empty soap:Body")
    if first.tag == f"{{{SOAP}}}Fault":
        return SpmlAnswer(
            fault_code=(first.findtext("faultcode") or "").strip(),
            fault_string=(first.findtext("faultstring") or "").strip(),
        )
    if first.tag != f"{{{OIM}}}processRequestResponse":
        return SpmlAnswer(problem="the answer is not a processRequestResponse")
    spml = _first_element(first)
    if spml is None:
        return SpmlAnswer(problem="processRequestResponse holds no SPML response")
    return SpmlAnswer(element=spml)


_AUTH_FAULTS = ("FailedAuthentication", "InvalidSecurity", "InvalidSecurityToken", "FailedCheck")
_AUTH_WORDS = re.compile(
    r"authenticat|credential|unauthori[sz]ed|login failed|invalid login", re.IGNORECASE
)
_CONFIG_FAULTS = {
    "MustUnderstand": "the service does not process a header adsync sent "
    "(auth: wss_username_token against a service without OWSM?)",
    "VersionMismatch": "the service does not speak SOAP 1.1 at this url",
    "Client": "the service refused the request as malformed (check url, auth, match_attribute)",
}


def classify_fault(answer: SpmlAnswer) -> Outcome:
    """SOAP 1.1 §4.4.1 fault codes: MustUnderstand, VersionMismatch and Client faults and
    authentication failures are configuration problems; Server faults are OIM's trouble."""
    code = answer.fault_code or ""
    local = code.rpartition(":")[2].split(".")[0]
    reason = f"SOAP fault {code}: {answer.fault_string}"[:300]
    if local in _AUTH_FAULTS or _AUTH_WORDS.search(answer.fault_string):
        return Outcome.configuration(reason + " (check username/password)")
    if local in _CONFIG_FAULTS:
        return Outcome.configuration(f"{reason} ({_CONFIG_FAULTS[local]})")
    return Outcome.unreachable(reason)  # Server and others: OIM's trouble, try later


def _not_an_answer(answer: SpmlAnswer, wanted: str) -> Outcome | None:
    if answer.fault_code is not None:
        return classify_fault(answer)
    if answer.problem:
        return Outcome.configuration(f"{answer.problem} (is url the SPML-DSML service?)")
    element = answer.element
    if element is None or element.tag != wanted:
        local = wanted.rpartition("}")[2]
        return Outcome.failed(f"the answer is not a {local}")
    return None


_REQUEST_ERRORS = (
    "malformedRequest",
    "unsupportedOperation",
    "unsupportedIdentifierType",
    "unsupportedExecutionMode",
    "unsupportedProfile",
    "unsupportedSelectionType",
    "invalidIdentifier",
)


def classify_search(answer: SpmlAnswer) -> tuple[PsoId | None, Outcome | None]:
    refused = _not_an_answer(answer, f"{{{SPML_SEARCH}}}searchResponse")
    if refused is not None:
        return None, refused
    element = answer.element
    assert element is not None
    if answer.status != "success":
        if answer.error == "noSuchIdentifier":
            return None, Outcome.unknown_user(NOT_IN_OIM)
        if answer.error in _REQUEST_ERRORS:
            detail = _failure("search", answer)
            return None, Outcome.configuration(f"{detail} (check match_attribute, base_pso_id)")
        return None, Outcome.failed(_failure("search", answer))
    found = [p.find(f"{{{SPML}}}psoID") for p in element.findall(f"{{{SPML_SEARCH}}}pso")]
    ids = [PsoId(p.get("ID", ""), p.get("targetID")) for p in found if p is not None]
    if not ids:
        return None, Outcome.unknown_user(NOT_IN_OIM)
    if len(ids) > 1:
        return None, Outcome.failed(f"{len(ids)} OIM users match; expected one")
    if not ids[0].id:
        return None, Outcome.failed("the OIM user found has no psoID")
    return ids[0], None


@dataclass(frozen=True, slots=True)
class Pending:
    """OIM took the request but has not done it yet: ask with statusRequest."""

    async_request_id: str


def _password_result(answer: SpmlAnswer, request_id: str) -> Outcome | Pending:
    if answer.status == "success":
        return Outcome.delivered("OIM set the password")
    if answer.status == "pending":
        # SPML 2 async: the provider answers pending with the requestID to ask about.
        element = answer.element
        return Pending((element.get("requestID") if element is not None else None) or request_id)
    if answer.error == "noSuchIdentifier":
        return Outcome.unknown_user(NOT_IN_OIM)
    if answer.error in _REQUEST_ERRORS:
        return Outcome.configuration(_failure("setPassword", answer))
    return Outcome.rejected(_failure("setPassword", answer))  # customError: OIM refused it


def classify_set_password(answer: SpmlAnswer, request_id: str = "") -> Outcome | Pending:
    refused = _not_an_answer(answer, f"{{{SPML_PASSWORD}}}setPasswordResponse")
    if refused is not None:
        return refused
    return _password_result(answer, request_id)


def classify_status(answer: SpmlAnswer, async_request_id: str) -> Outcome | Pending:
    """statusResponse: its own status is the asynchronous request's; with returnResults the
    setPasswordResponse inside says more (its messages)."""
    refused = _not_an_answer(answer, f"{{{SPML_ASYNC}}}statusResponse")
    if refused is not None:
        return refused
    assert answer.element is not None
    inner = answer.element.find(f"{{{SPML_PASSWORD}}}setPasswordResponse")
    if answer.status != "pending" and inner is not None:
        return _password_result(SpmlAnswer(element=inner), async_request_id)
    if answer.status == "pending":
        return Pending(async_request_id)
    if answer.status == "failure" and answer.error == "noSuchRequest":
        return Outcome.unreachable("OIM no longer knows the pending request; sending it again")
    return _password_result(answer, async_request_id)


def _failure(what: str, answer: SpmlAnswer) -> str:
    detail = "; ".join(m for m in answer.messages if m)
    return (
        f"{what} failed ({answer.error or 'no error code'})" + (f": {detail}" if detail else "")
    )[:400]
