"""The status service's answer parsed: known values canonical, unknown kept, garbage a problem, never a raise."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.sat.answer import (
    CANCELADO_CON,
    CON_ACEPTACION,
    EN_PROCESO,
    MAX_BYTES,
    NO_ENCONTRADO,
    VIGENTE,
    Answer,
    parse,
)

NS = "http://schemas.datacontract.org/2004/07/Sat.Cfdi.Negocio.ConsultaCfdi.Servicio"


def reply(fields: str, prefix: str = "a") -> bytes:
    return (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        '<ConsultaResponse xmlns="http://tempuri.org/">'
        f'<ConsultaResult xmlns:{prefix}="{NS}" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
        f"{fields.replace('<', f'<{prefix}:').replace(f'<{prefix}:/', f'</{prefix}:')}"
        "</ConsultaResult></ConsultaResponse></s:Body></s:Envelope>"
    ).encode()


VIGENTE_EN_PROCESO = reply(
    "<CodigoEstatus>S - Comprobante obtenido satisfactoriamente.</CodigoEstatus>"
    "<EsCancelable>Cancelable con aceptación</EsCancelable><Estado>Vigente</Estado>"
    "<EstatusCancelacion>En proceso</EstatusCancelacion><ValidacionEFOS>200</ValidacionEFOS>"
)


def test_the_sats_answer_is_read_whatever_the_prefix() -> None:
    for prefix in ("a", "b", "sat"):
        a = parse(
            VIGENTE_EN_PROCESO.replace(b"<a:", f"<{prefix}:".encode())
            .replace(b"</a:", f"</{prefix}:".encode())
            .replace(b"xmlns:a=", f"xmlns:{prefix}=".encode())
        )
        assert (a.estado, a.es_cancelable, a.estatus_cancelacion, a.validacion_efos) == (
            VIGENTE,
            CON_ACEPTACION,
            EN_PROCESO,
            "200",
        )
        assert a.usable and a.found and not a.cancelled and a.unknown_values == []


def test_case_accents_and_spaces_do_not_matter_for_known_values() -> None:
    a = parse(
        reply(
            "<CodigoEstatus>S - ok</CodigoEstatus><Estado> CANCELADO </Estado>"
            "<EstatusCancelacion>cancelado  con aceptacion</EstatusCancelacion>"
        )
    )
    assert (a.estado, a.estatus_cancelacion, a.cancelled) == ("Cancelado", CANCELADO_CON, True)


def test_unknown_values_are_kept_and_listed() -> None:
    a = parse(
        reply("<CodigoEstatus>S - ok</CodigoEstatus><Estado>Suspendido</Estado><EsCancelable>Quizá</EsCancelable>")
    )
    assert a.usable and a.estado == "Suspendido" and a.unknown_values == ["Suspendido", "Quizá"]
    assert not a.found and not a.cancelled


def test_not_found_602_and_invalid_expression_601() -> None:
    a = parse(reply("<CodigoEstatus>N - 602: Comprobante no encontrado.</CodigoEstatus><Estado>No Encontrado</Estado>"))
    assert a.estado == NO_ENCONTRADO and not a.found
    b = parse(reply("<CodigoEstatus>N - 602: Comprobante no encontrado.</CodigoEstatus>"))
    assert b.estado == NO_ENCONTRADO
    c = parse(reply("<CodigoEstatus>N - 601: La expresión impresa proporcionada no es válida.</CodigoEstatus>"))
    assert c.invalid_expression and c.estado is None and c.usable


def test_empty_estatus_is_none() -> None:
    a = parse(reply("<CodigoEstatus>S - ok</CodigoEstatus><Estado>Vigente</Estado><EstatusCancelacion/>"))
    assert a.estatus_cancelacion is None and a.estado == VIGENTE


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "empty"),
        (b"<html><body>502 Bad Gateway</body></html>", "no ConsultaResult"),
        (b"not xml at all", "not XML"),
        (
            b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>'
            b"<faultcode>s:Server</faultcode><faultstring>Servicio no disponible</faultstring></s:Fault></s:Body></s:Envelope>",
            "SOAP fault: 'Servicio no disponible'",
        ),
        (
            b'<!DOCTYPE r [<!ENTITY x "Cancelado">]><ConsultaResult><CodigoEstatus>S</CodigoEstatus><Estado>&x;</Estado></ConsultaResult>',
            "DTD",
        ),
        (b"<ConsultaResult><Estado>Cancelado</Estado></ConsultaResult>", "no CodigoEstatus"),
        (
            b"<r><ConsultaResult><CodigoEstatus>S</CodigoEstatus></ConsultaResult><ConsultaResult/></r>",
            "2 ConsultaResult",
        ),
        (
            b"<ConsultaResult><CodigoEstatus>S</CodigoEstatus><Estado><b>Cancelado</b></Estado></ConsultaResult>",
            "holds elements",
        ),
        (
            b"<ConsultaResult><CodigoEstatus>S</CodigoEstatus><Estado>Vigente</Estado><Estado>Cancelado</Estado></ConsultaResult>",
            "twice",
        ),
        (b"<a>" * 100 + b"x" * (300 * 1024), "more than"),
    ],
)
def test_garbage_is_a_problem_not_a_state(data: bytes, problem: str) -> None:
    a = parse(data)
    assert a.problem is not None and problem in a.problem
    assert not a.usable and not a.cancelled and not a.found and a.estado is None


@given(st.binary(max_size=400))
def test_never_raises_on_bytes(data: bytes) -> None:
    a = parse(data)
    assert a.problem is not None or a.codigo_estatus is not None


@given(st.text(max_size=80))
def test_never_raises_on_any_field_text(text: str) -> None:
    from xml.sax.saxutils import escape

    clean = "".join(c for c in text if c.isprintable())
    a = parse(reply(f"<CodigoEstatus>S</CodigoEstatus><Estado>{escape(clean)}</Estado>"))
    assert a.usable
    assert (a.estado is None) == (not clean.split())
    if " ".join(clean.split()).casefold() == "cancelado":
        assert a.cancelled


def test_the_answer_as_recorded_in_a_sat_event() -> None:
    assert parse(VIGENTE_EN_PROCESO).as_dict() == {
        "codigo_estatus": "S - Comprobante obtenido satisfactoriamente.",
        "estado": VIGENTE,
        "es_cancelable": CON_ACEPTACION,
        "estatus_cancelacion": EN_PROCESO,
        "validacion_efos": "200",
        "problem": None,
    }
    assert Answer(problem="HTTP 503").as_dict() == {
        "codigo_estatus": None,
        "estado": None,
        "es_cancelable": None,
        "estatus_cancelacion": None,
        "validacion_efos": None,
        "problem": "HTTP 503",
    }


FAULT = (
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>'
    "<faultcode>s:Server</faultcode><faultstring>{}</faultstring></s:Fault></s:Body></s:Envelope>"
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Servicio   no\n disponible", "SOAP fault: 'Servicio no disponible'"),
        ("x" * 60, f"SOAP fault: '{'x' * 60}'"),
        ("x" * 61, f"SOAP fault: '{'x' * 60}...'"),
        ("", "SOAP fault: ''"),
    ],
)
def test_a_fault_is_quoted_on_one_line_and_cut(text: str, problem: str) -> None:
    assert parse(FAULT.format(text).encode()).problem == problem


def test_an_answer_without_consultaresult_names_the_root() -> None:
    assert parse(b"<html><body/></html>").problem == "no ConsultaResult in the answer (root 'html')"


S_OK = "S - Comprobante obtenido satisfactoriamente."


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (None, "empty answer"),
        (b" \r\n", "empty answer"),
        (
            b"<!DOCTYPE ConsultaResult><ConsultaResult><CodigoEstatus>S</CodigoEstatus></ConsultaResult>",
            "the answer declares a DTD",
        ),
        (b"<ConsultaResult><Estado>Vigente</Estado></ConsultaResult>", "ConsultaResult has no CodigoEstatus"),
        (b"<ConsultaResult><Estado><b>x</b></Estado></ConsultaResult>", "Estado holds elements, not text"),
        (b"<r><ConsultaResult/><ConsultaResult/></r>", "2 ConsultaResult elements, not one"),
    ],
)
def test_garbage_problems_word_for_word(data: bytes | None, problem: str) -> None:
    assert parse(data) == Answer(problem=problem)


def test_comments_inside_the_result_are_skipped() -> None:
    data = f"<ConsultaResult><!-- c --><CodigoEstatus>{S_OK}</CodigoEstatus><?pi x?><Estado>Vigente</Estado></ConsultaResult>"
    assert parse(data.encode()) == Answer(S_OK, VIGENTE)


def test_an_estado_given_is_kept_whatever_the_code() -> None:
    data = b"<ConsultaResult><CodigoEstatus>N - 601: x</CodigoEstatus><Estado>Vigente</Estado></ConsultaResult>"
    assert parse(data) == Answer("N - 601: x", VIGENTE)


def test_an_answer_of_exactly_the_limit_is_read() -> None:
    padded = VIGENTE_EN_PROCESO + b" " * (MAX_BYTES - len(VIGENTE_EN_PROCESO))
    assert len(padded) == MAX_BYTES and parse(padded).estado == VIGENTE
    assert parse(padded + b" ") == Answer(problem=f"the answer is {MAX_BYTES + 1} bytes, more than {MAX_BYTES}")
