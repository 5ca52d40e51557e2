"""The simulator's own C14N writer agrees with libxml2's on what a signed request can hold."""

from __future__ import annotations

import pytest
from lxml import etree

from reconciler.sandbox import signed

DOCUMENTS = [
    b'<a xmlns="urn:x" xmlns:z="urn:z" b="2" a="1"><b/>text &amp; &lt;more&gt;<c z:q="&quot;x&#9;y&#10;"/></a>',
    b'<a xmlns="urn:x"><b xmlns=""><c xmlns="urn:y"/></b></a>',  # a default namespace undeclared and redeclared
    b'<p:a xmlns:p="urn:p" xmlns:q="urn:q"><p:b q:x="1" x="2" p:y="3"/><q:c xmlns:q="urn:q"/></p:a>',
    b'<a xml:lang="es"><b>\xc3\x91&#13;</b><?pi data?></a>',
    b"<a><!-- a comment, not canonical --><b>x</b>\n  <c/>\n</a>",
]


@pytest.mark.parametrize("xml", DOCUMENTS)
def test_the_whole_document_canonicalises_like_libxml2(xml: bytes) -> None:
    root = etree.fromstring(xml)
    expected = etree.tostring(root.getroottree(), method="c14n", exclusive=False, with_comments=False)
    assert signed.c14n(root).encode() == expected


def test_a_subtree_keeps_the_namespaces_in_scope_and_skip_drops_only_the_skipped_element() -> None:
    root = etree.fromstring(b'<a xmlns="urn:x" xmlns:s="urn:s"><b><c s:k="v"/></b><d/>tail</a>')
    b = root[0]
    assert signed.c14n(b) == '<b xmlns="urn:x" xmlns:s="urn:s"><c s:k="v"></c></b>'
    assert signed.c14n(root, skip=root[1]) == '<a xmlns="urn:x" xmlns:s="urn:s"><b><c s:k="v"></c></b>tail</a>'
