#!/usr/bin/env python3
"""serve_load.py — load and soak for `nexus serve` (Python standard library only).

Starts `nexus serve MODEL` on a free loopback port, then

  load (default)  single-stream runs (one request at a time) alternated with
                  runs of C concurrent streaming clients, each asking for T
                  tokens (ignore_eos, so every request is exactly T tokens);
                  reports per run: requests completed, errors, aggregate tokens/s
                  (all tokens / wall time from the first request sent to the
                  last one done), P50/P95 of time to first token and of the
                  time between tokens seen by the clients; the best of the
                  rounds for each, and their ratio.
  --soak SECONDS  C clients loop requests for SECONDS; the server's RSS
                  (/proc/PID/status VmRSS) is sampled every 10 s; reports
                  requests, errors, tokens/s, and RSS after warm-up (the first
                  10%) against the end and the maximum.

Every request is a streamed /v1/completions with sampling (temperature 0.8, a
seed per request) over a rotating set of prompts. Prints a summary and writes
--json FILE. Bounded: a request that takes longer than --timeout fails.

  python3 bench/serve_load.py ../shared/models/teacher-19m --clients 64 --tokens 128 --threads 2
  python3 bench/serve_load.py ../shared/models/teacher-19m --clients 16 --tokens 128 --soak 600
"""
import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

PROMPTS = ["The history of the city", "Once upon a time", "In the morning the market", "The committee decided that",
           "Scientists have found", "She opened the door and", "The river runs through", "According to the report",
           "When the war ended", "The new school building"]


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    f = int(k)
    return xs[f] + (xs[min(f + 1, len(xs) - 1)] - xs[f]) * (k - f)


async def one_request(port, model, tokens, seed, timeout):
    """-> dict(ok, tokens, ttft, gaps[], t0, t1, err). One asyncio connection: an event loop
    timestamps every event as it arrives (threads would queue on the GIL and blur latencies)."""
    body = json.dumps({"model": model, "prompt": PROMPTS[seed % len(PROMPTS)], "max_tokens": tokens,
                       "temperature": 0.8, "seed": seed, "stream": True, "ignore_eos": True,
                       "stream_options": {"include_usage": True}}).encode()
    t0 = time.perf_counter()
    out = {"ok": False, "tokens": 0, "ttft": None, "gaps": [], "t0": t0, "t1": None, "err": None}
    w = None
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
        w.write(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body)
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), timeout)
        status = int(head.split(b" ", 2)[1])
        if status != 200:
            out["err"] = f"HTTP {status}: {head[:200]!r}"
            return out
        pending, last, done = b"", None, False
        while not done:  # chunked transfer encoding: size line, data, CRLF
            size = int((await asyncio.wait_for(r.readline(), timeout)).strip(), 16)
            if size == 0:
                break
            pending += await asyncio.wait_for(r.readexactly(size + 2), timeout)
            pending = pending[:-2] if pending.endswith(b"\r\n") else pending
            while b"\n\n" in pending:
                ev, pending = pending.split(b"\n\n", 1)
                if not ev.startswith(b"data: "):
                    continue
                payload = ev[6:]
                if payload == b"[DONE]":
                    done = True
                    break
                obj = json.loads(payload)
                if obj.get("usage"):
                    out["tokens"] = obj["usage"]["completion_tokens"]
                if obj["choices"] and obj["choices"][0]["text"]:
                    now = time.perf_counter()
                    if out["ttft"] is None:
                        out["ttft"] = now - t0
                    else:
                        out["gaps"].append(now - last)
                    last = now
        out["t1"] = time.perf_counter()
        out["ok"] = done and out["tokens"] == tokens
        if not out["ok"]:
            out["err"] = f"stream ended early: done={done}, {out['tokens']} tokens"
    except Exception as e:  # noqa: BLE001 -- any failure of a request is counted, not fatal
        out["err"] = f"{type(e).__name__}: {e}"
    finally:
        if w:
            w.close()
    return out


