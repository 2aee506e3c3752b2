"""A PyTorch reference of exactly gran's GRAN model and training step, for side-by-side timing.

Same generator (T drawing steps, shared weights, per-step batch-norm statistics), same
discriminator, same training step (one D update on a real and a generated minibatch, then one G update with
fresh latents, non-saturating BCE-with-logits losses, Adam), same inference (eval-mode batch
norm, no-grad). What a user would write with plain PyTorch: modules, torch.optim.Adam.

With precision "bf16", the forward passes run under torch.autocast(dtype=torch.bfloat16), as
gran's GRAN_PRECISION_BF16 does: each phase's forwards in one region, logits cast to float32,
losses, backward passes and optimizer steps outside it.
"""
import contextlib
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

REFERENCE = {  # image size -> (base, decoder reference channels, discriminator reference channels)
    28: (7, [256, 128], [80, 40]),
    32: (4, [1024, 512, 256], [1024, 512, 256]),
    64: (4, [172, 1376, 688, 344], [1024, 512, 256, 128]),
    128: (4, [172, 1376, 688, 344, 172], [1024, 512, 256, 128, 64]),
}


def scaled(r, s):
    return max(1, int(math.floor(r * s + 0.5)))


class StepBatchNorm(nn.Module):
    """Batch norm with shared scale/shift and one set of running statistics per slot."""

    def __init__(self, c, slots):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c).normal_(1.0, 0.02))
        self.bias = nn.Parameter(torch.zeros(c))
        for s in range(slots):
            self.register_buffer(f"running_mean_{s}", torch.zeros(c))
            self.register_buffer(f"running_var_{s}", torch.ones(c))

    def forward(self, x, mode, slot=0):
        if mode == "frozen":
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.1, 1e-5)
        rm, rv = getattr(self, f"running_mean_{slot}"), getattr(self, f"running_var_{slot}")
        return F.batch_norm(x, rm, rv, self.weight, self.bias, mode == "train", 0.1, 1e-5)


def conv(i, o, bias):
    c = nn.Conv2d(i, o, 5, 2, 2, bias=bias)
    nn.init.normal_(c.weight, 0, 0.02)
    if bias:
        nn.init.zeros_(c.bias)
    return c


def deconv(i, o):
    c = nn.ConvTranspose2d(i, o, 5, 2, 2, output_padding=1, bias=True)
    nn.init.normal_(c.weight, 0, 0.02)
    nn.init.zeros_(c.bias)
    return c


def linear(i, o, bias=True):
    l = nn.Linear(i, o, bias=bias)
    nn.init.normal_(l.weight, 0, 0.02)
    if bias:
        nn.init.zeros_(l.bias)
    return l


class Generator(nn.Module):
    def __init__(self, size, channels, steps, z_dim=100, hidden=100, scale=1.0):
        super().__init__()
        base, dec_ref, _ = REFERENCE[size]
        dec = [scaled(r, scale) for r in dec_ref] + [channels]
        self.steps, self.hidden, self.base, self.c0 = steps, hidden, base, dec[0]
        self.hz_fc, self.hz_bn = linear(z_dim, hidden), StepBatchNorm(hidden, 1)
        self.dec_fc = linear(2 * hidden, dec[0] * base * base)
        self.dec_bn = StepBatchNorm(dec[0] * base * base, steps)
        self.dec_convs = nn.ModuleList(deconv(a, b) for a, b in zip(dec, dec[1:]))
        rev = dec[::-1]
        n = len(rev) - 1
        self.enc_convs = nn.ModuleList(conv(a, b, i + 1 == n) for i, (a, b) in enumerate(zip(rev, rev[1:])))
        self.enc_bns = nn.ModuleList(StepBatchNorm(b, steps) for b in rev[1:-1])
        self.enc_fc = linear(dec[0] * base * base, hidden)
        self.enc_bn = StepBatchNorm(hidden, steps)

    def decode(self, hz, hc, mode, t):
        x = F.relu(self.dec_bn(self.dec_fc(torch.cat([hz, hc], 1)), mode, t))
        x = x.view(-1, self.c0, self.base, self.base)
        for i, c in enumerate(self.dec_convs):
            x = c(x)
            if i + 1 < len(self.dec_convs):
                x = F.relu(x)
        return x

    def encode(self, dc, mode, t):
        x = dc
        for i, c in enumerate(self.enc_convs):
            x = c(x)
            if i < len(self.enc_bns):
                x = self.enc_bns[i](x, mode, t)
            x = F.relu(x)
        return torch.tanh(self.enc_bn(self.enc_fc(x.flatten(1)), mode, t))

    def forward(self, z, mode="train"):
        hz = torch.tanh(self.hz_bn(self.hz_fc(z), mode, 0))
        hc = z.new_zeros(z.shape[0], self.hidden)
        total = None
        for t in range(self.steps):
            dc = self.decode(hz, hc, mode, t)
            if t + 1 < self.steps:
                hc = self.encode(dc, mode, t)
            total = dc.float() if total is None else total + dc  # the canvas sums in float32
        return torch.sigmoid(total)


