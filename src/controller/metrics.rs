//! Prometheus metrics for the reconcilers, served on `/metrics`: reconciles, errors and
//! durations per kind, reconciles in flight, and objects backing off after failures.
//! (kube-runtime does not expose its internal queue, so in-flight and backing-off counts are
//! the observable measure of queue depth.)

use std::{
    future::Future,
    sync::{Arc, atomic::AtomicI64},
    time::Instant,
};

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use futures::future::BoxFuture;
use kube::runtime::controller::Action;
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use super::{Context, Result};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabel {
    kind: String,
    error: String,
}

/// The controller's metrics.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabel, Counter>,
    errors: Family<ErrorLabel, Counter>,
    durations: Family<KindLabel, Histogram>,
    in_flight: Family<KindLabel, Gauge>,
    /// Objects whose last reconcile failed and that are waiting to retry.
    pub backing_off: Gauge<i64, AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kubefoundry");
        let reconciles = Family::<KindLabel, Counter>::default();
        let errors = Family::<ErrorLabel, Counter>::default();
        let durations = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0])
        });
        let in_flight = Family::<KindLabel, Gauge>::default();
        let backing_off = Gauge::<i64, AtomicI64>::default();
        registry.register("reconciles", "Reconciles run, per kind", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, per kind and error",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long reconciles take, per kind",
            durations.clone(),
        );
        registry.register(
            "reconciles_in_flight",
            "Reconciles running now, per kind",
            in_flight.clone(),
        );
        registry.register(
            "objects_backing_off",
            "Objects waiting to retry after a failure",
            backing_off.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            durations,
            in_flight,
            backing_off,
        }
    }
}

impl Metrics {
    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Wraps a reconcile function so each run is counted, timed and its errors labelled.
pub fn instrument<K, F, Fut>(
    kind: &'static str,
    reconcile: F,
) -> impl Fn(Arc<K>, Arc<Context>) -> BoxFuture<'static, Result<Action>> + Send + Sync + 'static
where
    K: Send + Sync + 'static,
    F: Fn(Arc<K>, Arc<Context>) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<Action>> + Send + 'static,
{
    move |object, ctx| {
        let reconcile = reconcile.clone();
        Box::pin(async move {
            let label = KindLabel {
                kind: kind.to_owned(),
            };
            let metrics = ctx.metrics.clone();
            metrics.reconciles.get_or_create(&label).inc();
            metrics.in_flight.get_or_create(&label).inc();
            let start = Instant::now();
            let result = reconcile(object, ctx).await;
            metrics
                .durations
                .get_or_create(&label)
                .observe(start.elapsed().as_secs_f64());
            metrics.in_flight.get_or_create(&label).dec();
            if let Err(e) = &result {
                metrics
                    .errors
                    .get_or_create(&ErrorLabel {
                        kind: kind.to_owned(),
                        error: e.metric_label().to_owned(),
                    })
                    .inc();
            }
            result
        })
    }
}

async fn serve_metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
}

/// The router for `/metrics`, `/healthz` and `/readyz`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .with_state(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_in_openmetrics_text() {
        let metrics = Metrics::default();
        let label = KindLabel {
            kind: "CFApp".to_owned(),
        };
        metrics.reconciles.get_or_create(&label).inc();
        metrics
            .errors
            .get_or_create(&ErrorLabel {
                kind: "CFApp".to_owned(),
                error: "kube".to_owned(),
            })
            .inc();
        metrics.durations.get_or_create(&label).observe(0.02);
        let text = metrics.render();
        assert!(
            text.contains("kubefoundry_reconciles_total{kind=\"CFApp\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("kubefoundry_reconcile_errors_total{kind=\"CFApp\",error=\"kube\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("kubefoundry_reconcile_duration_seconds_count{kind=\"CFApp\"} 1"),
            "{text}"
        );
        assert!(text.contains("kubefoundry_objects_backing_off 0"), "{text}");
    }
}
