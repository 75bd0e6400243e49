"""Fixtures the bus tests share: a short folder for ipc:// endpoints and a private context."""

import shutil
import tempfile

import pytest
import zmq


@pytest.fixture
def rundir():
    # ipc:// paths are limited to ~100 characters; pytest's tmp_path can be longer.
    path = tempfile.mkdtemp(prefix="cw", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)
