#!/usr/bin/env bash
# One short GPU check (about 5 minutes on an H200; nothing to install: torch, timm, h5py, click, rich,
# pluggy, pyyaml and pillow are on the machine). From the repository root:
#
#     bash benchmarks/gpu_check.sh            # PYTHON=... to pick the interpreter; COMPILE=1 adds --compile
#
# 1. device resize on CUDA (float32, PIL's two rounded passes) against PIL on the sample photos;
# 2. `zoomkit oracle` end to end on CUDA: --amp, channels_last, --resize-on device, --batch-size auto;
# 3. benchmarks/oracle_throughput.py: ResNet-50 (random init: the same speed as trained weights) in bf16,
#    channels_last, device resize, against the bare forward. Target ratio >= 0.85.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
PY="${PYTHON:-python3}"
OUT_DIR="${OUT:-/tmp}/gpu-check"
mkdir -p "$OUT_DIR"

nvidia-smi -L || true
"$PY" - <<'EOF'
import time
import numpy as np
import torch
from zoomkit.builtin.local_datasets import sample_root
from zoomkit.builtin.zoom_crops import PAPER_SCALES, paper_324
from zoomkit.engine.device_crops import DeviceCropper, resize_shorter
from zoomkit.imaging import decode_rgb, resize_shorter as pil_resize, zoom_crops

print("torch", torch.__version__, torch.cuda.get_device_name(0))
cuda = torch.device("cuda")
worst, exact, total = 0, 0, 0
for name in ("cat.jpg", "tripod.jpg", "pekinese_rgba.png", "crossword.jpg", "palace_home.jpg"):
    image = decode_rgb((sample_root() / name).read_bytes())
    tensor = torch.from_numpy(np.array(image)).to(cuda)
    for scale in PAPER_SCALES:
        diff = np.abs(resize_shorter(tensor, scale, "torch-float32").cpu().numpy().astype(np.int16)
                      - pil_resize(image, scale))
        worst, exact, total = max(worst, int(diff.max())), exact + int((diff == 0).sum()), total + diff.size
print(f"CUDA resize vs PIL, 5 photos x 36 scales: max |diff| {worst} grey levels, exact {exact / total:.5%}")
image = decode_rgb((sample_root() / "palace_home.jpg").read_bytes())
cropper = DeviceCropper(paper_324(), cuda, "torch-float32")
tensor = torch.from_numpy(np.array(image)).to(cuda)
crops = cropper(tensor)
diff = np.abs(crops.cpu().numpy().astype(np.int16) - zoom_crops(image, paper_324().crops))
torch.cuda.synchronize()
start = time.perf_counter()
for _ in range(20):
    cropper(tensor)
torch.cuda.synchronize()
print(f"324 crops on CUDA vs PIL crops: max |diff| {diff.max()}; {(time.perf_counter() - start) / 20 * 1e3:.1f} ms "
      "per image (36 resizes + 324 crops)")
EOF

echo "--- zoomkit oracle on CUDA (bf16, channels_last, device resize, --batch-size auto)"
time "$PY" -m zoomkit oracle -m resnet50 --random-init --device cuda --amp --resize-on device -b auto -j 8 \
    -o "$OUT_DIR/oracle" --overwrite --json > "$OUT_DIR/oracle.json"
"$PY" - "$OUT_DIR" <<'EOF'
import json, sys
from pathlib import Path
import h5py
(summary,) = json.loads((Path(sys.argv[1]) / "oracle.json").read_text())
print({k: summary[k] for k in ("n_images", "n_crops", "center_top1", "oracle_top1")})
(path,) = (Path(sys.argv[1]) / "oracle").glob("*.h5")
with h5py.File(path) as f:
    print({k: f.attrs[k] for k in ("batch_size", "dtype", "resize", "device")})
EOF

echo "--- throughput: oracle run vs bare forward"
"$PY" benchmarks/oracle_throughput.py --device cuda --amp --model resnet50 --random-init --batch-size 256 \
    --images 15 --repeat 40 --workers 8 --resize-on device --rounds 2
if [ "${COMPILE:-0}" = 1 ]; then
    echo "--- the same with torch.compile"
    "$PY" benchmarks/oracle_throughput.py --device cuda --amp --model resnet50 --random-init --batch-size 256 \
        --images 15 --repeat 40 --workers 8 --resize-on device --rounds 1 --compile
fi
