# A distroless-like runtime made from a debootstrapped Debian: glibc, libgcc, CA certificates,
# a nonroot user (65532) and /tmp; nothing else (no shell, no package manager).
ARG BASE=tars-base:bookworm
FROM ${BASE} AS base
COPY ca-certificates.crt /out/etc/ssl/certs/ca-certificates.crt
RUN set -e; mkdir -p /out/lib/x86_64-linux-gnu /out/lib64 /out/tmp /out/etc; chmod 1777 /out/tmp; \
    for l in libc.so.6 libm.so.6 libgcc_s.so.1 ld-linux-x86-64.so.2; do \
      cp -L /lib/x86_64-linux-gnu/$l /out/lib/x86_64-linux-gnu/; done; \
    cp -L /lib64/ld-linux-x86-64.so.2 /out/lib64/; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /out/etc/passwd; \
    printf 'root:x:0:\nnonroot:x:65532:\n' > /out/etc/group
FROM scratch
COPY --from=base /out/ /
