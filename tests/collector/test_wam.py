"""The World Action Model: windows, metrics, training, evaluation, checkpoints (tiny models)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from collector.cli import main
from collector.wam.checkpoint import Checkpoint, CheckpointError, Predictor
from collector.wam.data import Clip, Normalizer, load_clip
from collector.wam.evaluate import COPY_LAST, MODEL_SHUFFLED, MODEL_TRUE, evaluate
from collector.wam.metrics import moving_mask, psnr, ssim
from collector.wam.model import WamConfig, WorldActionModel
from collector.wam.train import TrainOptions, train

SHIPPED = Path(__file__).resolve().parents[2] / "collector" / "wam" / "checkpoints" / "sim.pt"

TINY = dict(image_size=32, context=2, horizon=4, dt_s=0.125, latent=32, widths=(8, 16), layers=1,
            heads=2, ff=64)


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    """Two short simulated episodes recorded by the real CLI."""
    out = tmp_path_factory.mktemp("wam-episodes")
    assert main(["record", "--sim", "--episodes", "2", "--duration", "2.5", "--seed", "4", "-q",
                 "--output", str(out)]) == 0
    paths = sorted(out.rglob("*.h5"))
    assert len(paths) == 2
    return out


def test_windows_take_the_frame_nearest_each_step_and_skip_gaps():
    t = (np.arange(60) * 1e9 / 30).astype(np.int64)
    t[30:] += int(0.5e9)  # half a second without frames
    clip = Clip("x", np.zeros((60, 8, 8, 3), np.uint8), np.zeros((60, 2), np.float32), t)
    rows = clip.window_indices(context=2, horizon=2, dt_s=0.1)
    assert len(rows)
    steps = np.diff(t[rows], axis=1)
    # Each end of a step is the frame nearest its time (within half a frame period).
    assert np.all(np.abs(steps - 1e8) <= 1e9 / 30 + 1)
    assert not np.any((rows[:, 0] < 30) & (rows[:, -1] >= 30))  # no window spans the gap


def test_metrics_on_known_images():
    a = torch.full((2, 3, 16, 16), 0.5)
    b = a + 0.1  # mse 0.01 -> 20 dB
    assert torch.allclose(psnr(b, a), torch.tensor([20.0, 20.0]), atol=1e-3)
    assert torch.allclose(ssim(a, a), torch.ones(2), atol=1e-5)
    moved = a.clone()
    moved[:, :, :4, :4] = 1.0
    assert moving_mask(moved, a).sum(dim=(1, 2, 3)).tolist() == [16, 16]


def test_model_starts_as_copy_last_and_uses_its_action_input():
    config = WamConfig(**TINY, action_dim=3)
    model = WorldActionModel(config).eval()
    frames, actions = torch.rand(2, 2, 3, 32, 32), torch.randn(2, 2, 3)
    with torch.no_grad():
        out, out_actions, masks = model(frames, actions)
    assert out.shape == (2, 4, 3, 32, 32) and out_actions.shape == (2, 4, 3)
    # An untrained model composites almost nothing onto the last frame and holds the last action.
    assert (out - frames[:, -1:]).abs().max() < 0.1
    assert torch.allclose(out_actions, actions[:, -1:].expand(-1, 4, -1))
    # Decoding a subset of steps (training) gives the same frames as decoding all of them.
    with torch.no_grad():
        part, _, _ = model(frames, actions, steps=torch.tensor([3, 1]))
    assert torch.allclose(part, out[:, [3, 1]], atol=1e-5)


def test_train_then_eval_on_held_out_episodes(episodes, tmp_path, capsys):
    ckpt = tmp_path / "tiny.pt"
    trained = train(episodes, ckpt, WamConfig(**TINY),
                    TrainOptions(steps=4, batch_size=4, val_every=2, val_windows=8, val_fraction=0.5),
                    say=lambda _: None)
    assert trained.report["steps"] == 4 and len(trained.report["val_episodes"]) == 1
    loaded = Checkpoint.load(ckpt)
    assert loaded.config == trained.config and loaded.action_fields == ("wrist_pos", "wrist_quat", "grip")
    clip = load_clip(trained.report["val_episodes"][0], 32)
    predictor = Predictor(loaded)
    frames, actions = predictor.predict(clip.frames[:2], clip.actions[:2])
    assert frames.shape == (4, 32, 32, 3) and frames.dtype == np.uint8 and actions.shape == (4, 8)

    report = evaluate(ckpt, trained.report["val_episodes"], max_windows=16)
    assert report["episodes"] == 1 and 0 < report["windows"] <= 16
    for metric in ("psnr", "moving_psnr", "ssim"):
        for values in report["frames"][metric].values():
            assert len(values) == 4 and np.all(np.isfinite(values))
    gap = np.array(report["frames"]["psnr"][MODEL_TRUE]) - report["frames"]["psnr"][MODEL_SHUFFLED]
    assert np.allclose(gap, report["shuffle_gap_db"]["psnr"])
    # Copy-last scores the last frame itself: PSNR of frames that differ only by motion and noise.
    assert all(20 < v < 60 for v in report["frames"]["psnr"][COPY_LAST])

    # The CLI continues training from a checkpoint, keeping its shape and action normalization.
    again = tmp_path / "again.pt"
    assert main(["wam", "train", str(episodes), "--out", str(again), "--init", str(ckpt),
                 "--steps", "2", "--val-every", "1", "--batch-size", "2", "--val-fraction", "0.5"]) == 0
    continued = Checkpoint.load(again)
    assert continued.config == loaded.config and continued.report["previous_steps"] == 4
    assert np.array_equal(continued.normalizer.mean, loaded.normalizer.mean)
    capsys.readouterr()

    # The CLI skips the training episode and prints the table for the held-out one.
    assert main(["wam", "eval", str(ckpt), str(episodes), "--max-windows", "8"]) == 0
    captured = capsys.readouterr()
    assert "skipping 1 episodes the checkpoint was trained on" in captured.err
    assert "1 held-out episodes" in captured.out and "true minus shuffled actions" in captured.out
    for row in ("copy-last", "constant velocity", "hold-last", "model (preview)",
                "PSNR where the truth or the preview changes"):
        assert row in captured.out
    assert "better than the still frame at +0.5 s: " in captured.out  # one verdict per horizon


def test_a_file_that_is_not_a_checkpoint_is_refused_clearly(tmp_path, capsys):
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        Checkpoint.load(bogus)
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a collector WAM checkpoint"):
        Checkpoint.load(tmp_path / "other.pt")
    assert main(["wam", "eval", str(bogus), str(tmp_path)]) == 1
    assert "error:" in capsys.readouterr().err


def test_shipped_checkpoint_loads_and_predicts_two_seconds():
    checkpoint = Checkpoint.load(SHIPPED)
    predictor = Predictor(checkpoint)
    c = checkpoint.config
    assert c.horizons_s[-1] == pytest.approx(2.0) and c.horizons_s[1] == pytest.approx(0.25)
    assert SHIPPED.stat().st_size < 10 * 2**20
    frames = np.zeros((c.context, c.image_size, c.image_size, 3), np.uint8)
    actions = np.tile(checkpoint.normalizer.mean, (c.context, 1))
    out, out_actions = predictor.predict(frames, actions)
    assert out.shape == (c.horizon, c.image_size, c.image_size, 3)
    assert np.all(np.isfinite(out_actions))


def tiny_checkpoint(path: Path) -> Path:
    """An untrained tiny checkpoint with the glove's 8 action channels (for node tests)."""
    config = WamConfig(**TINY, action_dim=8)
    Checkpoint(config, WorldActionModel(config).state_dict(),
               Normalizer(np.zeros(8, np.float32), np.ones(8, np.float32))).save(path)
    return path


def test_int8_weights_round_trip_within_half_a_step():
    import torch

    from collector.wam.checkpoint import dequantize, quantize

    weights = {"w": torch.randn(64, 128), "b": torch.randn(64), "steps": torch.tensor(3)}
    tensors, scales = quantize(weights)
    assert tensors["w"].dtype == torch.int8 and tensors["b"].dtype == torch.float16
    restored = dequantize(tensors, scales)
    step = weights["w"].abs().amax(dim=1, keepdim=True) / 127
    assert torch.all((restored["w"] - weights["w"]).abs() <= 0.51 * step + 1e-3)
    assert restored["steps"].item() == 3
