"""PyTorch training: the loop, its checkpoints, and the objectives it minimises."""
