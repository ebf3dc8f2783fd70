#!/usr/bin/env bash
# Installs the build and test dependencies from Debian packages. Idempotent: a no-op when all are present.
set -euo pipefail
# clang, its sanitizer/libFuzzer runtime (libclang-rt-14-dev) and its OpenMP runtime (libomp-dev)
# build the ASan and fuzz trees of the test command; a minimal Debian has none of them.
# munge, slurmctld, slurmd and slurm-client run the local Slurm cluster of the `slurm` tests
# (scripts/slurm/local-cluster.sh); Slurm's pmix plugin loads libpmix.so from libpmix-dev.
pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev libomp-dev
      libeigen3-dev libcli11-dev libspdlog-dev libfmt-dev libyaml-cpp-dev nlohmann-json3-dev
      catch2 libopenmpi-dev openmpi-bin python3 python3-matplotlib
      munge slurmctld slurmd slurm-client slurm-wlm-basic-plugins libpmix-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: dependencies present"
