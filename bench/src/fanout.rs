//! Subscription fan-out: many WebSocket subscribers to `executionStatusChanged`
//! while one function is executed at a steady rate. The subscribers are mixed
//! as a dashboard fleet would be: some follow every function, some the one
//! being executed, some another function that sees nothing (each must get
//! none of the events). Latency is receipt time minus the event's `at` (the
//! database's `clock_timestamp()` in the trigger that announces the change,
//! on the same machine's clock). The peer is a bare LISTEN client (sqlx
//! `PgListener`) on the same NOTIFY stream, timed the same way. The floors
//! of the write side are bare WebSocket servers ([`crate::fanout_floor`]),
//! measured with the same subscribers at the same pace ([`measure`] serves
//! both). The subscribers read with [`crate::raw_ws`], the leanest reader
//! that still checks every message, since they share the machine's cores
//! with the server they measure. The sender's RSS is sampled from
//! /proc/<pid>/status, its CPU from /proc/<pid>/stat.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use uuid::Uuid;

use crate::env::Server;
use crate::fanout_floor::Shape;
use crate::raw_ws::{Frame, RawSocket};
use crate::results::{Fanout, FanoutFloor, Taken};
use crate::stats::{self, Latency};
use crate::{Paths, Plan, gql};

const SUBSCRIPTION: &str = "subscription($f: UUID) { executionStatusChanged(functionId: $f) { status previousStatus at execution { id functionId status } } }";

/// What a subscriber follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    /// Every function's executions (no `functionId`).
    All,
    /// The executed function's.
    One,
    /// Another function's: it must receive nothing while measuring.
    Other,
}

impl Group {
    /// Of every ten subscribers: four follow all, four the one, two another.
    fn of(index: usize) -> Self {
        match index % 10 {
            0..=3 => Self::All,
            4..=7 => Self::One,
            _ => Self::Other,
        }
    }
}
/// WebSocket handshakes in flight at once while subscribers connect.
const CONNECTING: usize = 50;

struct Shared {
    measuring: AtomicBool,
    subscribed: AtomicUsize,
    /// COMPLETED events seen by all subscribers (the barrier and the end).
    completed_seen: AtomicU64,
}

/// What one subscriber received while measuring. Kept per subscriber and
/// merged at the end: 10,000 tasks recording into one histogram behind a
/// lock cost the load generator CPU that the server it measures needs.
#[derive(Default)]
struct Received {
    /// Commit-to-receipt latency of each event, in microseconds.
    latencies_us: Vec<u32>,
    /// Events that reached a subscriber of another function.
    misrouted: u64,
}

/// From an event's `at` (the trigger's `clock_timestamp()`, RFC 3339) to
/// `received`, on the same machine's clock.
fn latency(at: &str, received: SystemTime) -> anyhow::Result<Duration> {
    Ok(received.duration_since(parse_at(at)?).unwrap_or_default())
}

fn parse_at(at: &str) -> anyhow::Result<SystemTime> {
    let at: DateTime<Utc> = at.parse().with_context(|| format!("bad `at` {at:?}"))?;
    Ok(SystemTime::from(at))
}

impl Received {
    fn record(&mut self, at: SystemTime, received: SystemTime) {
        let latency = received.duration_since(at).unwrap_or_default();
        self.latencies_us
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
    }
}

/// What a server message means to a subscriber.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Meaning {
    Event { completed: bool, at: SystemTime },
    Ping,
    Nothing,
}

/// Messages each thread keeps the meaning of: every subscriber of a stream
/// receives the same bytes (the server shares them), so each is parsed once
/// per thread instead of once per subscriber.
const MEANINGS_KEPT: usize = 8;

thread_local! {
    static MEANINGS: RefCell<VecDeque<(Box<[u8]>, Meaning)>> =
        RefCell::new(VecDeque::with_capacity(MEANINGS_KEPT));
}

