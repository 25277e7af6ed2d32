# The gateway image: built by docker-compose.yml, run by docker/docker-compose.gateway.yml.
# BASE_IMAGE: any Debian-based image with Python 3.11 or later and pip on PATH (scripts/container-images
# builds it on a local Debian base). PIP_NO_INDEX / PIP_FIND_LINKS, when given, install the packages
# from a wheel house instead of the index (the same script serves one from the host); unset, pip
# uses PyPI. Neither is kept in the image.
ARG BASE_IMAGE=python:3.12-slim

# The wheel, with the request path compiled by mypyc (setup.py). GATEWAY_BUILD=compiled: a build
# that cannot compile fails here instead of shipping pure Python. The C compiler stays in this stage.
FROM ${BASE_IMAGE} AS build
# The stage's image is left untagged by the classic builder: scripts/container-images removes it by this label.
LABEL supabase-api-gateway.stage=build
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
RUN headers=$(python -c "import os, sysconfig; print(os.path.exists(sysconfig.get_paths()['include'] + '/Python.h'))") \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev \
      $([ "$headers" = True ] || echo python3-dev) >/dev/null
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY gateway ./gateway
COPY migrations ./migrations
RUN GATEWAY_BUILD=compiled pip wheel --no-cache-dir --no-deps -w /wheels .

FROM ${BASE_IMAGE}
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
 && useradd --system --uid 1000 gateway && mkdir /data && chown gateway /data
USER gateway
ENV GATEWAY_DATA_DIR=/data
EXPOSE 8000 8001
HEALTHCHECK --interval=5s --timeout=3s --retries=5 CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
CMD ["gateway", "serve"]
