# tars-fleet: the worker and dispatcher (one binary, `worker` a symlink to `dispatcher`) in a
# small, non-root runtime image, and the verifier (the same binary, `worker --role verify`) on a
# toolchain image of your choice.
#
# The base images are build arguments so the same file builds from public images
#   docker build -t tars-fleet .
#   docker build --target verifier -t tars-fleet-verifier .
# and on a machine that reaches no registry, from locally made bases (compose/build-offline):
#   docker build --target worker --build-arg BUILDER_IMAGE=tars-builder:bookworm \
#                --build-arg RUNTIME_IMAGE=tars-runtime:bookworm -t tars-fleet .
# Plain Dockerfile syntax (no BuildKit-only features), so the classic builder works too. The
# classic builder builds every stage before the one asked for: give it `--target worker` for the
# worker image, or it also builds the verifier stage (and pulls VERIFY_BASE) on the way.
ARG BUILDER_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
# The verifier runs the repository's own check (`cargo test`, `python3 -m pytest`, `npm test`,
# `make test`...), so its image is the toolchain your repository builds with: pick any
# glibc-based image with /bin/sh (Debian or Ubuntu based; not Alpine, whose musl cannot run
# the worker binary), e.g.
#   --build-arg VERIFY_BASE=rust:1-bookworm        (cargo test)
#   --build-arg VERIFY_BASE=node:22-bookworm-slim  (npm test)
#   --build-arg VERIFY_BASE=golang:1.22-bookworm   (go test ./...)
# or your own image with your project's dependencies installed (a check has no network).
# compose: TARS_VERIFY_BASE=... docker compose --profile verify build verifier.
ARG VERIFY_BASE=python:3.12-slim-bookworm
# Debian packages added to VERIFY_BASE with apt-get (`make` for `make test`); empty: none, for
# a base that already has them or has no apt-get.
ARG VERIFY_PACKAGES=make

FROM ${BUILDER_IMAGE} AS build
# Marks this stage's images, so that compose/build-offline can remove the ones a new build left
# behind (they are not part of any image you run).
LABEL org.tars-fleet.stage=build
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
# One binary for both programs: `dispatcher` is also the worker when called as `worker` (a
# symlink), so the image carries one 21 MB binary, not two (and the build links one).
RUN touch src/lib.rs src/bin/*.rs src/bin/dispatcher/*.rs \
 && cargo build --release --locked --bin dispatcher \
 && mkdir -p /tars/bin /empty \
 && install -m 0755 target/release/dispatcher /tars/bin/ \
 && ln -s dispatcher /tars/bin/worker

FROM ${RUNTIME_IMAGE} AS worker
# A directory's contents: the symlink is copied as a symlink.
COPY --from=build /tars/bin/ /usr/local/bin/
# /out: where the dispatcher writes results; a new named volume mounted there inherits the owner.
COPY --from=build --chown=65532:65532 /empty /out
# Runs as an unprivileged user and needs no writable path but /tmp (a tmpfs under a read-only
# root filesystem): the health file lives there.
USER 65532:65532
ENV TARS_HEALTH_FILE=/tmp/tars-worker.health
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/worker", "--health"]
ENTRYPOINT ["/usr/local/bin/worker"]

# The verifier: `worker --role verify --root /repo` on the toolchain image, as the same
# unprivileged user (65532). It reads the repository at /repo (mounted read-only) and keeps
# its scratch trees, with their build outputs, and its HOME (the toolchains' caches) under
# /var/cache/tars: mount a volume there (a new named volume inherits the owner) so that checks
# after the first are incremental. The checks run with `sh`, limited by `prlimit` (util-linux,
# in every Debian image).
FROM ${VERIFY_BASE} AS verifier
ARG VERIFY_PACKAGES
USER 0
# The worker's TLS stack loads the system's CA certificates when it starts (a base without them
# cannot start it): the build stage's bundle is installed where the base has none.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /usr/local/share/tars/ca-certificates.crt
RUN set -e; \
    if [ ! -s /etc/ssl/certs/ca-certificates.crt ]; then \
      mkdir -p /etc/ssl/certs; \
      cp /usr/local/share/tars/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt; \
    fi; \
    if [ -n "$VERIFY_PACKAGES" ]; then \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $VERIFY_PACKAGES; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    grep -q '^[^:]*:[^:]*:65532:' /etc/passwd \
      || echo 'tars:x:65532:65532:tars verifier:/var/cache/tars/home:/bin/sh' >> /etc/passwd; \
    grep -q '^[^:]*:[^:]*:65532:' /etc/group || echo 'tars:x:65532:' >> /etc/group; \
    mkdir -p /var/cache/tars/verify /var/cache/tars/home /repo; \
    chown -R 65532:65532 /var/cache/tars
COPY --from=build /tars/bin/ /usr/local/bin/
USER 65532:65532
WORKDIR /var/cache/tars
ENV HOME=/var/cache/tars/home \
    TARS_VERIFY__DIR=/var/cache/tars/verify \
    TARS_HEALTH_FILE=/tmp/tars-worker.health
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/worker", "--health"]
ENTRYPOINT ["/usr/local/bin/worker"]
CMD ["--role", "verify", "--root", "/repo"]

# The default target (last stage): the worker and dispatcher image.
FROM worker