/// The meaning of `text`, or why it is not a message a subscriber expects.
fn meaning(text: &[u8]) -> anyhow::Result<Meaning> {
    MEANINGS.with_borrow_mut(|kept| {
        if let Some((_, meaning)) = kept.iter().find(|(seen, _)| **seen == *text) {
            return Ok(*meaning);
        }
        let meaning = parse_message(text)?;
        if kept.len() == MEANINGS_KEPT {
            kept.pop_front();
        }
        kept.push_back((text.into(), meaning));
        Ok(meaning)
    })
}

fn parse_message(text: &[u8]) -> anyhow::Result<Meaning> {
    let unexpected = || format!("unexpected message {}", String::from_utf8_lossy(text));
    let message = serde_json::from_slice::<ServerMessage>(text).with_context(unexpected)?;
    Ok(match message.kind {
        "next" => {
            let Some(event) = message.payload.and_then(|p| p.data).and_then(|d| d.event) else {
                bail!(
                    "an error instead of an event: {}",
                    String::from_utf8_lossy(text)
                );
            };
            Meaning::Event {
                completed: event.status == "COMPLETED",
                at: parse_at(event.at)?,
            }
        }
        "ping" => Meaning::Ping,
        "pong" | "ka" => Meaning::Nothing,
        _ => bail!(unexpected()),
    })
}

/// A server message, read without building a value tree (other fields and
/// messages of other shapes are not needed to measure).
#[derive(Deserialize)]
struct ServerMessage<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(borrow)]
    payload: Option<NextPayload<'a>>,
}

#[derive(Deserialize)]
struct NextPayload<'a> {
    #[serde(borrow)]
    data: Option<EventData<'a>>,
}

#[derive(Deserialize)]
struct EventData<'a> {
    #[serde(rename = "executionStatusChanged", borrow)]
    event: Option<StatusEvent<'a>>,
}

#[derive(Deserialize)]
struct StatusEvent<'a> {
    status: &'a str,
    at: &'a str,
}

/// A subscriber until its task is stopped (aborted) or fails: what it
/// receives goes into `received`, which outlives the task.
async fn subscriber(
    url: String,
    group: Group,
    function: Value,
    shared: Arc<Shared>,
    connecting: Arc<Semaphore>,
    received: Arc<Mutex<Received>>,
) -> anyhow::Result<()> {
    let mut socket = {
        let _permit = connecting.acquire().await?;
        let mut socket = RawSocket::connect(&url).await?;
        socket
            .subscribe("1", SUBSCRIPTION, json!({ "f": function }))
            .await?;
        socket
    };
    shared.subscribed.fetch_add(1, Ordering::SeqCst);
    let mut pings = Vec::new();
    loop {
        socket.fill().await?;
        // The moment the bytes are in hand, for every frame among them.
        let at_receipt = SystemTime::now();
        let (mut completed, mut pong) = (0, false);
        {
            let mut received = received.lock().unwrap_or_else(PoisonError::into_inner);
            while let Some(frame) = socket.next_frame()? {
                let text = match frame {
                    Frame::Text(text) => socket.payload(&text),
                    Frame::Ping(payload) => {
                        pings.push(socket.payload(&payload).to_vec());
                        continue;
                    }
                    Frame::Close => bail!("the server closed the socket"),
                    Frame::Other => continue,
                };
                match meaning(text)? {
                    Meaning::Event {
                        completed: done,
                        at,
                    } => {
                        completed += u64::from(done);
                        if shared.measuring.load(Ordering::Relaxed) {
                            if group == Group::Other {
                                received.misrouted += 1;
                            } else {
                                received.record(at, at_receipt);
                            }
                        }
                    }
                    Meaning::Ping => pong = true,
                    Meaning::Nothing => {}
                }
            }
        }
        if completed > 0 {
            shared
                .completed_seen
                .fetch_add(completed, Ordering::Relaxed);
        }
        for payload in pings.drain(..) {
            socket.send(0xA, &payload).await?;
        }
        if pong {
            socket.send_json(&json!({ "type": "pong" })).await?;
        }
    }
}

