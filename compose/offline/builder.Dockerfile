# A Rust builder image for machines without registry access: a debootstrapped Debian, gcc from
# Debian's packages, and the host's Rust toolchain (build context: rust/, ca-certificates.crt).
ARG BASE=tars-base:bookworm
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# The host's CA bundle: cargo reaches crates.io through the same egress as the host.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY rust /usr/local/rust
ENV PATH=/usr/local/rust/bin:/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CARGO_HOME=/usr/local/cargo
