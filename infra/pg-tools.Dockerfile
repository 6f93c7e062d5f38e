# The image of the functions that drive the PostgreSQL client tools: `export` (pg_dump, pg_restore), `restore` (the
# console's restores: pg_restore into a new database) and `restore-test` (the restore-test steps: pg_restore into a
# scratch database). The entry point is `export`; the restore functions' ImageConfig points at /usr/local/bin/restore
# and /usr/local/bin/restore-test. One image serves Lambda (the binaries speak the Lambda runtime API themselves, so no AWS
# base image is needed) and the ECS Fargate tasks for long exports and restores (`LIFEBOAT_EVENT` set, one run,
# exit status = result).
#
# Its build context is the directory `make package` writes (dist/image: this file as Dockerfile, and the `export`
# `restore` and `restore-test` binaries already built for the target architecture), so that Docker compiles nothing and never
# emulates another architecture: `make deploy` runs
#   docker build --platform linux/arm64 dist/image
# PG_MAJOR must be at least the newest PostgreSQL major version among the databases: pg_dump cannot dump a newer
# server, and the function refuses to try (`make deploy PG_MAJOR=<n>`).

ARG PG_MAJOR=18
ARG DEBIAN=bookworm

FROM debian:${DEBIAN}-slim
ARG PG_MAJOR
ARG DEBIAN
# The PostgreSQL client from the PostgreSQL project's own apt repository (Debian's lags behind new majors), and the
# RDS certificate bundle so that connections verify the server (LIFEBOAT_DB_SSLMODE=verify-full).
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl; \
    install -d /usr/share/postgresql-common/pgdg /etc/lifeboat; \
    curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
        https://www.postgresql.org/media/keys/ACCC4CF8.asc; \
    echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt ${DEBIAN}-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}"; \
    curl -fsSL -o /etc/lifeboat/rds-global-bundle.pem \
        https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem; \
    apt-get purge -y curl; \
    apt-get autoremove -y; \
    rm -rf /var/lib/apt/lists/*

COPY export restore restore-test /usr/local/bin/

ENV LIFEBOAT_PG_DUMP=/usr/lib/postgresql/${PG_MAJOR}/bin/pg_dump \
    LIFEBOAT_PG_RESTORE=/usr/lib/postgresql/${PG_MAJOR}/bin/pg_restore \
    LIFEBOAT_DB_CA_BUNDLE=/etc/lifeboat/rds-global-bundle.pem

# The restore task's work directory (`"jobs": N` writes the plaintext archive there; the task mounts a volume on
# it), owned by the user the binaries run as.
RUN install -d -o 65532 -g 65532 -m 0700 /var/lib/lifeboat/work

# Any non-root user: exports write nothing to disk (the dump streams to S3); restore tests use /tmp only.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/export"]