class Discriminator(nn.Module):
    def __init__(self, size, channels, scale=1.0):
        super().__init__()
        _, _, disc_ref = REFERENCE[size]
        chans = [channels] + [scaled(r, scale) for r in disc_ref]
        self.convs = nn.ModuleList(conv(a, b, False) for a, b in zip(chans, chans[1:]))
        self.bns = nn.ModuleList(StepBatchNorm(b, 1) for b in chans[1:])
        s = size
        for _ in disc_ref:
            s = (s + 1) // 2
        self.fc = linear(chans[-1] * s * s, 100)
        self.out = linear(100, 1, bias=False)

    def forward(self, x, mode="train"):
        # gran's default discriminator activation: leaky ReLU, slope 0.2 (ModelConfig.leaky_relu).
        for c, bn in zip(self.convs, self.bns):
            x = F.leaky_relu(bn(c(x), mode), 0.2)
        return self.out(torch.tanh(self.fc(x.flatten(1)))).view(-1)


class Gran:
    def __init__(self, size=28, channels=1, steps=3, scale=1.0, device="cpu", lr_g=8e-4, lr_d=3.2e-3, precision="fp32"):
        self.g = Generator(size, channels, steps, scale=scale).to(device)
        self.d = Discriminator(size, channels, scale=scale).to(device)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=lr_g, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=lr_d, betas=(0.5, 0.999))
        self.device = device
        self.precision = precision

    def compile(self, mode, backend="inductor"):
        """G and D under torch.compile (the optimizers stay eager). With mode "reduce-overhead"
        (CUDA graphs) each training step marks a new step for the graph trees."""
        kw = {"backend": backend}
        if backend == "inductor":
            kw["mode"] = None if mode == "default" else mode
        self.g = torch.compile(self.g, **kw)
        self.d = torch.compile(self.d, **kw)
        self.compiled = mode

    def step_begin(self):
        if getattr(self, "compiled", None) and hasattr(torch, "compiler"):
            torch.compiler.cudagraph_mark_step_begin()

    def autocast(self):
        if self.precision == "bf16":
            return torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def parameter_counts(self):
        return (sum(p.numel() for p in self.g.parameters()), sum(p.numel() for p in self.d.parameters()))

    def train_step(self, real):
        self.step_begin()
        b = real.shape[0]
        ones = torch.ones(b, device=self.device)
        zeros = torch.zeros(b, device=self.device)
        zd = torch.randn(b, 100, device=self.device)
        zg = torch.randn(b, 100, device=self.device)
        with self.autocast():
            with torch.no_grad():
                fake = self.g(zd, "frozen")
            lr_, lf = self.d(real, "train").float(), self.d(fake, "train").float()
        d_loss = F.binary_cross_entropy_with_logits(lr_, ones) + F.binary_cross_entropy_with_logits(lf, zeros)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        for p in self.d.parameters():
            p.requires_grad_(False)
        with self.autocast():
            fake = self.g(zg, "train")
            g_logits = self.d(fake, "frozen").float()
        g_loss = F.binary_cross_entropy_with_logits(g_logits, ones)
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        for p in self.d.parameters():
            p.requires_grad_(True)
        # gran reads the losses and mean D outputs every step (progress, divergence check).
        with torch.no_grad():
            return torch.stack([d_loss, g_loss, torch.sigmoid(lr_).mean(), torch.sigmoid(lf).mean()]).tolist()

    @torch.no_grad()
    def sample(self, count):
        self.step_begin()
        z = torch.randn(count, 100, device=self.device)
        with self.autocast():
            return self.g(z, "eval").float().cpu()
