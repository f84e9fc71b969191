"""AdamP (Heo et al., "AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant
Weights", ICLR 2021), computed for all of a parameter group at once.

The reference implementations (the `adamp` package, timm's copy) loop over parameters and ask
`if cosine_similarity.max() < threshold` for each weight matrix: one GPU-to-host sync per
parameter per step. On efficientnet_b4 (about 400 parameters) those syncs and the thousands of
small kernels made AdamP steps cost more than the forward and backward passes on an H200. Here
the Adam moments use foreach kernels, and the projection runs on all weight matrices laid end to
end in one flat buffer, with segment reductions per channel and per matrix and `torch.where` in
place of the branch: a few dozen kernels per step and no sync. On a CPU, where a sync costs
nothing and the flat buffer's expansions cost more than they save, the matrices go one by one
through timm's projection. The state (step, exp_avg, exp_avg_sq per parameter) is the
reference's, so checkpoints of either load into the other.
"""
from __future__ import annotations

import math

import torch


class AdamP(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 delta: float = 0.1, wd_ratio: float = 0.1, nesterov: bool = False, flat: bool | None = None):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, delta=delta, wd_ratio=wd_ratio, nesterov=nesterov)
        super().__init__(params, defaults)
        self.flat = flat  # None: the flat buffer on CUDA, matrix by matrix elsewhere
        self._layouts: dict = {}

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._step_group(group, params)
        return loss

    def _step_group(self, group: dict, params: list[torch.Tensor]) -> None:
        beta1, beta2 = group["betas"]
        grads = [p.grad for p in params]
        states = [self.state[p] for p in params]
        for p, state in zip(params, states):
            if not state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]
        torch._foreach_mul_(exp_avgs, beta1)
        torch._foreach_add_(exp_avgs, grads, alpha=1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)

        denominators = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denominators, [math.sqrt(1 - beta2 ** s["step"]) for s in states])
        torch._foreach_add_(denominators, group["eps"])
        if group["nesterov"]:
            perturbs = torch._foreach_mul(exp_avgs, beta1)
            torch._foreach_add_(perturbs, grads, alpha=1 - beta1)
        else:
            perturbs = [a.clone() for a in exp_avgs]
        torch._foreach_div_(perturbs, denominators)
        step_sizes = [group["lr"] / (1 - beta1 ** s["step"]) for s in states]

        # Vectors (biases, norms): plain Adam with full weight decay.
        vectors = [i for i, p in enumerate(params) if p.ndim <= 1]
        if vectors:
            vector_params = [params[i] for i in vectors]
            if group["weight_decay"] > 0:
                torch._foreach_mul_(vector_params, 1 - group["lr"] * group["weight_decay"])
            torch._foreach_mul_([perturbs[i] for i in vectors], [step_sizes[i] for i in vectors])
            torch._foreach_sub_(vector_params, [perturbs[i] for i in vectors])
        matrices = [i for i, p in enumerate(params) if p.ndim > 1]
        if not matrices:
            return
        matrix_parts = [params[i] for i in matrices], [grads[i] for i in matrices], [perturbs[i] for i in matrices], [step_sizes[i] for i in matrices]
        if self.flat if self.flat is not None else params[0].is_cuda:
            self._step_matrices(group, *matrix_parts)
        else:
            self._step_matrices_one_by_one(group, *matrix_parts)

    @staticmethod
    def _step_matrices_one_by_one(group: dict, params, grads, perturbs, step_sizes) -> None:
        from timm.optim.adamp import projection

        for p, grad, perturb, step_size in zip(params, grads, perturbs, step_sizes):
            perturb, decay_ratio = projection(p, grad, perturb, group["delta"], group["wd_ratio"], group["eps"])
            if group["weight_decay"] > 0:
                p.mul_(1 - group["lr"] * group["weight_decay"] * decay_ratio)
            p.add_(perturb, alpha=-step_size)

    def _layout(self, matrices: list[torch.Tensor]) -> dict:
        """Row and matrix lengths of the flat buffer, made once per set of matrices."""
        key = tuple((id(p), tuple(p.shape)) for p in matrices)
        layout = self._layouts.get(key)
        if layout is None:
            device = matrices[0].device
            rows = [p.shape[0] for p in matrices]
            row_length = [p[0].numel() for p in matrices]
            sizes = [p.numel() for p in matrices]
            layout = {
                "sizes": sizes,
                "total": sum(sizes),
                "row_lengths": torch.tensor([n for r, n in zip(rows, row_length) for _ in range(r)], device=device),
                "rows_per_matrix": torch.tensor(rows, device=device),
                "matrix_sizes": torch.tensor(sizes, device=device),
                # A projection applies when the largest |cosine| is below delta / sqrt(view width).
                "channel_limit": torch.tensor([1 / math.sqrt(n) for n in row_length], device=device),
                "layer_limit": torch.tensor([1 / math.sqrt(n) for n in sizes], device=device),
            }
            self._layouts = {key: layout}  # one parameter set per group in practice; never grows
        return layout

    def _step_matrices(self, group: dict, params, grads, perturbs, step_sizes) -> None:
        layout = self._layout(params)
        eps, total = group["eps"], layout["total"]
        row_lengths, rows_per_matrix, matrix_sizes = layout["row_lengths"], layout["rows_per_matrix"], layout["matrix_sizes"]

        def flat(tensors):
            return torch.cat([t.reshape(-1) for t in tensors])

        def per_element(values, lengths):
            return torch.repeat_interleave(values, lengths, output_size=total)

        def segment_sum(values, lengths):
            return torch.segment_reduce(values, "sum", lengths=lengths)

        weights, grad, perturb = flat(params), flat(grads), flat(perturbs)
        row_ww = segment_sum(weights * weights, row_lengths)
        row_gg = segment_sum(grad * grad, row_lengths)
        row_gw = segment_sum(grad * weights, row_lengths)
        channel_cosine = row_gw.abs() / (row_gg * row_ww).sqrt().clamp(min=eps)
        channel_max = torch.segment_reduce(channel_cosine, "max", lengths=rows_per_matrix)
        layer_ww = segment_sum(row_ww, rows_per_matrix)
        layer_cosine = segment_sum(row_gw, rows_per_matrix).abs() / (segment_sum(row_gg, rows_per_matrix) * layer_ww).sqrt().clamp(min=eps)
        use_channel = channel_max < group["delta"] * layout["channel_limit"]
        use_layer = ~use_channel & (layer_cosine < group["delta"] * layout["layer_limit"])

        # Remove the radial part of the update: per output channel, or for the whole matrix.
        channel_unit = weights / per_element(row_ww.sqrt() + eps, row_lengths)
        channel_radial = channel_unit * per_element(segment_sum(channel_unit * perturb, row_lengths), row_lengths)
        layer_unit = weights / per_element(layer_ww.sqrt() + eps, matrix_sizes)
        layer_radial = layer_unit * per_element(segment_sum(layer_unit * perturb, matrix_sizes), matrix_sizes)
        radial = torch.where(per_element(use_channel, matrix_sizes), channel_radial,
                             torch.where(per_element(use_layer, matrix_sizes), layer_radial, torch.zeros_like(perturb)))
        perturb = perturb - radial

        decay_ratio = torch.where(use_channel | use_layer, group["wd_ratio"], 1.0)
        keep = 1 - group["lr"] * group["weight_decay"] * decay_ratio
        if len(set(step_sizes)) == 1:  # the usual case; a list would be a host-to-device copy each step
            step = step_sizes[0]
        else:
            step = per_element(torch.tensor(step_sizes, dtype=weights.dtype).to(weights.device, non_blocking=True), matrix_sizes)
        updated = weights * per_element(keep, matrix_sizes) - step * perturb
        torch._foreach_copy_(params, [v.view(p.shape) for v, p in zip(updated.split(layout["sizes"]), params)])
