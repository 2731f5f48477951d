"""The cause catalogue: what a TLS reason text means, who must act, how to fix it.

The catalogue is data, one TOML file per family of wording in `catalogue/`
(OpenSSL reason codes, GnuTLS sentences, Exchange tokens, MTA policy lines). Each
``[[cause]]`` entry has:

``id``
    a stable name, used in reports and JSON (``cause`` field).
``pattern``
    a regular expression searched, case-insensitively, in the reason text.
``direction``, ``mta`` (optional)
    restrict the entry to inbound or outbound failures, or to one MTA's logs.
``kind``, ``culprit``
    the failure kind and the side that must act (``peer``, ``local``, ``unknown``).
``cause``, ``note``
    the likely cause in one sentence, and a note one can forward to the peer.
``fix.postfix``, ``fix.exim``, ``fix.exchange``
    the change to make, in the words of each MTA's configuration.
``example``
    a real reason text the entry must match; the test suite checks every one.

Entries are tried in file order (files sorted by name), first match wins, so a
specific entry stands before a general one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache, lru_cache

from smtplogscan.errors import CatalogueError
from smtplogscan.records import Culprit, Direction, Kind

_FALLBACK_ID = "unknown-tls-reason"


@dataclass(frozen=True, slots=True)
class Cause:
    """One entry of the cause catalogue."""

    id: str
    pattern: re.Pattern[str]
    kind: Kind
    culprit: Culprit
    cause: str
    note: str = ""
    fix: dict[str, str] = field(default_factory=dict)
    example: str = ""
    direction: Direction | None = None
    mta: str | None = None
    file: str = ""

    def applies(self, detail: str, direction: Direction, mta: str) -> bool:
        """Tell whether this entry explains `detail` seen in that direction and MTA."""
        if self.direction is not None and direction is not self.direction:
            return False
        if self.mta is not None and mta != self.mta:
            return False
        return self.pattern.search(detail) is not None

    def advice(self, mta: str) -> str:
        """Return the fix for `mta`, or the first fix there is."""
        return self.fix.get(mta) or next(iter(self.fix.values()), "")


FALLBACK = Cause(
    id=_FALLBACK_ID,
    pattern=re.compile(r"(?!)"),
    kind=Kind.OTHER,
    culprit=Culprit.UNKNOWN,
    cause="A TLS error that the catalogue does not know yet; its text is kept.",
    note="",
    fix={
        "postfix": "Read the reason text; raise smtpd_tls_loglevel or "
        "smtp_tls_loglevel to 2 for the one peer if it is not clear.",
        "exim": "Read the reason text; run the delivery again with -d+tls.",
        "exchange": "Read the Schannel events in the System log at the same time.",
    },
)


def _entry(raw: dict[str, object], file: str) -> Cause:
    try:
        direction = raw.get("direction")
        fix = raw.get("fix", {})
        if not isinstance(fix, dict):
            raise TypeError("fix must be a table")
        return Cause(
            id=str(raw["id"]),
            pattern=re.compile(str(raw["pattern"]), re.IGNORECASE | re.DOTALL),
            kind=Kind(str(raw["kind"])),
            culprit=Culprit(str(raw["culprit"])),
            cause=str(raw["cause"]),
            note=str(raw.get("note", "")),
            fix={str(k): str(v) for k, v in fix.items()},
            example=str(raw.get("example", "")),
            direction=Direction(str(direction)) if direction else None,
            mta=str(raw["mta"]) if raw.get("mta") else None,
            file=file,
        )
    except (KeyError, ValueError, TypeError, re.error) as err:
        name = raw.get("id", "?")
        raise CatalogueError(f"{file}: cause {name!r}: {err}") from err


@cache
def catalogue() -> tuple[Cause, ...]:
    """Load every catalogue file shipped with the package, in order."""
    # Imported here: commands that classify nothing (grammars, --help) skip them.
    import tomllib
    from importlib import resources

    folder = resources.files("smtplogscan") / "catalogue"
    entries: list[Cause] = []
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".toml"):
            continue
        try:
            data = tomllib.loads(item.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise CatalogueError(f"{item.name}: {err}") from err
        entries.extend(_entry(raw, item.name) for raw in data.get("cause", []))

    seen: set[str] = set()
    for entry in entries:
        if entry.id in seen:
            raise CatalogueError(f"{entry.file}: cause {entry.id!r} is defined twice")
        seen.add(entry.id)
    return tuple(entries)


@cache
def by_id() -> dict[str, Cause]:
    """Map each cause id, the fallback's included, to its entry."""
    return {c.id: c for c in (*catalogue(), FALLBACK)}


@lru_cache(maxsize=4096)
def classify(detail: str, direction: Direction, mta: str) -> Cause:
    """Return the first catalogue entry that explains `detail`, or the fallback."""
    for entry in catalogue():
        if entry.applies(detail, direction, mta):
            return entry
    return FALLBACK
