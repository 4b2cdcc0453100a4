"""Loss terms, the simple objectives and GECO (including its distributed update)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lns.errors import LNSError
from lns.objectives import (
    BetaObjective,
    CapacityObjective,
    GecoObjective,
    ReconstructionObjective,
    kl_divergence,
    reconstruction_error,
)

GOAL_64 = 0.0006 * 3 * 64 * 64  # 7.3728


def test_reconstruction_error_hand_computed() -> None:
    logits = torch.tensor([[[[0.0, math.log(3.0)]]], [[[0.0, 0.0]]]])  # sigmoid: 0.5, 0.75 / 0.5, 0.5
    target = torch.tensor([[[[1.0, 0.0]]], [[[0.5, 0.25]]]])
    expected = (0.25 + 0.5625 + 0.0 + 0.0625) / 2
    assert reconstruction_error(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_reconstruction_error_gradient_flows() -> None:
    logits = torch.zeros(2, 3, 4, 4, requires_grad=True)
    reconstruction_error(logits, torch.ones(2, 3, 4, 4)).backward()
    assert logits.grad is not None and torch.all(logits.grad < 0)


def test_kl_divergence_hand_computed() -> None:
    mu = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    logvar = torch.tensor([[0.0, 0.0], [0.0, math.log(2.0)]])
    sample_1 = 0.0 + 0.5
    sample_2 = 2.0 + 0.5 * (1 - math.log(2.0))
    assert kl_divergence(mu, logvar).item() == pytest.approx((sample_1 + sample_2) / 2, rel=1e-6)
    assert kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0.0


def test_reconstruction_objective() -> None:
    recon, kl = torch.tensor(3.0), torch.tensor(2.0)
    assert ReconstructionObjective()(recon, kl, 0)["loss"].item() == 3.0
    assert ReconstructionObjective()(recon, None, 0)["loss"].item() == 3.0


def test_beta_objective() -> None:
    objective = BetaObjective(beta=4.0)
    assert objective(torch.tensor(3.0), torch.tensor(2.0), 0)["loss"].item() == 11.0
    assert objective(torch.tensor(3.0), None, 0)["loss"].item() == 3.0
    with pytest.raises(LNSError):
        BetaObjective(beta=-1.0)


def test_capacity_objective() -> None:
    objective = CapacityObjective(gamma=10.0, c_max=25.0, c_stop_iter=100)
    assert [objective.capacity(s) for s in (0, 50, 100, 200)] == [0.0, 12.5, 25.0, 25.0]
    out = objective(torch.tensor(3.0), torch.tensor(2.0), 50)
    assert out["loss"].item() == pytest.approx(3.0 + 10.0 * 10.5)
    assert out["capacity"].item() == 12.5
    assert objective(torch.tensor(3.0), torch.tensor(30.0), 1000)["loss"].item() == pytest.approx(53.0)
    assert objective(torch.tensor(3.0), None, 50)["loss"].item() == 3.0
    with pytest.raises(LNSError):
        CapacityObjective(c_stop_iter=0)


def test_geco_hand_computed_above_goal_decreases_beta() -> None:
    geco = GecoObjective()
    s = 1e-5
    geco.update(torch.tensor(100.0))
    ema = 100.0
    beta = math.exp(s * (GOAL_64 - ema))
    assert geco.err_ema.item() == pytest.approx(ema, rel=1e-6)
    assert geco.beta.item() == pytest.approx(beta, rel=1e-6)
    geco.update(torch.tensor(50.0))
    ema = 0.01 * 50.0 + 0.99 * ema
    beta *= math.exp(s * (GOAL_64 - ema))
    assert geco.err_ema.item() == pytest.approx(ema, rel=1e-6)
    assert geco.beta.item() == pytest.approx(beta, rel=1e-6)
    assert beta < 1.0
    geco.update(torch.tensor(1.0))  # ema still above goal: plain rate
    ema = 0.01 * 1.0 + 0.99 * ema
    beta *= math.exp(s * (GOAL_64 - ema))
    assert geco.beta.item() == pytest.approx(beta, rel=1e-6)


def test_geco_below_goal_increases_beta_with_speedup() -> None:
    geco = GecoObjective(speedup=10.0)
    geco.update(torch.tensor(1.0))
    assert geco.beta.item() == pytest.approx(math.exp(10 * 1e-5 * (GOAL_64 - 1.0)), rel=1e-6)
    geco.update(torch.tensor(3.0))
    ema = 0.01 * 3.0 + 0.99 * 1.0
    expected = math.exp(10 * 1e-5 * (GOAL_64 - 1.0)) * math.exp(10 * 1e-5 * (GOAL_64 - ema))
    assert geco.beta.item() == pytest.approx(expected, rel=1e-6)
    plain = GecoObjective(speedup=None)
    plain.update(torch.tensor(1.0))
    assert plain.beta.item() == pytest.approx(math.exp(1e-5 * (GOAL_64 - 1.0)), rel=1e-6)


def test_geco_scales_goal_and_step_with_image_shape() -> None:
    geco = GecoObjective(goal=0.001, step_size=1e-3, alpha=0.5, speedup=2.0, image_shape=(1, 32, 32))
    goal, s = 0.001 * 1024, 1e-3 * 4
    geco.update(torch.tensor(2.0))
    beta = math.exp(s * (goal - 2.0))
    geco.update(torch.tensor(0.0))
    ema = 0.5 * 0.0 + 0.5 * 2.0
    beta *= math.exp(2.0 * s * (goal - ema))
    assert geco.beta.item() == pytest.approx(beta, rel=1e-6)
    assert geco.err_ema.item() == pytest.approx(ema)


def test_geco_clamps_beta() -> None:
    low = GecoObjective(step_size=1.0)
    low.update(torch.tensor(1000.0))
    assert low.beta.item() == pytest.approx(1e-10, rel=1e-6)
    assert bool(low.beta_at_limit())
    high = GecoObjective(step_size=1.0, beta_max=5.0)
    high.update(torch.tensor(0.0))
    assert high.beta.item() == 5.0
    assert bool(high.beta_at_limit())
    assert not bool(GecoObjective().beta_at_limit())


def test_geco_forward_uses_beta_without_updating() -> None:
    geco = GecoObjective(beta_init=0.5)
    kl = torch.tensor(4.0, requires_grad=True)
    out = geco(torch.tensor(3.0), kl, 0)
    assert out["loss"].item() == 5.0
    out["loss"].backward()
    assert kl.grad.item() == 0.5
    assert out["geco_beta"].item() == 0.5
    assert not bool(geco.initialised) and geco.beta.item() == 0.5
    geco.update(torch.tensor(100.0))
    assert out["geco_beta"].item() == 0.5  # logged values are copies, not views of the buffers
    assert geco(torch.tensor(3.0), None, 0)["loss"].item() == 3.0


def test_geco_update_has_no_host_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    geco = GecoObjective()

    def refuse(*args: object) -> None:
        raise AssertionError("host sync in GecoObjective.update")

    for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    for value in (100.0, 1.0, 5.0):
        geco.update(torch.tensor(value))
        geco(torch.tensor(value), torch.tensor(1.0), 0)


def _run(geco: GecoObjective, values: list[float]) -> None:
    for value in values:
        geco.update(torch.tensor(value))


def test_geco_state_dict_round_trip() -> None:
    values = [120.0, 80.0, 3.0, 2.0, 60.0]
    uninterrupted = GecoObjective()
    _run(uninterrupted, values)
    first = GecoObjective()
    _run(first, values[:2])
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert set(state) == {"beta", "err_ema", "initialised"}
    resumed = GecoObjective()
    resumed.load_state_dict(state)
    _run(resumed, values[2:])
    assert torch.equal(resumed.beta, uninterrupted.beta)
    assert torch.equal(resumed.err_ema, uninterrupted.err_ema)
    fresh = GecoObjective()  # without the restored state the first update would reset err_ema
    _run(fresh, values[2:])
    assert not torch.equal(fresh.beta, uninterrupted.beta)


def test_geco_set_state() -> None:
    geco = GecoObjective()
    geco.set_state(0.25, 40.0)
    reference = GecoObjective()
    reference.set_state(0.25, None)
    geco.update(torch.tensor(10.0))
    reference.update(torch.tensor(10.0))
    ema = 0.01 * 10.0 + 0.99 * 40.0
    assert geco.beta.item() == pytest.approx(0.25 * math.exp(1e-5 * (GOAL_64 - ema)), rel=1e-6)
    assert reference.err_ema.item() == 10.0


def test_geco_rejects_bad_settings() -> None:
    with pytest.raises(LNSError):
        GecoObjective(beta_init=0.0)
    with pytest.raises(LNSError):
        GecoObjective(alpha=1.0)
    with pytest.raises(LNSError):
        GecoObjective(speedup=0.0)


RANK_RECONS = ([100.0, 4.0, 30.0], [50.0, 2.0, 10.0])


def _distributed_worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        geco = GecoObjective()
        for value in RANK_RECONS[rank]:
            geco.update(torch.tensor(value))
        torch.save({"beta": geco.beta, "err_ema": geco.err_ema}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_geco_distributed_update_averages_recon(tmp_path: Path) -> None:
    mp.spawn(_distributed_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert torch.equal(results[0]["beta"], results[1]["beta"])
    assert torch.equal(results[0]["err_ema"], results[1]["err_ema"])
    single = GecoObjective()
    for a, b in zip(*RANK_RECONS, strict=True):
        single.update((torch.tensor(a) + torch.tensor(b)) / 2)
    torch.testing.assert_close(results[0]["beta"], single.beta, rtol=1e-6, atol=0)
    torch.testing.assert_close(results[0]["err_ema"], single.err_ema, rtol=1e-6, atol=0)
    assert not torch.allclose(results[0]["beta"], GecoObjective().beta)
