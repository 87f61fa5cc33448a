"""Train Panoptic-DeepLab.

    python -m paddle.distributed.launch train.py --config configs/panoptic_deeplab/<cfg>.yml \
        --do_eval --use_vdl --save_interval 5000 --save_dir output
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from paddleseg_ext.core.cli import run_cli  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train Panoptic-DeepLab (PaddleSeg extension).")
    p.add_argument("--config", required=True, help="YAML config file")
    p.add_argument("--iters", type=int, default=None, help="total iterations (overrides the config)")
    p.add_argument("--batch_size", type=int, default=None, help="images per GPU/process (overrides the config)")
    p.add_argument("--learning_rate", type=float, default=None, help="base learning rate (overrides the config)")
    p.add_argument("--save_interval", type=int, default=1000, help="save (and evaluate) every N iterations")
    p.add_argument("--save_dir", default="./output", help="where checkpoints and logs go")
    p.add_argument("--resume_model", default=None,
                   help="checkpoint folder (iter_N) or save_dir (resumes from its newest checkpoint)")
    p.add_argument("--keep_checkpoint_max", type=int, default=5, help="number of iter_N checkpoints kept")
    p.add_argument("--num_workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--do_eval", action="store_true", help="evaluate at each save and keep the best model by PQ")
    p.add_argument("--log_iters", type=int, default=10, help="log every N iterations")
    p.add_argument("--use_vdl", action="store_true", help="write VisualDL logs to <save_dir>/vdl_log")
    p.add_argument("--seed", type=int, default=None, help="random seed (data order, augmentation, init)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"], help="mixed precision")
    p.add_argument("--amp_level", default="O1", choices=["O1", "O2"], help="AMP level with fp16/bf16")
    p.add_argument("--device", default=None, choices=["cpu", "gpu"], help="default: gpu when available")
    p.add_argument("--max_eval_images", type=int, default=None, help="evaluate on the first N val images only")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from paddleseg_ext.core.train import train

    train(args.config, iters=args.iters, batch_size=args.batch_size, learning_rate=args.learning_rate,
          save_interval=args.save_interval, save_dir=args.save_dir, resume_model=args.resume_model,
          keep_checkpoint_max=args.keep_checkpoint_max, num_workers=args.num_workers, do_eval=args.do_eval,
          log_iters=args.log_iters, use_vdl=args.use_vdl, seed=args.seed, precision=args.precision,
          amp_level=args.amp_level, device=args.device, max_eval_images=args.max_eval_images)


if __name__ == "__main__":
    sys.exit(run_cli(main))
