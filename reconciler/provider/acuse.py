"""The SAT's cancellation acuse as evidence: bytes in, a verdict for one UUID out.  Pure, never raises.

The acuse is what the provider hands back when ``getStatusCancelacionAsincrona``
answers 200.  It is evidence that a job is cancelled only when it says so::

    <Acuse Fecha="..." RfcEmisor="...">                      (root: no namespace, or any)
      <Folios xmlns="http://cancelacfd.sat.gob.mx">
        <UUID>71452784-AFC7-4BE5-8623-3BA1436D573B</UUID>
        <EstatusUUID>201</EstatusUUID>
      </Folios>
      <Signature .../>
    </Acuse>

Some providers forward the SAT's ``CancelaCFDResult`` element instead, wrapping an
``Acuse`` or carrying the ``Folios`` itself.  Elements are matched by local name, so
prefixes and namespaces do not matter.

:func:`check` answers, for the job's UUID:

* ``accepted``: a folio names this UUID with ``EstatusUUID`` 201 or 202;
* ``refused``: the folios naming this UUID agree on another ``EstatusUUID``
  (the SAT's code and meaning are in the verdict);
* ``unusable``, with a one-line reason: empty, not XML, a DTD or entity, not an
  acuse, no ``Folios``, no folio for this UUID (naming another), folios that
  disagree, an ``EstatusUUID`` that is not a number.

Folios for other UUIDs beside this one's are ignored (a provider may batch one
issuer's UUIDs into one SAT request).  UUIDs compare ASCII case-insensitively;
a non-ASCII character never matches.  The signature is not verified.

Parsing uses lxml with entities, DTD loading and the network off and no huge
trees; a document that declares a DTD or keeps an entity reference is refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from lxml import etree

from reconciler.provider.codes import SAT_ACCEPTED, sat_meaning

MAX_BYTES = 1 << 20  # an acuse is a few KiB; more is not one
_SHOWN = 60  # characters of outside text quoted in a reason

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
)
_ROOTS = ("Acuse", "CancelaCFDResult")


class Kind(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNUSABLE = "unusable"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an acuse says about one UUID.

    ``estatus`` is the SAT's ``EstatusUUID`` for it (None when unusable), ``meaning`` its
    meaning, ``reason`` one line saying why (outside text quoted with ``repr``, truncated).
    """

    kind: Kind
    reason: str
    estatus: int | None = None
    meaning: str = ""

    @property
    def accepted(self) -> bool:
        return self.kind is Kind.ACCEPTED

    @property
    def refused(self) -> bool:
        return self.kind is Kind.REFUSED

    def as_dict(self) -> dict[str, object]:
        return {"verdict": str(self.kind), "reason": self.reason, "estatus_uuid": self.estatus, "meaning": self.meaning}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _unusable(reason: str) -> Verdict:
    return Verdict(Kind.UNUSABLE, reason)


def _quote(text: str) -> str:
    return repr(text[:_SHOWN] + ("..." if len(text) > _SHOWN else ""))


def _local(tag: object) -> str | None:
    """The local name of an element's tag; None for comments, processing instructions, entities."""
    if not isinstance(tag, str):
        return None
    return tag.rsplit("}", 1)[-1]


def _children(element: etree._Element, name: str) -> list[etree._Element]:
    return [c for c in element if _local(c.tag) == name]


def _same_uuid(text: str, expected: str) -> bool:
    return text.isascii() and expected.isascii() and text.strip().upper() == expected.strip().upper()


def _leaf_text(element: etree._Element) -> str | None:
    """The text of an element with no child elements; None when it has some."""
    if any(_local(c.tag) is not None for c in element):
        return None
    return element.text or ""


def _find_acuse(root: etree._Element) -> etree._Element | None:
    name = _local(root.tag)
    if name == "Acuse":
        return root
    if name == "CancelaCFDResult":
        inner = _children(root, "Acuse")
        if len(inner) == 1:
            return inner[0]
        return root if not inner else None
    return None


def check(data: bytes | None, uuid: str) -> Verdict:
    """The verdict of ``data`` (the acuse as received) for ``uuid``; never raises."""
    try:
        return _check(data, uuid)
    except Exception as e:  # a parser surprise is a reason, not a crash
        return _unusable(f"the acuse could not be read: {type(e).__name__}")


def _check(data: bytes | None, uuid: str) -> Verdict:
    if data is None:
        return _unusable("no acuse")
    if not data.strip():
        return _unusable("the acuse is empty")
    if len(data) > MAX_BYTES:
        return _unusable(f"the acuse is {len(data)} bytes, more than {MAX_BYTES}")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as e:
        first = str(e).splitlines()[0] if str(e) else "syntax error"
        return _unusable(f"the acuse is not XML: {first[:120]}")
    if root is None:
        return _unusable("the acuse is not XML: no root element")
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        return _unusable("the acuse declares a DTD")
    if any(True for _ in root.iter(etree.Entity)):
        return _unusable("the acuse holds an entity reference")
    acuse = _find_acuse(root)
    if acuse is None:
        return _unusable(f"not an acuse: root element {_quote(str(_local(root.tag)))}")
    folios = [f for f in acuse.iter() if _local(f.tag) == "Folios"]
    if not folios:
        status = acuse.get("CodEstatus")
        extra = f" (CodEstatus {_quote(status)})" if status else ""
        return _unusable(f"the acuse has no Folios{extra}")
    mine: set[str] = set()
    others: list[str] = []
    for folio in folios:
        uuids, codes = _children(folio, "UUID"), _children(folio, "EstatusUUID")
        if len(uuids) != 1 or len(codes) != 1:
            return _unusable(f"a Folios has {len(uuids)} UUID and {len(codes)} EstatusUUID elements, not one each")
        named, code = _leaf_text(uuids[0]), _leaf_text(codes[0])
        if named is None or code is None:
            return _unusable("a Folios' UUID or EstatusUUID holds elements, not text")
        if _same_uuid(named, uuid):
            mine.add(code.strip())
        else:
            others.append(named.strip())
    if not mine:
        return _unusable(f"the acuse names another UUID: {_quote(others[0])}" if others else "no UUID in Folios")
    if len(mine) > 1:
        shown = ", ".join(_quote(c) for c in sorted(mine))
        return _unusable(f"the acuse has conflicting folios for this UUID: EstatusUUID {shown}")
    (text,) = mine
    if not (text.isascii() and text.isdigit() and len(text) <= 4):
        return _unusable(f"EstatusUUID is not a number: {_quote(text)}")
    estatus = int(text)
    meaning = sat_meaning(estatus)
    if estatus in SAT_ACCEPTED:
        return Verdict(Kind.ACCEPTED, f"EstatusUUID {estatus}: {meaning}", estatus, meaning)
    return Verdict(Kind.REFUSED, f"the SAT refused: EstatusUUID {estatus}: {meaning}", estatus, meaning)
