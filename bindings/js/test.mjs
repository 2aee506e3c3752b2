// The WebAssembly runtime in Node, through bindings/js/gran_runtime.mjs, against the native
// runtime's output for the same model, seed and count (runtime/examples/dump.rs).
//
//     node bindings/js/test.mjs WASM [DUMP_ROOT]
//
// DUMP_ROOT (default target/js-check) holds one folder per (model, seed), each written by the
// dump example (meta.json names the model file, relative to the working directory).
// bindings/js/check.sh makes them and runs this from the repository root.
//
// Checks: latents bit for bit; F32_CHW pixels within 1/255 and U8_HWC within 1 of native, for
// images, step canvases and images from latents; consistency within the module (the last step
// is the image, image i does not depend on the count); corrupt and truncated files throw
// GRAN_STATUS_FORMAT with the library's message and nothing traps; bad arguments and handles
// give their statuses; the module's memory does not grow over repeated use; classes: an
// unconditional model refuses them, bad ones throw before any call, and with a class-conditional
// model file in JS_CHECK_CONDITIONAL (e.g. a `gran export` of a model made with classes 4),
// image i of class k does not depend on the count or the other classes, generate needs classes.
// Then the median time of one image and the module's size. The last line is the verdict; the exit status is 1
// on any failure.

import fs from "node:fs";
import path from "node:path";
import { GranRuntime, GranError, Status, PixelFormat } from "./gran_runtime.mjs";

const [wasmPath, dumpRoot = "target/js-check"] = process.argv.slice(2);
if (!wasmPath) {
  console.error("usage: node bindings/js/test.mjs WASM [DUMP_ROOT]");
  process.exit(2);
}

let passed = 0;
const failed = [];
function check(name, ok, detail = "") {
  if (ok) {
    passed++;
    console.log(`  ok    ${name}${detail ? ": " + detail : ""}`);
  } else {
    failed.push(name);
    console.log(`  FAIL  ${name}${detail ? ": " + detail : ""}`);
  }
}
/** Runs `f`; an exception is a failure of `name` (never the end of the run). */
function step(name, f) {
  try {
    f();
  } catch (e) {
    check(name, false, `threw ${e && e.stack ? e.stack : e}`);
  }
}

function readF32(file) {
  const b = fs.readFileSync(file);
  const out = new Float32Array(b.length / 4);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = v.getFloat32(i * 4, true);
  return out;
}

function maxDiff(a, b) {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = d; // NaN propagates as a failure
  }
  return m;
}

function bitIdentical(a, b) {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.every((v, i) => v === y[i]);
}

