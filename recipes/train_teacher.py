#!/usr/bin/env python
"""Train a teacher (plain cross-entropy) with the same recipe machinery as the students.

    accelerate launch recipes/train_teacher.py --config recipes/configs/teachers/wrn_40_2.yaml

The trained model lands in ``<output_dir>/student`` (save_pretrained layout): point a distillation
config's ``teacher_checkpoint`` at it.
"""

import sys

from icd_hf.cli_utils import run_from_argv

if __name__ == "__main__":
    sys.exit(run_from_argv(sys.argv[1:], prog="train_teacher.py", force_method="vanilla"))
