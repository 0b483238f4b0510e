#!/usr/bin/python3
"""Aggregates bench/run's raw results: medians over repetitions, weave's ratio
to each peer, and the machine's description. Writes <name>.json, <name>.md,
<name>.png (weave's advantage per measure) and <name>_scaling.png (throughput
against threads, one line per system) into the output folder; <name> is
"latest" unless a third argument names it (bench/run --loaded: "loaded").

    report.py [--machine MACHINE.json] RAW.jsonl OUT_DIR [NAME]
    report.py --from-json OUT_DIR [NAME]

--machine takes the machine's description from a file (bench/device_run
writes one on the machine that ran the measures) instead of this machine's."""
import json
import os
import platform
import statistics
import subprocess
import sys

# (id, metric, unit, lower_is_better)
MEASURES = [
    ("offload_rtt", "p50_us", "us", True),
    ("offload_rtt", "p99_us", "us", True),
    ("offload_throughput", "ops_per_s", "ops/s", False),
    ("thread_to_actor", "items_per_s", "items/s", False),
    ("thread_to_actor_4p", "items_per_s", "items/s", False),
    ("actor_to_thread", "items_per_s", "items/s", False),
    ("submit_rtt", "p50_us", "us", True),
    ("submit_rtt", "p99_us", "us", True),
    ("many_sleepers", "wall_over_ideal", "ratio", True),
    ("idle_cpu", "cpu_percent", "%", True),
    ("memory_per_job", "bytes", "bytes", True),
    # Jobs to worker processes over loopback (2 workers).
    ("remote_rtt", "p50_us", "us", True),
    ("remote_rtt", "p99_us", "us", True),
    ("remote_throughput", "ops_per_s", "ops/s", False),
    ("remote_throughput", "ops_per_s_w1", "ops/s", False),
    # TCP on loopback: 64-byte echo round trips, a 1 GiB stream of 64 KiB
    # writes (weave, asio and tokio).
    ("tcp_echo_rtt", "p50_us", "us", True),
    ("tcp_echo_rtt", "p99_us", "us", True),
    ("tcp_throughput", "bytes_per_s", "bytes/s", False),
    # The same driven from other actors (weave's request API; tokio: a task
    # owning the socket, driven over channels).
    ("tcp_echo_rtt_request", "p50_us", "us", True),
    ("tcp_echo_rtt_request", "p99_us", "us", True),
    ("tcp_throughput_request", "bytes_per_s", "bytes/s", False),
    # CPU time (process user + system) per operation: what a design burns.
    ("offload_rtt", "cpu_us_per_op", "us", True),
    ("offload_throughput", "cpu_us_per_op", "us", True),
    ("thread_to_actor", "cpu_us_per_op", "us", True),
    ("thread_to_actor_4p", "cpu_us_per_op", "us", True),
    ("actor_to_thread", "cpu_us_per_op", "us", True),
    ("submit_rtt", "cpu_us_per_op", "us", True),
    ("remote_rtt", "cpu_us_per_op", "us", True),
    ("remote_throughput", "cpu_us_per_op", "us", True),
    ("tcp_echo_rtt", "cpu_us_per_op", "us", True),
    ("tcp_throughput", "cpu_us_per_op", "us", True),
    ("tcp_echo_rtt_request", "cpu_us_per_op", "us", True),
    ("tcp_throughput_request", "cpu_us_per_op", "us", True),
]
# Scaling measures: (id, metric, unit, lower_is_better), reported at every
# thread count T as "<metric>@<T>", each with "cpu_us_per_op@<T>".
SCALING = [
    ("fanout", "speedup", "× 1 thread", False),
    ("offload_fanin", "ops_per_s", "ops/s", False),
    ("submit_mt", "ops_per_s", "ops/s", False),
    ("channel_mpmc", "items_per_s", "items/s", False),
]
SYSTEMS = ["weave", "caf_raw", "tokio", "asio", "python_asyncio",
           "python_uvloop", "python_janus"]
