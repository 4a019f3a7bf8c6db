import onnxruntime
import torch

from edgeforge_gpu.activities import ACTIVITIES, activity
from edgeforge_gpu.activities.environment import describe_environment


def test_reports_the_installed_torch_and_cuda_state():
    env = describe_environment()
    assert env.torch_version == torch.__version__
    assert env.onnxruntime_version == onnxruntime.__version__
    assert env.cuda_available == torch.cuda.is_available()
    assert env.training_device == ("cuda" if env.cuda_available else "cpu")
    assert (env.cuda_device_name is None) == (not env.cuda_available)


def test_registry_names_unknown_activities():
    assert activity("describe_environment") is ACTIVITIES["describe_environment"]
    try:
        activity("distil")
    except KeyError as err:
        assert "describe_environment" in str(err)
    else:
        raise AssertionError("unknown activity name was accepted")
