# syntax=docker/dockerfile:1.7
# The gpu worker: Python Temporal activities (training, distillation, export, quantization) on the
# task queue edgeforge-gpu. Build from the repository root:
#   docker build -f deploy/docker/gpu-worker.Dockerfile -t edgeforge/gpu-worker:0.1.0 .
#
# The `base` flavour of the CUDA image is enough: torch from PyPI brings its own CUDA libraries
# (cuBLAS, cuDNN, NCCL: the nvidia-* wheels in requirements.lock), so the `runtime` flavour would
# only add a second copy of them. What the base image contributes is what the NVIDIA container
# toolkit reads: NVIDIA_VISIBLE_DEVICES, NVIDIA_DRIVER_CAPABILITIES and NVIDIA_REQUIRE_CUDA, which
# checks that the host driver supports CUDA 13 (the major version of the locked torch wheels).
# Without a GPU the worker runs on the CPU, as it does in the tests.
FROM nvidia/cuda:13.0.0-base-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
# Ubuntu 24.04's Python is 3.12 (pyproject.toml asks for 3.11 or newer).
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 python3-venv tini ca-certificates \
  && rm -rf /var/lib/apt/lists/* \
  && python3 -m venv /opt/venv

# The same pins the bootstrap installs (scripts/bootstrap.sh), so the image runs what the tests ran.
COPY services/gpu-worker/requirements.lock /tmp/requirements.lock
RUN --mount=type=cache,target=/root/.cache/pip pip install -r /tmp/requirements.lock

WORKDIR /app/services/gpu-worker
COPY services/gpu-worker/edgeforge_gpu ./edgeforge_gpu
COPY deploy/docker/healthcheck.py /app/deploy/docker/healthcheck.py

# A non-root user with a fixed number (Kubernetes' runAsNonRoot checks it) and a work directory
# for checkpoints, which a volume replaces in compose and Kubernetes.
RUN useradd --uid 10001 --user-group --create-home edgeforge \
  && mkdir -p /var/lib/edgeforge/gpu-work \
  && chown -R 10001:10001 /var/lib/edgeforge
ENV EDGEFORGE_GPU_WORK_DIR=/var/lib/edgeforge/gpu-work
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--", "python", "-m", "edgeforge_gpu"]
