"""The manual's commands work: every shell command of README.md and docs/*.md that runs on the demo data is executed.

How commands are found: every fenced ```bash / ```shell / ```sh block of README.md, then of the pages in docs/
(in the order of `DOC_PAGES`, then any other page alphabetically), in order; lines ending
in a backslash are joined and `#` comments dropped. A block runs from `contrib/PanopticDeepLab/` unless its
first line is the comment `# repository root` (then from the repository root); `cd DIR` inside a block
changes the folder for the rest of that block, `export NAME=VALUE` sets a variable for all later commands
(except `CUDA_VISIBLE_DEVICES`, which only GPU examples set) and `source ...` is ignored (the test uses
its own interpreter).

Which commands run (rules applied in this order):
0. skipped: a command that an earlier page or block already ran, word for word from the same folder (except
   one with `--resume_model`, which continues the training it names);
1. skipped: `bash run_demo.sh` / `bash run_tests.sh` (installs and trains for minutes, or would run this
   suite recursively);
2. skipped: installing or downloading (`pip`, `python -m pip`, `python3 -m venv`, `wget`, `curl`, `git`,
   `mkdir` of a download folder);
3. skipped: `visualdl` (starts a web server), and `tools/sweep_demo.py` runs (dozens of trainings, for the
   tables of the seed sweeps);
4. skipped: commands for real data, downloaded weights or GPUs: they mention `data/cityscapes`,
   `data/coco`, `pretrained/`, a config other than the CPU demo configs (`DEMO_CONFIGS`), `--device gpu`, or
   launch's multi-GPU / multi-machine flags (`--gpus`, `--devices`, `--ips`, `--master`, `--nnodes`);
5. run: `--help` of any script, all of them in this process by one test (`test_readme_help_commands`): the
   script file is loaded as a module and its `main(["--help"])` called (a fresh process per script only
   measures Paddle's start-up);
6. run: `tools/benchmark.py` when every size it is given is at most 512 pixels (otherwise skipped as a
   full-size benchmark);
7. run: commands on the demo data (they mention `demo_cityscapes`, a demo config, `make_demo_dataset` or the
   folders a generated custom dataset goes through, `DEMO_MARKERS`);
8. anything else fails the test: a new command must be covered by one of the rules above.

How they run: in a scratch copy of the project layout (links to `configs/`, `tools/`, `deploy/`,
`paddleseg_ext/`, `panoptic_metrics/` and the `contrib/PanopticDeepLab/*.py` and `contrib/PanopticFCN/*.py`
scripts, plus a copy of the generated demo dataset in `contrib/PanopticDeepLab/data/demo_cityscapes`, which
`contrib/PanopticFCN/data` links to), with `python` replaced by this
interpreter and this checkout first on PYTHONPATH (the environment may hold an install of another one).
Training is shortened: the first `train.py` command of a `--save_dir` gets `--iters 4`, each later one
(a resume) 2 more, `--save_interval` becomes 2, and the checkpoint folder of a demo config's full
length (`iter_<iters>`) becomes `iter_4`. Each command must exit with status 0.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import (ROOT, load_script,
                            script_env)

README = os.path.join(ROOT, "README.md")
README_CN = os.path.join(ROOT, "README_CN.md")
DOCS = os.path.join(ROOT, "docs")
#: the order in which the pages' commands run (later pages use what earlier ones trained and wrote)
DOC_PAGES = ("installation.md", "datasets.md", "training.md", "evaluation.md", "prediction.md", "deployment.md",
             "panoptic_fcn.md", "dataset_tools.md", "custom_data.md", "python_api.md", "benchmarks.md",
             "troubleshooting.md")
CONTRIB = os.path.join("contrib", "PanopticDeepLab")
DEMO_CONFIG = "panoptic_deeplab_demo_cpu.yml"
#: the CPU demo configs of both models (rule 4/7) and where they live
DEMO_CONFIGS = {DEMO_CONFIG: "panoptic_deeplab", "panoptic_fcn_demo_cpu.yml": "panoptic_fcn",
                "panoptic_deeplab_custom_demo_cpu.yml": "custom", "panoptic_fcn_custom_demo_cpu.yml": "custom"}
CONTRIB_FCN = os.path.join("contrib", "PanopticFCN")
SCRIPTS = ("train.py", "val.py", "predict.py", "export.py")

FIRST_ITERS = 4
RESUME_EXTRA_ITERS = 2
SAVE_INTERVAL = 2
MAX_BENCHMARK_SIZE = 512
COMMAND_TIMEOUT_S = 300

ROOT_MARKER = "# repository root"
GPU_OR_CLUSTER_FLAGS = ("--gpus", "--devices", "--ips", "--master", "--nnodes")
REAL_DATA = ("data/cityscapes", "data/coco", "pretrained/")
#: the generated raw annotations (`make_demo_dataset.py --format ...`) and the dataset converted from them
CUSTOM_DEMO_FOLDERS = ("data/demo_labelme", "data/demo_semantic_instance", "data/my_dataset")
DEMO_MARKERS = ("demo_cityscapes", "make_demo_dataset") + CUSTOM_DEMO_FOLDERS + tuple(DEMO_CONFIGS)


def shell_blocks(path):
    """The ```bash/```shell/```sh blocks of a markdown file: list of lists of raw lines."""
    blocks, current = [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            stripped = line.strip()
            if current is None:
                if re.fullmatch(r"```(bash|shell|sh)", stripped):
                    current = []
            elif stripped == "```":
                blocks.append(current)
                current = None
            else:
                current.append(line.rstrip("\n"))
    return blocks


