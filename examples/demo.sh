#!/usr/bin/env bash
# The whole muses job, end to end, on the bundled Met demo collection (examples/met-demo).
# Run through `make demo`, which creates .venv first. Output: demo-project/ (safe to delete).
set -euo pipefail
cd "$(dirname "$0")/.."
muses() { .venv/bin/muses "$@"; }
export MUSES_PROJECT="$PWD/demo-project"
EPOCHS="${DEMO_EPOCHS:-50}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. project folder"
muses init "$MUSES_PROJECT"
cp examples/definitions.toml "$MUSES_PROJECT/definitions.toml"

step "2. import the catalog export (re-running updates, never duplicates)"
muses import examples/met-demo/records.jsonl --preset met-scrapi

step "3. ML-size images and image checks"
muses generate-images
muses stats

step "4. naive labels -> dataset + labeling report"
muses export-classification-data --exporter naive --seed 0

step "5. train the classifier: a new head on the pretrained network ($EPOCHS epochs)"
muses train-model --model-name naive --epochs "$EPOCHS" --plot-performance --seed 0

step "6. evaluation on the held-out test split"
muses evaluate

step "7. records whose catalog label looks wrong"
muses label-issues

step "8. classify the whole collection (ONNX Runtime: train-model wrote models/naive.onnx) and lay it out by look"
muses classify
muses map

step "9. predict new photos (one object, two photos averaged)"
muses predict examples/met-demo/images/10512_83.3.jpg examples/met-demo/images/12864_ap41.35.2.jpg --top-k 3

step "10. objects that look like a bust in the collection"
muses similar --item 10512

step "done"
cat <<MSG
Look at:
  $MUSES_PROJECT/datasets/naive/report.html     labeling report
  $MUSES_PROJECT/plots/                         training curves, confusion matrix, galleries
Browse the collection, see the map, upload a photo, review labels:
  MUSES_PROJECT=$MUSES_PROJECT .venv/bin/muses serve --allow-writes --reviewer "your name"
  # then open http://127.0.0.1:8000 (/items, /map, /review)
MSG
