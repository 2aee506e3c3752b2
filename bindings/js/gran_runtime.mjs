// gran_runtime.mjs: draws images from trained GRAN models in JavaScript, with the WebAssembly
// build of libgran_runtime (target/wasm/gran_runtime.wasm, `make wasm`). One ES module, no
// dependencies; the same in browsers, Node (18+), Deno and workers.
//
// Use
//   import { GranRuntime } from "./gran_runtime.mjs";
//   const rt = await GranRuntime.instantiate(wasmBytes);   // ArrayBuffer, typed array,
//                                                          // WebAssembly.Module or a fetch Response
//   const m = rt.load(modelBytes);       // a generator export (`gran export`) or a checkpoint
//   m.config                             // {height, width, channels, steps, zDim, hiddenDim, classes,
//                                        //  upsampling ('transposed' | 'resize'), step}
//   const img = m.sample(1, 16);         // {width, height, channels, count, pixels: Uint8Array}
//   const steps = m.sampleSteps(1, 16);  // T such objects: the canvas after each drawing step
//   const z = m.latents(1, 16);          // Float32Array, count x zDim, bit for bit libgran's
//   const mix = m.generate(z, 16);       // images from (edited) latents
//   m.sampleFloat / sampleStepsFloat / generateFloat: the same with Float32Array pixels
//   m.free();
//
// Class-conditional models (m.config.classes > 0): every drawing method takes the classes as a
// last, optional argument: a Number (one class for every image) or an array / typed array of
// `count` of them (one per image), each 0 .. classes-1. m.sample(1, 16, 3) draws 16 images of
// class 3; m.sample(1, 4, [0, 1, 2, 3]) one of each. Image i then depends only on the weights,
// the seed, i and its class. Without classes, sample and sampleSteps draw image i's class from
// (seed, i), and generate throws GRAN_STATUS_INVALID_ARGUMENT (latents need their classes). A
// class out of range, or classes for an unconditional model, throw GRAN_STATUS_INVALID_ARGUMENT.
//
// Pixels: the byte methods give U8_HWC (image, row, column, channel: what ImageData wants after
// `toRGBA`), values 0..255; the Float methods give F32_CHW (image, channel, row, column), values
// in [0, 1]. A seed is a Number (a non-negative safe integer) or a BigInt (0 .. 2^64-1); the
// same seed gives the same latents as libgran and the native runtime, and pixels within 1/255.
//
// Errors: a failed call throws a GranError (an Error with .status, the GRAN_STATUS_* code, and
// .statusName) whose message is the library's (gran_last_error), e.g. a corrupt model file is
// GRAN_STATUS_FORMAT. Wrong JavaScript arguments throw TypeError or RangeError before any call.
//
// Memory rules
//   - Every buffer this module allocates in the module's memory (gran_wasm_alloc) is freed
//     (gran_wasm_free) before the method returns, on success and on failure; results are copied
//     into JavaScript-owned typed arrays, which stay valid for good.
//   - Views of the module's memory are made after the call that fills them: a call may grow
//     the memory, which detaches earlier views.
//   - A model holds its weights in the module's memory until m.free(). A model that is
//     garbage-collected unfreed is freed by a FinalizationRegistry where the platform has one,
//     at a time the engine chooses: call free(). A freed model throws GRAN_STATUS_INVALID_HANDLE.
//   - The module draws on the calling thread: a large request blocks it (use a Worker in pages).

/** Pixel formats (GranPixelFormat). */
export const PixelFormat = Object.freeze({ U8_HWC: 0, U8_CHW: 1, F32_CHW: 2 });

/** Status codes (GranStatus). */
export const Status = Object.freeze({
  OK: 0,
  INVALID_ARGUMENT: 1,
  INVALID_HANDLE: 2,
  BUFFER_TOO_SMALL: 3,
  IO: 4,
  FORMAT: 5,
  DEVICE: 6,
  OUT_OF_MEMORY: 7,
  CANCELLED: 8,
  BUSY: 9,
  DIVERGED: 10,
  INTERNAL: 11,
  DISTRIBUTED: 12,
});

