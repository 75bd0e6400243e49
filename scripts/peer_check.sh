#!/usr/bin/env bash
# Peer checks, outside CI: one training step of each peer's own trainer on a fresh export.
#
#   scripts/peer_check.sh --act ~/src/act            # all three peers
#   scripts/peer_check.sh --only robomimic           # one of robomimic | act | lerobot
#   scripts/peer_check.sh --act ~/src/act --work /tmp/peers --keep
#
# What it builds (the way issue 16's measurements were made; nothing is installed into the
# project's environment, and no peer code is copied into the project):
#   robomimic  robomimic 0.3.0 installed --no-deps into its own venv on the CPU torch wheel, plus
#              the few libraries its training imports; runs robomimic.scripts.train.train() for
#              one epoch of one step: BC, ShallowConv image backbone, rollouts off.
#   act        ACT's source is not on PyPI: pass the path of a checkout of the public repository
#              tonyzhaozh/act with --act. Its own utils.load_data (EpisodicDataset,
#              get_norm_stats) and policy.ACTPolicy run one optimizer step on CPU, in a venv
#              with CPU torch (ACT calls .cuda() on the model: the driver makes that a no-op, and
#              builds the ResNet-18 backbone without downloading ImageNet weights).
#   lerobot    lerobot 0.4.4 (the newest on Python 3.11) in its own venv: it pins torch < 2.11,
#              whose wheel here is a CUDA build that also runs on CPU (~8 GB to download).
#              Videos are decoded with LeRobot's pyav backend (torchcodec needs the system
#              FFmpeg libraries). Runs `lerobot-train --policy.type=act --steps=3
#              --policy.device=cpu`.
#
# Episodes come from the simulated devices (tests/collector/sim_episodes.py) and are exported
# with the project's own `collector export` defaults. Needs: the project installed in the
# current python (collector.cli importable), network access for pip, python3.11 for LeRobot.
# Exit status: the number of peers that failed. Output of each peer: WORK/<peer>.log.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${TMPDIR:-/tmp}/collector-peer-check"
ACT_DIR=""
ONLY=""
KEEP=0
PYTHON="${PYTHON:-python3}"
PY311="${PY311:-python3.11}"

usage() { sed -n '2,8p' "$0"; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --act) ACT_DIR="$(cd "$2" && pwd)" || { echo "error: --act $2: no such folder" >&2; exit 2; }; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage ;;
    *) echo "error: unknown argument $1" >&2; usage ;;
  esac
done
case "$ONLY" in ""|robomimic|act|lerobot) ;; *) echo "error: --only robomimic|act|lerobot" >&2; exit 2 ;; esac
want() { [[ -z "$ONLY" || "$ONLY" == "$1" ]]; }
if want act && [[ -z "$ACT_DIR" ]]; then
  if [[ "$ONLY" == act ]]; then echo "error: --act PATH (a checkout of tonyzhaozh/act) is required" >&2; exit 2; fi
  echo "note: no --act PATH given: ACT is skipped (git clone https://github.com/tonyzhaozh/act)" >&2
fi

mkdir -p "$WORK"
DATA="$WORK/data"
REC="$DATA/recordings"
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
  echo "== collector export $fmt -> $out"
  (cd "$ROOT" && "$PYTHON" -c 'import sys; from collector.cli import main; sys.exit(main(sys.argv[1:]))' \
    export "$fmt" "$REC" -o "$out" -q --force "$@")
}

venv() {  # name, python -> path of a fresh-or-reused venv
  local dir="$WORK/venv-$1"
  [[ -x "$dir/bin/python" ]] || "$2" -m venv "$dir" >&2
  "$dir/bin/python" -m pip install -q --upgrade pip >&2
  echo "$dir"
}