function concat(images, Type) {
  const n = images.reduce((s, im) => s + im.pixels.length, 0);
  const out = new Type(n);
  let o = 0;
  for (const im of images) {
    out.set(im.pixels, o);
    o += im.pixels.length;
  }
  return out;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Calls `f`, expecting a GranError with `status`; returns its message (null otherwise). */
function expectStatus(name, status, f) {
  try {
    f();
  } catch (e) {
    const ok = e instanceof GranError && e.status === status && e.message.length > 0;
    const what = e instanceof GranError ? `${e.statusName}: ${e.message}` : `${e && e.constructor.name}: ${e}`;
    check(name, ok, what.length > 160 ? what.slice(0, 157) + "..." : what);
    return ok ? e.message : null;
  }
  check(name, false, "no error was thrown");
  return null;
}

const FLOAT_TOL = 1 / 255;
const wasmBytes = fs.readFileSync(wasmPath);
const rt = await GranRuntime.instantiate(wasmBytes);
console.log(`gran_runtime.wasm ${rt.version} (ABI ${rt.abiVersion}): ${wasmPath}, ${wasmBytes.length} bytes`);

// --- against native ------------------------------------------------------------------------

const dumps = fs.existsSync(dumpRoot)
  ? fs.readdirSync(dumpRoot).filter((d) => fs.existsSync(path.join(dumpRoot, d, "meta.json"))).sort()
  : [];
check("native dumps present", dumps.length > 0, `${dumps.length} in ${dumpRoot}`);

const summary = { latentsIdentical: true, maxFloat: 0, maxU8: 0 };
const timings = new Map();

for (const d of dumps) {
  const dir = path.join(dumpRoot, d);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, "meta.json"), "utf8"));
  const seed = BigInt(meta.seed);
  const count = meta.count;
  console.log(`${d}: ${meta.model}, seed ${meta.seed}, ${count} images`);
  let m;
  step(`${d}: load`, () => {
    m = rt.load(fs.readFileSync(meta.model));
    const c = m.config;
    const same = c.height === meta.height && c.width === meta.width && c.channels === meta.channels &&
      c.steps === meta.steps && c.zDim === meta.z_dim;
    check(`${d}: configuration`, same, `${c.height}x${c.width}x${c.channels}, T=${c.steps}, zDim ${c.zDim}`);
  });
  if (!m) continue;
  step(`${d}: comparison`, () => {
    const z = m.latents(seed, count);
    const zNative = readF32(path.join(dir, "latents.f32"));
    const zSame = bitIdentical(z, zNative);
    summary.latentsIdentical &&= zSame;
    check(`${d}: latents bit-identical`, zSame, `${z.length} floats`);

    const compare = (what, ours, theirs, tol, key) => {
      const diff = maxDiff(ours, theirs);
      summary[key] = Math.max(summary[key], diff);
      const shown = key === "maxFloat" ? `${diff.toExponential(3)} (${(diff * 255).toFixed(4)}/255)` : `${diff}`;
      check(`${d}: ${what}`, diff <= tol, `largest difference ${shown}, ${ours.length} values`);
    };
    const imgF = m.sampleFloat(seed, count);
    const stepsF = m.sampleStepsFloat(seed, count);
    const imgU = m.sample(seed, count);
    const stepsU = m.sampleSteps(seed, count);
    compare("images F32_CHW within 1/255", imgF.pixels, readF32(path.join(dir, "images.f32")), FLOAT_TOL, "maxFloat");
    compare("step canvases F32_CHW within 1/255", concat(stepsF, Float32Array), readF32(path.join(dir, "steps.f32")),
      FLOAT_TOL, "maxFloat");
    compare("images U8_HWC within 1", imgU.pixels, fs.readFileSync(path.join(dir, "images.u8")), 1, "maxU8");
    compare("step canvases U8_HWC within 1", concat(stepsU, Uint8Array), fs.readFileSync(path.join(dir, "steps.u8")),
      1, "maxU8");
    compare("generate(latents) F32_CHW within 1/255", m.generateFloat(z, count).pixels,
      readF32(path.join(dir, "images.f32")), FLOAT_TOL, "maxFloat");
    compare("generate(latents) U8_HWC within 1", m.generate(z, count).pixels,
      fs.readFileSync(path.join(dir, "images.u8")), 1, "maxU8");

    check(`${d}: sampleSteps gives T canvases of count images`,
      stepsU.length === meta.steps && stepsU.every((s) => s.count === count && s.pixels.length === imgU.pixels.length));
    check(`${d}: the last canvas is the image`, maxDiff(stepsU[stepsU.length - 1].pixels, imgU.pixels) === 0 &&
      maxDiff(stepsF[stepsF.length - 1].pixels, imgF.pixels) === 0);
    check(`${d}: generate(latents(seed)) equals sample(seed)`, maxDiff(m.generate(z, count).pixels, imgU.pixels) === 0);
    const one = m.sampleFloat(seed, 1).pixels;
    // The same to float rounding (a batch of one runs other kernel shapes than a batch of many).
    const alone = maxDiff(one, imgF.pixels.subarray(0, one.length));
    check(`${d}: image 0 drawn alone matches image 0 of ${count}`, alone <= 1e-5, `largest difference ${alone.toExponential(3)}`);

    if (!timings.has(meta.model)) {
      for (let i = 0; i < 10; i++) m.sample(seed, 1);
      const times = [];
      for (let i = 0; i < 50; i++) {
        const t0 = performance.now();
        m.sample(seed, 1);
        times.push(performance.now() - t0);
      }
      timings.set(meta.model, { wasm: median(times), native: meta.native_one_image_ms, config: m.config });
    }
  });
  m.free();
}

// --- bad files, bad arguments, bad handles ---------------------------------------------------

const tinyPath = "runtime/tests/data/tiny_t3_bf16.safetensors";
const tiny = fs.readFileSync(tinyPath);
console.log(`errors (${tinyPath}):`);
let formatMessage = null;
const corrupt = {
  "truncated to half": tiny.subarray(0, tiny.length >> 1),
  "truncated by one byte": tiny.subarray(0, tiny.length - 1),
  "the first 8 bytes": tiny.subarray(0, 8),
  "empty": new Uint8Array(0),
  "a header length past the file": (() => { const b = Uint8Array.from(tiny); b[7] = 0x7f; return b; })(),
  "a flipped bit in the weights": (() => { const b = Uint8Array.from(tiny); b[b.length - 100] ^= 0x10; return b; })(),
  "a flipped bit in the header": (() => { const b = Uint8Array.from(tiny); b[40] ^= 0x01; return b; })(),
  "random bytes": (() => { const b = new Uint8Array(4096); let x = 12345; for (let i = 0; i < b.length; i++) { x = (x * 1103515245 + 12345) >>> 0; b[i] = x >>> 24; } return b; })(),
};
for (const [what, bytes] of Object.entries(corrupt)) {
  const msg = expectStatus(`load: ${what} is FORMAT`, Status.FORMAT, () => rt.load(bytes).free());
  formatMessage ??= msg;
}

