"""The episode counter starts from the task's episodes already on disk for the day."""

from datetime import datetime, timedelta

from collector.config import sim_config
from collector.recording.collect import CollectModel
from collector.storage.library import episode_path


def _episode(output, task, when, uuid):
    path = episode_path(output, "{task}/{date}/{task}_{date}_{time}_{uuid}.h5", {"task": task}, uuid, when)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_the_counter_counts_the_tasks_episodes_on_disk_today(tmp_path):
    now = datetime.now().astimezone()
    for i in range(3):
        _episode(tmp_path, "pick cube", now - timedelta(seconds=i), f"{i:08x}")
    _episode(tmp_path, "stack", now, "aaaaaaaa")
    _episode(tmp_path, "pick cube", now - timedelta(days=1), "bbbbbbbb")
    (tmp_path / ".trash").mkdir()
    (tmp_path / ".trash" / "pick-cube_x.h5").write_bytes(b"")
    config = sim_config()
    config.recording.output = tmp_path
    config.session.task = "pick cube"
    model = CollectModel(config)
    assert model.episodes_recorded == 3
    model.set_session_info(task="stack")
    assert model.episodes_recorded == 1
    model.set_session_info(task="pour")
    assert model.episodes_recorded == 0
