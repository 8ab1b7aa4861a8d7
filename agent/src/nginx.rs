//! The nginx side: its NGINX Plus-compatible API location (`--api`) and its
//! dyups location (`--dyups`), over plain HTTP/1.1 with kept-alive
//! connections.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Method;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use dynamic_upstream_core::{Address, ServerSpec};

use crate::plan::{fold, Action, BootId};

/// How long one request to nginx may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The Plus API version the agent speaks.
const API_VERSION: u32 = 9;

/// Cloned for the resync's reads, which run beside the sends (same pool
/// of connections).
#[derive(Clone)]
pub struct Nginx {
    client: Client<HttpConnector, Full<Bytes>>,
    /// Without kept-alive connections, for the boot id: a connection kept
    /// alive to a worker of nginx's old binary (USR2) would go on showing
    /// the old boot id for as long as that worker runs (hunt 30 F5).
    fresh: Client<HttpConnector, Full<Bytes>>,
    api: String,
    dyups: String,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    /// `X-Upstream-Changed` of a PUT (false: it changed nothing).
    pub changed: Option<bool>,
    /// `ETag` of a listing of servers: the upstream's revision.
    pub etag: Option<String>,
}

/// The upstreams nginx has, by kind, from `GET {api}/9/http/upstreams`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// Upstreams of the configuration with a zone.
    pub configuration: BTreeSet<String>,
    /// Upstreams created through dyups.
    pub run_time: BTreeSet<String>,
    /// Upstreams of the configuration without a zone: dyups lists them
    /// (`GET {dyups}/list`), the Plus API does not.
    pub zoneless: BTreeSet<String>,
}

impl Answer {
    /// The text of an error answer: `error.text` of the module's JSON
    /// errors (dyups and Plus API alike), else the body.
    pub fn reason(&self) -> String {
        self.error_field("text").unwrap_or_else(|| self.body.clone())
    }

    /// `error.code` of the module's JSON errors (`persist_failed`, ...).
    pub fn code(&self) -> Option<String> {
        self.error_field("code")
    }

    fn error_field(&self, field: &str) -> Option<String> {
        let value = serde_json::from_str::<serde_json::Value>(&self.body).ok()?;
        value["error"][field].as_str().map(String::from)
    }
}

impl Nginx {
    pub fn new(api: &str, dyups: &str) -> Self {
        let fresh = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build_http();
        Self { client: pooled(), fresh, api: api.to_string(), dyups: dyups.to_string() }
    }

    /// Drops the connections kept alive (nginx restarted, reloaded or
    /// upgraded: they may be to workers of the old generation).
    pub fn new_connections(&mut self) {
        self.client = pooled();
    }

    async fn send(&self, method: Method, url: &str, body: Option<(&str, String)>) -> Result<Answer, String> {
        self.send_on(Connection::KeptAlive, method, url, body, None).await
    }

    async fn send_on(
        &self,
        connection: Connection,
        method: Method,
        url: &str,
        body: Option<(&str, String)>,
        if_match: Option<&str>,
    ) -> Result<Answer, String> {
        let mut request = hyper::Request::builder().method(method).uri(url).header("accept", "application/json");
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        let client = match connection {
            Connection::KeptAlive => &self.client,
            Connection::New => {
                request = request.header("connection", "close");
                &self.fresh
            }
        };
        if let Some((content_type, _)) = &body {
            request = request.header("content-type", *content_type);
        }
        let request = request
            .body(Full::new(Bytes::from(body.map(|(_, b)| b).unwrap_or_default())))
            .map_err(|e| format!("{url}: {e}"))?;
        let exchange = async {
            let response = client.request(request).await.map_err(|e| format!("{url}: {}", error_chain(&e)))?;
            let status = response.status().as_u16();
            let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(String::from);
            let changed = header("x-upstream-changed").map(|v| v.eq_ignore_ascii_case("true"));
            let etag = header("etag");
            let body = response.into_body().collect().await.map_err(|e| format!("{url}: {e}"))?.to_bytes();
            Ok(Answer { status, body: String::from_utf8_lossy(&body).trim_end().to_string(), changed, etag })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| Err(format!("{url}: no answer within {}s", REQUEST_TIMEOUT.as_secs())))
    }

