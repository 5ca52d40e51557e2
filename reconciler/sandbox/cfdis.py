"""Real-shaped CFDI 3.3 and 4.0 files for the demo, the tests and the benchmarks (stamped, with a sello)."""

from __future__ import annotations

import base64
import hashlib

NAMESPACES = {"3.3": "http://www.sat.gob.mx/cfd/3", "4.0": "http://www.sat.gob.mx/cfd/4"}
SCHEMAS = {
    "3.3": "http://www.sat.gob.mx/cfd/3 http://www.sat.gob.mx/sitio_internet/cfd/3/cfdv33.xsd",
    "4.0": "http://www.sat.gob.mx/cfd/4 http://www.sat.gob.mx/sitio_internet/cfd/4/cfdv40.xsd",
}


def sello_for(uuid: str) -> str:
    """A deterministic 344-character base64 'sello' (the size of an RSA-2048 signature)."""
    digest = b"".join(hashlib.sha256(f"{uuid}:{i}".encode()).digest() for i in range(8))
    return base64.b64encode(digest[:256]).decode()


def render(
    uuid: str,
    rfc_emisor: str = "EKU9003173C9",
    rfc_receptor: str = "XAXX010101000",
    total: str = "1160.00",
    *,
    version: str = "4.0",
    prefix: str = "cfdi",
    sello: str | None = None,
    addenda: bool = False,
    bom: bool = False,
) -> bytes:
    """One stamped CFDI as its issuer's system writes it; ``prefix`` may be empty (default namespace)."""
    ns = NAMESPACES[version]
    p = f"{prefix}:" if prefix else ""
    xmlns = f'xmlns:{prefix}="{ns}"' if prefix else f'xmlns="{ns}"'
    sello = sello if sello is not None else sello_for(uuid)
    regimen = ' RegimenFiscalReceptor="616" DomicilioFiscalReceptor="42501"' if version == "4.0" else ""
    uso = "S01" if version == "4.0" else "P01"
    extra = ' Exportacion="01"' if version == "4.0" else ""
    add = (
        f'<{p}Addenda><erp:Pedido xmlns:erp="urn:example:erp" Numero="A-1&amp;2">'
        "<erp:Nota>Entrega &lt;urgente&gt;</erp:Nota>"
        f"</erp:Pedido></{p}Addenda>"
        if addenda
        else ""
    )
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<{p}Comprobante {xmlns} xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:schemaLocation="{SCHEMAS[version]}" Version="{version}" Serie="A" Folio="1" '
        f'Fecha="2024-05-05T12:34:56" Sello="{sello}" FormaPago="01" NoCertificado="30001000000500003416" '
        f'Certificado="MIIF..." SubTotal="1000.00" Moneda="MXN" Total="{total}" TipoDeComprobante="I"{extra} '
        'MetodoPago="PUE" LugarExpedicion="42501">\n'
        f'  <{p}Emisor Rfc="{rfc_emisor.replace("&", "&amp;")}" Nombre="ESCUELA KEMPER URGATE" RegimenFiscal="601"/>\n'
        f'  <{p}Receptor Rfc="{rfc_receptor.replace("&", "&amp;")}" Nombre="PUBLICO EN GENERAL"{regimen} '
        f'UsoCFDI="{uso}"/>\n'
        f'  <{p}Conceptos><{p}Concepto ClaveProdServ="01010101" Cantidad="1" ClaveUnidad="ACT" '
        f'Descripcion="Servicio" ValorUnitario="1000.00" Importe="1000.00"/></{p}Conceptos>\n'
        f"  <{p}Complemento>\n"
        '    <tfd:TimbreFiscalDigital xmlns:tfd="http://www.sat.gob.mx/TimbreFiscalDigital" Version="1.1" '
        f'UUID="{uuid}" FechaTimbrado="2024-05-05T12:35:00" RfcProvCertif="SPR190613I52" '
        f'SelloCFD="{sello}" NoCertificadoSAT="30001000000500003456" SelloSAT="abc="/>\n'
        f"  </{p}Complemento>\n"
        f"  {add}\n"
        f"</{p}Comprobante>\n"
    )
    data = text.encode()
    return b"\xef\xbb\xbf" + data if bom else data
