#!/usr/bin/env bash
# The recipe of the shipped student (vla_ros/models/MODEL_CARD.md), from a set-up checkout:
#   scripts/train_default_model.sh [DATA_DIR]      (default: data/)
# 1. records expert demonstrations (training seeds, training paraphrases),
# 2. trains the student (vla_ros/config/train_student.yaml),
# 3. records held-out bags and scores the model open-loop,
# 4. drives it closed-loop on held-out seeds and the held-out paraphrases,
# 5. exports ONNX and prints the SHA-256 pins for vla_ros/config/model.yaml.
# Every step resumes: a re-run skips recorded episodes and continues training from its last
# checkpoint. Needs about 60 GB of disk (bags and their cache) and, on 2 CPU cores, ~2 hours.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
vla="$root/.venv/bin/vla"
data=$(mkdir -p "${1:-data}" && cd "${1:-data}" && pwd)

record() {  # scenario episodes seed_start split out_dir
  "$vla" sim record --scenario "$1" --episodes "$2" --seed-start "$3" --split "$4" \
    --out "$5/$1" --no-progress
}

for item in highway:5 merge:5 roundabout:5 intersection:4 exit:4 \
  cut_in:3 hard_braking_lead:3 stalled_vehicle:3 slow_truck:3 dense_traffic:3 \
  pull_over:3 stop_behind_lead:3; do
  record "${item%%:*}" "${item##*:}" 0 train "$data/bags"
done

cp "$root/vla_ros/config/train_student.yaml" "$data/train_student.yaml"
(cd "$data" && "$vla" train train_student.yaml)

for scenario in highway merge roundabout intersection exit; do
  record "$scenario" 1 100 test "$data/held_out"
done
"$vla" eval-bags "$data"/held_out/*/*_seed* --weights "$data/student/vla-student.safetensors" \
  --cache "$data/student/cache" --json "$data/open_loop.json" --no-progress

for monitor in enforce log-only; do
  "$vla" sim eval --driver pipeline --weights "$data/student/vla-student.safetensors" \
    --scenarios nominal --episodes 5 --seed-start 100 --split test --monitor "$monitor" \
    --map-prior off --json "$data/closed_loop_$monitor.json" --report "$data/report_$monitor"
done

"$vla" export "$data/student/vla-student.safetensors" --onnx "$data/student/vla-student.onnx"
