"""What a model file is: digest, size, opset, inputs and outputs, op mix."""

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edgeforge_gpu.fields import doc


@dataclass(frozen=True)
class TensorSpec:
    name: str = field(metadata=doc("tensor name in the ONNX graph"))
    dtype: str = field(metadata=doc("element type, e.g. float32"))
    shape: list[int | str] = field(metadata=doc("dimensions; a string names a dynamic one (batch)"))


@dataclass(frozen=True)
class ModelFacts:
    sha256: str
    size_bytes: int
    opset: int
    """Version of the default ONNX domain the model imports."""
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    op_counts: dict[str, int]
    """Nodes per op type; ops outside the default domain are prefixed with theirs."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe_model(path: Path) -> ModelFacts:
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def specs(values: list[onnx.ValueInfoProto]) -> list[TensorSpec]:
        out = []
        for value in values:
            tensor = value.type.tensor_type
            shape: list[int | str] = [
                d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in tensor.shape.dim
            ]
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
            out.append(TensorSpec(name=value.name, dtype=dtype, shape=shape))
        return out

    initializers = {i.name for i in model.graph.initializer}
    ops = Counter(
        f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        for node in model.graph.node
    )
    return ModelFacts(
        sha256=sha256_file(path),
        size_bytes=path.stat().st_size,
        opset=next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
        inputs=specs([v for v in model.graph.input if v.name not in initializers]),
        outputs=specs(list(model.graph.output)),
        op_counts=dict(sorted(ops.items())),
    )