step("bad arguments and handles", () => {
  const m = rt.load(tiny);
  const e = rt._e;
  expectStatus("count 0 is INVALID_ARGUMENT", Status.INVALID_ARGUMENT,
    () => rt._with([16], ([p]) => rt._check(e.gran_sample(m._h(), 1n, 0, PixelFormat.U8_HWC, p, 16))));
  expectStatus("a small buffer is BUFFER_TOO_SMALL", Status.BUFFER_TOO_SMALL,
    () => rt._with([16], ([p]) => rt._check(e.gran_sample(m._h(), 1n, 1, PixelFormat.U8_HWC, p, 16))));
  expectStatus("an unknown pixel format is INVALID_ARGUMENT", Status.INVALID_ARGUMENT,
    () => rt._with([4096], ([p]) => rt._check(e.gran_sample(m._h(), 1n, 1, 7, p, 4096))));
  expectStatus("a NULL output is INVALID_ARGUMENT", Status.INVALID_ARGUMENT,
    () => rt._check(e.gran_sample(m._h(), 1n, 1, PixelFormat.U8_HWC, 0, 4096)));
  expectStatus("a forged handle is INVALID_HANDLE", Status.INVALID_HANDLE,
    () => rt._with([4096], ([p]) => rt._check(e.gran_sample(123456789n, 1n, 1, PixelFormat.U8_HWC, p, 4096))));
  const z = m.latents(1, 2);
  z[5] = NaN;
  expectStatus("a NaN latent is INVALID_ARGUMENT", Status.INVALID_ARGUMENT, () => m.generate(z, 2));
  let threw = null;
  try {
    m.sample(-1, 1);
  } catch (err) {
    threw = err;
  }
  check("a negative seed throws TypeError before any call", threw instanceof TypeError);
  check("seed 2^64-1 as a BigInt draws", m.sample((1n << 64n) - 1n, 1).pixels.length === 28 * 28);
  check("an unconditional model has classes 0", m.config.classes === 0 && m.config.step === 60n,
    `classes ${m.config.classes}, step ${m.config.step}`);
  expectStatus("classes for an unconditional model are INVALID_ARGUMENT", Status.INVALID_ARGUMENT,
    () => m.sample(1, 2, 0));
  expectStatus("classes for an unconditional model's steps are INVALID_ARGUMENT", Status.INVALID_ARGUMENT,
    () => m.sampleStepsFloat(1, 2, [0, 1]));
  expectStatus("classes for an unconditional model's latents are INVALID_ARGUMENT", Status.INVALID_ARGUMENT,
    () => m.generate(m.latents(1, 2), 2, 1));
  for (const [what, bad, Type] of [["3 classes for 2 images", [0, 1, 2], RangeError], ["no classes", [], RangeError],
    ["a negative class", -1, RangeError], ["a fractional class", [0.5, 1], RangeError],
    ["a class past 2^32-1", 2 ** 32, RangeError], ["a string", "1", TypeError], ["BigInts", [1n, 0n], TypeError]]) {
    let err = null;
    try {
      m.sample(1, 2, bad);
    } catch (e) {
      err = e;
    }
    check(`${what} throws ${Type.name} before any call`, err instanceof Type, `${err}`);
  }
  m.free();
  expectStatus("a freed model is INVALID_HANDLE", Status.INVALID_HANDLE, () => m.sample(1, 1));
  let again = true;
  try {
    m.free();
  } catch {
    again = false;
  }
  check("a second free() does nothing", again);
});

// --- a class-conditional model ------------------------------------------------------------

