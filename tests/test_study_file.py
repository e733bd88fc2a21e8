"""Study files (TOML): parsed, never executed; paths relative to the file; the command line
over the file over the defaults, one rule for every setting."""

from __future__ import annotations

import pytest

from autotune.errors import ConfigError
from autotune.inputs.config import layered, make_config, read_study_file, storage_url


def _write(folder, text, name="mnist.toml"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_a_study_file_names_the_study_and_resolves_paths_against_its_folder(tmp_path):
    path = _write(
        tmp_path / "repo" / "studies",
        """
model = "../models/m.keras"
data = "../data/d.npz"
space = "pruning"
objective = "../objectives/mine.py"
budget = 30
seed = 7
storage = "sqlite:///team.db"

[constraints]
max_accuracy_drop = 0.02
max_p99_ms = 4.5
max_size_kb = 300
""",
    )
    v = read_study_file(path)
    repo = (tmp_path / "repo").resolve()
    assert v["study"] == "mnist"
    assert v["model"] == str(repo / "models" / "m.keras") and v["data"] == str(repo / "data" / "d.npz")
    assert v["space"] == "pruning"  # a name stays a name
    assert v["objective"] == str(repo / "objectives" / "mine.py")
    assert (v["budget"], v["seed"]) == (30, 7)
    assert v["storage"] == f"sqlite:///{repo / 'studies' / 'team.db'}"  # beside the file, from any directory
    assert (v["max_accuracy_drop"], v["max_p99_ms"], v["max_size_kb"]) == (0.02, 4.5, 300)


def test_loaders_stay_loaders_and_a_loader_file_is_resolved(tmp_path):
    v = read_study_file(_write(tmp_path, 'model = "m.keras"\ndata = "mypkg.data:load"\n'))
    assert v["data"] == "mypkg.data:load"
    v = read_study_file(_write(tmp_path, 'model = "m.keras"\ndata = "loaders/d.py:load"\n'))
    assert v["data"] == f"{(tmp_path / 'loaders' / 'd.py').resolve()}:load"


def test_command_line_over_file_over_defaults():
    file_values = {"study": "s", "budget": 30, "seed": 7, "max_accuracy_drop": 0.02}
    flags = {"budget": 5, "seed": None, "max_accuracy_drop": None, "space": "quick"}
    merged = layered(flags, file_values)
    config = make_config(**merged)
    assert config.budget == 5  # command line
    assert config.seed == 7 and config.max_accuracy_drop == 0.02  # file
    assert config.space == "quick"  # command line, file silent
    assert config.objective == "latency"  # default


def test_storage_follows_the_same_rule(monkeypatch):
    monkeypatch.setenv("AUTOTUNE_STORAGE", "sqlite:///env.db")
    assert storage_url("sqlite:///flag.db", "sqlite:///file.db") == "sqlite:///flag.db"
    assert storage_url(None, "sqlite:///file.db") == "sqlite:///file.db"
    assert storage_url(None, None) == "sqlite:///env.db"
    monkeypatch.delenv("AUTOTUNE_STORAGE")
    assert storage_url(None, None) == "sqlite:///studies/autotune.db"


@pytest.mark.parametrize(
    "text, words",
    [
        ("budget = 'ten'", "budget must be an integer"),
        ("seed = true", "seed must be an integer"),
        ("bugdet = 10", "unknown key 'bugdet'"),
        ("[constraints]\nmax_latency = 3", "unknown key 'constraints.max_latency'"),
        ("constraints = 3", "must be a table"),
        ("max_accuracy_drop = 0.1\n[constraints]\nmax_accuracy_drop = 0.2", "both at the top and in"),
        ("model = [1, 2]", "model must be a string"),
        ("budget = ", "not valid TOML"),
    ],
)
def test_a_bad_study_file_is_one_line(tmp_path, text, words):
    with pytest.raises(ConfigError, match=words):
        read_study_file(_write(tmp_path, text))


def test_a_missing_study_file(tmp_path):
    with pytest.raises(ConfigError, match="study file not found"):
        read_study_file(tmp_path / "nope.toml")


def test_the_command_line_overrides_the_file_through_the_cli(tmp_path, monkeypatch):
    """Fails before TensorFlow: the model named decides the message, the storage named gets the file."""
    from typer.testing import CliRunner

    from autotune.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTOTUNE_STORAGE", f"sqlite:///{tmp_path / 'env.db'}")
    (tmp_path / "d.npz").write_bytes(b"")
    path = _write(tmp_path / "studies", 'model = "from-file.keras"\ndata = "../d.npz"\nstorage = "file.db"\n')
    path.write_text(path.read_text().replace('"file.db"', '"sqlite:///file.db"'))
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2 and "from-file.keras" in result.output
    assert (tmp_path / "studies" / "file.db").exists() and not (tmp_path / "env.db").exists()
    result = CliRunner().invoke(app, ["run", str(path), "--model", "from-flag.keras", "--storage", f"sqlite:///{tmp_path / 'flag.db'}"])
    assert result.exit_code == 2 and "from-flag.keras" in result.output and "from-file" not in result.output
    assert (tmp_path / "flag.db").exists()
