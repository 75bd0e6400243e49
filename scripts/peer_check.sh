#!/usr/bin/env bash
# Peer checks, outside CI: one training step of each peer's own trainer on a fresh export.
#
#   scripts/peer_check.sh --act /tmp/peers/act                 # all three peers
#   scripts/peer_check.sh --only robomimic                     # one of robomimic | act | lerobot
#   scripts/peer_check.sh --act /tmp/peers/act --work /tmp/peers --keep
#   ACT_DIR=/tmp/peers/act WORK=/tmp/peers scripts/peer_check.sh    # the same, from the environment
#
# Each peer runs in its own venv, WORK/<peer>-venv (or ROBOMIMIC_VENV, ACT_VENV, LEROBOT_VENV):
# one that already holds the peer is reused as it is, otherwise it is created and installed as
# below. Nothing is installed into the project's environment; no peer code is copied into it.
#   robomimic  robomimic 0.3.0 installed --no-deps beside CPU torch (TORCH_SPEC, default
#              torch==2.13.0) and the torchvision of that release (--no-deps), plus the few
#              libraries its training imports (egl_probe, a declared dependency, is needed only to
#              render rollouts and builds only with cmake + EGL: hence --no-deps). Runs
#              robomimic.scripts.train.train(): BC, ShallowConv image backbone, rollouts off, one
#              epoch of one training and one validation step; again on a --depth export (depth
#              modality, ShallowConv too).
#   act        ACT's source is not on PyPI: pass a checkout of the public repository
#              tonyzhaozh/act with --act (or ACT_DIR), e.g. `git clone
#              https://github.com/tonyzhaozh/act`. Its own utils.load_data (EpisodicDataset,
#              get_norm_stats) and policy.ACTPolicy run one optimizer step on CPU (ACT calls
#              .cuda(): the driver makes that a no-op, and builds the ResNet-18 backbone without
#              downloading ImageNet weights).
#   lerobot    lerobot 0.4.4 (the newest on Python 3.11) in its own venv: it pins torch < 2.11,
#              whose wheel is a CUDA build that also runs on CPU (~8 GB to download). Videos are
#              decoded with LeRobot's pyav backend (torchcodec needs the system FFmpeg
#              libraries). Runs `lerobot-train --policy.type=act --steps=3 --policy.device=cpu`,
#              and loads one item of a --depth export with LeRobotDataset.
# When the only torchvision wheel for the CPU torch is a CUDA build (its C ops cannot load),
# robomimic and ACT still run: they use only torchvision's Python models and transforms, and
# the driver declares the two operator schemas torchvision's import needs (see TV_PRELUDE).
#
# Episodes come from the simulated devices (tests/collector/sim_episodes.py) and are exported
# with the project's own `collector export` defaults. Needs: the project installed in the
# current python (collector.cli importable), pip access to the packages above, python3.11.
# Exit status: the number of peers that failed. Each peer's output: WORK/<peer>.log; the key
# lines of all of them: WORK/peer_check.txt (benchmarks/results/peer_check.txt is one such run).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${WORK:-${TMPDIR:-/tmp}/collector-peer-check}"
ACT_DIR="${ACT_DIR:-}"
ONLY=""
KEEP=0
PYTHON="${PYTHON:-python3}"
PY311="${PY311:-python3.11}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

usage() { sed -n '2,7p' "$0"; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --act) ACT_DIR="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage ;;
    *) echo "error: unknown argument $1" >&2; usage ;;
  esac
done
case "$ONLY" in ""|robomimic|act|lerobot) ;; *) echo "error: --only robomimic|act|lerobot" >&2; exit 2 ;; esac
want() { [[ -z "$ONLY" || "$ONLY" == "$1" ]]; }
if [[ -n "$ACT_DIR" ]]; then
  [[ -f "$ACT_DIR/policy.py" && -d "$ACT_DIR/detr" ]] \
    || { echo "error: --act $ACT_DIR: not a checkout of tonyzhaozh/act (no policy.py, detr/)" >&2; exit 2; }
  ACT_DIR="$(cd "$ACT_DIR" && pwd)"
elif want act; then
  if [[ "$ONLY" == act ]]; then echo "error: --act PATH (a checkout of tonyzhaozh/act) is required" >&2; exit 2; fi
  echo "note: ACT skipped: no --act PATH (git clone https://github.com/tonyzhaozh/act, then --act that folder)" >&2
fi

mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
DATA="$WORK/data"
REC="$DATA/recordings"
SUMMARY="$WORK/peer_check.txt"
rm -rf "$DATA" && mkdir -p "$REC"
declare -A RESULT

# --- Episodes and exports (the project's python) -------------------------------------------------
echo "== recording 4 simulated episodes into $REC"
(cd "$ROOT" && "$PYTHON" - "$REC" <<'EOF'
import sys
from pathlib import Path
from tests.collector.sim_episodes import write_sim_episode

root = Path(sys.argv[1])
for i, seconds in enumerate((3.0, 3.2, 2.8, 3.1)):  # unequal lengths on purpose
    write_sim_episode(root / f"ep{i}.h5", seed=10 + i, seconds=seconds, width=128, height=96,
                      surprise=(i % 2 == 0))   # GUI and headless episodes mixed
print("ok")
EOF
) || { echo "error: could not write the simulated episodes" >&2; exit 99; }

export_or_fail() {  # format, output, extra args...
  local fmt="$1" out="$2"; shift 2
  echo "== collector export $fmt -> $out (defaults, $*)"
  (cd "$ROOT" && "$PYTHON" -c 'import sys; from collector.cli import main; sys.exit(main(sys.argv[1:]))' \
    export "$fmt" "$REC" -o "$out" --force "$@" 2>&1 | grep -v 'frame/s')
}

venv() {  # name, python, module that marks it installed -> prints "path installed?"
  local var="${1^^}_VENV" dir
  dir="${!var:-$WORK/$1-venv}"
  if [[ -x "$dir/bin/python" ]] && "$dir/bin/python" -c "import $3" 2>/dev/null; then
    echo "$dir 1"; return
  fi
  "$2" -m venv "$dir" >&2 && echo "$dir 0"
}

# torchvision's C ops load only with the torch build they were compiled for. Where the only
# torchvision wheel for the CPU torch is a CUDA build, its import fails on registering fake
# kernels for two operators its C library would have defined; robomimic and ACT use only the
# Python models and transforms, so declare those two schemas (only when the C library is absent).
TV_PRELUDE='
import importlib.util, os, torch
_tv = importlib.util.find_spec("torchvision")
try:
    torch.ops.load_library(os.path.join(_tv.submodule_search_locations[0], "_C.so"))
except (OSError, RuntimeError):
    _tv_lib = torch.library.Library("torchvision", "DEF")
    _tv_lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _tv_lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    print("note: torchvision C ops unavailable for this torch; Python models/transforms only")
'

cpu_torch_venv() {  # name, import check, extra packages... -> venv path
  local name="$1" check="$2"; shift 2
  local env installed
  read -r env installed < <(venv "$name" "$PYTHON" "$check") || return 1
  if [[ "$installed" == 0 ]]; then
    echo "== installing $name into $env" >&2
    "$env/bin/pip" install -q "$TORCH_SPEC" >&2 || return 1
    local tv; tv="$("$env/bin/python" -c 'import torch; v = torch.__version__.split("+")[0].split("."); print(f"torchvision==0.{int(v[1]) + 15}.*")')"
    "$env/bin/pip" install -q --no-deps "$tv" >&2 || return 1
    "$env/bin/pip" install -q "$@" >&2 || return 1
  fi
  echo "$env"
}

