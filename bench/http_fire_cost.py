"""CPU per HTTP fire: N requests through one HttpFirer at a local aiohttp sink.

    python bench/http_fire_cost.py [-n 2000] [-c 100] [--bare] [--timings-cost [-r 5]]

The sink runs in a separate process so that process_time() counts the firing side only.
--bare also times the same requests sent with plain session.post(), for comparison.
--timings-cost fires the same requests with aiohttp's tracing hooks (the per-phase timings
of issue 19) off and on, alternating for -r rounds, and prints the median CPU per fire of each.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from jobctl.actions import FireContext
from jobctl.actions.http import HttpFirer
from jobctl.models import HttpSpec


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


async def fire_all(
    url: str, total: int, concurrency: int, *, timings: bool = False
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

    async with HttpFirer() as firer:
        await asyncio.gather(*(one(firer, i) for i in range(concurrency)))  # warm connections
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(firer, i) for i in range(total)))
        return time.process_time() - cpu, time.perf_counter() - wall, failures


async def bare_all(url: str, total: int, concurrency: int) -> tuple[float, float]:
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        # the same request HttpFirer sends, so the difference is HttpFirer's own work
        headers = {
            "Authorization": "Bearer bench-secret",
            "Content-Type": "application/json",
            "User-Agent": "jobctl/0",
            "X-Jobctl-Job": "bench",
            "X-Jobctl-Run": "1",
            "X-Jobctl-Scheduled-For": "2026-01-01T00:00:00Z",
        }

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
    parser.add_argument("-n", type=int, default=2000, help="requests to fire")
    parser.add_argument("-c", type=int, default=100, help="requests in flight at once")
    parser.add_argument("--bare", action="store_true", help="also time plain aiohttp calls")
    parser.add_argument(
        "--timings-cost", action="store_true", help="CPU per fire with timings off and on"
    )
    parser.add_argument("-r", type=int, default=5, help="rounds for --timings-cost")
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        run_sink()
        return
    sink = subprocess.Popen([sys.executable, __file__, "--sink"], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        url = f"http://127.0.0.1:{sink.stdout.readline().strip()}"
        if args.timings_cost:
            timings_cost(url, args.n, args.c, args.r)
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
