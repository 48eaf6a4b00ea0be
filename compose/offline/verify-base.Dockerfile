# A toolchain base for the offline verifier (the Dockerfile's VERIFY_BASE), standing in for
# python:3.12-slim-bookworm on machines that cannot pull it: Debian with python3 and make,
# enough for `python3 -m unittest` and `make test` checks. util-linux (prlimit, which limits
# the checks) is in every Debian base.
ARG BASE=tars-base:bookworm
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 make \
 && rm -rf /var/lib/apt/lists/*
