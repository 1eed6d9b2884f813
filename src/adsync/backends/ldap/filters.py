"""Search filters built from a template and an account name (pure, no I/O)."""

from __future__ import annotations

import re

PLACEHOLDERS = ("{account}", "{domain}")
_PLACEHOLDER_RE = re.compile(r"\{account\}|\{domain\}")


def escape_filter_value(value: str) -> str:
    """RFC 4515 §3: escape ``\\ * ( )`` and NUL as ``\\XX`` so a value cannot change the filter."""
    out = []
    for char in value:
        if char in "\\*()\x00":
            out.append(f"\\{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def check_filter_template(template: str) -> str:
    """Accept a template such as ``(uid={account})``; refuse what cannot work."""
    if "{account}" not in template:
        raise ValueError("must contain the placeholder {account}")
    probe = template
    for placeholder in PLACEHOLDERS:
        probe = probe.replace(placeholder, "x")
    if "{" in probe or "}" in probe:
        raise ValueError("unknown placeholder: only {account} and {domain} are allowed")
    if not (probe.startswith("(") and probe.endswith(")")):
        raise ValueError("must be a parenthesised LDAP filter, e.g. (uid={account})")
    depth = 0
    escaped = False
    for char in probe:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                break
    if depth != 0:
        raise ValueError("unbalanced parentheses")
    return template


def build_filter(template: str, account: str, domain: str = "") -> str:
    """Substitute the escaped account (and domain) into the template."""
    values = {"{account}": escape_filter_value(account), "{domain}": escape_filter_value(domain)}
    # One pass, so a value that itself contains "{domain}" is not substituted again.
    return _PLACEHOLDER_RE.sub(lambda m: values[m.group(0)], template)
