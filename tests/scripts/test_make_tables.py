"""scripts/make_tables.py on fixture runs (tests/scripts/fixtures/make_tables/).

The fixtures are what ``boxpose-train`` and ``boxpose-eval`` write: ``config.yaml`` composed from the
experiment configs (mpii_boxnet, mpii_simple_baseline_r50_imagenet with a weights path, coco_boxnet),
``eval/<split>_<dataset>/metrics.json`` in the evaluator's layout (MPII val with metrics, MPII test and
COCO test-dev without), a trainer validation ``eval/epoch_140/`` that must be skipped, and an oracle
evaluation (``oracle/val_coco/metrics.json``, no config.yaml).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from boxpose.models import build_model, count_macs, count_parameters
from tests.scripts.helpers import load_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "make_tables.py"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "make_tables"
RUNS = ["mpii_boxnet", "mpii_simple_baseline_r50_imagenet", "coco_boxnet", "oracle/val_coco/metrics.json"]


mt = load_script("make_tables")


@pytest.fixture(scope="module")
def evaluations():
    return mt.collect_runs([FIXTURES / run for run in RUNS])


def _tables(evaluations, reference: bool = True) -> dict[int, dict[tuple[str, str], dict[str, str]]]:
    """Our rows: table number -> (Run, Split) -> {header: cell} (the paper's rows left out)."""
    tables = {}
    for table in mt.build_tables(evaluations, reference):
        rows = [dict(zip(table.header, row)) for row in table.rows]
        ours = [row for row in rows if row["Run"] != "paper"]
        tables[table.number] = {(row["Run"], row["Split"]): row for row in ours}
        assert len(tables[table.number]) == len(ours)  # (Run, Split) identifies our rows here
    return tables


def _metrics(relative: str) -> dict[str, float]:
    return json.loads((FIXTURES / relative).read_text())["metrics"]


def _counts(name: str, num_joints: int, width: int, height: int, **kwargs) -> tuple[str, str]:
    """#Params and GFLOPs cells of a model, counted here with boxpose.models.counting."""
    with torch.device("meta"):
        model = build_model(name, num_joints=num_joints, **kwargs)
    params = count_parameters(model) / 1e6
    return mt.format_params(params), mt.format_gflops(count_macs(model, (width, height)).giga)


def _copy_run(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def test_runs_land_in_their_tables_with_the_split_shown(evaluations):
    # mpii_boxnet: val + test; eval/epoch_140 (a training-time validation) is skipped
    assert [(e.run_name, e.split) for e in evaluations] == [
        ("mpii_boxnet", "test"),
        ("mpii_boxnet", "val"),
        ("mpii_simple_baseline_r50_imagenet", "val"),
        ("coco_boxnet", "test"),
        ("coco_boxnet", "val"),
        ("val_coco", "val"),
    ]
    tables = _tables(evaluations, reference=False)
    assert set(tables[1]) == {
        ("mpii_boxnet", "val"),
        ("mpii_boxnet", "test (submitted)"),
        ("mpii_simple_baseline_r50_imagenet", "val"),
    }
    assert set(tables[2]) == {("coco_boxnet", "val"), ("val_coco", "val")}
    assert set(tables[3]) == {("coco_boxnet", "test-dev (submitted)")}
    assert (
        tables[1][("mpii_simple_baseline_r50_imagenet", "val")]["Method"] == "simple_baseline_r50 (ImageNet)"
    )
    assert tables[1][("mpii_simple_baseline_r50_imagenet", "val")]["Pretrain"] == "Y"
    assert tables[1][("mpii_boxnet", "val")]["Method"] == "boxnet"
    assert tables[2][("coco_boxnet", "val")]["Input"] == "256×192"  # height x width, as the paper
    assert tables[1][("mpii_boxnet", "val")]["Input"] == "256×256"
    notes = " ".join(next(t for t in mt.build_tables(evaluations) if t.number == 1).notes)
    assert "validation set" in notes and "test set" in notes


def test_numbers_are_percent_with_one_decimal(evaluations):
    tables = _tables(evaluations)
    mpii = _metrics("mpii_boxnet/eval/val_mpii/metrics.json")
    row = tables[1][("mpii_boxnet", "val")]
    assert row["Mean"] == "88.6"  # 88.64713 in metrics.json
    for key, header in zip(mt.MPII_KEYS, mt.TABLES[1].metric_headers):
        assert row[header] == f"{mpii[key]:.1f}"
    coco = _metrics("coco_boxnet/eval/val_coco/metrics.json")
    row = tables[2][("coco_boxnet", "val")]
    assert (row["AP"], row["AP50"], row["AR"]) == ("68.1", "88.0", "73.8")  # fractions 0.6812349, ...
    for key in mt.COCO_KEYS:
        assert row[key] == f"{100 * coco[key]:.1f}"
    # no labels: dashes, not zeros or a crash
    assert all(tables[1][("mpii_boxnet", "test (submitted)")][h] == "—" for h in mt.TABLES[1].metric_headers)
    assert all(tables[3][("coco_boxnet", "test-dev (submitted)")][k] == "—" for k in mt.COCO_KEYS)


def test_test_dev_scores_show_in_table_3(tmp_path):
    run = _copy_run("coco_boxnet", tmp_path)
    metrics_path = run / "eval" / "test_coco" / "metrics.json"
    content = json.loads(metrics_path.read_text())
    content["metrics"] = {
        "AP": 0.68249,
        "AP50": 0.90312,
        "AP75": 0.75951,
        "APM": 0.65,
        "APL": 0.7449,
        "AR": 0.7431,
    }
    metrics_path.write_text(json.dumps(content, indent=2))
    rows = _tables(mt.collect_runs([run]))[3]
    assert [rows[("coco_boxnet", "test-dev")][k] for k in mt.COCO_KEYS] == [
        "68.2", "90.3", "76.0", "65.0", "74.5", "74.3",
    ]  # fmt: skip
    assert "GFLOPs" not in mt.build_tables(mt.collect_runs([run]))[-1].header  # as the paper's Table 3


def test_reference_rows_follow_the_matching_runs(evaluations):
    tables = {table.number: table for table in mt.build_tables(evaluations)}
    runs = [row[1] for row in tables[1].rows]
    # each paper row comes right after the last of our rows with the same model (+ ImageNet or not)
    assert runs == ["mpii_simple_baseline_r50_imagenet", "paper", "mpii_boxnet", "mpii_boxnet", "paper"]
    header = tables[1].header
    ours_paper = dict(zip(header, tables[1].rows[4]))
    row = mt.PAPER[1][("boxnet", False)]
    assert ours_paper["Method"] == "Ours" and ours_paper["Split"] == "test"
    assert [ours_paper[h] for h in mt.TABLES[1].metric_headers] == [f"{v:.1f}" for v in row.metrics]
    assert (ours_paper["#Params"], ours_paper["GFLOPs"]) == ("1.85M", "7.7G")
    imagenet = dict(zip(header, tables[1].rows[1]))
    assert imagenet["Pretrain"] == "Y" and imagenet["Mean"] == "90.1"  # not the scratch row (88.7)
    assert [row[1] for row in tables[2].rows] == ["coco_boxnet", "paper", "val_coco"]  # no paper oracle
    assert dict(zip(tables[2].header, tables[2].rows[1]))["GFLOPs"] == "5.8G"
    assert [row[1] for row in tables[3].rows] == ["coco_boxnet", "paper"]
    assert dict(zip(tables[3].header, tables[3].rows[1]))["AP"] == "68.9"

    without = mt.build_tables(evaluations, reference=False)
    assert all(row[1] != "paper" for table in without for row in table.rows)
    assert "| paper" in mt.render_markdown(evaluations)
    assert "| paper" not in mt.render_markdown(evaluations, reference=False)
    assert "& paper &" not in mt.render_latex(evaluations, reference=False)


def test_params_and_gflops_match_the_counter(evaluations):
    tables = _tables(evaluations)
    boxnet = _counts("boxnet", 16, 256, 256)
    assert boxnet == ("1.86M", "7.7G")  # docs/architecture.md: 1,855,600 params (16 joints), 7.695 GMACs
    row = tables[1][("mpii_boxnet", "val")]
    assert (row["#Params"], row["GFLOPs"]) == boxnet
    row = tables[1][("mpii_simple_baseline_r50_imagenet", "val")]
    assert (row["#Params"], row["GFLOPs"]) == _counts("simple_baseline_r50", 16, 256, 256)
    row = tables[2][("coco_boxnet", "val")]
    assert (row["#Params"], row["GFLOPs"]) == _counts("boxnet", 17, 192, 256)
    evaluation = next(e for e in evaluations if e.run_name == "coco_boxnet")
    with torch.device("meta"):
        model = build_model("boxnet", num_joints=17)
    assert evaluation.params == count_parameters(model)
    assert evaluation.gmacs == pytest.approx(count_macs(model, (192, 256)).giga)


def test_oracle_rows_are_labelled_and_need_no_config(evaluations):
    oracle = next(e for e in evaluations if e.oracle)
    assert "oracle" in oracle.method and oracle.model is None
    row = _tables(evaluations)[2][("val_coco", "val")]
    assert row["Method"].startswith("oracle") and row["#Params"] == "—" and row["AP"] == "98.2"


def test_latex_is_structurally_a_tabular(evaluations):
    text = mt.render_latex(evaluations)
    tables = mt.build_tables(evaluations)
    assert text.count(r"\begin{tabular}") == text.count(r"\end{tabular}") == len(tables) == 3
    assert text.count(r"\begin{table}") == text.count(r"\end{table}") == 3
    blocks = re.findall(r"\\begin\{tabular\}\{([lr]+)\}\n(.*?)\\end\{tabular\}", text, flags=re.S)
    for (columns, body), table in zip(blocks, tables):
        assert len(columns) == len(table.header)
        lines = [line for line in body.splitlines() if line != r"\hline"]
        assert len(lines) == 1 + len(table.rows)
        for line in lines:
            assert line.endswith(r" \\")
            assert len(re.findall(r"(?<!\\)&", line)) == len(table.header) - 1
    assert mt.latex_escape("run_1 & 50% #2 {a} ×—") == r"run\_1 \& 50\% \#2 \{a\} $\times$--"
    body_text = "".join(body for _, body in blocks)
    assert "_" not in body_text.replace(r"\_", "") and "×" not in text and "—" not in text
    assert r"mpii\_boxnet" in text and r"256$\times$256" in text


def test_markdown_table_has_aligned_columns(evaluations):
    text = mt.render_markdown(evaluations)
    assert text.count("### Table ") == 3
    for block in text.split("### ")[1:]:
        lines = [line for line in block.splitlines() if line.startswith("|")]
        assert len({line.count("|") for line in lines}) == 1  # every row has the header's columns
        assert len({len(line) for line in lines}) == 1  # padded
        assert set(lines[1]) <= set("|:- ")


def test_direct_metrics_file_and_run_dir_without_eval_folder(tmp_path):
    direct = mt.collect_runs([FIXTURES / "mpii_boxnet" / "eval" / "val_mpii" / "metrics.json"])
    assert [(e.run_name, e.split, e.params is not None) for e in direct] == [("mpii_boxnet", "val", True)]
    run = tmp_path / "flat_run"
    run.mkdir()
    shutil.copy(FIXTURES / "mpii_boxnet" / "config.yaml", run / "config.yaml")
    shutil.copy(FIXTURES / "mpii_boxnet" / "eval" / "val_mpii" / "metrics.json", run / "metrics.json")
    assert [(e.run_name, e.split) for e in mt.collect_runs([run])] == [("flat_run", "val")]


def test_non_default_settings_show_in_the_label(tmp_path):
    run = _copy_run("mpii_boxnet", tmp_path)
    config = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(config.replace("  split: none\n", "  split: h2\n", 1))
    metrics_path = run / "eval" / "val_mpii" / "metrics.json"
    content = json.loads(metrics_path.read_text())
    metrics_path.write_text(json.dumps({**content, "flip_test": False}, indent=2))
    evaluation = next(e for e in mt.collect_runs([run]) if e.split == "val")
    assert evaluation.method == "boxnet (split=h2) [no flip]"
    metrics_path.write_text(json.dumps({**content, "person_boxes": "ground truth"}, indent=2))
    evaluation = next(e for e in mt.collect_runs([run]) if e.split == "val")
    assert evaluation.method == "boxnet (split=h2) [GT boxes]"


def test_errors_name_what_is_missing(tmp_path, capsys):
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no metrics\.json"):
        mt.collect_runs([empty])
    with pytest.raises(SystemExit) as exit_info:
        mt.main([str(empty)])
    assert exit_info.value.code == 2
    assert "no metrics.json" in capsys.readouterr().err

    training_only = _copy_run("mpii_boxnet", tmp_path)
    shutil.rmtree(training_only / "eval" / "val_mpii")
    shutil.rmtree(training_only / "eval" / "test_mpii")
    with pytest.raises(FileNotFoundError, match=r"eval/epoch_\*"):
        mt.collect_runs([training_only])

    no_config = tmp_path / "no_config" / "eval" / "val_mpii"
    no_config.mkdir(parents=True)
    shutil.copy(FIXTURES / "mpii_boxnet" / "eval" / "val_mpii" / "metrics.json", no_config / "metrics.json")
    with pytest.raises(FileNotFoundError, match=r"no config\.yaml"):
        mt.collect_runs([tmp_path / "no_config"])
    with pytest.raises(FileNotFoundError, match="no such run directory"):
        mt.collect_runs([tmp_path / "missing"])


def test_main_prints_and_writes_both_formats(tmp_path, capsys):
    output = tmp_path / "tables.md"
    mt.main([str(FIXTURES / "coco_boxnet"), "--format", "both", "--output", str(output)])
    printed = capsys.readouterr().out
    assert printed == output.read_text()
    assert printed.index("### Table 2") < printed.index(r"\begin{tabular}")
    mt.main([str(FIXTURES / "coco_boxnet"), "--format", "latex", "--no-reference"])
    printed = capsys.readouterr().out
    assert "###" not in printed and "& paper &" not in printed and r"\begin{tabular}" in printed


def test_help_exits_zero():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "RUN_DIR" in result.stdout and "--no-reference" in result.stdout
    assert "python scripts/make_tables.py outputs/" in result.stdout  # the usage example
