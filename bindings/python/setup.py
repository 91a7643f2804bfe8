"""Builds the starkv Python package: runs SWIG on ../starkv.i and links libstarkv.

Where libstarkv comes from, in this order:
  1. STARKV_LIBRARY (the path of libstarkv.so) or STARKV_LIBRARY_DIR, with STARKV_INCLUDE_DIR
     (default: the include/ directory of this source tree);
  2. pkg-config starkv (an installed starkv, e.g. after `cmake --install`).
STARKV_BUNDLE=1 copies the library into the package (RPATH $ORIGIN): a self-contained install
that works after the build tree is gone. Otherwise the extension's RPATH points at the library's
directory. Needs swig >= 4 and a C compiler; no network.
"""
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
BINDINGS = HERE.parent
ROOT = BINDINGS.parent


def version():
    header = (ROOT / "include" / "starkv" / "starkv.h").read_text()
    parts = [re.search(rf"#define STARKV_VERSION_{p} (\d+)", header).group(1)
             for p in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(parts)


def starkv_location():
    """(include dirs, library dir, library file or None) of the libstarkv to link."""
    include = os.environ.get("STARKV_INCLUDE_DIR", str(ROOT / "include"))
    library = os.environ.get("STARKV_LIBRARY")
    if library:
        return [include], str(Path(library).resolve().parent), str(Path(library).resolve())
    library_dir = os.environ.get("STARKV_LIBRARY_DIR")
    if library_dir:
        return [include], str(Path(library_dir).resolve()), None
    try:
        cflags = subprocess.run(["pkg-config", "--cflags-only-I", "starkv"], check=True,
                                capture_output=True, text=True).stdout
        libdir = subprocess.run(["pkg-config", "--variable=libdir", "starkv"], check=True,
                                capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        raise SystemExit("starkv: libstarkv not found. Set STARKV_LIBRARY_DIR (and "
                         "STARKV_INCLUDE_DIR) or install starkv so that pkg-config finds it.")
    return [f[2:] for f in shlex.split(cflags) if f.startswith("-I")], libdir, None


class BuildWithSwig(build_ext):
    """Generates the wrapper with SWIG, then compiles it against libstarkv."""

    def run(self):
        swig = shutil.which(os.environ.get("SWIG", "swig")) or shutil.which("swig4.0")
        if swig is None:
            raise SystemExit("starkv: swig (>= 4) is needed to build the Python binding")
        includes, library_dir, library = starkv_location()
        work = Path(self.build_temp).resolve()
        work.mkdir(parents=True, exist_ok=True)
        wrapper = work / "native_wrap.c"
        subprocess.run([swig, "-python", "-module", "native", *(f"-I{i}" for i in includes),
                        f"-I{BINDINGS}", "-outdir", str(work), "-o", str(wrapper),
                        str(BINDINGS / "starkv.i")], check=True)
        package_dir = Path(self.build_lib) / "starkv"
        package_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(work / "native.py", package_dir / "native.py")

        ext = self.extensions[0]
        ext.sources = [str(wrapper)]
        ext.include_dirs = includes + [str(BINDINGS)]
        ext.library_dirs = [library_dir]
        ext.libraries = ["starkv"]
        if os.environ.get("STARKV_BUNDLE") == "1":
            source = Path(library) if library else Path(library_dir) / "libstarkv.so"
            soname = _soname(source)
            shutil.copyfile(source.resolve(), package_dir / soname)
            ext.runtime_library_dirs = []
            ext.extra_link_args = ["-Wl,-rpath,$ORIGIN"]
        else:
            ext.runtime_library_dirs = [library_dir]
        super().run()


def _soname(library):
    """The SONAME a program linked against the library will ask for (libstarkv.so.0)."""
    try:
        dynamic = subprocess.run(["objdump", "-p", str(library)], check=True, capture_output=True,
                                 text=True).stdout
        match = re.search(r"SONAME\s+(\S+)", dynamic)
        if match:
            return match.group(1)
    except (OSError, subprocess.CalledProcessError):
        pass
    return library.resolve().name


setup(
    version=version(),
    packages=["starkv"],
    package_dir={"starkv": "starkv"},
    ext_modules=[Extension("starkv._native", sources=[])],
    cmdclass={"build_ext": BuildWithSwig},
    zip_safe=False,
)
