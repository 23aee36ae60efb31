#!/usr/bin/env bash
# The CPU-budget protocol end to end (recipes/configs/cpu_budget/): the resnet56 teacher, the CPU throughput
# benchmark, one resnet20 student per method, then the fp32-vs-bf16 accuracy check. Resumable: a finished step is
# skipped, an interrupted run resumes from its last checkpoint. Each finished step's results are copied to
# benchmarks/ (and committed when COMMIT_TO is a git checkout), so a stop loses at most one step's progress.
#   DATA=/data/cifar-100-python bash benchmarks/cpu_budget.sh
set -euo pipefail
# Waiting OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning threads make a run 10x slower.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
cd "$(dirname "$0")/.."
DATA=${DATA:?set DATA to the folder holding the cifar-100-python pickles}
COMMIT_TO=${COMMIT_TO:-}
METHODS=${METHODS:-vanilla kd icd+kd icd dkd crd+kd}
CFG=recipes/configs/cpu_budget
KEEP=benchmarks/results/cifar100_cpu_budget
TEACHER=benchmarks/teachers/resnet56-cpu-budget
RUNS=runs/cpu_budget
mkdir -p "$KEEP"

PUBLISH_SUBJECT="cpu budget"
. benchmarks/publish.sh

collect() {  # regenerate the summary JSON and the README table from the kept runs, and commit them
  local repo=${COMMIT_TO:-.}
  (cd "$repo" && PYTHONPATH="$PWD" python benchmarks/cpu_budget.py collect > /dev/null &&
    git add -- README.md benchmarks/results/cifar100_cpu_budget.json &&
    git commit -q -m "cpu budget: summary and README table" -- README.md benchmarks/results/cifar100_cpu_budget.json) ||
    echo "collect failed: run python benchmarks/cpu_budget.py collect in $repo" >&2
}

if [ ! -f "$TEACHER/model.safetensors" ]; then
  publish_teacher $CFG/teacher_resnet56.yaml "$RUNS/teachers/resnet56" "$TEACHER" "$KEEP/teacher_resnet56.json"
  collect
fi

THROUGHPUT=benchmarks/results/throughput_cpu.json
if [ "${SKIP_THROUGHPUT:-0}" != 1 ] && ! grep -q '"pairs": "wrn_40_2:wrn_16_2,resnet56:resnet20"' "$THROUGHPUT" 2>/dev/null; then
  python benchmarks/throughput.py --device cpu --data cifar100 --data_dir "$DATA" \
    --pairs wrn_40_2:wrn_16_2,resnet56:resnet20 --methods kd,icd+kd,crd+kd --paths a,b,c \
    --steps 8 --warmup 3 --repeats 2 --num_workers 2 --cost_split --json "$THROUGHPUT"
  publish "$THROUGHPUT"
  (cd "${COMMIT_TO:-.}" && PYTHONPATH="$PWD" python benchmarks/throughput.py --render_readme > /dev/null &&
    git commit -q -m "README: CPU throughput block from $THROUGHPUT" -- README.md) ||
    echo "README render failed: run python benchmarks/throughput.py --render_readme" >&2
fi

for method in $METHODS; do
  name=${method//+/_}
  [ -f "$KEEP/resnet20_$name.json" ] && continue
  python recipes/distill.py --config $CFG/resnet56__resnet20.yaml --method "$method" --data_dir "$DATA" \
    --output_dir "$RUNS/resnet56__resnet20/$name"
  cp "$RUNS/resnet56__resnet20/$name/results.json" "$KEEP/resnet20_$name.json"
  publish "$KEEP/resnet20_$name.json"
  collect
done

for precision in fp32 bf16; do
  [ -f "$KEEP/bf16_check_$precision.json" ] && continue
  python recipes/train_teacher.py --config $CFG/bf16_check_resnet20.yaml --data_dir "$DATA" \
    --training.bf16 "$([ $precision = bf16 ] && echo true || echo false)" --output_dir "$RUNS/bf16_check/$precision"
  cp "$RUNS/bf16_check/$precision/results.json" "$KEEP/bf16_check_$precision.json"
  publish "$KEEP/bf16_check_$precision.json"
  collect
done
