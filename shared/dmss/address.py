"""DMSS addresses: parse, normalise and resolve (pure functions, no I/O).

Grammar (dm-job.md, "Address syntax")::

    address   := ["dmss://"] data_source "/" path
    path      := first item*
    first     := "$" id                 document by id
               | name                   root package by name
    item      := "/" name               package content by name
               | "." attribute          attribute
               | "[" digits "]"         list index
               | "(" k "=" v ("," k "=" v)* ")"   query (first match in a list, or a check on an object)

Clients send the address in the route of `POST /api/jobs/{*address}` in many shapes: URL-encoded
(`dmss%3A%2F%2FDS%2F%24id`), encoded twice by a proxy (`dmss%253A...`), plain, without `dmss://`, with the
scheme's `//` merged into one `/` by a proxy (`dmss:/DS/$id`), with a leading `/` from the route, or in quotes.
`parse_address` accepts all of them and gives one canonical form, `dmss://DS/<path>`; anything else is a
`BadRequest` (400) whose message says what is wrong. The raw input is echoed in messages: it is an address
from the URL, never a secret.

Relative references (a Reference entity's `address`): `~` goes up one level from the reference's own position
(a list element pops its index *and* its attribute; a package-content item pops to its package); `^` is the
document the reference sits in. `resolve_reference(job_address, "~.~.~.sce")` for a job at
`dmss://DS/$doc.study.jobs[0]` (so the reference is at `$doc.study.jobs[0].applicationInput`) gives
`dmss://DS/$doc.sce`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from shared.platform.errors import BadRequest

SCHEME = "dmss://"

#: how many rounds of percent-decoding are tried (a proxy may encode the route again, each round once)
MAX_DECODE_ROUNDS = 4
MAX_ADDRESS_LENGTH = 2048

_NAME = r"[A-Za-z0-9_\-]+"
_NAME_RE = re.compile(_NAME)
_ID_RE = re.compile(r"[A-Za-z0-9_\-]+")
_ATTR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_INDEX_RE = re.compile(r"\[(\d+)\]")
_QUERY_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-.]*")
_PERCENT_RE = re.compile(r"%[0-9A-Fa-f]{2}")
_SCHEME_RE = re.compile(r"^dmss:/*", re.IGNORECASE)

# item kinds
ID, NAME, ATTR, INDEX, QUERY = "id", "name", "attr", "index", "query"


@dataclass(frozen=True)
class Item:
    """One step of a path. `value` is a str (id without `$`, name, attribute), an int (index) or, for a
    query, a tuple of (key, value) pairs."""

    kind: str
    value: str | int | tuple[tuple[str, str], ...]

    def render(self, first: bool) -> str:
        if self.kind == ID:
            return f"${self.value}"
        if self.kind == NAME:
            return str(self.value) if first else f"/{self.value}"
        if self.kind == ATTR:
            return f".{self.value}"
        if self.kind == INDEX:
            return f"[{self.value}]"
        pairs = ",".join(f"{k}={v}" for k, v in self.value)  # type: ignore[union-attr]
        return f"({pairs})"


@dataclass(frozen=True)
class DmssAddress:
    data_source: str
    items: tuple[Item, ...]

    @property
    def path(self) -> str:
        return render_items(self.items)

    def __str__(self) -> str:
        return f"{SCHEME}{self.data_source}/{self.path}" if self.items else f"{SCHEME}{self.data_source}"

    @property
    def document(self) -> "DmssAddress":
        """The address of the document this address points into: the `$id`, or the package path
        (`Root/Sub/Entity`), without the attribute/index/query items that follow it."""
        head: list[Item] = []
        for item in self.items:
            if item.kind in (ID, NAME) and (not head or item.kind == NAME):
                head.append(item)
            else:
                break
        return DmssAddress(self.data_source, tuple(head))

    def child(self, *items: Item) -> "DmssAddress":
        return DmssAddress(self.data_source, self.items + tuple(items))

    def attribute(self, name: str) -> "DmssAddress":
        return self.child(Item(ATTR, name))


def render_items(items: tuple[Item, ...] | list[Item]) -> str:
    return "".join(item.render(i == 0) for i, item in enumerate(items))


# --- decoding -------------------------------------------------------------------------------------------


def decode(raw: str) -> str:
    """Undo URL-encoding, once or several times (proxies), until nothing percent-encoded is left.

    `+` is left alone (a path, not a form). Stops after MAX_DECODE_ROUNDS rounds."""
    value = raw
    for _ in range(MAX_DECODE_ROUNDS):
        if not _PERCENT_RE.search(value):
            break
        decoded = unquote(value, errors="strict")
        if decoded == value:
            break
        value = decoded
    return value


def _bad(raw: str, why: str) -> BadRequest:
    shown = raw if len(raw) <= 200 else raw[:200] + "..."
    return BadRequest(f"Invalid DMSS address {shown!r}: {why}", data={"address": shown})


def _clean(raw: object) -> str:
    if not isinstance(raw, str):
        raise BadRequest("Invalid DMSS address: expected a string", data={"address": None})
    if len(raw) > MAX_ADDRESS_LENGTH * 3:
        raise _bad(raw, f"longer than {MAX_ADDRESS_LENGTH} characters")
    try:
        value = decode(raw.strip())
    except UnicodeDecodeError:
        raise _bad(raw, "percent-encoding does not decode to UTF-8") from None
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1].strip()
    if len(value) > MAX_ADDRESS_LENGTH:
        raise _bad(raw, f"longer than {MAX_ADDRESS_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 or c.isspace() for c in value):
        raise _bad(raw, "it contains whitespace or control characters")
    if "%" in value:
        raise _bad(raw, "it contains a '%' that is not valid percent-encoding")
    return value


# --- path items -----------------------------------------------------------------------------------------


def _parse_query(text: str, pos: int, raw: str) -> tuple[Item, int]:
    end = text.find(")", pos)
    if end < 0:
        raise _bad(raw, f"unclosed '(' at position {pos}")
    body = text[pos + 1 : end]
    if not body:
        raise _bad(raw, "empty query '()'")
    pairs: list[tuple[str, str]] = []
    for part in body.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise _bad(raw, f"query item {part!r} is not 'key=value'")
        if not _QUERY_KEY_RE.fullmatch(key):
            raise _bad(raw, f"query key {key!r} is not an attribute name")
        if any(c in value for c in "()[]"):
            raise _bad(raw, f"query value {value!r} contains brackets")
        pairs.append((key, value))
    return Item(QUERY, tuple(pairs)), end + 1


def _parse_head(text: str, raw: str) -> tuple[Item, int]:
    """The first item of an absolute path: `$<id>` or a root package name."""
    if not text:
        raise _bad(raw, "no path after the data source (expected '$<id>' or a root package name)")
    if text[0] in "~^":
        raise _bad(raw, f"{text[0]!r} (relative reference) is only allowed at the start of a reference")
    if text[0] == "$":
        m = _ID_RE.match(text, 1)
        if not m:
            raise _bad(raw, "'$' must be followed by a document id")
        return Item(ID, m.group(0)), m.end()
    m = _NAME_RE.match(text)
    if not m:
        raise _bad(raw, f"the path must start with '$<id>' or a root package name, not {text[0]!r}")
    return Item(NAME, m.group(0)), m.end()


def _parse_attribute(text: str, pos: int, raw: str, items: list[Item], continuation: bool) -> tuple[Item, int]:
    m = _ATTR_RE.match(text, pos + 1)
    if not m and text.startswith(("~", "^"), pos + 1):
        raise _bad(raw, f"{text[pos + 1]!r} (relative reference) is only allowed at the start of a reference")
    if not m:
        raise _bad(raw, f"'.' at position {pos} must be followed by an attribute name")
    return Item(ATTR, m.group(0)), m.end()


def _parse_name(text: str, pos: int, raw: str, items: list[Item], continuation: bool) -> tuple[Item, int]:
    m = _NAME_RE.match(text, pos + 1)
    if not m:
        if pos + 1 == len(text):
            raise _bad(raw, "trailing '/' in the path")
        raise _bad(raw, f"'/' at position {pos} must be followed by a package or entity name")
    if items and items[-1].kind in (INDEX, QUERY):
        raise _bad(raw, f"'/{m.group(0)}' cannot follow a list index or query")
    return Item(NAME, m.group(0)), m.end()


def _parse_index(text: str, pos: int, raw: str, items: list[Item], continuation: bool) -> tuple[Item, int]:
    m = _INDEX_RE.match(text, pos)
    if not m:
        raise _bad(raw, f"'[' at position {pos} must be a list index like [0]")
    if not items and not continuation:
        raise _bad(raw, "a list index needs a list before it")
    return Item(INDEX, int(m.group(1))), m.end()


def _parse_filter(text: str, pos: int, raw: str, items: list[Item], continuation: bool) -> tuple[Item, int]:
    if not items and not continuation:
        raise _bad(raw, "a query needs something to filter before it")
    return _parse_query(text, pos, raw)


_STEPS = {".": _parse_attribute, "/": _parse_name, "[": _parse_index, "(": _parse_filter}


def parse_items(text: str, raw: str, *, continuation: bool = False) -> tuple[Item, ...]:
    """Parse a path. With `continuation`, the text continues another path (it starts with `.`, `/`, `[`,
    `(` or is empty); otherwise it starts with `$id` or a root package name."""
    items: list[Item] = []
    pos = 0
    if not continuation:
        head, pos = _parse_head(text, raw)
        items.append(head)
    while pos < len(text):
        c = text[pos]
        step = _STEPS.get(c)
        if step is None:
            if c in "~^":
                raise _bad(raw, f"{c!r} (relative reference) is only allowed at the start of a reference")
            raise _bad(raw, f"unexpected {c!r} at position {pos}")
        item, pos = step(text, pos, raw, items, continuation)
        items.append(item)
    return tuple(items)


# --- absolute addresses ---------------------------------------------------------------------------------


def parse_address(raw: str, *, default_data_source: str | None = None) -> DmssAddress:
    """Parse an absolute address in any accepted form (see the module doc); `BadRequest` otherwise.

    `default_data_source` allows `$id...` without a data source (the data source of the document a
    reference sits in)."""
    value = _clean(raw)
    if not value:
        raise _bad(raw, "it is empty")
    if value[0] in "~^":
        raise _bad(raw, "a relative address ('~', '^') needs the position it is relative to")
    value = value.lstrip("/")
    m = _SCHEME_RE.match(value)
    if m:
        value = value[m.end() :]
    elif "://" in value:
        raise _bad(raw, f"unknown protocol {value.split('://', 1)[0]!r} (only dmss:// is supported)")
    value = value.lstrip("/")
    if value.endswith("/"):
        value = value[:-1]
    if not value:
        raise _bad(raw, "no data source")
    if value[0] == "$":
        if not default_data_source:
            raise _bad(raw, "no data source before '$<id>' (expected 'DS/$<id>')")
        return DmssAddress(default_data_source, parse_items(value, raw))
    data_source, sep, path = value.partition("/")
    if not _NAME_RE.fullmatch(data_source):
        raise _bad(raw, f"{data_source!r} is not a data source name (letters, digits, '_' and '-')")
    if not sep or not path:
        raise _bad(raw, "no path after the data source (expected 'DS/$<id>' or 'DS/RootPackage/...')")
    return DmssAddress(data_source, parse_items(path, raw))


def parse_target(raw: str) -> DmssAddress:
    """Like `parse_address`, but a bare data source (`dmss://DS`) is allowed: a place to add documents."""
    value = _clean(raw)
    bare = _SCHEME_RE.sub("", value.lstrip("/")).strip("/")
    if bare and _NAME_RE.fullmatch(bare):
        return DmssAddress(bare, ())
    return parse_address(raw)


def normalise_address(raw: str) -> str:
    """The canonical `dmss://DS/path` form of any accepted address."""
    return str(parse_address(raw))


# --- relative references --------------------------------------------------------------------------------


def _up(items: list[Item], position: DmssAddress, reference: str, count: int) -> None:
    """Pop one level. A list element ([i] or a query on a list) pops its selector and its attribute."""
    if len(items) <= 1:
        raise BadRequest(
            f"Reference {reference!r} at {position} goes up {count} level(s), above the document root",
            data={"reference": reference, "position": str(position)},
        )
    last = items.pop()
    if last.kind in (INDEX, QUERY) and items and items[-1].kind == ATTR:
        items.pop()
    if not items:
        raise BadRequest(
            f"Reference {reference!r} at {position} goes up {count} level(s), above the document root",
            data={"reference": reference, "position": str(position)},
        )


def resolve_relative(position: str | DmssAddress, reference_address: str) -> str:
    """Resolve a reference's `address` found at `position` (the address of the Reference entity itself).

    Accepted reference forms: absolute (`dmss://DS/...`, `DS/...`), `$id...` (same data source), `^...`
    (the current document), `~`, `~.~.attr`, `~[0]`, `~/Name`. Returns a canonical absolute address."""
    pos = position if isinstance(position, DmssAddress) else parse_address(position)
    value = _clean(reference_address)
    if not value:
        raise BadRequest(f"Reference at {pos} has an empty address", data={"position": str(pos)})
    if value[0] == "^":
        rest = value[1:]
        base = pos.document
        return str(DmssAddress(pos.data_source, base.items + parse_items(rest, reference_address, continuation=True)))
    if value[0] == "~":
        items = list(pos.items)
        i = 0
        count = 0
        while i < len(value) and value[i] == "~":
            count += 1
            _up(items, pos, reference_address, count)
            i += 1
            if value.startswith("~", i):
                raise _bad(reference_address, "'~' must be separated from the next '~' by '.' ('~.~')")
            if value.startswith(".~", i):
                i += 1  # the separator between two ~
        rest = value[i:]
        return str(DmssAddress(pos.data_source, tuple(items) + parse_items(rest, reference_address, continuation=True)))
    return str(parse_address(value, default_data_source=pos.data_source))


def resolve_reference(job_address: str, reference_address: str, attribute: str = "applicationInput") -> str:
    """Absolute address of the reference stored in the job's `attribute` (default `applicationInput`).

    >>> resolve_reference("dmss://DS/$doc.study.jobs[0]", "~.~.~.sce")
    'dmss://DS/$doc.sce'
    """
    job = parse_address(job_address)
    return resolve_relative(job.attribute(attribute), reference_address)


def is_relative(reference_address: str) -> bool:
    value = _clean(reference_address)
    return value.startswith(("~", "^"))
