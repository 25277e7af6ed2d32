"""nginx from a temporary prefix: the upstream (small JSON, a 10 MB file, an upload sink) and the
reference proxy (proxy_pass with upstream keepalive, a WebSocket proxy)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from bench import BenchError
from bench.process import Processes, wait_http

SMALL_JSON = '{"id":1,"name":"bench","items":[1,2,3],"ok":true}'


def nginx_conf(prefix: Path, body: str) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read our 0700 temp dir
    return f"""{user}worker_processes auto;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{body}
}}
"""


COUNTED_LOG = "counted.log"  # under the upstream's prefix: one line (the path) per request under /counted/


def upstream_conf(prefix: Path, port: int) -> str:
    """Small JSON on any path, files under ``www/`` (the 10 MB /big.bin), /upload: reads the
    whole body, answers the small JSON; and /counted/*: the small JSON, each request's path
    written to ``COUNTED_LOG``, so that a run can count what reached the upstream."""
    return nginx_conf(prefix, f"""
    upstream self {{ server 127.0.0.1:{port}; keepalive 64; }}
    log_format counted '$uri';
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {prefix}/www;
        location / {{ default_type application/json; return 200 '{SMALL_JSON}'; }}
        location /counted/ {{
            access_log {prefix}/{COUNTED_LOG} counted;
            default_type application/json;
            return 200 '{SMALL_JSON}';
        }}
        location = /big.bin {{ }}
        location = /upload {{
            client_max_body_size 0;
            client_body_buffer_size 2m;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_method GET;
            proxy_pass http://self/uploaded;
        }}
    }}""")


def proxy_conf(prefix: Path, port: int, upstream_port: int, ws_port: int) -> str:
    """nginx as the reference proxy: /rest/v1/* -> upstream /*, with upstream keepalive."""
    return nginx_conf(prefix, f"""
    upstream up {{ server 127.0.0.1:{upstream_port}; keepalive 64; keepalive_requests 1000000; }}
    upstream ws {{ server 127.0.0.1:{ws_port}; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        client_max_body_size 0;
        location /rest/v1/ {{
            proxy_pass http://up/;
            proxy_request_buffering off;  # stream request bodies, as the gateway does
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_max_temp_file_size 0;
        }}
        location = /realtime/v1/websocket {{
            proxy_pass http://ws/socket/websocket;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 3600s;
        }}
    }}""")


def start_nginx(procs: Processes, nginx: str, prefix: Path, conf: str, health_url: str,
                name: str) -> subprocess.Popen[bytes]:
    """nginx with ``conf`` from ``prefix``, once ``health_url`` answers 200."""
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "nginx.conf").write_text(conf)
    p = procs.start(name, [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")],
                    out=prefix / "stdout.log", stop_signal=signal.SIGTERM)
    try:
        wait_http(health_url, 15, p)
    except BenchError:
        err = (prefix / "error.log").read_text() if (prefix / "error.log").exists() else ""
        raise BenchError(f"{name} did not start:\n{err[-2000:]}") from None
    return p
