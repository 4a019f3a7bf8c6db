"""describe_environment: what this worker trains on (torch, CUDA, ONNX Runtime)."""

import platform
import socket

from temporalio import activity

from edgeforge_gpu.contracts import GpuEnvironment


@activity.defn(name="describe_environment")
def describe_environment() -> GpuEnvironment:
    # torch is imported here, not at module level, so the worker starts fast.
    import onnxruntime
    import torch

    cuda = torch.cuda.is_available()
    return GpuEnvironment(
        python_version=platform.python_version(),
        torch_version=torch.__version__,
        onnxruntime_version=onnxruntime.__version__,
        cuda_available=cuda,
        cuda_device_name=torch.cuda.get_device_name(0) if cuda else None,
        training_device="cuda" if cuda else "cpu",
        hostname=socket.gethostname(),
    )
