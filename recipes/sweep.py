#!/usr/bin/env python
"""Run a list of methods on one teacher->student pair and collect the results into one table.

    accelerate launch recipes/sweep.py --config recipes/configs/pairs/wrn_40_2__wrn_16_2.yaml \
        --methods vanilla,kd,fitnet,at,sp,cc,vid,rkd,pkt,ab,ft,fsp,nst,crd,crd+kd,icd,icd+kd

Each method runs in ``<output_dir>/<method>`` (resumable: finished methods are skipped, interrupted ones
resume from their last checkpoint); ``<output_dir>/sweep.json`` and ``sweep.md`` hold the table. Every other
``--field value`` overrides the config for all methods. With ``--fast_path true --teacher_cache DIR`` the first
method whose losses read only the teacher's logits and pooled feature computes the teacher's outputs once and
writes them to ``DIR``; the later ones read them (the others run their teacher live); the table says which.
"""

import sys

from icd_hf.sweep import sweep_from_argv

if __name__ == "__main__":
    sys.exit(sweep_from_argv(sys.argv[1:]))