def block_commands(lines):
    """Join continuation lines and split into token lists (comments dropped)."""
    joined, buf = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        joined.append(buf + line)
        buf = ""
    if buf:
        joined.append(buf)
    return [tokens for tokens in (shlex.split(text, comments=True) for text in joined) if tokens]


def doc_pages():
    """README.md, then the pages of docs/ in the order their commands run."""
    pages = sorted(n for n in os.listdir(DOCS) if n.endswith(".md")) if os.path.isdir(DOCS) else []
    ordered = [n for n in DOC_PAGES if n in pages] + [n for n in pages if n not in DOC_PAGES]
    return [README] + [os.path.join(DOCS, n) for n in ordered]


def readme_commands(path=README):
    """Every command of a markdown page as a dict: tokens, cwd (relative to the root), page, block index, text."""
    out = []
    for b, lines in enumerate(shell_blocks(path)):
        cwd = "." if lines and lines[0].strip() == ROOT_MARKER else CONTRIB
        for tokens in block_commands(lines):
            out.append({"tokens": tokens, "cwd": cwd, "page": os.path.relpath(path, ROOT), "block": b,
                        "text": " ".join(tokens)})
            if tokens[0] == "cd" and len(tokens) == 2:
                cwd = os.path.normpath(os.path.join(cwd, tokens[1]))
    return out


def _program(tokens):
    return os.path.basename(tokens[0])


def _is_python(tokens):
    return re.fullmatch(r"python(3(\.\d+)?)?", _program(tokens)) is not None


def _benchmark_sizes(tokens):
    """All pixel sizes given to tools/benchmark.py (--height/--width values and HxW lists)."""
    sizes = []
    for i, t in enumerate(tokens[:-1]):
        if t in ("--height", "--width"):
            sizes.append(int(tokens[i + 1]))
        elif t in ("--size", "--sizes", "--net-size"):
            sizes += [int(v) for v in re.split(r"[x,]", tokens[i + 1]) if v]
    return sizes


def classify(tokens, repeated=False):
    """('state' | 'run' | 'skip' | 'unknown', reason) for one command (rules of the module doc); `repeated`: the
    same command from the same folder came before."""
    text = " ".join(tokens)
    prog = _program(tokens)
    if prog in ("cd", "export", "source"):
        return "state", prog
    if repeated and "--resume_model" not in tokens and "--help" not in tokens:
        return "skip", "rule 0: the same command ran before"
    if prog == "bash" and any(t.endswith(("run_demo.sh", "run_tests.sh")) for t in tokens):
        return "skip", "rule 1: the quick-start scripts install and train for minutes"
    if prog in ("pip", "pip3", "wget", "curl", "git", "mkdir") or ("-m" in tokens and (
            "pip" in tokens or "venv" in tokens)):
        return "skip", "rule 2: installs or downloads"
    if prog == "visualdl":
        return "skip", "rule 3: starts a web server"
    if any(t.endswith("tools/sweep_demo.py") for t in tokens) and "--help" not in tokens:
        return "skip", "rule 3b: a seed sweep trains dozens of models"
    configs = [t for t in tokens if t.endswith((".yml", ".yaml"))]
    if (any(r in text for r in REAL_DATA) or any(os.path.basename(c) not in DEMO_CONFIGS for c in configs)
            or "gpu" in [tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t == "--device"]
            or any(t.split("=")[0] in GPU_OR_CLUSTER_FLAGS for t in tokens)):
        return "skip", "rule 4: needs real Cityscapes/COCO data, downloaded weights or GPUs"
    if "--help" in tokens or "-h" in tokens:
        return "help", "rule 5: --help"
    if any(t.endswith("tools/benchmark.py") for t in tokens):
        sizes = _benchmark_sizes(tokens)
        if sizes and max(sizes) <= MAX_BENCHMARK_SIZE:
            return "run", "rule 6: small benchmark"
        return "skip", "rule 6: full-size benchmark"
    if any(m in text for m in DEMO_MARKERS):
        return "run", "rule 7: demo data"
    return "unknown", "no rule covers this command; extend the rules in tests/test_readme_commands.py"