# --- robomimic 0.3.0 ------------------------------------------------------------------------------
run_robomimic() {
  export_or_fail robomimic "$DATA/robomimic.hdf5" --image-size 84x84 || return 1
  export_or_fail robomimic "$DATA/robomimic-depth.hdf5" --image-size 84x84 --depth || return 1
  local env
  env="$(cpu_torch_venv robomimic robomimic "numpy<2" h5py psutil tqdm termcolor six tensorboard \
    tensorboardX imageio imageio-ffmpeg matplotlib)" || return 1
  "$env/bin/python" -c 'import robomimic' 2>/dev/null \
    || "$env/bin/pip" install -q --no-deps robomimic==0.3.0 || return 1
  local data
  for data in "$DATA/robomimic.hdf5" "$DATA/robomimic-depth.hdf5"; do
  rm -rf "$WORK/robomimic-out"
  "$env/bin/python" - "$data" "$WORK/robomimic-out" <<EOF || return 1
$TV_PRELUDE
import json
import sys

import h5py
from robomimic.config import config_factory
from robomimic.scripts.train import train
import robomimic.utils.torch_utils as TorchUtils

data, out = sys.argv[1], sys.argv[2]
with h5py.File(data, "r") as f:
    obs = list(f["data/demo_0/obs"].keys())
    print("actions in [%.3f, %.3f]" % (min(f[f"data/{d}/actions"][:].min() for d in f["data"]),
                                       max(f[f"data/{d}/actions"][:].max() for d in f["data"])))
    print("masks:", {k: len(f[f"mask/{k}"]) for k in f["mask"]})
config = config_factory("bc")
with config.values_unlocked():
    config.train.data = data
    config.train.output_dir = out
    config.train.hdf5_filter_key = "train"
    config.train.hdf5_validation_filter_key = "valid"
    config.train.num_epochs = 1
    config.train.batch_size = 4
    config.train.num_data_workers = 0
    config.train.seq_length = 1
    config.experiment.name = "collector-peer-check"
    config.experiment.validate = True
    config.experiment.epoch_every_n_steps = 1
    config.experiment.validation_epoch_every_n_steps = 1
    config.experiment.rollout.enabled = False    # no simulator behind the data
    config.experiment.render_video = False
    config.experiment.save.enabled = False
    config.experiment.logging.log_tb = False
    config.observation.modalities.obs.low_dim = [k for k in obs if not k.endswith(("_image", "_depth"))]
    config.observation.modalities.obs.rgb = [k for k in obs if k.endswith("_image")]
    config.observation.modalities.obs.depth = [k for k in obs if k.endswith("_depth")]
    for encoder in (config.observation.encoder.rgb, config.observation.encoder.depth):
        encoder.core_class = "VisualCore"
        encoder.core_kwargs.feature_dimension = 64
        encoder.core_kwargs.backbone_class = "ShallowConv"
        encoder.core_kwargs.backbone_kwargs = {}
        encoder.core_kwargs.pool_class = "SpatialSoftmax"
        encoder.core_kwargs.pool_kwargs = {"num_kp": 32}
print(json.dumps({"low_dim": config.observation.modalities.obs.low_dim,
                  "rgb": config.observation.modalities.obs.rgb,
                  "depth": config.observation.modalities.obs.depth}))
train(config, device=TorchUtils.get_torch_device(try_to_use_cuda=False))
print("robomimic: one BC epoch of one step done on", data)
EOF
  done
}

# --- ACT (a checkout of tonyzhaozh/act) -----------------------------------------------------------
run_act() {
  export_or_fail aloha "$DATA/act" --image-size 128x96 || return 1
  local env
  env="$(cpu_torch_venv act "einops, h5py, IPython" "numpy<2" h5py einops ipython matplotlib \
    packaging pillow)" || return 1
  "$env/bin/python" - "$ACT_DIR" "$DATA/act" "$WORK/act-ckpt" <<EOF
$TV_PRELUDE
import glob
import json
import sys

act, data, ckpt = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path[:0] = [act, f"{act}/detr"]
torch.nn.Module.cuda = lambda self, *a, **k: self          # ACT builds its model with .cuda()
torch.Tensor.cuda = lambda self, *a, **k: self
import util.misc                                            # ACT's detr/util: no ImageNet download
util.misc.is_main_process = lambda: False
# detr.main parses sys.argv; these are the arguments imitate_episodes.py requires.
sys.argv = ["imitate_episodes.py", "--ckpt_dir", ckpt, "--policy_class", "ACT", "--task_name",
            "collector", "--seed", "0", "--num_epochs", "1", "--kl_weight", "10",
            "--chunk_size", "10", "--hidden_dim", "64", "--dim_feedforward", "128", "--batch_size", "2"]
from utils import load_data                                 # ACT's EpisodicDataset, get_norm_stats
from policy import ACTPolicy
manifest = json.load(open(f"{data}/steps.json"))
cameras = list(manifest["cameras"])
episodes = len(glob.glob(f"{data}/episode_*.hdf5"))
print("layout:", manifest.get("layout"), "look-back shift:", manifest.get("act_lookback_shift"))
train, val, stats, _ = load_data(data, episodes, cameras, 2, 2)
# The policy config imitate_episodes.py builds (state_dim 14 is ACT's constant).
policy = ACTPolicy({"lr": 1e-5, "num_queries": 10, "kl_weight": 10, "hidden_dim": 64,
                    "dim_feedforward": 128, "lr_backbone": 1e-5, "backbone": "resnet18",
                    "enc_layers": 4, "dec_layers": 7, "nheads": 8, "camera_names": cameras})
optimizer = policy.configure_optimizers()
image, qpos, action, is_pad = next(iter(train))
print("batch: image", tuple(image.shape), "qpos", tuple(qpos.shape), "action", tuple(action.shape))
loss = policy(qpos, image, action, is_pad)
loss["loss"].backward()
optimizer.step()
print(f"act: one training step done, loss {loss['loss'].item():.4f} (l1 {loss['l1'].item():.4f}, kl {loss['kl'].item():.4f})")
EOF
}

