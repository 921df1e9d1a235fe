"""``rewardloop policies quantize``: an int8 copy of a registered generator, registered as its own
version (tiny random model of the SmolLM2 architecture)."""

from __future__ import annotations

import json
import typing

import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("gguf")

from rewardloop.cli.main import app
from rewardloop.cli.policies import Int8Method
from rewardloop.config.template import render_template
from rewardloop.loop.serving import load_policy
from rewardloop.policies.generator import GeneratorPolicy
from rewardloop.policies.int8 import QUANTIZATIONS
from rewardloop.registry import Registry
from rewardloop.store import Store

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny() -> GeneratorPolicy:
    return GeneratorPolicy.random(seed=1, name="helper", version="1.0.0", max_new_tokens=4)


@pytest.fixture
def project(tmp_path, monkeypatch, tiny: GeneratorPolicy):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rewardloop.yaml").write_text(render_template(f"sqlite:///{tmp_path / 'rl.db'}"))
    tiny.save(tmp_path / "helper")
    (tmp_path / "clf").mkdir()
    (tmp_path / "clf" / "state.json").write_text("{}")
    for name, folder, kind in (("helper", "helper", "generator"), ("intent", "clf", "classifier")):
        result = runner.invoke(
            app, ["policies", "register", name, folder, "--kind", kind, "--version", "1.0.0"]
        )
        assert result.exit_code == 0, result.output
    return tmp_path


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def test_quantize_registers_an_int8_child_that_serves_like_the_in_memory_copy(project, tiny) -> None:
    result = runner.invoke(app, ["policies", "quantize", "helper@1.0.0", "--json"])
    assert result.exit_code == 0, result.output
    pv = json.loads(result.stdout)  # stdout holds the JSON alone (progress bars go to stderr)
    assert (pv["policy"], pv["version"], pv["kind"], pv["parent_version"]) == (
        "helper",
        "1.0.1",
        "generator",
        "1.0.0",
    )
    assert pv["config"] == {"quantization": "int8-dynamic", "quantized_from": "1.0.0"}
    store = Store.open(f"sqlite:///{project / 'rl.db'}")
    reg = Registry(store, "registry")
    served = load_policy("generator", reg.artifact_path("helper@1.0.1"))
    assert reg.aliases("helper") == {}  # no alias moved: the copy is a challenger like any other
    store.close()
    assert isinstance(served, GeneratorPolicy) and served.quantization == "int8-dynamic"
    assert served.version == "1.0.1"
    ids = tiny.tokenizer("turn on the fan", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = tiny.quantized("int8-dynamic").model(ids).logits
        assert torch.equal(served.model(ids).logits, expected)
    # The weight-only method, under a version given.
    code, out = _run("policies", "quantize", "helper@1.0.0", "--method", "int8-weight", "--version", "2.0.0")
    assert code == 0, out
    assert "registered helper@2.0.0 (int8-weight of 1.0.0)" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["helper@9.9.9"], 3, "helper@9.9.9 is not registered"),
        (["helper"], 3, "champion"),  # a bare name is its champion; helper has none yet
        (["nobody@1.0.0"], 3, "nobody"),
        (["intent@1.0.0"], 2, "intent@1.0.0 is a classifier policy, not a generator"),
        (["helper@1.0.0", "--version", "1.0.0"], 2, "helper@1.0.0 is registered already"),
        (["helper@1.0.0", "--method", "int4"], 2, "int4"),
    ],
)
def test_bad_requests_are_named_and_register_nothing(project, args, code, message) -> None:
    got, out = _run("policies", "quantize", *args)
    assert got == code, out
    assert message in out and "Traceback" not in out
    store = Store.open(f"sqlite:///{project / 'rl.db'}")
    assert [v.version for v in Registry(store, "registry").versions("helper")] == ["1.0.0"]
    store.close()


def test_an_int8_version_is_not_quantised_again(project) -> None:
    assert _run("policies", "quantize", "helper@1.0.0")[0] == 0
    code, out = _run("policies", "quantize", "helper@1.0.1")
    assert code == 2 and "helper@1.0.1: this policy is already int8-dynamic" in out


def test_help_names_the_methods_and_they_are_the_policies_own() -> None:
    code, out = _run("policies", "quantize", "--help")
    assert code == 0 and "int8-dynamic" in out and "int8-weight" in out and "--json" in out
    assert set(typing.get_args(Int8Method)) == set(QUANTIZATIONS)
