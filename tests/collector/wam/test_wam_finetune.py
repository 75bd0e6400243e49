"""The station fine-tune: the starting model's objective, early stopping on selection episodes
(never on the held-out ones that decide the swap), the kept state scored as it will run."""

import threading

import pytest
import torch

from collector.wam.checkpoint import Checkpoint
from collector.wam.finetune import FineTuneOptions, FineTuneResult, FineTuneStopped, fine_tune
from collector.wam.model import LossWeights
from tests.collector.sim_episodes import write_sim_episode
from tests.waiting import wait_for
from tests.collector.test_wam import tiny_checkpoint

#: The slow demonstration's station: this many episodes of this many seconds (the first held
#: out, the second for selection, the rest trained on, as the trainer splits them).
STATION_EPISODES, STATION_SECONDS = 8, 15.0


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    """Training, selection and held-out episodes: one short one each."""
    folder = tmp_path_factory.mktemp("station")
    return [str(write_sim_episode(folder / f"ep{i}.h5", seed=10 + i, seconds=2.5, epoch_offset_s=2.0 + 3 * i))
            for i in range(3)]


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_fine_tune_that_never_beats_the_start_keeps_the_starting_state(episodes, tmp_path, one_thread):
    """A learning rate far too high throws the model's weights about: no selection score beats
    the start, so after ``patience`` scores it stops, keeps the starting weights, and the held-out
    figures of the kept state and of the running model are the same."""
    torch.manual_seed(0)  # the tiny model's random weights: the same wreck every run
    start = tiny_checkpoint(tmp_path / "start.pt")
    train, select, held_out = ([p] for p in episodes)
    result = fine_tune(start, train, select, held_out, tmp_path / "tuned.pt", FineTuneOptions(
        steps=50, batch_size=2, lr=5.0, trainable="all", select_every=1, patience=2,
        select_windows=4, val_windows=4, device="cpu"), say=lambda _: None)
    assert result.best_step == 0 and result.steps == 2  # two worse scores in a row: stopped
    assert [step for step, _ in result.selection] == [0, 1, 2]
    start_skill = result.selection[0][1]
    assert all(skill <= start_skill for _, skill in result.selection[1:])
    assert result.tuned == pytest.approx(result.running)
    saved = Checkpoint.load(tmp_path / "tuned.pt")
    for name, value in Checkpoint.load(start).state_dict.items():
        assert torch.equal(saved.state_dict[name].float(), value.float()), name
    report = saved.report
    assert report["fine_tune"]["best_step"] == 0 and report["validation"] == result.tuned
    assert report["selection_episodes"] == select and report["val_episodes"] == held_out
    assert result.cpu_seconds > 0 and result.trained_minutes == pytest.approx(2.5 / 60, abs=0.01)


def test_the_kept_state_is_the_best_on_selection_and_the_encoder_stays_frozen(episodes, tmp_path, one_thread):
    torch.manual_seed(0)
    start = tiny_checkpoint(tmp_path / "start.pt")
    result = fine_tune(start, [episodes[0]], [episodes[1]], [episodes[2]], options=FineTuneOptions(
        steps=6, batch_size=2, lr=1e-3, select_every=2, patience=10, select_windows=4, val_windows=4,
        device="cpu"), say=lambda _: None)
    scores = dict(result.selection)
    assert list(scores) == [0, 2, 4, 6]
    assert result.best_step == max(scores, key=lambda step: (scores[step], -step))
    before, after = Checkpoint.load(start).state_dict, result.checkpoint.state_dict
    encoder = [n for n in before if n.startswith("encoder.")]
    assert encoder and all(torch.equal(before[n].float(), after[n].float()) for n in encoder)
    if result.best_step:  # a later state was kept: the decoder learned
        assert any(not torch.equal(before[n].float(), after[n].float()) for n in before if n.startswith("decoder."))


def test_a_stop_ends_the_fine_tune_after_the_step_without_scoring_or_saving(episodes, tmp_path, one_thread):
    """Shutting down mid fine-tune: the trainer must exit within the supervisor's grace period,
    so the step in progress is the last thing it does (the episodes are trained on next time)."""
    torch.manual_seed(0)
    start = tiny_checkpoint(tmp_path / "start.pt")
    stop = threading.Event()
    said = []

    def say(text):
        said.append(text)
        stop.set()  # the first message comes before step 1: the stop lands during the run

    with pytest.raises(FineTuneStopped, match="stopped at step 1 of 50"):
        fine_tune(start, [episodes[0]], [episodes[1]], [episodes[2]], tmp_path / "tuned.pt",
                  FineTuneOptions(steps=50, batch_size=2, select_every=1, select_windows=4,
                                  val_windows=4, device="cpu"), say=say, stop=stop)
    assert said and not (tmp_path / "tuned.pt").exists()