const STATUS_NAMES = Object.fromEntries(Object.entries(Status).map(([k, v]) => [v, "GRAN_STATUS_" + k]));

/** A failed library call: .status (a Status value), .statusName, and the library's message. */
export class GranError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "GranError";
    this.status = status;
    this.statusName = STATUS_NAMES[status] ?? "GRAN_STATUS_UNKNOWN";
  }
}

const U64_MAX = (1n << 64n) - 1n;
// Pointers and size_t are 32-bit in wasm32: no buffer may reach 4 GiB.
const MAX_BYTES = 2 ** 32 - 1;
// GranModelConfig in wasm32 (include/gran_runtime.h): u32 fields at 4-byte steps, then the
// device (8 bytes), the u64 seed at offset 48, the u32 classes at 56 and the u32 upsampling at
// 60 (reserved, zero, in modules from before it); 64 bytes in all (56 before classes). The buffer has room for the model's step (u64) after it.
const CONFIG_BYTES = 64;
const CONFIG_AND_STEP_BYTES = CONFIG_BYTES + 8;

function toSeed(seed) {
  if (typeof seed === "bigint") {
    if (seed < 0n || seed > U64_MAX) throw new RangeError(`seed ${seed} is outside 0 .. 2^64-1`);
    return seed;
  }
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new TypeError(`seed must be a non-negative safe integer or a BigInt, not ${seed}`);
  }
  return BigInt(seed);
}

function toCount(count) {
  if (!Number.isInteger(count) || count < 1 || count > 0xffffffff) {
    throw new RangeError(`count must be an integer 1 .. 2^32-1, not ${count}`);
  }
  return count;
}

/**
 * The classes of a request of `count` images as a Uint32Array: a Number (one class for every
 * image) or an array / typed array of 1 or `count` integers 0 .. 2^32-1. Whether they are below
 * the model's classes is the library's check.
 */
function toClasses(classes, count) {
  const list = typeof classes === "number" ? [classes] : classes;
  if (!Array.isArray(list) && !(ArrayBuffer.isView(list) && !(list instanceof DataView))) {
    throw new TypeError("classes must be a class number or an array of them");
  }
  if (list.length !== 1 && list.length !== count) {
    throw new RangeError(`${list.length} classes for ${count} images: give one for every image, or one per image`);
  }
  const out = new Uint32Array(list.length);
  for (let i = 0; i < list.length; i++) {
    const k = list[i];
    if (typeof k !== "number") throw new TypeError(`class ${k} (image ${i}) is not a Number`);
    if (!Number.isInteger(k) || k < 0 || k > 0xffffffff) {
      throw new RangeError(`class ${k} (image ${i}) is not an integer 0 .. 2^32-1`);
    }
    out[i] = k;
  }
  return out;
}

/** `bytes` (ArrayBuffer, typed array or DataView) as a Uint8Array over the same memory. */
function asBytes(bytes, what) {
  if (bytes instanceof Uint8Array) return bytes;
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  if (ArrayBuffer.isView(bytes)) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  throw new TypeError(`${what} must be an ArrayBuffer or a typed array`);
}

export class GranRuntime {
  /**
   * Compiles and instantiates the module. `source`: the .wasm bytes (ArrayBuffer or typed
   * array), a compiled WebAssembly.Module, or a fetch() Response (streamed where possible).
   */
  static async instantiate(source) {
    let instance;
    if (typeof Response !== "undefined" && source instanceof Response) {
      if (!source.ok) throw new Error(`the WebAssembly module could not be fetched: HTTP ${source.status}`);
      if (WebAssembly.instantiateStreaming && source.headers.get("content-type") === "application/wasm") {
        ({ instance } = await WebAssembly.instantiateStreaming(source, {}));
      } else {
        ({ instance } = await WebAssembly.instantiate(await source.arrayBuffer(), {}));
      }
    } else if (source instanceof WebAssembly.Module) {
      instance = await WebAssembly.instantiate(source, {});
    } else {
      ({ instance } = await WebAssembly.instantiate(asBytes(source, "the WebAssembly module"), {}));
    }
    return new GranRuntime(instance);
  }

