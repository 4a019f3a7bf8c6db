"""contracts.schema.json is what the TypeScript side mirrors: it must match the dataclasses."""

import json

from edgeforge_gpu import schema


def test_the_committed_schema_is_up_to_date():
    assert schema.SCHEMA_PATH.read_text() == schema.render(), (
        "contracts.schema.json is stale: in services/gpu-worker, run python -m edgeforge_gpu.schema"
    )


def test_the_schema_describes_every_activity_and_nested_payload():
    described = json.loads(schema.render())
    assert described["activities"]["build_variants"] == {
        "input": "BuildVariantsInput",
        "output": "VariantsResult",
    }
    types = described["types"]
    assert types["VariantResult"]["manifest"]["type"] == "UnsignedManifest | null"
    assert types["VariantMetrics"]["op_counts"]["type"] == "map<string, integer>"
    assert types["TensorSpec"]["shape"]["type"] == "(integer | string)[]"
    assert types["DistillConfig"]["alpha"]["default"] == 0.9
    assert "description" in types["DistillConfig"]["temperature"]
    for name, fields in types.items():  # every referenced type is described
        for field in fields.values():
            for part in field["type"].replace("(", "").replace(")[]", "").split(" | "):
                base = part.removesuffix("[]")
                assert (
                    base in types
                    or base in {"string", "integer", "number", "boolean", "null"}
                    or base.startswith("map<")
                ), f"{name}: {part}"
    assert "int8_static_entropy" in described["names"]["variant_formats"]