NOT_RUN = {
    "asio": "Asio 1.81 has no bounded channel usable without C++20 "
            "coroutines: the channel measures are not run",
    "python_janus": "janus is a queue: only the queue measures",
    "caf_raw": "CAF has no bounded channel: its channel figures are for an "
               "unbounded mailbox (anon_send / scoped_actor receive)",
    "python_asyncio": "queue measures move 50,000 items (the tutorial's "
                      "run_in_executor(q.get) pattern), not 10,000,000",
    "python_uvloop": "as python_asyncio",
    "remote": "remote_rtt / remote_throughput: a job (x -> x + 1) to one "
              "of 2 worker processes on loopback; throughput keeps 64 "
              "(ops_per_s) or 1 (ops_per_s_w1) in flight; CPU per operation "
              "is the client process's. caf_raw: actors published with "
              "CAF's middleman, requests from the client; python: "
              "ProcessPoolExecutor through run_in_executor",
    "tcp": "tcp_echo_rtt: one client, 64-byte messages echoed on loopback, "
           "one at a time (p50/p99; CPU per round trip). tcp_throughput: "
           "1 GiB in 64 KiB writes to a reader that discards it (CPU per "
           "64 KiB write). weave: both ends connection actors on one "
           "runtime, each driven by a tcp_protocol in its own actor; asio: "
           "both ends async on one io_context thread; tokio: multi-thread "
           "runtime, server as a spawned task. The _request ids: the same "
           "sizes with each socket driven from another actor (weave: "
           "requests to the connection actor, an answer each; tokio: a task "
           "owning the socket serves commands from an mpsc channel, a "
           "oneshot answer each; asio: not run, it has no actor or "
           "channel to drive a socket through). caf_raw and python: not run",
    "scaling": "fanout: one actor (task, handler) sends a CPU-bound task "
               "(2 ms of CPU) to each of 400 actors on T scheduler threads; "
               "speed-up over T = 1 (caf_raw: CAF's defaults but for the "
               "thread count). offload_fanin: T actors each keeping 64 "
               "offloads in flight on one pool of T workers. submit_mt: T "
               "plain threads each doing submit(fn).get() on a pool of T. "
               "channel_mpmc: T producer threads -> bounded channel (1024) -> "
               "T consumer threads (tokio: mpsc, one consumer; caf_raw and "
               "asio have no bounded channel; python: queue.Queue, under the "
               "GIL, python_asyncio only)",
}


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except Exception:
        return ""


def machine():
    return {
        "cpu": sh("lscpu | sed -n 's/^Model name: *//p'"),
        "cores": os.cpu_count(),
        "memory": sh("free -h | awk '/Mem:/ {print $2}'"),
        "kernel": platform.release(),
        "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
        "compiler": sh("g++ --version | head -1"),
        "caf": sh("dpkg-query -W -f='${Version}' libcaf-dev"),
        "boost": sh("dpkg-query -W -f='${Version}' libboost1.81-dev"),
        "tokio": sh("dpkg-query -W -f='${Version}' librust-tokio-dev"),
        "python": sh("/usr/bin/python3 --version"),
        "uvloop": sh("dpkg-query -W -f='${Version}' python3-uvloop"),
        "janus": sh("dpkg-query -W -f='${Version}' python3-janus"),
        "scheduler": "weave: CAF work stealing, max-threads = cores, "
                     "aggressive-poll-attempts=200, moderate-poll-attempts=0, "
                     "relaxed-sleep-duration=10s, weave.spin=50us, "
                     "idle workers woken when work is queued; "
                     "caf_raw: CAF defaults (max(cores,4) threads, default "
                     "polling)",
    }


