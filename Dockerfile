# The gateway image: built by docker-compose.yml, run by docker/docker-compose.gateway.yml.
FROM python:3.12-slim
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