  /** Use `GranRuntime.instantiate`. */
  constructor(instance) {
    const e = instance.exports;
    for (const f of ["gran_wasm_alloc", "gran_wasm_free", "gran_wasm_model_load", "gran_sample", "gran_last_error"]) {
      if (typeof e[f] !== "function") throw new TypeError(`this WebAssembly module is not libgran_runtime (no ${f})`);
    }
    this._e = e;
    this._models =
      typeof FinalizationRegistry === "function" ? new FinalizationRegistry((h) => e.gran_model_free(h)) : null;
  }

  /** The library version, e.g. "0.1.0". */
  get version() {
    return this._cString(this._e.gran_version() >>> 0);
  }

  /** GRAN_ABI_VERSION of the library. */
  get abiVersion() {
    return this._e.gran_abi_version() >>> 0;
  }

  /**
   * Loads a model from its file's bytes (a generator export or a training checkpoint, checked
   * in full: a bad file throws GRAN_STATUS_FORMAT). Free it with `free()`.
   */
  load(modelBytes) {
    const bytes = asBytes(modelBytes, "the model");
    if (bytes.length > MAX_BYTES) throw new RangeError(`the model has ${bytes.length} bytes: past 4 GiB`);
    const handle = this._with([bytes.length, 8], ([src, out]) => {
      this._u8(src, bytes.length).set(bytes);
      this._check(this._e.gran_wasm_model_load(src, bytes.length, out));
      return this._view().getBigUint64(out, true);
    });
    return new GranModel(this, handle);
  }

  // --- internals: memory, calls, errors --------------------------------------------------

  _view() {
    return new DataView(this._e.memory.buffer);
  }

  _u8(ptr, len) {
    return new Uint8Array(this._e.memory.buffer, ptr, len);
  }

  /**
   * Allocates one buffer per entry of `sizes` (bytes), runs `f` with their addresses, and frees
   * them all whatever happens.
   */
  _with(sizes, f) {
    const ptrs = [];
    try {
      for (const n of sizes) {
        if (n > MAX_BYTES) throw new RangeError(`a buffer of ${n} bytes is past what wasm32 can address`);
        const p = this._e.gran_wasm_alloc(n) >>> 0;
        if (p === 0) throw new GranError(Status.OUT_OF_MEMORY, `${n} bytes could not be allocated in the module`);
        ptrs.push(p);
      }
      return f(ptrs);
    } finally {
      for (let i = 0; i < ptrs.length; i++) this._e.gran_wasm_free(ptrs[i], sizes[i]);
    }
  }

  /** Throws the calling thread's last error when `status` is not OK. */
  _check(status) {
    if (status === Status.OK) return;
    throw new GranError(status, this._lastError() || (STATUS_NAMES[status] ?? `status ${status}`));
  }

  _lastError() {
    const len = this._e.gran_last_error(0, 0) >>> 0;
    return this._with([len + 1], ([buf]) => {
      this._e.gran_last_error(buf, len + 1);
      return new TextDecoder().decode(this._u8(buf, len));
    });
  }

  _cString(ptr) {
    const mem = new Uint8Array(this._e.memory.buffer);
    let end = ptr;
    while (mem[end] !== 0) end++;
    return new TextDecoder().decode(mem.subarray(ptr, end));
  }
}

export class GranModel {
  /** Use `GranRuntime.load`. */
  constructor(rt, handle) {
    this._rt = rt;
    this._handle = handle;
    this._token = {};
    rt._models?.register(this, handle, this._token);
    this.config = this._readConfig();
  }

