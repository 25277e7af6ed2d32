# The gateway image: built by docker-compose.yml, run by docker/docker-compose.gateway.yml.
# BASE_IMAGE: any image with Python 3.11 or later and pip on PATH (scripts/container-images builds
# it on a local Debian base). PIP_NO_INDEX / PIP_FIND_LINKS, when given, install the packages from
# a wheel house instead of the index (the same script serves one from the host); unset, pip uses
# PyPI. Neither is kept in the image.
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY migrations ./migrations
RUN pip install --no-cache-dir . && useradd --system --uid 1000 gateway && mkdir /data && chown gateway /data
USER gateway
ENV GATEWAY_DATA_DIR=/data
EXPOSE 8000 8001
HEALTHCHECK --interval=5s --timeout=3s --retries=5 CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
CMD ["gateway", "serve"]
