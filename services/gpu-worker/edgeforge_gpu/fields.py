"""Descriptions for dataclass fields: the step configs' and payloads' documentation, exported to
contracts.schema.json so the TypeScript side reads the same words."""


def doc(description: str) -> dict[str, str]:
    """Field metadata: `field(default=..., metadata=doc("what it means"))`."""
    return {"description": description}
