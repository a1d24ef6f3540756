"""CPU per HTTP fire: N requests through one HttpFirer at a local aiohttp sink.

    python bench/http_fire_cost.py [-n 2000] [-c 100] [--bare] [--timings-cost [-r 5]]
    python bench/http_fire_cost.py --compare [-r 5] [-n 2000] [-c 100]
    python bench/http_fire_cost.py --runner [-r 5] [-n 2000] [-c 100]
    python bench/http_fire_cost.py --wrapper [-r 5] [-n 20000]

The sink runs in a separate process so that process_time() counts the firing side only.
--bare also times the same requests sent with plain session.post(), for comparison.
--timings-cost fires the same requests with aiohttp's tracing hooks (the per-phase timings
of issue 19) off and on, alternating for -r rounds, and prints the median CPU per fire of each.
--compare fires the same requests through HttpFirer with its own client (http_client), through
HttpFirer sending with aiohttp instead (the same request and read, untraced), and with the bare
clients alone (http_client's HttpClient.request, aiohttp's session.post), interleaved for -r
rounds, and prints the median CPU per fire of each (issue 18).
--runner fires the daemon's way: claims through Runner.fire(claim, env) (its semaphore,
Firers' FireContext and last redaction pass around HttpFirer), with the job daemon_bench.py
adds (GET, no headers, no body, no ${NAME}) and the daemon's environment (the process's, no env
file; then with an env file of one value, a secret each run masks); then that spec through
HttpFirer.fire alone, and the bare http_client request; rounds interleaved, median CPU per fire
of each, with the daemon's collector settings.
--wrapper times the same without a socket: Runner.fire and HttpFirer.fire, one fire at a time,
around a client that answers at once (a 200 with four headers), without and with the env file:
what the fire path costs around the client, free of the kernel's share and of the load on the
machine (no sink is started).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import subprocess
import sys
import time
from copy import copy
from datetime import UTC, datetime
from functools import lru_cache, partial
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from jobctl.actions import FireContext
from jobctl.actions.http import HttpFirer, send_with_aiohttp
from jobctl.actions.http_client import HttpClient, Response
from jobctl.actions.http_timings import Timer
from jobctl.actions.request import SessionOwner
from jobctl.daemon import GC_THRESHOLDS
from jobctl.engine.claim import Claim
from jobctl.engine.runner import Limits, Runner
from jobctl.models import HttpSpec, Job, RunTrigger, ScheduleKind
from jobctl.secrets import FireEnvironment, fire_environment


def run_sink() -> None:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    async def serve() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", ok)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, backlog=1024).start()
        print(runner.addresses[0][1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


class AiohttpClient(SessionOwner):
    """HttpClient's request() sent through an untraced aiohttp session, as HttpFirer sent every
    request before issue 18: the comparison for --compare."""

    async def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, **options: Any
    ) -> Response:
        return await send_with_aiohttp(
            self._get_session(), method, url, headers, body, timer=Timer(), **options
        )


class AiohttpFirer(HttpFirer):
    """HttpFirer with aiohttp as its client (bench only)."""

    def __init__(self) -> None:
        super().__init__()
        self._aiohttp = AiohttpClient()

    def _get_client(self) -> AiohttpClient:  # type: ignore[override]
        return self._aiohttp

    async def close(self) -> None:
        await super().close()
        await self._aiohttp.close()


async def fire_all(
    url: str,
    total: int,
    concurrency: int,
    *,
    timings: bool = False,
    firer_class: type[HttpFirer] = HttpFirer,
) -> tuple[float, float, int]:
    spec = HttpSpec(
        method="POST",
        url=url + "/hook?x=${TOKEN}",
        headers={"Authorization": "Bearer ${TOKEN}", "Content-Type": "application/json"},
        body='{"hello": "world"}',
        expect="2xx",
        timings=timings or None,
    )
    env = {"TOKEN": "bench-secret"}
    gate = asyncio.Semaphore(concurrency)
    failures = 0

    async def one(firer: HttpFirer, run_id: int) -> None:
        nonlocal failures
        ctx = FireContext(
            job="bench",
            run_id=run_id,
            scheduled_for=datetime.now(UTC),
            attempt=1,
            timeout=30,
            env=env,
        )
        async with gate:
            outcome = await firer.fire(spec, ctx)
        failures += outcome.status != "succeeded"

    async with firer_class() as firer:
        await asyncio.gather(*(one(firer, i) for i in range(concurrency)))  # warm connections
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(firer, i) for i in range(total)))
        return time.process_time() - cpu, time.perf_counter() - wall, failures


BARE_HEADERS = {
    "Authorization": "Bearer bench-secret",
    "Content-Type": "application/json",
    "User-Agent": "jobctl/0",
    "X-Jobctl-Job": "bench",
    "X-Jobctl-Run": "1",
    "X-Jobctl-Scheduled-For": "2026-01-01T00:00:00Z",
}


async def bare_client_all(url: str, total: int, concurrency: int) -> tuple[float, float]:
    """The same requests through http_client's HttpClient alone."""
    gate = asyncio.Semaphore(concurrency)
    client = HttpClient(256)

    async def one() -> None:
        async with gate:
            response = await client.request(
                "POST", url + "/hook?x=bench-secret", BARE_HEADERS, b'{"hello": "world"}',
                timeout=30,
            )  # fmt: skip
            assert response.status == 200

    try:
        await asyncio.gather(*(one() for _ in range(concurrency)))
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one() for _ in range(total)))
        return time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await client.close()


