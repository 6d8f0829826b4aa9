//! kubefoundry: the Cloud Foundry v3 API on any Kubernetes cluster. CF resources are CRDs
//! ([`crd`]); reconcilers drive them to Kubernetes objects; a thin façade serves the v3 API.

pub mod api;
pub mod controller;
pub mod crd;
pub mod dev;
pub mod labels;
pub mod watch;

pub mod fixtures;