const conditionalPath = process.env.JS_CHECK_CONDITIONAL;
if (!conditionalPath) {
  console.log("class-conditional: JS_CHECK_CONDITIONAL names no model: not checked");
} else {
  console.log(`class-conditional (${conditionalPath}):`);
  step("class-conditional model", () => {
    const m = rt.load(fs.readFileSync(conditionalPath));
    const { classes, height, width, channels } = m.config;
    const per = height * width * channels;
    check("it is class-conditional", classes >= 2, `${classes} classes`);
    const image = (r, i) => r.pixels.subarray(i * per, (i + 1) * per);
    const same = (a, b) => maxDiff(a, b) === 0;
    const ks = [1, 0, 1, 0, 1, 0].map((k, i) => (k + i) % classes);
    const one = m.sample(3, 6, ks[0]);
    const each = m.sample(3, 6, ks);
    check("an image of the class asked for every image is that of the class asked for it alone",
      ks.every((k, i) => k !== ks[0] || same(image(each, i), image(one, i))));
    check("image i of class k does not depend on the count", same(m.sample(3, 2, ks.slice(0, 2)).pixels,
      each.pixels.subarray(0, 2 * per)));
    check("classes as a typed array", same(m.sample(3, 6, Uint32Array.from(ks)).pixels, each.pixels));
    const drawn = m.sample(3, 6);
    const byClass = Array.from({ length: classes }, (_, k) => m.sample(3, 6, k));
    check("without classes, image i is one of its class's images",
      [...Array(6).keys()].every((i) => byClass.some((r) => same(image(r, i), image(drawn, i)))));
    const steps = m.sampleSteps(3, 6, ks);
    check("the last canvas is the image", same(steps[steps.length - 1].pixels, each.pixels));
    const stepsF = m.sampleStepsFloat(3, 6, ks);
    check("the last canvas is the image (F32_CHW)", same(stepsF[stepsF.length - 1].pixels, m.sampleFloat(3, 6, ks).pixels));
    const z = m.latents(3, 6);
    check("generate(latents(seed), classes) equals sample(seed, classes)", same(m.generate(z, 6, ks).pixels, each.pixels));
    expectStatus("generate without classes is INVALID_ARGUMENT", Status.INVALID_ARGUMENT, () => m.generate(z, 6));
    expectStatus("a class past the model's is INVALID_ARGUMENT", Status.INVALID_ARGUMENT, () => m.sample(3, 2, classes));
    expectStatus("a class past the model's in a list is INVALID_ARGUMENT", Status.INVALID_ARGUMENT,
      () => m.generateFloat(m.latents(3, 2), 2, [0, classes + 7]));
    m.free();
  });
}

// --- memory -------------------------------------------------------------------------------

step("memory", () => {
  const cycle = () => {
    const m = rt.load(tiny);
    m.sample(3, 16);
    m.sampleSteps(3, 16);
    m.generateFloat(m.latents(3, 4), 4);
    try {
      m.sample(3, 4, [0, 1, 0, 1]); // INVALID_ARGUMENT (unconditional), after the classes' copy
    } catch {
      // checked above
    }
    m.free();
    try {
      rt.load(tiny.subarray(0, tiny.length - 1));
    } catch {
      // FORMAT, checked above
    }
  };
  for (let i = 0; i < 20; i++) cycle();
  const before = rt._e.memory.buffer.byteLength;
  for (let i = 0; i < 300; i++) cycle();
  const after = rt._e.memory.buffer.byteLength;
  check("memory does not grow over 300 load/draw/free cycles", after <= before,
    `${(before / 2 ** 20).toFixed(2)} MiB -> ${(after / 2 ** 20).toFixed(2)} MiB`);
  const m = rt.load(tiny);
  check("the module works after every error", m.sample(1, 2).pixels.length === 2 * 28 * 28);
  m.free();
});

// --- report --------------------------------------------------------------------------------

console.log("");
console.log(`latents: ${summary.latentsIdentical && dumps.length ? "bit-identical to native" : "DIFFER from native"}`);
console.log(`largest pixel difference from native: ${summary.maxFloat.toExponential(3)} as floats ` +
  `(${(summary.maxFloat * 255).toFixed(4)}/255), ${summary.maxU8} as bytes`);
if (formatMessage) console.log(`a truncated file: ${formatMessage}`);
for (const [model, t] of timings) {
  const c = t.config;
  console.log(`one image (${path.basename(model)}, ${c.height}x${c.width}x${c.channels}, T=${c.steps}): ` +
    `${t.wasm.toFixed(3)} ms in Node/WebAssembly, ${t.native.toFixed(3)} ms native (medians of 50, one thread)`);
}
console.log(`gran_runtime.wasm: ${wasmBytes.length} bytes (${(wasmBytes.length / 1024).toFixed(1)} KiB)`);
if (failed.length === 0) {
  console.log(`js-check: PASS (${passed} checks)`);
} else {
  console.log(`js-check: FAIL: ${failed.length} of ${passed + failed.length} checks failed: ${failed.join("; ")}`);
  process.exitCode = 1;
}
