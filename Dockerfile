# tars-fleet: the worker and dispatcher binaries in a small, non-root runtime image.
#
# The base images are build arguments so the same file builds from public images
#   docker build -t tars-fleet .
# and on a machine that reaches no registry, from locally made bases (compose/build-offline):
#   docker build --build-arg BUILDER_IMAGE=tars-builder:bookworm \
#                --build-arg RUNTIME_IMAGE=tars-runtime:bookworm -t tars-fleet .
# Plain Dockerfile syntax (no BuildKit-only features), so the classic builder works too.
ARG BUILDER_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
# Dependencies first, in their own layer, so a source change does not refetch and rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY benches benches
RUN mkdir -p src/bin \
 && echo 'fn main() {}' > src/bin/dispatcher.rs \
 && echo 'fn main() {}' > src/bin/worker.rs \
 && touch src/lib.rs \
 && cargo build --release --locked --bins \
 && rm -rf src
COPY src src
RUN touch src/lib.rs src/bin/*.rs \
 && cargo build --release --locked --bins \
 && install -m 0755 target/release/dispatcher target/release/worker /usr/local/bin/ \
 && mkdir -p /empty

FROM ${RUNTIME_IMAGE}
COPY --from=build /usr/local/bin/dispatcher /usr/local/bin/worker /usr/local/bin/
# /out: where the dispatcher writes results; a new named volume mounted there inherits the owner.
COPY --from=build --chown=65532:65532 /empty /out
# Runs as an unprivileged user and needs no writable path but /tmp (a tmpfs under a read-only
# root filesystem): the health file lives there.
USER 65532:65532
ENV TARS_HEALTH_FILE=/tmp/tars-worker.health
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/worker", "--health"]
ENTRYPOINT ["/usr/local/bin/worker"]
