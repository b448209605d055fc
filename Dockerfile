# kubev-node-exporter container image.
# Build: make image (passes VERSION from pyproject.toml, the one place the version is
# written). Run: see docs/deploy.md (it needs the host's /proc, /sys, /dev/kvm and network
# namespace).

ARG PYTHON=python:3.11-slim-bookworm

# Stage 1: build the wheel (and nothing of the build tools reaches the final image).
FROM ${PYTHON} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Stage 2: a virtualenv with the wheel and its dependencies (binary wheels only).
FROM ${PYTHON} AS venv
COPY --from=build /wheels /wheels
RUN python -m venv /opt/kubev \
 && /opt/kubev/bin/pip install --no-cache-dir --only-binary=:all: /wheels/*.whl \
 && /opt/kubev/bin/pip uninstall -y pip setuptools wheel

# Stage 3: the runtime: the slim base and the venv; no compiler, no pip.
FROM ${PYTHON}
ARG VERSION
RUN test -n "${VERSION}" || { echo "build with --build-arg VERSION=... (make image)"; exit 1; }
LABEL org.opencontainers.image.title="kubev-node-exporter" \
      org.opencontainers.image.description="Prometheus exporter: does this node meet the Kube-V (KubeVirt) platform requirements?" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/kubev/kubev-node-exporter" \
      org.opencontainers.image.documentation="https://github.com/kubev/kubev-node-exporter/blob/main/docs/deploy.md"
COPY --from=venv /opt/kubev /opt/kubev
ENV PATH=/opt/kubev/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Not root, and an id of its own (deploy/chart.py RUN_AS): the chart runs it as this user.
USER 10190:10190
EXPOSE 19100
# GET /-/healthy where serve listens, over TLS if its web config says so: the address and
# the web config come from KUBEV_WEB_LISTEN_ADDRESS / KUBEV_WEB_CONFIG_FILE, else from the
# entrypoint's own flags (exporter/healthcheck.py; ~20 MB for a moment, not the exporter's 45).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-m", "exporter.healthcheck"]
ENTRYPOINT ["kubev-node-exporter"]
CMD ["serve"]