def fmt(v):
    if v is None:
        return "—"
    if v >= 1e6:
        return f"{v / 1e6:.2f} M"
    if v >= 1e4:
        return f"{v / 1e3:.0f} k"
    if v >= 100:
        return f"{v:.0f}"
    return f"{v:.2f}"


def callgrind_benchmarks(out_dir):
    """Instructions per operation from bench/callgrind, if it has run."""
    path = os.path.join(out_dir, "callgrind.json")
    if not os.path.exists(path):
        return []
    counts = json.load(open(path))
    result = []
    for bid in ["offload_rtt", "submit_rtt"]:
        r = {s: counts[f"{s}/{bid}"] for s in ["weave", "caf_raw"]
             if f"{s}/{bid}" in counts}
        if r:
            result.append({"id": bid, "metric": "instructions_per_op",
                           "unit": "instructions", "lower_is_better": True,
                           "results": r})
    return result


def scaling_benchmarks(samples):
    """Rows for every scaling measure at every thread count seen."""
    result = []
    for bid, metric, unit, lower in SCALING:
        counts = sorted({int(m.split("@")[1]) for (b, m, _) in samples
                         if b == bid and "@" in m})
        for t in counts:
            for m, u, low in [(metric, unit, lower),
                              ("cpu_us_per_op", "us", True)]:
                results = {}
                for s in SYSTEMS:
                    vals = samples.get((bid, f"{m}@{t}", s))
                    if vals:
                        results[s] = statistics.median(vals)
                if results:
                    result.append({"id": bid, "metric": m, "threads": t,
                                   "unit": u, "lower_is_better": low,
                                   "results": results})
    return result


def main():
    machine_file = None
    if len(sys.argv) > 2 and sys.argv[1] == "--machine":
        machine_file = sys.argv[2]
        del sys.argv[1:3]
    name = sys.argv[3] if len(sys.argv) > 3 else "latest"
    if sys.argv[1] == "--from-json":
        # Regenerate the outputs from an existing latest.json (e.g. after
        # bench/callgrind ran).
        out_dir = sys.argv[2]
        doc = json.load(open(os.path.join(out_dir, name + ".json")))
        doc["benchmarks"] = [b for b in doc["benchmarks"]
                             if b["metric"] != "instructions_per_op"]
        doc["benchmarks"] += callgrind_benchmarks(out_dir)
        write_outputs(doc, out_dir, name)
        return
    raw_path, out_dir = sys.argv[1], sys.argv[2]
    samples = {}
    for line in open(raw_path):
        doc = json.loads(line)
        for bid, metrics in doc["results"].items():
            for m, v in metrics.items():
                samples.setdefault((bid, m, doc["system"]), []).append(v)
    benchmarks = []
    for bid, metric, unit, lower in MEASURES:
        results = {}
        for s in SYSTEMS:
            vals = samples.get((bid, metric, s))
            if vals:
                results[s] = statistics.median(vals)
        if results:
            benchmarks.append({"id": bid, "metric": metric, "unit": unit,
                               "lower_is_better": lower, "results": results})
    benchmarks += scaling_benchmarks(samples)
    if name == "latest":
        benchmarks += callgrind_benchmarks(out_dir)
    here = json.load(open(machine_file)) if machine_file else machine()
    doc = {"machine": here, "benchmarks": benchmarks}
    if name.startswith("loaded"):
        doc["machine"]["load"] = ("one busy-loop thread per core ran "
                                  "beside every measure (bench/run --loaded)")
    write_outputs(doc, out_dir, name)


def label(b):
    """A row's name: id and metric, and the thread count if it has one."""
    text = f"{b['id']} {b['metric']}"
    return text + (f" T={b['threads']}" if "threads" in b else "")