/// The bare LISTEN client: its own latency histogram and event count.
async fn listener(
    db_url: String,
    measuring: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(Histogram<u64>, u64)> {
    let mut listener = sqlx::postgres::PgListener::connect(&db_url).await?;
    listener.listen(migration::STATUS_CHANNEL).await?;
    let mut histogram = stats::histogram();
    let mut events = 0;
    loop {
        let notification = tokio::select! {
            _ = stop.changed() => return Ok((histogram, events)),
            n = listener.recv() => n?,
        };
        let received = SystemTime::now();
        let change: Value = serde_json::from_str(notification.payload())?;
        if change["kind"] != "execution" || !measuring.load(Ordering::SeqCst) {
            continue;
        }
        let at = change["at"].as_str().context("no `at`")?;
        stats::record(&mut histogram, latency(at, received)?);
        events += 1;
    }
}

async fn wait_for(what: &str, timeout: Duration, done: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

pub async fn run(
    paths: &Paths,
    plan: &Plan,
    client: &gql::Client,
    server: &Server,
    db_url: &str,
) -> anyhow::Result<Fanout> {
    let taken = Taken::start();
    let source = std::fs::read_to_string(paths.fixture("echo"))?;
    let executed = client
        .create_function("bench-fanout-executed", &source)
        .await?;
    let other = client
        .create_function("bench-fanout-other", &source)
        .await?;
    for id in [&executed, &other] {
        client.wait_ready(id, Duration::from_secs(120)).await?;
    }
    let rss_idle_mb = server.rss_mb().unwrap_or(0.0);
    let listen_measuring = Arc::new(AtomicBool::new(false));
    let (stop_listening, listening) = watch::channel(false);
    let listen = tokio::spawn(listener(
        db_url.to_string(),
        Arc::clone(&listen_measuring),
        listening,
    ));
    let execute = |id: String| async move {
        let data = client
            .data(
                "mutation($id: UUID!) { executeFunction(id: $id, input: {}) { status } }",
                json!({ "id": id }),
            )
            .await?;
        if data["executeFunction"]["status"] != "COMPLETED" {
            bail!("execution did not complete: {data}");
        }
        anyhow::Ok(())
    };
    let measured = measure(
        plan,
        &server.ws_url(),
        server.pid,
        [&executed, &other],
        execute,
        &listen_measuring,
    )
    .await;
    let _ = stop_listening.send(true);
    let (listen_histogram, events) = listen.await??;
    let m = measured?;
    let listen = Latency::of(&listen_histogram);
    let expected = events * m.receiving;
    eprintln!(
        "bench:   fan-out p50 {:.2} ms p99 {:.2} ms ({}/{expected} delivered, {} misrouted); LISTEN p50 {:.2} ms p99 {:.2} ms; RSS peak {:.1} MB; CPU over {:.1} s: server {:.1} s, loadgen {:.1} s",
        m.websocket.p50_ms,
        m.websocket.p99_ms,
        m.delivered,
        m.misrouted,
        listen.p50_ms,
        listen.p99_ms,
        m.rss_peak_mb,
        m.measured_s,
        m.cpu_s,
        m.loadgen_cpu_s
    );
    let mut floors = Vec::new();
    for shape in [Shape::Tasks, Shape::Direct] {
        floors.push(floor(plan, shape).await?);
    }
    Ok(Fanout {
        taken: taken.finish(),
        subscribers: plan.subscribers,
        executions: m.executions,
        rate_per_s: plan.create_rate,
        events,
        delivered: m.delivered,
        expected,
        misrouted: m.misrouted,
        websocket: m.websocket,
        listen,
        rss_idle_mb,
        rss_subscribed_mb: m.rss_subscribed_mb,
        rss_peak_mb: m.rss_peak_mb,
        measured_s: m.measured_s,
        server_cpu_s: m.cpu_s,
        loadgen_cpu_s: m.loadgen_cpu_s,
        floors,
    })
}

/// The same subscribers, at the same pace, against the bare WebSocket server
/// of [`crate::fanout_floor`] in a child process.
async fn floor(plan: &Plan, shape: Shape) -> anyhow::Result<FanoutFloor> {
    eprintln!(
        "bench:   a floor: a bare WebSocket fan-out of the same messages ({})",
        shape.describe()
    );
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["fanout-floor", "--shape", &shape.name()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting `loadgen fanout-floor`")?;
    let stdout = child.stdout.take().context("the floor's stdout")?;
    let port: u16 = tokio::time::timeout(
        Duration::from_secs(10),
        BufReader::new(stdout).lines().next_line(),
    )
    .await
    .context("the floor did not say its port within 10 s")??
    .context("the floor exited before saying its port")?
    .trim()
    .parse()?;
    let pid = child.id().context("the floor's pid")?;
    let stdin = tokio::sync::Mutex::new(child.stdin.take().context("the floor's stdin")?);
    let fire = |function: String| {
        let stdin = &stdin;
        async move {
            let mut stdin = stdin.lock().await;
            stdin.write_all(format!("{function}\n").as_bytes()).await?;
            stdin.flush().await?;
            anyhow::Ok(())
        }
    };
    let (executed, other) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    let measured = measure(
        plan,
        &format!("ws://127.0.0.1:{port}/"),
        pid,
        [&executed, &other],
        fire,
        &AtomicBool::new(false),
    )
    .await;
    // Its stdin closed, the floor exits.
    drop(stdin);
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        child.kill().await.ok();
    }
    let m = measured?;
    // Three events per execution, to every subscriber that follows them.
    let expected = m.executions as u64 * 3 * m.receiving;
    eprintln!(
        "bench:   floor p50 {:.2} ms p99 {:.2} ms ({}/{expected} delivered, {} misrouted); RSS peak {:.1} MB; CPU over {:.1} s: floor {:.1} s, loadgen {:.1} s",
        m.websocket.p50_ms,
        m.websocket.p99_ms,
        m.delivered,
        m.misrouted,
        m.rss_peak_mb,
        m.measured_s,
        m.cpu_s,
        m.loadgen_cpu_s
    );
    Ok(FanoutFloor {
        shape: shape.describe().to_string(),
        websocket: m.websocket,
        delivered: m.delivered,
        expected,
        misrouted: m.misrouted,
        rss_peak_mb: m.rss_peak_mb,
        measured_s: m.measured_s,
        cpu_s: m.cpu_s,
        loadgen_cpu_s: m.loadgen_cpu_s,
    })
}

/// What one measurement of a fan-out delivered, and what it cost.
struct Measured {
    executions: usize,
    /// Subscribers that follow the executed function's events.
    receiving: u64,
    websocket: Latency,
    delivered: u64,
    misrouted: u64,
    rss_subscribed_mb: f64,
    rss_peak_mb: f64,
    measured_s: f64,
    /// CPU seconds of the sending process (`pid`) and of the load generator.
    cpu_s: f64,
    loadgen_cpu_s: f64,
}

/// Connects the subscribers to `ws_url`, makes sure each one is live, then
/// has `fire` announce executions of the first of `functions` at the plan's
/// pace and measures what reaches them. `also_measuring` is raised while
/// measuring (the LISTEN client's window).
async fn measure<F, Fut>(
    plan: &Plan,
    ws_url: &str,
    pid: u32,
    [executed, other]: [&str; 2],
    fire: F,
    also_measuring: &AtomicBool,
) -> anyhow::Result<Measured>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let shared = Arc::new(Shared {
        measuring: AtomicBool::new(false),
        subscribed: AtomicUsize::new(0),
        completed_seen: AtomicU64::new(0),
    });
    let (stop, stopped) = watch::channel(false);
    let connecting = Arc::new(Semaphore::new(CONNECTING));
    let groups: Vec<Group> = (0..plan.subscribers).map(Group::of).collect();
    let count_of = |group| groups.iter().filter(|g| **g == group).count() as u64;
    let (all, one, others) = (
        count_of(Group::All),
        count_of(Group::One),
        count_of(Group::Other),
    );
    let received: Vec<Arc<Mutex<Received>>> = groups.iter().map(|_| Arc::default()).collect();
    let subscribers: Vec<_> = groups
        .iter()
        .zip(&received)
        .map(|(group, received)| {
            let function = match group {
                Group::All => Value::Null,
                Group::One => json!(executed),
                Group::Other => json!(other),
            };
            tokio::spawn(subscriber(
                ws_url.to_string(),
                *group,
                function,
                Arc::clone(&shared),
                Arc::clone(&connecting),
                Arc::clone(received),
            ))
        })
        .collect();
    let outcome = async {
        let n = plan.subscribers;
        wait_for("subscribers to connect", Duration::from_secs(300), || {
            shared.subscribed.load(Ordering::SeqCst) >= n
                || subscribers.iter().any(|s| s.is_finished())
        })
        .await?;
        if let Some(failed) = subscribers.iter().position(|s| s.is_finished()) {
            bail!("subscriber {failed} stopped while connecting");
        }
        let rss_subscribed_mb = crate::env::rss_mb_of(pid).unwrap_or(0.0);
        eprintln!(
            "bench:   {n} subscribers connected ({all} to all, {one} to the executed function, {others} to another); RSS {rss_subscribed_mb:.1} MB"
        );

        // Every subscriber sees a first execution complete: all are live.
        // (Subscribing is asynchronous, so the barrier is retried until it
        // reaches everyone.)
        let barrier = all * 2 + one + others;
        let mut reached = false;
        for _ in 0..30 {
            shared.completed_seen.store(0, Ordering::SeqCst);
            fire(executed.to_string()).await?;
            fire(other.to_string()).await?;
            let seen = wait_for(
                "every subscriber to see the barrier",
                Duration::from_secs(5),
                || shared.completed_seen.load(Ordering::SeqCst) >= barrier,
            );
            if seen.await.is_ok() {
                reached = true;
                break;
            }
        }
        if !reached {
            bail!("not every subscriber saw the barrier");
        }
        shared.completed_seen.store(0, Ordering::SeqCst);

        let peak = Arc::new(AtomicU64::new(0));
        let sampling = {
            let peak = Arc::clone(&peak);
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                loop {
                    tokio::select! {
                        _ = stopped.changed() => return,
                        _ = tick.tick() => {}
                    }
                    if let Some(kb) = rss_kb(pid) {
                        peak.fetch_max(kb, Ordering::Relaxed);
                    }
                }
            })
        };

        shared.measuring.store(true, Ordering::SeqCst);
        also_measuring.store(true, Ordering::SeqCst);
        let cpu_before = (cpu_seconds(&pid.to_string()), cpu_seconds("self"));
        let count = (plan.create_rate * plan.fanout_secs as f64).round() as usize;
        let interval = Duration::from_secs_f64(1.0 / plan.create_rate);
        let started = Instant::now();
        for i in 0..count {
            tokio::time::sleep_until(started + interval * i as u32).await;
            fire(executed.to_string()).await?;
        }
        let target = count as u64 * (all + one);
        let all_seen = wait_for(
            "every subscriber to see every COMPLETED",
            Duration::from_secs(60),
            || shared.completed_seen.load(Ordering::SeqCst) >= target,
        )
        .await;
        // Let stragglers of other transitions arrive.
        tokio::time::sleep(Duration::from_millis(500)).await;
        shared.measuring.store(false, Ordering::SeqCst);
        also_measuring.store(false, Ordering::SeqCst);
        let cpu = (
            cpu_seconds(&pid.to_string()) - cpu_before.0,
            cpu_seconds("self") - cpu_before.1,
        );
        let measured = started.elapsed().as_secs_f64();
        if let Err(error) = all_seen {
            eprintln!("bench:   {error} (counted as undelivered)");
        }
        let _ = stop.send(true);
        sampling.await.ok();
        anyhow::Ok((
            count,
            rss_subscribed_mb,
            peak.load(Ordering::Relaxed) as f64 / 1024.0,
            cpu,
            measured,
        ))
    }
    .await;
    let _ = stop.send(true);
    // A subscriber only ends by failing; the others are stopped here.
    let mut failures = 0;
    let mut histogram = stats::histogram();
    let (mut delivered, mut misrouted) = (0, 0);
    for (subscriber, received) in subscribers.into_iter().zip(received) {
        if subscriber.is_finished() {
            failures += 1;
            if let Ok(Err(error)) = subscriber.await
                && failures == 1
            {
                eprintln!("bench:   a subscriber failed: {error:#}");
            }
            continue;
        }
        subscriber.abort();
        let received =
            std::mem::take(&mut *received.lock().unwrap_or_else(PoisonError::into_inner));
        delivered += received.latencies_us.len() as u64;
        misrouted += received.misrouted;
        for us in received.latencies_us {
            histogram.saturating_record(u64::from(us).max(1));
        }
    }
    let (executions, rss_subscribed_mb, rss_peak_mb, (cpu_s, loadgen_cpu_s), measured_s) = outcome?;
    if failures > 0 {
        eprintln!("bench:   {failures} subscribers failed");
    }
    Ok(Measured {
        executions,
        receiving: all + one,
        websocket: Latency::of(&histogram),
        delivered,
        misrouted,
        rss_subscribed_mb,
        rss_peak_mb,
        measured_s,
        cpu_s,
        loadgen_cpu_s,
    })
}