  /** Frees the model's weights. Later calls on it throw; a second free() does nothing. */
  free() {
    if (this._handle === 0n) return;
    const h = this._handle;
    this._handle = 0n;
    this._rt._models?.unregister(this._token);
    this._rt._check(this._rt._e.gran_model_free(h));
  }

  /** The latents of images 0 .. count-1 of `seed`: count x zDim floats, row-major. */
  latents(seed, count) {
    const s = toSeed(seed);
    const n = toCount(count) * this.config.zDim;
    return this._call(n * 4, (out) => this._e().gran_latents(this._h(), s, count, out, n), Float32Array);
  }

  /** `count` images of `seed` (of `classes`, for a class-conditional model), U8_HWC. */
  sample(seed, count, classes) {
    return this._draw("gran_sample", toSeed(seed), toCount(count), PixelFormat.U8_HWC, classes);
  }

  /** `count` images of `seed` (of `classes`), F32_CHW in [0, 1]. */
  sampleFloat(seed, count, classes) {
    return this._draw("gran_sample", toSeed(seed), toCount(count), PixelFormat.F32_CHW, classes);
  }

  /** The canvas after each of the T drawing steps: T objects of `count` images, U8_HWC. */
  sampleSteps(seed, count, classes) {
    return this._draw("gran_sample_steps", toSeed(seed), toCount(count), PixelFormat.U8_HWC, classes);
  }

  /** As `sampleSteps`, F32_CHW in [0, 1]. */
  sampleStepsFloat(seed, count, classes) {
    return this._draw("gran_sample_steps", toSeed(seed), toCount(count), PixelFormat.F32_CHW, classes);
  }

  /** `count` images from `latents` (count x zDim finite floats) (of `classes`), U8_HWC. */
  generate(latents, count, classes) {
    return this._generate(latents, count, PixelFormat.U8_HWC, classes);
  }

  /** As `generate`, F32_CHW in [0, 1]. */
  generateFloat(latents, count, classes) {
    return this._generate(latents, count, PixelFormat.F32_CHW, classes);
  }

  // --- internals -----------------------------------------------------------------------

  _e() {
    return this._rt._e;
  }

  _h() {
    if (this._handle === 0n) throw new GranError(Status.INVALID_HANDLE, "this model has been freed");
    return this._handle;
  }

  _readConfig() {
    const rt = this._rt;
    return rt._with([CONFIG_AND_STEP_BYTES], ([p]) => {
      rt._e.gran_model_config_init(p);
      rt._check(rt._e.gran_model_config(this._h(), p));
      const stepPtr = p + CONFIG_BYTES; // room after the struct, in the same buffer
      rt._check(rt._e.gran_model_step(this._h(), stepPtr));
      const v = rt._view();
      // struct_size, as gran_model_config_init set it: a module from before classes has 56.
      const size = v.getUint32(p, true);
      return Object.freeze({
        height: v.getUint32(p + 4, true),
        width: v.getUint32(p + 8, true),
        channels: v.getUint32(p + 12, true),
        steps: v.getUint32(p + 16, true),
        zDim: v.getUint32(p + 20, true),
        hiddenDim: v.getUint32(p + 24, true),
        classes: size >= 60 ? v.getUint32(p + 56, true) : 0,
        upsampling: size >= 64 && v.getUint32(p + 60, true) === 1 ? "resize" : "transposed",
        step: v.getBigUint64(stepPtr, true),
      });
    });
  }

  /** The module's `name` + "_class" function, for a request with classes. */
  _classFn(name) {
    const f = this._e()[name + "_class"];
    if (typeof f !== "function") {
      throw new TypeError(`this WebAssembly module has no ${name}_class: it predates class-conditional models`);
    }
    return f;
  }

  /** Runs `call(outPtr)` into a fresh buffer of `bytes` and copies it out as `Type`. */
  _call(bytes, call, Type) {
    const rt = this._rt;
    return rt._with([bytes], ([out]) => {
      rt._check(call(out));
      return new Type(rt._e.memory.buffer.slice(out, out + bytes));
    });
  }

