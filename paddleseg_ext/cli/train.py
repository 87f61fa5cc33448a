"""`train.py`: train a panoptic model from a config (single process or paddle.distributed.launch)."""
import dataclasses

from ..core.train import TrainOptions, train
from .common import add_device_arg, console_entry, parser

USAGE = """example:
  python -m paddle.distributed.launch train.py --config configs/panoptic_deeplab/<cfg>.yml \\
      --do_eval --use_vdl --save_interval 5000 --save_dir output"""


def build_parser():
    p = parser("Train a panoptic segmentation model (Panoptic-DeepLab, PanopticFCN) from a PaddleSeg config.", USAGE)
    p.add_argument("--config", required=True, help="YAML config file")
    p.add_argument("--iters", type=int, default=None, help="total iterations (default: the config's `iters`)")
    p.add_argument("--batch_size", type=int, default=None,
                   help="images per GPU/process (default: the config's `batch_size`)")
    p.add_argument("--learning_rate", type=float, default=None,
                   help="base learning rate (default: the config's lr_scheduler.learning_rate)")
    p.add_argument("--save_interval", type=int, default=1000, help="save (and evaluate) every N iterations "
                   "(default 1000; the last iteration is always saved)")
    p.add_argument("--save_dir", default="./output", help="where checkpoints and logs go (default ./output)")
    p.add_argument("--resume_model", default=None,
                   help="checkpoint folder (iter_N) or save_dir (resumes from its newest checkpoint)")
    p.add_argument("--keep_checkpoint_max", type=int, default=5, help="number of iter_N checkpoints kept (default 5)")
    p.add_argument("--num_workers", type=int, default=0, help="data loader worker processes (default 0)")
    p.add_argument("--do_eval", action="store_true", help="evaluate at each save and keep the best model by PQ")
    p.add_argument("--log_iters", type=int, default=10, help="log every N iterations (default 10)")
    p.add_argument("--use_vdl", action="store_true", help="write VisualDL logs to <save_dir>/vdl_log")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed of data order, augmentation and initialisation (default: the config's "
                        "`seed`, else 0)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"],
                   help="mixed precision on GPUs (default fp32; fp16/bf16 are refused on the CPU)")
    p.add_argument("--amp_level", default="O1", choices=["O1", "O2"], help="AMP level with fp16/bf16 (default O1)")
    add_device_arg(p)
    p.add_argument("--max_eval_images", type=int, default=None,
                   help="with --do_eval: evaluate on the first N val images only (default: all)")
    return p


def main(argv=None):
    args = vars(build_parser().parse_args(argv))
    train(TrainOptions(**{f.name: args[f.name] for f in dataclasses.fields(TrainOptions)}))
    return 0


#: `console_scripts` entry point (setup.py)
console_main = console_entry(main)
