#!/usr/bin/env bash
# GPU check: run on a machine with CUDA (nothing in the test suite needs one). Writes the "GPU" section of
# docs/benchmarks.md with the device name:
#   1. the GPU-relevant tests (trainer precision/devices, checkpoints moved across devices, env contract),
#   2. the simulator benchmark at large N (learned env on the GPU, up to 65,536 envs),
#   3. each family's training throughput (steps/s) at its GPU preset, timed after 10 warm-up steps,
#   4. with 2+ GPUs: the vrnn preset under torchrun with trainer.strategy=ddp and fsdp, steps/s per world size.
# Datasets are recorded small (a few episodes) into $WORK; throughput does not depend on how much data there is.
#
#   bash scripts/gpu_check.sh                 # ~15 min on one H100-class GPU (most of it the real envs at N=65,536)
#   PYTHON=.venv/bin/python WORK=/tmp/gpu bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
WORK=${WORK:-$(mktemp -d -t worldrl-gpu-XXXX)}
DOC=${DOC:-docs/benchmarks.md}
NUM_ENVS=${NUM_ENVS:-"1024 65536"}
mkdir -p "$WORK"
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check.sh: no CUDA device visible to torch')"
GPUS=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())")
echo "== $("$PYTHON" -c "import torch; print(torch.cuda.get_device_name())") x $GPUS; work dir $WORK"

echo "== 1/4 GPU-relevant tests"
"$PYTHON" -m pytest -q -x tests/test_trainer.py tests/test_checkpoint.py tests/test_env_contract.py \
  tests/test_distributed.py 2>&1 | tail -3 | tee "$WORK/tests.txt"

echo "== 2/4 simulator benchmark at large N (learned env on cuda)"
# shellcheck disable=SC2086
"$PYTHON" scripts/benchmark_simulator.py --device cuda --num-envs $NUM_ENVS --steps 20 --warmup 2 --repeats 3 \
  --doc "$WORK/simulator.md" | tee "$WORK/simulator.txt"

echo "== 3/4 and 4/4 training throughput per family at its GPU preset"
"$PYTHON" - "$WORK" "$DOC" "$GPUS" <<'EOF'
import subprocess, sys, time
from pathlib import Path

import torch

from worldrl.evaluation.report import describe_machine, update_doc_section
from worldrl.training.run import build_trainer, load_config

work, doc, gpus = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
small = ["trainer.device=cuda", "trainer.eval_every=0", "trainer.checkpoint_every=0", "trainer.progress=false"]
PRESETS = {  # family: (preset, overrides that record a small dataset into the work dir)
    "ensemble": ("ensemble_halfcheetah", ["data.collect.episodes=4"]),
    "vrnn": ("vrnn_full", ["data.collect.episodes=8"]),
    "vjepa2": ("vjepa2_full", ["data.synthetic={episodes: 8, steps: 40, image_size: 256, square: 24, seed: 0}"]),
    "multimodal": ("multimodal_playground_gpu", ["data.collect.episodes=6"]),
}


def steps_per_second(family: str, preset: str, extra: list[str], warmup: int = 10, timed: int = 30) -> tuple[float, str]:
    out = work / f"train-{family}"
    base = [*small, *extra, f"data.root={work / ('data-' + family)}", f"output_dir={out}"]
    build_trainer(load_config(preset, [*base, f"trainer.max_steps={warmup}"])).fit()  # warm-up (and the data)
    cfg = load_config(preset, [*base, f"trainer.max_steps={warmup + timed}"])
    trainer = build_trainer(cfg)
    torch.cuda.synchronize()
    result = trainer.fit(resume=True)
    torch.cuda.synchronize()
    t = cfg["trainer"]
    return timed / result.seconds, f"batch {t.get('batch_size')}, {t.get('precision', 'fp32')}"


rows = []
for family, (preset, extra) in PRESETS.items():
    try:
        sps, note = steps_per_second(family, preset, extra)
        rows.append(f"| {family} | `{preset}` | {sps:.2f} | {note} |")
    except Exception as err:  # one family failing must not hide the others' numbers
        rows.append(f"| {family} | `{preset}` | failed | {type(err).__name__}: {str(err)[:120]} |")
    print(rows[-1], flush=True)

multi = []
if gpus >= 2:
    for strategy in ("ddp", "fsdp"):
        out = work / f"multi-{strategy}"
        args = ["vrnn_full", "data.collect.episodes=8", f"data.root={work / 'data-vrnn'}", f"output_dir={out}",
                *small, "trainer.max_steps=40", "trainer.gradient_balancing=sum", f"trainer.strategy={strategy}"]
        start = time.time()
        code = subprocess.call([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                f"--nproc_per_node={gpus}", "-m", "worldrl", "train", "--config", *args])
        multi.append(f"| vrnn_full x {gpus} GPUs | {strategy} | "
                     + (f"{40 / (time.time() - start):.2f} (incl. start-up) |" if code == 0 else f"failed (exit {code}) |"))

tests = (work / "tests.txt").read_text().strip().splitlines()[-1]
simulator = (work / "simulator.md").read_text() if (work / "simulator.md").exists() else "(no simulator output)"
# the simulator's own section markers and heading must not nest inside this section
simulator = "\n".join(
    "#" + line if line.startswith("## ") else line for line in simulator.splitlines() if not line.startswith("<!--")
)
body = "\n".join([
    "## GPU",
    "",
    f"Device: **{torch.cuda.get_device_name()}** x {gpus}; {describe_machine()}. Written by `bash scripts/gpu_check.sh`"
    f" on {time.strftime('%Y-%m-%d')}.",
    "",
    f"GPU-relevant tests: {tests}",
    "",
    "Training throughput at each family's GPU preset (optimizer steps/s after 10 warm-up steps, 30 timed):",
    "",
    "| family | preset | steps/s | setting |",
    "|---|---|---:|---|",
    *rows,
    *(["", "Several GPUs (`torchrun --nproc_per_node N`, global batch unchanged):", "",
       "| run | strategy | steps/s |", "|---|---|---:|", *multi] if multi else []),
    "",
    "Simulator at large N on this GPU (scripts/benchmark_simulator.py --device cuda):",
    "",
    simulator.strip(),
])
update_doc_section(doc, "gpu", body)
print(f"wrote the gpu section of {doc}")
EOF

# DeepMind Control at the published 100k-step budget (needs worldrl[dmc]: dm-control with mujoco 3.x; DMC_PYTHON
# names an env that has it). Several hours of env stepping per task: opt in with DMC_100K=1. Writes the dmc section.
if [ "${DMC_100K:-0}" = 1 ]; then
  DMC_PYTHON=${DMC_PYTHON:-$PYTHON}
  echo "== DeepMind Control at 100k real steps (scripts/benchmark_dmc.py, cuda)"
  # the CPU rows' dreamer settings at the published budget; pendulum-swingup's sparse reward needs the bonus
  for task in pendulum-swingup cartpole-swingup reacher-easy cheetah-run; do
    bonus=()
    [ "$task" = pendulum-swingup ] && bonus=(--agent-option exploration_bonus=1.0)
    "$DMC_PYTHON" scripts/benchmark_dmc.py dmc --tasks "$task" --agent dreamer \
      --agent-option updates_per_real_step=0.2 --agent-option uncertainty_penalty=0.1 "${bonus[@]}" \
      --real-steps 100000 --random-steps 1000 --steps-per-iteration 250 --model-steps 200 \
      --eval-every 10000 --eval-episodes 10 --device cuda --out "$WORK/dmc" --doc "$DOC"
  done
fi