def compare(url: str, total: int, concurrency: int, rounds: int) -> None:
    """Median CPU per fire of HttpFirer with http_client and with aiohttp, and of the bare
    clients, rounds interleaved."""
    per_fire: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name in ("HttpFirer, http_client", "HttpFirer, aiohttp"):
            firer = HttpFirer if name.endswith("http_client") else AiohttpFirer
            cpu, _, failures = asyncio.run(fire_all(url, total, concurrency, firer_class=firer))
            assert failures == 0, f"{name}: {failures} failed"
            per_fire.setdefault(name, []).append(cpu / total * 1000)
        cpu, _ = asyncio.run(bare_client_all(url, total, concurrency))
        per_fire.setdefault("bare http_client", []).append(cpu / total * 1000)
        cpu, _ = asyncio.run(bare_all(url, total, concurrency))
        per_fire.setdefault("bare aiohttp", []).append(cpu / total * 1000)
    print(f"{total} requests, concurrency {concurrency}, median of {rounds} interleaved rounds")
    for name, values in per_fire.items():
        print(f"  {name:24} {statistics.median(values):.3f} ms CPU per fire")


async def bare_all(url: str, total: int, concurrency: int) -> tuple[float, float]:
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        # the same request HttpFirer sends, so the difference is HttpFirer's own work
        headers = BARE_HEADERS

        async def one() -> None:
            async with (
                gate,
                session.post(
                    url + "/hook?x=bench-secret", headers=headers, data=b'{"hello": "world"}'
                ) as r,
            ):
                await r.read()

        await asyncio.gather(*(one() for _ in range(concurrency)))
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one() for _ in range(total)))
        return time.process_time() - cpu, time.perf_counter() - wall


def daemon_job(url: str) -> Job:
    """The job bench/daemon_bench.py adds: a one-second GET with nothing to expand."""
    spec = HttpSpec(url=url + "/hook", method="GET", expect="2xx")
    return Job(name="bench", spec=spec, schedule_kind=ScheduleKind.EVERY, schedule="1s",
               timezone="UTC", id=1)  # fmt: skip


