#!/usr/bin/python3
"""The Python peers: the tutorial's own patterns on asyncio (or uvloop), and
janus for the queue measures. Prints one JSON object like the C++ benches.

    python_bench.py asyncio|uvloop|janus [benchmark ids...]

Item counts are scaled down from the C++ runs (Python moves far fewer items
per second); every result is a rate or a latency, so they compare directly.
"""
import asyncio
import concurrent.futures
import json
import queue
import resource
import sys
import threading
import time
import tracemalloc

RTT_WARMUP = 500
RTT_SAMPLES = 5000
IN_FLIGHT = 64
THROUGHPUT_OPS = 50000
QUEUE_CAPACITY = 1024
QUEUE_ITEMS = 50000
SLEEPERS = 10000
SLEEPER_POOL = 64
IDLE_SECONDS = 5.0
QUEUED_JOBS = 100000
SUBMIT_MT_OPS = 20000
MPMC_ITEMS = 100000


def cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def thread_counts():
    """1, 2, 4, ... up to the cores, and the cores (BENCH_THREADS overrides),
    as bench_util.hpp."""
    import os
    env = os.environ.get("BENCH_THREADS")
    if env:
        ts = [int(x) for x in env.split(",") if x.strip().isdigit() and int(x) > 0]
        if ts:
            return ts
    cores = os.cpu_count() or 1
    ts, t = [], 1
    while t < cores:
        ts.append(t)
        t *= 2
    return ts + [cores]


def submit_mt(out):
    """T plain threads each doing pool.submit(fn).result() on a
    ThreadPoolExecutor of T workers."""
    res = out.setdefault("submit_mt", {})
    for t in thread_counts():
        per = SUBMIT_MT_OPS // t
        with concurrent.futures.ThreadPoolExecutor(max_workers=t) as pool:
            def client():
                for _ in range(per):
                    pool.submit(noop).result()
            threads = [threading.Thread(target=client) for _ in range(t)]
            c0, t0 = cpu_seconds(), time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            wall = time.perf_counter() - t0
            res[f"ops_per_s@{t}"] = per * t / wall
            res[f"cpu_us_per_op@{t}"] = (cpu_seconds() - c0) * 1e6 / (per * t)


def channel_mpmc(out):
    """T producer threads -> queue.Queue(1024) -> T consumer threads."""
    res = out.setdefault("channel_mpmc", {})
    done = object()
    for t in thread_counts():
        q = queue.Queue(QUEUE_CAPACITY)
        per = MPMC_ITEMS // t

        def produce():
            for i in range(per):
                q.put(i)

        def consume():
            while q.get() is not done:
                pass
        producers = [threading.Thread(target=produce) for _ in range(t)]
        consumers = [threading.Thread(target=consume) for _ in range(t)]
        c0, t0 = cpu_seconds(), time.perf_counter()
        for th in producers + consumers:
            th.start()
        for th in producers:
            th.join()
        for _ in consumers:
            q.put(done)
        for th in consumers:
            th.join()
        wall = time.perf_counter() - t0
        res[f"items_per_s@{t}"] = per * t / wall
        res[f"cpu_us_per_op@{t}"] = (cpu_seconds() - c0) * 1e6 / (per * t)


def percentile(samples, p):
    samples = sorted(samples)
    return samples[int(p / 100.0 * (len(samples) - 1))] * 1e6


def noop():
    pass


async def offload_rtt(out):
    loop = asyncio.get_running_loop()
    samples = []
    for i in range(RTT_WARMUP + RTT_SAMPLES):
        t0 = time.perf_counter()
        await loop.run_in_executor(None, noop)
        if i >= RTT_WARMUP:
            samples.append(time.perf_counter() - t0)
    out["offload_rtt"] = {"p50_us": percentile(samples, 50),
                          "p99_us": percentile(samples, 99)}


async def offload_throughput(out):
    loop = asyncio.get_running_loop()
    per_task = THROUGHPUT_OPS // IN_FLIGHT

    async def worker():
        for _ in range(per_task):
            await loop.run_in_executor(None, noop)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    out["offload_throughput"] = {
        "ops_per_s": per_task * IN_FLIGHT / (time.perf_counter() - t0)}


