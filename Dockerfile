# meshgate: one image for the edge, the sidecar and the demo services.
#
#   docker build -t meshgate:dev .
#   docker run --rm meshgate:dev edge --config /etc/meshgate/edge.yaml
#   docker run --rm --entrypoint python meshgate:dev -m demo.service --name users --port 8000
#
# Works with the classic builder and BuildKit alike (no BuildKit-only syntax),
# so the docker SDK's images.build() can build it too.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: a virtual environment with meshgate and its dependencies ---------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/meshgate
ENV PATH=/opt/meshgate/bin:$PATH

WORKDIR /src

# Dependencies first, from pyproject.toml alone, so that editing the code does
# not download them again. (Every dependency ships wheels: no compiler needed.)
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write('\n'.join(deps) + '\n')" \
 && pip install -r /tmp/requirements.txt

# Then the project itself. .dockerignore lets in only what the package needs.
COPY . .
RUN pip install --no-deps . \
 && meshgate --help > /dev/null

# --- runtime -----------------------------------------------------------------
FROM ${PYTHON_IMAGE}

ENV PATH=/opt/meshgate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

COPY --from=build /opt/meshgate /opt/meshgate

# An unprivileged user with fixed ids (runAsNonRoot-friendly). Configuration
# is mounted read-only at /etc/meshgate; nothing is written at run time.
RUN groupadd --system --gid 10001 meshgate \
 && useradd --system --uid 10001 --gid meshgate --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin meshgate \
 && mkdir -p /etc/meshgate

WORKDIR /srv/meshgate
USER 10001:10001

# edge: 8080 (traffic), 9901 (admin)
# sidecar: 15000 (inbound), 15001 (outbound, loopback), 15002 (admin)
EXPOSE 8080 9901 15000 15002

ENTRYPOINT ["meshgate"]
CMD ["--help"]
