#!/usr/bin/env bash
# Ensemble distillation under the CPU-budget protocol (recipes/configs/cpu_budget/): the second teacher (wrn_16_2,
# 6 epochs like resnet56), the teachers' and their ensemble's test accuracy, then resnet20 with ICD+KD from resnet56
# alone, wrn_16_2 alone and both. Resumable like benchmarks/cpu_budget.sh (whose publish/collect conventions it
# follows): finished steps are skipped, results are kept under benchmarks/results/ and committed to COMMIT_TO.
#   DATA=/data/cifar-100-python bash benchmarks/ensemble_cpu_budget.sh
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
cd "$(dirname "$0")/.."
DATA=${DATA:?set DATA to the folder holding the cifar-100-python pickles}
COMMIT_TO=${COMMIT_TO:-}
CFG=recipes/configs/cpu_budget
PROTOCOL_KEEP=benchmarks/results/cifar100_cpu_budget
KEEP=benchmarks/results/ensemble_cpu_budget
TEACHER=benchmarks/teachers/wrn_16_2-cpu-budget
RUNS=runs/cpu_budget
mkdir -p "$KEEP" "$PROTOCOL_KEEP"

PUBLISH_SUBJECT="ensemble cpu budget"
. benchmarks/publish.sh

collect() {  # both tables: the resnet56 -> resnet20 ICD+KD run is also a row of the protocol's own table
  local repo=${COMMIT_TO:-.}
  local files="README.md benchmarks/results/ensemble_cpu_budget.json benchmarks/results/cifar100_cpu_budget.json"
  (cd "$repo" && PYTHONPATH="$PWD" python benchmarks/cpu_budget.py collect > /dev/null &&
    PYTHONPATH="$PWD" python benchmarks/ensemble_cpu_budget.py collect > /dev/null &&
    git add -- $files && git commit -q -m "ensemble cpu budget: summaries and README tables" -- $files) ||
    echo "collect failed: run python benchmarks/{cpu_budget,ensemble_cpu_budget}.py collect in $repo" >&2
}

if [ ! -f "$TEACHER/model.safetensors" ]; then
  publish_teacher $CFG/teacher_wrn_16_2.yaml "$RUNS/teachers/wrn_16_2" "$TEACHER" "$KEEP/teacher_wrn_16_2.json"
fi

if [ ! -f "$KEEP/teachers_eval.json" ]; then
  python benchmarks/ensemble_cpu_budget.py eval-teachers --data_dir "$DATA"
  publish "$KEEP/teachers_eval.json"
  collect < /dev/null
fi

# config  run folder  kept file
while read -r config run kept; do
  [ -f "$kept" ] && continue
  [ -f "$RUNS/$run/results.json" ] ||
    python recipes/distill.py --config "$CFG/$config" --data_dir "$DATA" --output_dir "$RUNS/$run" < /dev/null
  cp "$RUNS/$run/results.json" "$kept"
  publish "$kept" < /dev/null
  collect < /dev/null
done <<RUNS_TABLE
resnet56__resnet20.yaml resnet56__resnet20/icd_kd $PROTOCOL_KEEP/resnet20_icd_kd.json
wrn_16_2__resnet20.yaml wrn_16_2__resnet20/icd_kd $KEEP/resnet20_icd_kd_from_wrn_16_2.json
ensemble__resnet20.yaml ensemble__resnet20/icd_kd $KEEP/resnet20_icd_kd_from_ensemble.json
RUNS_TABLE
