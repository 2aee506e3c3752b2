"""Tests of the gran Python package against the real library.

Run from anywhere: python -m unittest discover -s bindings/python/tests
(the package is imported from bindings/python; the library is found as gran documents).
numpy-dependent tests are skipped without numpy; NoNumpyTests simulate its absence.

With libgran_runtime loaded (GRAN_LIBRARY=target/release/libgran_runtime.so), the tests that
create or train models skip with a reason starting with NEEDS_LIBGRAN; ModelFileTests and
SamplingOnlyTests run against either library, on the runtime's test models.
"""

from __future__ import annotations

import array
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import unittest
from ctypes import sizeof
from pathlib import Path
from unittest import mock

HERE = Path(__file__).resolve().parent
PKG_ROOT = HERE.parent
REPO = PKG_ROOT.parent.parent
sys.path.insert(0, str(PKG_ROOT))

import gran  # noqa: E402
from gran import _core, _lib  # noqa: E402

np = _core._np
MNIST = REPO / "data" / "mnist10k" / "train-images-idx3-ubyte.gz"
MNIST_LABELS = REPO / "data" / "mnist10k" / "train-labels-idx1-ubyte.gz"
HEADER = REPO / "include" / "gran.h"
RUNTIME_HEADER = REPO / "include" / "gran_runtime.h"
# Tiny trained models (28x28x1, T = 3, z_dim 16): a bfloat16 generator export and the
# training checkpoint it was exported from. Both libraries load them.
MODELS = REPO / "runtime" / "tests" / "data"
EXPORT = MODELS / "tiny_t3_bf16.safetensors"
CHECKPOINT = MODELS / "tiny_t3_checkpoint.safetensors"
RUNTIME = gran.LIBRARY_KIND == gran.LIBGRAN_RUNTIME
NEEDS_LIBGRAN = "needs libgran"

TINY = dict(width_scale=0.125, z_dim=16, hidden_dim=16, steps=2, device="cpu", seed=5)
TRAIN = dict(batch_size=16, iterations=20, seed=1)


def synthetic_bytes(count: int) -> bytes:
    """`count` 28x28 grey images (bars at varying places), HWC bytes."""
    px = bytearray(count * 784)
    for i in range(count):
        x0 = 4 + (i * 3) % 18
        for y in range(4, 24):
            for x in range(x0, x0 + 4):
                px[i * 784 + y * 28 + x] = 255
    return bytes(px)


def load_data() -> gran.Dataset:
    if MNIST.is_file():
        return gran.Dataset.load_idx(MNIST, MNIST_LABELS)
    return gran.Dataset.from_pixels(synthetic_bytes(256), 28, 28, 1)


