"""edgeforge's gpu worker: the model work of a rollout, served as Temporal activities."""

TASK_QUEUE = "edgeforge-gpu"
