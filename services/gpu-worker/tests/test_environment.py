import onnxruntime
import torch

from edgeforge_gpu.activities import activity, build_activities
from edgeforge_gpu.activities.environment import describe_environment
from edgeforge_gpu.settings import Settings


def test_reports_the_installed_torch_and_cuda_state():
    env = describe_environment()
    assert env.torch_version == torch.__version__
    assert env.onnxruntime_version == onnxruntime.__version__
    assert env.cuda_available == torch.cuda.is_available()
    assert env.training_device == ("cuda" if env.cuda_available else "cpu")
    assert (env.cuda_device_name is None) == (not env.cuda_available)


def test_registry_names_unknown_activities(tmp_path):
    activities = build_activities(Settings(nats_url="nats://127.0.0.1:1", work_dir=tmp_path))
    assert activity("describe_environment", activities) is describe_environment
    assert set(activities) == {
        "describe_environment",
        "prepare_teacher",
        "distill_student",
        "import_model",
        "build_variants",
    }
    try:
        activity("distil", activities)
    except KeyError as err:
        assert "distill_student" in str(err)
    else:
        raise AssertionError("unknown activity name was accepted")
