# One image for every service of the stack; each service runs its own module.
# BASE_IMAGE is any Debian-like image with Python 3.11; with no registry at hand,
# deploy-autoscaling.sh builds a local one (debootstrap) that already has nginx, its
# Lua module and HAProxy.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

RUN (test -f /usr/lib/nginx/modules/ngx_http_lua_module.so && test -x /usr/sbin/haproxy) \
    || (apt-get update && apt-get install -y --no-install-recommends nginx-light libnginx-mod-http-lua haproxy \
        && rm -rf /var/lib/apt/lists/*)

# The collector's filtered view of the Docker API (the docker-api service).
COPY metrics_collector/docker-api.cfg /etc/haproxy/docker-api.cfg

# Wheels are built on the host (deploy-autoscaling.sh): the build needs no package index.
# The plot extra is for the load generator's picture (./stress-test.sh --out).
COPY build/wheels /tmp/wheels
RUN python3 -m venv /opt/app \
    && /opt/app/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels 'swarm-autoscaler[plot]' \
    && rm -rf /tmp/wheels

ENV PATH=/opt/app/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
EXPOSE 80 8000 8080 8090
CMD ["python", "-m", "autoscaler"]
