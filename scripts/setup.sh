#!/bin/sh
# kjit set-up, idempotent: installs what is missing and rebuilds what is stale.
#   - Debian packages: LLVM 19 (clang, tools, the C API library and headers,
#     the profile runtime for the offline-PGO comparison); chromium (the
#     report test opens kjit report's HTML in it, through playwright-core);
#   - npm packages from package-lock.json;
#   - TypeScript -> dist/ (incremental);
#   - the IR of the kjit runtime and of the reference kernel -> build/ir/;
#   - the foreign image measured on (tree-sitter, from its npm packages'
#     C sources and ir/foreign/) -> build/ir/tree-sitter.bc.
set -eu
cd "$(dirname "$0")/.."

missing=""
for tool in clang-19 llvm-profdata-19 llvm-dis-19; do
  command -v "$tool" >/dev/null 2>&1 || missing=1
done
[ -f /usr/lib/llvm-19/lib/libLLVM.so.19.1 ] || missing=1
[ -f /usr/lib/llvm-19/include/llvm-c/LLJIT.h ] || missing=1
[ -f /usr/lib/llvm-19/lib/clang/19/lib/linux/libclang_rt.profile-x86_64.a ] || missing=1
[ -x /usr/bin/chromium ] || missing=1
if [ -n "$missing" ]; then
  echo "setup: installing from Debian: clang-19 llvm-19 llvm-19-dev libclang-rt-19-dev chromium"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang-19 llvm-19 llvm-19-dev libclang-rt-19-dev chromium
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi

npx tsc -p tsconfig.json
node dist/src/kernel/build-ir.js
node dist/src/kernel/build-foreign.js