# Remote measures (bench_util.hpp's sizes): jobs to worker processes,
# Python's way: ProcessPoolExecutor through run_in_executor. CPU per
# operation is the client process's, as for the C++ systems.
REMOTE_WORKERS = 2
REMOTE_RTT_WARMUP = 500
REMOTE_RTT_SAMPLES = 5000
REMOTE_WINDOW = 64
REMOTE_OPS = 40000
REMOTE_OPS_WINDOW1 = 5000


def inc(x):
    return x + 1


async def remote(out, rtt, throughput):
    import concurrent.futures as cf
    loop = asyncio.get_running_loop()
    with cf.ProcessPoolExecutor(max_workers=REMOTE_WORKERS) as ppe:
        # Start the workers before measuring.
        await asyncio.gather(*(loop.run_in_executor(ppe, inc, i)
                               for i in range(REMOTE_WORKERS * 4)))
        if rtt:
            samples = []
            c0 = cpu_seconds()
            for i in range(REMOTE_RTT_WARMUP + REMOTE_RTT_SAMPLES):
                t0 = time.perf_counter()
                await loop.run_in_executor(ppe, inc, i)
                if i >= REMOTE_RTT_WARMUP:
                    samples.append(time.perf_counter() - t0)
            out["remote_rtt"] = {
                "p50_us": percentile(samples, 50),
                "p99_us": percentile(samples, 99),
                "cpu_us_per_op": (cpu_seconds() - c0) * 1e6
                / (REMOTE_RTT_WARMUP + REMOTE_RTT_SAMPLES)}
        if throughput:
            res = out.setdefault("remote_throughput", {})
            for window, ops, suffix in [(REMOTE_WINDOW, REMOTE_OPS, ""),
                                        (1, REMOTE_OPS_WINDOW1, "_w1")]:
                per_task = ops // window

                async def worker():
                    for i in range(per_task):
                        await loop.run_in_executor(ppe, inc, i)

                c0 = cpu_seconds()
                t0 = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(window)))
                res["ops_per_s" + suffix] = (per_task * window
                                             / (time.perf_counter() - t0))
                res["cpu_us_per_op" + suffix] = ((cpu_seconds() - c0) * 1e6
                                                 / (per_task * window))


