"""What the demo sends and what each scenario must end with (pure data, no I/O).

The passwords are constants so that a test can check that none of them appears in
the demo's output; they are demo values, never shown, and protect nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

WEBHOOK: Final = "hr-webhook"
SOFFID: Final = "soffid"
BACKENDS: Final = (WEBHOOK, SOFFID)
DOMAIN: Final = "DEMO"
SOURCE_HOST: Final = "dc1.demo.test"
SOFFID_AGENT: Final = "AD demo"
KNOWN_ACCOUNTS: Final = frozenset({"alice", "bob", "carol"})  # ghost is known nowhere

POLICY_REASON: Final = "this password appears in a list of breached passwords"

DEMO_PASSWORDS: Final[dict[str, str]] = {
    "alice": "Mimosa-Harbor-7391",
    "bob": "Summer2024!",  # the "breached" one the policy check rejects
    "ghost": "Quartz-Lantern-2048",
    "carol": "Juniper-Orbit-5512",
}


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    number: int
    title: str
    account: str
    expect: str  # the expected end, as the summary states it


DELIVERED = Scenario("delivered", 1, "normal change", "alice", "delivered to every target")
POLICY = Scenario("policy", 2, "policy check", "bob", "rejected by policy before AD stores it")
UNKNOWN = Scenario("unknown", 3, "unknown user", "ghost", "failed once unknown_user_grace is over")
OUTAGE = Scenario(
    "outage", 4, "target outage", "carol", "retried while soffid is down, then delivered"
)
SCENARIOS: Final = (DELIVERED, POLICY, UNKNOWN, OUTAGE)

# Short retry values so the whole demo takes seconds, not hours.
RETRY: Final[dict[str, object]] = {
    "backoff": {"initial": "500ms", "max": "2s", "factor": 2, "jitter": 0.1},
    "max_rejections": 2,
    "unknown_user_grace": "2500ms",
    "expire_after": "1m",
}
TARGET_LATENCY: Final = 0.3  # seconds each fake takes to answer, so "in flight" is visible
OUTAGE_ATTEMPTS: Final = 3  # failed attempts to wait for before the target comes back
