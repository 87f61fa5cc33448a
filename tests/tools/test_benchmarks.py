"""tools/benchmarks: the sub-commands run on small sizes and their outputs agree with the baselines
(the README's small `tools/benchmark.py` commands run the others end to end)."""
from tests.conftest import load_benchmark


def test_targets_benchmark_runs(capsys):
    bench = load_benchmark("targets")
    assert bench.main(["--height", "65", "--width", "129", "--instances", "6", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "outputs equal: True" in out and "PanopticTargetGenerator" in out
