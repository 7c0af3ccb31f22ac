# syntax=docker/dockerfile:1
# workfleet worker image: wheels are built in the first stage from this source tree and the
# pinned requirements.lock; the final stage installs exactly those wheels through a bind mount
# (no layer ever holds them), has no compiler, runs as a non-root numeric user and works with a
# read-only root filesystem (only /tmp, a volume in the Helm chart, is written).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md CHANGELOG.md requirements.lock ./
COPY src ./src
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --wheel-dir /wheels --constraint requirements.lock . \
    && cp requirements.lock /wheels/

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="workfleet" \
      org.opencontainers.image.description="Worker runtime for durable, Postgres-backed work" \
      org.opencontainers.image.licenses="MIT"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    WORKFLEET_LOG_FORMAT=json
# DL3013 (pin versions): the versions are pinned by requirements.lock, passed as constraints,
# and only the wheels built from it above can be installed (--no-index)
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels \
        --constraint /wheels/requirements.lock workfleet
USER 10001:10001
EXPOSE 9464
STOPSIGNAL SIGTERM
ENTRYPOINT ["workfleet"]
CMD ["worker"]
