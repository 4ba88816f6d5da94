"""The noise options declared once: ``noise``, ``batch``, ``edit`` and ``motion`` show the same
flags, help, panel and default for each option they share, the defaults are the library's, and
the parsed values become the same ``NoiseOptions`` as the library's own spelling."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import typer

from warpnoise.cli import load_commands
from warpnoise.cli.options import method_options, noise_options
from warpnoise.pipeline import NoiseOptions

#: Parameters of ``warpnoise noise`` that are not noise options: its input and outputs.
NOT_SHARED = {"input", "output", "preview", "quiet", "help"}
#: The noise options ``edit`` takes (it estimates DIS flow of its own frames at the model's
#: resolution; its --device and --dtype place the model too, and are its own).
EDIT_SHARED = {"method", "seed", "option", "backend", "dis_preset", "size", "scale", "start",
               "frames", "stride"}
#: The noise options ``motion`` takes (its flows are exact, its frames come from the motion).
MOTION_SHARED = {"method", "channels", "seed", "dtype", "device", "option", "backend", "latent",
                 "degradation", "degradation_map"}
#: CLI parameter -> NoiseOptions field, where the names differ.
FIELD = {"option": "method_options", "backend": "method_options"}


def declaration(param: Any) -> dict[str, Any]:
    """What a user sees of an option: flags, help, panel, default, type, hidden or not."""
    attrs = ("opts", "secondary_opts", "help", "rich_help_panel", "default", "multiple",
             "hidden", "is_flag", "required", "show_default", "metavar")
    described = getattr(param, "type_descriptor", None)  # Typer's; Click's is `type`
    kind = described.annotation if described is not None else getattr(param, "type", None)
    return {a: getattr(param, a, None) for a in attrs} | {"type": repr(kind)}


@pytest.fixture(scope="module")
def commands() -> dict[str, dict[str, dict[str, Any]]]:
    group = typer.main.get_command(load_commands())
    return {name: {p.name: declaration(p) for p in group.commands[name].params}
            for name in ("noise", "batch", "edit", "motion")}


def test_noise_options_are_declared_identically_in_noise_batch_and_edit(
        commands: dict[str, dict[str, dict[str, Any]]]) -> None:
    shared = set(commands["noise"]) - NOT_SHARED
    assert {"method", "latent", "degradation", "degradation_map", "device", "backend",
            "record_source_path"} <= shared
    for name in sorted(shared):
        batch = dict(commands["batch"][name])
        if name == "seed":  # the batch seed derives each video's: its own help, same flag
            assert "Each video's seed is a hash of it" in batch.pop("help")
            batch["help"] = commands["noise"][name]["help"]
        assert batch == commands["noise"][name], name
    for name in sorted(EDIT_SHARED):
        assert commands["edit"][name] == commands["noise"][name], name
    for name in sorted(MOTION_SHARED):
        assert commands["motion"][name] == commands["noise"][name], name
    assert "noise" not in commands["noise"] and "noise" not in commands["batch"]


def test_defaults_are_the_library_defaults(commands: dict[str, dict[str, dict[str, Any]]]
                                           ) -> None:
    values = {name: decl["default"] for name, decl in commands["noise"].items()
              if name not in NOT_SHARED}
    assert noise_options(**values) == NoiseOptions()
    defaults = {f.name: f.default for f in dataclasses.fields(NoiseOptions)
                if f.default is not dataclasses.MISSING}
    for name, value in values.items():
        if name not in FIELD and name not in ("size", "raft_weights", "degradation_map"):
            assert value == defaults[name], name


def test_noise_options_converts_the_cli_spellings(tmp_path: Path) -> None:
    opts = noise_options(method="persistent", size="64x48", option=["upsample=4", "x=a"],
                         backend="torch", raft_weights=tmp_path / "r.pth",
                         degradation_map=Path("m.png"), latent="wan2.1", degradation=0.0,
                         seed=3)
    assert opts == NoiseOptions(method="persistent", size=(64, 48),
                                method_options={"upsample": 4, "x": "a", "backend": "torch"},
                                raft_weights=str(tmp_path / "r.pth"), degradation_map="m.png",
                                latent="wan2.1", seed=3)


def test_backend_auto_is_left_out_and_twice_is_an_error() -> None:
    assert method_options(["upsample=2"], "auto") == {"upsample": 2}
    assert method_options(None, "numba") == {"backend": "numba"}
    with pytest.raises(ValueError, match=r"give --backend or --option backend=\.\.\., not both"):
        method_options(["backend=torch"], "numba")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        method_options(["upsample"])
