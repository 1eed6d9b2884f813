"""SPML v2 over SOAP 1.1 for OIM, as pure functions: build requests, read answers.

Requests are built from templates so their bytes are fixed (the fake validates
them against the OASIS SPML v2 schemas). Answers are parsed without any DTD:
a DOCTYPE or entity declaration is refused outright, so no entity expansion
or external fetch can happen (the defusedxml approach, with the stdlib parser).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

from adsync.plugin import Outcome, Secret

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
PASSWORD_TEXT = _PROFILE + "#PasswordText"
SPML = "urn:oasis:names:tc:SPML:2:0"
SPML_SEARCH = "urn:oasis:names:tc:SPML:2:0:search"
SPML_PASSWORD = "urn:oasis:names:tc:SPML:2:0:password"  # noqa: S105 (a namespace)
DSML = "urn:oasis:names:tc:DSML:2:0:core"
CONTENT_TYPE = "text/xml; charset=utf-8"
NOT_IN_OIM = "the user does not exist in OIM"

# DSML v2 AttributeDescriptionValue: the only attribute names a dsml:filter may carry.
ATTRIBUTE_NAME = re.compile(
    r"^((([0-2](\.[0-9]+)+)|([a-zA-Z]+([a-zA-Z0-9]|[-])*))(;([a-zA-Z0-9]|[-])+)*)$"
)
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


def envelope(username: str, password: Secret, body: str) -> bytes:
    """SOAP 1.1 with a WS-Security 1.0 UsernameToken (PasswordText), as OWSM expects."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP}">'
        "<soap:Header>"
        f'<wsse:Security xmlns:wsse="{WSSE}" soap:mustUnderstand="1">'
        f'<wsse:UsernameToken xmlns:wsu="{WSU}">'
        f"<wsse:Username>{text(username)}</wsse:Username>"
        f'<wsse:Password Type="{PASSWORD_TEXT}">{text(password.reveal())}</wsse:Password>'
        "</wsse:UsernameToken>"
        "</wsse:Security>"
        "</soap:Header>"
        f"<soap:Body>{body}</soap:Body>"
        "</soap:Envelope>"
    ).encode()


def search_request(request_id: str, attribute: str, value: str, target_id: str | None) -> str:
    """Step one: the DSML-profile search for the user whose attribute equals the account."""
    target = f" targetID={attr(target_id)}" if target_id else ""
    return (
        f'<spmlsearch:searchRequest xmlns:spml="{SPML}" xmlns:spmlsearch="{SPML_SEARCH}"'
        f' xmlns:dsml="{DSML}" requestID={attr(request_id)} executionMode="synchronous"'
        ' returnData="identifier">'
        f'<spmlsearch:query scope="subTree"{target}>'
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
    """The first element of soap:Body, or the SOAP fault."""

    fault_code: str | None = None
    fault_string: str = ""
    element: ET.Element | None = None

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


def read_answer(data: bytes) -> SpmlAnswer | None:
    """None when the bytes are not a SOAP 1.1 envelope."""
    try:
        root = safe_parse(data)
    except (ET.ParseError, UnsafeXml):
        return None
    body = root.find(f"{{{SOAP}}}Body") if root.tag == f"{{{SOAP}}}Envelope" else None
    if body is None or len(body) == 0:
        return None
    first = body[0]
    if first.tag == f"{{{SOAP}}}Fault":
        return SpmlAnswer(
            fault_code=(first.findtext("faultcode") or "").strip(),
            fault_string=(first.findtext("faultstring") or "").strip(),
        )
    return SpmlAnswer(element=first)


def classify_fault(answer: SpmlAnswer) -> Outcome:
    code = answer.fault_code or ""
    local = code.rpartition(":")[2]
    reason = f"SOAP fault {code}: {answer.fault_string}"[:400]
    if local in ("FailedAuthentication", "InvalidSecurity", "InvalidSecurityToken"):
        return Outcome.failed(reason + " (check username/password)")
    if local == "Client":
        return Outcome.failed(reason)
    return Outcome.unreachable(reason)  # Server and others: OIM's trouble, try later


def classify_search(answer: SpmlAnswer) -> tuple[PsoId | None, Outcome | None]:
    if answer.fault_code is not None:
        return None, classify_fault(answer)
    element = answer.element
    if element is None or element.tag != f"{{{SPML_SEARCH}}}searchResponse":
        return None, Outcome.failed("the answer to searchRequest is not a searchResponse")
    if answer.status != "success":
        if answer.error == "noSuchIdentifier":
            return None, Outcome.unknown_user(NOT_IN_OIM)
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


def classify_set_password(answer: SpmlAnswer) -> Outcome:
    if answer.fault_code is not None:
        return classify_fault(answer)
    element = answer.element
    if element is None or element.tag != f"{{{SPML_PASSWORD}}}setPasswordResponse":
        return Outcome.failed("the answer to setPasswordRequest is not a setPasswordResponse")
    if answer.status == "success":
        return Outcome.delivered("OIM set the password")
    if answer.status == "pending":
        return Outcome.delivered("OIM accepted the request (pending)")
    if answer.error == "noSuchIdentifier":
        return Outcome.unknown_user(NOT_IN_OIM)
    if answer.error in (
        "malformedRequest",
        "unsupportedOperation",
        "unsupportedIdentifierType",
        "unsupportedExecutionMode",
        "unsupportedProfile",
        "invalidIdentifier",
    ):
        return Outcome.failed(_failure("setPassword", answer))
    return Outcome.rejected(_failure("setPassword", answer))  # customError: OIM refused it


def _failure(what: str, answer: SpmlAnswer) -> str:
    detail = "; ".join(m for m in answer.messages if m)
    return (
        f"{what} failed ({answer.error or 'no error code'})" + (f": {detail}" if detail else "")
    )[:400]