    /// nginx's boot id, from the Plus API location, over a new connection.
    pub async fn boot_id(&self) -> Result<BootId, String> {
        let url = format!("{}/{API_VERSION}/nginx", self.api);
        let answer = self.send_on(Connection::New, Method::GET, &url, None, None).await?;
        match answer.status {
            200 => serde_json::from_str(&answer.body).map_err(|e| format!("{url}: {e}")),
            s => Err(format!("{url}: {s} {}", answer.body)),
        }
    }

    /// The names of every upstream nginx has, from `GET {dyups}/list`.
    pub async fn dyups_names(&self) -> Result<BTreeSet<String>, String> {
        let url = format!("{}/list", self.dyups);
        let answer = self.send(Method::GET, &url, None).await?;
        match answer.status {
            200 => parse_list(&answer.body).map_err(|e| format!("{url}: {e}")),
            204 => Ok(BTreeSet::new()),
            s => Err(format!("{url}: {s} {}", answer.body)),
        }
    }

    /// The upstreams by kind; None where nginx has no Plus API location
    /// (then every name is taken for a run-time upstream). Asks for the
    /// `runtime` field only (`?fields=`): without their servers, thousands
    /// of upstreams are a short answer (a module that ignores the argument
    /// sends everything, which parses the same).
    ///
    /// dyups' list is read first: an upstream created between the two
    /// reads is in the Plus API's listing, and not taken for one without a
    /// zone.
    pub async fn inventory(&self) -> Result<Option<Inventory>, String> {
        let listed = self.dyups_names().await?;
        let url = format!("{}/{API_VERSION}/http/upstreams?fields=runtime,zone", self.api);
        let answer = self.send(Method::GET, &url, None).await?;
        let mut inventory = match answer.status {
            200 => off_the_loop(answer.body, parse_inventory).await.map_err(|e| format!("{url}: {e}"))?,
            404 => return Ok(None),
            s => return Err(format!("{url}: {s} {}", answer.body)),
        };
        inventory.zoneless = zoneless(listed, &inventory);
        Ok(Some(inventory))
    }

    /// The peers of every upstream `GET {dyups}/detail` lists.
    pub async fn dyups_peers(&self) -> Result<HashMap<String, Vec<ServerSpec>>, String> {
        let url = format!("{}/detail", self.dyups);
        let answer = self.send(Method::GET, &url, None).await?;
        match answer.status {
            200 => off_the_loop(answer.body, parse_detail).await.map_err(|e| format!("{url}: {e}")),
            204 => Ok(HashMap::new()),
            s => Err(format!("{url}: {s} {}", answer.body)),
        }
    }

    /// Sends an action; None for [`Action::Leave`], which sends nothing.
    pub async fn apply(&self, name: &str, action: &Action) -> Option<Result<Answer, String>> {
        let dyups = format!("{}/upstream/{name}", self.dyups);
        Some(match action {
            Action::PutServers(json) => {
                let url = format!("{}/{API_VERSION}/http/upstreams/{name}/servers", self.api);
                // For the revision read now only: a PUT nginx takes late
                // (a worker stalled past the timeout, after which the agent
                // sent it again, and then newer documents) finds another
                // revision and changes nothing (412), where it overwrote
                // the newer documents (hunt 42).
                let listed = match self.send(Method::GET, &url, None).await {
                    Ok(listed) if listed.status == 200 => listed,
                    other => return Some(other),
                };
                let body = Some(("application/json", json.clone()));
                self.send_on(Connection::KeptAlive, Method::PUT, &url, body, listed.etag.as_deref()).await
            }
            // As for a PUT: the upstream's revision now (`HEAD`: found or
            // not, the module answers one), so that a POST or DELETE nginx
            // takes late changes nothing if anything changed the upstream
            // since (412), where it undid the newer documents or deletions
            // (a late POST made a deleted upstream again). A DELETE of an
            // upstream found absent is sent too: it moves the name's
            // revision, so that a POST of it still on its way is refused
            // (review 57 F1). No `If-Match` where the module sent no
            // `ETag` (an older one, which would make the change, then
            // answer 412 from nginx's not_modified filter), and then no
            // DELETE of an upstream found absent.
            Action::PostDyups(body) => {
                let read = match self.send(Method::HEAD, &dyups, None).await {
                    Ok(read) if matches!(read.status, 200 | 404) => read,
                    other => return Some(other),
                };
                let body = Some(("text/plain", body.clone()));
                self.send_on(Connection::KeptAlive, Method::POST, &dyups, body, read.etag.as_deref()).await
            }
            Action::DeleteDyups => {
                let read = match self.send(Method::HEAD, &dyups, None).await {
                    Ok(read) if read.status == 200 || (read.status == 404 && read.etag.is_some()) => read,
                    other => return Some(other),
                };
                self.send_on(Connection::KeptAlive, Method::DELETE, &dyups, None, read.etag.as_deref()).await
            }
            Action::Leave => return None,
        })
    }
}

