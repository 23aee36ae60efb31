"""Publish a finished run to the Hugging Face Hub: export (weights, remote code, processor, card), then upload.

    python recipes/push.py RUN_DIR --hub_model_id my-user/wrn_16_2-icd-kd-cifar100 [--private] [--dry_run]

The same as ``icd-hf push``; ``--dry_run`` writes ``RUN_DIR/hub_export`` and lists it without touching the
network. If the upload fails (not logged in, offline), the exported folder stays and the error message says how
to push it later.
"""

import sys

from icd_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["push", *sys.argv[1:]]))
