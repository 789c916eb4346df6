#!/usr/bin/env python3
"""Reference values for weft's optimizers: a NumPy transcription of Optax's update rules, in float32.

Writes optim_reference.inc (C++ arrays read by test/test_optim.cpp): for each optimizer below, the
updates of three steps on the params and gradients of test_optim.cpp's small_params() and
small_grads(k) (k = 1, 2, 3), the params moving by each step's updates as apply_updates moves them.
Adafactor's factored case runs on leaves of rank 1, 2 and 3, whose values are written too.

Each rule follows Optax's source (optax/_src/alias.py, optax/_src/transform.py,
optax/_src/factorized.py, optax/transforms/_adding.py, _clipping.py, _accumulation.py), operation by
operation in float32: rmsprop (scale_by_rms and scale_by_stddev, then the learning rate, then trace),
adagrad (scale_by_rss), lion (scale_by_lion, add_decayed_weights), lamb (scale_by_adam,
add_decayed_weights, scale_by_trust_ratio) and adafactor (scale_by_factored_rms, clip_by_block_rms,
the learning rate, scale_by_param_block_rms, ema, add_decayed_weights, scale(-1)).

Run from anywhere:  python3 test/reference/optim_reference.py        (writes the .inc)
                    python3 test/reference/optim_reference.py check  (fails when it differs)
Needs NumPy (Debian's python3-numpy; `.ci/deps --python`).
"""
import os
import sys

import numpy as np

F = np.float32
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "optim_reference.inc")

# test_optim.cpp's small_params() and small_grads(k), in sorted path order.
PATHS = ["params/Dense_0/bias", "params/Dense_0/kernel", "params/scale"]


def small_params():
    return {
        "params/Dense_0/kernel": np.array([0.5, -1.0, 2.0, 0.25], F).reshape(2, 2),
        "params/Dense_0/bias": np.array([0.1, -0.2], F),
        "params/scale": np.array([1.5, -0.5, 3.0], F),
    }


def small_grads(k):
    s = F(1.0) + F(0.5) * F(k)
    return {
        "params/Dense_0/kernel": np.array([F(0.3) * s, F(-0.7), F(1.1) / s, F(0.0)], F).reshape(2, 2),
        "params/Dense_0/bias": np.array([F(-0.05) * s, F(2.0)], F),
        "params/scale": np.array([F(0.9), F(-1.3) * s, F(0.01)], F),
    }


