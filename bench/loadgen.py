"""A small HTTP/1.1 keep-alive load generator (asyncio, raw sockets).

Run as its own process so the server under test has its own core:
``python bench/loadgen.py URL --seconds 3 --connections 16 [--header 'K: V']``
prints one JSON line: requests, seconds, rps, errors, p50/p99 latency (ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit


async def _worker(host: str, port: int, request: bytes, deadline: float, lat: list[float], errors: list[int]) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    done = 0
    try:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
            if status >= 400:
                errors.append(status)
            done += 1
    finally:
        writer.close()
    return done


async def run(url: str, seconds: float, connections: int, headers: list[str]) -> dict:
    parts = urlsplit(url)
    extra = "".join(f"{h}\r\n" for h in headers)
    request = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n{extra}\r\n".encode()
    lat: list[float] = []
    errors: list[int] = []
    start = time.perf_counter()
    deadline = start + seconds
    counts = await asyncio.gather(
        *[_worker(parts.hostname, parts.port, request, deadline, lat, errors) for _ in range(connections)]
    )
    elapsed = time.perf_counter() - start
    lat.sort()
    total = sum(counts)
    return {
        "requests": total,
        "seconds": round(elapsed, 3),
        "rps": round(total / elapsed, 1),
        "errors": len(errors),
        "p50_ms": round(lat[len(lat) // 2] * 1000, 3) if lat else None,
        "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 3) if lat else None,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--header", action="append", default=[])
    a = p.parse_args()
    print(json.dumps(asyncio.run(run(a.url, a.seconds, a.connections, a.header))))


if __name__ == "__main__":
    main()
