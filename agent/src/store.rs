//! etcd: a paged read of the prefix at one revision, then a watch from the
//! revision after it.

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
    /// The id of the cluster that answered: a snapshot restore or another
    /// cluster changes it.
    pub cluster: u64,
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

/// Keys per page of the read: with values up to etcd's 1.5 MiB request
/// limit, a page stays under `MAX_MESSAGE`.
const PAGE: i64 = 100;

/// The largest answer taken from etcd (gRPC's default is 4 MiB: a prefix
/// larger than that could never be read in one answer).
const MAX_MESSAGE: usize = 256 << 20;

/// The first key after every key that starts with `prefix` (etcd's range end
/// of a prefix; the prefix ends with `/`, so its last byte can be raised).
pub fn range_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// Connects, reads the prefix and starts watching it from the revision
/// after the read, so that no change between the two is missed. The read
/// is linearizable (it needs etcd's leader: a member cut off from the
/// others fails it instead of answering its stale copy), in pages of
/// `PAGE` keys at the revision of the first page.
pub async fn open(endpoints: &[String], prefix: &str) -> Result<(Session, Snapshot), String> {
    let options = ConnectOptions::new()
        .with_connect_timeout(REQUEST_TIMEOUT)
        // HTTP/2 pings: an etcd that stops answering (host down, network
        // cut) ends the watch within 15 s instead of never. etcd closes the
        // connection of a client that pings more often than every 5 s
        // (--grpc-keepalive-min-time).
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
        .with_keep_alive_while_idle(true)
        // A member that loses its leader (cut off from the others) ends the
        // watch with "no leader" instead of keeping it open and silent.
        .with_require_leader(true);
    let client = timed(Client::connect(endpoints, Some(options))).await?;
    let mut kv = client.kv_client().max_decoding_message_size(MAX_MESSAGE);
    let end = range_end(prefix);
    let (mut from, mut revision, mut cluster, mut entries) = (prefix.as_bytes().to_vec(), 0, 0, Vec::new());
    loop {
        let mut page = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
        if revision > 0 {
            page = page.with_revision(revision);
        }
        let read = timed(kv.get(from.clone(), Some(page))).await?;
        if revision == 0 {
            let header = read.header().ok_or("the read has no revision")?;
            (revision, cluster) = (header.revision(), header.cluster_id());
        }
        entries.extend(read.kvs().iter().map(|kv| Entry {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            value: Some(kv.value().to_vec()),
            revision: kv.mod_revision(),
        }));
        match read.kvs().last() {
            Some(last) if read.more() => from = [last.key(), &[0]].concat(),
            _ => break,
        }
    }
    let watch = WatchOptions::new().with_prefix().with_start_revision(revision + 1);
    let mut watch_client = client.watch_client().max_decoding_message_size(MAX_MESSAGE);
    let (watcher, stream) = timed(watch_client.watch(prefix, Some(watch))).await?;
    Ok((Session { _watcher: watcher, stream }, Snapshot { revision, cluster, entries }))
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
                return Err(match response.compact_revision() {
                    0 => format!("etcd cancelled the watch: {}", response.cancel_reason()),
                    r => format!("etcd cancelled the watch: its history is compacted up to revision {r}"),
                });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_of_a_prefix() {
        assert_eq!(range_end("/fleet/upstreams/"), b"/fleet/upstreams0");
    }
}
