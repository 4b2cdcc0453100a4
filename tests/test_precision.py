"""trainer.precision=auto, float32 loss terms and GECO under bf16, and resume across precisions."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import lns.train
from lns.models import Autoencoder
from lns.objectives import GecoObjective, kl_divergence, reconstruction_error
from lns.segment import segment
from lns.train import train
from lns.training import precision
from tests.helpers import TINY_SEGMENT, TINY_TRAIN, compose_config


def fake_cpu(monkeypatch: pytest.MonkeyPatch, *, amx: bool, avx512_bf16: bool) -> None:
    """Make torch report a CPU with or without AMX / AVX512-BF16, and no GPU."""
    monkeypatch.setattr(torch._C._cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch._C._cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "expected"),
    [(False, False, "32-true"), (True, False, "bf16-mixed"), (False, True, "bf16-mixed")],
)
def test_auto_picks_bf16_only_where_the_cpu_runs_it_natively(
    monkeypatch: pytest.MonkeyPatch, amx: bool, avx512_bf16: bool, expected: str
) -> None:
    fake_cpu(monkeypatch, amx=amx, avx512_bf16=avx512_bf16)
    assert precision.resolve_precision("auto", "cpu") == expected
    assert precision.resolve_precision("auto", "auto") == expected


def test_without_torch_probes_the_cpu_flags_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported", "_init_amx"):
        monkeypatch.delattr(torch._C._cpu, probe, raising=False)
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512f", "avx2"})
    assert precision.resolve_precision("auto", "cpu") == "32-true"
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert precision.resolve_precision("auto", "cpu") == "bf16-mixed"


def test_auto_on_a_gpu_follows_what_cuda_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cpu(monkeypatch, amx=True, avx512_bf16=True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert precision.resolve_precision("auto", "gpu") == "32-true"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: not including_emulation)
    assert precision.resolve_precision("auto", "gpu") == "bf16-mixed"


def test_an_explicit_precision_always_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cpu(monkeypatch, amx=True, avx512_bf16=True)
    assert precision.resolve_precision("32-true", "cpu") == "32-true"
    assert precision.resolve_precision("16-mixed", "cpu") == "16-mixed"
    fake_cpu(monkeypatch, amx=False, avx512_bf16=False)
    assert precision.resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"


def test_loss_terms_from_bf16_activations_are_float32_sums() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 3, 64, 64, generator=generator).bfloat16()
    target = torch.rand(64, 3, 64, 64, generator=generator)
    recon = reconstruction_error(logits, target)
    assert recon.dtype == torch.float32
    exact = ((torch.sigmoid(logits.double()) - target.double()) ** 2).sum() / 64
    assert abs(recon.double() - exact) / exact < 1e-5
    mu, logvar = torch.randn(2, 64, 15, generator=generator).bfloat16()
    kl = kl_divergence(mu, logvar)
    assert kl.dtype == torch.float32
    torch.testing.assert_close(kl, kl_divergence(mu.float(), logvar.float()), rtol=0, atol=0)


def test_float64_terms_stay_float64() -> None:
    logits = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    assert reconstruction_error(logits, torch.rand(2, 3, 4, 4)).dtype == torch.float64


def test_geco_under_autocast_keeps_float32_state_and_moves_beta() -> None:
    torch.manual_seed(0)
    model = Autoencoder(z_dim=4, variational=True)
    geco = GecoObjective(goal=0.5)
    images = torch.rand(4, 3, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, mu, logvar = model(images)
        assert logits.dtype == torch.bfloat16
        recon = reconstruction_error(logits, images)
        loss = geco(recon, kl_divergence(mu, logvar), 0)["loss"]
    assert recon.dtype == loss.dtype == torch.float32
    geco.update(recon.detach())
    assert geco.err_ema.dtype == geco.beta.dtype == torch.float32
    assert geco.err_ema.item() == pytest.approx(recon.item(), rel=0, abs=0)
    assert geco.beta.item() != 1.0


def _train(tiny_data_dir: Path, run_dir: Path, steps: int, trainer_precision: str) -> dict:
    overrides = [
        *TINY_TRAIN,
        f"paths.data_dir={tiny_data_dir}",
        "logger=csv",
        "model=vae",
        f"trainer.max_steps={steps}",
        f"trainer.precision={trainer_precision}",
        "callbacks.health.every_n_steps=1",
    ]
    return train(compose_config("train", overrides, run_dir))


@pytest.mark.parametrize(("first", "then"), [("bf16-mixed", "32-true"), ("32-true", "bf16-mixed")])
@pytest.mark.e2e
def test_a_run_resumes_across_precisions_with_float32_weights_and_state(
    tiny_data_dir: Path, tmp_path: Path, first: str, then: str
) -> None:
    run_dir = tmp_path / "run"
    _train(tiny_data_dir, run_dir, 2, first)
    result = _train(tiny_data_dir, run_dir, 4, then)
    assert result["resumed_from"] == run_dir / "checkpoints" / "last.ckpt"
    assert result["global_step"] == 4
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert {tensor.dtype for key, tensor in state.items() if key != "objective.initialised"} == {torch.float32}
    assert torch.isfinite(state["objective.beta"]) and state["objective.beta"] != 1.0
    record = OmegaConf.load(run_dir / "run_config.yaml")
    assert dict(record.training_precision) == {"requested": then, "used": then, "tf32": False}
    health = json.loads((run_dir / "health.json").read_text())
    assert [record["step"] for record in health["records"]] == [1, 2, 3, 4]
    assert all(0 < record["recon"] < float("inf") for record in health["records"])


@pytest.mark.e2e
def test_float32_is_the_default_the_quickstart_asks_for_auto_and_its_choice_reaches_the_records(
    tiny_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_cpu(monkeypatch, amx=False, avx512_bf16=False)
    assert compose_config("train", [], tmp_path / "default").trainer.precision == "32-true"
    run_dir = tmp_path / "run"
    quickstart = ["experiment=quickstart", *TINY_TRAIN, f"paths.data_dir={tiny_data_dir}", "logger=none"]
    cfg = compose_config("train", quickstart, run_dir)
    assert cfg.trainer.precision == "auto"
    train(cfg)
    assert cfg.trainer.precision == "32-true"
    record = OmegaConf.load(run_dir / "run_config.yaml")
    assert dict(record.training_precision) == {"requested": "auto", "used": "32-true", "tf32": False}
    seg = compose_config(
        "segment", [f"run_dir={run_dir}", f"paths.data_dir={tiny_data_dir}", *TINY_SEGMENT], tmp_path / "seg"
    )
    summary = segment(seg)["summary"]
    assert summary["training_precision"] == {"requested": "auto", "used": "32-true", "tf32": False}
    assert summary["precision"] == "float32"


@pytest.mark.parametrize("tf32", [False, True])
def test_on_a_gpu_32_true_trains_in_ieee_float32_unless_tf32_is_asked_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture, tf32: bool
) -> None:
    chosen: list[bool] = []
    monkeypatch.setattr(lns.train, "uses_gpu", lambda accelerator: True)
    monkeypatch.setattr(lns.train, "set_tf32", chosen.append)
    cfg = compose_config("train", ["trainer=gpu", f"speed.tf32={tf32}"], tmp_path)
    with caplog.at_level(logging.INFO, logger="lns.train"):
        assert lns.train.choose_precision(cfg) == "32-true"
    assert chosen == [tf32]
    assert dict(cfg.training_precision) == {"requested": "32-true", "used": "32-true", "tf32": tf32}
    assert f"float32 convolutions and matrix products on the GPU: {'TF32' if tf32 else 'IEEE'}" in caplog.text


def test_on_a_cpu_tf32_is_never_recorded_as_used(tmp_path: Path) -> None:
    cfg = compose_config("train", ["trainer=cpu", "speed.tf32=true"], tmp_path)
    lns.train.choose_precision(cfg)
    assert cfg.training_precision.tf32 is False
