# The devattest Verifier image (docs/deploy.md).
#
# Builder: builds devattest's wheel (with its optional C extension). Runtime: a virtual
# environment with the dependencies of requirements.lock, checked against its hashes, and the
# wheel; it runs as an unprivileged user and reports ready when /readyz answers.
#
# The base images are plain Debian bookworm (deploy/base/build-base-images makes them with
# mmdebstrap, no registry needed); any Debian-like image with python3 >= 3.11 and venv fits:
#   podman build --format docker -t devattest:0.1.0 .
#   podman build --build-arg PIP_NO_INDEX=1 ...   offline, from deploy/wheelhouse/
#                                                 (deploy/fetch-wheels fills it)
ARG BUILD_BASE=localhost/devattest-base-build:bookworm
ARG RUNTIME_BASE=localhost/devattest-base-runtime:bookworm

FROM ${BUILD_BASE} AS builder
# PIP_NO_INDEX=1 builds from deploy/wheelhouse/ alone (pip reads it from the environment).
ARG PIP_NO_INDEX
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_FIND_LINKS=/wheelhouse
COPY deploy/wheelhouse/ /wheelhouse/
WORKDIR /src
COPY pyproject.toml setup.py README.md requirements.lock ./
COPY src/ src/
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip wheel --no-deps --wheel-dir /dist . \
 && /opt/build/bin/pip download --require-hashes --only-binary=:all: --dest /deps \
      -r requirements.lock

FROM ${RUNTIME_BASE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Dependencies: exactly requirements.lock, every file checked against its hash; then the
# wheel built above (no dependency resolution at all: --no-deps).
COPY --from=builder /deps/ /tmp/deps/
COPY --from=builder /dist/ /tmp/dist/
COPY requirements.lock /opt/devattest/requirements.lock
RUN python3 -m venv /opt/devattest \
 && /opt/devattest/bin/pip install --no-index --find-links /tmp/deps --require-hashes \
      -r /opt/devattest/requirements.lock \
 && /opt/devattest/bin/pip install --no-index --no-deps /tmp/dist/devattest-*.whl \
 && rm -rf /tmp/deps /tmp/dist \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /var/lib/devattest \
      --shell /usr/sbin/nologin devattest \
 && install -d -o devattest -g devattest -m 0700 /var/lib/devattest

ENV PATH=/opt/devattest/bin:$PATH \
    DEVATTEST_DATA_DIR=/var/lib/devattest \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/devattest
EXPOSE 8080
# Ready: the database answers and its schema is at the newest migration (GET /readyz, 200).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python3", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["devattest"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
