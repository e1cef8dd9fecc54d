"""Tables 1, 2 and 3 of the paper from evaluated runs, each run beside the paper's own row.

    python scripts/make_tables.py outputs/mpii_boxnet outputs/coco_boxnet
    python scripts/make_tables.py outputs/*/ --format both --output tables.md
    python scripts/make_tables.py outputs/oracle/val_coco/metrics.json --no-reference

Inputs. Each argument is a run directory (``config.yaml`` written by ``boxpose-train``, evaluations in
``eval/<split>_<dataset>/metrics.json`` written by ``boxpose-eval``), a folder with a ``metrics.json``
directly inside, or a ``metrics.json`` itself. The validations the trainer runs while training
(``eval/epoch_*/``) are skipped: they are not final evaluations. The run directory of
``RUN/eval/<name>/metrics.json`` is ``RUN``, that of any other ``metrics.json`` its own folder; its
``config.yaml`` gives the model (label, counts) and the input size. An oracle evaluation (encoded ground
truth, no network) needs no ``config.yaml``.

Tables. MPII -> Table 1, COCO val -> Table 2, COCO test (test-dev2017) -> Table 3; a run with several
evaluations appears once per evaluation. The Split column says which split a row was scored on: the
paper's Table 1 is the MPII *test* set, so an MPII val row is not directly comparable to it. An
evaluation without metrics (MPII test labels are private; COCO test-dev is scored by the server) shows
"test (submitted)" and dashes.

Numbers. Metrics in percent, rounded to one decimal as in the paper (COCO's ``metrics.json`` holds
fractions). #Params and GFLOPs are counted by :mod:`boxpose.models.counting` (the paper's convention:
HRNet's MACs, giga = 2^30) on the meta device at each run's input size. Reference rows ("paper" in the Run
column) are matched by model name and ImageNet initialisation, and printed under the runs they match.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from boxpose.builders import dataset_spec
from boxpose.evaluation.coco import STAT_NAMES
from boxpose.evaluation.mpii import PCKH_COLUMNS
from boxpose.paper import PAPER, PaperRow

MODEL_CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "model"
DASH = "—"


@dataclass(frozen=True)
class TableSpec:
    """Layout of one table.

    Attributes:
        number: 1, 2 or 3.
        caption: what the table shows.
        paper_split, paper_input: split and input size (height x width) of the paper's rows.
        metric_keys: the ``metrics.json`` keys of the metric columns, in order.
        metric_headers: their column headers.
        to_percent: factor from ``metrics.json`` values to percent (COCO stores fractions).
        has_flops: whether the table has a GFLOPs column.
    """

    number: int
    caption: str
    paper_split: str
    paper_input: str
    metric_keys: tuple[str, ...]
    metric_headers: tuple[str, ...]
    to_percent: float
    has_flops: bool


MPII_KEYS = tuple(name for name in PCKH_COLUMNS if name != "Mean@0.1")  # Head ... Ankle, Mean
COCO_KEYS = STAT_NAMES[:6]  # AP, AP50, AP75, APM, APL, AR
TABLES: dict[int, TableSpec] = {
    1: TableSpec(
        1, "MPII Human Pose, PCKh@0.5 (the paper: test set)", "test", "256×256", MPII_KEYS,
        ("Head", "Sho.", "Elb.", "Wri.", "Hip", "Knee", "Ank.", "Mean"), 1.0, True,
    ),
    2: TableSpec(
        2, "COCO val2017, keypoint AP/AR (the paper: person detector boxes)", "val", "256×192", COCO_KEYS,
        ("AP", "AP50", "AP75", "APM", "APL", "AR"), 100.0, True,
    ),
    3: TableSpec(
        3, "COCO test-dev2017, keypoint AP/AR", "test-dev", "256×192", COCO_KEYS,
        ("AP", "AP50", "AP75", "APM", "APL", "AR"), 100.0, False,
    ),
}  # fmt: skip
TEXT_HEADERS = ("Method", "Run", "Split", "Input", "Pretrain")  # left-aligned; the other columns are numbers
SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}  # row order of one run's evaluations


@dataclass(frozen=True)
class Evaluation:
    """One ``metrics.json`` of a run and what the run's ``config.yaml`` says.

    Attributes:
        run_name: the run directory's name.
        metrics_path: the ``metrics.json`` file.
        dataset: "mpii" or "coco" (the evaluator's kind).
        split: the evaluated split as recorded: "val" or "test" (COCO "test" = test-dev2017).
        metrics: ``metrics.json``'s metrics (MPII: percent; COCO: fractions); empty where the split's labels
            are not public.
        oracle: scored the decoded ground truth, no network.
        flip_test, decode: the evaluation's settings.
        model: the model config (``name`` and the factory's kwargs); None for an oracle evaluation.
        method: the row label: model name, "(ImageNet)", kwargs that differ from configs/model/<name>.yaml,
            and evaluation settings that differ from the paper's.
        input_size: network input (width, height) from ``data.input_size``; None without config.yaml.
        params: the model's parameters; None without a model.
        gmacs: the model's GMACs at ``input_size`` in the paper's convention; None without a model.
    """

    run_name: str
    metrics_path: Path
    dataset: str
    split: str
    metrics: dict[str, float]
    oracle: bool
    flip_test: bool
    decode: str
    model: dict[str, Any] | None
    method: str
    input_size: tuple[int, int] | None
    params: int | None
    gmacs: float | None

    @property
    def table(self) -> int:
        """The table this evaluation belongs to (1 MPII, 2 COCO val, 3 COCO test-dev)."""
        if self.dataset == "mpii":
            return 1
        return 3 if self.split in ("test", "test-dev") else 2

    @property
    def imagenet(self) -> bool:
        """Whether the backbone was initialised from ImageNet weights (``pretrained`` set)."""
        return bool(self.model and self.model.get("pretrained"))

    @property
    def reference_key(self) -> tuple[str, bool] | None:
        """The key of the matching :data:`PAPER` row (None for an oracle evaluation)."""
        return None if self.model is None else (self.model["name"], self.imagenet)


# --------------------------------------------------------------------------------------------------------
# Reading runs


def find_metrics_files(path: Path) -> list[Path]:
    """The ``metrics.json`` files that one command-line argument names (see the module docstring)."""
    if path.is_file():
        if path.name != "metrics.json":
            raise ValueError(f"{path}: expected a run directory or a metrics.json file")
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such run directory or metrics.json")
    found = [path / "metrics.json"] if (path / "metrics.json").is_file() else []
    evaluations = sorted((path / "eval").glob("*/metrics.json"))
    found += [p for p in evaluations if not p.parent.name.startswith("epoch_")]
    if not found:
        hint = "run boxpose-eval checkpoint=<RUN_DIR>/best.pt (evaluate.split=val or test) first"
        if evaluations:
            hint = f"only the trainer's validations (eval/epoch_*/) are there; {hint}"
        looked = f"{path / 'metrics.json'} and {path / 'eval' / '*' / 'metrics.json'}"
        raise FileNotFoundError(f"{path}: no metrics.json (looked for {looked}); {hint}")
    return found


def run_dir_of(metrics_path: Path) -> Path:
    """``RUN`` for ``RUN/eval/<name>/metrics.json``, else the folder holding the ``metrics.json``."""
    folder = metrics_path.resolve().parent
    return folder.parent.parent if folder.parent.name == "eval" else folder


def read_metrics(path: Path) -> dict[str, Any]:
    """A ``metrics.json`` written by boxpose's evaluator, checked for the keys this script reads."""
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    missing = [key for key in ("metrics", "split", "dataset") if key not in content]
    if missing:
        raise ValueError(f"{path}: not a boxpose metrics.json (no {', '.join(missing)})")
    if content["dataset"] not in ("mpii", "coco"):
        raise ValueError(f"{path}: unknown dataset {content['dataset']!r} (expected mpii or coco)")
    return content


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """The run's resolved training config (``config.yaml``) as a plain dict, or None if it has none."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def model_label(model_cfg: dict[str, Any]) -> str:
    """``name``, "(ImageNet)" if a pretrained backbone was loaded, and the kwargs that differ from
    ``configs/model/<name>.yaml`` (the paper's setting), e.g. ``boxnet (split=h2)``."""
    name = model_cfg["name"]
    defaults_path = MODEL_CONFIG_DIR / f"{name}.yaml"
    defaults = OmegaConf.to_container(OmegaConf.load(defaults_path)) if defaults_path.is_file() else {}
    notes = ["ImageNet"] if model_cfg.get("pretrained") else []
    for key, value in model_cfg.items():
        if key not in ("name", "pretrained") and defaults.get(key) != value:
            notes.append(f"{key}={value}")
    return f"{name} ({', '.join(notes)})" if notes else name


def settings_label(content: dict[str, Any]) -> str:
    """The evaluation settings that differ from the paper's (flip test, quarter-offset decoding, COCO
    persons from detections), e.g. ``" [no flip]"``; empty for the paper's settings."""
    notes = []
    if content.get("person_boxes") == "ground truth":
        notes.append("GT boxes")
    if not content.get("flip_test", True):
        notes.append("no flip")
    if content.get("decode", "quarter") != "quarter":
        notes.append(f"{content['decode']} decoding")
    return f" [{', '.join(notes)}]" if notes else ""


_COUNTS: dict[str, tuple[int, float]] = {}


def count_model(model_cfg: dict[str, Any], num_joints: int, input_size: tuple[int, int]) -> tuple[int, float]:
    """(parameters, GMACs in the paper's convention) of a model config at ``input_size`` (width, height).

    The model is built on the meta device (no memory, no weights read) and the counts are cached per
    (model config, joints, size). ``pretrained`` is dropped: initial weights change no count.
    """
    import torch  # imported here so that --help and the rendering do not wait for torch

    from boxpose.models import build_model, count_macs, count_parameters

    kwargs = {key: value for key, value in model_cfg.items() if key not in ("name", "pretrained")}
    cache_key = json.dumps([model_cfg["name"], kwargs, num_joints, list(input_size)], sort_keys=True)
    if cache_key not in _COUNTS:
        with torch.device("meta"):
            model = build_model(model_cfg["name"], num_joints=num_joints, **kwargs)
        _COUNTS[cache_key] = (count_parameters(model), count_macs(model, tuple(input_size)).giga)
    return _COUNTS[cache_key]


def load_evaluation(metrics_path: Path) -> Evaluation:
    """One :class:`Evaluation` from a ``metrics.json`` and its run's ``config.yaml``."""
    content = read_metrics(metrics_path)
    run_dir = run_dir_of(metrics_path)
    config = read_config(run_dir)
    oracle = bool(content.get("oracle", False))
    model_cfg = None
    input_size = params = gmacs = None
    if config is None and not oracle:
        raise FileNotFoundError(
            f"{run_dir}: no config.yaml (needed for the model and input size of {metrics_path}); "
            "pass the run directory written by boxpose-train"
        )
    if config is not None:
        width, height = config["data"]["input_size"]
        input_size = (int(width), int(height))
    if oracle:
        method = "oracle (encoded ground truth)"
    else:
        model_cfg = dict(config["model"])
        num_joints = dataset_spec(config["data"]).num_joints
        try:
            params, gmacs = count_model(model_cfg, num_joints, input_size)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{run_dir / 'config.yaml'}: cannot build model {model_cfg}: {exc}") from exc
        method = model_label(model_cfg)
    return Evaluation(
        run_name=run_dir.name,
        metrics_path=metrics_path,
        dataset=content["dataset"],
        split=str(content["split"]),
        metrics=dict(content["metrics"]),
        oracle=oracle,
        flip_test=bool(content.get("flip_test", True)),
        decode=str(content.get("decode", "quarter")),
        model=model_cfg,
        method=method + settings_label(content),
        input_size=input_size,
        params=params,
        gmacs=gmacs,
    )


def collect_runs(paths: Sequence[str | Path]) -> list[Evaluation]:
    """Every evaluation that the arguments name, in argument order (see the module docstring).

    Raises:
        FileNotFoundError: an argument without metrics.json, or a run without config.yaml.
        ValueError: a file that is not a boxpose metrics.json, or a model that cannot be built.
    """
    return [load_evaluation(path) for arg in paths for path in find_metrics_files(Path(arg))]


# --------------------------------------------------------------------------------------------------------
# Building and rendering tables


@dataclass(frozen=True)
class Table:
    """A table ready to render: caption, header, rows of cell texts (Markdown-neutral), footnotes."""

    number: int
    caption: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]
    notes: list[str]


def format_params(params_m: float | None) -> str:
    """Millions of parameters as the paper prints them: 1.85M, 34.0M."""
    if params_m is None:
        return DASH
    return f"{params_m:.2f}M" if params_m < 10 else f"{params_m:.1f}M"


def format_gflops(gflops: float | None) -> str:
    """GFLOPs as the paper prints them: 7.7G (two decimals below 1, e.g. for tiny test models)."""
    if gflops is None:
        return DASH
    return f"{gflops:.1f}G" if gflops >= 1 else f"{gflops:.2f}G"


def format_metric(value: float | None) -> str:
    """A percentage with one decimal, as in the paper; a dash where there is none."""
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value:.1f}"


def format_input(width: int, height: int) -> str:
    """Input size as the paper writes it: height x width."""
    return f"{height}×{width}"


def header_of(spec: TableSpec) -> tuple[str, ...]:
    flops = ("GFLOPs",) if spec.has_flops else ()
    return (*TEXT_HEADERS, "#Params", *flops, *spec.metric_headers)


def our_row(spec: TableSpec, evaluation: Evaluation) -> tuple[str, ...]:
    """The cells of one of our evaluations."""
    split = "test-dev" if evaluation.dataset == "coco" and evaluation.split == "test" else evaluation.split
    if not evaluation.metrics:
        split += " (submitted)"
    size = format_input(*evaluation.input_size) if evaluation.input_size else DASH
    pretrain = DASH if evaluation.model is None else ("Y" if evaluation.imagenet else "N")
    params = format_params(None if evaluation.params is None else evaluation.params / 1e6)
    flops = (format_gflops(evaluation.gmacs),) if spec.has_flops else ()
    metrics = []
    for key in spec.metric_keys:
        value = evaluation.metrics.get(key)
        metrics.append(format_metric(None if value is None else value * spec.to_percent))
    return (evaluation.method, evaluation.run_name, split, size, pretrain, params, *flops, *metrics)


def paper_row(spec: TableSpec, key: tuple[str, bool], row: PaperRow) -> tuple[str, ...]:
    """The cells of a reference row of the paper."""
    flops = (format_gflops(row.gflops),) if spec.has_flops else ()
    metrics = [format_metric(value) for value in row.metrics]
    pretrain = "Y" if key[1] else "N"
    cells = (row.method, "paper", spec.paper_split, spec.paper_input, pretrain, format_params(row.params_m))
    return (*cells, *flops, *metrics)


def table_notes(spec: TableSpec, evaluations: list[Evaluation], reference: bool) -> list[str]:
    """Footnotes: what the Split column and the counts mean, and where rows are not comparable."""
    notes = []
    if spec.number == 1 and any(e.split != "test" for e in evaluations):
        notes.append(
            "Split val: the MPII validation set; the paper's Table 1 is the test set (not comparable)."
        )
    if any(not e.metrics for e in evaluations):
        notes.append(
            "(submitted): no labels here (MPII test is private, COCO test-dev is scored by the "
            "evaluation server); metrics.json holds the prediction files only."
        )
    if any(e.oracle for e in evaluations):
        notes.append("oracle: the encoded ground truth decoded without a network (the codec's upper bound).")
    notes.append(
        "#Params and GFLOPs: boxpose.models.counting at each row's input size (MACs, HRNet convention, "
        "giga = 2^30, as in the paper)."
    )
    if reference:
        notes.append(f"Run 'paper': the paper's Table {spec.number}, under the runs of the same model.")
    return notes


def build_tables(evaluations: Sequence[Evaluation], reference: bool = True) -> list[Table]:
    """Tables 1, 2 and 3 (those with at least one evaluation).

    Our rows are sorted by the paper's row order (rows without a paper counterpart last), then run name
    and split; with ``reference``, each paper row follows the last of our rows it matches.
    """
    tables = []
    for number, spec in TABLES.items():
        paper = PAPER[number]
        order = list(paper)  # the paper's row order; rows without a paper counterpart come last
        ours = [e for e in evaluations if e.table == number]
        if not ours:
            continue
        ours.sort(
            key=lambda e: (
                order.index(e.reference_key) if e.reference_key in paper else len(order),
                e.run_name,
                SPLIT_ORDER.get(e.split, len(SPLIT_ORDER)),
                str(e.metrics_path),
            )
        )
        rows = []
        for i, evaluation in enumerate(ours):
            rows.append(our_row(spec, evaluation))
            key = evaluation.reference_key
            last_of_group = i + 1 == len(ours) or ours[i + 1].reference_key != key
            if reference and last_of_group and key in paper:
                rows.append(paper_row(spec, key, paper[key]))
        caption = f"Table {number}: {spec.caption}"
        tables.append(Table(number, caption, header_of(spec), rows, table_notes(spec, ours, reference)))
    return tables


def _markdown_line(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = [cell.replace("|", "\\|").ljust(width) for cell, width in zip(cells, widths)]
    return "| " + " | ".join(padded) + " |"


def render_markdown(evaluations: Sequence[Evaluation], reference: bool = True) -> str:
    """The tables as GitHub Markdown: a ``###`` caption, the table, then its footnotes as a list."""
    blocks = []
    for table in build_tables(evaluations, reference):
        lines = [table.header, *table.rows]
        widths = [max(len(row[i].replace("|", "\\|")) for row in lines) for i in range(len(table.header))]
        rule = [
            ":" + "-" * (w - 1) if i < len(TEXT_HEADERS) else "-" * (w - 1) + ":"
            for i, w in enumerate(widths)
        ]
        text = [
            f"### {table.caption}",
            "",
            _markdown_line(table.header, widths),
            _markdown_line(rule, widths),
        ]
        text += [_markdown_line(row, widths) for row in table.rows]
        text += ["", *[f"- {note}" for note in table.notes]]
        blocks.append("\n".join(text) + "\n")
    return "\n".join(blocks)


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "×": r"$\times$", DASH: "--",
}  # fmt: skip


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped (and × as ``$\\times$``, the dash as ``--``)."""
    return "".join(_LATEX_ESCAPES.get(char, char) for char in text)


def render_latex(evaluations: Sequence[Evaluation], reference: bool = True) -> str:
    """The tables as LaTeX ``table`` environments (``tabular`` with ``\\hline`` rules; footnotes in the
    caption)."""
    blocks = []
    for table in build_tables(evaluations, reference):
        columns = "l" * len(TEXT_HEADERS) + "r" * (len(table.header) - len(TEXT_HEADERS))
        caption = " ".join([table.caption + ".", *table.notes])
        lines = [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{latex_escape(caption)}}}",
            rf"\begin{{tabular}}{{{columns}}}",
            r"\hline",
            " & ".join(latex_escape(cell) for cell in table.header) + r" \\",
            r"\hline",
            *[" & ".join(latex_escape(cell) for cell in row) + r" \\" for row in table.rows],
            r"\hline",
            r"\end{tabular}",
            r"\end{table}",
        ]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def render(evaluations: Sequence[Evaluation], fmt: str = "markdown", reference: bool = True) -> str:
    """The tables in ``fmt``: "markdown", "latex" or "both" (Markdown, then LaTeX)."""
    parts = []
    if fmt in ("markdown", "both"):
        parts.append(render_markdown(evaluations, reference))
    if fmt in ("latex", "both"):
        parts.append(render_latex(evaluations, reference))
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="make_tables.py",
        description="Print the paper's Tables 1 (MPII), 2 (COCO val2017) and 3 (COCO test-dev2017) from\n"
        "evaluated runs, each beside the paper's own row, with the evaluated split in a column.\n"
        "Metrics in percent (1 decimal); #Params and GFLOPs counted at each run's input size.",
        epilog="examples:\n"
        "  python scripts/make_tables.py outputs/mpii_boxnet outputs/coco_boxnet\n"
        "  python scripts/make_tables.py outputs/*/ --format both --output tables.md\n"
        "  python scripts/make_tables.py outputs/oracle/val_coco/metrics.json --no-reference",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "run_dirs",
        nargs="+",
        metavar="RUN_DIR",
        help="a run directory (config.yaml, eval/<split>_<dataset>/metrics.json from boxpose-eval), "
        "a folder with a metrics.json inside, or a metrics.json file",
    )
    parser.add_argument(
        "--format",
        choices=("markdown", "latex", "both"),
        default="markdown",
        help="output format (default: markdown; both = Markdown, then LaTeX)",
    )
    parser.add_argument("--output", metavar="FILE", help="also write the tables to FILE")
    parser.add_argument("--no-reference", action="store_true", help="leave out the paper's reference rows")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        evaluations = collect_runs(args.run_dirs)
    except (FileNotFoundError, ValueError) as exc:
        parser.error(str(exc))  # exits with status 2
    text = render(evaluations, args.format, reference=not args.no_reference)
    print(text, end="")
    if args.output:
        Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
