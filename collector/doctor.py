"""``collector doctor``: what this app needs on this machine, each check OK or the one command
that fixes it.

    collector doctor                           # the simulated setup, with the window
    collector doctor --config station.toml     # what that config's devices and services need
    collector doctor --headless                # for `collector record` only: no Qt, no display

Checks: Python and the packages, Qt's xcb platform plugin (``ldd`` on it, each missing library
mapped to its Debian package), a display or Xvfb, libusb and pyrealsense2 with the attached
cameras, serial-port permissions (the ``dialout`` group) with the attached gloves, free disk and
the measured write speed against the configured devices' data rate, torch and any GPU.

The exit status is 1 when something the chosen config needs is missing (a check marked
``required``), else 0. Qt-free: the GUI launcher runs :func:`qt_platform_check` and prints the
report when the window cannot start.
"""

from __future__ import annotations

import argparse
import ctypes.util
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from collector.config import AppConfig, load_config, sim_config

#: The Debian packages ``.ci/run`` installs and the README's headless line names (one source).
APT_PACKAGES_FILE = Path(__file__).resolve().parents[1] / ".ci" / "apt-packages.txt"
#: Libraries whose Debian package name is not ``lib<name><soversion>``.
DEBIAN_PACKAGES = {
    "libX11-xcb.so.1": "libx11-xcb1", "libX11.so.6": "libx11-6", "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1", "libOpenGL.so.0": "libopengl0", "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0", "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6", "libusb-1.0.so.0": "libusb-1.0-0",
}
#: Packages whose absence breaks the app (import name -> distribution name).
PACKAGES = {"numpy": "numpy", "zmq": "pyzmq", "h5py": "h5py", "hdf5plugin": "hdf5plugin",
            "serial": "pyserial", "PySide6": "PySide6", "pyqtgraph": "pyqtgraph", "torch": "torch",
            "pyrealsense2": "pyrealsense2"}
#: Disk write must beat the devices' data rate by this factor (bursts, the OS, other writers).
WRITE_HEADROOM = 1.5


@dataclass
class Check:
    """One line of the report: ``fix`` is the one command that makes it OK."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    #: The chosen config cannot work without it (the exit status counts only these).
    required: bool = False

    def line(self) -> str:
        mark = "OK  " if self.ok else ("FAIL" if self.required else "warn")
        text = f"{mark} {self.name}: {self.detail}"
        return text + (f"\n       fix: {self.fix}" if not self.ok and self.fix else "")


def apt_packages() -> list[str]:
    """The Debian packages a headless machine needs (``.ci/apt-packages.txt``)."""
    words = []
    for line in APT_PACKAGES_FILE.read_text().splitlines():
        words += line.split("#", 1)[0].split()
    return words


def debian_package(library: str) -> str:
    """The Debian package that ships ``library`` (``libxcb-icccm.so.4`` -> ``libxcb-icccm4``)."""
    if library in DEBIAN_PACKAGES:
        return DEBIAN_PACKAGES[library]
    match = re.fullmatch(r"(lib[\w+.-]+?)\.so\.(\d+)(?:\..*)?", library)
    if not match:
        return library
    stem, version = match.group(1).lower().replace("_", "-"), match.group(2)
    return f"{stem}-{version}" if stem[-1].isdigit() else f"{stem}{version}"


def _sudo() -> str:
    return "" if os.geteuid() == 0 else "sudo "


def _apt_fix(packages: list[str]) -> str:
    return f"{_sudo()}apt-get install -y {' '.join(packages)}"


# ---- checks --------------------------------------------------------------------------------
def python_check() -> Check:
    ok = sys.version_info >= (3, 11)
    return Check("python", ok, f"{sys.version.split()[0]} ({sys.executable})",
                 "install Python 3.11 or newer", required=True)


def packages_check() -> Check:
    found, missing = [], []
    for module, dist in PACKAGES.items():
        try:
            found.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            missing.append(dist)
    try:
        found.insert(0, f"collector {importlib.metadata.version('collector')}")
    except importlib.metadata.PackageNotFoundError:
        missing.insert(0, "collector")
    detail = ", ".join(found) + (f"; missing: {', '.join(missing)}" if missing else "")
    return Check("packages", not missing, detail, "pip install -e .", required=True)


def qt_platform_check(required: bool = True) -> Check:
    """Qt's xcb platform plugin and the system libraries it loads (what ``ldd`` cannot find)."""
    spec = importlib.util.find_spec("PySide6")  # finds, does not import, Qt
    if spec is None or not spec.submodule_search_locations:
        return Check("Qt platform plugin", False, "PySide6 is not installed", "pip install -e .",
                     required=required)
    plugin = Path(list(spec.submodule_search_locations)[0]) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    if not plugin.is_file():
        return Check("Qt platform plugin", sys.platform != "linux", f"{plugin} not found",
                     "pip install --force-reinstall pyside6", required=required and sys.platform == "linux")
    if not shutil.which("ldd"):
        return Check("Qt platform plugin", True, f"{plugin.name} found (no ldd to check its libraries)")
    out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=30).stdout
    missing = sorted({line.split()[0] for line in out.splitlines() if "not found" in line})
    if not missing:
        return Check("Qt platform plugin", True, f"xcb: every library of {plugin.name} found")
    packages = sorted({debian_package(lib) for lib in missing})
    return Check("Qt platform plugin", False, f"xcb: missing {', '.join(missing)}",
                 _apt_fix(packages), required=required)