# --- robomimic 0.3.0 ------------------------------------------------------------------------------
run_robomimic() {
  export_or_fail robomimic "$DATA/robomimic.hdf5" --image-size 84x84 || return 1
  local env; env="$(venv robomimic "$PYTHON")" || return 1
  "$env/bin/pip" install -q torch torchvision --index-url https://download.pytorch.org/whl/cpu || return 1
  "$env/bin/pip" install -q --no-deps robomimic==0.3.0 || return 1
  # What its training imports (egl_probe, a declared dependency, builds only with cmake + EGL
  # and is needed only for rendering rollouts: hence --no-deps).
  "$env/bin/pip" install -q "numpy<2" h5py psutil tqdm termcolor tensorboard tensorboardX \
    imageio imageio-ffmpeg matplotlib || return 1
  "$env/bin/python" - "$DATA/robomimic.hdf5" "$WORK/robomimic-out" <<'EOF'
import json
import sys

import h5py
import torch
from robomimic.config import config_factory
from robomimic.scripts.train import train
import robomimic.utils.torch_utils as TorchUtils

data, out = sys.argv[1], sys.argv[2]
with h5py.File(data, "r") as f:
    obs = list(f["data/demo_0/obs"].keys())
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
    config.observation.encoder.rgb.core_kwargs.backbone_class = "ShallowConv"
    config.observation.encoder.rgb.core_kwargs.backbone_kwargs = {}
print(json.dumps({"low_dim": config.observation.modalities.obs.low_dim,
                  "rgb": config.observation.modalities.obs.rgb}))
train(config, device=TorchUtils.get_torch_device(try_to_use_cuda=False))
print("robomimic: one BC epoch of one step done")
EOF
}

# --- ACT (a checkout of tonyzhaozh/act) -----------------------------------------------------------
run_act() {
  export_or_fail aloha "$DATA/act" --image-size 128x96 || return 1
  local env; env="$(venv act "$PYTHON")" || return 1
  "$env/bin/pip" install -q torch torchvision --index-url https://download.pytorch.org/whl/cpu || return 1
  "$env/bin/pip" install -q "numpy<2" h5py einops ipython matplotlib packaging || return 1
  "$env/bin/python" - "$ACT_DIR" "$DATA/act" "$WORK/act-ckpt" <<'EOF'
import sys

import torch

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
import glob
import json
manifest = json.load(open(f"{data}/steps.json"))
cameras = list(manifest["cameras"])
episodes = len(glob.glob(f"{data}/episode_*.hdf5"))
train, val, stats, _ = load_data(data, episodes, cameras, 2, 2)
# The policy config imitate_episodes.py builds (state_dim 14 is ACT's constant).
policy = ACTPolicy({"lr": 1e-5, "num_queries": 10, "kl_weight": 10, "hidden_dim": 64,
                    "dim_feedforward": 128, "lr_backbone": 1e-5, "backbone": "resnet18",
                    "enc_layers": 4, "dec_layers": 7, "nheads": 8, "camera_names": cameras})
optimizer = policy.configure_optimizers()
image, qpos, action, is_pad = next(iter(train))
print("batch:", tuple(image.shape), tuple(qpos.shape), tuple(action.shape))
loss = policy(qpos, image, action, is_pad)
loss["loss"].backward()
optimizer.step()
print(f"act: one training step done, loss {loss['loss'].item():.4f}")
EOF
}

# --- LeRobot 0.4.4 --------------------------------------------------------------------------------
run_lerobot() {
  export_or_fail lerobot "$DATA/lerobot" --image-size 128x96 || return 1
  command -v "$PY311" >/dev/null || { echo "error: LeRobot 0.4.4 needs $PY311" >&2; return 1; }
  local env; env="$(venv lerobot "$PY311")" || return 1
  "$env/bin/pip" install -q "lerobot==0.4.4" || return 1
  rm -rf "$WORK/lerobot-out"
  "$env/bin/lerobot-train" --dataset.repo_id=local/collector-peer-check \
    --dataset.root="$DATA/lerobot" --dataset.video_backend=pyav \
    --policy.type=act --policy.device=cpu --policy.push_to_hub=false \
    --policy.pretrained_backbone_weights=null \
    --steps=3 --batch_size=2 --num_workers=0 --save_checkpoint=false --wandb.enable=false \
    --output_dir="$WORK/lerobot-out"
}

failed=0
for peer in robomimic act lerobot; do
  want "$peer" || continue
  if [[ "$peer" == act && -z "$ACT_DIR" ]]; then RESULT[$peer]="skipped (no --act)"; continue; fi
  echo "== $peer (log: $WORK/$peer.log)"
  if "run_$peer" >"$WORK/$peer.log" 2>&1; then
    RESULT[$peer]="ok"
  else
    RESULT[$peer]="FAILED"; failed=$((failed + 1))
    tail -n 25 "$WORK/$peer.log"
  fi
done

echo "== peer check"
for peer in robomimic act lerobot; do
  want "$peer" && printf '  %-10s %s\n' "$peer" "${RESULT[$peer]:-not run}"
done
[[ $KEEP == 1 ]] || rm -rf "$DATA"
exit "$failed"