def test_while_the_station_records_the_fine_tune_waits_and_the_wait_is_not_its_time(episodes, tmp_path,
                                                                                    one_thread):
    """The trainer holds its fine-tune while an episode records (capture p99 rose even with the
    trainer in the idle CPU class); it resumes after, and the paused time is not training time."""
    torch.manual_seed(0)
    start = tiny_checkpoint(tmp_path / "start.pt")
    recording = threading.Event()
    recording.set()
    said, results = [], []
    job = threading.Thread(target=lambda: results.append(fine_tune(
        start, [episodes[0]], [episodes[1]], [episodes[2]], options=FineTuneOptions(
            steps=2, batch_size=2, select_every=1, select_windows=4, val_windows=4, device="cpu"),
        say=said.append, pause=recording)))
    job.start()
    wait_for(lambda: "paused while the station records" in said, timeout_s=60)
    assert job.is_alive() and not any(text.startswith("step ") for text in said)
    recording.clear()
    job.join(120)
    (result,) = results
    assert result.steps == 2 and said.index("resumed") < said.index(next(t for t in said if t.startswith("step 1")))
    assert result.paused_s > 0


def test_the_swap_rule_needs_the_held_out_skill_above_the_running_one_by_the_margin():
    def result(running_db, tuned_db):
        figures = lambda db: {"psnr_1s": 30.0 + db, "psnr_1s_copy_last": 30.0}  # noqa: E731
        return FineTuneResult(None, figures(running_db), figures(tuned_db), best_step=25, steps=50)

    assert result(-0.15, 0.32).beats_running(0.05)
    assert not result(0.50, 0.54).beats_running(0.05)  # better on held out, but within the margin
    assert not result(0.50, 0.40).beats_running(0.05)
    assert FineTuneResult(None, {}, {"psnr_1s": 30.0, "psnr_1s_copy_last": 29.0}, 1, 1).beats_running(0.05)


def test_the_fine_tune_optimises_the_objective_its_checkpoint_was_trained_with():
    assert LossWeights.of({}) == LossWeights()  # the shipped checkpoint's: moving 1, squared 2
    assert LossWeights.of({"loss": {"moving": 4.0, "mask": 0.01}}) == LossWeights(moving=4.0, mask=0.01)
    assert LossWeights().moving == 1.0 and LossWeights().squared == 2.0


def test_bad_options_and_episodes_without_a_window_are_refused(episodes, tmp_path):
    start = tiny_checkpoint(tmp_path / "start.pt")
    with pytest.raises(ValueError, match="trainable must be one of all, decoder"):
        fine_tune(start, episodes[:1], episodes[1:2], episodes[2:], options=FineTuneOptions(trainable="head"))
    short = write_sim_episode(tmp_path / "short.h5", seconds=0.3)
    with pytest.raises(ValueError, match="the selection episodes \\(1\\) give no window"):
        fine_tune(start, episodes[:1], [str(short)], episodes[2:], options=FineTuneOptions(device="cpu"),
                  say=lambda _: None)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the trainer's 10 min limit, on a busy CPU
def test_on_a_view_it_never_saw_the_trainer_fine_tunes_the_shipped_model_and_swaps_it_in(tmp_path, one_thread):
    """The demonstration: episodes of a station whose view the shipped checkpoint was never
    trained on, saved in order; the background trainer (its default options, on the CPU) splits
    them by episode, fine-tunes, and the held-out skill of the fine-tuned model, as it will run,
    is above the shipped model's, so the node swaps it in (several CPU minutes)."""
    from collector.wam.checkpoint import Predictor
    from collector.wam.node import InferenceNode
    from collector.wam.predictor import SHIPPED_CHECKPOINT
    from collector.wam.registry import Registry
    from collector.wam.trainer_service import TrainerOptions, TrainerService
    from collector.wire.bus import default_endpoint, new_runtime_dir
    from tests.collector.wam.station_episodes import write_station_episodes
    from tests.collector.wam.test_wam_trainer import StandInRecorder

    paths = write_station_episodes(tmp_path / "recordings", STATION_EPISODES, STATION_SECONDS)
    runtime = new_runtime_dir()
    wam_base = default_endpoint(runtime, "wam")
    node = InferenceNode("wam", wam_base, {}, Predictor.from_file(SHIPPED_CHECKPOINT))
    recorder = StandInRecorder(f"ipc://{runtime}/recorder.ctl", tmp_path / "recordings")
    trainer = TrainerService("wam-trainer", default_endpoint(runtime, "wam-trainer"), {"wam": wam_base},
                             TrainerOptions(device="cpu"), f"ipc://{runtime}/recorder.ctl")
    try:
        recorder.finished = {f"station-{i}": {"ok": True, "path": str(p)} for i, p in enumerate(paths)}
        assert trainer.step()
        entry = Registry.load(tmp_path / "recordings" / ".wam").checkpoints[-1]
        assert entry["best_step"] > 0, entry
        assert entry["skill_db"] > entry["running_skill_db"] + TrainerOptions.min_gain_db, entry
        assert entry["kept"] and node.swap["state"] == "swapped" and node.predictor.path == entry["path"]
    finally:
        trainer.close()
        recorder.close()
        node.close()