async def runner_all(
    url: str, total: int, concurrency: int, *, env_file: bool = False
) -> tuple[float, float]:
    """Claims of the daemon's job fired through Runner.fire, at most `concurrency` at once;
    `env_file`: the daemon was given an env file with one value (a secret in every run)."""
    gate = asyncio.Semaphore(concurrency)
    env = fire_environment(None)
    if env_file:
        env = FireEnvironment(env, {"BENCH_TOKEN": "bench-file-secret"})
    runner = Runner(Limits())
    now = datetime.now(UTC)
    job = daemon_job(url)

    def claims(count: int) -> list[Claim]:
        # each claim reads its job anew, as the daemon's do (the spec is shared: the store
        # keeps one per stored text); made before the clock starts, as the claim step's are,
        # which has looked at the job's policies
        made = [Claim(i, copy(job), RunTrigger.SCHEDULE, 1, now, now) for i in range(count)]
        for claim in made:
            claim.job.effective_policies()
        return made

    async def one(claim: Claim) -> None:
        async with gate:
            outcome = await runner.fire(claim, env)
        assert outcome.status == "succeeded", outcome

    try:
        await asyncio.gather(*(one(claim) for claim in claims(concurrency)))
        batch = claims(total)
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(claim) for claim in batch))
        return time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await runner.close()


async def firer_all(url: str, total: int, concurrency: int) -> tuple[float, float]:
    """The daemon's job's spec through HttpFirer.fire alone."""
    gate = asyncio.Semaphore(concurrency)
    env = fire_environment(None)
    spec = daemon_job(url).spec
    now = datetime.now(UTC)

    async def one(firer: HttpFirer, run_id: int) -> None:
        ctx = FireContext(job="bench", run_id=run_id, scheduled_for=now, attempt=1,
                          timeout=30, env=env)  # fmt: skip
        async with gate:
            outcome = await firer.fire(spec, ctx)
        assert outcome.status == "succeeded", outcome

    async with HttpFirer() as firer:
        await asyncio.gather(*(one(firer, i) for i in range(concurrency)))
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(firer, i) for i in range(total)))
        return time.process_time() - cpu, time.perf_counter() - wall


def runner_cost(url: str, total: int, concurrency: int, rounds: int) -> None:
    """Median CPU per fire through Runner.fire, HttpFirer.fire and the bare client, the
    daemon's job, rounds interleaved."""
    gc.freeze()  # the daemon's collector settings (daemon.py)
    gc.set_threshold(*GC_THRESHOLDS)
    per_fire: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, run in (
            ("Runner.fire", runner_all),
            ("Runner.fire, env file", partial(runner_all, env_file=True)),
            ("HttpFirer.fire", firer_all),
            ("bare http_client", bare_client_all),
        ):
            cpu, _ = asyncio.run(run(url, total, concurrency))
            per_fire.setdefault(name, []).append(cpu / total * 1000)
    print(f"{total} fires, concurrency {concurrency}, median of {rounds} interleaved rounds")
    for name, values in per_fire.items():
        spread = ", ".join(f"{value:.4f}" for value in values)
        print(f"  {name:22} {statistics.median(values):.4f} ms CPU per fire ({spread})")


class AnsweringClient:
    """Answers every request at once: a 200 with four headers and a two-byte body."""

    headers = CIMultiDictProxy(
        CIMultiDict(
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", "2"),
                ("Date", "Mon, 30 Nov 2026 16:00:00 GMT"),
                ("Server", "Python/3.11 aiohttp/3.9"),
            ]
        )
    )

    async def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, **_: Any
    ) -> Response:
        return Response(
            200, "OK", self.headers, _parsed(url), b"ok", 2, 0, None, time.perf_counter()
        )


@lru_cache(maxsize=16)
def _parsed(url: str) -> URL:
    return URL(url)


async def wrapper_all(total: int, *, env_file: bool) -> tuple[float, float]:
    """CPU per fire of Runner.fire and of HttpFirer.fire around AnsweringClient, one at a time."""
    env = fire_environment(None)
    if env_file:
        env = FireEnvironment(env, {"BENCH_TOKEN": "bench-file-secret"})
    runner = Runner(Limits())
    firer = runner.firers.http
    client = AnsweringClient()
    firer._get_client = lambda: client  # type: ignore[assignment,method-assign,return-value]
    job = daemon_job("http://127.0.0.1:9")
    now = datetime.now(UTC)
    claims = [Claim(i, copy(job), RunTrigger.SCHEDULE, 1, now, now) for i in range(total)]
    for claim in claims:
        claim.job.effective_policies()  # as the claim step has
    cpu = time.process_time()
    for claim in claims:
        await runner.fire(claim, env)
    through_runner = time.process_time() - cpu
    contexts = [
        FireContext(job="bench", run_id=i, scheduled_for=now, attempt=1, timeout=30, env=env)
        for i in range(total)
    ]
    cpu = time.process_time()
    for ctx in contexts:
        await firer.fire(job.spec, ctx)
    through_firer = time.process_time() - cpu
    await runner.close()
    return through_runner, through_firer


