//! Watches: replay from a resourceVersion, then a live feed, filtered by selectors the way the
//! watch cache filters them (objects leaving a selector arrive as DELETED), with bookmarks,
//! `sendInitialEvents`, timeouts and 410 Gone for compacted history.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::sync::{broadcast::error::RecvError, mpsc};

use super::{
    ApiError, ApiResult, Ctx, encode,
    objects::{Filter, with_type},
    table,
};
use crate::{
    cluster::Cluster,
    registry::ResourceType,
    store::{Event, EventType},
};

/// How many bytes of queued watch lines are sent as one chunk.
const WATCH_CHUNK: usize = 64 * 1024;

struct Watch {
    rt: Arc<ResourceType>,
    /// For its JSON cache: every watcher of an object sends the same encoded bytes.
    cluster: Arc<Cluster>,
    /// `rt.key()` and `rt.api_version()`, computed once rather than for every event.
    resource: String,
    api_version: String,
    namespace: String,
    filter: Filter,
    table: Option<TableOpts>,
}

struct TableOpts {
    include_object: String,
}

impl Watch {
    fn in_scope(&self, event: &Event) -> bool {
        event.key.resource == self.resource
            && (self.namespace.is_empty() || event.key.namespace == self.namespace)
    }

    /// The event type the client sees, or `None` when the change is invisible through the filter.
    fn translate(&self, event: &Event) -> Option<EventType> {
        let now = self.filter.matches(&event.object);
        let before = event.prev.as_ref().is_some_and(|p| self.filter.matches(p));
        match event.kind {
            EventType::Added => now.then_some(EventType::Added),
            EventType::Deleted => (now || before).then_some(EventType::Deleted),
            EventType::Modified => match (before, now) {
                (true, true) => Some(EventType::Modified),
                (false, true) => Some(EventType::Added),
                (true, false) => Some(EventType::Deleted),
                (false, false) => None,
            },
        }
    }

    fn line(&self, kind: &str, object: &Arc<Value>) -> Bytes {
        let Some(opts) = &self.table else {
            // From the encoded form shared with lists and other watchers: encoding (or just
            // copying to add apiVersion and kind) per watcher cost more than sending.
            let cache = &self.cluster.json_cache;
            return Bytes::from(encode::watch_line(
                kind,
                object,
                &self.api_version,
                &self.rt.kind,
                cache,
            ));
        };
        let object = table::watch_table(&self.rt, &with_type(&self.rt, object), &opts.include_object);
        let mut bytes = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        bytes.push(b'\n');
        Bytes::from(bytes)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({"kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": metadata});
        let mut bytes =
            serde_json::to_vec(&json!({"type": "BOOKMARK", "object": object})).unwrap_or_default();
        bytes.push(b'\n');
        Bytes::from(bytes)
    }
}

fn error_line(err: &ApiError) -> Bytes {
    let mut bytes =
        serde_json::to_vec(&json!({"type": "ERROR", "object": err.to_status()})).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// Serves `?watch=true` on a collection.
pub async fn serve(
    cluster: &Arc<Cluster>,
    rt: Arc<ResourceType>,
    namespace: &str,
    ctx: &Ctx,
) -> ApiResult<Response> {
    let filter = Filter::from_ctx(&rt, ctx)?;
    let watch = Watch {
        rt: rt.clone(),
        cluster: cluster.clone(),
        resource: rt.key(),
        api_version: rt.api_version(),
        namespace: namespace.to_owned(),
        filter,
        table: ctx.wants_table().then(|| TableOpts {
            include_object: ctx.param("includeObject").unwrap_or("Metadata").to_owned(),
        }),
    };
    let bookmarks = ctx.flag("allowWatchBookmarks");
    let send_initial = ctx.param("sendInitialEvents").map(|v| v == "true");
    let requested = ctx.param("resourceVersion").unwrap_or("");
    let timeout = ctx
        .param("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    if send_initial == Some(true) && !bookmarks {
        return Err(ApiError::invalid(
            &rt,
            "",
            "sendInitialEvents: Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true",
            json!([{"reason": "FieldValueForbidden", "message": "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true", "field": "sendInitialEvents"}]),
        ));
    }

    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut initial = Vec::new();
    let mut initial_end = None;
    // "" and "0" mean "from the current state": synthetic ADDED for every object, then live.
    let from_state = requested.is_empty() || requested == "0" || send_initial == Some(true);
    let (replay, mut live, mut last_rv) = if from_state {
        let (replay, live, rv) = {
            let scope = (!namespace.is_empty()).then_some(namespace);
            // Only the matching objects are taken here; the task serializes them as it
            // streams, so the first event leaves at once and 100k lines never sit in memory.
            let page = cluster
                .store
                .list_page(&watch.resource, scope, None, None, None, |o| {
                    watch.filter.matches(o)
                });
            let (objects, rv) = page.map(|p| (p.items, p.rv)).unwrap_or_default();
            initial = objects;
            match cluster.store.watch_from(rv) {
                Ok((replay, live)) => (replay, live, rv),
                Err(_) => return Err(ApiError::internal("watch history unavailable")),
            }
        };
        if send_initial == Some(true) {
            initial_end = Some(rv);
        }
        (replay, live, rv)
    } else {
        let since: u64 = requested
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {requested}")))?;
        match cluster.store.watch_from(since) {
            Ok((replay, live)) => (replay, live, since),
            Err(oldest) => {
                let mut response = Body::from(error_line(&ApiError::gone(since, oldest))).into_response();
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                return Ok(response);
            }
        }
    };
    let mut drops = cluster.watch_drops();
    drops.mark_unchanged();
    let bookmark_interval = cluster.config.bookmark_interval;
    tokio::spawn(async move {
        for object in initial {
            if tx.send(watch.line("ADDED", &object)).await.is_err() {
                return;
            }
        }
        if let Some(rv) = initial_end
            && tx.send(watch.bookmark(rv, true)).await.is_err()
        {
            return;
        }
        for event in replay {
            if event.rv <= last_rv || !watch.in_scope(&event) {
                continue;
            }
            last_rv = event.rv;
            if let Some(kind) = watch.translate(&event)
                && tx.send(watch.line(kind.as_str(), &event.object)).await.is_err()
            {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(bookmark_interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                () = &mut deadline => return,
                _ = drops.changed() => return,
                _ = ticker.tick(), if bookmarks => {
                    if tx.send(watch.bookmark(last_rv, false)).await.is_err() {
                        return;
                    }
                }
                event = live.recv() => match event {
                    Ok(event) => {
                        if event.rv <= last_rv || !watch.in_scope(&event) {
                            continue;
                        }
                        last_rv = event.rv;
                        if let Some(kind) = watch.translate(&event)
                            && tx.send(watch.line(kind.as_str(), &event.object)).await.is_err() {
                                return;
                            }
                    }
                    // A watcher too slow for the feed is closed, as apiserver closes slow watchers.
                    Err(RecvError::Lagged(_) | RecvError::Closed) => return,
                },
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let line = rx.recv().await?;
        // Lines already queued go out as one chunk: one HTTP chunk and one write per batch
        // rather than per event, which is what bounded a 100k-object initial list.
        if rx.is_empty() {
            return Some((Ok::<_, Infallible>(line), rx));
        }
        let mut batch = line.to_vec();
        while batch.len() < WATCH_CHUNK {
            match rx.try_recv() {
                Ok(line) => batch.extend_from_slice(&line),
                Err(_) => break,
            }
        }
        Some((Ok(Bytes::from(batch)), rx))
    });
    let mut response = (StatusCode::OK, Body::from_stream(stream)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(response)
}
