//! kubefoundry-sim: a simulated Kubernetes API server that answers kube-rs, kubectl, Helm and the
//! Python client the way kube-apiserver does, with no container runtime behind it.

pub mod api;
pub mod cluster;
pub mod controllers;
pub mod gc;
mod gostr;
pub mod kinds;
pub mod managed;
pub mod merge_keys;
pub mod patch;
pub mod persistence;
pub mod protobuf;
pub mod rbac;
pub mod registry;
pub mod reviews;
pub mod scale;
pub mod schema;
pub mod selector;
pub mod server;
pub mod store;
pub mod time;
pub mod tls;
pub mod tokens;
pub mod workloads;

pub use cluster::{Cluster, Config, Fault};
pub use server::{Options, Running, start};
