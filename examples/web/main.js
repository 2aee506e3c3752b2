// The page's script: loads the WebAssembly runtime and a model, draws a grid of digits with the
// canvas after every drawing step, as columns and as an animation.
//
// The page is served from the repository root (examples/web/README.md), so that it imports the
// binding from bindings/js/ as it is in the repository. URL parameters (all optional):
//   wasm   the module        (default ../../target/wasm/gran_runtime.wasm, what `make wasm` builds)
//   model  the model file    (default gran_t3.safetensors, beside this page)
//   seed, count              the first drawing (default 1 and 36)
// Once a drawing is on screen, <body data-state> is "drawn" ("error" on a failure), which is
// what examples/web/check.sh waits for.

import { GranRuntime, toRGBA } from "../../bindings/js/gran_runtime.mjs";

const params = new URLSearchParams(location.search);
const WASM_URL = params.get("wasm") ?? "../../target/wasm/gran_runtime.wasm";
const MODEL_URL = params.get("model") ?? "gran_t3.safetensors";
const GAP = 2; // pixels between digits, at the model's resolution
const STEP_MS = 700; // how long the animation shows each step

const $ = (id) => document.getElementById(id);
let model = null;
let animation = null;

function fail(message) {
  document.body.dataset.state = "error";
  $("error").hidden = false;
  $("error").textContent = message;
  $("info").textContent = "";
}

/** Fetches `url` as bytes, with a message naming the file when it is not there. */
async function fetchBytes(url, what, hint) {
  let r;
  try {
    r = await fetch(url);
  } catch (e) {
    throw new Error(`${what} (${url}) could not be fetched: ${e.message}`);
  }
  if (!r.ok) throw new Error(`${what} (${url}): HTTP ${r.status}. ${hint}`);
  return r;
}

/** Draws `images` (one U8_HWC result) as a grid into `canvas`, `scale` screen pixels a pixel. */
function drawGrid(canvas, images, scale) {
  const { width: w, height: h, count } = images;
  const cols = Math.ceil(Math.sqrt(count));
  const rows = Math.ceil(count / cols);
  const W = cols * (w + GAP) + GAP;
  const H = rows * (h + GAP) + GAP;
  if (canvas.width !== W || canvas.height !== H) {
    canvas.width = W;
    canvas.height = H;
  }
  canvas.style.width = `${W * scale}px`;
  canvas.style.height = `${H * scale}px`;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#2b2f37";
  ctx.fillRect(0, 0, W, H);
  for (let i = 0; i < count; i++) {
    const x = GAP + (i % cols) * (w + GAP);
    const y = GAP + Math.floor(i / cols) * (h + GAP);
    ctx.putImageData(new ImageData(toRGBA(images, i), w, h), x, y);
  }
}

/** Shows the steps one after another on the large canvas, ending on the finished digits. */
function animate(steps) {
  clearTimeout(animation);
  const T = steps.length;
  const show = (t) => {
    drawGrid($("anim"), steps[t], 3);
    $("anim-caption").textContent = `The canvas, step ${t + 1} of ${T}${t + 1 === T ? " (finished)" : ""}`;
    if (t + 1 < T) animation = setTimeout(() => show(t + 1), STEP_MS);
  };
  show(0);
}

let lastSteps = null;

function redraw() {
  const seed = $("seed").value.trim();
  const count = Number($("count").value);
  if (!/^\d+$/.test(seed) || BigInt(seed) >= 1n << 64n) {
    fail("The seed is a whole number from 0 to 2^64 - 1.");
    return;
  }
  $("error").hidden = true;
  const t0 = performance.now();
  let steps;
  try {
    steps = model.sampleSteps(BigInt(seed), count);
  } catch (e) {
    fail(e.message);
    return;
  }
  const ms = performance.now() - t0;

  const box = $("steps");
  box.replaceChildren();
  steps.forEach((images, t) => {
    const fig = document.createElement("figure");
    const cap = document.createElement("figcaption");
    cap.textContent = t + 1 === steps.length ? `step ${t + 1} (final)` : `step ${t + 1}`;
    const canvas = document.createElement("canvas");
    fig.append(cap, canvas);
    box.append(fig);
    drawGrid(canvas, images, 2);
  });
  lastSteps = steps;
  animate(steps);

  const c = model.config;
  // Headless browsers on virtual time measure 0 ms: no time is shown then.
  const took = ms > 0 ? ` in ${ms.toFixed(1)} ms` : "";
  $("info").textContent =
    `${count} digits × ${c.steps} steps${took} · ${c.height}×${c.width}×${c.channels}, ` +
    `T = ${c.steps}, z ${c.zDim} · ${MODEL_URL.split("/").pop()}`;
  history.replaceState(null, "", `?${new URLSearchParams({ ...Object.fromEntries(params), seed, count })}`);
  document.body.dataset.state = "drawn";
}

async function main() {
  $("seed").value = params.get("seed") ?? "1";
  if (params.has("count")) $("count").value = params.get("count");
  try {
    const rt = await GranRuntime.instantiate(
      await fetchBytes(WASM_URL, "The WebAssembly module", "Build it with `make wasm` (examples/web/README.md)."),
    );
    const bytes = await (
      await fetchBytes(MODEL_URL, "The model", "Put a generator export there, or name one with ?model=URL.")
    ).arrayBuffer();
    model = rt.load(bytes);
    redraw();
  } catch (e) {
    fail(e.message);
    return;
  }
  $("controls").addEventListener("submit", (ev) => {
    ev.preventDefault();
    redraw();
  });
  $("random").addEventListener("click", () => {
    $("seed").value = String(Math.floor(Math.random() * 2 ** 32));
    redraw();
  });
  $("replay").addEventListener("click", () => lastSteps && animate(lastSteps));
  $("count").addEventListener("change", redraw);
}

main();
