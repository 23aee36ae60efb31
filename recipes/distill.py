#!/usr/bin/env python
"""Distil a student from a trained teacher with any registered method.

    accelerate launch recipes/distill.py --config recipes/configs/pairs/wrn_40_2__wrn_16_2.yaml --method icd+kd
    python recipes/distill.py --config ... --training.num_train_epochs 1 --max_train_samples 512

Every config field can be overridden (``--field value``, ``--training.field value``); see
``icd_hf.config.ExperimentConfig``. Add ``--push_to_hub --hub_model_id org/name`` to publish the student, and
``--onnx [--int8]`` to export it with ``model.onnx`` (and ``model_int8.onnx``), verified and measured, to
``<output_dir>/hub_export`` (the folder that is pushed), as ``icd-hf export RUN --out DIR --onnx --int8`` does.
"""

import sys

from icd_hf.cli_utils import run_from_argv

if __name__ == "__main__":
    sys.exit(run_from_argv(sys.argv[1:], prog="distill.py"))
