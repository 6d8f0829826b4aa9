# syntax=docker/dockerfile:1
# The kubefoundry image: one static-runtime image for both Deployments of the Helm chart
# (`kubefoundry controller` and `kubefoundry api`), running as non-root.
#
#   docker build -t <registry>/kubefoundry:<version> .
#
# Build stage: the workspace's release binary. BuildKit cache mounts keep the cargo registry
# and target directory between builds, so only changed crates recompile.
ARG RUST_VERSION=1.95
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p kubefoundry \
    && install -D -m 0755 target/release/kubefoundry /out/kubefoundry

# Runtime stage: distroless (glibc and libgcc, which the binary links; no shell, no package
# manager), as the distroless nonroot user 65532, which the chart's securityContext also names.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/kubefoundry /usr/local/bin/kubefoundry
USER 65532:65532
# 8080: the controller's /metrics, /healthz and /readyz, and the API (the chart passes --listen=0.0.0.0:8080).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/kubefoundry"]
CMD ["--help"]
