#!/usr/bin/env bash
# The CPU-budget protocol end to end (recipes/configs/cpu_budget/): the resnet56 teacher, then one resnet20 student
# per method. Resumable: a finished step is skipped, an interrupted run resumes from its last checkpoint. Each
# finished run's results.json is copied to benchmarks/results/cifar100_cpu_budget/ (and committed when
# COMMIT_TO is a git checkout), so a stop loses at most one run's progress.
#   DATA=/data/cifar-100-python bash benchmarks/cpu_budget.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:?set DATA to the folder holding the cifar-100-python pickles}
COMMIT_TO=${COMMIT_TO:-}
METHODS=${METHODS:-vanilla kd icd+kd icd dkd crd+kd}
CFG=recipes/configs/cpu_budget
KEEP=benchmarks/results/cifar100_cpu_budget
TEACHER=benchmarks/teachers/resnet56-cpu-budget
mkdir -p "$KEEP"

publish() {  # publish PATH... : copy into COMMIT_TO and commit there
  [ -n "$COMMIT_TO" ] || return 0
  for p in "$@"; do mkdir -p "$COMMIT_TO/$(dirname "$p")"; cp -r "$p" "$COMMIT_TO/$(dirname "$p")/"; done
  for _ in 1 2 3 4 5; do
    (cd "$COMMIT_TO" && git add -- "$@" && git commit -q -m "cpu budget: $1" -- "$@") && return 0
    sleep 5
  done
  echo "commit of $* failed" >&2
}

if [ ! -f "$TEACHER/model.safetensors" ]; then
  python recipes/train_teacher.py --config $CFG/teacher_resnet56.yaml --data_dir "$DATA"
  python benchmarks/cpu_budget.py export-teacher runs/cpu_budget/teachers/resnet56 "$TEACHER"
  cp runs/cpu_budget/teachers/resnet56/results.json "$KEEP/teacher_resnet56.json"
  publish "$TEACHER" "$KEEP/teacher_resnet56.json"
fi
for method in $METHODS; do
  name=${method//+/_}
  [ -f "$KEEP/resnet20_$name.json" ] && continue
  python recipes/distill.py --config $CFG/resnet56__resnet20.yaml --method "$method" --data_dir "$DATA" \
    --output_dir "runs/cpu_budget/resnet56__resnet20/$name"
  cp "runs/cpu_budget/resnet56__resnet20/$name/results.json" "$KEEP/resnet20_$name.json"
  publish "$KEEP/resnet20_$name.json"
done
