"""Everything a run leaves behind and what decides about it, one module per concern:

- ``env``: where the run executes (git commit, device and CPU, usable workers);
- ``record``: ``results.json``, one ``RunResults`` record serialised from its own fields;
- ``policy``: one declaration per training argument (defines the run / bookkeeping / secret) and secret masking;
- ``folders``: run-folder names, checkpoints, the run record ``icd_run.json``, clean-up;
- ``resume``: the fingerprint of a run and whether a folder may be resumed.

Every name below is importable from ``icd_hf.runs``.
"""

from .env import available_cpus, cpu_model_name, device_name, effective_num_workers, git_commit
from .folders import (
    CHECKPOINT_RE,
    RUN_RECORD_NAME,
    RUNS_ROOT,
    TEACHERS_DIRNAME,
    clear_run_dir,
    default_output_dir,
    find_resumable_checkpoint,
    method_dirname,
    pair_dirname,
    read_run_record,
    write_run_record,
)
from .policy import (
    BOOKKEEPING_TRAINING_KEYS,
    KeyRole,
    defines_the_run,
    is_secret_key,
    mask_command,
    mask_secrets,
    training_key_role,
)
from .record import (
    EXPORT_DIRNAME,
    RESULTS_NAME,
    RESULTS_VERSION,
    ModelRecord,
    RunMetrics,
    RunResults,
    RunResultsError,
    TeacherRecord,
    find_run_results,
    resolve_model_dir,
)
from .resume import (
    ResumePlan,
    RunMismatchError,
    fingerprint_diff,
    mismatch_message,
    normalise_resume,
    plan_resume,
    run_fingerprint,
    weights_identity,
)

__all__ = [
    "BOOKKEEPING_TRAINING_KEYS", "CHECKPOINT_RE", "EXPORT_DIRNAME", "RESULTS_NAME", "RESULTS_VERSION",
    "RUNS_ROOT", "RUN_RECORD_NAME", "TEACHERS_DIRNAME", "KeyRole", "ModelRecord", "ResumePlan", "RunMetrics",
    "RunMismatchError", "RunResults", "RunResultsError", "TeacherRecord", "available_cpus", "clear_run_dir",
    "cpu_model_name", "default_output_dir", "defines_the_run", "device_name", "effective_num_workers",
    "find_resumable_checkpoint", "find_run_results", "fingerprint_diff", "git_commit", "is_secret_key",
    "mask_command", "mask_secrets", "method_dirname", "mismatch_message", "normalise_resume", "pair_dirname",
    "plan_resume", "read_run_record", "resolve_model_dir", "run_fingerprint", "training_key_role",
    "weights_identity", "write_run_record",
]