def _demo_config_iters():
    """The `iters` of every demo config (checkpoint folders iter_<iters> are renamed iter_<FIRST_ITERS>)."""
    out = set()
    for name, folder in DEMO_CONFIGS.items():
        with open(os.path.join(ROOT, "configs", folder, name)) as f:
            out.add(int(yaml.safe_load(f)["iters"]))
    return out


def _set_option(tokens, name, value):
    """Replace the value of `name` in tokens, or append `name value`."""
    tokens = list(tokens)
    if name in tokens:
        tokens[tokens.index(name) + 1] = str(value)
    else:
        tokens += [name, str(value)]
    return tokens


def _option(tokens, name, default=None):
    return tokens[tokens.index(name) + 1] if name in tokens[:-1] else default


class Runner:
    """Runs README commands in a scratch copy of the project layout, keeping state between them."""

    def __init__(self, workspace):
        self.workspace = workspace
        self.env = script_env()
        bindir = os.path.dirname(sys.executable)
        self.env["PATH"] = bindir + os.pathsep + self.env.get("PATH", "")
        self.env.pop("CUDA_VISIBLE_DEVICES", None)
        self.trainings = {}  # save_dir -> iterations reached
        self.full_iters = _demo_config_iters()

    def rewrite(self, tokens):
        tokens = [sys.executable if _is_python(tokens[:1]) and i == 0 else t for i, t in enumerate(tokens)]
        if any(os.path.basename(t) == "train.py" for t in tokens):
            save_dir = os.path.normpath(_option(tokens, "--save_dir", "./output"))
            done = self.trainings.get(save_dir)
            iters = FIRST_ITERS if done is None else done + RESUME_EXTRA_ITERS
            self.trainings[save_dir] = iters
            tokens = _set_option(tokens, "--iters", iters)
            tokens = _set_option(tokens, "--save_interval", SAVE_INTERVAL)
        pattern = re.compile(r"\biter_({})\b".format("|".join(str(n) for n in sorted(self.full_iters))))
        return [pattern.sub("iter_{}".format(FIRST_ITERS), t) for t in tokens]

    def export(self, tokens):
        for assignment in tokens[1:]:
            name, _, value = assignment.partition("=")
            if name != "CUDA_VISIBLE_DEVICES":
                self.env[name] = value

    def run(self, command):
        tokens = self.rewrite(command["tokens"])
        cwd = os.path.join(self.workspace, command["cwd"])
        proc = subprocess.run(tokens, cwd=cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=COMMAND_TIMEOUT_S)
        return tokens, proc.returncode, proc.stdout.decode("utf-8", "replace")


def all_commands():
    """The commands of README.md and docs/*.md in running order, each with `repeated` set (rule 0)."""
    out, seen = [], set()
    for page in doc_pages():
        if not os.path.isfile(page):
            continue
        for c in readme_commands(page):
            key = (c["cwd"], c["text"])
            c["repeated"] = key in seen
            seen.add(key)
            out.append(c)
    return out


COMMANDS = all_commands()


@pytest.fixture(scope="module")
def runner(tmp_path_factory, demo_root):
    """A scratch project: links to the code, a copy of the demo dataset; shared by the README commands."""
    ws = str(tmp_path_factory.mktemp("readme_ws"))
    for name in ("configs", "tools", "deploy", "paddleseg_ext", "panoptic_metrics"):
        os.symlink(os.path.join(ROOT, name), os.path.join(ws, name))
    contrib = os.path.join(ws, CONTRIB)
    os.makedirs(os.path.join(contrib, "data"))
    fcn = os.path.join(ws, CONTRIB_FCN)
    os.makedirs(fcn)
    for script in SCRIPTS:
        os.symlink(os.path.join(ROOT, CONTRIB, script), os.path.join(contrib, script))
        os.symlink(os.path.join(ROOT, CONTRIB_FCN, script), os.path.join(fcn, script))
    for folder in (contrib, fcn):
        os.symlink(os.path.join("..", "..", "configs"), os.path.join(folder, "configs"))
    os.symlink(os.path.join("..", "PanopticDeepLab", "data"), os.path.join(fcn, "data"))
    shutil.copytree(demo_root, os.path.join(contrib, "data", "demo_cityscapes"))
    return Runner(ws)


