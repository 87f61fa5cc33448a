#!/usr/bin/env bash
# The demo: set up .venv (if needed), generate the demo dataset, train the tiny CPU config with
# paddle.distributed.launch (2 CPU processes), evaluate it (PQ/SQ/RQ, mIoU, AP) and write prediction
# pictures. Re-running reuses what exists (dataset, finished training). Set DEMO_ITERS to change the length.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT/contrib/PanopticDeepLab"

CFG=configs/panoptic_deeplab/panoptic_deeplab_demo_cpu.yml
DATA=data/demo_cityscapes
OUT=${DEMO_OUT:-output/demo}
ITERS=${DEMO_ITERS:-}
NPROC=${DEMO_NPROC:-2}
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

if [ ! -f "$DATA/gtFine/cityscapes_panoptic_val_trainId.json" ]; then
    python ../../tools/make_demo_dataset.py --out "$DATA"
else
    echo "[demo] reusing dataset $DATA"
fi

ITER_ARGS=()
[ -n "$ITERS" ] && ITER_ARGS=(--iters "$ITERS")
FINAL_ITERS="${ITERS:-$(python -c "import yaml,sys; print(yaml.safe_load(open('$CFG'))['iters'])")}"
if [ ! -f "$OUT/iter_${FINAL_ITERS}/model.pdparams" ]; then
    RESUME=()
    if ls -d "$OUT"/iter_* >/dev/null 2>&1; then RESUME=(--resume_model "$OUT"); fi
    python -m paddle.distributed.launch --nproc_per_node "$NPROC" --log_dir "$OUT/launch_log" \
        train.py --config "$CFG" "${ITER_ARGS[@]}" --do_eval --use_vdl --save_interval "$FINAL_ITERS" \
        --save_dir "$OUT" --device cpu --log_iters 20 "${RESUME[@]}"
else
    echo "[demo] reusing trained model $OUT/iter_${FINAL_ITERS}"
fi

python val.py --config "$CFG" --model_path "$OUT/iter_${FINAL_ITERS}/model.pdparams" --device cpu \
    --results_file "$OUT/eval_results.json"

python predict.py --config "$CFG" --model_path "$OUT/iter_${FINAL_ITERS}/model.pdparams" \
    --image_path "$DATA/leftImg8bit/val" --save_dir "$OUT/result" --device cpu

echo
echo "[demo] done."
echo "  prediction pictures: $(pwd)/$OUT/result"
echo "  metrics:             $(pwd)/$OUT/eval_results.json"
echo "  VisualDL log:        $(pwd)/$OUT/vdl_log"
echo "  open VisualDL with:  $ROOT/.venv/bin/visualdl --logdir $(pwd)/$OUT/vdl_log --port 8040"
