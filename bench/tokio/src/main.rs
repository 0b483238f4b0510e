// The tokio peer: spawn_blocking, bounded mpsc with blocking_send /
// blocking_recv, Handle::block_on — written the way tokio users would.
use std::time::{Duration, Instant};
use tokio::runtime::{Builder, Handle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const RTT_WARMUP: usize = 2000;
const RTT_SAMPLES: usize = 20000;
const IN_FLIGHT: usize = 64;
const THROUGHPUT_OPS: usize = 400_000;
const CHANNEL_ITEMS: u64 = 10_000_000;
const CAPACITY: usize = 1024;
const SLEEPERS: usize = 10_000;
const SLEEPER_POOL: usize = 64;
const IDLE: Duration = Duration::from_secs(5);
// Scaling measures (totals over all threads), as in bench_util.hpp.
const FANOUT_TASKS: usize = 400;
const FANOUT_TASK_CPU: f64 = 0.002;
const FANIN_OPS: usize = 400_000;
const SUBMIT_MT_OPS: usize = 200_000;
const MPMC_ITEMS: u64 = 4_000_000;
// TCP on loopback (bench_util.hpp's sizes).
const TCP_MESSAGE: usize = 64;
const TCP_CHUNK: usize = 64 * 1024;
const TCP_STREAM_BYTES: usize = 1 << 30;

fn thread_cpu_seconds() -> f64 {
    let mut ts = libc_timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { clock_gettime(3 /* CLOCK_THREAD_CPUTIME_ID */, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

#[repr(C)]
struct libc_timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn clock_gettime(clk: i32, ts: *mut libc_timespec) -> i32;
}

/// Burns `seconds` of this thread's CPU (a CPU-bound task).
fn burn_cpu(seconds: f64) {
    let t0 = thread_cpu_seconds();
    let mut sink = 0u64;
    while thread_cpu_seconds() - t0 < seconds {
        for i in 0..1000u64 {
            sink = std::hint::black_box(sink.wrapping_add(i));
        }
    }
}

/// 1, 2, 4, ... up to the cores, and the cores; BENCH_THREADS overrides.
fn thread_counts() -> Vec<usize> {
    if let Ok(list) = std::env::var("BENCH_THREADS") {
        let v: Vec<usize> = list.split(',').filter_map(|x| x.trim().parse().ok()).filter(|&t| t > 0).collect();
        if !v.is_empty() {
            return v;
        }
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut v = Vec::new();
    let mut t = 1;
    while t < cores {
        v.push(t);
        t *= 2;
    }
    v.push(cores);
    v
}

fn pct(samples: &mut Vec<u128>, p: f64) -> f64 {
    samples.sort_unstable();
    samples[((p / 100.0) * (samples.len() - 1) as f64) as usize] as f64 / 1000.0
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, from /proc/self/stat (in clock ticks).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn scaling(wanted: &dyn Fn(&str) -> bool, out: &mut Vec<(String, String, f64)>) {
    let mut put = |id: &str, m: &str, t: usize, v: f64| out.push((id.into(), format!("{}@{}", m, t), v));
    if wanted("fanout") {
        // One task spawns a CPU-bound task per element on T worker threads.
        let mut base = 0.0;
        for t in thread_counts() {
            let rt = Builder::new_multi_thread().worker_threads(t).enable_all().build().unwrap();
            let c0 = cpu_seconds();
            let t0 = Instant::now();
            rt.block_on(async {
                tokio::spawn(async {
                    let hs: Vec<_> = (0..FANOUT_TASKS).map(|_| tokio::spawn(async { burn_cpu(FANOUT_TASK_CPU) })).collect();
                    for h in hs {
                        h.await.unwrap();
                    }
                })
                .await
                .unwrap();
            });
            let wall = t0.elapsed().as_secs_f64();
            if t == 1 {
                base = wall;
            }
            put("fanout", "wall_ms", t, wall * 1e3);
            put("fanout", "cpu_us_per_op", t, (cpu_seconds() - c0) * 1e6 / FANOUT_TASKS as f64);
            if base > 0.0 {
                put("fanout", "speedup", t, base / wall);
            }
        }
    }
    if wanted("offload_fanin") {
        // T tasks each keeping 64 spawn_blocking calls in flight, on a
        // blocking pool of T threads.
        for t in thread_counts() {
            let rt = Builder::new_multi_thread().max_blocking_threads(t).enable_all().build().unwrap();
            let per = FANIN_OPS / (t * IN_FLIGHT);
            let c0 = cpu_seconds();
            let t0 = Instant::now();
            rt.block_on(async {
                let hs: Vec<_> = (0..t * IN_FLIGHT)
                    .map(|_| {
                        tokio::spawn(async move {
                            for _ in 0..per {
                                tokio::task::spawn_blocking(|| ()).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.await.unwrap();
                }
            });
            let ops = (per * t * IN_FLIGHT) as f64;
            put("offload_fanin", "ops_per_s", t, ops / t0.elapsed().as_secs_f64());
            put("offload_fanin", "cpu_us_per_op", t, (cpu_seconds() - c0) * 1e6 / ops);
        }
    }
    if wanted("submit_mt") {
        // T plain threads each doing block_on(spawn_blocking(fn)), on a
        // blocking pool of T threads.
        for t in thread_counts() {
            let rt = Builder::new_multi_thread().max_blocking_threads(t).enable_all().build().unwrap();
            let per = SUBMIT_MT_OPS / t;
            let c0 = cpu_seconds();
            let t0 = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..t {
                    let h = rt.handle().clone();
                    s.spawn(move || {
                        for _ in 0..per {
                            h.block_on(h.spawn_blocking(|| 1)).unwrap();
                        }
                    });
                }
            });
            let ops = (per * t) as f64;
            put("submit_mt", "ops_per_s", t, ops / t0.elapsed().as_secs_f64());
            put("submit_mt", "cpu_us_per_op", t, (cpu_seconds() - c0) * 1e6 / ops);
        }
    }
    if wanted("channel_mpmc") {
        // T producer threads -> mpsc(1024) -> one consumer thread (tokio's
        // bounded channel has a single receiver).
        for t in thread_counts() {
            let (tx, mut rx) = mpsc::channel::<u64>(CAPACITY);
            let per = MPMC_ITEMS / t as u64;
            let c0 = cpu_seconds();
            let t0 = Instant::now();
            let consumer = std::thread::spawn(move || {
                let mut n = 0u64;
                while let Some(_) = rx.blocking_recv() {
                    n += 1;
                }
                n
            });
            let producers: Vec<_> = (0..t)
                .map(|_| {
                    let tx = tx.clone();
                    std::thread::spawn(move || {
                        for i in 0..per {
                            tx.blocking_send(i).unwrap();
                        }
                    })
                })
                .collect();
            drop(tx);
            for p in producers {
                p.join().unwrap();
            }
            let n = consumer.join().unwrap() as f64;
            put("channel_mpmc", "items_per_s", t, n / t0.elapsed().as_secs_f64());
            put("channel_mpmc", "cpu_us_per_op", t, (cpu_seconds() - c0) * 1e6 / n);
        }
    }
}

/// What weave's request API is (bench/weave_tcp.cpp, `echo_rtt_request`):
/// one task owns the socket and serves commands from a channel, in order,
/// answering each on a oneshot; other tasks drive the socket through it.
#[derive(Debug)]
enum Cmd {
    /// Writes all of it; answers with the buffer (weave's `write_all`).
    Write(Vec<u8>, tokio::sync::oneshot::Sender<Vec<u8>>),
    /// Exactly `n` bytes (weave's `read_exact`).
    ReadExact(usize, tokio::sync::oneshot::Sender<Vec<u8>>),
    /// What one read gives, into the buffer (weave's `read_into`).
    ReadInto(Vec<u8>, tokio::sync::oneshot::Sender<Vec<u8>>),
}

fn spawn_conn(mut s: tokio::net::TcpStream) -> mpsc::UnboundedSender<Cmd> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Cmd>();
    tokio::spawn(async move {
        while let Some(cmd) = rx.recv().await {
            match cmd {
                Cmd::Write(b, done) => {
                    if s.write_all(&b).await.is_err() {
                        break;
                    }
                    let _ = done.send(b);
                }
                Cmd::ReadExact(n, done) => {
                    let mut b = vec![0u8; n];
                    if s.read_exact(&mut b).await.is_err() {
                        break;
                    }
                    let _ = done.send(b);
                }
                Cmd::ReadInto(mut b, done) => {
                    match s.read(&mut b).await {
                        Ok(n) if n > 0 => {
                            b.truncate(n);
                            let _ = done.send(b);
                        }
                        _ => break,
                    }
                }
            }
        }
    });
    tx
}

/// A connected pair on loopback, each side owned by its own task.
async fn request_pair() -> (mpsc::UnboundedSender<Cmd>, mpsc::UnboundedSender<Cmd>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (srv, _) = l.accept().await.unwrap();
    c.set_nodelay(true).unwrap();
    srv.set_nodelay(true).unwrap();
    (spawn_conn(c), spawn_conn(srv))
}

fn tcp_request(wanted: &dyn Fn(&str) -> bool, rt: &tokio::runtime::Runtime,
               out: &mut Vec<(String, String, f64)>) {
    use tokio::sync::oneshot;
    if wanted("tcp_echo_rtt_request") {
        let c0 = cpu_seconds();
        let mut s = rt.block_on(async {
            let (client, server) = request_pair().await;
            // The echo: a read, then its bytes written (not waiting for
            // that write's answer), as weave's echo actor does.
            tokio::spawn(async move {
                loop {
                    let (tx, rx) = oneshot::channel();
                    if server.send(Cmd::ReadExact(TCP_MESSAGE, tx)).is_err() {
                        break;
                    }
                    let msg = match rx.await {
                        Ok(m) => m,
                        Err(_) => break,
                    };
                    let (tx, _rx) = oneshot::channel();
                    if server.send(Cmd::Write(msg, tx)).is_err() {
                        break;
                    }
                }
            });
            let msg = vec![7u8; TCP_MESSAGE];
            let mut s = Vec::with_capacity(RTT_SAMPLES);
            for i in 0..RTT_WARMUP + RTT_SAMPLES {
                let t0 = Instant::now();
                let (tx, _rx) = oneshot::channel();
                client.send(Cmd::Write(msg.clone(), tx)).unwrap();
                let (tx, rx) = oneshot::channel();
                client.send(Cmd::ReadExact(TCP_MESSAGE, tx)).unwrap();
                rx.await.unwrap();
                if i >= RTT_WARMUP {
                    s.push(t0.elapsed().as_nanos());
                }
            }
            s
        });
        out.push(("tcp_echo_rtt_request".into(), "cpu_us_per_op".into(), (cpu_seconds() - c0) * 1e6 / (RTT_WARMUP + RTT_SAMPLES) as f64));
        out.push(("tcp_echo_rtt_request".into(), "p50_us".into(), pct(&mut s, 50.0)));
        out.push(("tcp_echo_rtt_request".into(), "p99_us".into(), pct(&mut s, 99.0)));
    }
    if wanted("tcp_throughput_request") {
        let (secs, cpu) = rt.block_on(async {
            let (client, server) = request_pair().await;
            let c0 = cpu_seconds();
            let t0 = Instant::now();
            // The reader: one buffer there and back per read.
            let reader = tokio::spawn(async move {
                let mut b = vec![0u8; TCP_CHUNK];
                let mut got = 0usize;
                while got < TCP_STREAM_BYTES {
                    b.resize(TCP_CHUNK, 0);
                    let (tx, rx) = oneshot::channel();
                    server.send(Cmd::ReadInto(b, tx)).unwrap();
                    b = rx.await.unwrap();
                    got += b.len();
                }
            });
            // The writer: the next write once the last one is taken.
            let mut chunk = vec![7u8; TCP_CHUNK];
            let mut sent = 0usize;
            while sent < TCP_STREAM_BYTES {
                let (tx, rx) = oneshot::channel();
                client.send(Cmd::Write(chunk, tx)).unwrap();
                chunk = rx.await.unwrap();
                sent += TCP_CHUNK;
            }
            reader.await.unwrap();
            (t0.elapsed().as_secs_f64(), cpu_seconds() - c0)
        });
        out.push(("tcp_throughput_request".into(), "bytes_per_s".into(), TCP_STREAM_BYTES as f64 / secs));
        out.push(("tcp_throughput_request".into(), "cpu_us_per_op".into(), cpu * 1e6 / (TCP_STREAM_BYTES / TCP_CHUNK) as f64));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let wanted = |id: &str| args.is_empty() || args.iter().any(|a| a == id);
    let mut out: Vec<(String, String, f64)> = Vec::new();
    let rt = Builder::new_multi_thread().enable_all().build().unwrap();

    if wanted("offload_rtt") {
        let c0 = cpu_seconds();
        let mut s = rt.block_on(async {
            let mut s = Vec::with_capacity(RTT_SAMPLES);
            for i in 0..RTT_WARMUP + RTT_SAMPLES {
                let t0 = Instant::now();
                tokio::task::spawn_blocking(|| ()).await.unwrap();
                if i >= RTT_WARMUP {
                    s.push(t0.elapsed().as_nanos());
                }
            }
            s
        });
        out.push(("offload_rtt".into(), "cpu_us_per_op".into(), (cpu_seconds() - c0) * 1e6 / (RTT_WARMUP + RTT_SAMPLES) as f64));
        out.push(("offload_rtt".into(), "p50_us".into(), pct(&mut s, 50.0)));
        out.push(("offload_rtt".into(), "p99_us".into(), pct(&mut s, 99.0)));
    }
    if wanted("offload_throughput") {
        let c0 = cpu_seconds();
        let rate = rt.block_on(async {
            let t0 = Instant::now();
            let per = THROUGHPUT_OPS / IN_FLIGHT;
            let mut tasks = Vec::new();
            for _ in 0..IN_FLIGHT {
                tasks.push(tokio::spawn(async move {
                    for _ in 0..per {
                        tokio::task::spawn_blocking(|| ()).await.unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            (per * IN_FLIGHT) as f64 / t0.elapsed().as_secs_f64()
        });
        out.push(("offload_throughput".into(), "ops_per_s".into(), rate));
        out.push(("offload_throughput".into(), "cpu_us_per_op".into(), (cpu_seconds() - c0) * 1e6 / THROUGHPUT_OPS as f64));
    }
    for (id, producers) in [("thread_to_actor", 1u64), ("thread_to_actor_4p", 4u64)] {
        if !wanted(id) {
            continue;
        }
        let (tx, mut rx) = mpsc::channel::<u64>(CAPACITY);
        let per = CHANNEL_ITEMS / producers;
        let c0 = cpu_seconds();
        let t0 = Instant::now();
        let consumer = rt.spawn(async move {
            let mut n = 0u64;
            while let Some(_) = rx.recv().await {
                n += 1;
            }
            n
        });
        let threads: Vec<_> = (0..producers)
            .map(|_| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..per {
                        tx.blocking_send(i).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        for t in threads {
            t.join().unwrap();
        }
        let n = rt.block_on(consumer).unwrap();
        out.push((id.into(), "items_per_s".into(), n as f64 / t0.elapsed().as_secs_f64()));
        out.push((id.into(), "cpu_us_per_op".into(), (cpu_seconds() - c0) * 1e6 / n as f64));
    }
    if wanted("actor_to_thread") {
        let (tx, mut rx) = mpsc::channel::<u64>(CAPACITY);
        let c0 = cpu_seconds();
        let t0 = Instant::now();
        rt.spawn(async move {
            for i in 0..CHANNEL_ITEMS {
                tx.send(i).await.unwrap();
            }
        });
        let mut n = 0u64;
        while let Some(_) = rx.blocking_recv() {
            n += 1;
        }
        out.push(("actor_to_thread".into(), "items_per_s".into(), n as f64 / t0.elapsed().as_secs_f64()));
        out.push(("actor_to_thread".into(), "cpu_us_per_op".into(), (cpu_seconds() - c0) * 1e6 / n as f64));
    }
    if wanted("submit_rtt") {
        let handle: Handle = rt.handle().clone();
        let mut s = Vec::with_capacity(RTT_SAMPLES);
        let c0 = cpu_seconds();
        for i in 0..RTT_WARMUP + RTT_SAMPLES {
            let t0 = Instant::now();
            let v = handle.block_on(async { handle.spawn(async { 1 }).await.unwrap() });
            assert_eq!(v, 1);
            if i >= RTT_WARMUP {
                s.push(t0.elapsed().as_nanos());
            }
        }
        out.push(("submit_rtt".into(), "cpu_us_per_op".into(), (cpu_seconds() - c0) * 1e6 / (RTT_WARMUP + RTT_SAMPLES) as f64));
        out.push(("submit_rtt".into(), "p50_us".into(), pct(&mut s, 50.0)));
        out.push(("submit_rtt".into(), "p99_us".into(), pct(&mut s, 99.0)));
    }
    if wanted("many_sleepers") {
        let pool = Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(SLEEPER_POOL)
            .build()
            .unwrap();
        let ratio = pool.block_on(async {
            let warm: Vec<_> = (0..SLEEPER_POOL)
                .map(|_| tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(1))))
                .collect();
            for w in warm {
                w.await.unwrap();
            }
            let c0 = cpu_seconds();
            let t0 = Instant::now();
            let jobs: Vec<_> = (0..SLEEPERS)
                .map(|_| tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(1))))
                .collect();
            for j in jobs {
                j.await.unwrap();
            }
            (t0.elapsed().as_secs_f64() / (SLEEPERS as f64 / SLEEPER_POOL as f64 * 1e-3),
             (cpu_seconds() - c0) * 1e6 / SLEEPERS as f64)
        });
        out.push(("many_sleepers".into(), "wall_over_ideal".into(), ratio.0));
        out.push(("many_sleepers".into(), "cpu_us_per_op".into(), ratio.1));
    }
    if wanted("tcp_echo_rtt") {
        let c0 = cpu_seconds();
        let mut s = rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut srv, _) = l.accept().await.unwrap();
            c.set_nodelay(true).unwrap();
            srv.set_nodelay(true).unwrap();
            let echo = tokio::spawn(async move {
                let mut b = [0u8; TCP_MESSAGE];
                while srv.read_exact(&mut b).await.is_ok() {
                    if srv.write_all(&b).await.is_err() {
                        break;
                    }
                }
            });
            let msg = [7u8; TCP_MESSAGE];
            let mut b = [0u8; TCP_MESSAGE];
            let mut s = Vec::with_capacity(RTT_SAMPLES);
            for i in 0..RTT_WARMUP + RTT_SAMPLES {
                let t0 = Instant::now();
                c.write_all(&msg).await.unwrap();
                c.read_exact(&mut b).await.unwrap();
                if i >= RTT_WARMUP {
                    s.push(t0.elapsed().as_nanos());
                }
            }
            drop(c);
            echo.await.unwrap();
            s
        });
        out.push(("tcp_echo_rtt".into(), "cpu_us_per_op".into(), (cpu_seconds() - c0) * 1e6 / (RTT_WARMUP + RTT_SAMPLES) as f64));
        out.push(("tcp_echo_rtt".into(), "p50_us".into(), pct(&mut s, 50.0)));
        out.push(("tcp_echo_rtt".into(), "p99_us".into(), pct(&mut s, 99.0)));
    }
    if wanted("tcp_throughput") {
        let (secs, cpu) = rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut srv, _) = l.accept().await.unwrap();
            c.set_nodelay(true).unwrap();
            let c0 = cpu_seconds();
            let t0 = Instant::now();
            let reader = tokio::spawn(async move {
                let mut b = vec![0u8; TCP_CHUNK];
                let mut got = 0usize;
                while got < TCP_STREAM_BYTES {
                    let n = srv.read(&mut b).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    got += n;
                }
            });
            let chunk = vec![7u8; TCP_CHUNK];
            let mut sent = 0usize;
            while sent < TCP_STREAM_BYTES {
                c.write_all(&chunk).await.unwrap();
                sent += TCP_CHUNK;
            }
            reader.await.unwrap();
            (t0.elapsed().as_secs_f64(), cpu_seconds() - c0)
        });
        out.push(("tcp_throughput".into(), "bytes_per_s".into(), TCP_STREAM_BYTES as f64 / secs));
        out.push(("tcp_throughput".into(), "cpu_us_per_op".into(), cpu * 1e6 / (TCP_STREAM_BYTES / TCP_CHUNK) as f64));
    }
    tcp_request(&wanted, &rt, &mut out);
    drop(rt);
    scaling(&wanted, &mut out);
    if wanted("idle_cpu") {
        let idle = Builder::new_multi_thread().enable_all().build().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let c0 = cpu_seconds();
        let t0 = Instant::now();
        std::thread::sleep(IDLE);
        let pct = (cpu_seconds() - c0) / t0.elapsed().as_secs_f64() * 100.0;
        out.push(("idle_cpu".into(), "cpu_percent".into(), pct));
        drop(idle);
    }
    // JSON, like the other benches.
    let mut json = String::from("{\"system\": \"tokio\", \"results\": {");
    let mut ids: Vec<String> = out.iter().map(|(i, _, _)| i.clone()).collect();
    ids.dedup();
    for (k, id) in ids.iter().enumerate() {
        if k > 0 {
            json.push_str(", ");
        }
        json.push_str(&format!("\"{}\": {{", id));
        let ms: Vec<String> = out
            .iter()
            .filter(|(i, _, _)| i == id)
            .map(|(_, m, v)| format!("\"{}\": {}", m, v))
            .collect();
        json.push_str(&ms.join(", "));
        json.push('}');
    }
    json.push_str("}}");
    for (i, m, v) in &out {
        eprintln!("tokio {} {} = {:.3}", i, m, v);
    }
    println!("{}", json);
}
