#!/usr/bin/env bash
# Installs the build into a temporary prefix, then builds and runs the C sample with nothing but
# `pkg-config --cflags --libs starkv`, the dlopen sample with only the header, and a CMake
# project with find_package(starkv).
# Usage: pkgconfig_sample.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
source=$2
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT

cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(find "$prefix" -name starkv.pc -print -quit)")/..
export PKG_CONFIG_PATH="$libdir/pkgconfig"
echo "pkg-config: $(pkg-config --cflags --libs starkv)"
cc -std=c99 -Wall -Wextra -Werror "$source/samples/c/basic.c" $(pkg-config --cflags --libs starkv) \
  -lm -o "$prefix/basic"
LD_LIBRARY_PATH="$libdir" "$prefix/basic"

# The dlopen sample: only the header at build time, the library found at run time.
cc -std=c99 -Wall -Wextra -Werror "$source/samples/c/dlopen_basic.c" -I"$prefix/include" -ldl \
  -o "$prefix/dlopen_basic"
"$prefix/dlopen_basic" "$(find "$prefix" -name 'libstarkv.so.*' -print -quit)"

# The CMake package.
mkdir -p "$prefix/consumer"
cat > "$prefix/consumer/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.20)
project(consumer C)
find_package(starkv REQUIRED)
add_executable(basic basic.c)
target_link_libraries(basic PRIVATE starkv::starkv m)
CMAKE
cp "$source/samples/c/basic.c" "$prefix/consumer/"
cmake -S "$prefix/consumer" -B "$prefix/consumer/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/consumer/build" >/dev/null
LD_LIBRARY_PATH="$libdir" "$prefix/consumer/build/basic" >/dev/null
echo "find_package(starkv) consumer built and ran"
