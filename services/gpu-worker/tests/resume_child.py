"""Trains a teacher on digits into a work folder; test_resume.py kills it and runs it again.

Usage: python tests/resume_child.py WORK_DIR RESULT_JSON
"""

import json
import sys
from pathlib import Path

from edgeforge_gpu.data import DatasetSpec, load_dataset
from edgeforge_gpu.steps import teacher
from edgeforge_gpu.training.config import TrainingConfig

EPOCHS = 4
CONFIG = teacher.TeacherConfig(
    architecture="resnet10_w32", training=TrainingConfig(epochs=EPOCHS, learning_rate=0.05)
)


def main() -> None:
    work, result = Path(sys.argv[1]), Path(sys.argv[2])
    prepared = teacher.run(
        CONFIG, load_dataset(DatasetSpec("digits")), None, work, "resume-test", lambda p: None
    )
    assert prepared.fit is not None
    result.write_text(
        json.dumps(
            {
                "resumed_from_epoch": prepared.fit.resumed_from_epoch,
                "epochs": [record.epoch for record in prepared.fit.history],
                "first_epoch_seconds": prepared.fit.history[0].seconds,
                "test_accuracy": prepared.test_accuracy,
            }
        )
    )


if __name__ == "__main__":
    main()
