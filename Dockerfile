# sohoa in a container: the same Debian packages as scripts/setup.sh, from the one list
# packages/debian.txt, and the project installed into a virtual environment.
# (Not built on the development machines, which have no Docker engine; kept in step by
# installing from the same files as setup.sh.)
FROM debian:bookworm-slim

ENV DEBIAN_FRONTEND=noninteractive \
    OMP_THREAD_LIMIT=1 \
    SOHOA_HOME=/data \
    PATH=/opt/sohoa/.venv/bin:$PATH

WORKDIR /opt/sohoa
COPY packages/debian.txt packages/debian.txt
RUN apt-get update \
 && grep -vE '^\s*(#|$)' packages/debian.txt | xargs apt-get install -y --no-install-recommends python3 python3-pip \
 && rm -rf /var/lib/apt/lists/*

COPY . .
RUN python3 -m venv .venv \
 && .venv/bin/pip install --no-cache-dir .

VOLUME /data
ENTRYPOINT ["sohoa"]
CMD ["--help"]
