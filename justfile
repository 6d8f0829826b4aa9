# Developer shortcuts; CI runs scripts/test, which these mirror.

test:
    scripts/test

fmt:
    cargo fmt --all

lint:
    cargo clippy --workspace --all-targets -- -D warnings

# Regenerate crds/ from the Rust types.
crds:
    cargo run -q -- crds --out crds/

# Regenerate the chart's copies of crds/ and the CF ClusterRoles, and deploy/.
deploy:
    scripts/render-deploy.sh