async def thread_to_coroutine(out, producers, key):
    # The tutorial's pattern: queue.Queue, read through run_in_executor.
    loop = asyncio.get_running_loop()
    q = queue.Queue(maxsize=QUEUE_CAPACITY)
    per = QUEUE_ITEMS // producers

    def produce():
        for i in range(per):
            q.put(i)

    threads = [threading.Thread(target=produce) for _ in range(producers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for _ in range(per * producers):
        await loop.run_in_executor(None, q.get)
    for t in threads:
        t.join()
    out[key] = {"items_per_s": per * producers / (time.perf_counter() - t0)}


async def coroutine_to_thread(out):
    loop = asyncio.get_running_loop()
    q = queue.Queue(maxsize=QUEUE_CAPACITY)
    got = []

    def consume():
        for _ in range(QUEUE_ITEMS):
            q.get()
        got.append(True)

    t = threading.Thread(target=consume)
    t0 = time.perf_counter()
    t.start()
    for i in range(QUEUE_ITEMS):
        await loop.run_in_executor(None, q.put, i)
    await loop.run_in_executor(None, t.join)
    out["actor_to_thread"] = {
        "items_per_s": QUEUE_ITEMS / (time.perf_counter() - t0)}


def submit_rtt(out, new_loop):
    loop = new_loop()
    t = threading.Thread(target=loop.run_forever)
    t.start()

    async def answer():
        return 1

    samples = []
    for i in range(RTT_WARMUP + RTT_SAMPLES):
        t0 = time.perf_counter()
        asyncio.run_coroutine_threadsafe(answer(), loop).result()
        if i >= RTT_WARMUP:
            samples.append(time.perf_counter() - t0)
    loop.call_soon_threadsafe(loop.stop)
    t.join()
    loop.close()
    out["submit_rtt"] = {"p50_us": percentile(samples, 50),
                         "p99_us": percentile(samples, 99)}


def many_sleepers(out):
    with concurrent.futures.ThreadPoolExecutor(max_workers=SLEEPER_POOL) as ex:
        list(ex.map(lambda _: time.sleep(0.001), range(SLEEPER_POOL)))
        t0 = time.perf_counter()
        futures = [ex.submit(time.sleep, 0.001) for _ in range(SLEEPERS)]
        for f in futures:
            f.result()
        wall = time.perf_counter() - t0
    out["many_sleepers"] = {
        "wall_over_ideal": wall / (SLEEPERS / SLEEPER_POOL * 0.001)}


def cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def idle_cpu(out):
    await asyncio.sleep(0.2)
    c0, t0 = cpu_seconds(), time.perf_counter()
    await asyncio.sleep(IDLE_SECONDS)
    out["idle_cpu"] = {"cpu_percent":
                       (cpu_seconds() - c0) / (time.perf_counter() - t0) * 100}


async def memory_per_job(out):
    loop = asyncio.get_running_loop()
    gate = threading.Event()
    ex = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    blocker = loop.run_in_executor(ex, gate.wait)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    futures = [loop.run_in_executor(ex, noop) for _ in range(QUEUED_JOBS)]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    gate.set()
    await blocker
    await asyncio.gather(*futures)
    ex.shutdown()
    out["memory_per_job"] = {"bytes": (after - before) / QUEUED_JOBS}


async def janus_thread_to_coroutine(out, producers, key):
    import janus
    q = janus.Queue(maxsize=QUEUE_CAPACITY)
    per = QUEUE_ITEMS // producers

    def produce():
        for i in range(per):
            q.sync_q.put(i)

    threads = [threading.Thread(target=produce) for _ in range(producers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for _ in range(per * producers):
        await q.async_q.get()
    for t in threads:
        t.join()
    out[key] = {"items_per_s": per * producers / (time.perf_counter() - t0)}
    q.close()
    await q.wait_closed()


async def janus_coroutine_to_thread(out):
    import janus
    q = janus.Queue(maxsize=QUEUE_CAPACITY)

    def consume():
        for _ in range(QUEUE_ITEMS):
            q.sync_q.get()

    t = threading.Thread(target=consume)
    t0 = time.perf_counter()
    t.start()
    for i in range(QUEUE_ITEMS):
        await q.async_q.put(i)
    await asyncio.get_running_loop().run_in_executor(None, t.join)
    out["actor_to_thread"] = {
        "items_per_s": QUEUE_ITEMS / (time.perf_counter() - t0)}
    q.close()
    await q.wait_closed()


def main():
    flavour = sys.argv[1]
    ids = set(sys.argv[2:])
    wanted = lambda i: not ids or i in ids
    out = {}
    if flavour == "uvloop":
        import uvloop
        new_loop = uvloop.new_event_loop
    else:
        new_loop = asyncio.new_event_loop

    async def run_all():
        if flavour == "janus":
            if wanted("thread_to_actor"):
                await janus_thread_to_coroutine(out, 1, "thread_to_actor")
            if wanted("thread_to_actor_4p"):
                await janus_thread_to_coroutine(out, 4, "thread_to_actor_4p")
            if wanted("actor_to_thread"):
                await janus_coroutine_to_thread(out)
            return
        if wanted("offload_rtt"):
            await offload_rtt(out)
        if wanted("offload_throughput"):
            await offload_throughput(out)
        if wanted("thread_to_actor"):
            await thread_to_coroutine(out, 1, "thread_to_actor")
        if wanted("thread_to_actor_4p"):
            await thread_to_coroutine(out, 4, "thread_to_actor_4p")
        if wanted("actor_to_thread"):
            await coroutine_to_thread(out)
        if wanted("memory_per_job"):
            await memory_per_job(out)
        if wanted("idle_cpu"):
            await idle_cpu(out)
        if wanted("remote_rtt") or wanted("remote_throughput"):
            await remote(out, wanted("remote_rtt"), wanted("remote_throughput"))

    loop = new_loop()
    loop.run_until_complete(run_all())
    loop.close()
    if flavour != "janus":
        if wanted("submit_rtt"):
            submit_rtt(out, new_loop)
        if wanted("many_sleepers"):
            many_sleepers(out)
    if flavour == "asyncio":
        # Plain threads only: the same figures under every flavour.
        if wanted("submit_mt"):
            submit_mt(out)
        if wanted("channel_mpmc"):
            channel_mpmc(out)
    system = {"asyncio": "python_asyncio", "uvloop": "python_uvloop",
              "janus": "python_janus"}[flavour]
    print(json.dumps({"system": system, "results": out}))


if __name__ == "__main__":
    main()