  /** Splits `blocks` blocks of `count` images (format `format`) into image objects. */
  _images(all, count, blocks, format) {
    const { height, width, channels } = this.config;
    const per = count * height * width * channels;
    const result = [];
    for (let b = 0; b < blocks; b++) {
      const pixels = blocks === 1 ? all : all.slice(b * per, (b + 1) * per);
      result.push({ width, height, channels, count, format, pixels });
    }
    return result;
  }

  _pixelBytes(count, blocks, format) {
    const { height, width, channels } = this.config;
    return blocks * count * height * width * channels * (format === PixelFormat.F32_CHW ? 4 : 1);
  }

  /**
   * Runs `call(classesPtr, classesLen)` with `classes` (a Uint32Array, or null: no classes)
   * copied into the module's memory (classesPtr 0 when null).
   */
  _withClasses(classes, call) {
    if (classes === null) return call(0, 0);
    const rt = this._rt;
    return rt._with([classes.length * 4], ([p]) => {
      new Uint32Array(rt._e.memory.buffer, p, classes.length).set(classes);
      return call(p, classes.length);
    });
  }

  _draw(fn, seed, count, format, classes) {
    const ks = classes === undefined ? null : toClasses(classes, count);
    const blocks = fn === "gran_sample_steps" ? this.config.steps : 1;
    const bytes = this._pixelBytes(count, blocks, format);
    const Type = format === PixelFormat.F32_CHW ? Float32Array : Uint8Array;
    const f = ks === null ? null : this._classFn(fn);
    const all = this._withClasses(ks, (kp, kn) =>
      this._call(bytes, (out) => ks === null
        ? this._e()[fn](this._h(), seed, count, format, out, bytes)
        : f(this._h(), seed, count, kp, kn, format, out, bytes), Type));
    const images = this._images(all, count, blocks, format);
    return fn === "gran_sample_steps" ? images : images[0];
  }

  _generate(latents, count, format, classes) {
    toCount(count);
    if (!(latents instanceof Float32Array)) throw new TypeError("latents must be a Float32Array");
    const n = count * this.config.zDim;
    if (latents.length !== n) {
      throw new RangeError(`${latents.length} latents for ${count} images of zDim ${this.config.zDim} (${n} needed)`);
    }
    const ks = classes === undefined ? null : toClasses(classes, count);
    const f = ks === null ? null : this._classFn("gran_generate");
    const rt = this._rt;
    const bytes = this._pixelBytes(count, 1, format);
    const Type = format === PixelFormat.F32_CHW ? Float32Array : Uint8Array;
    const all = this._withClasses(ks, (kp, kn) => rt._with([n * 4], ([z]) => {
      new Float32Array(rt._e.memory.buffer, z, n).set(latents);
      return this._call(bytes, (out) => ks === null
        ? rt._e.gran_generate(this._h(), z, count, format, out, bytes)
        : f(this._h(), z, count, kp, kn, format, out, bytes), Type);
    }));
    return this._images(all, count, 1, format)[0];
  }
}

/**
 * Image `index` of a U8_HWC result (`sample`, `generate`, an entry of `sampleSteps`) as RGBA
 * bytes, for `new ImageData(rgba, width, height)`.
 */
export function toRGBA(images, index = 0) {
  const { width, height, channels, pixels } = images;
  if (images.format !== PixelFormat.U8_HWC) throw new TypeError("toRGBA takes U8_HWC images");
  const n = width * height;
  const src = pixels.subarray(index * n * channels, (index + 1) * n * channels);
  const rgba = new Uint8ClampedArray(n * 4);
  for (let p = 0; p < n; p++) {
    const r = src[p * channels];
    rgba[p * 4] = r;
    rgba[p * 4 + 1] = channels === 3 ? src[p * 3 + 1] : r;
    rgba[p * 4 + 2] = channels === 3 ? src[p * 3 + 2] : r;
    rgba[p * 4 + 3] = 255;
  }
  return rgba;
}