/// Which connection a request goes on.
#[derive(Clone, Copy)]
enum Connection {
    /// One of the pool's, kept alive.
    KeptAlive,
    /// A new one, closed after the answer.
    New,
}

fn pooled() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build_http()
}

/// Parses a listing on a thread of its own: thousands of upstreams take
/// long enough to hold up the changes the loop sends meanwhile.
async fn off_the_loop<T: Send + 'static>(body: String, parse: fn(&str) -> Result<T, String>) -> Result<T, String> {
    tokio::task::spawn_blocking(move || parse(&body)).await.map_err(|e| e.to_string())?
}

/// The error and its causes on one line (hyper's own message is only
/// "client error (Connect)").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The zone of an upstream of the configuration that dyups serves: one
/// without a zone of its own that dyups replaced (or one it took over).
const DYUPS_ZONE: &str = "dynamic_upstream_dyups";

/// `{"NAME": {"peers": [...], "zone": "...", "runtime": false}, ...}`; the
/// names folded (lower-cased), as every name the agent keeps. An upstream
/// of the configuration in dyups' zone is one without a zone of its own.
pub fn parse_inventory(body: &str) -> Result<Inventory, String> {
    #[derive(Deserialize)]
    struct Upstream {
        #[serde(default)]
        runtime: bool,
        #[serde(default)]
        zone: String,
    }
    let upstreams: BTreeMap<String, Upstream> = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let mut inventory = Inventory::default();
    for (name, upstream) in upstreams {
        let kind = match (upstream.runtime, upstream.zone.starts_with(DYUPS_ZONE)) {
            (true, _) => &mut inventory.run_time,
            (false, true) => &mut inventory.zoneless,
            (false, false) => &mut inventory.configuration,
        };
        kind.insert(fold(&name));
    }
    Ok(inventory)
}

/// The upstreams of the configuration without a zone of their own: those
/// dyups lists (`listed`) that the Plus API's listing lacks (not replaced
/// yet), and those it lists in dyups' zone (replaced through dyups).
pub fn zoneless(mut listed: BTreeSet<String>, plus: &Inventory) -> BTreeSet<String> {
    listed.retain(|name| !plus.configuration.contains(name) && !plus.run_time.contains(name));
    listed.extend(plus.zoneless.iter().cloned());
    listed
}

/// `{"upstreams": ["NAME", ...]}`, the names folded.
pub fn parse_list(body: &str) -> Result<BTreeSet<String>, String> {
    #[derive(Deserialize)]
    struct List {
        upstreams: BTreeSet<String>,
    }
    let list = serde_json::from_str::<List>(body).map_err(|e| e.to_string())?;
    Ok(list.upstreams.iter().map(|name| fold(name)).collect())
}

/// `{"upstreams": [{"upstream": "NAME", "zone": ..., "peers": [...]}]}`:
/// each upstream's peers as servers, by folded name.
pub fn parse_detail(body: &str) -> Result<HashMap<String, Vec<ServerSpec>>, String> {
    #[derive(Deserialize)]
    struct Detail {
        upstreams: Vec<Upstream>,
    }
    #[derive(Deserialize)]
    struct Upstream {
        upstream: String,
        peers: Vec<serde_json::Value>,
    }
    let detail: Detail = serde_json::from_str(body).map_err(|e| e.to_string())?;
    detail
        .upstreams
        .into_iter()
        .map(|u| {
            let peers = u.peers.iter().map(peer_spec).collect::<Option<Vec<_>>>();
            Ok((fold(&u.upstream), peers.ok_or("a peer without its address or parameters")?))
        })
        .collect()
}

