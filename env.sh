# Source this to build with cargo by hand: the Makefile does the same for its targets
# (GRAN_REQUIRE_GLOO=1: a build without gloo's headers fails instead of leaving out process groups).
export LIBTORCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.venv/lib/python3.11/site-packages/torch"
export LIBTORCH_CXX11_ABI=1
export GRAN_REQUIRE_GLOO=1
