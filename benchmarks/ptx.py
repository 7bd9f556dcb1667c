"""The product kernel's PTX, read without a GPU: each tile's generated source compiled
for compute capability 9.0 (``numba.cuda.compile_ptx``; needs libNVVM, which the
``cuda`` extra's toolkit brings), and the instructions of its inner loop (the basic
block with the most FMAs: one K strip) counted by kind. One JSON line per tile:

    python benchmarks/ptx.py [--tiles small_prefetch large_prefetch] [--dtype float32]
"""

import argparse
import json
import os
import re
import sys
import types

# Compile without a GPU: register npvae.kernels.cuda by hand (its __init__ asks for one).
import npvae.kernels as kernels

package = types.ModuleType("npvae.kernels.cuda")
package.__path__ = [os.path.join(os.path.dirname(kernels.__file__), "cuda")]
sys.modules["npvae.kernels.cuda"] = package

from numba import cuda  # noqa: E402
from numba import types as nt  # noqa: E402

from npvae.kernels.cuda import gemm  # noqa: E402

KINDS = {"fma": r"\bfma\.rn\.f(32|64)", "fma_f64": r"\bfma\.rn\.f64", "ld_shared": r"\bld\.shared",
         "st_shared": r"\bst\.shared", "local": r"\b(ld|st)\.local", "int64_mul": r"\b(mul|mad)\.lo\.s64",
         "branch": r"\bbra\b", "barrier": r"\bbar\.sync"}


def blocks_of(ptx):
    """The PTX's basic blocks, as lists of instruction lines."""
    out, current = [], []
    for line in ptx.splitlines():
        line = line.strip()
        if re.match(r"^\$L__BB\d+_\d+:", line):
            out.append(current)
            current = []
        elif line and not line.startswith(("//", ".", "{", "}")) and not line.endswith(":"):
            current.append(line)
    return out + [current]


def counts(lines):
    return {kind: sum(1 for line in lines if re.search(pattern, line)) for kind, pattern in KINDS.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", nargs="+", default=["small_prefetch", "large_prefetch"], choices=sorted(gemm.TILES))
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    real = getattr(nt, args.dtype)
    matrix, vector = nt.Array(real, 2, "A"), nt.Array(real, 1, "A")
    signature = (matrix, matrix, matrix, real, vector, matrix, nt.int64, real, matrix, matrix, nt.int64, real, vector,
                 nt.Array(real, 3, "C"))
    for tile in args.tiles:
        kernel = gemm.kernel(args.dtype, tile, False, False, None, False, False)
        ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=(9, 0))
        strip = max(blocks_of(ptx), key=lambda lines: counts(lines)["fma"])
        bm, bn, bk, tm, tn, _ = gemm.TILES[tile]
        print(json.dumps({"bench": "ptx_product", "tile": tile, "dtype": args.dtype, "strip_fma_expected": bk * tm * tn,
                          "strip_instructions": len(strip), **{f"strip_{k}": v for k, v in counts(strip).items()},
                          "kernel": counts(ptx.splitlines())}))


if __name__ == "__main__":
    main()
