# syntax=docker/dockerfile:1
# The loyalty-stream worker image: `docker build -t loyalty-stream .`
# Runs `python -m stream worker` by default; any other command replaces CMD
# (`docker run loyalty-stream redrive events --dry-run`).

ARG PYTHON_IMAGE=python:3.11-slim

# Builder: the package's wheel plus a wheel of every dependency (all are published as binary
# wheels), so the runtime stage installs offline and needs no compiler.
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY stream ./stream
RUN pip wheel --wheel-dir /wheels '.[rocksdb]'

# Runtime: the installed package and nothing from the build.
FROM ${PYTHON_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    STREAM_STORE=rocksdb:// STREAM_DATA_DIR=/var/lib/loyalty-stream
# The wheels are bind-mounted, not copied, so they add no layer to the image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels 'loyalty-stream[rocksdb]'
# A numeric uid, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 loyalty \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin loyalty \
    && mkdir -p /app /var/lib/loyalty-stream \
    && chown 10001:10001 /var/lib/loyalty-stream
WORKDIR /app
VOLUME ["/var/lib/loyalty-stream"]
USER 10001:10001
# Faust web server: /healthz, /readyz, /metrics (STREAM_WEB_PORT).
EXPOSE 6066
# No HEALTHCHECK: the same image runs one-shot commands (redrive, replay) that serve no HTTP;
# Kubernetes probes the worker itself (deploy/k8s/base/statefulset.yaml).
ENTRYPOINT ["python", "-m", "stream"]
CMD ["worker"]
