"""The SAT seam over real HTTP against the simulator: every state the SAT answers, every fault, the rate limit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from reconciler.sandbox import Sandbox, SandboxConfig
from reconciler.sat.answer import Answer
from reconciler.sat.client import RateLimiter, SatClient, envelope
from reconciler.sat.expression import expression

H = 3600.0


class Clock:
    """The sandbox's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def uid(second_last: str, last: str = "0") -> str:
    return f"71452784-AFC7-4BE5-8623-3BA1436D57{second_last}{last}"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sb(clock: Clock) -> Iterator[Sandbox]:
    config = SandboxConfig(clock=clock, notify_delay_s=60.0, sat_receiver_s=H, sat_window_s=72 * H, sat_lag_s=1800.0)
    with Sandbox(config) as sandbox:
        yield sandbox


def submit(sb: Sandbox, uuid: str) -> None:
    """The provider accepts the cancellation (it lands at the SAT ``notify_delay_s`` later)."""
    answer, _ = sb.service.cancel(
        {
            "usuario": sb.config.credentials.usuario,
            "password": sb.config.credentials.password,
            "uuid": f"{uuid}|02|",
            "rfcEmisor": "EKU9003173C9",
        }
    )
    assert answer.code == 200


async def ask(sb: Sandbox, uuid: str, **kw: float) -> Answer:
    client = SatClient(sb.sat_url, timeout_s=kw.get("timeout_s", 5.0), max_rps=100)
    try:
        return await client.consulta(expression(uuid, "EKU9003173C9", "A&B010101AB1", "1160.00", "x" * 300))
    finally:
        await client.aclose()


def seen(a: Answer) -> tuple[str | None, str | None, str | None]:
    return a.estado, a.es_cancelable, a.estatus_cancelacion


async def test_without_acceptance_vigente_until_the_cancellation_lands_then_cancelado(
    sb: Sandbox, clock: Clock
) -> None:
    u = uid("3")
    assert seen(await ask(sb, u)) == ("Vigente", "Cancelable sin aceptación", None)
    submit(sb, u)
    assert seen(await ask(sb, u)) == ("Vigente", "Cancelable sin aceptación", None)
    clock.now += 61
    a = await ask(sb, u)
    assert seen(a) == ("Cancelado", "Cancelable sin aceptación", "Cancelado sin aceptación")
    assert a.codigo_estatus == "S - Comprobante obtenido satisfactoriamente." and a.validacion_efos == "200"


@pytest.mark.parametrize(
    ("digit", "at", "final"),
    [
        ("8", H, ("Cancelado", "Cancelable con aceptación", "Cancelado con aceptación")),
        ("A", H, ("Vigente", "Cancelable con aceptación", "Solicitud rechazada")),
        ("B", 72 * H, ("Cancelado", "Cancelable con aceptación", "Plazo vencido")),
    ],
)
async def test_with_acceptance_en_proceso_then_the_receivers_answer(
    sb: Sandbox, clock: Clock, digit: str, at: float, final: tuple[str, str, str]
) -> None:
    u = uid(digit)
    submit(sb, u)
    clock.now += 61
    assert seen(await ask(sb, u)) == ("Vigente", "Cancelable con aceptación", "En proceso")
    clock.now += at - 2
    assert seen(await ask(sb, u)) == ("Vigente", "Cancelable con aceptación", "En proceso")
    clock.now += 2
    assert seen(await ask(sb, u)) == final


async def test_no_cancelable_lag_and_the_receivers_denial(sb: Sandbox, clock: Clock) -> None:
    assert seen(await ask(sb, uid("C"))) == ("Vigente", "No cancelable", None)
    lag = uid("D")
    a = await ask(sb, lag)
    assert (a.estado, a.codigo_estatus, a.found) == ("No Encontrado", "N - 602: Comprobante no encontrado.", False)
    clock.now += 1800
    assert seen(await ask(sb, lag)) == ("Vigente", "Cancelable sin aceptación", None)
    denied = uid("1", "E")  # the provider's ERROR: the receiver denied
    submit(sb, denied)
    clock.now += 61
    assert seen(await ask(sb, denied)) == ("Vigente", "Cancelable con aceptación", "Solicitud rechazada")


async def test_the_envelope_escapes_the_ampersand_once_more_and_the_simulator_reads_it(sb: Sandbox) -> None:
    await ask(sb, uid("3"))
    ((_, text),) = sb.sat.asked
    assert "re=EKU9003173C9&rr=A&amp;B010101AB1&tt=1160.0&fe=xxxxxxxx" in text
    assert b"rr=A&amp;amp;B010101AB1&amp;tt=" in envelope(text)


@pytest.mark.parametrize(
    ("kind", "problem"),
    [("http500", "HTTP 500"), ("garbage", "no ConsultaResult"), ("drop", "could not be reached"), ("slow", "in time")],
)
async def test_every_fault_is_a_problem_never_a_state_or_a_raise(sb: Sandbox, kind: str, problem: str) -> None:
    sb.sat_faults(1.0, (kind,))
    a = await ask(sb, uid("3"), timeout_s=0.5)
    assert a.problem is not None and problem in a.problem and a.estado is None and not a.cancelled


async def test_nothing_listening_is_a_problem() -> None:
    client = SatClient("http://127.0.0.1:9/ConsultaCFDIService.svc", timeout_s=2, max_rps=10)
    try:
        a = await client.consulta("?re=A&rr=B&tt=1&id=x")
    finally:
        await client.aclose()
    assert a.problem is not None and "could not be reached" in a.problem


async def test_an_invalid_expression_is_601(sb: Sandbox) -> None:
    client = SatClient(sb.sat_url, max_rps=10)
    try:
        a = await client.consulta("not an expression")
    finally:
        await client.aclose()
    assert a.invalid_expression and a.usable


class FakeTime:
    def __init__(self) -> None:
        self.t = 0.0

    def clock(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.t += s
        await asyncio.sleep(0)


@pytest.mark.parametrize("rps", [2.0, 0.5, 2.5, 7.0])
async def test_the_limit_holds_in_every_one_second_window(rps: float) -> None:
    fake = FakeTime()
    limiter = RateLimiter(rps, clock=fake.clock, sleep=fake.sleep)
    times = sorted(await asyncio.gather(*(limiter.acquire() for _ in range(40))))
    allowed = max(1, int(rps))
    for start in times:
        assert sum(1 for t in times if start <= t < start + 1.0) <= allowed
    # and it is not slower than it must be: the 40 calls take about 40 / rate seconds
    assert times[-1] <= (40 / min(rps, allowed)) + 1


async def test_the_limit_holds_over_real_http(sb: Sandbox) -> None:
    client = SatClient(sb.sat_url, max_rps=4)
    taken: list[float] = []
    acquire = client.limiter.acquire

    async def recorded() -> float:
        taken.append(await acquire())
        return taken[-1]

    client.limiter.acquire = recorded  # type: ignore[method-assign]
    try:
        answers = await asyncio.gather(*(client.consulta(f"?re=A&rr=B&tt=1&id={uid('3')}") for _ in range(10)))
    finally:
        await client.aclose()
    assert all(a.usable for a in answers) and len(sb.sat.asked) == 10
    for start in taken:
        assert sum(1 for t in taken if start <= t < start + 1.0) <= 4
    assert max(taken) - min(taken) >= 2.0  # 10 calls at 4 a second span at least two seconds
