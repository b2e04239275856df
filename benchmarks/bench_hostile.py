"""The eight findings of issue #11, measured the same way against this checkout and (``--before``) another one.

    python benchmarks/bench_hostile.py [--before /tmp/before] [--slow-connections 3000] [--port 18160]

Each server is `python -m serving` with the same model and an empty embedding cache. Phases alternate between the
servers. Prints one line per figure, "[before]" / "[after]"; asserts nothing.

1. a 3 MB batch body of 1,000,000 `{}`: time to answer, answer size, slowest /healthz meanwhile, RSS growth;
2. thousands of connections trickling their headers (one byte a second) while a normal client sends /healthz and
   /v1/classify requests: share of normal requests that succeed; a 64 MiB header value: status and time;
3. cancellation: 10 requests whose clients hang up after 0.5 s while the server is busy: how many were embedded
   (the `newsclf_articles_classified` counter); backpressure figures come from bench_load.py;
4. cache growth: files and bytes on disk after 200 new texts; `*.tmp` leftovers after start;
5. an unusable cache folder: classify status and /readyz;
6. a truncated manifest.json and an emptied heads.joblib: exit status and message of `python -m serving`;
7. exposure: `source` of /v1/model, status for `Host: evil.example`, whether /docs loads from a CDN;
8. contract: OpenAPI limits, `{"text": ""}` and NUL-only text, language of "12345", duplicate keys, JSON error text.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import ROOT, Contention, empty_cache, model_dir, start, wait_ready  # noqa: E402

ARTICLE = {"title": "Le Vietnam et le Laos renforcent leur coopération contre la drogue",
           "text": "Vientiane, 21 mai (VNA) – Les polices du Vietnam et du Laos ont signé un accord contre le trafic "
                   "de stupéfiants à la frontière commune, avec des patrouilles conjointes et un échange "
                   "d'informations entre leurs services."}


def say(name: str, text: str) -> None:
    print(f"[{name}] {text}", flush=True)


def _probe_health(url: str, stop: threading.Event, out: list[float]) -> None:
    with httpx.Client(timeout=120) as client:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                client.get(f"{url}/healthz")
            except httpx.HTTPError:
                pass
            out.append(time.perf_counter() - started)
            time.sleep(0.01)


def finding1(server) -> None:
    body = b'{"articles":[' + b",".join([b"{}"] * 1_000_000) + b"]}"
    health: list[float] = []
    stop = threading.Event()
    prober = threading.Thread(target=_probe_health, args=(server.url, stop, health))
    rss = server.rss_mib()
    prober.start()
    started = time.perf_counter()
    response = httpx.post(f"{server.url}/v1/classify/batch", content=body,
                          headers={"Content-Type": "application/json"}, timeout=300)
    took = time.perf_counter() - started
    time.sleep(0.2)
    stop.set()
    prober.join()
    say(server.name, f"F1 1,000,000-item body ({len(body) / 1e6:.1f} MB): {response.status_code} in {took:.2f} s, "
        f"answer {len(response.content) / 1e6:.2f} MB, slowest /healthz meanwhile {max(health):.2f} s, "
        f"RSS {rss:.0f} -> {server.rss_mib():.0f} MiB")


async def _trickle(host: str, port: int, n: int, seconds: float, opened: list[int]) -> None:
    async def one() -> None:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            return
        opened[0] += 1
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                await asyncio.sleep(1.0)
                writer.write(b"a")
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(n)))


def finding2(server, connections: int, seconds: float) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    opened = [0]
    thread = threading.Thread(target=lambda: asyncio.run(_trickle("127.0.0.1", port, connections, seconds, opened)))
    thread.start()
    time.sleep(3)  # let the connections open
    ok = failed = 0
    end = time.monotonic() + seconds - 5
    with httpx.Client(timeout=10) as client:
        i = 0
        while time.monotonic() < end:
            i += 1
            try:
                if i % 4:
                    r = client.get(f"{server.url}/healthz")
                else:
                    r = client.post(f"{server.url}/v1/classify", json=ARTICLE)
                ok += r.status_code == 200
                failed += r.status_code != 200
            except httpx.HTTPError:
                failed += 1
            time.sleep(0.05)
    thread.join()
    say(server.name, f"F2 {connections} trickling connections ({opened[0]} opened) for {seconds:.0f} s: "
        f"{ok}/{ok + failed} normal requests succeeded ({ok / max(ok + failed, 1):.1%})")
    size = 64 * 1024 * 1024
    started = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
            sent = 0
            chunk = b"x" * (1024 * 1024)
            try:
                while sent < size:
                    sock.sendall(chunk)
                    sent += len(chunk)
                sock.sendall(b"\r\n\r\n")
            except OSError:
                pass
            answer = sock.recv(100).split(b"\r\n", 1)[0].decode(errors="replace") or "connection closed"
    except OSError as exc:
        answer = f"{type(exc).__name__}"
        sent = 0
    say(server.name, f"F2 a 64 MiB header value: '{answer}' after {time.perf_counter() - started:.2f} s "
        f"({sent / 2**20:.0f} MiB accepted before the answer)")


def _classified(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(float(m) for m in re.findall(r'^newsclf_articles_classified_total\{endpoint="classify"\} (\S+)$',
                                          text, re.M))


def finding3(server) -> None:
    before = _classified(server.url)

    def hang_up(i: int) -> None:
        try:
            httpx.post(f"{server.url}/v1/classify", json={**ARTICLE, "text": ARTICLE["text"] + f" (hang-up {i})"},
                       timeout=0.5)
        except httpx.HTTPError:
            pass

    # A batch keeps the worker busy while the 30 hang-ups queue behind it.
    busy = threading.Thread(target=lambda: httpx.post(f"{server.url}/v1/classify/batch", timeout=600, json={
        "articles": [{"id": str(i), "text": ARTICLE["text"] + f" (busy {i})" * 40} for i in range(16)]}))
    busy.start()
    time.sleep(0.3)
    threads = [threading.Thread(target=hang_up, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    busy.join()
    time.sleep(15)  # whatever was queued has been processed by now
    say(server.name, f"F3 30 requests whose clients hung up after 0.5 s: {_classified(server.url) - before:.0f} "
        "of them were classified anyway")


def _tree(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file() and "embedders" not in p.parts]
    return len(files), sum(p.stat().st_size for p in files)


def finding4(server, cache: Path) -> None:
    files0, bytes0 = _tree(cache)
    with httpx.Client(timeout=600) as client:
        for start_i in range(0, 200, 16):
            client.post(f"{server.url}/v1/classify/batch", json={"articles": [
                {"id": str(i), "text": f"Dépêche {i}: " + ARTICLE["text"]} for i in range(start_i, start_i + 16)]})
    files1, bytes1 = _tree(cache)
    du = subprocess.run(["du", "-sk", str(cache / "embeddings")], capture_output=True, text=True).stdout.split()
    say(server.name, f"F4 cache after 208 new texts: +{files1 - files0} files, +{(bytes1 - bytes0) / 1024:.0f} KiB "
        f"(du: {du[0] if du else '?'} KiB on disk)")


def finding5(name: str, checkout: Path, model: Path, tmp: Path, port: int) -> None:
    cache = empty_cache(tmp / f"broken-cache-{name}", model)
    (cache / "embeddings").write_text("a file where the cache folder should be")
    server = start(f"{name}-brokencache", checkout, port, model, cache, tmp, NEWSCLF_LOG_LEVEL="info")
    try:
        wait_ready(server)
        statuses = [httpx.post(f"{server.url}/v1/classify", json={**ARTICLE, "title": f"t{i}"}, timeout=120)
                    .status_code for i in range(3)]
        ready = httpx.get(f"{server.url}/readyz")
    finally:
        server.stop()
    log = server.log.read_text(errors="replace")
    say(name, f"F5 unusable cache folder: classify statuses {statuses}, /readyz {ready.status_code} {ready.text}; "
        f"log: {log.count('Traceback')} tracebacks, {log.count('embedding cache')} cache warnings")


def finding6(name: str, checkout: Path, model: Path, tmp: Path) -> None:
    for what, damage in (("truncated manifest.json", "manifest"), ("emptied heads.joblib", "heads")):
        folder = tmp / f"{name}-{damage}" / model.name
        shutil.copytree(model, folder)
        if damage == "manifest":
            (folder / "manifest.json").write_text((model / "manifest.json").read_text()[:100])
        else:
            (folder / "heads.joblib").write_bytes(b"")
        env = os.environ | {"PYTHONPATH": str(checkout), "NEWSCLF_MODEL": str(folder), "HF_HUB_OFFLINE": "1"}
        done = subprocess.run([sys.executable, "-m", "serving"], cwd=checkout, env=env, capture_output=True,
                              text=True, timeout=120)
        last = (done.stderr.strip().splitlines() or [""])[-1][:220]
        say(name, f"F6 {what}: exit {done.returncode}, last line: {last}")


def finding7(server) -> None:
    info = httpx.get(f"{server.url}/v1/model").json()
    evil = httpx.get(f"{server.url}/v1/model", headers={"Host": "evil.example"})
    docs = httpx.get(f"{server.url}/docs").text
    cdn = "cdn.jsdelivr" in docs or "unpkg" in docs
    say(server.name, f"F7 /v1/model source: {info.get('source')!r}; Host: evil.example -> {evil.status_code}; "
        f"/docs from a CDN: {cdn}; classify without a key -> "
        f"{httpx.post(f'{server.url}/v1/classify', json=ARTICLE, timeout=120).status_code} (keys unset)")


def finding8(server) -> None:
    schema = httpx.get(f"{server.url}/openapi.json").json()["components"]["schemas"]
    text = schema["ArticleRequest"]["properties"]["text"]
    items = schema["BatchRequest"]["properties"]["articles"]
    empty = httpx.post(f"{server.url}/v1/classify", json={"text": ""}).status_code
    nul = httpx.post(f"{server.url}/v1/classify", json={"text": "\x00\x00\u200b\ufeff"}, timeout=120)
    lang = httpx.post(f"{server.url}/v1/classify", json={"text": "12345 67890"}, timeout=120).json().get("language")
    dup = httpx.post(f"{server.url}/v1/classify", content=b'{"text": "a", "text": "Le Vietnam et le Laos"}',
                     headers={"Content-Type": "application/json"}, timeout=120).status_code
    bad = httpx.post(f"{server.url}/v1/classify", content=b'{"text" "x"}',
                     headers={"Content-Type": "application/json"}).json()["error"]["message"]
    say(server.name, f"F8 schema: text maxLength {text.get('maxLength')}, pattern {'pattern' in text}, articles "
        f"maxItems {items.get('maxItems')}; {{\"text\": \"\"}} -> {empty}; NUL/U+200B/U+FEFF-only text -> "
        f"{nul.status_code}; language of '12345 67890': {lang!r}; duplicate keys -> {dup}; JSON error: {bad!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--before", type=Path, help="another checkout to measure the same way")
    parser.add_argument("--slow-connections", type=int, default=3000)
    parser.add_argument("--slow-seconds", type=float, default=40)
    parser.add_argument("--port", type=int, default=18160)
    parser.add_argument("--only", type=str, default="12345678", help="findings to measure, e.g. 138")
    args = parser.parse_args(argv)
    model = model_dir(args.model)
    checkouts = ([("before", args.before)] if args.before else []) + [("after", ROOT)]
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp_name:
        tmp = Path(tmp_name)
        servers, caches = [], {}
        try:
            for i, (name, checkout) in enumerate(checkouts):
                caches[name] = empty_cache(tmp / f"cache-{name}", model)
                servers.append(start(name, checkout, args.port + i, model, caches[name], tmp))
            for server in servers:
                wait_ready(server)
            load = Contention(*(s.process.pid for s in servers))
            for finding in args.only:
                for (name, checkout), server in zip(checkouts, servers, strict=True):
                    if finding == "1":
                        finding1(server)
                    elif finding == "2":
                        finding2(server, args.slow_connections, args.slow_seconds)
                    elif finding == "3":
                        finding3(server)
                    elif finding == "4":
                        finding4(server, caches[name])
                    elif finding == "5":
                        finding5(name, checkout, model, tmp, args.port + 10 + len(name))
                    elif finding == "6":
                        finding6(name, checkout, model, tmp)
                    elif finding == "7":
                        finding7(server)
                    elif finding == "8":
                        finding8(server)
            print(f"other processes took {load.others():.0%} of the machine's CPU during the run")
        finally:
            for server in servers:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
