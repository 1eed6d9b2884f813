"""Reading and editing smb.conf's [global] section (pure: text in, text out)."""

from __future__ import annotations

import re

_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")


def _key(line: str) -> str | None:
    stripped = line.strip()
    if not stripped or stripped[0] in "#;" or "=" not in stripped:
        return None
    return " ".join(stripped.split("=", 1)[0].split()).lower()


def global_value(text: str, key: str) -> str | None:
    """The value of ``key`` in [global] (Samba's keys ignore case and spaces)."""
    wanted = " ".join(key.split()).lower()
    section = None
    for line in text.splitlines():
        match = _SECTION.match(line)
        if match:
            section = match.group(1).strip().lower()
            continue
        if section == "global" and _key(line) == wanted:
            return line.split("=", 1)[1].strip()
    return None


def set_global(text: str, values: dict[str, str]) -> str:
    """Set each key in [global]: replace an existing line, else append to the section."""
    wanted = {" ".join(k.split()).lower(): (k, v) for k, v in values.items()}
    lines = text.splitlines()
    out: list[str] = []
    section = None
    done: set[str] = set()
    global_end: int | None = None
    for line in lines:
        match = _SECTION.match(line)
        if match:
            if section == "global":
                global_end = _before_blank_lines(out)
            section = match.group(1).strip().lower()
            out.append(line)
            continue
        key = _key(line)
        if section == "global" and key in wanted:
            if key in done:
                continue  # a duplicate would be ambiguous: keep one
            name, value = wanted[key]
            out.append(f"\t{name} = {value}")
            done.add(key)
            continue
        out.append(line)
    if section == "global":
        global_end = _before_blank_lines(out)
    missing = [f"\t{name} = {value}" for key, (name, value) in wanted.items() if key not in done]
    if global_end is None:
        out = ["[global]", *missing, "", *out]
    else:
        out[global_end:global_end] = missing
    return "\n".join(out) + "\n"


def _before_blank_lines(lines: list[str]) -> int:
    end = len(lines)
    while end > 0 and not lines[end - 1].strip():
        end -= 1
    return end
