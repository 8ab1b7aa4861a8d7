//! etcd: one range read of the prefix, then a watch from the revision after it.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions, EventType, GetOptions, WatchOptions, WatchStream, Watcher};

/// One key under the prefix, or its deletion.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    /// None: the key was deleted.
    pub value: Option<Vec<u8>>,
    /// The etcd revision of this value (or deletion).
    pub revision: i64,
}

/// Every key under the prefix at one revision.
pub struct Snapshot {
    pub revision: i64,
    pub entries: Vec<Entry>,
}

/// A connection to etcd watching the prefix.
pub struct Session {
    // Dropping the watcher would cancel the watch.
    _watcher: Watcher,
    stream: WatchStream,
}

/// How long a connection attempt or a read may take before the agent
/// counts etcd as down.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Connects, reads the prefix and starts watching it from the revision
/// after the read, so that no change between the two is missed.
pub async fn open(endpoints: &[String], prefix: &str) -> Result<(Session, Snapshot), String> {
    let options = ConnectOptions::new()
        .with_connect_timeout(REQUEST_TIMEOUT)
        // HTTP/2 pings: an etcd that stops answering (host down, network
        // cut) ends the watch within 15 s instead of never. etcd closes the
        // connection of a client that pings more often than every 5 s
        // (--grpc-keepalive-min-time).
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
        .with_keep_alive_while_idle(true);
    let mut client = timed(Client::connect(endpoints, Some(options))).await?;
    let read = timed(client.get(prefix, Some(GetOptions::new().with_prefix()))).await?;
    let revision = read.header().map(|h| h.revision()).ok_or("the read has no revision")?;
    let entries = read
        .kvs()
        .iter()
        .map(|kv| Entry {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            value: Some(kv.value().to_vec()),
            revision: kv.mod_revision(),
        })
        .collect();
    let watch = WatchOptions::new().with_prefix().with_start_revision(revision + 1);
    let (watcher, stream) = timed(client.watch(prefix, Some(watch))).await?;
    Ok((Session { _watcher: watcher, stream }, Snapshot { revision, entries }))
}

async fn timed<T>(request: impl std::future::Future<Output = Result<T, etcd_client::Error>>) -> Result<T, String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())),
    }
}

impl Session {
    /// The next changes under the prefix; an error ends the session (the
    /// agent then reconnects and reads everything again).
    pub async fn changes(&mut self) -> Result<Vec<Entry>, String> {
        loop {
            let response = match self.stream.message().await {
                Ok(Some(r)) => r,
                Ok(None) => return Err("etcd closed the watch".into()),
                Err(e) => return Err(e.to_string()),
            };
            if response.canceled() {
                return Err(format!(
                    "etcd cancelled the watch (compacted at revision {}): {}",
                    response.compact_revision(),
                    response.cancel_reason()
                ));
            }
            let entries: Vec<Entry> = response
                .events()
                .iter()
                .filter_map(|event| {
                    let kv = event.kv()?;
                    Some(Entry {
                        key: String::from_utf8_lossy(kv.key()).into_owned(),
                        value: match event.event_type() {
                            EventType::Put => Some(kv.value().to_vec()),
                            EventType::Delete => None,
                        },
                        revision: kv.mod_revision(),
                    })
                })
                .collect();
            // The first answer only says the watch was created.
            if !entries.is_empty() {
                return Ok(entries);
            }
        }
    }
}
