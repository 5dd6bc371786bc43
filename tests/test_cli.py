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