fn peer_spec(peer: &serde_json::Value) -> Option<ServerSpec> {
    let number = |key: &str| peer[key].as_u64();
    let mut s = ServerSpec::new(Address::parse(peer["name"].as_str()?).ok()?);
    (s.weight, s.max_fails, s.fail_timeout, s.max_conns) =
        (number("weight")?, number("max_fails")?, number("fail_timeout")?, number("max_conns")?);
    (s.backup, s.down) = (peer["backup"].as_bool()?, peer["down"].as_bool()?);
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reasons() {
        let answer = |body: &str| Answer { status: 400, body: body.into(), changed: None, etag: None };
        let json =
            answer(r#"{"error":{"status":400,"code":"invalid_body","text":"add server failed: no server given"}}"#);
        assert_eq!(json.reason(), "add server failed: no server given");
        assert_eq!(json.code().as_deref(), Some("invalid_body"));
        assert_eq!(answer("404 not found").reason(), "404 not found");
        assert_eq!(answer("404 not found").code(), None);
    }

    #[test]
    fn inventory_by_kind() {
        let inventory = parse_inventory(
            r#"{"backends": {"peers": [], "keepalive": 0, "zombies": 0, "zone": "backends", "runtime": false},
                "dyhost": {"peers": [], "keepalive": 0, "zombies": 0, "zone": "dyups", "runtime": true}}"#,
        )
        .unwrap();
        assert_eq!(inventory.configuration, BTreeSet::from(["backends".to_string()]));
        assert_eq!(inventory.run_time, BTreeSet::from(["dyhost".to_string()]));
        // nginx's names ignore case: the agent keeps them folded.
        let spelled = parse_inventory(r#"{"Backends":{"runtime":false},"DyHost":{"runtime":true}}"#).unwrap();
        assert_eq!(spelled, inventory);
        // What `?fields=runtime` answers (no zone: none of dyups').
        let light = parse_inventory(r#"{"backends":{"runtime":false},"dyhost":{"runtime":true}}"#).unwrap();
        assert_eq!(light, inventory);
        assert!(parse_inventory("[]").is_err());
        // An upstream of the configuration that dyups serves (replaced
        // through it): without a zone of its own.
        let replaced = parse_inventory(
            r#"{"plain":{"zone":"dynamic_upstream_dyups_v8","runtime":false},"backends":{"zone":"backends","runtime":false}}"#,
        )
        .unwrap();
        assert_eq!(replaced.zoneless, BTreeSet::from(["plain".to_string()]));
        assert_eq!(replaced.configuration, BTreeSet::from(["backends".to_string()]));
        let listed = BTreeSet::from(["plain".to_string(), "backends".to_string(), "fresh".to_string()]);
        assert_eq!(zoneless(listed, &replaced), BTreeSet::from(["fresh".to_string(), "plain".to_string()]));
    }

    #[test]
    fn configuration_upstreams_without_a_zone() {
        let plus = parse_inventory(r#"{"backends":{"runtime":false},"dyhost":{"runtime":true}}"#).unwrap();
        let listed = parse_list(r#"{"upstreams":["Plain","backends","dyhost"]}"#).unwrap();
        assert_eq!(zoneless(listed, &plus), BTreeSet::from(["plain".to_string()]));
    }

    #[test]
    fn list_as_the_module_writes_it() {
        let names = parse_list(r#"{"upstreams":["backends","dyhost"]}"#).unwrap();
        assert_eq!(names, BTreeSet::from(["backends".to_string(), "dyhost".to_string()]));
        assert!(parse_list("backends\n").is_err());
        assert_eq!(parse_list(r#"{"upstreams":["Backends","dyhost"]}"#).unwrap(), names);
    }

    #[test]
    fn detail_as_the_module_writes_it() {
        let peers = parse_detail(
            r#"{"upstreams":[{"upstream":"dyhost","zone":null,"peers":[{"server":"127.0.0.1:8088",
                "name":"127.0.0.1:8088","weight":2,"max_fails":1,"fail_timeout":10,"max_conns":0,"backup":false,
                "down":false,"conns":0,"fails":0,"current_weight":0,"effective_weight":2,"accessed":0,"checked":0}]}]}"#,
        )
        .unwrap();
        let mut want = ServerSpec::new(Address::parse("127.0.0.1:8088").unwrap());
        want.weight = 2;
        assert_eq!(peers["dyhost"], [want]);
        let spelled = parse_detail(r#"{"upstreams":[{"upstream":"DyHost","peers":[]}]}"#).unwrap();
        assert_eq!(spelled.keys().collect::<Vec<_>>(), ["dyhost"]);
        assert!(parse_detail(r#"{"upstreams":[{"upstream":"x","peers":[{"name":"127.0.0.1:1"}]}]}"#).is_err());
    }
}
