"""CLI behaviour that needs no TensorFlow: bad input is one line and exit 2, nothing written."""

import subprocess
import sys

from typer.testing import CliRunner

from autotune.cli import app

runner = CliRunner()


def test_importing_the_cli_and_engine_does_not_import_tensorflow():
    code = "import autotune.cli, autotune.study.run, autotune.results.export, autotune.results.front, sys; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_studies_on_a_new_storage_lists_nothing(empty_workdir):
    result = runner.invoke(app, ["studies"])
    assert result.exit_code == 0, result.output
    assert "studies" in result.output


def test_unknown_study_is_one_line_and_exit_2(empty_workdir):
    for args in (["front", "nope"], ["resume", "nope"], ["export", "nope", "--out", "x"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, args
        assert "no study named 'nope'" in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_bad_flags_are_refused_before_anything_is_created(empty_workdir):
    cases = [
        (["run", "--budget", "0"], "--budget must be at least 1"),
        (["run", "--model", "m.keras"], "--model needs --data"),
        (["run", "--data", "d.npz"], "--data needs --model"),
        (["run", "--study", "bad name!"], "study name"),
        (["run", "--model", "missing.keras", "--data", "missing.npz"], "not found"),
        (["run", "--space", "nope"], "unknown search space"),
        (["front", "x", "--format", "xml"], "--format"),
    ]
    for args, words in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert words in result.output, (args, result.output)
    assert not (empty_workdir / "studies" / "demo").exists()


def test_a_storage_password_is_never_printed(empty_workdir):
    result = runner.invoke(app, ["studies", "--storage", "postgresql://me:hunter2@127.0.0.1:1/none"])
    assert result.exit_code == 2
    assert "hunter2" not in result.output and "***" in result.output


def test_a_value_outside_the_choices_is_one_line_naming_them(empty_workdir):
    cases = [
        (["front", "x", "--format", "xml"], "--format must be one of table, json, csv, not 'xml'"),
        (["export", "x", "--out", "o", "--prefer", "fastest"], "--prefer must be one of latency, accuracy, size, knee, not 'fastest'"),
    ]
    for args, line in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.strip() == f"autotune: error: {line}"
    assert not (empty_workdir / "o").exists()


def test_other_usage_errors_are_one_line_and_exit_2(empty_workdir):
    for args, words in ((["front", "x", "--bogus"], "No such option: --bogus"), (["front"], "Missing argument"), (["nosuch"], "No such command")):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert words in result.output and len(result.output.strip().splitlines()) == 1, (args, result.output)


def test_help_shows_the_choices():
    assert "table|json|csv" in runner.invoke(app, ["front", "--help"]).output
    result = runner.invoke(app, ["export", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "latency|accuracy|size|knee" in result.output
