#!/usr/bin/env bash
# examples/web in headless Chromium: the page must load the WebAssembly runtime and a model and
# draw; its screenshot is written to SCREENSHOT.
#
#     bash examples/web/check.sh target/wasm/gran_runtime.wasm docs/img/web_runtime.png
#
# The page is served from the repository root (python3 -m http.server on a free port of
# 127.0.0.1). WASM and the model are copied to target/web-check/, and the page is told where
# with ?wasm= and ?model=. The model: WEB_MODEL when set, else examples/web/gran_t3.safetensors,
# else the tiny test model (which draws blotches, not digits).
# Chromium is Debian's package, installed with apt-get when `chromium` is missing (CHROMIUM
# names another binary). Fails when the page reports no drawing, or when the screenshot is
# missing or blank.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: bash examples/web/check.sh WASM SCREENSHOT.png" >&2
    exit 2
fi
wasm="$(realpath "$1")"
shot="$(realpath -m "$2")"
[ -f "$wasm" ] || { echo "web-check: $1: no such file (make wasm)" >&2; exit 1; }
cd "$(dirname "$0")/../.."
root="$PWD"

CHROMIUM="${CHROMIUM:-chromium}"
if ! command -v "$CHROMIUM" >/dev/null; then
    echo "web-check: installing Debian's chromium (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
command -v "$CHROMIUM" >/dev/null || { echo "web-check: FAIL: no $CHROMIUM" >&2; exit 1; }

work=target/web-check
rm -rf "$work"
mkdir -p "$work" "$(dirname "$shot")"
cp "$wasm" "$work/gran_runtime.wasm"
if [ -n "${WEB_MODEL:-}" ]; then
    model="$WEB_MODEL"
elif [ -f examples/web/gran_t3.safetensors ]; then
    model=examples/web/gran_t3.safetensors
else
    model=runtime/tests/data/tiny_t3_bf16.safetensors
    echo "web-check: examples/web/gran_t3.safetensors is not there: the page draws with $model"
fi
[ -f "$model" ] || { echo "web-check: FAIL: no model at $model" >&2; exit 1; }
cp "$model" "$work/"
query="wasm=../../$work/gran_runtime.wasm&model=../../$work/$(basename "$model")&seed=1&count=36"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$root" >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/examples/web/index.html')" \
        2>/dev/null && break
    sleep 0.1
done
url="http://127.0.0.1:$port/examples/web/index.html?$query"

# Headless, as root in a container: no sandbox, no GPU. The virtual time budget lets the page
# fetch, draw and finish its step animation before the DOM is read and the picture taken.
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --disable-extensions
       --user-data-dir="$root/$work/profile" --virtual-time-budget=15000 --window-size=1760,740)

timeout 120 "$CHROMIUM" "${flags[@]}" --dump-dom "$url" >"$work/dom.html" 2>"$work/chromium-dom.log" || true
state="$(sed -n 's/.*<body[^>]*data-state="\([a-z]*\)".*/\1/p' "$work/dom.html" | head -n1)"
if [ "$state" != drawn ]; then
    echo "web-check: FAIL: the page's state is '${state:-unknown}', not 'drawn' ($url)"
    sed -n 's/.*<p id="error"[^>]*>\([^<]*\)<.*/    page error: \1/p' "$work/dom.html"
    tail -n 5 "$work/chromium-dom.log" | sed 's/^/    chromium: /'
    exit 1
fi
info="$(sed -n 's/.*<span id="info">\([^<]*\)<.*/\1/p' "$work/dom.html" | head -n1)"
echo "web-check: the page drew: $info"

rm -f "$shot"
timeout 120 "$CHROMIUM" "${flags[@]}" --screenshot="$shot" "$url" >"$work/chromium-shot.log" 2>&1 || true
[ -s "$shot" ] || { echo "web-check: FAIL: no screenshot at $shot"; tail -n 5 "$work/chromium-shot.log"; exit 1; }

# Blank or not: decode the PNG (8-bit RGB or RGBA, what Chromium writes) and count its colours
# and the share of pixels that are not the page's background (the grids take about a third).
python3 - "$shot" <<'EOF'
import struct, sys, zlib
path = sys.argv[1]
data = open(path, "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit(f"web-check: FAIL: {path} is not a PNG")
pos, idat, hdr = 8, b"", None
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        hdr = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
w, h, depth, ctype = hdr[:4]
if depth != 8 or ctype not in (2, 6):
    sys.exit(f"web-check: FAIL: {path}: a PNG of bit depth {depth}, colour type {ctype} (8-bit RGB/RGBA expected)")
bpp = 3 if ctype == 2 else 4
raw, stride = zlib.decompress(idat), w * bpp
prev, counts = bytearray(stride), {}
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    for x in range(0, stride, bpp):
        px = bytes(line[x:x + 3])
        counts[px] = counts.get(px, 0) + 1
    prev = line
share = 1 - max(counts.values()) / (w * h)
print(f"web-check: {path}: {w}x{h}, {len(counts)} colours, {100 * share:.1f}% not background")
if len(counts) < 16 or share < 0.1:
    sys.exit("web-check: FAIL: the screenshot is blank (too few colours, or mostly background)")
EOF
echo "web-check: PASS: $shot"
