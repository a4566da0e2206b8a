//! ringlog-registry: a schema registry that speaks Confluent Schema
//! Registry's REST API (so Confluent's serializers in every language work
//! against it) and keeps its state in a compacted `_schemas` topic in
//! Confluent's own record format.
//!
//! The broker runs it on a thread of its own (`--schema-registry-listen`),
//! as a client of its own native listener; `ringlog-registry` runs it as a
//! process of its own pointed at any broker. Either way it holds nothing the
//! topic does not: it reads the topic to its end before answering, and
//! appends only if nobody appended since it read (a conditional produce), so
//! registries sharing a topic agree, and a restart loses nothing.
//!
//! Layout: [`records`] (the topic's keys and values), [`formats`] (parsing,
//! canonical forms, compatibility per format), [`state`] (the registry's
//! state and every operation's decision, no I/O), [`store`] (the topic
//! through `ringlog-client`), [`api`] (the REST routes).

pub mod api;
pub mod formats;
pub mod protobuf;
pub mod records;
pub mod state;
pub mod store;
pub mod validation;

use state::{code, ApiError, Record, State};
use std::net::SocketAddr;
use std::sync::Arc;
use store::{AppendError, Store};
use tokio::sync::Mutex;
use validation::Known;

/// How long a write keeps trying while other registries write first (it
/// loses a race only to a write that succeeded, so someone progresses; a
/// burst of writes elsewhere delays it, it does not starve it).
const WRITE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// A pause of 1 to `2^attempt` ms (at most 64): registries that lost a race
/// to each other do not come back in step.
fn backoff(attempt: u32) -> std::time::Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(attempt);
    let ceiling = 1u64 << attempt.min(6);
    std::time::Duration::from_millis(1 + h.finish() % ceiling)
}

/// The registry: its state and the topic behind it.
pub struct Registry {
    broker: String,
    inner: Mutex<Inner>,
    /// What the broker's record validation reads.
    known: Arc<Known>,
}

struct Inner {
    state: State,
    /// Records applied when `known` was last published.
    published: u64,
    /// Connected on the first request: a broker that starts a registry
    /// holds no connection for it until someone uses it.
    store: Option<Store>,
}

impl Registry {
    /// A registry over the `_schemas` topic of the broker at `broker`.
    pub fn new(broker: String, known: Arc<Known>) -> Registry {
        Registry {
            broker,
            inner: Mutex::new(Inner {
                state: State::default(),
                published: u64::MAX,
                store: None,
            }),
            known,
        }
    }

    fn publish(&self, inner: &mut Inner) {
        if inner.published != inner.state.applied {
            self.known.publish(&inner.state);
            inner.published = inner.state.applied;
        }
    }

    async fn caught_up(&self) -> Result<tokio::sync::MutexGuard<'_, Inner>, ApiError> {
        let mut inner = self.inner.lock().await;
        if inner.store.is_none() {
            let store = Store::open(&self.broker).await.map_err(store_error)?;
            inner.store = Some(store);
        }
        let Inner { state, store, .. } = &mut *inner;
        if let Some(store) = store.as_mut() {
            if let Err(e) = store.catch_up(state).await {
                // A broken connection is made again by the next request.
                inner.store = None;
                return Err(store_error(e));
            }
        }
        self.publish(&mut inner);
        Ok(inner)
    }

    /// Answers from the state, read to the topic's end first.
    pub async fn read<T>(
        &self,
        f: impl FnOnce(&State) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let inner = self.caught_up().await?;
        f(&inner.state)
    }

    /// Decides on the state read to the topic's end and appends the
    /// records decided on, if nobody appended meanwhile (otherwise reads
    /// again and decides again); returns once the records are read back
    /// into the state (read your writes).
    pub async fn write<T>(
        &self,
        f: impl Fn(&State) -> Result<(T, Vec<Record>), ApiError>,
    ) -> Result<T, ApiError> {
        let mut inner = self.caught_up().await?;
        let deadline = tokio::time::Instant::now() + WRITE_DEADLINE;
        let mut attempt = 0;
        while tokio::time::Instant::now() < deadline {
            let (answer, records) = f(&inner.state)?;
            if records.is_empty() {
                return Ok(answer);
            }
            let Inner { state, store, .. } = &mut *inner;
            let Some(store) = store.as_mut() else {
                return Err(ApiError::new(500, code::STORE_ERROR, "not connected"));
            };
            match store.append(&records).await {
                Ok(()) => {
                    store.catch_up(state).await.map_err(store_error)?;
                    self.publish(&mut inner);
                    return Ok(answer);
                }
                Err(AppendError::Moved) => {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                    store.catch_up(state).await.map_err(store_error)?;
                }
                Err(AppendError::Failed(e)) => return Err(store_error(e)),
            }
        }
        Err(ApiError::new(
            500,
            code::STORE_ERROR,
            "other registries kept writing first; try again",
        ))
    }
}

fn store_error(e: ringlog_client::Error) -> ApiError {
    ApiError::new(
        500,
        code::STORE_ERROR,
        format!("Error in the backend data store: {e}"),
    )
}

/// Serves the registry on `listener` until the process ends, publishing
/// what it knows to `known` and reading `_schemas` again whenever `known`
/// asks.
pub async fn serve(
    listener: tokio::net::TcpListener,
    broker: String,
    known: Arc<Known>,
) -> std::io::Result<()> {
    let mut refreshes = known.listen();
    let registry = Arc::new(Registry::new(broker, known));
    let refresher = registry.clone();
    tokio::spawn(async move {
        while let Some(done) = refreshes.recv().await {
            if let Err(e) = refresher.read(|_| Ok(())).await {
                tracing::warn!("schema registry: reading _schemas: {}", e.message);
            }
            let _ = done.send(());
        }
    });
    axum::serve(listener, api::router(registry)).await
}

/// Binds `listen` and serves the registry of the broker at `broker` on a
/// thread of its own (a single-threaded tokio runtime); returns the bound
/// address. Binding fails here, before the thread starts.
pub fn start_thread(
    listen: SocketAddr,
    broker: String,
    known: Arc<Known>,
) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name("schema-registry".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("schema registry: no runtime: {e}");
                    return;
                }
            };
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => {
                        if let Err(e) = serve(listener, broker, known).await {
                            tracing::error!("schema registry stopped: {e}");
                        }
                    }
                    Err(e) => tracing::error!("schema registry: {e}"),
                }
            });
        })?;
    Ok(addr)
}
