//! The one thread that owns the store (a rusqlite `Connection` is not `Sync`). Requests arrive
//! as closures over a channel and run in arrival order; answers go back on oneshot channels.
//!
//! Owns: the thread's life (open and load the consumers, serve, stop, join), restarting the
//! worker's state after a request panics (the caller gets `StoreError::Panicked`, the store
//! rolls back and rebuilds its caches and the consumers from what is stored, and the next
//! request is served), and the API counters kept beside the store.
//! Does not own: what the closures do.

use std::sync::LazyLock;
use std::sync::mpsc;
use std::thread::JoinHandle;

use prometheus::{IntCounter, IntCounterVec, Opts};

use tokio::sync::oneshot;

use crate::consumers::{Backend, Registry};
use crate::events::{self, EventLog};
use crate::store::{MetadataStore, StoreError};

/// Store requests that panicked (the worker rebuilt its state), as the agent counts its actors'
/// restarts: `infinistream_actor_restarts_total{actor="control_plane_store"}`, served on the
/// control plane's own `/metrics`.
pub static STORE_RESTARTS: LazyLock<IntCounter> =
    LazyLock::new(|| RESTARTS.with_label_values(&["control_plane_store"]));

/// The counter family behind [`STORE_RESTARTS`], registered in every control plane's registry.
pub static RESTARTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    IntCounterVec::new(
        Opts::new(
            "infinistream_actor_restarts_total",
            "supervised actor restarts by actor",
        ),
        &["actor"],
    )
    .expect("static metric definition")
});

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

type Job = Box<dyn FnOnce(&mut Backend) + Send>;

enum Msg {
    Job(Job),
    Stop,
}

/// A cheap, cloneable, `Send` way to run closures on the store thread.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Msg>,
    /// The event log's cursor (the log itself is the backend's).
    events: tokio::sync::watch::Receiver<u64>,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreHandle")
    }
}

impl StoreHandle {
    /// Changes whenever the event log gets a new event (its value: the next event's cursor).
    pub fn events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.events.clone()
    }

    /// Runs `f` on the store thread and waits (asynchronously) for its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Backend) -> R + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |backend| {
            let _ = tx.send(f(backend));
        });
        self.tx
            .send(Msg::Job(job))
            .map_err(|_| StoreError::Closed)?;
        // The thread is alive (it took the job), so a dropped answer means the job panicked.
        rx.await.map_err(|_| StoreError::Panicked)
    }
}

/// Runs one request. A panic must not stop the control plane: its answer channel is dropped (the
/// caller sees `Panicked`), and the store and consumers are rebuilt from what is durable, since
/// the panic may have left a transaction open or memory half updated.
fn run_job(job: Job, backend: &mut Backend) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(backend)));
    if outcome.is_ok() {
        return;
    }
    tracing::error!("control plane store request panicked, restarting the store worker");
    STORE_RESTARTS.inc();
    backend.store.recover();
    match Registry::load(backend.store.as_mut(), now_nanos()) {
        Ok(consumers) => backend.consumers = consumers,
        Err(e) => tracing::error!(error = %e, "cannot reload consumers after a panic"),
    }
}

/// The running store thread.
pub struct StoreThread {
    handle: StoreHandle,
    join: Option<JoinHandle<()>>,
}

impl StoreThread {
    /// Starts the thread, opens the store on it with `open`, and returns once it is open.
    pub fn spawn<F>(open: F) -> Result<Self, StoreError>
    where
        F: FnOnce() -> Result<Box<dyn MetadataStore>, StoreError> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<Msg>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), StoreError>>();
        let log = EventLog::new(events::CAPACITY);
        let events = log.subscribe();
        let join = std::thread::Builder::new()
            .name("cp-store".to_string())
            .spawn(move || {
                let opened = open().and_then(|mut store| {
                    let consumers = Registry::load(store.as_mut(), now_nanos())?;
                    Ok((store, consumers))
                });
                let (store, consumers) = match opened {
                    Ok(opened) => {
                        let _ = ready_tx.send(Ok(()));
                        opened
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let mut backend = Backend {
                    store,
                    api_total: 0,
                    api_errors: 0,
                    consumers,
                    events: log,
                };
                while let Ok(msg) = rx.recv() {
                    match msg {
                        Msg::Job(job) => run_job(job, &mut backend),
                        Msg::Stop => break,
                    }
                }
                tracing::debug!("control plane store thread stopped");
            })
            .map_err(|e| StoreError::Invariant(format!("cannot start the store thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                handle: StoreHandle { tx, events },
                join: Some(join),
            }),
            Ok(Err(e)) => {
                let _ = join.join();
                Err(e)
            }
            Err(_) => {
                let _ = join.join();
                Err(StoreError::Closed)
            }
        }
    }

    pub fn handle(&self) -> StoreHandle {
        self.handle.clone()
    }

    /// Stops after the requests already queued and waits for the store to be closed.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        let _ = self.handle.tx.send(Msg::Stop);
        if let Some(join) = self.join.take()
            && join.join().is_err()
        {
            tracing::error!("control plane store thread panicked");
        }
    }
}

impl Drop for StoreThread {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;
    use infinistream_api::jetstream::StreamConfig;

    fn config(name: &str) -> StreamConfig {
        serde_json::from_value(serde_json::json!({"name": name, "subjects": [format!("{name}.>")]}))
            .expect("config")
    }

    #[tokio::test]
    async fn a_panicking_request_fails_alone_and_the_worker_serves_the_next() {
        let thread = StoreThread::spawn(|| {
            let store: Box<dyn MetadataStore> = Box::new(SqliteStore::open_in_memory()?);
            Ok(store)
        })
        .expect("store thread");
        let store = thread.handle();
        let created = store
            .call(|b| b.store.create_stream(config("kept"), 1))
            .await
            .expect("answered");
        assert!(created.is_ok());
        // Half way through a change: the stream is created, then the request panics.
        let r: Result<(), StoreError> = store
            .call(|b| {
                let _ = b.store.create_stream(config("half"), 1);
                panic!("injected");
            })
            .await;
        assert!(matches!(r, Err(StoreError::Panicked)), "{r:?}");
        let names: Vec<String> = store
            .call(|b| b.store.streams())
            .await
            .expect("the worker still answers")
            .expect("streams")
            .into_iter()
            .map(|v| v.config.name)
            .collect();
        assert!(names.contains(&"kept".to_string()), "{names:?}");
        thread.stop();
    }
}