# Adafactor's factored case: leaves of rank 3 (its second largest axis before its largest), 2 (after
# it) and 1 (not factored); the .inc holds their values.
def pattern(shape, a, b, c):
    n = int(np.prod(shape))
    return np.array([((i * a + c) % b - b // 2) / 4.0 for i in range(n)], F).reshape(shape)


def factored_params():
    return {"params/a": pattern((3, 2, 4), 7, 11, 1), "params/b": pattern((3, 2), 5, 9, 2),
            "params/c": pattern((3,), 3, 7, 0)}


def factored_grads(k):
    return {"params/a": pattern((3, 2, 4), 5, 13, 3 * k), "params/b": pattern((3, 2), 3, 7, k),
            "params/c": pattern((3,), 2, 5, 2 * k)}


def bias_correction(decay, t):
    return F(1) - F(decay) ** F(t)


# ---------------------------------------------------------------- the optimizers: init(params), update(g, state, p)

def rmsprop(lr, decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True, centered=False, momentum=None,
            nesterov=False, bias_correction_on=False):
    decay, eps, lr = F(decay), F(eps), F(lr)

    def init(params):
        return {"count": 0, "nu": {k: np.full_like(v, F(initial_scale)) for k, v in params.items()},
                "mu": {k: np.zeros_like(v) for k, v in params.items()},
                "trace": {k: np.zeros_like(v) for k, v in params.items()}}

    def update(grads, state, params):
        t = state["count"] + 1
        out, nu2, mu2, tr2 = {}, {}, {}, {}
        for k, g in grads.items():
            nu = (F(1) - decay) * (g ** 2) + decay * state["nu"][k]
            mu = (F(1) - decay) * g + decay * state["mu"][k]
            nu_hat, mu_hat = nu, mu
            if bias_correction_on:
                nu_hat = nu / bias_correction(decay, t)
                mu_hat = mu / bias_correction(decay, t)
            s = nu_hat - mu_hat ** 2 if centered else nu_hat
            scaling = F(1) / np.sqrt(s + eps) if eps_in_sqrt else F(1) / (np.sqrt(s) + eps)
            x = F(-lr) * (scaling * g)
            if momentum is not None:
                m = F(momentum)
                tr = x + m * state["trace"][k]
                tr2[k] = tr
                x = x + m * tr if nesterov else tr
            nu2[k], mu2[k], out[k] = nu, mu, x
        return out, {"count": t, "nu": nu2, "mu": mu2, "trace": tr2 or state["trace"]}

    return init, update


def adagrad(lr, initial_accumulator_value=0.1, eps=1e-7):
    lr, eps = F(lr), F(eps)

    def init(params):
        return {"sos": {k: np.full_like(v, F(initial_accumulator_value)) for k, v in params.items()}}

    def update(grads, state, params):
        out, sos2 = {}, {}
        for k, g in grads.items():
            sos = g ** 2 + state["sos"][k]
            inv = np.where(sos > 0, F(1) / np.sqrt(sos + eps), F(0)).astype(F)
            out[k] = F(-lr) * (inv * g)
            sos2[k] = sos
        return out, {"sos": sos2}

    return init, update


def lion(lr, b1=0.9, b2=0.99, weight_decay=1e-3, mask=lambda path: True):
    lr, b1, b2, wd = F(lr), F(b1), F(b2), F(weight_decay)

    def init(params):
        return {"mu": {k: np.zeros_like(v) for k, v in params.items()}}

    def update(grads, state, params):
        out, mu2 = {}, {}
        for k, g in grads.items():
            m = state["mu"][k]
            u = np.sign((F(1) - b1) * g + b1 * m).astype(F)
            if mask(k) and wd != 0:
                u = u + wd * params[k]
            out[k] = F(-lr) * u
            mu2[k] = (F(1) - b2) * g + b2 * m
        return out, {"mu": mu2}

    return init, update


def lamb(lr, b1=0.9, b2=0.999, eps=1e-6, eps_root=0.0, weight_decay=0.0, mask=lambda path: True):
    lr, b1, b2, eps, eps_root, wd = F(lr), F(b1), F(b2), F(eps), F(eps_root), F(weight_decay)

    def init(params):
        return {"count": 0, "mu": {k: np.zeros_like(v) for k, v in params.items()},
                "nu": {k: np.zeros_like(v) for k, v in params.items()}}

    def update(grads, state, params):
        t = state["count"] + 1
        out, mu2, nu2 = {}, {}, {}
        for k, g in grads.items():
            mu = (F(1) - b1) * g + b1 * state["mu"][k]
            nu = (F(1) - b2) * (g ** 2) + b2 * state["nu"][k]
            d = (mu / bias_correction(b1, t)) / (np.sqrt(nu / bias_correction(b2, t) + eps_root) + eps)
            if mask(k) and wd != 0:
                d = d + wd * params[k]
            p_norm = F(np.sqrt(np.sum(params[k].astype(np.float64) ** 2)))
            d_norm = F(np.sqrt(np.sum(d.astype(np.float64) ** 2)))
            ratio = F(1) if p_norm == 0 or d_norm == 0 else p_norm / d_norm
            out[k] = F(-lr) * (d * ratio)
            mu2[k], nu2[k] = mu, nu
        return out, {"count": t, "mu": mu2, "nu": nu2}

    return init, update


def factored_dims(shape, factored, min_dim):
    if not factored or len(shape) < 2:
        return None
    sorted_dims = np.argsort(shape)
    if shape[sorted_dims[-2]] < min_dim:
        return None
    return int(sorted_dims[-2]), int(sorted_dims[-1])


def rms(x):
    return F(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def adafactor(learning_rate=None, min_dim_size_to_factor=128, decay_rate=0.8, decay_offset=0,
              multiply_by_parameter_scale=True, clipping_threshold=1.0, momentum=None, weight_decay_rate=None,
              eps=1e-30, factored=True, weight_decay_mask=lambda path: True):
    eps = F(eps)

    def init(params):
        state = {"count": 0, "v_row": {}, "v_col": {}, "v": {}, "ema": {k: np.zeros_like(v) for k, v in params.items()}}
        for k, p in params.items():
            dims = factored_dims(p.shape, factored, min_dim_size_to_factor)
            if dims is not None:
                d1, d0 = dims
                state["v_row"][k] = np.zeros_like(p.sum(axis=d0))
                state["v_col"][k] = np.zeros_like(p.sum(axis=d1))
                state["v"][k] = np.zeros((1,), F)
            else:
                state["v_row"][k] = np.zeros((1,), F)
                state["v_col"][k] = np.zeros((1,), F)
                state["v"][k] = np.zeros_like(p)
        return state

    def update(grads, state, params):
        c = state["count"]
        decay = F(1) - F(c - decay_offset + 1) ** F(-decay_rate)
        new = {"count": c + 1, "v_row": {}, "v_col": {}, "v": {}, "ema": {}}
        out = {}
        for k, g in grads.items():
            p = params[k]
            g2 = g ** 2 + eps
            dims = factored_dims(g.shape, factored, min_dim_size_to_factor)
            if dims is not None:
                d1, d0 = dims
                r = decay * state["v_row"][k] + (F(1) - decay) * np.mean(g2, axis=d0, dtype=F)
                cc = decay * state["v_col"][k] + (F(1) - decay) * np.mean(g2, axis=d1, dtype=F)
                reduced_d1 = d1 - 1 if d1 > d0 else d1
                row_col_mean = np.mean(r, axis=reduced_d1, keepdims=True, dtype=F)
                row_factor = (r / row_col_mean) ** F(-0.5)
                col_factor = cc ** F(-0.5)
                u = g * np.expand_dims(row_factor, axis=d0) * np.expand_dims(col_factor, axis=d1)
                new["v_row"][k], new["v_col"][k], new["v"][k] = r, cc, np.zeros((1,), F)
            else:
                v = decay * state["v"][k] + (F(1) - decay) * g2
                u = g * v ** F(-0.5)
                new["v_row"][k], new["v_col"][k], new["v"][k] = np.zeros((1,), F), np.zeros((1,), F), v
            if clipping_threshold is not None:
                u = u / max(F(1), rms(u) / F(clipping_threshold))
            if learning_rate is not None:
                u = u * F(learning_rate)
            if multiply_by_parameter_scale:
                u = u * max(rms(p), F(1e-3))
            if momentum is not None:
                u = (F(1) - F(momentum)) * u + F(momentum) * state["ema"][k]
                new["ema"][k] = u
            if weight_decay_rate is not None and weight_decay_mask(k):
                u = u + F(weight_decay_rate) * p
            out[k] = (-u).astype(F)
        if momentum is None:
            new["ema"] = state["ema"]
        return out, new

    return init, update


def run(opt, params, grads_of, steps=3):
    init, update = opt
    state = init(params)
    flat = []
    for k in range(1, steps + 1):
        updates, state = update(grads_of(k), state, params)
        for path in sorted(updates):
            assert updates[path].dtype == F, (path, updates[path].dtype)
            flat.extend(updates[path].reshape(-1).tolist())
        params = {path: (params[path] + updates[path]).astype(F) for path in params}
    return flat


def not_bias(path):
    return not path.endswith("/bias")


CASES = [
    ("rmsprop_default", rmsprop(0.01), "small"),
    ("rmsprop_centered_nesterov", rmsprop(0.01, centered=True, momentum=0.9, nesterov=True), "small"),
    ("rmsprop_bias_corrected", rmsprop(0.01, decay=0.95, eps=1e-6, initial_scale=0.1, eps_in_sqrt=False,
                                       momentum=0.5, bias_correction_on=True), "small"),
    ("adagrad_default", adagrad(0.1), "small"),
    ("lion_decay", lion(0.01, weight_decay=0.1), "small"),
    ("lion_masked", lion(0.01, weight_decay=0.1, mask=not_bias), "small"),
    ("lamb_decay", lamb(0.01, weight_decay=0.01), "small"),
    ("adafactor_default", adafactor(), "small"),
    ("adafactor_factored", adafactor(learning_rate=0.1, min_dim_size_to_factor=2, momentum=0.9,
                                     weight_decay_rate=0.01), "factored"),
]


def fmt(values, ctype="float"):
    suffix = "f" if ctype == "float" else ""
    return "{" + ", ".join(repr(float(v)) + suffix for v in values) + "}"


def render():
    lines = ["// Generated by test/reference/optim_reference.py; do not edit.",
             "// Three steps of each optimizer: the updates of steps 1, 2 and 3, each in sorted path order.",
             "#pragma once", "", "namespace weft_optim_reference {", ""]
    fp = factored_params()
    for path in sorted(fp):
        name = path.split("/")[-1]
        lines.append(f"constexpr float factored_param_{name}[] = {fmt(fp[path].reshape(-1))};")
    for k in range(1, 4):
        fg = factored_grads(k)
        for path in sorted(fg):
            name = path.split("/")[-1]
            lines.append(f"constexpr float factored_grad{k}_{name}[] = {fmt(fg[path].reshape(-1))};")
    lines.append("")
    for name, opt, inputs in CASES:
        if inputs == "small":
            values = run(opt, small_params(), small_grads)
        else:
            values = run(opt, factored_params(), factored_grads)
        assert all(np.isfinite(values)), name
        lines.append(f"constexpr float {name}[] = {fmt(values)};")
    lines += ["", "}  // namespace weft_optim_reference", ""]
    return "\n".join(lines)


def main():
    text = render()
    if len(sys.argv) > 1 and sys.argv[1] == "check":
        with open(OUT) as f:
            committed = f.read()
        if committed != text:
            print(f"{OUT} differs from what optim_reference.py writes; rerun it and commit the result")
            return 1
        print(f"{OUT} is what optim_reference.py writes")
        return 0
    with open(OUT, "w") as f:
        f.write(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
