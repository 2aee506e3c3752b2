# Source this to build with cargo by hand: the Makefile does the same for its targets.
export LIBTORCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.venv/lib/python3.11/site-packages/torch"
export LIBTORCH_CXX11_ABI=1
