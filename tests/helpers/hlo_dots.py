"""Reading the compiled HLO of a gradient: which dots XLA:CPU runs with bfloat16 operands."""

import re

import jax


def dot_operand_dtypes(fn, *args, argnums=(0, 1, 2)) -> list[str]:
    """The operand dtype of every dot in the compiled gradient of fn: "bf16" or "f32"."""
    hlo = jax.jit(jax.grad(fn, argnums=argnums)).lower(*args).compile().as_text()
    out = []
    for computation in hlo.split("\n}"):  # names are local to a computation
        types = dict((name, dtype) for name, dtype in
                     re.findall(r"%([\w.\-]+) = (bf16|f32|pred|s32)\[", computation))
        types.update(re.findall(r"([\w.\-]+): (bf16|f32)\[", computation.split("{", 1)[0]))
        for lhs, rhs in re.findall(r" dot\(%([\w.\-]+), %([\w.\-]+)\)", computation):
            out.append("bf16" if {types.get(lhs), types.get(rhs)} == {"bf16"} else "f32")
    return out