def run_clients(port, model, clients, tokens, seed0, timeout, sequential=1):
    """clients requests at once; or, with sequential = k, one client making k requests one after another
    (the single-stream figure over a span of time comparable to the concurrent run's)."""
    async def all_of():
        t0 = time.perf_counter()
        if sequential > 1:
            res = [await one_request(port, model, tokens, seed0 + i, timeout) for i in range(sequential)]
        else:
            res = await asyncio.gather(*[one_request(port, model, tokens, seed0 + i, timeout) for i in range(clients)])
        return res, time.perf_counter() - t0

    results, wall = asyncio.run(all_of())
    ok = [r for r in results if r["ok"]]
    toks = sum(r["tokens"] for r in ok)
    return {"clients": clients, "requests": len(results), "completed": len(ok),
            "errors": [r["err"] for r in results if not r["ok"]][:5], "n_errors": len(results) - len(ok), "wall_s": wall, "tokens": toks, "tokens_per_s": toks / wall,
            "ttft_p50_ms": 1e3 * pct([r["ttft"] for r in ok], 50), "ttft_p95_ms": 1e3 * pct([r["ttft"] for r in ok], 95),
            "tpot_p50_ms": 1e3 * pct([g for r in ok for g in r["gaps"]], 50),
            "tpot_p95_ms": 1e3 * pct([g for r in ok for g in r["gaps"]], 95)}


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--nexus", default="./nexus")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--slots", type=int, default=0, help="server slots (default: --clients)")
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3, help="load: single/concurrent rounds, alternated")
    ap.add_argument("--single", type=int, default=8, help="load: requests one after another for the one-stream figure")
    ap.add_argument("--soak", type=float, default=0, help="seconds of steady load instead")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        os.environ.pop(k, None)
    log = tempfile.NamedTemporaryFile(prefix="nx_load_", suffix=".log", delete=False)
    slots = a.slots or a.clients
    cmd = [a.nexus, "serve", a.model, "--port", "0", "--threads", str(a.threads), "--slots", str(slots),
           "--ctx", str(a.ctx), "--queue", str(max(64, 2 * a.clients)), "--max-connections", str(4 * a.clients + 16)]
    srv = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    port = None
    for _ in range(600):
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", open(log.name).read())
        if m:
            port = int(m.group(1))
            break
        if srv.poll() is not None:
            break
        time.sleep(0.1)
    if not port:
        sys.exit("the server did not start:\n" + open(log.name).read())
    model = os.path.basename(a.model.rstrip("/"))
    report = {"command": " ".join(sys.argv), "server": " ".join(cmd), "machine": os.uname().nodename,
              "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    try:
        asyncio.run(one_request(port, model, 8, 0, a.timeout))  # warm-up
        if a.soak <= 0:
            singles, multis = [], []
            for r in range(a.rounds):
                singles.append(run_clients(port, model, 1, a.tokens, 1000 * r, a.timeout, sequential=a.single))
                multis.append(run_clients(port, model, a.clients, a.tokens, 1000 * r + 100, a.timeout))
                s, m = singles[-1], multis[-1]
                print(f"round {r + 1}: 1 stream ({a.single} requests in turn) {s['tokens_per_s']:.1f} tok/s (TTFT {s['ttft_p50_ms']:.0f} ms, "
                      f"per token {s['tpot_p50_ms']:.1f} ms) | {a.clients} streams: {m['completed']}/{a.clients} done, "
                      f"{m['n_errors']} errors, {m['tokens_per_s']:.1f} tok/s, TTFT P50/P95 {m['ttft_p50_ms']:.0f}/"
                      f"{m['ttft_p95_ms']:.0f} ms, per token P50/P95 {m['tpot_p50_ms']:.1f}/{m['tpot_p95_ms']:.1f} ms",
                      flush=True)
            bs = max(singles, key=lambda x: x["tokens_per_s"])
            bm = max(multis, key=lambda x: x["tokens_per_s"])
            ratios = sorted(m["tokens_per_s"] / s["tokens_per_s"] for s, m in zip(singles, multis))
            report.update({"single": singles, "concurrent": multis, "best_single_tps": bs["tokens_per_s"],
                           "best_concurrent_tps": bm["tokens_per_s"], "ratio": bm["tokens_per_s"] / bs["tokens_per_s"],
                           "round_ratios": ratios, "median_round_ratio": ratios[len(ratios) // 2],
                           "all_completed": all(m["completed"] == a.clients for m in multis)})
            print(f"best: {bm['tokens_per_s']:.1f} tok/s with {a.clients} streams vs {bs['tokens_per_s']:.1f} with one: "
                  f"{report['ratio']:.2f}x (per round: {', '.join(f'{x:.2f}x' for x in ratios)}); "
                  f"all completed: {report['all_completed']}")
        else:
            stop = time.perf_counter() + a.soak
            tot = {"requests": 0, "errors": 0, "tokens": 0, "errs": []}
            samples = []

            async def loop(i):
                k = 0
                while time.perf_counter() < stop:
                    r = await one_request(port, model, a.tokens, 100000 * i + k, a.timeout)
                    k += 1
                    tot["requests"] += 1
                    tot["tokens"] += r["tokens"] if r["ok"] else 0
                    if not r["ok"]:
                        tot["errors"] += 1
                        tot["errs"] = (tot["errs"] + [r["err"]])[:5]

            async def sampler(t0):
                while time.perf_counter() < stop:
                    samples.append((round(time.perf_counter() - t0, 1), rss_kb(srv.pid)))
                    await asyncio.sleep(10)

            async def soak():
                t0 = time.perf_counter()
                await asyncio.gather(sampler(t0), *[loop(i) for i in range(a.clients)])
                samples.append((round(time.perf_counter() - t0, 1), rss_kb(srv.pid)))
                return t0

            t0 = asyncio.run(soak())
            wall = time.perf_counter() - t0
            warm = [kb for t, kb in samples if t >= 0.1 * a.soak] or [samples[-1][1]]
            base, end, peak = warm[0], samples[-1][1], max(kb for _, kb in samples)
            report.update({"soak_s": a.soak, "requests": tot["requests"], "errors": tot["errors"], "error_examples": tot["errs"],
                           "tokens_per_s": tot["tokens"] / wall, "rss_kb": samples, "rss_after_warmup_kb": base,
                           "rss_end_kb": end, "rss_max_kb": peak,
                           "rss_growth_pct": 100.0 * (max(warm) - base) / base})
            print(f"soak {a.soak:.0f} s, {a.clients} clients: {tot['requests']} requests, {tot['errors']} errors, "
                  f"{report['tokens_per_s']:.1f} tok/s; RSS after warm-up {base / 1024:.1f} MiB, end {end / 1024:.1f} MiB, "
                  f"max {peak / 1024:.1f} MiB, growth after warm-up {report['rss_growth_pct']:.2f}%")
        # the engine's own view (from arrival in its queue; between tokens at the engine), for comparison
        import urllib.request
        m = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()

        def avg(name):
            s_ = float(re.search(rf"^{name}_sum (\S+)", m, re.M).group(1))
            n_ = float(re.search(rf"^{name}_count (\S+)", m, re.M).group(1))
            return 1e3 * s_ / n_ if n_ else float("nan")

        report["server_mean_ttft_ms"] = avg("nexus_time_to_first_token_seconds")
        report["server_mean_tpot_ms"] = avg("nexus_time_per_output_token_seconds")
        print(f"server side, all requests: mean TTFT {report['server_mean_ttft_ms']:.1f} ms, mean time per output token "
              f"{report['server_mean_tpot_ms']:.2f} ms")
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            report["server_exit"] = srv.wait(60)
        except subprocess.TimeoutExpired:
            srv.kill()
            report["server_exit"] = None
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)
    print(f"server exit status {report['server_exit']}")


if __name__ == "__main__":
    main()
