"""Quantized variants, built with ONNX Runtime's quantization tools, one pass module per kind."""
