# braintumor web service on CPU. Research use only: not a medical device.
#
# Build:  docker build -t braintumor .
# Run:    docker run --rm -p 8000:8000 \
#           -e BRAINTUMOR_API_TOKEN="$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')" \
#           -v /path/to/run:/models/run:ro -e BRAINTUMOR_MODEL=/models/run braintumor
# Configuration is by environment variables (BRAINTUMOR_MODEL, _BACKEND, _API_TOKEN, _CORS_ORIGINS,
# _MAX_FILE_MB, _MAX_REQUEST_MB, _MAX_FILES, _CONCURRENCY, _THREADS, _MAX_SIDE); see `braintumor serve --help`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# The CPU build of torch: the default PyPI wheel carries CUDA libraries (gigabytes) a CPU server never uses.
# Pins as in the README's set-up command.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.14.1 torchvision==0.29.1
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . \
 && useradd --create-home --uid 10001 --shell /usr/sbin/nologin braintumor

USER braintumor
# MPLCONFIGDIR: matplotlib (colour bars of overlays) needs a writable folder even on a read-only root.
ENV BRAINTUMOR_MODEL=default \
    BRAINTUMOR_BACKEND=torch \
    BRAINTUMOR_CONCURRENCY=2 \
    MPLCONFIGDIR=/tmp/matplotlib
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/v1/health', timeout=4)"]
# Listening on 0.0.0.0 (needed inside a container) makes `braintumor serve` refuse to start without
# BRAINTUMOR_API_TOKEN; append --insecure-no-auth only when a proxy in front authenticates every request.
CMD ["braintumor", "serve", "--host", "0.0.0.0", "--port", "8000"]