def wrapper_cost(total: int, rounds: int) -> None:
    """Median CPU per fire of the fire path around a client that answers at once."""
    gc.freeze()  # the daemon's collector settings (daemon.py)
    gc.set_threshold(*GC_THRESHOLDS)
    per_fire: dict[str, list[float]] = {}
    for _ in range(rounds):
        for env_file in (False, True):
            runner, firer = asyncio.run(wrapper_all(total, env_file=env_file))
            suffix = ", env file" if env_file else ""
            per_fire.setdefault("Runner.fire" + suffix, []).append(runner / total * 1e6)
            per_fire.setdefault("HttpFirer.fire" + suffix, []).append(firer / total * 1e6)
    print(f"{total} fires around a client that answers at once, median of {rounds} rounds")
    for name, values in per_fire.items():
        spread = ", ".join(f"{value:.2f}" for value in values)
        print(f"  {name:26} {statistics.median(values):.2f} us CPU per fire ({spread})")


def timings_cost(url: str, total: int, concurrency: int, rounds: int) -> None:
    """Median CPU per fire with the tracing hooks off and on, rounds interleaved."""
    per_fire: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for timings in (False, True):
            cpu, _, failures = asyncio.run(fire_all(url, total, concurrency, timings=timings))
            assert failures == 0
            per_fire[timings].append(cpu / total * 1000)
    off, on = statistics.median(per_fire[False]), statistics.median(per_fire[True])
    print(f"timings off: {off:.3f} ms CPU per fire (median of {rounds} rounds of {total})")
    print(f"timings on:  {on:.3f} ms CPU per fire ({(on - off) / off * 100:+.1f}%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, help="requests to fire (2,000; --wrapper 20,000)")
    parser.add_argument("-c", type=int, default=100, help="requests in flight at once")
    parser.add_argument("--bare", action="store_true", help="also time plain aiohttp calls")
    parser.add_argument(
        "--timings-cost", action="store_true", help="CPU per fire with timings off and on"
    )
    parser.add_argument(
        "--compare", action="store_true", help="HttpFirer with http_client against aiohttp"
    )
    parser.add_argument(
        "--runner", action="store_true", help="the daemon's job through Runner.fire"
    )
    parser.add_argument(
        "--wrapper", action="store_true", help="Runner.fire around a client that answers at once"
    )
    parser.add_argument(
        "-r", type=int, default=5, help="rounds for --timings-cost, --compare, --runner, --wrapper"
    )
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        run_sink()
        return
    if args.wrapper:
        wrapper_cost(args.n or 20_000, args.r)
        return
    args.n = args.n or 2000
    sink = subprocess.Popen([sys.executable, __file__, "--sink"], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        url = f"http://127.0.0.1:{sink.stdout.readline().strip()}"
        if args.timings_cost:
            timings_cost(url, args.n, args.c, args.r)
            return
        if args.compare:
            compare(url, args.n, args.c, args.r)
            return
        if args.runner:
            runner_cost(url, args.n, args.c, args.r)
            return
        cpu, wall, failures = asyncio.run(fire_all(url, args.n, args.c))
        print(
            f"HttpFirer: {args.n} requests, concurrency {args.c}: {args.n / wall:,.0f} req/s, "
            f"{cpu / args.n * 1000:.3f} ms CPU per request, {failures} failed"
        )
        if args.bare:
            cpu, wall = asyncio.run(bare_all(url, args.n, args.c))
            print(
                f"bare aiohttp: {args.n / wall:,.0f} req/s, "
                f"{cpu / args.n * 1000:.3f} ms CPU per request"
            )
    finally:
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()
