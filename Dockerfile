# syntax=docker/dockerfile:1
# The journeys image: `journeys` is the entrypoint, so a container runs one component, e.g.
#   docker run IMAGE api --port 8000      docker run IMAGE worker      docker run IMAGE migrate
# docker-compose.yml runs the whole system from it (see docs/deployment.md).

ARG PYTHON_VERSION=3.11

# --- build: the project and its dependencies in a virtual environment ----------------------------
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/journeys
WORKDIR /app
COPY pyproject.toml README.md ./
COPY journeys ./journeys
COPY workflows ./workflows
COPY activities ./activities
COPY api_client ./api_client
COPY worker ./worker
COPY api ./api
COPY relay ./relay
COPY journey_designer ./journey_designer
COPY cli ./cli
COPY simulator ./simulator
# Editable: the packages are read from /app, data files included (the demo journeys, the
# designer's gallery), which a wheel built without package-data declarations would leave out.
RUN /opt/journeys/bin/pip install --editable . \
    && /opt/journeys/bin/python -m compileall -q /app

# --- runtime: the environment and the sources, no build tools, not root ----------------------------
FROM python:${PYTHON_VERSION}-slim
RUN groupadd --system --gid 10001 journeys \
    && useradd --system --uid 10001 --gid journeys --home-dir /home/journeys --create-home journeys
COPY --from=build /opt/journeys /opt/journeys
COPY --from=build /app /app
ENV PATH=/opt/journeys/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER journeys
WORKDIR /home/journeys
# API, designer, worker metrics.
EXPOSE 8000 8501 9464
ENTRYPOINT ["journeys"]
CMD ["--help"]
