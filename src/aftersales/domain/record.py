"""The tamper-evident record of D3 (and S5): a hash chain over every item of a case or complaint, signed at its head.

The file is ONE JSON document written in ONE canonical serialisation (:func:`serialise`), so a verifier can parse it,
write it again and compare bytes: together with the chain and the signature, a change of any single byte is found.

Layout (format ``aftersales-record``, version 1)::

    {"header": {...}, "header_hash": H(header), "links": [{"index", "kind", "item", "hash"}, ...],
     "head": <hash of the last link>, "signature": {"alg": "HMAC-SHA256", "value": ...}}

* ``header_hash = sha256(canonical_json(header))``;
* ``hash_i = sha256(hash_{i-1} || canonical_json({"index": i, "kind": kind_i, "item": item_i}))`` where
  ``hash_{i-1}`` is the lowercase hex text of the previous hash (``header_hash`` for the first link);
* ``head`` is the last link's hash (``header_hash`` when there is no link);
* the signature is HMAC-SHA256 under the server's record secret of ``"aftersales-record/1:" + head``: anyone can
  re-check the chain, only the server (or whoever holds the secret) can issue a head that verifies.

Pure: no I/O, no clock (the export instant is in the header the caller builds).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from typing import Any

FORMAT = "aftersales-record"
VERSION = 1
ALG = "HMAC-SHA256"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TOP = frozenset({"header", "header_hash", "links", "head", "signature"})
_LINK = frozenset({"index", "kind", "item", "hash"})


def canonical_json(value: Any) -> bytes:
    """The bytes that are hashed: sorted keys, no spaces, UTF-8 (not ASCII-escaped)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def serialise(doc: Any) -> bytes:
    """The one serialisation of a record file (readable, and reproducible byte for byte from its parsed value)."""
    return (json.dumps(doc, sort_keys=True, ensure_ascii=False, indent=1, separators=(",", ": "), allow_nan=False) + "\n").encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def link_hash(previous: str, index: int, kind: str, item: Any) -> str:
    """``sha256(previous || canonical_json(link without its hash))``."""
    return sha256_hex(previous.encode("ascii") + canonical_json({"index": index, "kind": kind, "item": item}))


def sign(head: str, secret: str) -> str:
    """HMAC-SHA256 of the head hash under the record secret."""
    return hmac.new(secret.encode("utf-8"), f"{FORMAT}/{VERSION}:{head}".encode("ascii"), hashlib.sha256).hexdigest()


def build(header: dict[str, Any], items: list[tuple[str, Any]], secret: str) -> dict[str, Any]:
    """Chain ``items`` (kind, JSON value) after ``header`` and sign the head; returns the record document."""
    header = {"format": FORMAT, "version": VERSION, **header}
    previous = header_hash = sha256_hex(canonical_json(header))
    links = []
    for index, (kind, item) in enumerate(items):
        previous = link_hash(previous, index, kind, item)
        links.append({"index": index, "kind": kind, "item": item, "hash": previous})
    return {"header": header, "header_hash": header_hash, "links": links, "head": previous,
            "signature": {"alg": ALG, "value": sign(previous, secret)}}


def describe(kind: Any, item: Any) -> str:
    """A short human name for a link, used to say where a record was changed."""
    i = item if isinstance(item, dict) else {}
    if kind == "event" or kind == "ledger_transaction":
        return f"{kind.replace('_', ' ')} {i.get('kind')!r} at {i.get('at')}"
    if kind == "message":
        return f"message {i.get('id')} by {i.get('author')} at {i.get('at')}"
    if kind == "evidence":
        return f"evidence {i.get('filename')!r} at {i.get('at')}"
    if kind == "dispute_path":
        return f"dispute path {i.get('path')!r} started {i.get('started_at')}"
    return f"{kind} {i.get('id')!r}" if i.get("id") is not None else str(kind)


