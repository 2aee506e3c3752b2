"""The wheel with libgran_runtime inside, as a user gets it: build_wheel.py builds it, a bare
virtual environment (python3 -m venv: no torch, no numpy, no GRAN_LIBRARY, no PYTHONPATH)
installs it with pip --no-index, and the installed package loads a trained model, samples and
refuses to train.

Not part of `unittest discover` (the file name does not start with test): bindings/test.sh runs
it on its own. Run it by hand with
    python -m unittest discover -s bindings/python/tests -p wheel_test.py
Environment: GRAN_RUNTIME_LIBRARY (default <repo>/target/release/libgran_runtime.so).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PKG_ROOT = HERE.parent
REPO = PKG_ROOT.parent.parent
LIBRARY = Path(os.environ.get("GRAN_RUNTIME_LIBRARY") or REPO / "target" / "release" / "libgran_runtime.so")
EXPORT = REPO / "runtime" / "tests" / "data" / "tiny_t3_bf16.safetensors"
CHECKPOINT = REPO / "runtime" / "tests" / "data" / "tiny_t3_checkpoint.safetensors"

# Runs in the venv (and, for comparison, on the source tree): numpy-free, prints one JSON object.
CHECK = r'''
import hashlib, json, os, sys
import gran

export, checkpoint, png = sys.argv[1:4]
out = {"library": gran.LIBRARY_PATH, "kind": gran.LIBRARY_KIND, "module": gran.__file__,
       "numpy": gran.have_numpy(), "version": gran.version(), "package_version": gran.__version__,
       "threads": gran.num_threads(), "cuda": gran.cuda_device_count()}
try:
    import torch  # noqa: F401
    out["torch"] = True
except ImportError:
    out["torch"] = False
sha = lambda b: hashlib.sha256(b).hexdigest()
with gran.Model.load(export) as m:
    c = m.config
    out["config"] = [c.height, c.width, c.channels, c.steps, c.z_dim, c.hidden_dim, c.device]
    out["step"], out["inference_only"], out["has_averaged"] = m.step, m.inference_only, m.has_averaged
    u8 = m.sample(16, seed=7)
    f = m.sample(16, seed=7, format="f32")
    z = m.latents(16, seed=7)
    steps = m.sample_steps(4, seed=7)
    out["u8"] = {"type": type(u8).__name__, "len": len(u8), "min": min(u8), "max": max(u8),
                 "distinct": len(set(u8)), "sha256": sha(u8)}
    out["f32"] = {"type": type(f).__name__, "len": len(f), "min": min(f), "max": max(f)}
    chw = m.sample(16, seed=7, format="u8_chw")  # one channel: the same bytes as HWC
    out["chw_equals_hwc"] = chw == u8
    out["f32_vs_u8"] = max(abs(a * 255 - b) for a, b in zip(f, u8))
    out["z"] = {"len": len(z), "sha256": sha(json.dumps(z).encode()), "finite": all(abs(v) < 1e6 for v in z)}
    out["generate_equals_sample"] = m.generate(z) == u8
    out["prefix"] = m.sample(3, seed=7) == u8[: 3 * 784]
    out["other_seed_differs"] = m.sample(16, seed=8) != u8
    out["steps"] = {"len": len(steps), "last_equals_sample": steps[-4 * 784:] == u8[: 4 * 784]}
    gran.set_num_threads(3)
    f3 = m.sample(16, seed=7, format="f32")
    out["threads_set"] = gran.num_threads()
    out["threads_diff"] = max(abs(a - b) for a, b in zip(f, f3))
    gran.set_num_threads(1)
    gran.write_png(png, u8, 4, height=28, width=28, channels=1)
    errors = {}
    for name, call in (("train", lambda: m.train(u8)), ("create", lambda: gran.Model.create()),
                       ("dataset", lambda: gran.Dataset.from_pixels(u8, 28, 28, 1)),
                       ("save", lambda: m.save(png + ".gran"))):
        try:
            call()
            errors[name] = None
        except gran.SamplingOnlyError as e:
            errors[name] = str(e)
    out["errors"] = errors
    try:
        gran.Model.load(export + ".missing")
    except gran.GranIOError as e:
        out["missing_file"] = e.status_name
with gran.Model.load(checkpoint) as m:
    out["checkpoint"] = {"has_averaged": m.has_averaged, "step": m.step,
                         "sha256": sha(m.sample(4, seed=7))}
print(json.dumps(out))
'''


def bare_env() -> dict:
    """The environment of a user's shell: no GRAN_LIBRARY, no PYTHONPATH, no user site."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GRAN_LIBRARY", "PYTHONPATH", "PYTHONHOME", "GRAN_NO_NUMPY", "VIRTUAL_ENV")
           and not k.startswith("PIP_")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def run(cmd, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


@unittest.skipUnless(LIBRARY.is_file(), f"{LIBRARY} is not built (make runtime)")
class WheelTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="gran-wheel-")
        cls.dir = Path(cls.tmp.name)
        r = run([sys.executable, PKG_ROOT / "build_wheel.py", "--library", LIBRARY, "--out", cls.dir / "wheels"])
        cls.build_output = r.stdout
        cls.wheel = Path(r.stdout.split(" (")[0].strip())
        # A bare environment from the system's python3 (the interpreter running the tests when
        # there is none), with the pip that venv installs.
        python3 = shutil.which("python3") or sys.executable
        run([python3, "-m", "venv", cls.dir / "venv"], env=bare_env())
        cls.python = cls.dir / "venv" / "bin" / "python"
        cls.pip = run([cls.python, "-m", "pip", "install", "--no-index", "--disable-pip-version-check",
                       cls.wheel], env=bare_env(), cwd=cls.dir)
        (cls.dir / "check.py").write_text(CHECK)
        cls.result = json.loads(run([cls.python, cls.dir / "check.py", EXPORT, CHECKPOINT, cls.dir / "venv.png"],
                                    env=bare_env(), cwd=cls.dir).stdout)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_build_output(self):
        self.assertTrue(self.wheel.is_file(), self.build_output)
        size = self.wheel.stat().st_size
        self.assertIn(f"({size} bytes", self.build_output)
        self.assertLess(size, 4 << 20)  # the runtime is small; libgran would be hundreds of MiB
        print(f"\n    wheel: {self.wheel.name}, {size} bytes", file=sys.stderr)

    def test_contents_and_metadata(self):
        sys.path.insert(0, str(PKG_ROOT))
        try:
            import build_wheel
        finally:
            sys.path.remove(str(PKG_ROOT))
        project = build_wheel.read_project(PKG_ROOT / "pyproject.toml")
        version = project["version"]
        m = re.fullmatch(r"gran-([^-]+)-py3-none-([^-]+)\.whl", self.wheel.name)
        self.assertIsNotNone(m, self.wheel.name)
        self.assertEqual(m.group(1), version)
        plat = m.group(2)
        self.assertRegex(plat, r"^(manylinux_2_\d+_\w+|linux_\w+)(\.[\w]+)*$")
        info = f"gran-{version}.dist-info"
        with zipfile.ZipFile(self.wheel) as zf:
            names = zf.namelist()
            self.assertEqual(zf.testzip(), None)
            self.assertIn("gran/libgran_runtime.so", names)
            self.assertEqual(zf.read("gran/libgran_runtime.so"), LIBRARY.read_bytes())
            self.assertEqual({n for n in names if n.endswith(".py")},
                             {f"gran/{p.name}" for p in (PKG_ROOT / "gran").glob("*.py")})
            self.assertFalse([n for n in names if "__pycache__" in n or "tests/" in n])
            self.assertEqual(names[-1], f"{info}/RECORD")
            wheel = zf.read(f"{info}/WHEEL").decode()
            self.assertIn("Wheel-Version: 1.0\n", wheel)
            self.assertIn("Root-Is-Purelib: false\n", wheel)
            self.assertEqual(re.findall(r"^Tag: (.*)$", wheel, re.M), [f"py3-none-{p}" for p in plat.split(".")])
            meta = zf.read(f"{info}/METADATA").decode()
            head = meta.split("\n\n", 1)[0]
            self.assertIn("Metadata-Version: 2.1\n", head)
            self.assertIn("Name: gran\n", head)
            self.assertIn(f"Version: {version}\n", head)
            self.assertIn(f"Requires-Python: {project['requires-python']}", head)
            self.assertIn('Requires-Dist: numpy; extra == "numpy"', head)
            self.assertIn("# gran for Python", meta.split("\n\n", 1)[1])
            rows = [line.split(",") for line in zf.read(f"{info}/RECORD").decode().splitlines()]
            self.assertEqual(sorted(r[0] for r in rows), sorted(names))
            for path, digest, size in rows:
                if path == f"{info}/RECORD":
                    self.assertEqual((digest, size), ("", ""))
                    continue
                data = zf.read(path)
                want = "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                self.assertEqual((digest, int(size)), (want, len(data)), path)
            mode = zf.getinfo("gran/libgran_runtime.so").external_attr >> 16
            self.assertEqual(mode & 0o777, 0o755)

    def test_the_same_inputs_give_the_same_wheel(self):
        r = run([sys.executable, PKG_ROOT / "build_wheel.py", "--library", LIBRARY, "--out", self.dir / "again"])
        again = Path(r.stdout.split(" (")[0].strip())
        self.assertEqual(again.name, self.wheel.name)
        self.assertEqual(again.read_bytes(), self.wheel.read_bytes())

    def test_refuses_a_library_that_is_not_self_contained(self):
        libgran = REPO / "target" / "release" / "libgran.so"
        if not libgran.is_file():
            self.skipTest("libgran is not built")
        r = subprocess.run([sys.executable, PKG_ROOT / "build_wheel.py", "--library", libgran, "--out",
                            self.dir / "refused"], capture_output=True, text=True, timeout=600)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("libtorch", r.stderr)
        self.assertFalse((self.dir / "refused").exists() and list((self.dir / "refused").glob("*.whl")))

    def test_installed_into_a_bare_venv(self):
        r = self.result
        self.assertFalse(r["torch"], "the venv is not bare: torch imports")
        self.assertFalse(r["numpy"], "the venv is not bare: numpy imports")
        site = self.dir / "venv" / "lib"
        self.assertIn(site, Path(r["module"]).parents, r["module"])
        # The bundled library, found next to the package with no GRAN_LIBRARY set.
        self.assertEqual(Path(r["library"]), Path(r["module"]).parent / "libgran_runtime.so")
        self.assertEqual(r["kind"], "libgran_runtime")
        self.assertRegex(r["version"], r"^\d+\.\d+")
        self.assertEqual(r["package_version"], self.wheel.name.split("-")[1])
        self.assertEqual((r["threads"], r["cuda"]), (1, 0))

    def test_samples(self):
        r = self.result
        self.assertEqual(r["config"], [28, 28, 1, 3, 16, 16, "cpu"])
        self.assertEqual((r["step"], r["inference_only"], r["has_averaged"]), (60, True, False))
        u8, f = r["u8"], r["f32"]
        self.assertEqual((u8["type"], u8["len"]), ("bytes", 16 * 28 * 28))
        self.assertEqual(u8["min"], 0)
        self.assertGreater(u8["max"], 128)
        self.assertGreater(u8["distinct"], 32)  # grey levels, not a blank or binary image
        self.assertEqual((f["type"], f["len"]), ("list", 16 * 28 * 28))
        self.assertGreaterEqual(f["min"], 0.0)
        self.assertLessEqual(f["max"], 1.0)
        self.assertLessEqual(r["f32_vs_u8"], 1.0)
        self.assertTrue(r["chw_equals_hwc"])
        self.assertEqual(r["z"]["len"], 16 * 16)
        self.assertTrue(r["z"]["finite"])
        self.assertTrue(r["generate_equals_sample"])
        self.assertTrue(r["prefix"])
        self.assertTrue(r["other_seed_differs"])
        self.assertEqual(r["steps"], {"len": 3 * 4 * 784, "last_equals_sample": True})
        self.assertEqual(r["threads_set"], 3)
        self.assertLessEqual(r["threads_diff"], 1e-5)
        self.assertEqual(r["missing_file"], "GRAN_STATUS_IO")
        self.assertEqual((r["checkpoint"]["has_averaged"], r["checkpoint"]["step"]), (True, 60))
        png = (self.dir / "venv.png").read_bytes()
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")

    def test_training_calls_raise_a_clear_error(self):
        errors = self.result["errors"]
        self.assertEqual(set(errors), {"train", "create", "dataset", "save"})
        for name, message in errors.items():
            self.assertIsNotNone(message, f"{name} did not raise SamplingOnlyError")
            self.assertIn("libgran_runtime", message)
            self.assertIn("only samples", message)
            self.assertIn("need libgran", message)
        self.assertTrue(errors["train"].startswith("Model.train is not available"), errors["train"])

    def test_same_images_as_the_source_tree(self):
        """The installed package draws what the source tree's package draws with the same
        library through GRAN_LIBRARY."""
        env = dict(bare_env(), GRAN_LIBRARY=str(LIBRARY), GRAN_NO_NUMPY="1", PYTHONPATH=str(PKG_ROOT))
        src = json.loads(run([sys.executable, self.dir / "check.py", EXPORT, CHECKPOINT, self.dir / "src.png"],
                             env=env, cwd=self.dir).stdout)
        self.assertEqual(Path(src["module"]).parent, PKG_ROOT / "gran")
        self.assertEqual(src["kind"], "libgran_runtime")
        for key in ("u8", "f32", "z", "steps", "checkpoint", "config"):
            self.assertEqual(src[key], self.result[key], key)
        # The messages name the library file, which differs.
        for name, message in src["errors"].items():
            self.assertEqual(message.replace(src["library"], "LIB"),
                             self.result["errors"][name].replace(self.result["library"], "LIB"), name)
        self.assertEqual((self.dir / "src.png").read_bytes(), (self.dir / "venv.png").read_bytes())


if __name__ == "__main__":
    unittest.main()
