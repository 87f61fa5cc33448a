"""tools/benchmarks: the sub-commands run on small sizes and their outputs agree with the baselines
(the README's small `tools/benchmark.py` commands run the others end to end)."""
from tests.conftest import load_benchmark


def test_targets_benchmark_runs(capsys):
    bench = load_benchmark("targets")
    assert bench.main(["--height", "65", "--width", "129", "--instances", "6", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "outputs equal: True" in out and "PanopticTargetGenerator" in out


def test_batch_norm_benchmark_runs_and_both_blends_agree(capsys):
    bench = load_benchmark("batch_norm")
    assert bench.main(["--size", "33x65", "--batch", "2", "--repeats", "1", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    assert all(mode in out for mode in ("frozen", "batch", "blend", "blend-hook"))
    assert "same loss: True" in out
    gap = float(out.split("gradients differ by ")[1].split()[0])
    assert gap < 1e-3  # float32 rounding in different op orders, not a different formula