def write_scaling_chart(doc, out_dir, name, plt):
    """Throughput (or speed-up) against threads, one line per system."""
    rows = [b for b in doc["benchmarks"]
            if "threads" in b and b["metric"] != "cpu_us_per_op"]
    ids = [bid for bid, *_ in SCALING if any(b["id"] == bid for b in rows)]
    if not ids:
        return
    fig, axes = plt.subplots(1, len(ids), figsize=(4.5 * len(ids), 4.2),
                             squeeze=False)
    for ax, bid in zip(axes[0], ids):
        mine = [b for b in rows if b["id"] == bid]
        for s in SYSTEMS:
            pts = sorted((b["threads"], b["results"][s]) for b in mine
                         if s in b["results"])
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                        label=s, linewidth=2.5 if s == "weave" else 1.2)
        ax.set_title(f"{bid} ({mine[0]['metric']})", fontsize=9)
        ax.set_xlabel("threads T")
        ax.set_xscale("log", base=2)
        ax.set_ylabel(mine[0]["unit"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"scaling ({name}), " + doc["machine"]["cpu"], fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, name + "_scaling.png"), dpi=110)


def write_outputs(doc, out_dir, name="latest"):
    benchmarks = doc["benchmarks"]
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(doc, f, indent=2)
    # Markdown table: values, then weave's advantage over each peer (>1 means
    # weave is better, whichever direction the metric runs).
    peers = [s for s in SYSTEMS if s != "weave"]
    lines = ["# weave benchmarks", "",
             "Medians of the repetitions of one `bench/run` invocation; "
             "systems alternate within each repetition. "
             "`× peer` is weave's advantage over that peer (> 1: weave is "
             "better, whichever way the metric runs). "
             "`instructions_per_op` rows are callgrind counts (bench/callgrind): "
             "repeatable, with spinning and polling turned off.", "",
             "| measure | unit | " + " | ".join(SYSTEMS) + " | "
             + " | ".join("× " + p for p in peers) + " |",
             "|---|---|" + "---|" * (len(SYSTEMS) + len(peers))]
    for b in benchmarks:
        r = b["results"]
        row = [label(b), b["unit"]]
        row += [fmt(r.get(s)) for s in SYSTEMS]
        w = r.get("weave")
        for p in peers:
            v = r.get(p)
            if w is None or v is None or w == 0 or v == 0:
                row.append("—")
            else:
                ratio = v / w if b["lower_is_better"] else w / v
                row.append(f"{ratio:.1f}")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in doc["machine"].items()]
    lines += ["", "## Notes", ""]
    lines += [f"- {s}: {n}" for s, n in NOT_RUN.items()]
    with open(os.path.join(out_dir, name + ".md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        labels, data = [], {p: [] for p in peers}
        # Scaling measures: only at the most threads (the scaling chart
        # has the rest).
        most = {}
        for b in benchmarks:
            if "threads" in b:
                most[b["id"]] = max(most.get(b["id"], 0), b["threads"])
        for b in benchmarks:
            if "threads" in b and b["threads"] != most[b["id"]]:
                continue
            w = b["results"].get("weave")
            labels.append(label(b).replace(" ", "\n", 1))
            for p in peers:
                v = b["results"].get(p)
                ok = w and v
                data[p].append((v / w if b["lower_is_better"] else w / v)
                               if ok else 0)
        fig, ax = plt.subplots(figsize=(max(14, 0.6 * len(labels)), 6))
        width = 0.8 / len(peers)
        for k, p in enumerate(peers):
            xs = [i + k * width for i in range(len(labels))]
            ax.bar(xs, data[p], width, label=p)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_ylabel("weave's advantage (× peer, log scale; > 1 is better)")
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))])
        ax.set_xticklabels(labels, fontsize=7)
        ax.legend(fontsize=8)
        ax.set_title("weave vs peers, " + doc["machine"]["cpu"])
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, name + ".png"), dpi=110)
        write_scaling_chart(doc, out_dir, name, plt)
    except ImportError:
        print("matplotlib missing: no chart", file=sys.stderr)
    print(open(os.path.join(out_dir, name + ".md")).read())


if __name__ == "__main__":
    main()
