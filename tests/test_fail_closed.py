"""Issue 13 as a table: bad invocations, faults and interruptions through the real CLI (a subprocess each).

Every case must exit 2 with one `edgekd ...: error:` line on stderr naming the problem, no traceback, no
"internal error", and leave no output behind. The cases run two at a time (each pays the CLI's start-up).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from edgekd.atomic import write_json
from edgekd.runs import RunConfig
from edgekd.train import train_run

EDGEKD = [sys.executable, "-m", "edgekd.cli.main"]
BUDGET = 'mcu = "m33-160-xcubeai"\n[limits]\nflatbuffer_kb = 500\narena_kb = 256\nlatency_ms = 50\n'
TRAIN = ["--data", "syn.npz", "--blocks", "1", "--epochs", "1", "--quiet"]
SWEEP = 'teachers = [2]\nstudents = [1]\nstrategies = ["scratch", "dkd"]\nfolds = 2\n'


@dataclass
class Case:
    name: str
    argv: list[str]
    expect: str  # a substring of the error line
    absent: list[str] = field(default_factory=list)  # outputs that must not exist afterwards
    setup: Callable[[Path], None] | None = None


def _edit_npz(src: str, dst: str, **arrays) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        z = dict(np.load(root / src))
        z.update({k: (v(z) if callable(v) else v) for k, v in arrays.items()})
        np.savez(root / dst, **z)
    return setup


def _run_copy(name: str, edit: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        shutil.copytree(root / "runs" / "r1", root / "runs" / name)
        edit(root / "runs" / name)
    return setup


def _set_blocks(value) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        cfg = json.loads((run / "config.json").read_text())
        cfg["model"]["blocks"] = value
        write_json(run / "config.json", cfg)
    return edit


def _art_copy(name: str, edit: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        shutil.copytree(root / "art", root / name)
        edit(root / name)
    return setup


def _truncate(file: str, keep: int) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = (folder / file).read_bytes()
        (folder / file).write_bytes(data[:keep])
    return edit


def _write(name: str, text: str) -> Callable[[Path], None]:
    return lambda root: (root / name).write_text(text)


def _csv(root: Path) -> None:
    t = np.arange(0, 60, 1 / 50)
    rows = [f"{a:.3f},{np.sin(2 * np.pi * 1.2 * a):.5f},72" for a in t]
    rows[100] = rows[100].rsplit(",", 1)[0]  # a row with a missing field
    (root / "short.csv").write_text("t,green,hr\n" + "\n".join(rows) + "\n")
    good = [f"{a:.3f},{np.sin(2 * np.pi * 1.2 * a):.5f},72" for a in t]
    (root / "rec.csv").write_text("t,green,hr\n" + "\n".join(good) + "\n")
    good[50] += ",99"  # a row with an extra field (the fast parser's path)
    (root / "long.csv").write_text("t,green,hr\n" + "\n".join(good) + "\n")


CSV = ["data", "prepare", "--dataset", "csv", "--root", "rec.csv", "--out", "c.npz", "--option", "hr_column=hr"]

CASES = [
    # 1. the gate reads the files
    Case("gate-deleted-files", ["gate", "B.toml", "a1"], "model.onnx: missing",
         setup=_art_copy("a1", lambda a: [(a / f).unlink() for f in
                                          ("model_int8.tflite", "model.onnx", "model_int8.onnx")])),
    Case("gate-grown-flatbuffer", ["gate", "B.toml", "a2"], "card.json records",
         setup=_art_copy("a2", lambda a: open(a / "model_int8.tflite", "ab").write(b"\0" * 2_000_000))),
    Case("gate-unknown-mcu", ["gate", "U.toml", "art"], "unknown MCU 'nosuch'",
         setup=_write("U.toml", 'mcu = "nosuch"\n[limits]\nflatbuffer_kb = 500\n')),
    # 2. interrupted or stale runs
    Case("evaluate-incomplete-run", ["evaluate", "runs/killed", "--data", "syn.npz"], "is incomplete",
         setup=_run_copy("killed", lambda r: (r / "metrics.json").unlink())),
    Case("distill-incomplete-teacher", ["distill", "--data", "syn.npz", "--teacher", "runs/killed2", "--epochs", "1",
                                        "--out", "d2", "--quiet"], "is incomplete", ["d2"],
         setup=_run_copy("killed2", lambda r: (r / "metrics.json").unlink())),
    Case("export-incomplete-run", ["export", "runs/killed3", "--data", "syn.npz", "--out", "x3"], "is incomplete",
         ["x3"], setup=_run_copy("killed3", lambda r: (r / "metrics.json").unlink())),
    Case("evaluate-weights-of-another-run", ["evaluate", "runs/swapped", "--data", "syn.npz"],
         "is not the model its metrics.json scored",
         setup=_run_copy("swapped", lambda r: shutil.copy(r.parent / "r2" / "model.safetensors", r))),
    # 3. output paths and a full disk (RLIMIT_FSIZE: a full disk as the process sees it)
    Case("synth-out-under-a-file", ["data", "synth", "--out", "syn.npz/x.npz"], "syn.npz is a file"),
    Case("synth-out-is-a-folder", ["data", "synth", "--out", "dir.npz"], "is a folder",
         setup=lambda root: (root / "dir.npz").mkdir()),
    Case("gate-junit-under-a-file", ["gate", "B.toml", "art", "--junit", "syn.npz/g.xml"], "syn.npz is a file"),
    Case("synth-disk-full", ["data", "synth", "--out", "big.npz", "--minutes", "12", "@fsize=60000"], "disk full",
         ["big.npz", "big.json"]),
    Case("train-disk-full", ["train", *TRAIN, "--blocks", "4", "--out", "runs/full", "@fsize=60000"], "disk full",
         ["runs/full/metrics.json"]),
    # CSV loader options and integrity
    Case("csv-fs-zero", [*CSV, "--option", "ppg_column=green", "--option", "fs=0"], "implausible sampling rate",
         ["c.npz"], setup=_csv),
    Case("csv-fs-text", [*CSV, "--option", "ppg_column=green", "--option", "fs=abc"], "option fs must be a number",
         ["c.npz"], setup=_csv),
    Case("csv-acc-scale-text", [*CSV, "--option", "ppg_column=green", "--option", "fs=50", "--option",
                                "acc_scale=abc"], "option acc_scale must be a number", ["c.npz"], setup=_csv),
    Case("csv-numeric-column-name", [*CSV, "--option", "ppg_column=1", "--option", "fs=50"], "missing column(s) '1'",
         ["c.npz"], setup=_csv),
    Case("csv-row-missing-a-field", ["data", "prepare", "--dataset", "csv", "--root", "short.csv", "--out", "s.npz",
                                     "--option", "hr_column=hr", "--option", "ppg_column=green", "--option", "fs=50"],
         "line 102 has 2 field(s)", ["s.npz"], setup=_csv),
    Case("csv-row-extra-field", ["data", "prepare", "--dataset", "csv", "--root", "long.csv", "--out", "l.npz",
                                 "--option", "hr_column=hr", "--option", "ppg_column=green", "--option", "fs=50"],
         "line 52 has 4 field(s)", ["l.npz"], setup=_csv),
    Case("windowset-corrupt-deflate", ["data", "info", "z.npz"], "cannot read WindowSet",
         setup=lambda root: _corrupt_npz(root)),
    # WindowSet validation
    Case("windowset-provenance-not-json", ["data", "info", "p1.npz"], "'provenance_json' is not valid JSON",
         setup=_edit_npz("syn.npz", "p1.npz", provenance_json=np.asarray("not json"))),
    Case("windowset-provenance-list", ["data", "info", "p2.npz"], "must hold a JSON object",
         setup=_edit_npz("syn.npz", "p2.npz", provenance_json=np.asarray("[1, 2]"))),
    Case("windowset-hr-strings", ["train", "--data", "p3.npz", "--blocks", "1", "--out", "r3"], "'hr' must hold real",
         ["r3"], setup=_edit_npz("syn.npz", "p3.npz", hr=lambda z: np.asarray(["x"] * len(z["hr"])))),
    Case("windowset-hr-5000", ["data", "info", "p4.npz"], "outside the plausible 20-250 BPM",
         setup=_edit_npz("syn.npz", "p4.npz", hr=lambda z: np.full(len(z["hr"]), 5000.0, np.float32))),
    Case("windowset-complex-x", ["data", "info", "p5.npz"], "'x' must hold real numbers",
         setup=_edit_npz("syn.npz", "p5.npz", x=lambda z: z["x"].astype(np.complex64))),
    # run config
    Case("config-blocks-text", ["evaluate", "runs/b1", "--data", "syn.npz"], "model 'blocks' must be",
         setup=_run_copy("b1", _set_blocks("abc"))),
    Case("config-blocks-zero-export", ["export", "runs/b2", "--data", "syn.npz", "--out", "x4"], "model 'blocks' must",
         ["x4"], setup=_run_copy("b2", _set_blocks(0))),
    Case("config-blocks-negative-teacher", ["distill", "--data", "syn.npz", "--teacher", "runs/b3", "--out", "d3",
                                            "--epochs", "1"], "model 'blocks' must", ["d3"],
         setup=_run_copy("b3", _set_blocks(-1))),
    Case("nan-weights", ["evaluate", "runs/nan", "--data", "syn.npz"], "non-finite (NaN or infinite) weights",
         setup=lambda root: _nan_run(root)),
    # corrupt model files (the card's sha256 catches them before any runtime parses them)
    Case("bench-truncated-tflite", ["bench", "t1", "--runtimes", "tflm", "--repeat", "2", "--out", "t1o"],
         "model_int8.tflite", ["t1o"], setup=_art_copy("t1", _truncate("model_int8.tflite", 20_000))),
    Case("evaluate-truncated-tflite", ["evaluate", "t2", "--runtime", "tflm", "--data", "syn.npz"],
         "model_int8.tflite", setup=_art_copy("t2", _truncate("model_int8.tflite", 20_000))),
    Case("evaluate-truncated-onnx", ["evaluate", "t3", "--runtime", "onnx", "--data", "syn.npz"], "model.onnx",
         setup=_art_copy("t3", _truncate("model.onnx", 2_000))),
    # CLI numbers
    *[Case(f"train{flag}={value}", ["train", *TRAIN, flag, value, "--out", "rn"], "error: argument", ["rn"])
      for flag, value in (("--epochs", "0"), ("--epochs", "-1"), ("--batch-size", "0"), ("--batch-size", "-5"),
                          ("--lr", "-1"), ("--lr", "nan"), ("--threads", "-1"), ("--patience", "-1"))],
    Case("fold-holdout-text", ["train", *TRAIN, "--fold", "holdout:abc", "--out", "rf"], "held-out fraction", ["rf"]),
    Case("fold-holdout-2", ["train", *TRAIN, "--fold", "holdout:2", "--out", "rf2"], "held-out fraction", ["rf2"]),
    Case("device-banana", ["train", *TRAIN, "--device", "banana", "--out", "rd"], "unknown device 'banana'", ["rd"]),
    Case("param-list", ["distill", "--data", "syn.npz", "--param", "T=[1,2]", "--out", "dp"], "number or null", ["dp"]),
    *[Case(f"param-T={value}", ["distill", "--data", "syn.npz", "--param", f"T={value}", "--out", f"dT{i}"],
           "strategy parameter T must be a number > 0", [f"dT{i}"]) for i, value in enumerate(("0", "-1", "NaN"))],
    Case("strategy-negative-weight", ["distill", "--data", "syn.npz", "--strategy", "dkd=-1", "--out", "ds"],
         "strategy weight of 'dkd' must be a positive number", ["ds"]),
    Case("teacher-epochs-negative", ["distill", "--data", "syn.npz", "--teacher-epochs", "-1", "--out", "dt"],
         "error: argument --teacher-epochs", ["dt"]),
    Case("synth-minutes-nan", ["data", "synth", "--minutes", "nan", "--out", "n.npz"], "error: argument --minutes",
         ["n.npz"]),
    Case("rank-truncated-results", ["rank", "trunc.csv"], "truncated or edited table",
         setup=lambda root: _truncated_results(root)),
    Case("scaling-truncated-results", ["scaling", "trunc2.csv"], "truncated or edited table",
         setup=lambda root: _truncated_results(root, "trunc2.csv")),
    # sweep plans validated whole, before the first run
    *[Case(f"sweep-{label}", ["sweep", f"s{i}.toml", "--data", "syn.npz", "--out", f"sw{i}"], expect, [f"sw{i}"],
           setup=_write(f"s{i}.toml", toml))
      for i, (label, toml, expect) in enumerate((
          ("banana", SWEEP.replace('"dkd"', '"banana"'), "unknown strategy 'banana'"),
          ("student-0", SWEEP.replace("students = [1]", "students = [0]"), "blocks must be an integer 1..12"),
          ("student-99", SWEEP.replace("students = [1]", "students = [99]"), "blocks must be an integer 1..12"),
          ("epochs", SWEEP + "[train]\nepochs = -1\n", "epochs must be an integer >= 1"),
          ("lr-text", SWEEP + '[train]\nlr = "abc"\n', "lr must be a finite number"),
          ("param-text", SWEEP + '[params]\nT = "x"\n', "strategy parameter T must be a number"),
          ("synthetic-on-synthetic", SWEEP + '[train]\nsynthetic = 2\n',
           "syn.npz: the data already hold the synthetic corpus")))],
    Case("train-synthetic-on-synthetic", ["train", *TRAIN, "--synthetic", "2", "--out", "ts"],
         "syn.npz: the data already hold the synthetic corpus", ["ts"]),
]


def _nan_run(root: Path) -> None:
    from safetensors.torch import load_file, save_file

    run = root / "runs" / "nan"
    shutil.copytree(root / "runs" / "r1", run)
    state = load_file(run / "model.safetensors")
    state[next(k for k in state if k.endswith("weight"))].fill_(float("nan"))
    save_file(state, str(run / "model.safetensors"))
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.pop("weights_sha256")  # as an older edgekd wrote it: the NaN check must still refuse it
    write_json(run / "metrics.json", metrics)


def _corrupt_npz(root: Path) -> None:
    data = bytearray((root / "syn.npz").read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(64)  # inside a compressed member: the zip directory stays valid
    (root / "z.npz").write_bytes(bytes(data))


def _truncated_results(root: Path, name: str = "trunc.csv") -> None:
    text = (root / "results.csv").read_text()
    (root / name).write_text(text[:-40])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_artifact) -> Path:
    """An empty folder with syn.npz, two complete runs, an artifact, a budget and a results table."""
    from edgekd.data.synthetic import generate
    from edgekd.sweep import PlannedRun, result_row, write_results

    root = tmp_path_factory.mktemp("hostile")
    ws = generate(subjects=4, minutes=2.0, seed=0)
    ws.save(root / "syn.npz")
    rows = []
    for name, seed in (("r1", 0), ("r2", 1)):
        cfg = RunConfig(blocks=1, epochs=1, seed=seed, device="cpu")
        rows.append(result_row(PlannedRun(name, cfg, None), train_run(ws, cfg, root / "runs" / name, progress=False)))
    write_results(root, rows * 2)
    shutil.copytree(tiny_artifact, root / "art")
    (root / "B.toml").write_text(BUDGET)
    for case in CASES:
        if case.setup:
            case.setup(root)
    return root


def _invoke(root: Path, argv: list[str]) -> subprocess.CompletedProcess:
    fsize = next((int(a.split("=")[1]) for a in argv if a.startswith("@fsize=")), None)
    argv = [a for a in argv if not a.startswith("@fsize=")]

    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    env = {k: v for k, v in os.environ.items() if k != "EDGEKD_DEBUG"}
    return subprocess.run([*EDGEKD, *argv], cwd=root, capture_output=True, text=True, timeout=300, env=env,
                          stdin=subprocess.DEVNULL, preexec_fn=limit if fsize else None)


@pytest.fixture(scope="module")
def outcomes(workdir: Path) -> dict[str, subprocess.CompletedProcess]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda c: _invoke(workdir, c.argv), CASES))
    return {c.name: r for c, r in zip(CASES, results)}


def _error_lines(stderr: str) -> list[str]:
    # TensorFlow and absl log to stderr on import; edgekd's own words are the lines it prefixes.
    return [line for line in stderr.splitlines() if line.startswith("edgekd")]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_exits_2_with_one_line(case: Case, outcomes, workdir: Path):
    result = outcomes[case.name]
    lines = _error_lines(result.stderr)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr[-2000:]
    if case.argv[0] == "gate" and not lines:  # the gate reports unevaluable artifacts in its table
        assert "gate: ERROR" in result.stdout and case.expect in result.stdout, result.stdout[-2000:]
    else:
        assert len(lines) == 1 and ": error: " in lines[0], result.stderr[-2000:]
        assert case.expect in lines[0], lines[0]
    for rel in case.absent:
        assert not (workdir / rel).exists(), f"{rel} left behind"


def test_disk_full_never_pairs_a_new_npz_with_a_stale_sidecar(workdir: Path):
    before = {p: (workdir / p).read_bytes() for p in ("syn.npz", "syn.json")}
    result = _invoke(workdir, ["data", "synth", "--minutes", "12", "--out", "syn.npz", "@fsize=60000"])
    assert result.returncode == 2 and "disk full" in result.stderr
    assert {p: (workdir / p).read_bytes() for p in before} == before  # the old pair, untouched


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_outputs_honour_the_umask(workdir: Path):
    with _umask(0o022):
        assert _invoke(workdir, ["data", "synth", "--subjects", "2", "--minutes", "1", "--out", "m/m.npz"]).returncode == 0
        assert _invoke(workdir, ["export", "runs/r1", "--data", "syn.npz", "--out", "models/m", "--int8",
                                 "--fusion-weight", "2", "--model-weight", "0.5", "--clear-quality", "0.3",
                                 "--unclear-weight", "0.5", "--motion-g", "0.15", "--fusion-floor", "0.02",
                                 "--tracker-sigma", "4", "--tracker-kind", "laplace"]).returncode == 0
    modes = {p: (workdir / p).stat().st_mode & 0o777 for p in ("m/m.npz", "m/m.json", "models/m",
                                                                 "models/m/model.onnx", "models/m/card.json")}
    assert modes == {"m/m.npz": 0o644, "m/m.json": 0o644, "models/m": 0o755, "models/m/model.onnx": 0o644,
                     "models/m/card.json": 0o644}
    card = json.loads((workdir / "models/m/card.json").read_text())  # the decoder setting reaches the card
    assert card["accuracy"]["decoder"]["fusion"] == {"weight": 2.0, "floor": 0.02, "model_weight": 0.5,
                                                   "clear_quality": 0.3, "unclear_weight": 0.5, "motion_g": 0.15}
    assert card["accuracy"]["decoder"]["tracker"] == {"sigma_bpm": 4.0, "temperature": 1.0, "kind": "laplace",
                                                    "floor": 0.001}
    md = (workdir / "models/m/card.md").read_text()
    assert "/* 0.5f, 2.0f, 0.02f, 0.3f, 0.5f, 0.15f */" in md  # model_data.h's
    assert "/* 4.0f, 1.0f, HR_TRACKER_LAPLACE, 0.001f; once per recording */" in md and "M_NUM_CLASSES" in md
    header = (workdir / "models/m/model_data.h").read_text()
    assert "#define M_FUSION_WEIGHT 2.0f" in header and "#define M_FUSION_CLEAR_QUALITY 0.3f" in header
    assert "#define M_FUSION_MOTION_G 0.15f" in header


def test_a_killed_exports_leftovers_are_cleaned_and_never_ranked(workdir: Path):
    folder = workdir / "ranked"
    folder.mkdir()
    stale = folder / ".k.ab12cd_4.partial"  # what mkdtemp names a build folder of ranked/k
    shutil.copytree(workdir / "art", stale)
    old = folder / ".k.old-123"
    old.mkdir()
    other = folder / ".k.v2.zz99yy88.partial"  # another target's build (ranked/k.v2): left alone
    other.mkdir()
    result = _invoke(workdir, ["rank", "results.csv", "--bench", "ranked", "--cost", "arena", "--json"])
    assert result.returncode == 2 and "no card.json" in result.stderr  # the hidden copy is not read
    assert _invoke(workdir, ["export", "runs/r1", "--data", "syn.npz", "--out", "ranked/k"]).returncode == 0
    assert not stale.exists() and not old.exists() and (folder / "k" / "card.json").is_file()
    assert other.is_dir()


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tiny file system at ``path`` (root only: a real full disk, unlike RLIMIT_FSIZE, which also breaks
    TensorFlow's own scratch files); skips the test where it cannot be mounted."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def test_export_onto_a_full_disk_leaves_nothing(workdir: Path):
    with _tmpfs(workdir / "full", "200k") as full:
        result = _invoke(workdir, ["export", "runs/r1", "--int8", "--data", "syn.npz", "--out", "full/art"])
        assert result.returncode == 2, result.stderr[-2000:]
        assert _error_lines(result.stderr) == ["edgekd: error: full/art: disk full while exporting; nothing was "
                                               "written"]
        assert list(full.iterdir()) == []
