"""Payloads exchanged with the TypeScript side through Temporal.

Mirrors common/temporal-api.ts field for field (snake_case JSON); contracts.schema.json describes
every dataclass here (`python -m edgeforge_gpu.schema` regenerates it, and a test fails when it is
stale), so the TypeScript side can test its types against it. Step configs are defined next to
their step and take part in the payloads as they are. Payloads stay small: model files travel
through the object store, and these name them (StoredObject).
"""

from dataclasses import dataclass, field

from edgeforge_gpu.artifacts import StoredObject
from edgeforge_gpu.data.spec import DatasetSpec
from edgeforge_gpu.evaluation.model_facts import TensorSpec
from edgeforge_gpu.fields import doc
from edgeforge_gpu.manifest import UnsignedManifest, VariantOptions
from edgeforge_gpu.steps.distill import DistillConfig
from edgeforge_gpu.steps.export import ExportConfig
from edgeforge_gpu.steps.teacher import FileRef, TeacherConfig
from edgeforge_gpu.steps.variants import VariantsConfig


@dataclass(frozen=True)
class GpuEnvironment:
    python_version: str = field(metadata=doc("e.g. 3.11.7"))
    torch_version: str = field(metadata=doc("e.g. 2.15.0+cu132"))
    onnxruntime_version: str = field(metadata=doc("e.g. 1.32.0"))
    cuda_available: bool = field(metadata=doc("whether torch sees a CUDA GPU"))
    cuda_device_name: str | None = field(
        metadata=doc("e.g. NVIDIA H100 80GB HBM3; null without CUDA")
    )
    training_device: str = field(metadata=doc("cuda | cpu: where this worker trains"))
    hostname: str = field(metadata=doc("the worker's host"))


@dataclass(frozen=True)
class DatasetSummary:
    name: str = field(metadata=doc("the DatasetSpec source"))
    fingerprint: str = field(metadata=doc("sha256 over the splits: equal means the same samples"))
    classes: list[str] = field(metadata=doc("class names, by label index"))
    input_shape: list[int] = field(metadata=doc("C, H, W of one image"))
    train_samples: int = field(metadata=doc("training split size"))
    validation_samples: int = field(metadata=doc("validation split size"))
    test_samples: int = field(metadata=doc("test split size"))
    labels: str = field(
        metadata=doc(
            "dataset (its own labels) | model_predictions (unlabelled images, labelled with the "
            "imported model's top-1 class: every accuracy is agreement with that fp32 model)"
        )
    )


@dataclass(frozen=True)
class EpochSummary:
    epoch: int = field(metadata=doc("1-based epoch"))
    train_loss: float = field(metadata=doc("mean training loss"))
    train_accuracy: float = field(metadata=doc("training accuracy during the epoch"))
    validation_accuracy: float = field(metadata=doc("validation accuracy after the epoch"))
    seconds: float = field(metadata=doc("wall time of the epoch"))


@dataclass(frozen=True)
class TrainingSummary:
    device: str = field(metadata=doc("cuda | cpu"))
    epochs: list[EpochSummary] = field(metadata=doc("one entry per epoch, across retries"))
    resumed_from_epoch: int | None = field(
        metadata=doc("epoch a retry resumed after; null if none")
    )
    seconds: float = field(metadata=doc("training time over every attempt"))


@dataclass(frozen=True)
class PrepareTeacherInput:
    rollout_id: str = field(
        metadata=doc("names the work folder and the objects ([A-Za-z0-9_-]{1,64})")
    )
    dataset: DatasetSpec = field(metadata=doc("what to train and evaluate on"))
    teacher: TeacherConfig = field(
        default_factory=TeacherConfig, metadata=doc("where the teacher comes from")
    )


