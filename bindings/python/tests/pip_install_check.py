"""`pip install` of the Python binding from a copy of the source tree into a fresh venv, offline.

Copies include/ and bindings/ of the source tree to a work directory, creates a venv that sees the
running interpreter's packages (setuptools, wheel: no downloads), pip-installs bindings/python
with the library bundled in (STARKV_BUNDLE=1), then runs samples/python/basic.py with the venv's
interpreter from outside any source tree and, when the C sample is given, compares the outputs.

  python pip_install_check.py --source <repo> --library <libstarkv.so> --work <dir>
                              [--reference <C sample executable>]
"""
import argparse
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", required=True, type=Path)
    parser.add_argument("--library", required=True, type=Path)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--reference", default="")
    args = parser.parse_args()

    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    tree = work / "src"
    for part in ("include", "bindings"):
        shutil.copytree(args.source / part, tree / part,
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    env_dir = work / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"

    env = dict(os.environ, STARKV_LIBRARY=str(args.library.resolve()),
               STARKV_INCLUDE_DIR=str(tree / "include"), STARKV_BUNDLE="1",
               PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    subprocess.run([str(python), "-m", "pip", "install", "--no-build-isolation", "--no-deps",
                    "-q", str(tree / "bindings" / "python")], check=True, env=env, cwd=work)

    run_dir = work / "run"
    run_dir.mkdir()
    out = subprocess.run([str(python), str(args.source / "samples" / "python" / "basic.py")],
                         check=True, env=env, cwd=run_dir, capture_output=True, text=True).stdout
    print(out, end="")
    where = subprocess.run([str(python), "-c", "import starkv; print(starkv.__file__)"],
                           check=True, env=env, cwd=run_dir, capture_output=True, text=True)
    if not where.stdout.startswith(str(env_dir)):
        sys.exit(f"imported starkv from {where.stdout.strip()}, not the venv")
    if args.reference:
        expected = subprocess.run([args.reference], check=True, capture_output=True,
                                  text=True).stdout
        if out != expected:
            sys.exit(f"the installed package's sample differs from the C sample:\n{expected}")
        print("same output as the C sample")
    shutil.rmtree(work / "src", ignore_errors=True)


if __name__ == "__main__":
    main()
