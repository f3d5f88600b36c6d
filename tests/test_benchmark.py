"""The README's benchmark command keeps working (its numbers are not checked here:
speed is measured by running the benchmark, never asserted by a test)."""

import json
import subprocess
import sys

from conftest import CLEAN_ENV, ROOT


def test_benchmark_runs_end_to_end_on_a_small_data_set(tmp_path):
    results = tmp_path / "bench.json"
    command = [sys.executable, "tests/benchmarks/bench.py", "--rounds", "1", "--warmup", "0", "--memories", "60"]
    command += ["--json", results]
    run = subprocess.run(command, cwd=ROOT, env=CLEAN_ENV, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    for label in (
        "1. --help",
        "2. one list call",
        "3. the same through uv run",
        "4a. export",
        "4b. export",
        "5. import",
    ):
        assert label in run.stdout
    assert "peak RSS import 60: ours" in run.stdout
    assert results.exists()


def test_the_scale_benchmark_runs_end_to_end_on_a_small_server(tmp_path):
    results = tmp_path / "scale.json"
    command = [
        sys.executable,
        "tests/benchmarks/scale.py",
        "--sizes",
        "sqlite:2000",
        "--rounds",
        "1",
        "--json",
        results,
    ]
    run = subprocess.run(command, cwd=ROOT, env=CLEAN_ENV, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    rows = json.loads(results.read_text())["rows"]
    assert [row["work"] for row in rows][:2] == ["--export, every user", "--export, the heavy user"]
    assert all(row["ours_s"] > 0 and row["floor_s"] > 0 and row["peak_rss_mb"] > 0 for row in rows)
    table = subprocess.run(
        [sys.executable, "tests/benchmarks/scale.py", "--table", results], cwd=ROOT, capture_output=True, text=True
    ).stdout.splitlines()
    assert table[0].startswith("| server | memories | work |") and len(table) == 2 + len(rows)
    assert table[2].startswith("| SQLite | 2,000 | `--export`, every user |")
    assert "\n".join(table) in run.stdout  # the run prints the same table it wrote


def test_the_journal_benchmark_runs_end_to_end_on_a_small_server():
    command = [sys.executable, "tests/benchmarks/journal.py", "--size", "1000", "--rounds", "1"]
    run = subprocess.run(command, cwd=ROOT, env=CLEAN_ENV, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith("| --")]
    assert [row.split(" | ")[0] for row in rows] == [
        "| --delete-all, the heavy user",
        "| --import updating the heavy user's 100",
    ]


def test_the_find_benchmark_runs_end_to_end_on_small_users():
    command = [sys.executable, "tests/benchmarks/find.py", "--sizes", "5,20", "--rounds", "1"]
    run = subprocess.run(command, cwd=ROOT, env=CLEAN_ENV, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith("| 5 |") or line.startswith("| 20 |")]
    assert len(rows) == 2 and all(line.count(" s |") == 4 for line in rows)


def test_the_ranking_benchmark_prints_recall_for_each_part_and_mode():
    run = subprocess.run(
        [sys.executable, "tests/benchmarks/ranking.py"], cwd=ROOT, env=CLEAN_ENV, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    modes = [line.split(" | ")[2] for line in run.stdout.splitlines() if line.startswith(("| tuning", "| held out"))]
    assert modes == ["words", "meaning", "hybrid"] * 2


def test_the_same_fact_scale_benchmark_runs_end_to_end_on_a_small_server():
    command = [sys.executable, "tests/benchmarks/same_fact_scale.py", "--size", "300", "--rounds", "1"]
    run = subprocess.run(command, cwd=ROOT, env=CLEAN_ENV, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith("| ") and " s (" in line]
    assert [row.split(". ")[0] for row in rows] == ["| a", "| b", "| c", "| d", "| e"]
    assert "searched 30" in rows[0] and "pairs" in rows[3]


def test_the_curation_benchmark_runs_end_to_end_on_a_small_server():
    command = [sys.executable, "tests/benchmarks/curation.py", "--size", "300"]
    run = subprocess.run(command, cwd=ROOT, env=CLEAN_ENV, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith("| `")]
    assert len(rows) == 4 and all("| 30 |" in row for row in rows), run.stdout
    assert "30 POST" in rows[0] and "30 PATCH" in rows[2]