def labelled_data(tmp: Path) -> gran.Dataset:
    """A small labelled dataset: the held-out MNIST digits, else synthetic IDX files."""
    images = REPO / "data" / "mnist10k" / "t10k-images-idx3-ubyte.gz"
    labels = REPO / "data" / "mnist10k" / "t10k-labels-idx1-ubyte.gz"
    if images.is_file() and labels.is_file():
        return gran.Dataset.load_idx(images, labels)
    n = 128
    (tmp / "img.idx").write_bytes(struct.pack(">IIII", 0x803, n, 28, 28) + synthetic_bytes(n))
    (tmp / "lab.idx").write_bytes(struct.pack(">II", 0x801, n) + bytes(((i * 3) % 18) // 9 for i in range(n)))
    return gran.Dataset.load_idx(tmp / "img.idx", tmp / "lab.idx")


def needs_numpy(f):
    return unittest.skipIf(np is None, "numpy is not installed")(f)


def needs_libgran(f):
    """For tests that create, train or evaluate: libgran_runtime only samples."""
    return unittest.skipIf(RUNTIME, f"{NEEDS_LIBGRAN} (loaded: libgran_runtime)")(f)


def header_functions(path: Path) -> dict:
    """{function name: parameter count} of the declarations in a C header."""
    text = path.read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    decls = {}
    for m in re.finditer(r"\b(gran_\w+)\s*\(([^()]*)\)\s*;", text):
        params = m.group(2).strip()
        decls[m.group(1)] = 0 if params in ("", "void") else params.count(",") + 1
    return decls


class LibraryTests(unittest.TestCase):
    def test_versions(self):
        self.assertRegex(gran.version(), r"^\d+\.\d+")
        self.assertEqual(gran.abi_version(), gran.GRAN_ABI_VERSION)
        self.assertGreaterEqual(gran.cuda_device_count(), 0)
        self.assertEqual(gran.status_string(gran.GRAN_STATUS_IO), "GRAN_STATUS_IO")
        self.assertEqual(gran.status_string(999), "GRAN_STATUS_UNKNOWN")
        self.assertTrue(os.path.exists(gran.LIBRARY_PATH) or "libgran" in gran.LIBRARY_PATH)

    @needs_libgran
    def test_deterministic(self):
        before = gran.deterministic()
        gran.set_deterministic(True)
        self.assertTrue(gran.deterministic())
        gran.set_deterministic(False)
        self.assertFalse(gran.deterministic())
        gran.set_deterministic(before)

    def test_num_threads(self):
        before = gran.num_threads()
        self.assertGreaterEqual(before, 1)
        try:
            gran.set_num_threads(2)
            self.assertEqual(gran.num_threads(), 2)
            for bad in (0, -1, 257):
                with self.assertRaises(gran.InvalidArgumentError):
                    gran.set_num_threads(bad)
            self.assertEqual(gran.num_threads(), 2)
            with self.assertRaises(TypeError):
                gran.set_num_threads(1.5)
            # The C function checks the range itself, too.
            self.assertEqual(_core._LIB.gran_set_num_threads(0), gran.GRAN_STATUS_INVALID_ARGUMENT)
        finally:
            gran.set_num_threads(before)
        self.assertEqual(gran.num_threads(), before)

    def test_library_kind(self):
        self.assertIn(gran.LIBRARY_KIND, (gran.LIBGRAN, gran.LIBGRAN_RUNTIME))
        self.assertEqual(gran.sampling_only(), RUNTIME)
        expected = os.environ.get("GRAN_TEST_EXPECT_KIND")
        if expected:
            self.assertEqual(gran.LIBRARY_KIND, expected)
        if RUNTIME:
            self.assertEqual(gran.cuda_device_count(), 0)

    def test_find_library(self):
        with mock.patch.dict(os.environ, {"GRAN_LIBRARY": "/opt/x/libgran.so"}):
            self.assertEqual(_lib.find_library(), "/opt/x/libgran.so")
        env = {k: v for k, v in os.environ.items() if k != "GRAN_LIBRARY"}
        with mock.patch.dict(os.environ, env, clear=True):
            found = _lib.find_library()
            candidates = _lib.candidate_paths()
            bundled = [p for p in candidates if p.parent == PKG_ROOT / "gran"]
            self.assertEqual(candidates[:len(bundled)], bundled)  # next to the package first
            if sys.platform.startswith("linux"):
                self.assertEqual([p.name for p in bundled],
                                 ["libgran.so", "libgran.so.0", "libgran_runtime.so", "libgran_runtime.so.0"])
            built = [p for p in candidates[len(bundled):] if p.is_file()]
            if built and not any(p.is_file() for p in bundled):
                self.assertEqual(Path(found), built[0])
            with mock.patch.object(_lib, "candidate_paths", lambda: []), \
                    mock.patch.object(_lib.ctypes.util, "find_library", lambda name: None):
                if sys.platform.startswith("linux"):
                    self.assertEqual(_lib.find_library(), "libgran.so.0")
            with mock.patch.object(_lib, "candidate_paths", lambda: []), \
                    mock.patch.object(_lib.ctypes.util, "find_library",
                                      lambda name: "libgran_runtime.so.0" if name == "gran_runtime" else None):
                self.assertEqual(_lib.find_library(), "libgran_runtime.so.0")
        with self.assertRaises(ImportError):
            _lib.load("/nonexistent/libgran.so")

    def test_exception_hierarchy(self):
        for status, cls in gran.errors.EXCEPTIONS.items():
            e = cls(status, "msg")
            self.assertIsInstance(e, gran.GranError)
            self.assertEqual(e.status, status)
            self.assertEqual(e.message, "msg")
            self.assertIn("msg", str(e))
        self.assertTrue(issubclass(gran.InvalidArgumentError, ValueError))
        self.assertTrue(issubclass(gran.GranIOError, OSError))
        self.assertTrue(issubclass(gran.OutOfMemoryError, MemoryError))
        self.assertEqual(len(set(gran.errors.EXCEPTIONS.values())), 12)
        self.assertIs(gran.errors.EXCEPTIONS[gran.GRAN_STATUS_DISTRIBUTED], gran.DistributedError)

    def test_model_config_defaults_match_library(self):
        lib = gran.ModelConfig.defaults()
        self.assertEqual(lib, gran.ModelConfig())
        self.assertEqual((lib.height, lib.channels, lib.steps, lib.z_dim, lib.device), (28, 1, 3, 100, "auto"))

    @needs_libgran
    def test_log_callback_bridge(self):
        # A discriminator that wins outright (high lr_d, frozen G) makes the library warn.
        seen = []

        def on_log(level, msg):
            seen.append((level, msg))
            raise RuntimeError("raised in the log callback: ignored by the bridge")

        gran.set_log_callback(on_log, "warn")
        try:
            with gran.Model.create(**TINY) as m, load_data() as d:
                # Without augmentation: adaptive p holds the warning back until it reaches 1.
                m.train(d, batch_size=16, iterations=60, lr_d=0.01, lr_g=1e-6, seed=1, report_every=5,
                        augment="off")
                self.assertEqual(m.step, 60)
        finally:
            gran.set_log_callback(None)
        self.assertEqual(len(seen), 1, seen)
        self.assertEqual(seen[0][0], "warn")
        self.assertIn("discriminator", seen[0][1])


class StructTests(unittest.TestCase):
    """The ctypes mirror of gran.h matches the C compiler's layout and the header's functions."""

    def test_struct_size_written_by_init(self):
        c = _lib.GranModelConfig()
        _core._LIB.gran_model_config_init(c)
        self.assertEqual(c.struct_size, sizeof(_lib.GranModelConfig))
        self.assertEqual((sizeof(_lib.GranModelConfig), c.classes, c.upsampling), (64, 0, 0))
        if RUNTIME:
            return
        t = _lib.GranTrainConfig()
        _core._LIB.gran_train_config_init(t)
        self.assertEqual(t.struct_size, sizeof(_lib.GranTrainConfig))

    def test_layout_matches_c_compiler(self):
        cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
        if cc is None or not HEADER.is_file():
            self.skipTest("no C compiler or no include/gran.h")
        lines = []
        for name, st in _lib.STRUCTS.items():
            lines.append(f'printf("{name} sizeof %zu\\n", sizeof({name}));')
            lines.append(f'printf("{name} alignof %zu\\n", _Alignof({name}));')
            for field, _ in st._fields_:
                lines.append(f'printf("{name} {field} %zu %zu\\n", offsetof({name}, {field}), '
                             f"sizeof((({name} *)0)->{field}));")
        src = ("#include <stddef.h>\n#include <stdio.h>\n#include \"gran.h\"\nint main(void) {\n"
               + "\n".join(lines) + "\nreturn 0;\n}\n")
        with tempfile.TemporaryDirectory() as tmp:
            c_file, exe = Path(tmp) / "layout.c", Path(tmp) / "layout"
            c_file.write_text(src)
            subprocess.run([cc, "-std=c11", "-Wall", "-Werror", f"-I{REPO / 'include'}", str(c_file), "-o", str(exe)],
                           check=True, capture_output=True)
            out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
        checked = 0
        for line in out.splitlines():
            parts = line.split()
            st = _lib.STRUCTS[parts[0]]
            if parts[1] == "sizeof":
                self.assertEqual(sizeof(st), int(parts[2]), f"sizeof {parts[0]}")
            elif parts[1] == "alignof":
                from ctypes import alignment
                self.assertEqual(alignment(st), int(parts[2]), f"alignof {parts[0]}")
            else:
                desc = getattr(st, parts[1])
                self.assertEqual((desc.offset, desc.size), (int(parts[2]), int(parts[3])), f"{parts[0]}.{parts[1]}")
            checked += 1
        self.assertGreater(checked, 40)

    def test_every_header_function_is_declared(self):
        if not HEADER.is_file():
            self.skipTest("no include/gran.h")
        decls = header_functions(HEADER)
        self.assertGreater(len(decls), 20)
        for name, nparams in decls.items():
            self.assertTrue(name in _lib.PROTOTYPES, f"{name} is in gran.h but not declared in gran._lib")
            self.assertEqual(len(_lib.PROTOTYPES[name][1]), nparams, f"{name}: parameter count")
        for name in _lib.PROTOTYPES:
            self.assertTrue(name in decls, f"{name} is declared in gran._lib but not in gran.h")

    def test_runtime_functions_are_gran_runtime_h(self):
        if not RUNTIME_HEADER.is_file():
            self.skipTest("no include/gran_runtime.h")
        decls = header_functions(RUNTIME_HEADER)
        self.assertEqual(set(decls), set(_lib.RUNTIME_FUNCTIONS))
        for name, nparams in decls.items():
            self.assertEqual(len(_lib.PROTOTYPES[name][1]), nparams, f"{name}: parameter count")
        # With either library loaded, these are the library's own functions, never stand-ins.
        for name in _lib.RUNTIME_FUNCTIONS:
            self.assertIsInstance(getattr(_core._LIB, name), _core.ctypes._CFuncPtr, name)


@needs_libgran
class ModelTests(unittest.TestCase):
    """One tiny model trained once (20 iterations), then probed."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = Path(cls.tmp.name)
        cls.data = load_data()
        cls.model = gran.Model.create(**TINY)
        cls.reports = []
        cls.last = cls.model.train(cls.data, report_every=5, on_progress=cls.reports.append, **TRAIN)

    @classmethod
    def tearDownClass(cls):
        cls.model.close()
        cls.data.close()
        cls.tmp.cleanup()

    def test_trained(self):
        self.assertEqual(self.model.step, 20)
        self.assertEqual(self.last.step, 20)
        self.assertEqual(self.last.total_steps, 20)
        self.assertGreaterEqual(len(self.reports), 4)
        self.assertTrue(all(isinstance(p, gran.Progress) for p in self.reports))
        self.assertEqual(self.reports[-1].step, 20)
        for p in self.reports:
            self.assertTrue(0 < p.d_loss < 100 and 0 < p.g_loss < 100)
            self.assertTrue(0 <= p.d_real <= 1 and 0 <= p.d_fake <= 1)

    def test_config(self):
        c = self.model.config
        self.assertIsInstance(c, gran.ModelConfig)
        self.assertEqual((c.height, c.width, c.channels, c.steps, c.z_dim, c.hidden_dim), (28, 28, 1, 2, 16, 16))
        self.assertAlmostEqual(c.width_scale, 0.125)
        self.assertEqual(c.device, "cpu")
        self.assertEqual(c.seed, 5)
        self.assertEqual(c.upsampling, "transposed")
        self.assertIn("gran.Model", repr(self.model))

    @needs_numpy
    def test_a_resizing_generator_by_name(self):
        m = gran.Model.create(**TINY, upsampling="resize")
        self.assertEqual(m.config.upsampling, "resize")
        self.assertEqual(m.sample(2, seed=1, format="f32").shape, (2, 1, 28, 28))
        with self.assertRaises(gran.InvalidArgumentError) as e:
            gran.Model.create(**TINY, upsampling="bilinear")
        self.assertIn("upsampling", str(e.exception))
        with self.assertRaises(gran.InvalidArgumentError) as e:
            gran.Model.create(**TINY, upsampling=7)
        self.assertIn("upsampling", str(e.exception))

    @needs_numpy
    def test_sample_shapes_dtypes_ranges(self):
        u8 = self.model.sample(6, seed=3)
        self.assertEqual((u8.shape, u8.dtype), ((6, 28, 28, 1), np.uint8))
        chw = self.model.sample(6, seed=3, format="u8_chw")
        self.assertEqual(chw.shape, (6, 1, 28, 28))
        np.testing.assert_array_equal(chw.transpose(0, 2, 3, 1), u8)
        f = self.model.sample(6, seed=3, format="f32")
        self.assertEqual((f.shape, f.dtype), ((6, 1, 28, 28), np.float32))
        self.assertTrue(np.all((f >= 0) & (f <= 1)))
        self.assertLessEqual(np.abs(f.transpose(0, 2, 3, 1) * 255 - u8.astype(np.float32)).max(), 1.0)
        self.assertGreater(u8.std(), 0)  # not a constant image
        # Image i depends only on (weights, seed, i); another seed differs.
        np.testing.assert_array_equal(self.model.sample(2, seed=3), u8[:2])
        self.assertFalse(np.array_equal(self.model.sample(6, seed=4), u8))

    @needs_numpy
    def test_latents_generate_steps(self):
        z = self.model.latents(4, seed=9)
        self.assertEqual((z.shape, z.dtype), ((4, 16), np.float32))
        np.testing.assert_array_equal(self.model.generate(z), self.model.sample(4, seed=9))
        np.testing.assert_array_equal(self.model.generate(z[0]), self.model.sample(1, seed=9))
        np.testing.assert_array_equal(self.model.generate(z.astype(np.float64), format="f32"),
                                      self.model.sample(4, seed=9, format="f32"))
        steps = self.model.sample_steps(4, seed=9)
        self.assertEqual(steps.shape, (2, 4, 28, 28, 1))
        np.testing.assert_array_equal(steps[-1], self.model.sample(4, seed=9))
        self.assertEqual(self.model.sample_steps(4, seed=9, format="f32").shape, (2, 4, 1, 28, 28))
        with self.assertRaises(gran.InvalidArgumentError):
            self.model.generate(np.zeros(17, np.float32))
        with self.assertRaises(gran.InvalidArgumentError):
            self.model.generate(np.full((1, 16), np.nan, np.float32))

    @needs_numpy
    def test_discriminate(self):
        u8 = self.model.sample(5, seed=1)
        p = self.model.discriminate(u8)
        self.assertEqual((p.shape, p.dtype), ((5,), np.float32))
        self.assertTrue(np.all((p >= 0) & (p <= 1)))
        np.testing.assert_allclose(self.model.discriminate(u8[..., 0]), p)  # (N, H, W)
        pf = self.model.discriminate(self.model.sample(5, seed=1, format="f32"))
        self.assertEqual(pf.shape, (5,))
        np.testing.assert_allclose(self.model.discriminate(u8.transpose(0, 3, 1, 2).copy(), format="u8_chw"), p)
        with self.assertRaises(gran.InvalidArgumentError):
            self.model.discriminate(np.zeros((2, 32, 32, 1), np.uint8))  # wrong size
        with self.assertRaises(gran.InvalidArgumentError):
            self.model.discriminate(np.full((1, 1, 28, 28), 2.0, np.float32))  # outside [0, 1]

    @needs_numpy
    def test_save_load_round_trip(self):
        path = self.dir / "round.gran"
        self.model.save(path)
        with gran.Model.load(path) as a, gran.Model.load(str(path), device="cpu") as b:
            self.assertEqual(a.step, 20)
            self.assertEqual(a.config, self.model.config)
            for m in (a, b):
                np.testing.assert_array_equal(m.sample(8, seed=2), self.model.sample(8, seed=2))
                np.testing.assert_array_equal(m.sample(8, seed=2, format="f32"),
                                              self.model.sample(8, seed=2, format="f32"))
            np.testing.assert_array_equal(a.latents(3, 7), self.model.latents(3, 7))

    def test_format_error_on_corrupt_files(self):
        garbage = self.dir / "garbage.gran"
        garbage.write_bytes(b"\x00\x01 definitely not a checkpoint " * 10)
        with self.assertRaises(gran.FormatError) as cm:
            gran.Model.load(garbage)
        self.assertEqual(cm.exception.status, gran.GRAN_STATUS_FORMAT)
        self.assertTrue(cm.exception.message)
        good = self.dir / "good.gran"
        self.model.save(good)
        data = good.read_bytes()
        truncated = self.dir / "truncated.gran"
        truncated.write_bytes(data[: len(data) // 2])
        with self.assertRaises(gran.FormatError):
            gran.Model.load(truncated)
        (self.dir / "empty.gran").write_bytes(b"")
        with self.assertRaises(gran.FormatError):
            gran.Model.load(self.dir / "empty.gran")
        bad_idx = self.dir / "bad.idx"
        bad_idx.write_bytes(b"\x00\x00\x08\x04garbage")
        with self.assertRaises(gran.FormatError):
            gran.Dataset.load_idx(bad_idx)

    def test_io_error_on_missing_file(self):
        missing = self.dir / "does-not-exist.gran"
        with self.assertRaises(gran.GranIOError) as cm:
            gran.Model.load(missing)
        self.assertEqual(cm.exception.status, gran.GRAN_STATUS_IO)
        self.assertIsInstance(cm.exception, OSError)
        self.assertIn("does-not-exist", cm.exception.message)
        self.assertIn("GRAN_STATUS_IO", str(cm.exception))
        self.assertEqual(gran.last_error(), cm.exception.message)
        with self.assertRaises(gran.GranIOError):
            gran.Dataset.load_idx(self.dir / "missing-images.gz")
        with self.assertRaises(gran.GranIOError):
            gran.Dataset.load_cifar10(self.dir / "missing-cifar")
        with self.assertRaises(gran.GranIOError):
            self.model.save(self.dir / "no" / "such" / "folder" / "m.gran")

    def test_invalid_arguments(self):
        with self.assertRaises(gran.InvalidArgumentError):
            gran.Model.create(height=30, width=30, device="cpu")
        with self.assertRaises(gran.InvalidArgumentError):
            gran.Model.create(channels=2, device="cpu")
        with self.assertRaises(gran.InvalidArgumentError):
            gran.Model.create(device="tpu")
        with self.assertRaises(gran.InvalidArgumentError):
            self.model.sample(0)
        with self.assertRaises(gran.InvalidArgumentError):
            self.model.sample(1, format="rgb565")
        with self.assertRaises(gran.InvalidArgumentError):
            self.model.sample(1, seed=-1)
        with self.assertRaises(gran.InvalidArgumentError):
            self.model.train(self.data, iterations=1, batch_size=1)
        if gran.cuda_device_count() == 0:
            with self.assertRaises(gran.DeviceError):
                gran.Model.create(device="cuda")
        with self.assertRaises(gran.DeviceError):
            gran.Model.create(device="cuda:%d" % (gran.cuda_device_count() + 3))

    @needs_numpy
    def test_write_png(self):
        imgs = self.model.sample(6, seed=1)
        for name, arr in (("u8.png", imgs), ("f32.png", self.model.sample(6, seed=1, format="f32"))):
            p = self.dir / name
            gran.write_png(p, arr, columns=3)
            self.assertEqual(p.read_bytes()[:8], b"\x89PNG\r\n\x1a\n")
        gran.write_png(self.dir / "raw.png", imgs.tobytes(), 2, height=28, width=28, channels=1)
        self.assertTrue((self.dir / "raw.png").is_file())
        with self.assertRaises(gran.InvalidArgumentError):
            gran.write_png(self.dir / "x.png", imgs, columns=0)

    @needs_numpy
    def test_write_gif(self):
        steps = self.model.sample_steps(4, seed=1)
        p = self.dir / "drawing.gif"
        gran.write_gif(p, steps, columns=2, delay_ms=300)
        head = p.read_bytes()[:10]
        # GIF89a, then the logical screen: 2 x 28 + 2 pixels square.
        self.assertEqual((head[:6], head[6:8], head[8:10]), (b"GIF89a", (58).to_bytes(2, "little"),
                                                            (58).to_bytes(2, "little")))
        with self.assertRaises(gran.InvalidArgumentError):
            gran.write_gif(self.dir / "x.gif", steps, delay_ms=0)
        self.assertFalse((self.dir / "x.gif").exists())


    def test_gam(self):
        held_out = REPO / "data" / "mnist10k" / "t10k-images-idx3-ubyte.gz"
        test = gran.Dataset.load_idx(held_out) if held_out.is_file() else load_data()
        with test, gran.Model.create(**dict(TINY, seed=77)) as other:
            ab = gran.gam(self.model, other, test, samples=64, seed=3)
            ba = gran.gam(other, self.model, test, samples=64, seed=3)
            self.assertIsInstance(ab, gran.GamResult)
            self.assertIn(ab.verdict, ("tie", "a_wins", "b_wins", "undecided"))
            self.assertEqual(ab.sample_count, 64)
            self.assertGreater(ab.test_count, 0)
            self.assertEqual((ab.test_error_a, ab.sample_error_a), (ba.test_error_b, ba.sample_error_b))
            swapped = {"a_wins": "b_wins", "b_wins": "a_wins", "tie": "tie", "undecided": "undecided"}
            self.assertEqual(ba.verdict, swapped[ab.verdict])
            self.assertIn(ab.accuracy_ranking, ("a_first", "b_first", "even"))
            if ab.sample_error_b < 1:
                self.assertAlmostEqual(ab.accuracy_r_sample, (1 - ab.sample_error_a) / (1 - ab.sample_error_b),
                                       places=12)
            self.assertEqual(ba.accuracy_ranking,
                             {"a_first": "b_first", "b_first": "a_first", "even": "even"}[ab.accuracy_ranking])
            with self.assertRaises(gran.InvalidArgumentError):
                gran.gam(self.model, other, test, samples=0)
            with self.assertRaises(gran.InvalidArgumentError):
                gran.gam(self.model, other, test, tolerance=float("nan"))
            # score_batch reaches the library: 0 scores image by image, the same as the scores
            # discriminate() gives for the held-out images.
            alone = gran.gam(self.model, other, test, samples=64, seed=3, score_batch=0)
            self.assertEqual(alone.sample_count, 64)
            if held_out.is_file():
                import gzip
                raw = gzip.open(held_out).read()[16:]
                p = self.model.discriminate(raw)
                fake = sum(1 for v in p if v <= 0.5)
                self.assertEqual(alone.test_error_a, fake / len(p))
            with self.assertRaises((gran.InvalidArgumentError, ValueError, OverflowError)):
                gran.gam(self.model, other, test, score_batch=-1)


def labelled_synthetic(count: int, classes: int) -> gran.Dataset:
    """`count` synthetic images with labels i % classes, made in memory."""
    return gran.Dataset.from_pixels(synthetic_bytes(count), 28, 28, 1, labels=[i % classes for i in range(count)])


@needs_libgran
class ConditionalTests(unittest.TestCase):
    """A tiny class-conditional model (4 classes), trained 2 steps on labelled synthetic data."""

    PER = [2, 0, 1, 3, 2, 1]  # one class per image

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = Path(cls.tmp.name)
        cls.data = labelled_synthetic(32, 4)
        cls.model = gran.Model.create(**TINY, classes=4)
        cls.last = cls.model.train(cls.data, batch_size=16, iterations=2, seed=1)

    @classmethod
    def tearDownClass(cls):
        cls.model.close()
        cls.data.close()
        cls.tmp.cleanup()

    def test_config(self):
        self.assertEqual(self.model.classes, 4)
        self.assertEqual(self.model.config.classes, 4)
        self.assertIn("4 classes", repr(self.model))
        self.assertEqual((self.model.step, self.last.step), (2, 2))
        self.assertEqual(gran.ModelConfig().classes, 0)
        with gran.Model.create(**TINY) as u:
            self.assertEqual((u.classes, u.config.classes), (0, 0))
            self.assertNotIn("classes", repr(u))
        with gran.Model.from_config(gran.ModelConfig(**TINY, classes=256)) as m:
            self.assertEqual(m.classes, 256)
        for bad in (1, 257):
            with self.assertRaises(gran.InvalidArgumentError) as cm:
                gran.Model.create(**TINY, classes=bad)
            self.assertIn("classes", str(cm.exception))
        with self.assertRaises(gran.InvalidArgumentError):
            gran.Model.create(**TINY, classes=-1)

    @needs_numpy
    def test_sample_one_class_and_per_image(self):
        m = self.model
        a = m.sample(6, seed=3, classes=2)
        self.assertEqual((a.shape, a.dtype), ((6, 28, 28, 1), np.uint8))
        b = m.sample(6, seed=3, classes=self.PER)
        for i in (0, 4):  # class 2 in both
            np.testing.assert_array_equal(b[i], a[i])
        self.assertFalse(np.array_equal(b[1], a[1]))  # class 0 against class 2
        # Image i of class k depends only on (weights, seed, i, k): not on the count nor on the
        # other images' classes.
        np.testing.assert_array_equal(m.sample(2, seed=3, classes=self.PER[:2]), b[:2])
        np.testing.assert_array_equal(m.sample(1, seed=3, classes=2), a[:1])
        other = m.sample(8, seed=3, classes=[2, 3, 3, 3, 2, 0, 0, 0])
        np.testing.assert_array_equal(other[[0, 4]], a[[0, 4]])
        # Any integer sequence: tuple, numpy arrays of any integer type, numpy scalars.
        np.testing.assert_array_equal(m.sample(6, seed=3, classes=tuple(self.PER)), b)
        np.testing.assert_array_equal(m.sample(6, seed=3, classes=np.array(self.PER, np.uint8)), b)
        np.testing.assert_array_equal(m.sample(6, seed=3, classes=np.array(self.PER, np.int64)), b)
        np.testing.assert_array_equal(m.sample(6, seed=3, classes=np.int32(2)), a)
        np.testing.assert_array_equal(m.sample(6, seed=3, classes=[2]), a)  # one for all
        f = m.sample(6, seed=3, format="f32", classes=self.PER)
        self.assertEqual((f.shape, f.dtype), ((6, 1, 28, 28), np.float32))
        self.assertLessEqual(np.abs(f.transpose(0, 2, 3, 1) * 255 - b.astype(np.float32)).max(), 1.0)
        # Without classes, image i is drawn as a class drawn from (seed, i): one of the four.
        drawn = m.sample(6, seed=3)
        np.testing.assert_array_equal(m.sample(3, seed=3), drawn[:3])
        per_class = [m.sample(6, seed=3, classes=k) for k in range(4)]
        for i in range(6):
            self.assertTrue(any(np.array_equal(drawn[i], s[i]) for s in per_class), f"image {i}")

    @needs_numpy
    def test_steps_generate_discriminate(self):
        m, per = self.model, self.PER[:4]
        images = m.sample(4, seed=9, classes=per)
        steps = m.sample_steps(4, seed=9, classes=per)
        self.assertEqual(steps.shape, (2, 4, 28, 28, 1))
        np.testing.assert_array_equal(steps[-1], images)
        np.testing.assert_array_equal(m.sample_steps(2, seed=9, classes=per[:2])[-1], images[:2])
        self.assertEqual(m.sample_steps(4, seed=9, format="f32", classes=1).shape, (2, 4, 1, 28, 28))
        z = m.latents(4, seed=9)
        np.testing.assert_array_equal(m.generate(z, classes=per), images)
        np.testing.assert_array_equal(m.generate(z[1], classes=per[1]), images[1:2])
        np.testing.assert_array_equal(m.generate(z, format="f32", classes=per),
                                      m.sample(4, seed=9, format="f32", classes=per))
        with self.assertRaises(gran.InvalidArgumentError) as cm:
            m.generate(z)  # latents of the caller's need their classes
        self.assertIn("class", str(cm.exception))
        p = m.discriminate(images)  # each as its most real class
        self.assertEqual((p.shape, p.dtype), ((4,), np.float32))
        py = m.discriminate(images, classes=per)  # D(x, y)
        self.assertEqual(py.shape, (4,))
        self.assertTrue(np.all((py >= 0) & (py <= 1)))
        by_class = np.stack([m.discriminate(images, classes=k) for k in range(4)])
        np.testing.assert_array_equal(by_class[per, np.arange(4)], py)
        np.testing.assert_allclose(p, by_class.max(axis=0), atol=1e-5)
        np.testing.assert_array_equal(m.discriminate(m.sample(4, seed=9, format="f32", classes=per), classes=per)
                                      .shape, (4,))

    def test_bad_classes(self):
        m = self.model
        for bad in (4, [0, 4], [0, 1, 2**31]):
            with self.assertRaises(gran.InvalidArgumentError, msg=str(bad)) as cm:
                m.sample(2 if isinstance(bad, int) else len(bad), seed=1, classes=bad)
            self.assertIn("class", cm.exception.message)
        for call in (lambda: m.sample_steps(2, classes=4), lambda: m.generate([0.0] * 32, classes=[1, 9]),
                     lambda: m.discriminate(bytes(2 * 784), classes=7)):
            with self.assertRaises(gran.InvalidArgumentError):
                call()
        # Checked here, before the library: not uint32, or not 1 or count of them.
        for bad in (-1, 2**32, [0, -1], [], [0, 1], [[0], [1], [2]]):
            with self.assertRaises((gran.InvalidArgumentError, TypeError), msg=str(bad)):
                m.sample(3, classes=bad)
        with self.assertRaises(ValueError):  # InvalidArgumentError is a ValueError
            m.sample(3, classes=-1)
        for bad in (1.0, "1", [0.5, 1, 2], object()):
            with self.assertRaises(TypeError, msg=repr(bad)):
                m.sample(3, classes=bad)
        if np is not None:
            with self.assertRaises(TypeError):
                m.sample(2, classes=np.array([0.0, 1.0]))
            with self.assertRaises(gran.InvalidArgumentError):
                m.sample(2, classes=np.array([[0, 1]]))
            with self.assertRaises(gran.InvalidArgumentError):
                m.sample(2, classes=np.array([0, -3]))

    def test_bad_class_leaves_the_output_untouched(self):
        # The C contract under the package: every class is checked before anything is written.
        from ctypes import POINTER, c_float, c_uint32, c_void_p, cast, create_string_buffer
        lib, h, n = _core._LIB, self.model.handle, 2 * 784
        out = create_string_buffer(b"\xab" * n, n)
        bad, good = (c_uint32 * 2)(1, 4), (c_uint32 * 2)(1, 3)
        for fn in (lib.gran_sample_class, lib.gran_sample_steps_class):
            size = n * (2 if fn is lib.gran_sample_steps_class else 1)
            buf = create_string_buffer(b"\xab" * size, size)
            self.assertEqual(fn(h, 1, 2, bad, 2, gran.GRAN_PIXEL_FORMAT_U8_HWC, buf, size),
                             gran.GRAN_STATUS_INVALID_ARGUMENT)
            self.assertEqual(buf.raw, b"\xab" * size)
            self.assertIn("4", gran.last_error())
            self.assertEqual(fn(h, 1, 2, bad, 3, gran.GRAN_PIXEL_FORMAT_U8_HWC, buf, size),
                             gran.GRAN_STATUS_INVALID_ARGUMENT)  # classes_len neither 1 nor count
            self.assertEqual(fn(h, 1, 2, None, 1, gran.GRAN_PIXEL_FORMAT_U8_HWC, buf, size),
                             gran.GRAN_STATUS_INVALID_ARGUMENT)  # NULL classes
            self.assertEqual(buf.raw, b"\xab" * size)
            self.assertEqual(fn(h, 1, 2, good, 2, gran.GRAN_PIXEL_FORMAT_U8_HWC, buf, size), gran.GRAN_STATUS_OK)
            self.assertNotEqual(buf.raw, b"\xab" * size)
        z = (c_float * 32)()
        self.assertEqual(lib.gran_generate_class(h, z, 2, bad, 2, gran.GRAN_PIXEL_FORMAT_U8_HWC, out, n),
                         gran.GRAN_STATUS_INVALID_ARGUMENT)
        self.assertEqual(out.raw, b"\xab" * n)
        probs = (c_float * 2)(-1.0, -1.0)
        pixels = create_string_buffer(n)
        self.assertEqual(lib.gran_discriminate_class(h, cast(pixels, c_void_p), 2, bad, 2,
                                                     gran.GRAN_PIXEL_FORMAT_U8_HWC, cast(probs, POINTER(c_float))),
                         gran.GRAN_STATUS_INVALID_ARGUMENT)
        self.assertEqual(list(probs), [-1.0, -1.0])

    def test_unconditional_model_rejects_classes(self):
        with gran.Model.create(**TINY) as u:
            z = [0.0] * 32
            for call in (lambda: u.sample(2, classes=0), lambda: u.sample(2, classes=[0, 1]),
                         lambda: u.sample_steps(2, classes=0), lambda: u.generate(z, classes=0),
                         lambda: u.discriminate(bytes(2 * 784), classes=0)):
                with self.assertRaises(gran.InvalidArgumentError) as cm:
                    call()
                self.assertIn("unconditional", cm.exception.message)
            self.assertEqual(len(u.generate(z)), 2)  # without classes it draws as before

    def test_training_needs_labels_within_the_classes(self):
        with gran.Model.create(**TINY, classes=4) as m:
            with gran.Dataset.from_pixels(synthetic_bytes(32), 28, 28, 1) as unlabelled:
                with self.assertRaises(gran.InvalidArgumentError):
                    m.train(unlabelled, batch_size=16, iterations=1)
            with labelled_synthetic(32, 6) as six:  # labels 4 and 5 are past 3
                with self.assertRaises(gran.InvalidArgumentError):
                    m.train(six, batch_size=16, iterations=1)
            self.assertEqual(m.step, 0)
            m.train(self.data, batch_size=16, iterations=1)
            self.assertEqual(m.step, 1)

    @needs_numpy
    def test_save_load_and_export_keep_the_classes(self):
        m = self.model
        images = m.sample(4, seed=2, classes=[3, 2, 1, 0])
        ckpt, export = self.dir / "cond.gran", self.dir / "cond.safetensors"
        m.save(ckpt)
        m.export(export)
        for path in (ckpt, export):
            with gran.Model.load(path, device="cpu") as loaded:
                self.assertEqual(loaded.classes, 4)
                self.assertEqual(loaded.config, m.config)
                np.testing.assert_array_equal(loaded.sample(4, seed=2, classes=[3, 2, 1, 0]), images)
                with self.assertRaises(gran.InvalidArgumentError):
                    loaded.sample(1, classes=4)

    def test_without_numpy(self):
        m = self.model
        with_np = m.sample(3, seed=4, classes=[1, 2, 3]) if np is not None else None
        with mock.patch.object(_core, "_np", None):
            u8 = m.sample(3, seed=4, classes=[1, 2, 3])
            self.assertIsInstance(u8, bytes)
            if with_np is not None:
                self.assertEqual(u8, with_np.tobytes())
            self.assertEqual(m.sample(3, seed=4, classes=array.array("I", [1, 2, 3])), u8)
            z = m.latents(3, seed=4)
            self.assertEqual(m.generate(z, classes=(1, 2, 3)), u8)
            self.assertEqual(m.sample_steps(3, seed=4, classes=[1, 2, 3])[-len(u8):], u8)
            p = m.discriminate(u8, classes=[1, 2, 3])
            self.assertIsInstance(p, list)
            self.assertEqual(len(p), 3)


@needs_libgran
class EvaluatorTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.labelled = labelled_data(Path(cls.tmp.name))
        cls.evaluator = gran.Evaluator.train(cls.labelled, epochs=1, device="cpu", seed=2)
        cls.model = gran.Model.create(**TINY)

    @classmethod
    def tearDownClass(cls):
        for o in (cls.evaluator, cls.model, cls.labelled):
            o.close()
        cls.tmp.cleanup()

    def test_accuracy(self):
        a = self.evaluator.accuracy(self.labelled)
        self.assertTrue(0.0 <= a <= 1.0)

    def test_evaluate_model(self):
        q = self.evaluator.evaluate_model(self.model, self.labelled, samples=32, seed=1)
        self.assertIsInstance(q, gran.Quality)
        self.assertEqual(q.count, 32)
        self.assertGreaterEqual(q.classes, 2)
        self.assertEqual(len(q.class_share), q.classes)
        self.assertAlmostEqual(sum(q.class_share), 1.0, places=6)
        self.assertGreaterEqual(q.frechet_distance, 0.0)
        self.assertTrue(1.0 - 1e-6 <= q.classifier_score <= q.classes + 1e-6)
        self.assertNotEqual(q.nearest_train_distance, q.nearest_train_distance)  # NaN without train
        with load_data() as train:
            qt = self.evaluator.evaluate_model(self.model, self.labelled, samples=32, seed=1, train=train)
        self.assertGreater(qt.nearest_train_distance, 0.0)
        self.assertGreater(qt.reference_nearest_train_distance, 0.0)
        self.assertEqual(qt.frechet_distance, q.frechet_distance)
        with self.assertRaises(gran.InvalidArgumentError):
            self.evaluator.evaluate_model(self.model, self.labelled, samples=1)

    def test_evaluate_dataset(self):
        q = self.evaluator.evaluate_dataset(self.labelled, self.labelled)
        self.assertEqual(q.count, self.labelled.info.count)
        self.assertLess(abs(q.frechet_distance), 1e-3)
        self.assertEqual(len(q.class_accuracy), q.classes)
        self.assertTrue(all(a != a for a in q.class_accuracy))  # NaN: no classes were asked for

    def test_class_accuracy(self):
        # Unconditional samples: NaN everywhere. A conditional model's (classes drawn from
        # (seed, i)): per class, the share the classifier assigns to the class asked for.
        q = self.evaluator.evaluate_model(self.model, self.labelled, samples=32, seed=1)
        self.assertEqual(len(q.class_accuracy), q.classes)
        self.assertTrue(all(a != a for a in q.class_accuracy))
        with gran.Model.create(**TINY, classes=2) as cond:
            qc = self.evaluator.evaluate_model(cond, self.labelled, samples=32, seed=1)
        self.assertEqual(len(qc.class_accuracy), qc.classes)
        measured = [a for a in qc.class_accuracy[:2] if a == a]
        self.assertTrue(measured)
        self.assertTrue(all(0.0 <= a <= 1.0 for a in measured))
        self.assertTrue(all(a != a for a in qc.class_accuracy[2:]))  # classes the model lacks

    def test_errors(self):
        with gran.Dataset.from_pixels(synthetic_bytes(8), 28, 28, 1) as unlabelled:
            with self.assertRaises(gran.InvalidArgumentError):
                gran.Evaluator.train(unlabelled, epochs=1, device="cpu")
            with self.assertRaises(gran.InvalidArgumentError):
                self.evaluator.accuracy(unlabelled)
        ev = gran.Evaluator.train(self.labelled, epochs=1, batch_size=64, device="cpu")
        ev.close()
        with self.assertRaises(gran.InvalidHandleError):
            ev.accuracy(self.labelled)
        self.assertIn("closed", repr(ev))


@needs_libgran
class LifetimeTests(unittest.TestCase):
    def test_invalid_handle_after_close(self):
        m = gran.Model.create(**TINY)
        self.assertEqual(m.step, 0)
        m.close()
        self.assertTrue(m.closed)
        m.close()  # idempotent
        for call in (lambda: m.step, lambda: m.config, lambda: m.sample(1), lambda: m.save("x.gran"),
                     lambda: m.cancel(), lambda: m.latents(1)):
            with self.assertRaises(gran.InvalidHandleError):
                call()
        self.assertIn("closed", repr(m))
        d = gran.Dataset.from_pixels(synthetic_bytes(4), 28, 28, 1)
        self.assertEqual(len(d), 4)
        d.close()
        with self.assertRaises(gran.InvalidHandleError):
            d.info
        with gran.Model.create(**TINY) as m2:
            with self.assertRaises(gran.InvalidHandleError):
                m2.train(d, iterations=1, batch_size=2)
        with self.assertRaises(gran.InvalidHandleError):
            m2.step

    def test_context_manager_and_del(self):
        with gran.Model.create(**TINY) as m:
            handle = m.handle
            self.assertEqual(m.step, 0)
        self.assertTrue(m.closed)
        # A forged model built from the stale handle is rejected, never crashes.
        ghost = gran.Model(handle)
        with self.assertRaises(gran.InvalidHandleError):
            ghost.step
        ghost._open = False
        m3 = gran.Model.create(**TINY)
        h3 = m3.handle
        del m3  # __del__ frees
        with self.assertRaises(gran.InvalidHandleError):
            _core._check(_core._LIB.gran_model_free(h3))


@needs_libgran
class TrainingControlTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.data = load_data()

    @classmethod
    def tearDownClass(cls):
        cls.data.close()

    def setUp(self):
        self.model = gran.Model.create(**TINY)

    def tearDown(self):
        self.model.close()

    def test_callback_stop_raises_cancelled(self):
        calls = []

        def stop_on_second(p):
            calls.append(p.step)
            return len(calls) == 2

        with self.assertRaises(gran.CancelledError) as cm:
            self.model.train(self.data, report_every=2, on_progress=stop_on_second, **TRAIN)
        self.assertEqual(cm.exception.status, gran.GRAN_STATUS_CANCELLED)
        self.assertEqual(calls, [2, 4])
        self.assertEqual(self.model.step, 4)
        # The model is intact: training goes on from step 4.
        self.model.train(self.data, batch_size=16, iterations=2)
        self.assertEqual(self.model.step, 6)

    def test_precision(self):
        self.assertEqual(self.model.precision, "fp32")
        before = self.model.sample(4, seed=2, format="f32")
        p = self.model.train(self.data, precision="bf16", **TRAIN)
        self.assertEqual(self.model.step, TRAIN["iterations"])
        self.assertTrue(0.0 < p.d_real < 1.0)
        with self.assertRaises(gran.InvalidArgumentError):
            self.model.train(self.data, precision="fp16", **TRAIN)
        with self.assertRaises(gran.InvalidArgumentError) as cm:
            self.model.train(self.data, precision=5, **TRAIN)
        self.assertIn("precision", str(cm.exception))
        self.assertEqual(self.model.step, TRAIN["iterations"])
        fp32 = self.model.sample(4, seed=2, format="f32")
        self.model.precision = "bf16"
        self.assertEqual(self.model.precision, "bf16")
        bf16 = self.model.sample(4, seed=2, format="f32")
        with self.assertRaises(gran.InvalidArgumentError):
            self.model.precision = 3
        self.assertEqual(self.model.precision, "bf16")
        self.model.precision = gran.GRAN_PRECISION_FP32
        self.assertEqual(self.model.precision, "fp32")
        flat = lambda x: list(x.reshape(-1)) if hasattr(x, "reshape") else list(x)  # noqa: E731
        a, b, c = flat(before), flat(fp32), flat(bf16)
        self.assertNotEqual(a, b)  # training changed the model
        self.assertNotEqual(b, c)  # bfloat16 computed other bits
        self.assertLess(max(abs(x - y) for x, y in zip(b, c)), 0.05)
        self.assertEqual(flat(self.model.sample(4, seed=2, format="f32")), b)

    def test_averaged_generator_and_schedule(self):
        self.assertFalse(self.model.has_averaged)
        self.assertEqual(self.model.generator, "averaged")
        self.model.train(self.data, ema_decay=0.5, ema_start=2, lr_schedule="linear", **TRAIN)
        self.assertTrue(self.model.has_averaged)
        flat = lambda x: list(x.reshape(-1)) if hasattr(x, "reshape") else list(x)  # noqa: E731
        averaged = flat(self.model.sample(4, seed=2, format="f32"))
        self.model.generator = "raw"
        self.assertEqual(self.model.generator, "raw")
        raw = flat(self.model.sample(4, seed=2, format="f32"))
        self.assertNotEqual(averaged, raw)
        with self.assertRaises(gran.InvalidArgumentError):
            self.model.generator = "mean"
        self.model.generator = "averaged"
        self.assertEqual(flat(self.model.sample(4, seed=2, format="f32")), averaged)
        with self.assertRaises(gran.InvalidArgumentError):
            self.model.train(self.data, ema_decay=1.0, **TRAIN)
        with self.assertRaises(gran.InvalidArgumentError) as cm:
            self.model.train(self.data, lr_schedule="cosine", **TRAIN)
        self.assertIn("lr_schedule", str(cm.exception))
        with self.assertRaises(gran.InvalidArgumentError):
            self.model.train(self.data, lr_schedule=7, **TRAIN)
        self.assertEqual(self.model.step, TRAIN["iterations"])

    def test_augmentation(self):
        reports = []
        last = self.model.train(self.data, augment="fixed", augment_p=0.7, augment_flip=True, r1_gamma=1.0,
                                r1_every=4, canvas_penalty=0.5, on_progress=reports.append, **dict(TRAIN, report_every=5))
        self.assertEqual(last.augment_p, 0.7)
        self.assertEqual([r.augment_p for r in reports], [0.7] * 4)
        # Adaptive continues from where the model is; off reports 0.
        last = self.model.train(self.data, augment="ada", augment_speed=100, lr_d=1e-2, **TRAIN)
        self.assertNotEqual(last.augment_p, 0.7)
        self.assertEqual(self.model.train(self.data, augment="off", **TRAIN).augment_p, 0.0)
        for bad in (dict(augment="mirror"), dict(augment=9), dict(augment="fixed", augment_p=2.0),
                    dict(augment_target=1.0), dict(augment_speed=0.0), dict(r1_gamma=float("nan")),
                    dict(canvas_penalty=float("inf"))):
            with self.assertRaises(gran.InvalidArgumentError, msg=str(bad)):
                self.model.train(self.data, **bad, **TRAIN)
        self.assertEqual(self.model.step, 3 * TRAIN["iterations"])

    def test_export(self):
        self.model.train(self.data, ema_decay=0.5, ema_start=2, **TRAIN)
        with tempfile.TemporaryDirectory() as d:
            ckpt, exp32, exp16 = (os.path.join(d, n) for n in ("m.gran", "g32.safetensors", "g16.safetensors"))
            self.model.save(ckpt)
            self.model.export(exp32)
            self.model.export(exp16, storage="bf16")
            self.assertGreaterEqual(os.path.getsize(ckpt), 3 * os.path.getsize(exp32))
            self.assertGreaterEqual(os.path.getsize(ckpt), 6 * os.path.getsize(exp16))
            with self.assertRaises(gran.InvalidArgumentError):
                self.model.export(os.path.join(d, "x"), storage="fp8")
            with gran.Model.load(exp32) as e:
                self.assertTrue(e.inference_only)
                self.assertFalse(self.model.inference_only)
                flat = lambda x: list(x.reshape(-1)) if hasattr(x, "reshape") else list(x)  # noqa: E731
                self.assertEqual(flat(e.sample(4, seed=2, format="f32")), flat(self.model.sample(4, seed=2, format="f32")))
                with self.assertRaises(gran.InvalidArgumentError) as cm:
                    e.train(self.data, **TRAIN)
                self.assertIn("exported for inference", str(cm.exception))
                with self.assertRaises(gran.InvalidArgumentError):
                    e.save(os.path.join(d, "e.gran"))

    def test_cancel_from_callback(self):
        def cancel(p):
            self.model.cancel()

        with self.assertRaises(gran.CancelledError):
            self.model.train(self.data, report_every=1, on_progress=cancel, **TRAIN)
        self.assertEqual(self.model.step, 1)
        self.model.cancel()  # not training: a no-op

    def test_exception_in_callback_is_reraised(self):
        class Boom(Exception):
            pass

        seen = []

        def explode(p):
            seen.append(p.step)
            if p.step == 3:
                raise Boom("from the callback")

        with self.assertRaises(Boom) as cm:
            self.model.train(self.data, report_every=1, on_progress=explode, **TRAIN)
        self.assertEqual(str(cm.exception), "from the callback")
        self.assertEqual(seen, [1, 2, 3])
        self.assertEqual(self.model.step, 3)
        # BaseException subclasses (KeyboardInterrupt) stop training and come back too.
        def interrupt(p):
            raise KeyboardInterrupt

        with self.assertRaises(KeyboardInterrupt):
            self.model.train(self.data, report_every=1, on_progress=interrupt, **TRAIN)
        self.assertEqual(self.model.step, 4)

    def test_busy_when_training_twice(self):
        def nested(p):
            self.model.train(self.data, batch_size=16, iterations=1)

        with self.assertRaises(gran.BusyError):
            self.model.train(self.data, report_every=1, on_progress=nested, **TRAIN)

    def test_cancel_from_another_thread(self):
        started = threading.Event()
        result = {}

        def run():
            try:
                self.model.train(self.data, batch_size=16, iterations=100000, report_every=1,
                                 on_progress=lambda p: started.set())
            except gran.GranError as e:
                result["error"] = e

        t = threading.Thread(target=run)
        t.start()
        self.assertTrue(started.wait(60))
        self.model.cancel()
        t.join(60)
        self.assertFalse(t.is_alive())
        self.assertIsInstance(result.get("error"), gran.CancelledError)
        self.assertLess(self.model.step, 100000)

    def test_sampling_while_training_in_callback(self):
        shapes = []

        def preview(p):
            shapes.append(len(self.model.sample(2, seed=1, format="u8_chw")))

        self.model.train(self.data, report_every=10, on_progress=preview, **TRAIN)
        self.assertEqual(shapes, [2, 2] if np is not None else [1568, 1568])

    def test_checkpoint_and_epochs(self):
        with tempfile.TemporaryDirectory() as tmp:
            ck = Path(tmp) / "ck.gran"
            last = self.model.train(self.data, batch_size=16, iterations=4, checkpoint_path=ck)
            self.assertEqual(last.step, 4)
            with gran.Model.load(ck) as m:
                self.assertEqual(m.step, 4)
        with gran.Dataset.from_pixels(synthetic_bytes(32), 28, 28, 1) as small:
            last = self.model.train(small, batch_size=16, epochs=1)
            self.assertGreater(last.step, 4)
            self.assertEqual(last.step, self.model.step)


@needs_libgran
class ProcessGroupTests(unittest.TestCase):
    @staticmethod
    def free_port() -> int:
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def test_two_ranks_train_to_the_same_weights(self):
        # Two ranks in one process (two threads, two groups, two models): ctypes releases the
        # GIL inside gran_train, so they train together as two processes would.
        port = self.free_port()
        data = load_data()
        out, errors = {}, []

        def rank(r):
            try:
                with gran.ProcessGroup.create(rank=r, world_size=2, master_port=port, timeout_ms=60_000) as g:
                    self.assertEqual((g.rank, g.world_size), (r, 2))
                    with gran.Model.create(**TINY) as m:
                        m.train(data, batch_size=16, iterations=3, seed=1, process_group=g)
                        out[r] = (m.step, m.sample(4, seed=2))
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        self.assertEqual(out[0][0], 3)
        self.assertEqual(out[1][0], 3)
        a, b = out[0][1], out[1][1]
        self.assertTrue((a == b).all() if hasattr(a, "all") else a == b, "the ranks sample differently")

    def test_bad_settings_are_refused(self):
        with self.assertRaises(gran.InvalidArgumentError):
            gran.ProcessGroup.create(rank=2, world_size=2, master_port=self.free_port())
        with self.assertRaises(gran.InvalidArgumentError):
            gran.ProcessGroup.create(rank=0, world_size=1, master_port=self.free_port(), backend="mpi")
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
        with mock.patch.dict(os.environ, env, clear=True):
            with self.assertRaises(gran.InvalidArgumentError) as cm:
                gran.ProcessGroup.from_env()
            self.assertIn("RANK", str(cm.exception))


@needs_libgran
class DatasetTests(unittest.TestCase):
    def test_load_idx(self):
        if not MNIST.is_file():
            self.skipTest("data/mnist10k is not present")
        with gran.Dataset.load_idx(MNIST, MNIST_LABELS) as d:
            i = d.info
            self.assertEqual((i.height, i.width, i.channels), (28, 28, 1))
            self.assertGreater(i.count, 1000)
            self.assertTrue(i.has_labels)
        with gran.Dataset.load_idx(str(MNIST)) as d:
            self.assertFalse(d.info.has_labels)

    def test_from_bytes(self):
        with gran.Dataset.from_pixels(synthetic_bytes(5), 28, 28, 1) as d:
            self.assertEqual(d.info, gran.DatasetInfo(count=5, height=28, width=28, channels=1, has_labels=False))
        with gran.Dataset.from_pixels(bytearray(3 * 32 * 32 * 3), 32, 32, 3, format="u8_chw") as d:
            self.assertEqual((d.info.count, d.info.channels), (3, 3))
        with gran.Dataset.from_pixels([0.5] * (2 * 784), 28, 28, 1, format="f32") as d:
            self.assertEqual(len(d), 2)
        with gran.Dataset.from_pixels(array.array("f", [0.25] * 784), 28, 28, 1, format="f32") as d:
            self.assertEqual(len(d), 1)
        with gran.Dataset.from_pixels(memoryview(array.array("f", [0.5] * 784 * 3)), 28, 28, 1) as d:
            self.assertEqual(len(d), 3)  # a float buffer is read as f32
        with gran.Dataset.from_pixels(array.array("B", synthetic_bytes(2)), 28, 28, 1) as d:
            self.assertEqual(len(d), 2)  # a byte buffer is read as u8
        with gran.Dataset.from_pixels(list(synthetic_bytes(2)), 28, 28, 1, format="u8") as d:
            self.assertEqual(len(d), 2)
        with self.assertRaises(gran.InvalidArgumentError):
            gran.Dataset.from_pixels(b"\x00" * 784, 28, 28, 1, format="f32")
        with self.assertRaises(gran.InvalidArgumentError):
            gran.Dataset.from_pixels(array.array("f", [0.5] * 784), 28, 28, 1, format="u8")
        with self.assertRaises(TypeError):
            gran.Dataset.from_pixels(array.array("d", [0.5] * 784), 28, 28, 1)
        with self.assertRaises(TypeError):
            gran.Dataset.from_pixels("not pixels", 28, 28, 1)
        with self.assertRaises(gran.InvalidArgumentError):
            gran.Dataset.from_pixels(b"\x00" * 100, 28, 28, 1)  # not whole images
        with self.assertRaises(gran.InvalidArgumentError):
            gran.Dataset.from_pixels([1.5] * 784, 28, 28, 1, format="f32")  # outside [0, 1]
        with self.assertRaises(gran.InvalidArgumentError):
            gran.Dataset.from_pixels(b"\x00" * 784 * 2, 28, 28, 2)  # channels 2

    def test_labels_in_memory(self):
        px = synthetic_bytes(4)
        with gran.Dataset.from_pixels(px, 28, 28, 1, labels=[3, 1, 4, 1]) as d:
            self.assertEqual(d.info, gran.DatasetInfo(count=4, height=28, width=28, channels=1, has_labels=True))
        with gran.Dataset.from_pixels(px, 28, 28, 1, labels=bytes([0, 255, 7, 7])) as d:
            self.assertTrue(d.info.has_labels)
        with gran.Dataset.from_pixels([0.5] * (2 * 784), 28, 28, 1, format="f32", labels=(1, 0)) as d:
            self.assertEqual((d.info.count, d.info.has_labels), (2, True))
        for bad in ([0, 1, 2], [0, 1, 2, 256], [0, -1, 0, 0], b"\x00"):
            with self.assertRaises(gran.InvalidArgumentError, msg=str(bad)):
                gran.Dataset.from_pixels(px, 28, 28, 1, labels=bad)
        for bad in ([0.0, 1, 2, 3], "0123", 3):
            with self.assertRaises(TypeError, msg=repr(bad)):
                gran.Dataset.from_pixels(px, 28, 28, 1, labels=bad)
        # Labelled data trains an evaluator, as files with labels do.
        with gran.Dataset.from_pixels(synthetic_bytes(64), 28, 28, 1, labels=[i % 2 for i in range(64)]) as d:
            with gran.Evaluator.train(d, epochs=1, device="cpu") as ev:
                self.assertTrue(0.0 <= ev.accuracy(d) <= 1.0)
        if np is not None:
            imgs = np.frombuffer(px, np.uint8).reshape(4, 28, 28, 1)
            with gran.Dataset.from_array(imgs, labels=np.array([0, 1, 2, 3], np.int64)) as d:
                self.assertTrue(d.info.has_labels)
            with gran.Dataset.from_array(imgs) as d:
                self.assertFalse(d.info.has_labels)
            with self.assertRaises(TypeError):
                gran.Dataset.from_array(imgs, labels=np.zeros(4, np.float32))
            with self.assertRaises(gran.InvalidArgumentError):
                gran.Dataset.from_array(imgs, labels=np.zeros((2, 2), np.uint8))
            with self.assertRaises(gran.InvalidArgumentError):
                gran.Dataset.from_array(imgs, labels=np.array([0, 1, 2, 300]))

    @needs_numpy
    def test_npy_and_image_files(self):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            images = (np.arange(4 * 8 * 8 * 3) % 251).astype(np.uint8).reshape(4, 8, 8, 3)
            np.save(tmp / "set.npy", images)
            with gran.Dataset.load_npy(tmp / "set.npy") as d:
                self.assertEqual(d.info, gran.DatasetInfo(count=4, height=8, width=8, channels=3, has_labels=False))
            np.save(tmp / "set.labels.npy", np.array([3, 1, 4, 1]))
            with gran.Dataset.load_npy(tmp / "set.npy") as d:
                self.assertTrue(d.info.has_labels)
            with gran.Dataset.open_npy(tmp / "set.npy") as d:
                self.assertEqual((d.info.count, d.info.has_labels), (4, True))
            np.save(tmp / "bad.npy", images.astype(np.float32))
            with self.assertRaises(gran.FormatError):
                gran.Dataset.load_npy(tmp / "bad.npy")
            # Class folders (ImageFolder): two classes, an image each, written by write_png.
            for k, name in enumerate(["cats", "dogs"]):
                (tmp / "classes" / name).mkdir(parents=True)
                gran.write_png(tmp / "classes" / name / "a.png", images[k:k + 1], columns=1)
            with gran.Dataset.load_images(tmp / "classes", 8, 8, 3, labels="class-folders") as d:
                self.assertEqual((d.info.count, d.info.has_labels), (2, True))
            with gran.Dataset.load_images(tmp / "classes", 4, 4, 1, center_crop=True) as d:
                self.assertEqual((d.info.count, d.info.height, d.info.has_labels), (2, 4, False))
            with self.assertRaises(gran.InvalidArgumentError):
                gran.Dataset.load_images(tmp / "classes", 8, 8, 3, labels="folders")

    @needs_numpy
    def test_from_numpy(self):
        rng = np.random.default_rng(0)
        nhwc = rng.integers(0, 256, size=(7, 32, 32, 3), dtype=np.uint8)
        with gran.Dataset.from_array(nhwc) as d:
            self.assertEqual((d.info.count, d.info.height, d.info.channels), (7, 32, 3))
        with gran.Dataset.from_array(nhwc[..., 0]) as d:  # (N, H, W)
            self.assertEqual((d.info.count, d.info.channels), (7, 1))
        nchw = rng.random((4, 1, 28, 28), dtype=np.float32)
        with gran.Dataset.from_array(nchw) as d:
            self.assertEqual((d.info.count, d.info.channels, d.info.height), (4, 1, 28))
        with gran.Dataset.from_array(nchw.astype(np.float64)) as d:
            self.assertEqual(len(d), 4)
        with gran.Dataset.from_array(np.asfortranarray(nhwc)) as d:  # non-contiguous input is copied
            self.assertEqual(len(d), 7)
        with self.assertRaises(gran.InvalidArgumentError) as cm:
            gran.Dataset.from_array(nchw * 3)
        self.assertIsInstance(cm.exception, ValueError)
        with self.assertRaises(TypeError):
            gran.Dataset.from_array(np.zeros((2, 28, 28), np.int64))
        with self.assertRaises(gran.InvalidArgumentError):
            gran.Dataset.from_array(np.zeros((28, 28), np.uint8))

    @needs_numpy
    def test_train_on_numpy_array(self):
        imgs = np.frombuffer(synthetic_bytes(32), np.uint8).reshape(32, 28, 28, 1)
        with gran.Model.create(**TINY) as m:
            last = m.train(imgs, batch_size=16, iterations=3)
            self.assertEqual(last.step, 3)


@needs_libgran
class NoNumpyTests(unittest.TestCase):
    """The package without numpy: bytes for U8 images, lists for floats."""

    @classmethod
    def setUpClass(cls):
        cls.model = gran.Model.create(**TINY)

    @classmethod
    def tearDownClass(cls):
        cls.model.close()

    def test_results_without_numpy(self):
        with_np = self.model.sample(3, seed=4) if np is not None else None
        with mock.patch.object(_core, "_np", None):
            self.assertFalse(gran.have_numpy())
            u8 = self.model.sample(3, seed=4)
            self.assertIsInstance(u8, bytes)
            self.assertEqual(len(u8), 3 * 784)
            if with_np is not None:
                self.assertEqual(u8, with_np.tobytes())
            f = self.model.sample(3, seed=4, format="f32")
            self.assertIsInstance(f, list)
            self.assertEqual(len(f), 3 * 784)
            self.assertTrue(all(0.0 <= v <= 1.0 for v in f))
            z = self.model.latents(3, seed=4)
            self.assertIsInstance(z, list)
            self.assertEqual(len(z), 3 * 16)
            self.assertEqual(self.model.generate(z), u8)
            self.assertEqual(self.model.generate([z[i * 16:(i + 1) * 16] for i in range(3)]), u8)
            steps = self.model.sample_steps(3, seed=4)
            self.assertEqual(steps[-len(u8):], u8)
            p = self.model.discriminate(u8)
            self.assertIsInstance(p, list)
            self.assertEqual(len(p), 3)
            self.assertEqual(len(self.model.discriminate(f)), 3)
            self.assertEqual(self.model.discriminate(array.array("B", u8)), p)
            self.assertEqual(self.model.discriminate(memoryview(u8)), p)
            self.assertEqual(len(self.model.discriminate(array.array("f", f))), 3)
            with tempfile.TemporaryDirectory() as tmp:
                gran.write_png(Path(tmp) / "g.png", u8, 3, height=28, width=28, channels=1)
                self.assertTrue((Path(tmp) / "g.png").is_file())
            with gran.Dataset.from_pixels(u8, 28, 28, 1) as d:
                self.assertEqual(len(d), 3)
            with self.assertRaises(RuntimeError):
                gran.Dataset.from_array(u8)

    def test_import_with_numpy_disabled(self):
        code = ("import gran; assert not gran.have_numpy(); "
                "m = gran.Model.create(width_scale=0.125, z_dim=8, hidden_dim=8, steps=1, device='cpu'); "
                "s = m.sample(2, seed=1); assert isinstance(s, bytes) and len(s) == 2 * 784, type(s); "
                "print('ok')")
        env = dict(os.environ, GRAN_NO_NUMPY="1", PYTHONPATH=str(PKG_ROOT))
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "ok")


@unittest.skipUnless(EXPORT.is_file() and CHECKPOINT.is_file(), "runtime/tests/data is not present")
class ModelFileTests(unittest.TestCase):
    """Loading and sampling trained model files: the calls both libraries have."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = Path(cls.tmp.name)
        cls.export = gran.Model.load(EXPORT, device="cpu")
        cls.checkpoint = gran.Model.load(CHECKPOINT, device="cpu")

    @classmethod
    def tearDownClass(cls):
        cls.export.close()
        cls.checkpoint.close()
        cls.tmp.cleanup()

    def test_config_and_queries(self):
        for m in (self.export, self.checkpoint):
            c = m.config
            self.assertEqual((c.height, c.width, c.channels, c.steps, c.z_dim, c.hidden_dim), (28, 28, 1, 3, 16, 16))
            self.assertEqual((c.classes, m.classes), (0, 0))
            self.assertAlmostEqual(c.width_scale, 0.0625)
            self.assertEqual(c.device, "cpu")
            self.assertEqual(m.step, 60)
            self.assertIn("28x28x1, T=3", repr(m))
        self.assertTrue(self.export.inference_only)
        self.assertFalse(self.export.has_averaged)
        self.assertTrue(self.checkpoint.has_averaged)
        # libgran trains a checkpoint further; libgran_runtime only draws from it.
        self.assertEqual(self.checkpoint.inference_only, RUNTIME)

    @needs_numpy
    def test_sample_shapes_dtypes_ranges(self):
        m = self.export
        u8 = m.sample(6, seed=3)
        self.assertEqual((u8.shape, u8.dtype), ((6, 28, 28, 1), np.uint8))
        self.assertGreater(u8.std(), 0)
        chw = m.sample(6, seed=3, format="u8_chw")
        np.testing.assert_array_equal(chw.transpose(0, 2, 3, 1), u8)
        f = m.sample(6, seed=3, format="f32")
        self.assertEqual((f.shape, f.dtype), ((6, 1, 28, 28), np.float32))
        self.assertTrue(np.all((f >= 0) & (f <= 1)))
        self.assertLessEqual(np.abs(f.transpose(0, 2, 3, 1) * 255 - u8.astype(np.float32)).max(), 1.0)
        np.testing.assert_array_equal(m.sample(2, seed=3), u8[:2])
        self.assertFalse(np.array_equal(m.sample(6, seed=4), u8))
        # The export is the checkpoint's averaged generator, stored in bfloat16.
        a = self.checkpoint.sample(6, seed=3).astype(np.int16)
        self.assertLessEqual(np.abs(a - u8.astype(np.int16)).mean(), 8.0)

    @needs_numpy
    def test_latents_generate_steps(self):
        m = self.export
        z = m.latents(4, seed=9)
        self.assertEqual((z.shape, z.dtype), ((4, 16), np.float32))
        np.testing.assert_array_equal(z, self.checkpoint.latents(4, seed=9))
        np.testing.assert_array_equal(m.generate(z), m.sample(4, seed=9))
        np.testing.assert_array_equal(m.generate(z[0]), m.sample(1, seed=9))
        steps = m.sample_steps(4, seed=9)
        self.assertEqual(steps.shape, (3, 4, 28, 28, 1))
        np.testing.assert_array_equal(steps[-1], m.sample(4, seed=9))
        self.assertEqual(m.sample_steps(2, seed=9, format="f32").shape, (3, 2, 1, 28, 28))
        with self.assertRaises(gran.InvalidArgumentError):
            m.generate(np.zeros(17, np.float32))
        with self.assertRaises(gran.InvalidArgumentError):
            m.generate(np.full((1, 16), np.nan, np.float32))

    @needs_numpy
    def test_generator_choice(self):
        with gran.Model.load(CHECKPOINT, device="cpu") as m:
            averaged = m.sample(4, seed=1)
            m.generator = "raw"
            self.assertEqual(m.generator, "raw")
            raw = m.sample(4, seed=1)
            self.assertFalse(np.array_equal(raw, averaged))
            m.generator = "averaged"
            np.testing.assert_array_equal(m.sample(4, seed=1), averaged)
            with self.assertRaises(gran.InvalidArgumentError):
                m.generator = "best"

    def test_without_numpy(self):
        m = self.export
        with_np = m.sample(3, seed=4) if np is not None else None
        with mock.patch.object(_core, "_np", None):
            u8 = m.sample(3, seed=4)
            self.assertIsInstance(u8, bytes)
            self.assertEqual(len(u8), 3 * 784)
            if with_np is not None:
                self.assertEqual(u8, with_np.tobytes())
            f = m.sample(3, seed=4, format="f32")
            self.assertIsInstance(f, list)
            self.assertTrue(all(0.0 <= v <= 1.0 for v in f))
            z = m.latents(3, seed=4)
            self.assertEqual(len(z), 3 * 16)
            self.assertEqual(m.generate(z), u8)
            self.assertEqual(m.sample_steps(3, seed=4)[-len(u8):], u8)
            gran.write_png(self.dir / "nonumpy.png", u8, 3, height=28, width=28, channels=1)
            self.assertEqual((self.dir / "nonumpy.png").read_bytes()[:8], b"\x89PNG\r\n\x1a\n")

    def test_write_png(self):
        imgs = self.export.sample(6, seed=1)
        p = self.dir / "grid.png"
        gran.write_png(p, imgs, columns=3, **({} if np is not None else dict(height=28, width=28, channels=1)))
        data = p.read_bytes()
        self.assertEqual(data[:8], b"\x89PNG\r\n\x1a\n")
        width, height = struct.unpack(">II", data[16:24])
        self.assertEqual((width, height), (3 * 28 + 2 * 2, 2 * 28 + 1 * 2))  # 2 pixels between images
        with self.assertRaises(gran.InvalidArgumentError):
            gran.write_png(self.dir / "x.png", imgs, columns=0, height=28, width=28, channels=1)
        with self.assertRaises(gran.GranIOError):
            gran.write_png(self.dir, imgs, height=28, width=28, channels=1)  # a folder

    def test_errors(self):
        with self.assertRaises(gran.GranIOError) as cm:
            gran.Model.load(self.dir / "missing.safetensors")
        self.assertIn("missing", cm.exception.message)
        self.assertEqual(gran.last_error(), cm.exception.message)
        garbage = self.dir / "garbage.safetensors"
        garbage.write_bytes(b"\x00\x01 definitely not a model " * 10)
        with self.assertRaises(gran.FormatError):
            gran.Model.load(garbage)
        truncated = self.dir / "truncated.safetensors"
        truncated.write_bytes(EXPORT.read_bytes()[:-100])
        with self.assertRaises(gran.FormatError):
            gran.Model.load(truncated)
        if gran.cuda_device_count() == 0:
            with self.assertRaises(gran.DeviceError):
                gran.Model.load(EXPORT, device="cuda")
        for bad in (lambda: self.export.sample(0), lambda: self.export.sample(1, format="rgb565"),
                    lambda: self.export.sample(1, seed=-1), lambda: self.export.latents(0)):
            with self.assertRaises(gran.InvalidArgumentError):
                bad()
        # The class-conditional calls (in both libraries) refuse an unconditional model.
        z = [0.0] * 32
        for bad in (lambda: self.export.sample(2, classes=0), lambda: self.export.sample_steps(2, classes=[0, 1]),
                    lambda: self.export.generate(z, classes=0)):
            with self.assertRaises(gran.InvalidArgumentError) as cm:
                bad()
            self.assertIn("unconditional", cm.exception.message)
        with self.assertRaises(gran.InvalidArgumentError):
            self.export.sample(2, classes=[0, 1, 2])  # neither one nor one per image
        m = gran.Model.load(EXPORT, device="cpu")
        m.close()
        m.close()
        for call in (lambda: m.step, lambda: m.config, lambda: m.sample(1), lambda: m.latents(1),
                     lambda: m.sample(1, classes=0)):
            with self.assertRaises(gran.InvalidHandleError):
                call()
        self.assertIn("closed", repr(m))

    def test_threads_draw_the_same_images(self):
        before = gran.num_threads()
        one = self.export.sample(8, seed=5, format="f32")
        try:
            gran.set_num_threads(2)
            two = self.export.sample(8, seed=5, format="f32")
        finally:
            gran.set_num_threads(before)
        if np is not None:
            np.testing.assert_allclose(two, one, atol=1e-5)
        else:
            self.assertLessEqual(max(abs(a - b) for a, b in zip(one, two)), 1e-5)

    def test_import_with_numpy_disabled(self):
        code = ("import gran; assert not gran.have_numpy(); "
                f"m = gran.Model.load({str(EXPORT)!r}, device='cpu'); "
                "s = m.sample(2, seed=1); assert isinstance(s, bytes) and len(s) == 2 * 784, type(s); "
                "print(gran.LIBRARY_KIND)")
        env = dict(os.environ, GRAN_NO_NUMPY="1", PYTHONPATH=str(PKG_ROOT))
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), gran.LIBRARY_KIND)


