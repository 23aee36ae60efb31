# Sourced by the resumable CPU-budget runners (cpu_budget.sh, ensemble_cpu_budget.sh): keep finished results and,
# when COMMIT_TO is a git checkout, copy them there and commit them, so a stopped session loses at most one step.
# Needs COMMIT_TO (may be empty), DATA and PUBLISH_SUBJECT (the commit subject's prefix).

publish() {  # publish PATH... : copy into COMMIT_TO and commit there
  [ -n "$COMMIT_TO" ] || return 0
  for p in "$@"; do mkdir -p "$COMMIT_TO/$(dirname "$p")"; cp -r "$p" "$COMMIT_TO/$(dirname "$p")/"; done
  for _ in 1 2 3 4 5; do
    (cd "$COMMIT_TO" && git add -- "$@" && git commit -q -m "$PUBLISH_SUBJECT: $1" -- "$@") && return 0
    sleep 5
  done
  echo "commit of $* failed" >&2
}

publish_teacher() {  # publish_teacher CONFIG RUN_DIR TEACHER_DIR KEPT_FILE : train (or resume), export fp16, publish
  [ -f "$2/results.json" ] || python recipes/train_teacher.py --config "$1" --data_dir "$DATA"
  python benchmarks/cpu_budget.py export-teacher "$2" "$3"
  cp "$2/results.json" "$4"
  publish "$3" "$4"
}