def test_readme_opens_with_the_two_setup_commands():
    blocks = shell_blocks(README)
    assert blocks, "README.md has no shell code block"
    assert [c["text"] for c in readme_commands() if c["block"] == 0] == ["bash run_demo.sh", "bash run_tests.sh"]
    with open(README, encoding="utf-8") as f:
        head = f.read().split("```", 1)[0]
    # title and one paragraph (plus the language link and the section heading) before the commands
    assert head.count("\n# ") + head.startswith("# ") == 1


def test_readme_cn_has_the_same_commands():
    assert os.path.isfile(README_CN), "README_CN.md is missing"
    assert [c["text"] for c in readme_commands(README_CN)] == [c["text"] for c in readme_commands(README)]


def test_every_readme_command_is_covered_by_a_rule():
    unknown = ["{}: {}".format(c["page"], c["text"]) for c in COMMANDS if classify(c["tokens"])[0] == "unknown"]
    assert not unknown, "commands not covered by the rules: {}".format(unknown)


def test_configs_named_in_the_manual_exist():
    shipped = {name for _, _, files in os.walk(os.path.join(ROOT, "configs")) for name in files}
    text = ""
    for page in doc_pages():
        with open(page, encoding="utf-8") as f:
            text += f.read()
    names = set(re.findall(r"panoptic_(?:deeplab|fcn)_[A-Za-z0-9_]+\.yml", text))
    assert set(DEMO_CONFIGS) <= names
    missing = sorted(names - shipped)
    assert not missing, "configs named in README.md or docs/ but missing: {}".format(missing)


def test_readme_help_commands(capsys):
    """Rule 5: every `<script> --help` of the README answers (exit 0, a usage text), in this process."""
    helps = [c for c in COMMANDS if classify(c["tokens"], c["repeated"])[0] == "help"]
    assert helps, "the README shows no --help command"
    for command in helps:
        tokens = command["tokens"]
        assert _is_python(tokens[:1]) and tokens[1].endswith(".py") and tokens[2:] == ["--help"], command["text"]
        path = os.path.normpath(os.path.join(ROOT, command["cwd"], tokens[1]))
        script = load_script(path)
        main = getattr(script, "main", None) or script.console_main.main  # the shells import console_main
        try:
            rc = main(["--help"])
        except SystemExit as e:  # argparse
            rc = e.code
        out = capsys.readouterr().out
        assert rc in (0, None), (command["text"], rc)
        assert "usage:" in out or "available:" in out, (command["text"], out)


def _command_params():
    params = []
    for i, c in enumerate(COMMANDS):
        kind = classify(c["tokens"], c["repeated"])[0]
        if kind == "help":
            continue
        marks = [pytest.mark.slow]
        page = os.path.splitext(os.path.basename(c["page"]))[0]
        params.append(pytest.param(i, marks=marks, id="{:03d}:{}:{}".format(i, page, c["text"][:60])))
    return params


def _check_benchmark_options(command):
    """A full-size benchmark is not run, but every option it names must be one its --help lists."""
    tokens = command["tokens"]
    at = next(i for i, t in enumerate(tokens) if t.endswith("tools/benchmark.py"))
    p = subprocess.run([sys.executable] + tokens[at:at + 2] + ["--help"], cwd=os.path.join(ROOT, command["cwd"]),
                       env=script_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    unknown = [t for t in tokens[at + 2:] if t.startswith("--") and not re.search(re.escape(t) + r"\b", p.stdout)]
    assert not unknown, "README benchmark command {} uses option(s) {} that its --help does not list".format(
        " ".join(tokens), unknown)


@pytest.mark.parametrize("index", _command_params())
def test_readme_command(index, runner):
    command = COMMANDS[index]
    kind, reason = classify(command["tokens"], command["repeated"])
    if kind == "state":
        if command["tokens"][0] == "export":
            runner.export(command["tokens"])
        return
    if kind == "skip":
        if reason.startswith("rule 6"):
            _check_benchmark_options(command)
        pytest.skip(reason)
    assert kind == "run", reason
    tokens, rc, output = runner.run(command)
    assert rc == 0, "command of {} failed (exit {}), run as:\n  (cd {}; {})\n--- output (tail) ---\n{}".format(
        command["page"], rc, command["cwd"], " ".join(shlex.quote(t) for t in tokens), output[-6000:])
