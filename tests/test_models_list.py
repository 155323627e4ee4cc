"""`soundseek models list`: expert dims from the registry (nothing built), sizes from the zoo
registry, and a second table of the `--model` values."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner


def test_models_list_builds_no_expert_and_lists_model_specs(monkeypatch):
    from soundseek import cli as main_cli
    from soundseek.experts import cli as ecli
    from soundseek.experts import registry

    def no_build(*a, **k):
        raise AssertionError("models list must not build (load) an expert")

    monkeypatch.setattr(ecli, "get_expert", no_build)
    monkeypatch.setattr(registry, "get_expert", no_build)
    rows = {r["name"]: r for r in ecli.expert_rows()}
    assert rows["aisfx"]["dim"] == "512" and rows["yamnet"]["dim"] == "1024" and rows["minilm"]["dim"] == "384"
    assert all(r["dim"] != "?" for r in rows.values())
    assert rows["panns-resnet38"]["size"] == "~295 MB" and rows["passt"]["size"] == "~345 MB"
    assert rows["vggish"]["size"] == "~289 MB" and rows["panns-cnn14"]["size"] == "327 MB"

    res = CliRunner().invoke(main_cli.app, ["models", "list"], terminal_width=200)
    assert res.exit_code == 0, res.output
    for spec in ("default", "aisfx-minilm-v1", "quality", "native:A+T"):
        assert spec in res.output
    assert "--model" in res.output
    # piped (no terminal, COLUMNS unset): cells are not folded ("ships-in-packag" / "e" on two lines)
    monkeypatch.delenv("COLUMNS", raising=False)
    piped = CliRunner().invoke(main_cli.app, ["models", "list"])
    assert piped.exit_code == 0 and "ships-in-package" in piped.output, piped.output
    # a --model value is not an expert: said so (was only "unknown expert 'default'")
    res = CliRunner().invoke(main_cli.app, ["models", "download", "default"], terminal_width=300)
    assert res.exit_code != 0 and "ships inside soundseek: nothing to download" in res.output, res.output


@pytest.mark.slow
def test_registered_dims_match_the_built_experts():
    from soundseek.experts import available, get_expert

    for entry in available():
        if entry.offline:
            assert entry.dim == get_expert(entry.name).dim, entry.name
