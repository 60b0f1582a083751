"""What a forward and a backward pass do, layer by layer: shapes, im2col sizes, parameters,
multiply-adds, time, and the path the backward takes (``--trace`` / ``trace=True``).

    details = {}
    grad_cam(model, x, details=details, trace=True)   # prints the tables below
    python -m vggnp.cam IMG --trace                   # the same, on stderr
    python -m vggnp.trace                             # the numbers of docs/math.md

Counts come from the shapes alone: a conv layer with a (KH, KW, C, F) kernel and an
(N, H', W', F) output does N*H'*W' * KH*KW*C*F multiply-adds (its im2col matrix is
(N*H'*W', KH*KW*C), its kernel (KH*KW*C, F)); a dense layer (D, M) does N*D*M.
"""

import numpy as np

from .layers import Conv2D, Dense


def layer_facts(layer, output_shape):
    """(parameters, multiply-adds, im2col matrix shape or None) of a layer's forward.
    Parameters are the arrays in ``layer.weights``, as Keras counts them: no bias for
    use_bias=False (vggnp's zero bias is bookkeeping), BatchNorm's moving statistics too."""
    params = sum(w.size for w in layer.weights)
    if isinstance(layer, Conv2D):
        kh, kw, c, f = layer.w.shape
        rows = int(np.prod(output_shape[:3]))
        return params, rows * kh * kw * c * f, (rows, kh * kw * c)
    if isinstance(layer, Dense):
        d, m = layer.w.shape
        return params, output_shape[0] * d * m, None
    return params, 0, None


def parameter_count(model):
    """Every weight and bias of the model (VGG16: 138,357,544)."""
    return sum(layer_facts(layer, (0, 0, 0, 0))[0] for layer in model.layers)


def _shape(shape):
    return "x".join(str(s) for s in shape)


def forward_table(rows, itemsize=4):
    """rows: model.forward's trace. Returns the table as text, with totals; a graph's rows
    (``Graph.forward``) also say the tensors each node takes and, where its output feeds
    several nodes (whose gradients add on the way back), how many."""
    graph = bool(rows) and "inputs" in rows[0]
    lines = [f"{'forward':<28}{'output':>16}{'im2col matrix':>22}{'params':>13}"
             f"{'multiply-adds':>17}{'ms':>9}" + ("  inputs (fan-out)" if graph else "")]
    total_params = total_madds = total_ms = 0
    for row in rows:
        params, madds, col = layer_facts(row["layer"], row["output"])
        col_text = f"{_shape(col)} {col[0] * col[1] * itemsize / 2**20:.1f}MB" if col else ""
        lines.append(f"{row['layer'].name:<28}{_shape(row['output']):>16}{col_text:>22}"
                     f"{params:>13,}{madds:>17,}{row['ms']:>9.1f}" + (_wiring(row) if graph
                                                                       else ""))
        total_params, total_madds, total_ms = (total_params + params, total_madds + madds,
                                               total_ms + row["ms"])
    lines.append(f"{'total':<28}{'':>16}{'':>22}{total_params:>13,}{total_madds:>17,}"
                 f"{total_ms:>9.1f}")
    return "\n".join(lines)


def _wiring(row):
    """'  <- a, b (feeds 2)': a graph node's inputs, and its fan-out when more than one."""
    fan_out = f" (feeds {row['fan_out']})" if row["fan_out"] > 1 else ""
    return f"  <- {', '.join(row['inputs'])}{fan_out}"


def backward_table(rows, model, stop=None, start_sum=None):
    """rows: model.backward's trace. The layers visited (gradient w.r.t. each one's input:
    shape, L2 norm, time), then where it stopped (``stop``: the layer whose output's
    gradient the method needs, e.g. Grad-CAM's) and the layers it did not run.
    start_sum: for a relevance pass (LRP), the relevance it starts with; each layer's row
    then shows the relevance sum it passes down and what it absorbed (in - out: a bias's
    share, epsilon's, or relevance lost), instead of the norm."""
    relevance = start_sum is not None
    lines = [f"{'backward':<28}{'gradient':>16}"
             + (f"{'relevance sum':>15}{'absorbed':>12}" if relevance
                else f"{'norm':>13}") + f"{'ms':>9}"]
    for row in rows:
        if relevance:  # what it passes down, and what it got less that
            numbers = f"{row['sum']:>15.6g}{row['arriving'] - row['sum']:>12.4g}"
        else:
            numbers = f"{row['norm']:>13.4g}"
        lines.append(f"{row['layer'].name:<28}{_shape(row['gradient']):>16}{numbers}"
                     f"{row['ms']:>9.1f}")
    visited = {row["layer"].name for row in rows}
    skipped = [name for name in model.names if name not in visited]
    stopped = f", stopped at the output of {stop} (the gradient needed)" if stop else ""
    lines.append(f"visited {len(rows)} layers{stopped}; not run {len(skipped)}: "
                 + (", ".join(skipped) if skipped else "none"))
    return "\n".join(lines)


def markdown_numbers(model):
    """The numbers docs/math.md quotes, from a real forward pass of ``model`` (batch 1):
    a Markdown table per layer, then the totals. The values do not depend on the weights."""
    rows = []
    model.forward(np.zeros((1, *model.input_size, 3), model.dtype), trace=rows)
    lines = ["| layer | output | im2col matrix | parameters | multiply-adds |",
             "|---|---|---|---|---|"]
    largest = (0, None, None)
    total_params = total_madds = 0
    for row in rows:
        params, madds, col = layer_facts(row["layer"], row["output"])
        total_params, total_madds = total_params + params, total_madds + madds
        if col and col[0] * col[1] > largest[0]:
            largest = (col[0] * col[1], row["layer"].name, col)
        col_text = f"{col[0]:,} x {col[1]:,}" if col else ""
        lines.append(f"| {row['layer'].name} | {' x '.join(map(str, row['output'][1:]))} | "
                     f"{col_text} | {params:,} | {madds:,} |")
    size, name, col = largest
    lines += ["", f"Total: {total_params:,} parameters ({total_params * 4 / 1e6:.1f} MB in "
                  f"float32) and {total_madds:,} multiply-adds per {model.input_size[0]}x"
                  f"{model.input_size[1]} image ({2 * total_madds / 1e9:.1f} GFLOP). The "
                  f"largest im2col matrix is {name}'s, {col[0]:,} x {col[1]:,} = "
                  f"{size * 4 / 2**20:.1f} MiB in float32: the fast path never builds it (nine "
                  f"shifted GEMMs instead)."]
    return "\n".join(lines)


def print_trace(steps, model, itemsize=4, file=True):
    """Print both tables of a traced run; steps = {"forward": rows, "backward": rows,
    "stop": the layer the backward stopped at, if any}.
    file: True for stdout, or an open file (the CLI passes stderr)."""
    print(forward_table(steps["forward"], itemsize),
          backward_table(steps["backward"], model, steps.get("stop"), steps.get("start_sum")),
          sep="\n\n", file=None if file is True else file)