@dataclass(frozen=True)
class TeacherResult:
    rollout_id: str = field(metadata=doc("as requested"))
    kind: str = field(metadata=doc("pytorch (distilled from online) | onnx (from cached logits)"))
    architecture: str | None = field(
        metadata=doc("PyTorch teachers: the architecture; null for ONNX")
    )
    dataset: DatasetSummary = field(metadata=doc("the data it was evaluated on"))
    onnx_model: StoredObject = field(metadata=doc("fp32 ONNX teacher: <rollout>/teacher/fp32.onnx"))
    state_dict: StoredObject | None = field(
        metadata=doc("PyTorch teachers: <rollout>/teacher/model.pt")
    )
    train_logits: StoredObject | None = field(
        metadata=doc(
            "ONNX teachers: logits over the training split, <rollout>/teacher/train_logits.npy"
        )
    )
    parameters: int | None = field(metadata=doc("PyTorch teachers: parameter count"))
    validation_accuracy: float = field(metadata=doc("on the validation split"))
    test_accuracy: float = field(metadata=doc("on the test split"))
    parity_max_abs_diff: float | None = field(metadata=doc("PyTorch teachers: export parity"))
    latency_ms: float = field(
        metadata=doc("fp32 ONNX, batch 1, one thread, median, on the gpu worker")
    )
    training: TrainingSummary | None = field(metadata=doc("teachers trained here: how it went"))


@dataclass(frozen=True)
class DistillStudentInput:
    rollout_id: str = field(metadata=doc("as for prepare_teacher"))
    dataset: DatasetSpec = field(metadata=doc("the same spec the teacher was prepared with"))
    teacher: TeacherResult = field(metadata=doc("what prepare_teacher returned"))
    architecture: str = field(default="small_cnn", metadata=doc("the student's architecture"))
    distill: DistillConfig = field(
        default_factory=DistillConfig, metadata=doc("loss and optimisation settings")
    )
    export: ExportConfig = field(
        default_factory=ExportConfig, metadata=doc("ONNX export and parity check")
    )


@dataclass(frozen=True)
class ImportModelInput:
    rollout_id: str = field(metadata=doc("as for prepare_teacher"))
    dataset: DatasetSpec = field(
        metadata=doc("what to evaluate on; an npz may hold only x (then the model labels it)")
    )
    model: FileRef = field(metadata=doc("the trained ONNX classifier: logits (N, classes)"))
    architecture_label: str = field(
        default="imported",
        metadata=doc("StudentResult.architecture, and so the default model id's suffix"),
    )


@dataclass(frozen=True)
class StudentResult:
    """What distill_student returns, and import_model for a model trained elsewhere."""

    rollout_id: str = field(metadata=doc("as requested"))
    architecture: str = field(
        metadata=doc("the student's architecture; imported models: the architecture_label")
    )
    dataset: DatasetSummary = field(metadata=doc("the data it was trained and evaluated on"))
    onnx_model: StoredObject = field(metadata=doc("fp32 ONNX student: <rollout>/student/fp32.onnx"))
    state_dict: StoredObject | None = field(
        metadata=doc("PyTorch weights: <rollout>/student/model.pt; null for imported models")
    )
    holdout: StoredObject = field(
        metadata=doc("holdout bundle: <rollout>/holdout.npz (x float32, y int64)")
    )
    holdout_samples: int = field(metadata=doc("samples in the holdout bundle"))
    parameters: int = field(
        metadata=doc("parameter count (imported models: elements of the graph's initializers)")
    )
    opset: int = field(metadata=doc("ONNX opset"))
    inputs: list[TensorSpec] = field(metadata=doc("graph inputs"))
    outputs: list[TensorSpec] = field(metadata=doc("graph outputs"))
    validation_accuracy: float = field(metadata=doc("fp32 ONNX on the validation split"))
    test_accuracy: float = field(metadata=doc("fp32 ONNX on the test split"))
    teacher_test_accuracy: float | None = field(
        metadata=doc("the teacher's, for comparison; null for imported models (no teacher)")
    )
    agreement_with_teacher: float | None = field(
        metadata=doc("share of test images where both pick the same class; null for imported")
    )
    parity_max_abs_diff: float | None = field(
        metadata=doc(
            "largest |PyTorch - ONNX Runtime| logit difference; null for imported models "
            "(no PyTorch model to compare with)"
        )
    )
    latency_ms: float = field(
        metadata=doc("fp32 ONNX, batch 1, one thread, median, on the gpu worker")
    )
    training: TrainingSummary | None = field(
        metadata=doc("how distillation went; null for imported models")
    )


