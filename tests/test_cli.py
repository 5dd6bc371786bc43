"""Every command and subcommand answers --help; unknown options and bad input exit 2 with one clean line."""

import argparse
import subprocess
import sys

import pytest

from edgekd.cli.main import build_parser, main


def _command_paths(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,)
                yield from _command_paths(sub, prefix + (name,))


COMMANDS = list(_command_paths(build_parser()))


def test_command_list_is_not_empty():
    assert ("models",) in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_everywhere(path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*path, "--help"])
    assert exc.value.code == 0
    assert "usage: edgekd" in capsys.readouterr().out


def test_unknown_option_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["models", "--no-such-option"])
    assert exc.value.code == 2


def test_models_json(capsys):
    import json

    assert main(["models", "--blocks", "1", "12", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["paper_params"] for r in rows] == [23292, 863676]


def test_console_script_runs_without_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "edgekd.cli.main", "models"], capture_output=True, text=True)
    assert out.returncode == 0 and "paper params" in out.stdout


def test_every_training_flag_defaults_to_the_library_default():
    """One source of defaults: `edgekd train`'s flags are RunConfig's fields at RunConfig's values, and `edgekd
    lodo`'s are its plan's (whose training settings are RunConfig's), so a CLI run, a sweep and the Python API
    train the same model."""
    from dataclasses import fields

    from edgekd.cli.lodo import _with_defaults
    from edgekd.cli.main import build_parser
    from edgekd.lodo import LodoPlan
    from edgekd.runs import RunConfig

    args = vars(build_parser().parse_args(["train", "--blocks", "2", "--out", "x"]))
    run = RunConfig()
    shared = [f.name for f in fields(RunConfig) if f.name in args and f.name not in ("blocks", "in_channels", "width")]
    assert len(shared) >= 12  # the training schedule, split, selection, labels, device
    assert {k: args[k] for k in shared} == {k: getattr(run, k) for k in shared}
    assert run.select_on == "val_mae" and LodoPlan().epochs == run.epochs and LodoPlan().label_sigma == run.label_sigma
    lodo = vars(_with_defaults(build_parser().parse_args(["lodo", "a.npz"])))
    plan = LodoPlan()
    for f in fields(LodoPlan):
        if f.name in lodo and f.name != "seeds_for":
            value = lodo[f.name]
            assert (tuple(value) if isinstance(value, list) else value) == getattr(plan, f.name), f.name
