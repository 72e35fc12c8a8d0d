# syntax=docker/dockerfile:1
# The loyalty-stream worker image: `docker build -t loyalty-stream .`
# Runs `python -m stream worker` by default; any other command replaces CMD
# (`docker run loyalty-stream redrive events --dry-run`).

# The base image by digest, so that a rebuild starts from the same bytes (the tag moves with
# every Python and Debian patch). To move on: `docker buildx imagetools inspect
# python:3.11-slim-bookworm` shows the current digest; put it (and its version) here.
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16

# Builder: a wheel of every dependency at the version and hash requirements.lock pins (`make
# lock`), and the package's own wheel, built with the setuptools requirements-build.lock pins.
# The runtime stage installs them offline and needs no compiler.
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements.lock requirements-build.lock pyproject.toml README.md ./
COPY stream ./stream
RUN pip wheel --no-cache-dir --wheel-dir /wheels --require-hashes --no-deps -r requirements.lock \
    && pip install --no-cache-dir --require-hashes --no-deps -r requirements-build.lock \
    && pip wheel --no-cache-dir --wheel-dir /dist --no-deps --no-build-isolation .

# Runtime: the installed package and nothing from the build.
FROM ${PYTHON_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    STREAM_STORE=rocksdb:// STREAM_DATA_DIR=/var/lib/loyalty-stream
# The wheels are bind-mounted, not copied, so they add no layer to the image. The lock is
# installed with its hashes checked again; the package alone, since the lock holds its
# dependencies.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    --mount=type=bind,from=builder,source=/dist,target=/dist \
    --mount=type=bind,source=requirements.lock,target=/tmp/requirements.lock \
    pip install --no-cache-dir --no-index --find-links=/wheels --require-hashes --no-deps \
        -r /tmp/requirements.lock \
    && pip install --no-cache-dir --no-index --no-deps /dist/*.whl \
    && pip check
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