@dataclass
class Verdict:
    """The outcome of :func:`verify`: ``ok`` only when every check passed; ``problems`` say where it broke."""

    problems: list[str] = field(default_factory=list)
    links: int = 0
    head: str | None = None
    #: "valid", "invalid", or "not checked" (no secret given)
    signature: str = "not checked"
    subject: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _where(data: bytes, offset: int) -> str:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"byte {offset} (line {line}, column {column})"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse(data: bytes) -> tuple[Any, str | None]:
    """Decode and parse a record file; on failure, None and where it failed."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not valid UTF-8 at {_where(data, exc.start)}"
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant), None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON at {_where(data, len(text[:exc.pos].encode('utf-8')))}: {exc.msg}"
    except ValueError as exc:
        return None, f"not a valid record: {exc}"


def _shape(doc: Any) -> str | None:
    if not isinstance(doc, dict) or set(doc) != _TOP:
        return f"not a record file: the top level must have exactly the keys {sorted(_TOP)}"
    header = doc["header"]
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") != VERSION:
        return f"the header does not name format {FORMAT!r} version {VERSION}"
    if not isinstance(doc["links"], list):
        return "links must be a list"
    for pos, link in enumerate(doc["links"]):
        if not isinstance(link, dict) or set(link) != _LINK:
            return f"link {pos} must have exactly the keys {sorted(_LINK)}"
        if link["index"] != pos or type(link["index"]) is not int:
            return f"link {pos} carries index {link['index']!r}: links were removed, added or reordered"
        if not isinstance(link["kind"], str) or not isinstance(link["hash"], str) or not _HEX64.match(link["hash"]):
            return f"link {pos} ({describe(link['kind'], link['item'])}) has a malformed kind or hash"
    for name in ("header_hash", "head"):
        if not isinstance(doc[name], str) or not _HEX64.match(doc[name]):
            return f"{name} is not a sha256 hex digest"
    sig = doc["signature"]
    if not isinstance(sig, dict) or set(sig) != {"alg", "value"} or sig["alg"] != ALG \
            or not isinstance(sig["value"], str) or not _HEX64.match(sig["value"]):
        return f"the signature must be {{'alg': {ALG!r}, 'value': <64 hex digits>}}"
    return None


def _chain(doc: dict[str, Any], verdict: Verdict) -> None:
    header, links = doc["header"], doc["links"]
    stored = [doc["header_hash"], *(link["hash"] for link in links)]
    fits = [sha256_hex(canonical_json(header)) == stored[0]]
    fits += [link_hash(stored[i], i, link["kind"], link["item"]) == stored[i + 1] for i, link in enumerate(links)]
    fits.append(doc["head"] == stored[-1])  # the head continues the chain like one more link
    names = ["the header", *(f"link {i} ({describe(link['kind'], link['item'])})" for i, link in enumerate(links))]
    i = 0
    while i < len(names):
        if fits[i]:
            i += 1
        elif not fits[i + 1]:  # this element's stored hash no longer fits it AND the next one does not follow from it
            verdict.problems.append(f"the hash of {names[i]} was changed: the chain breaks there")
            i += 2
        else:
            verdict.problems.append(f"{names[i]} was changed: its content no longer matches its hash")
            i += 1
    if not fits[-1] and (len(fits) < 2 or fits[-2]):
        verdict.problems.append("the head hash is wrong: it is not the hash of the last link")


def verify(data: bytes, secret: str | None = None) -> Verdict:
    """Check a record file: encoding, JSON, canonical form, every link of the chain, the head, and (with the
    server's ``secret``) the signature. Every problem found is listed with where it is."""
    verdict = Verdict()
    doc, error = parse(data)
    if error is not None:
        verdict.problems.append(error)
        return verdict
    shape = _shape(doc)
    if shape is not None:
        verdict.problems.append(shape)
        return verdict
    verdict.links, verdict.head = len(doc["links"]), doc["head"]
    subject = doc["header"].get("subject")
    if isinstance(subject, dict):
        verdict.subject = f"{subject.get('kind')} {subject.get('id')}"
    _chain(doc, verdict)
    canonical = serialise(doc)
    if canonical != data:
        at = next((k for k, (a, b) in enumerate(zip(canonical, data, strict=False)) if a != b), min(len(canonical), len(data)))
        verdict.problems.append(f"the file is not in its canonical form from {_where(data, at)}: it was edited")
    if secret is not None:
        good = hmac.compare_digest(sign(doc["head"], secret), doc["signature"]["value"])
        verdict.signature = "valid" if good else "invalid"
        if not good:
            verdict.problems.append("the signature does not match the head hash: the record was not issued under this "
                                    "secret, or its chain was recomputed after a change")
    return verdict