def display_check(required: bool = True) -> Check:
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        where = os.environ.get("WAYLAND_DISPLAY") or os.environ["DISPLAY"]
        return Check("display", True, f"{where}")
    if shutil.which("xvfb-run"):
        return Check("display", True, "none, but Xvfb is installed: run the window as "
                     "'xvfb-run -a collector'")
    return Check("display", False, "no DISPLAY and no Xvfb", _apt_fix(["xvfb"]), required=required)


def _child(args: list[str], timeout_s: float = 60) -> tuple[dict | None, str]:
    """Run a ``devices`` helper module (the core imports no driver or SDK) -> (JSON, error)."""
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    try:
        proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                              timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return None, f"{args[0]} did not answer within {timeout_s:g} s"
    if proc.returncode != 0:
        return None, (proc.stderr.strip().splitlines() or ["failed"])[-1]
    return json.loads(proc.stdout), ""


def camera_checks(config: AppConfig, found: dict) -> list[Check]:
    needs = any(n.driver == "realsense" and not n.remote and not n.options.get("from_file")
                for n in config.nodes)
    uses = any(n.driver == "realsense" and not n.remote for n in config.nodes)
    libusb = ctypes.util.find_library("usb-1.0")
    checks = [Check("libusb", bool(libusb), libusb or "libusb-1.0 not found",
                    _apt_fix(["libusb-1.0-0"]), required=uses)]
    result = found.get("realsense", {})
    if "error" in result:
        checks.append(Check("pyrealsense2", False, result["error"],
                            "pip install pyrealsense2", required=uses))
    else:
        cameras = result.get("devices", [])
        names = ", ".join(f"{c.get('name', '?')} [{c.get('id', '?')}]" for c in cameras)
        checks.append(Check("RealSense cameras", bool(cameras) or not needs,
                            names or "none attached", "plug a camera into a USB 3 port "
                            "('collector devices realsense' lists them)", required=needs))
    return checks


def serial_checks(config: AppConfig, found: dict) -> list[Check]:
    needs = any(n.driver == "glove" and not n.remote for n in config.nodes)
    checks = []
    if os.geteuid() == 0:
        checks.append(Check("serial permissions", True, "root"))
    else:
        import grp

        try:
            dialout = grp.getgrnam("dialout").gr_gid
        except KeyError:
            dialout = None
        member = dialout is None or dialout in os.getgroups()
        checks.append(Check("serial permissions", member, "in the dialout group" if member else
                            "not in the dialout group: serial ports cannot be opened",
                            "sudo usermod -aG dialout $USER  (then log out and in)", required=needs))
    result = found.get("serial", {})
    gloves = result.get("devices", [])
    names = ", ".join(f"{g.get('name', '?')} [{g.get('id', '?')}]" for g in gloves)
    detail = result.get("error") or names or "none attached"
    checks.append(Check("gloves", bool(gloves) or not needs, detail,
                        "plug the glove in ('collector devices serial' lists the ports)", required=needs))
    return checks