# --- LeRobot 0.4.4 --------------------------------------------------------------------------------
run_lerobot() {
  export_or_fail lerobot "$DATA/lerobot" --image-size 128x96 || return 1
  export_or_fail lerobot "$DATA/lerobot-depth" --image-size 128x96 --depth || return 1
  command -v "$PY311" >/dev/null || { echo "error: LeRobot 0.4.4 needs $PY311 (set PY311)" >&2; return 1; }
  local env installed
  read -r env installed < <(venv lerobot "$PY311" lerobot) || return 1
  if [[ "$installed" == 0 ]]; then
    "$env/bin/pip" install -q "lerobot==0.4.4" || return 1
  fi
  "$env/bin/python" -c 'import lerobot, torch; print("lerobot", lerobot.__version__, "torch", torch.__version__)'
  rm -rf "$WORK/lerobot-out"
  "$env/bin/lerobot-train" --dataset.repo_id=local/collector-peer-check \
    --dataset.root="$DATA/lerobot" --dataset.video_backend=pyav \
    --policy.type=act --policy.device=cpu --policy.push_to_hub=false \
    --policy.pretrained_backbone_weights=null \
    --steps=3 --batch_size=2 --num_workers=0 --log_freq=1 --save_checkpoint=false \
    --wandb.enable=false --output_dir="$WORK/lerobot-out" || return 1
  # Depth: an image feature LeRobot's own dataset class loads (ACT's 3-channel ResNet cannot take
  # it, so no training step on it).
  "$env/bin/python" - "$DATA/lerobot-depth" <<'EOF'
import sys
from lerobot.datasets.lerobot_dataset import LeRobotDataset
ds = LeRobotDataset("local/collector-peer-check-depth", root=sys.argv[1], video_backend="pyav")
depth = ds[len(ds) // 2]["observation.images.cam0_depth"]
info = ds.meta.info["features"]["observation.images.cam0_depth"]["info"]
print(f"lerobot depth item: {depth.dtype} {tuple(depth.shape)} values {int(depth.min())}..{int(depth.max())}"
      f" depth units, depth_scale {info['depth_scale']}")
EOF
}

# The lines worth quoting from each log (the rest is each peer's own chatter).
KEY_LINES='^== |note:|error|Error|Traceback|actions in|masks:|^\{"low_dim"|lerobot depth item|"Loss"|Train Epoch|Validation Epoch|one BC epoch|layout:|batch:|act: one|lerobot 0|dataset.num_|step:|End of training|episodes, .* steps'

failed=0
: >"$SUMMARY"
for peer in robomimic act lerobot; do
  want "$peer" || continue
  if [[ "$peer" == act && -z "$ACT_DIR" ]]; then RESULT[$peer]="skipped (no --act PATH)"; continue; fi
  echo "== $peer (log: $WORK/$peer.log)"
  start=$SECONDS
  if "run_$peer" >"$WORK/$peer.log" 2>&1; then
    RESULT[$peer]="ok ($((SECONDS - start)) s)"
  else
    RESULT[$peer]="FAILED ($((SECONDS - start)) s)"; failed=$((failed + 1))
    tail -n 25 "$WORK/$peer.log"
  fi
  { echo "== $peer: ${RESULT[$peer]}"; tr "\r" "\n" <"$WORK/$peer.log" | grep -E "$KEY_LINES" | grep -v "^Training:" | cut -c1-220; } >>"$SUMMARY"
done

{
  echo "== peer check ($(date -u '+%Y-%m-%d %H:%M UTC'), collector $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null))"
  for peer in robomimic act lerobot; do
    want "$peer" && printf '  %-10s %s\n' "$peer" "${RESULT[$peer]:-not run}"
  done
} | tee -a "$SUMMARY"
echo "key lines: $SUMMARY"
[[ $KEEP == 1 ]] || rm -rf "$DATA"
exit "$failed"
