"""Worker for test_distributed.py: one tiny distillation, launched with 1 or 2 CPU processes.

    accelerate launch --multi_gpu --num_processes 2 tests/dist_worker.py OUT_DIR METHOD PER_DEVICE_BATCH

METHOD ``ensemble:<method>`` distils from two teachers of different families (resnet8 and wrn_16_1).
"""

import json
import sys
from pathlib import Path

import safetensors.torch
import torch
from trainer_helpers import ClassBlobs, tiny_args, tiny_pair

from icd_hf.models import create_model
from icd_hf.trainer import DistillationTrainer


def main(out_dir: str, method: str, batch_size: int) -> None:
    student, teacher = tiny_pair(seed=0)
    if method.startswith("ensemble:"):
        method = method.removeprefix("ensemble:")
        teacher = [teacher, create_model("wrn_16_1", num_classes=4)]
    overrides = {"crd": {"num_data": 128, "nce_k": 64}} if "crd" in method else {}
    args = tiny_args(
        out_dir,
        max_steps=-1,
        num_train_epochs=3,
        per_device_train_batch_size=batch_size,
        learning_rate=0.02,
        logging_steps=2,
        eval_strategy="no",
    )
    trainer = DistillationTrainer(
        model=student,
        teacher=teacher,
        method=method,
        loss_overrides=overrides,
        args=args,
        train_dataset=ClassBlobs(n=128),
        eval_dataset=ClassBlobs(n=64, seed=1),
    )
    trainer.train()
    metrics = trainer.evaluate()
    rank = trainer.args.process_index
    state = {k: v.contiguous() for k, v in trainer.distiller.distillation_state_dict().items()}
    safetensors.torch.save_file(state, str(Path(out_dir) / f"state_rank{rank}.safetensors"))
    if rank == 0:
        (Path(out_dir) / "metrics.json").write_text(
            json.dumps({**metrics, "world_size": trainer.args.world_size, "steps": trainer.state.global_step})
        )


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
