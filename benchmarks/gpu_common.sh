# Sourced by the gpu_*.sh scripts: what they all do first on a lent machine, in the checkout's root.
# gpu_prepare OUT WORK: make the folders, say which card and torch, unpack the carried CIFAR-10 copy into
# WORK/data/cifar10 (once), and set t0, the second the script's time budget counts from.
gpu_prepare() {
  mkdir -p "$1" "$2/data/cifar10" "$2/logs"
  t0=$(date +%s)
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  if [ ! -d "$2/data/cifar10/train" ]; then
    tar xzf .data/cifar10-jpeg.tar.gz -C "$2/data/cifar10" || { echo "no .data/cifar10-jpeg.tar.gz: carry .data"; exit 2; }
  fi
}