/// User + system CPU seconds of a process (`self` or a pid), from /proc.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at state.
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_kb(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEXT: &str = r#"{"id":"1","type":"next","payload":{"data":{"executionStatusChanged":{"status":"COMPLETED","previousStatus":"RUNNING","at":"2026-12-05T16:00:00.250+00:00","execution":{"id":"e","functionId":"f","status":"COMPLETED"}}}}}"#;

    #[test]
    fn a_message_means_the_same_parsed_or_kept() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_486_400_250);
        let expected = Meaning::Event {
            completed: true,
            at,
        };
        assert_eq!(parse_message(NEXT.as_bytes()).unwrap(), expected);
        assert_eq!(meaning(NEXT.as_bytes()).unwrap(), expected);
        assert_eq!(meaning(NEXT.as_bytes()).unwrap(), expected);
        let running = NEXT.replacen("COMPLETED", "RUNNING", 1);
        assert_eq!(
            meaning(running.as_bytes()).unwrap(),
            Meaning::Event {
                completed: false,
                at
            }
        );
        assert_eq!(meaning(br#"{"type":"ping"}"#).unwrap(), Meaning::Ping);
        assert_eq!(meaning(br#"{"type":"pong"}"#).unwrap(), Meaning::Nothing);
    }

    #[test]
    fn what_a_subscriber_does_not_expect_is_an_error() {
        let error = br#"{"id":"1","type":"next","payload":{"errors":[{"message":"no"}]}}"#;
        let refused = meaning(error).unwrap_err().to_string();
        assert!(
            refused.contains("an error instead of an event"),
            "{refused}"
        );
        let complete = meaning(br#"{"id":"1","type":"complete"}"#).unwrap_err();
        assert!(
            complete.to_string().contains("unexpected message"),
            "{complete}"
        );
        assert!(meaning(b"not json").is_err());
    }
}