class SamplingOnlyTests(unittest.TestCase):
    """libgran_runtime: every call beyond loading and sampling raises SamplingOnlyError, which
    names the call, libgran_runtime and libgran; libgran has them all."""

    def calls(self, model):
        px = bytes(784)
        return {
            "Model.create": lambda: gran.Model.create(device="cpu"),
            "Model.from_config": lambda: gran.Model.from_config(gran.ModelConfig(device="cpu")),
            "Model.train": lambda: model.train(px),
            "Model.save": lambda: model.save("never-written.gran"),
            "Model.export": lambda: model.export("never-written.safetensors"),
            "Model.discriminate": lambda: model.discriminate(px),
            "Model.discriminate (classes)": lambda: model.discriminate(px, classes=0),
            "Model.precision": lambda: model.precision,
            "Model.cancel": lambda: model.cancel(),
            "Dataset": lambda: gran.Dataset.from_pixels(px, 28, 28, 1),
            "Dataset.from_pixels (labels)": lambda: gran.Dataset.from_pixels(px, 28, 28, 1, labels=[0]),
            "Dataset.load_idx": lambda: gran.Dataset.load_idx("never-read.idx"),
            "Evaluator": lambda: gran.Evaluator.train(None),
            "gam": lambda: gran.gam(model, model, None),
            "ProcessGroup": lambda: gran.ProcessGroup.from_env(),
            "set_deterministic": lambda: gran.set_deterministic(True),
        }

    def test_library_kind_decides(self):
        if not CHECKPOINT.is_file():
            self.skipTest("runtime/tests/data is not present")
        with gran.Model.load(CHECKPOINT, device="cpu") as m:
            if not RUNTIME:
                self.assertEqual(gran.LIBRARY_KIND, gran.LIBGRAN)
                self.assertEqual(m.precision, "fp32")  # a call libgran_runtime does not have
                return
            for name, call in self.calls(m).items():
                with self.subTest(call=name):
                    with self.assertRaises(gran.SamplingOnlyError) as cm:
                        call()
                    e = cm.exception
                    self.assertIsInstance(e, gran.GranError)
                    self.assertIsInstance(e, NotImplementedError)
                    self.assertIsNone(e.status)
                    self.assertEqual(e.library, gran.LIBRARY_PATH)
                    self.assertIn("libgran_runtime", str(e))
                    self.assertIn("only samples", str(e))
                    self.assertIn("need libgran", str(e))
                    self.assertIn("GRAN_LIBRARY", str(e))
                    self.assertTrue(str(e).startswith(name.split(".")[0]), str(e))
            with self.assertRaises(gran.SamplingOnlyError) as cm:
                m.train(b"")
            self.assertTrue(str(cm.exception).startswith("Model.train is not available"), str(cm.exception))
            # The model still draws after the refused calls.
            self.assertEqual(len(m.sample(1, seed=1, format="f32")), 1 if np is not None else 784)


if __name__ == "__main__":
    unittest.main()
