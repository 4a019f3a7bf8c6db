"""Measuring ONNX models: accuracy, agreement, size, op mix, reference latency."""
