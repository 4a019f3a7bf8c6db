"""The model work, one module per step, each with a typed config and one `run` function:
teacher, distill, export, variants. Activities call them; so does the benchmark."""
