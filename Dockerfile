# syntax=docker/dockerfile:1
#
# A drop-in for plugins/s3-sync in .drone.yml:
#
#   steps:
#   - name: publish
#     image: <registry>/drone-s3-sync
#     settings: {bucket: my-bucket, source: public, target: /, delete: true}
#
# Drone passes the settings as PLUGIN_* environment variables and runs the
# container with the workspace as the working directory. Outside Drone:
#
#   docker run --rm -v "$PWD:/src:ro" -w /src -e PLUGIN_BUCKET=my-bucket \
#     -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY <image> --dry-run

# ---- build: a wheel of this project plus wheels of everything it needs ----
FROM python:3.12-slim AS builder
WORKDIR /src
# Only what the build needs; see also .dockerignore.
COPY pyproject.toml setup.cfg setup.py README.md LICENSE ./
COPY drone_s3_sync/ drone_s3_sync/
# With the brotli extra: the image can `compress: br` (brotli ships manylinux wheels).
RUN pip wheel --no-cache-dir --disable-pip-version-check --wheel-dir /wheels ".[brotli]"

# ---- final image: the installed wheels, nothing else ----
FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The wheels are bind-mounted from the builder for this one step, so neither
# they nor a pip cache end up in a layer.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --pre --find-links=/wheels "drone-s3-sync[brotli]" \
 && useradd --uid 1000 --user-group --create-home --shell /usr/sbin/nologin drone \
 && drone-s3-sync --help >/dev/null

# Runs as uid 1000, not root. Drone's workspace is often owned by root; that
# is fine, since the plugin only reads it and files checked out or built with
# the default umask (022) are world-readable. A build step that writes files
# with a stricter umask (e.g. 077) makes them unreadable here: loosen it in
# that step, or `chmod -R a+rX` the source folder before this one.
USER drone
# Drone and Woodpecker start the step in the workspace. Without -w, `docker run`
# starts here, an empty folder, rather than in / (the whole filesystem as the
# default source `.`): a sync from it uploads nothing, and with `delete` the
# empty-source guard refuses the run.
WORKDIR /workspace
ENTRYPOINT ["drone-s3-sync"]