@dataclass(frozen=True)
class BuildVariantsInput:
    rollout_id: str = field(metadata=doc("as for prepare_teacher"))
    dataset: DatasetSpec = field(metadata=doc("the same spec the student was trained with"))
    student: StudentResult = field(metadata=doc("what distill_student returned"))
    formats: list[str] = field(metadata=doc("variant formats to build (see the registry)"))
    model_id: str | None = field(
        default=None, metadata=doc("manifest model id; default <rollout_id>-<architecture>")
    )
    variants: VariantsConfig = field(
        default_factory=VariantsConfig, metadata=doc("accuracy budget, fallback, latency")
    )
    teacher: TeacherResult | None = field(
        default=None,
        metadata=doc(
            "what prepare_teacher returned: adds the fp32 teacher as teacher_reference, for "
            "canaries to measure the chosen variant's on-device speedup against; null for none"
        ),
    )


@dataclass(frozen=True)
class VariantMetrics:
    validation_accuracy: float = field(metadata=doc("on the validation split"))
    test_accuracy: float = field(metadata=doc("on the test split"))
    holdout_accuracy: float = field(metadata=doc("on the holdout bundle"))
    accuracy_drop: float = field(metadata=doc("fp32 student's test accuracy minus this variant's"))
    agreement: float = field(
        metadata=doc("top-1 agreement with the fp32 student on the test split")
    )
    size_bytes: int = field(metadata=doc("model file size"))
    size_ratio: float = field(metadata=doc("size / fp32 student's size"))
    op_counts: dict[str, int] = field(metadata=doc("nodes per op type"))
    latency_ms: float = field(metadata=doc("batch 1, median, on the gpu worker (a reference only)"))
    latency_p90_ms: float = field(metadata=doc("batch 1, 90th percentile"))
    latency_threads: int = field(metadata=doc("intra-op threads of the latency runs"))


@dataclass(frozen=True)
class VariantResult:
    format: str = field(metadata=doc("registry name"))
    status: str = field(
        metadata=doc("accepted | rejected (over the accuracy budget) | not_applicable")
    )
    reason: str = field(metadata=doc("why, in words"))
    options: VariantOptions = field(metadata=doc("how the format was applied"))
    model: StoredObject | None = field(
        metadata=doc("accepted variants: <rollout>/variants/<format>.onnx")
    )
    metrics: VariantMetrics | None = field(metadata=doc("null when not applicable"))
    manifest: UnsignedManifest | None = field(
        metadata=doc("accepted variants: the manifest to sign")
    )
    reused: bool = field(metadata=doc("true when an earlier call had built it for this rollout"))


@dataclass(frozen=True)
class VariantsResult:
    rollout_id: str = field(metadata=doc("as requested"))
    model_id: str = field(metadata=doc("as in the manifests"))
    student_test_accuracy: float = field(
        metadata=doc("the fp32 student's, the accuracy budget's base")
    )
    variants: list[VariantResult] = field(
        metadata=doc("one per requested format, in request order")
    )
    teacher_reference: VariantResult | None = field(
        metadata=doc(
            "the fp32 teacher as a manifest-ready entry (model <rollout>/teacher/fp32.onnx, model "
            "id <model_id>-teacher, the student's holdout bundle), measured like the variants; "
            "null without a teacher, or when its input shape differs from the student's"
        )
    )
