# syntax=docker/dockerfile:1
# The production image of sohoa: what runs, nothing the tests alone need.
#
# - System packages: exactly packages/debian.txt, the run-time list that scripts/setup.sh also
#   installs on every development and CI machine (with packages/debian-test.txt beside it:
#   Ceph, SoftHSM2, NSS tools ... which never enter this image).
# - Python: Debian's python3 (3.11 on bookworm), sohoa installed into /opt/sohoa (a venv),
#   without the test extras.
# - Runs as the unprivileged user sohoa (uid 10001), data home /data (SOHOA_HOME).
#
# No Docker engine runs on the development machines, so this file is never built there:
# tests/test_deployment.py lints it with hadolint and checks that it installs packages/debian.txt
# and nothing else. Build and run: docs/deployment.md.

FROM debian:bookworm-slim AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8
COPY packages/debian.txt /tmp/debian.txt
# Versions are those of Debian 12's stable and security suites, as on the test machines.
# hadolint ignore=DL3008
RUN apt-get update \
 && grep -vE '^\s*(#|$)' /tmp/debian.txt | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/debian.txt

# Build: sohoa and its Python dependencies into a venv (every dependency ships a manylinux
# wheel, so no compiler is needed). Only the venv is carried into the final image.
FROM runtime AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api/ api/
COPY ocr/ ocr/
COPY pipeline/ pipeline/
COPY storage/ storage/
RUN python3 -m venv /opt/sohoa \
 && /opt/sohoa/bin/pip install --no-cache-dir /src

FROM runtime
RUN groupadd --system --gid 10001 sohoa \
 && useradd --system --uid 10001 --gid sohoa --home-dir /data --no-create-home --shell /usr/sbin/nologin sohoa \
 && mkdir /data \
 && chown sohoa:sohoa /data
COPY --from=build /opt/sohoa /opt/sohoa
# OMP_THREAD_LIMIT=1: tesseract runs one thread; sohoa parallelises over pages (SOHOA_JOBS, workers).
ENV PATH=/opt/sohoa/bin:$PATH \
    OMP_THREAD_LIMIT=1 \
    SOHOA_HOME=/data \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# No HEALTHCHECK: one image runs a one-shot migration, Celery workers and the hot folder;
# compose.yaml checks the services it waits on (PostgreSQL, Redis, MinIO) and the one-shots'
# exit status.
ENTRYPOINT ["sohoa"]
CMD ["--help"]
