"""Export a static inference model: the pipeline's `InferenceModel` (network + the model's
post-processing), traced with ``paddle.jit.to_static`` and saved with ``paddle.jit.save``; with
``format="onnx"`` the saved program is then converted to ONNX by paddle2onnx.

Written to `save_dir`:
- format ``paddle`` (default): the model (``model.json`` with Paddle 3's PIR, ``model.pdmodel`` with the
  old program format) + ``model.pdiparams``;
- format ``onnx``: ``model.onnx`` (network + post-processing, dynamic height and width);
- format ``all``: both, so that deploy/python/infer.py can run either backend from one folder;
and ``deploy.yaml`` (val transforms, input/output names, post-processing settings, class names and
palette) read by the deploy runners (`pipeline.deployed`), which run the saved graph after the
pipeline's own `preprocess`: the same path as val and predict.

Model inputs: ``x`` float32 [1, 3, H, W] (after the val transforms), ``valid_hw`` int64 [2] (the
image's region of x) and ``ori_hw`` int64 [2] (the image's size before the transforms). Outputs
(`models.base.INFERENCE_OUTPUTS`), at ``ori_hw``: ``panoptic`` int64 [h, w], ``semantic`` int64 [h, w],
``instance_ids`` int64 [M], ``instance_scores`` float32 [M, S]. The ONNX graph has the same names.
"""
import copy
import importlib.util
import os
import shutil
import subprocess
import sys

import numpy as np
import paddle
import yaml

from ..compat import PADDLE_VERSION
from ..models.base import INFERENCE_OUTPUTS
from ..pipeline import InferenceModel
from ..postprocess.panoptic_ops import onnx_compatible
from ..runtime import build_model, dataset_metadata, load_config, postprocess_params, setup_device
from ..utils import UserInputError, check_writable_dir, log

INPUT_NAMES = ("x", "valid_hw", "ori_hw")
OUTPUT_NAMES = INFERENCE_OUTPUTS
FORMATS = ("paddle", "onnx", "all")
#: ONNX opset asked of paddle2onnx (it raises it where an op needs a newer one); 17 has every op the
#: post-processing uses and runs on onnxruntime >= 1.13
ONNX_OPSET = 17
ONNX_FILE = "model.onnx"
ONNX_INSTALL = "pip install -e .[onnx]  (or: pip install paddle2onnx==2.1.0 onnxruntime)"

# paddle2onnx aborts the whole process (SIGABRT from C++) on an op it cannot convert, so the
# conversion runs in a child process; optimize_tool "None": its default (polygraphy) would try to
# install packages at run time, and onnxruntime optimises the graph itself when it loads it.
_CONVERT = ("import sys, paddle2onnx; paddle2onnx.export(sys.argv[1], sys.argv[2], save_file=sys.argv[3], "
            "opset_version=int(sys.argv[4]), enable_onnx_checker=True, optimize_tool='None')")

# Paddle (PIR) op names whose paddle2onnx converter is registered under the old operator name
# (Paddle's op_compat.yaml); used only to name the op that stopped a failed conversion.
_OLD_OP_NAMES = {
    "add": "elementwise_add", "subtract": "elementwise_sub", "multiply": "elementwise_mul",
    "divide": "elementwise_div", "maximum": "elementwise_max", "minimum": "elementwise_min",
    "floor_divide": "elementwise_floordiv", "remainder": "elementwise_mod", "elementwise_pow": "pow",
    "matmul": "matmul_v2", "hardswish": "hard_swish", "hardsigmoid": "hard_sigmoid", "argmax": "arg_max",
    "argmin": "arg_min", "flatten": "flatten_contiguous_range", "unsqueeze": "unsqueeze2", "expand": "expand_v2",
    "nonzero": "where_index", "topk": "top_k_v2", "arange": "range", "max": "reduce_max", "min": "reduce_min",
    "mean": "reduce_mean", "prod": "reduce_prod", "all": "reduce_all", "any": "reduce_any",
    "squeeze2": "squeeze", "reshape2": "reshape", "transpose2": "transpose", "bilinear_interp_v2": "bilinear_interp",
    "nearest_interp_v2": "nearest_interp", "fill_constant": "full", "lookup_table_v2": "embedding",
    "batch_norm_": "batch_norm", "relu_": "relu",
}
# graph plumbing and control flow, not converted op by op
_STRUCTURAL_OPS = {"data", "feed", "fetch", "while", "if", "yield", "parameter", "shadow_output", "combine",
                   "split", "slice", "constant", "increment", "increment_", "select_input", "has_elements"}