def measure_write_speed(folder: Path, megabytes: int = 64) -> float:
    """Bytes/s of a ``megabytes`` write, fsync included, in ``folder`` (the file is removed)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".collector-doctor-{os.getpid()}.tmp"
    block = os.urandom(4 << 20)
    start = time.perf_counter()
    try:
        with open(path, "wb") as fh:
            for _ in range(max(1, megabytes // 4)):
                fh.write(block)
            fh.flush()
            os.fsync(fh.fileno())
        elapsed = time.perf_counter() - start
    finally:
        path.unlink(missing_ok=True)
    return max(1, megabytes // 4) * len(block) / max(elapsed, 1e-6)


def disk_checks(config: AppConfig, rates: dict[str, float], write_mb: int) -> list[Check]:
    folder = Path(config.recording.output)
    existing = next((p for p in [folder, *folder.resolve().parents] if p.exists()), Path("."))
    free = shutil.disk_usage(existing).free
    rate = sum(rates.values())
    hours = f", {free / rate / 3600:.1f} h at {rate / 1e6:.1f} MB/s" if rate else ""
    minimum = config.recording.min_free_gb * 1e9
    checks = [Check("free disk", free >= minimum, f"{free / 1e9:.1f} GB free in {existing}{hours}",
                    f"free space in {existing}, or set [recording] output to a bigger disk "
                    f"(episodes start only above {config.recording.min_free_gb:g} GB)", required=True)]
    try:
        speed = measure_write_speed(folder, write_mb)
    except OSError as exc:
        return checks + [Check("disk write", False, f"cannot write in {folder}: {exc.strerror}",
                               f"mkdir -p {folder} && chmod u+w {folder}", required=True)]
    enough = not rate or speed >= WRITE_HEADROOM * rate
    need = f" (the devices write {rate / 1e6:.1f} MB/s uncompressed)" if rate else ""
    checks.append(Check("disk write", enough, f"{speed / 1e6:.0f} MB/s measured{need}",
                        "record to a faster disk ([recording] output), or lower the cameras' "
                        "resolution/fps, or set [recording] compression = \"lz4\"",
                        required=rate > 0 and speed < rate))
    return checks


def torch_check(config: AppConfig) -> Check:
    needs = any(s.enabled and s.module == "collector.wam.node" for s in config.services)
    if importlib.util.find_spec("torch") is None:
        return Check("torch", False, "not installed", "pip install torch==2.13.0", required=needs)
    import torch  # noqa: PLC0415 (only here: a second to import)

    if torch.cuda.is_available():
        gpus = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return Check("torch", True, f"{torch.__version__}, CUDA: {gpus}")
    return Check("torch", True, f"{torch.__version__}, no GPU (the WAM preview runs on the CPU)")


def run_checks(config: AppConfig, *, gui: bool = True, write_mb: int = 64) -> list[Check]:
    """Every check, in the order of the report."""
    nodes = [{"name": n.name, "driver": n.driver, "options": n.options} for n in config.nodes
             if not n.remote]
    found, error = _child(["devices.discover"])
    if found is None:
        found = {"realsense": {"error": error}, "serial": {"error": error}}
    rates, _ = _child(["devices.check", "--rates", json.dumps(nodes)])
    return [python_check(), packages_check(), qt_platform_check(required=gui), display_check(required=gui),
            *camera_checks(config, found), *serial_checks(config, found),
            *disk_checks(config, rates or {}, write_mb), torch_check(config)]


def format_report(checks: list[Check]) -> str:
    failed = [c for c in checks if not c.ok and c.required]
    summary = (f"{len(failed)} problem{'s' if len(failed) > 1 else ''} to fix before this setup works"
               if failed else "ready")
    return "\n".join([c.line() for c in checks] + [summary])


def cmd_doctor(args: argparse.Namespace) -> int:
    if args.config:
        config = load_config(args.config)
    else:
        config = sim_config()
        if not args.headless:  # the window on the simulator runs the WAM preview
            from collector.config import ServiceConfig

            config.services.append(ServiceConfig("wam", "collector.wam.node"))
    if args.output:
        config.recording.output = Path(args.output)
    checks = run_checks(config, gui=not args.headless, write_mb=args.write_mb)
    print(format_report(checks))
    return 1 if any(not c.ok and c.required for c in checks) else 0


def add_commands(sub) -> None:
    """Add ``doctor`` to the ``collector`` parser."""
    doctor = sub.add_parser("doctor", help="check this machine: packages, Qt, display, cameras, "
                            "gloves, disk, GPU (each OK or the command that fixes it)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    doctor.add_argument("--config", help="check what this config's devices and services need")
    doctor.add_argument("--headless", action="store_true", help="for `collector record` only: "
                        "Qt and a display are not needed")
    doctor.add_argument("--output", help="recordings folder to check (default: the config's)")
    doctor.add_argument("--write-mb", type=int, default=64, help="size of the write-speed test")
    doctor.set_defaults(func=cmd_doctor)