def parse_input_shape(shape):
    """[N, C, H, W] list (None: [1, 3, -1, -1]); N must be 1, C 3, -1 means any size."""
    if shape is None:
        return [1, 3, -1, -1]
    shape = [int(s) for s in shape]
    if len(shape) != 4:
        raise UserInputError("--input_shape needs 4 numbers N C H W, got {}".format(shape))
    if shape[0] != 1:
        raise UserInputError("--input_shape: N must be 1 (the post-processing runs on one image at a time), "
                             "got {}".format(shape[0]))
    if shape[1] != 3:
        raise UserInputError("--input_shape: C must be 3 (RGB), got {}".format(shape[1]))
    if any(s == 0 or s < -1 for s in shape[2:]):
        raise UserInputError("--input_shape: H and W must be positive or -1, got {}".format(shape[2:]))
    return shape


def check_onnx_tools():
    """Raise a one-line UserInputError when paddle2onnx, onnx or onnxruntime is not installed, or when
    this Paddle is older than paddle2onnx 2.1 accepts (3.0; it refuses to import on 2.6)."""
    missing = [m for m in ("paddle2onnx", "onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserInputError("--format onnx needs {} (not installed): {}".format(", ".join(missing), ONNX_INSTALL))
    if PADDLE_VERSION < (3, 0):
        raise UserInputError("--format onnx needs PaddlePaddle >= 3.0 (paddle2onnx 2.1 converts Paddle 3 programs; "
                             "installed: {}); export with --format paddle".format(paddle.__version__))


def _model_file(save_dir, prefix):
    for ext in (".json", ".pdmodel"):
        if os.path.isfile(os.path.join(save_dir, prefix + ext)):
            return prefix + ext
    raise RuntimeError("paddle.jit.save wrote no {0}.json / {0}.pdmodel in {1}".format(prefix, save_dir))


def _program_ops(prefix, with_attrs=False):
    """(op name, layer path) of every op of the saved program `prefix` (sub-blocks included, in program
    order); the layer path is PIR's ``struct_name`` attribute ('' in the old program format). With
    `with_attrs`, (op name, layer path, attribute dict) (PIR only)."""
    if os.path.isfile(prefix + ".json"):
        found = []

        def walk(block):
            for op in block.ops:
                attrs = op.attrs()
                item = (op.name().split(".", 1)[-1], str(attrs.get("struct_name", "")))
                found.append(item + (attrs,) if with_attrs else item)
                for sub in op.blocks():
                    walk(sub)

        layer = paddle.jit.load(prefix)  # owns the program: kept alive while it is walked
        walk(layer.program().global_block())
        return found
    paddle.enable_static()
    try:
        program = paddle.static.load_inference_model(prefix, paddle.static.Executor(paddle.CPUPlace()))[0]
        return [(op.type, "") for block in program.blocks for op in block.ops]
    finally:
        paddle.disable_static()


def unconvertible_ops(prefix):
    """(op name, layer path) of the ops of the saved program `prefix` that paddle2onnx has no converter
    for, first occurrence of each op name."""
    from paddle2onnx import paddle2onnx_cpp2py_export as p2o

    pir = os.path.isfile(prefix + ".json")
    supported = set(p2o.get_all_supported_operators_pir() if pir else p2o.get_all_supported_operators())
    seen, out = set(), []
    for name, where in _program_ops(prefix):
        base = name[:-1] if name.endswith("_") and name[:-1] in supported else name
        if (name in _STRUCTURAL_OPS or base in supported or _OLD_OP_NAMES.get(name) in supported
                or _OLD_OP_NAMES.get(base) in supported or name in seen):
            continue
        seen.add(name)
        out.append((name, where))
    return out


def _fix_group_norm_epsilon(model, epsilons):
    """paddle2onnx 2.1 writes GroupNorm as InstanceNormalization on a reshape with a garbage epsilon
    (2e-19 instead of the op's 1e-5: the attribute is read with the wrong type), which changes the
    output wherever a group's variance is not far above epsilon. Set the Paddle program's group_norm
    epsilons (`epsilons`, program order) on the InstanceNormalization nodes, which come in the same order."""
    nodes = [n for n in model.graph.node if n.op_type == "InstanceNormalization"]
    if not epsilons:
        return
    if len(nodes) != len(epsilons) and len(set(epsilons)) != 1:
        raise RuntimeError("cannot match {} group_norm ops to {} InstanceNormalization nodes".format(
            len(epsilons), len(nodes)))
    for i, node in enumerate(nodes):
        eps = epsilons[i] if len(nodes) == len(epsilons) else epsilons[0]
        for attr in node.attribute:
            if attr.name == "epsilon":
                attr.f = float(eps)


def _finish_onnx(onnx_path, names, group_norm_epsilons=()):
    """Give the ONNX graph's outputs the export's output names (paddle2onnx keeps Paddle's internal
    variable names) and fix GroupNorm's epsilon (`_fix_group_norm_epsilon`); rewritten in place
    (temporary name, then rename)."""
    import onnx

    model = onnx.load(onnx_path)
    _fix_group_norm_epsilon(model, list(group_norm_epsilons))
    outputs = list(model.graph.output)
    if len(outputs) != len(names):
        raise RuntimeError("the ONNX model has {} outputs, expected {}".format(len(outputs), len(names)))
    rename = {o.name: n for o, n in zip(outputs, names)}
    for node in model.graph.node:
        for i, name in enumerate(node.output):
            if name in rename:
                node.output[i] = rename[name]
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    for o, n in zip(outputs, names):
        o.name = n
    onnx.checker.check_model(model)
    tmp = onnx_path + ".renamed"
    onnx.save(model, tmp)
    os.replace(tmp, onnx_path)


def convert_to_onnx(model_file, params_file, onnx_path, opset=ONNX_OPSET, output_names=OUTPUT_NAMES):
    """paddle2onnx conversion of a saved program to `onnx_path` (written under a temporary name, then
    renamed), outputs renamed to `output_names`.

    Raises:
        UserInputError: one line naming the first op without a converter and its layer, or paddle2onnx's
            last message when it fails otherwise.
    """
    check_onnx_tools()
    tmp = onnx_path + ".tmp"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-c", _CONVERT, model_file, params_file, tmp, str(int(opset))],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if proc.returncode != 0 or not os.path.isfile(tmp) or os.path.getsize(tmp) == 0:
        if os.path.exists(tmp):
            os.remove(tmp)
        bad = unconvertible_ops(os.path.splitext(model_file)[0])
        if bad:
            name, where = bad[0]
            raise UserInputError("cannot export to ONNX: paddle2onnx has no converter for op `{}`{}{}; export with "
                                 "--format paddle".format(name, " in layer " + where if where else "",
                                                          " (also: {})".format(", ".join(n for n, _ in bad[1:]))
                                                          if len(bad) > 1 else ""))
        lines = [ln.strip() for ln in proc.stdout.splitlines() if "rror" in ln] or proc.stdout.strip().splitlines()
        raise UserInputError("cannot export to ONNX: paddle2onnx failed ({}); export with --format paddle".format(
            lines[-1] if lines else "exit code {}".format(proc.returncode)))
    prefix = os.path.splitext(model_file)[0]
    epsilons = [float(a["epsilon"]) for name, _, a in _program_ops(prefix, with_attrs=True) if name == "group_norm"] \
        if model_file.endswith(".json") else []
    _finish_onnx(tmp, list(output_names), epsilons)
    os.replace(tmp, onnx_path)
    return onnx_path


def _save_program(net, spec, folder):
    """Trace `net` for `spec` and save it as `folder`/model.* (paddle.jit.save); returns the program's file name."""
    paddle.jit.save(paddle.jit.to_static(net, input_spec=spec, full_graph=True), os.path.join(folder, "model"),
                    input_spec=spec)
    return _model_file(folder, "model")


def _export_onnx(net, spec, save_dir):
    """Trace `net` with ONNX-convertible ops only, save the program in a folder beside, convert it to
    `save_dir`/ONNX_FILE and remove the folder. Returns ONNX_FILE."""
    work = os.path.join(save_dir, ".paddle_program")
    try:
        with onnx_compatible():
            model_file = _save_program(net, spec, work)
        convert_to_onnx(os.path.join(work, model_file), os.path.join(work, "model.pdiparams"),
                        os.path.join(save_dir, ONNX_FILE))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ONNX_FILE


def export(config, model_path, save_dir, input_shape=None, postprocess=None, verbose=False, format="paddle"):
    """Export the model of `config` with weights `model_path` to `save_dir` (on the CPU).

    Args:
        postprocess (dict): post-processing overrides (None values ignored), frozen into the graph.
        format (str): 'paddle', 'onnx' or 'all' (both).
    Returns:
        dict with the paths of the `model` file, the `params` file, `onnx` (None when not written) and
        `deploy` (deploy.yaml).
    """
    if format not in FORMATS:
        raise UserInputError("--format must be one of {}, got {!r}".format(", ".join(FORMATS), format))
    if format != "paddle":
        check_onnx_tools()
    shape = parse_input_shape(input_shape)
    check_writable_dir(save_dir, "--save_dir")
    setup_device("cpu")
    cfg = load_config(config)
    builder, model = build_model(cfg, config, model_path, verbose=verbose)
    meta = dataset_metadata(cfg, builder, config)
    params = postprocess_params(cfg, postprocess, config)
    net = InferenceModel(model, model.build_postprocess(meta, params))
    net.eval()
    spec = [paddle.static.InputSpec([None if s == -1 else s for s in shape], "float32", INPUT_NAMES[0]),
            paddle.static.InputSpec([2], "int64", INPUT_NAMES[1]),
            paddle.static.InputSpec([2], "int64", INPUT_NAMES[2])]
    # traced twice for "all": the ONNX graph counts with ops paddle2onnx converts, the Paddle one with faster
    # ones (panoptic_ops.onnx_compatible); to_static keeps its program on the layer, so each trace gets its own
    onnx_net = copy.deepcopy(net) if format == "all" else net
    model_file = params_file = onnx_file = None
    # tracing and saving make Paddle report on itself (PIR's "not support input out tensor", "Tensor do not
    # have 'place' interface", 2.6's force_cpu deprecation, "New Executor is Running"): shown with --verbose
    with log.quiet_paddle(verbose):
        if format != "onnx":
            model_file, params_file = _save_program(net, spec, save_dir), "model.pdiparams"
        if format != "paddle":
            onnx_file = _export_onnx(onnx_net, spec, save_dir)

    deploy = {"Deploy": {
        "model": model_file,
        "params": params_file,
        "onnx_model": onnx_file,
        "model_type": type(model).__name__,
        "transforms": list(cfg.val_dataset_cfg.get("transforms", []) or []),
        "input_shape": shape,
        "inputs": list(INPUT_NAMES),
        "outputs": list(OUTPUT_NAMES),
        "score_modes": list(getattr(model, "score_modes", ())),
        "postprocess": params,
        "num_classes": meta.num_classes,
        "thing_ids": list(meta.thing_ids),
        "class_names": list(meta.class_names),
        "palette": np.asarray(meta.palette).astype(int).tolist(),
        "label_divisor": meta.label_divisor,
        "ignore_index": meta.ignore_index,
        "void_label": meta.void_label,
    }}
    deploy_path = os.path.join(save_dir, "deploy.yaml")
    with open(deploy_path + ".tmp", "w") as f:
        yaml.safe_dump(deploy, f, default_flow_style=None, sort_keys=False)
    os.replace(deploy_path + ".tmp", deploy_path)
    join = lambda name: os.path.join(save_dir, name) if name else None  # noqa: E731
    return {"model": join(model_file), "params": join(params_file), "onnx": join(onnx_file), "deploy": deploy_path}
