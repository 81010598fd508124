"""A trained HyperForget: the denoiser, its conditioning, and how it is saved and sampled.

Conditioning variants (Lara Rangel, Schoepf, Foster, Krueger, Anwar 2024, "Learning to Forget using
Hypernetworks", DiHyFo-1 and DiHyFo-2 condition on different loss signals; the exact signals below are this
package's reading, *inferred*, not copied from the paper's code, which is not public):

- `dihyfo-1`: two prompts, the forget-set loss and the retain-set loss of the wanted model (plus the starting
  head's two losses, G.pt's "absolute loss conditioning").
- `dihyfo-2`: the per-class loss vector of the wanted model (K prompts, plus the starting head's K): a finer
  signal that says, class by class, what to keep and what to lose.

As in G.pt, each checkpoint is paired with the parameters its run started from, and these are an input:
`scratch` (a zero head: the run retrained the head without the class) or `original` (the model's own head:
the run unlearned from it). Sampling from `scratch` asks for "what retraining gives", from `original` for "what
unlearning the given model gives"; the two are different modes, and naming the start keeps the denoiser from
averaging them.

Prompts are losses on the training features, embedded on a log(1 + loss) scale: forget losses of forgotten
classes reach 10-30 nats, and the log keeps their resolution comparable to retain losses near 0.1.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import UserError
from .basis import HeadBasis
from .collect import STARTS
from .diffusion import Diffusion
from .heads import forget_retain
from .net import NetConfig, build_net

VARIANTS = {"dihyfo-1": "forget-set and retain-set loss prompts",
            "dihyfo-2": "per-class loss prompts"}
WEIGHTS_FILE = "hypernet.safetensors"
META_FILE = "meta.json"


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise UserError(f"unknown variant {variant!r}: choose {' or '.join(VARIANTS)}")
    return variant


def num_prompts(variant: str, num_classes: int) -> int:
    return 4 if variant == "dihyfo-1" else 2 * num_classes


def raw_prompts(variant: str, losses: Tensor, start_losses: Tensor, counts: Tensor, cls: int) -> Tensor:
    """Prompt values (M, P) for heads with per-class train losses `losses` (M, K) whose runs started from
    heads with per-class losses `start_losses` (M, K), for the request "forget `cls`"."""
    if variant == "dihyfo-1":
        f, r = forget_retain(losses, counts, cls)
        f0, r0 = forget_retain(start_losses, counts, cls)
        return torch.stack([f, r, f0, r0], 1)
    return torch.cat([losses, start_losses], 1)


def prompt_losses(variant: str, prompts: Tensor, counts: Tensor, cls: int) -> tuple[Tensor, Tensor]:
    """The (forget loss, retain loss) a prompt asks for."""
    if variant == "dihyfo-1":
        return prompts[:, 0], prompts[:, 1]
    k = len(counts)
    return forget_retain(prompts[:, :k], counts, cls)


def override_prompt(variant: str, prompt: Tensor, counts: Tensor, cls: int, forget_loss: float | None,
                    retain_loss: float | None) -> Tensor:
    """Replace the forget and/or retain loss of a default prompt (1-D); for `dihyfo-2` the other classes'
    losses are scaled together so that their sample-weighted mean is the requested retain loss."""
    p = prompt.clone()
    for name, v in (("--forget-loss", forget_loss), ("--retain-loss", retain_loss)):
        if v is not None and not v >= 0:
            raise UserError(f"{name} {v} must be a loss >= 0 (in nats, e.g. 0.2)")
    if variant == "dihyfo-1":
        if forget_loss is not None:
            p[0] = forget_loss
        if retain_loss is not None:
            p[1] = retain_loss
        return p
    k = len(counts)
    if forget_loss is not None:
        p[cls] = forget_loss
    if retain_loss is not None:
        _, r = forget_retain(p[None, :k], counts, cls)
        keep = torch.ones(k, dtype=torch.bool)
        keep[cls] = False
        p[:k][keep] *= retain_loss / max(float(r[0]), 1e-8)
    return p


def _is_int(v: object, least: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= least


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def meta_problem(meta: object) -> str | None:
    """What is wrong with a hypernetwork's meta.json (None when sampling can trust every field it reads).

    Why a schema and not try/except around sampling: a wrong type (a string for `classes`, a float for
    `diffusion_steps`) otherwise surfaces deep inside sampling as an internal error, after work has started
    (issue 19); checked here, it is a one-line error before anything runs.
    """
    if not isinstance(meta, dict):
        return "not a JSON object"
    if meta.get("kind") != "hyperforget":
        return "kind is not 'hyperforget'"
    if meta.get("variant") not in VARIANTS:
        return f"variant must be one of {', '.join(VARIANTS)}"
    k = meta.get("num_classes")
    checks = [
        (isinstance(meta.get("parent"), str) and bool(meta.get("parent")), "parent must be a path"),
        (_is_int(k, 2), "num_classes must be an integer >= 2"),
        (isinstance(meta.get("classes"), list) and bool(meta.get("classes"))
         and all(_is_int(c) and isinstance(k, int) and c < k for c in meta["classes"]),
         "classes must be a list of class indices"),
        (isinstance(meta.get("class_counts"), list) and len(meta["class_counts"]) == k
         and all(_is_num(c) for c in meta["class_counts"]), "class_counts must be one number per class"),
        (isinstance(meta.get("start_losses"), list) and all(
            isinstance(r, list) and len(r) == k and all(_is_num(x) for x in r) for r in meta["start_losses"]),
         "start_losses must be lists of one number per class"),
        (all(_is_int(meta.get(f), 1) for f in ("diffusion_steps", "sample_steps", "chunk", "rank")),
         "diffusion_steps, sample_steps, chunk and rank must be integers >= 1"),
        (isinstance(meta.get("net"), dict), "net must be an object"),
        (all(_is_num(meta.get(f, 1.0)) for f in ("temperature", "eta")), "temperature and eta must be numbers"),
        (isinstance(meta.get("default_prompts"), dict) and all(
            isinstance(d, dict) and d.get("start") in STARTS and isinstance(d.get("prompts"), dict)
            for d in meta["default_prompts"].values()), "default_prompts must map each class to its start and prompts"),
    ]
    return next((msg for ok, msg in checks if not ok), None)


class HypernetMeta(dict):
    """A hypernetwork's meta.json as a dict (written and read back as the same JSON), with typed reads.

    Why: sampling, `hyperforget sample` and the `hyperforget` method read a dozen of its fields; reading them here,
    once, keeps their types and defaults in one place (as `runmeta.RunMeta` does for a run's meta.json).
    `meta_problem` has checked every field's type before this wraps it, so the properties trust them.
    """

    @property
    def variant(self) -> str:
        return str(self["variant"])

    @property
    def parent(self) -> str:
        """The run directory the hypernetwork was trained for."""
        return str(self["parent"])

    @property
    def num_classes(self) -> int:
        return int(self["num_classes"])

    @property
    def classes(self) -> list[int]:
        """The classes it was trained to forget (indices)."""
        return [int(c) for c in self["classes"]]

    @property
    def class_counts(self) -> list[float]:
        return [float(c) for c in self["class_counts"]]

    @property
    def start_losses(self) -> list[list[float]]:
        """Per-class train losses of each starting head (indexed like `collect.STARTS`)."""
        return [[float(x) for x in row] for row in self["start_losses"]]

    @property
    def chunk(self) -> int:
        return int(self["chunk"])

    @property
    def rank(self) -> int:
        return int(self["rank"])

    @property
    def diffusion_steps(self) -> int:
        return int(self["diffusion_steps"])

    @property
    def sample_steps(self) -> int:
        return int(self["sample_steps"])

    @property
    def net_config(self) -> NetConfig:
        return NetConfig(**self["net"])

    @property
    def eta(self) -> float:
        return float(self.get("eta", 1.0))

    @property
    def temperature(self) -> float:
        return float(self.get("temperature", 1.0))

    def default_start(self, cls: int) -> str:
        """The start ("scratch" or "original") a request to forget `cls` gets unless told otherwise."""
        return str(self["default_prompts"][str(cls)]["start"])

    def default_prompts(self, cls: int) -> dict[str, list[float]]:
        """Start name -> the default prompt values for a request to forget `cls`."""
        return dict(self["default_prompts"][str(cls)]["prompts"])


class HyperForget:
    """The denoiser with what sampling needs: the starting heads, the coordinates, the prompt defaults.

    The diffusion runs on the standardised coefficients of heads in their principal directions
    (`basis.HeadBasis`), cut into tokens of `meta.chunk` values; a generated head is `basis.decode(x0)`.
    """

    def __init__(self, net: nn.Module, meta: dict, original: Tensor, basis: HeadBasis) -> None:
        self.net = net.eval()
        self.meta = HypernetMeta(meta)
        self.original = original
        self.starts = torch.stack([torch.zeros_like(original), original])  # indexed like collect.STARTS
        self.basis = basis
        self.variant = self.meta.variant
        self.counts = torch.tensor(self.meta.class_counts, dtype=torch.float64)
        self.start_losses = torch.tensor(self.meta.start_losses)  # (len(STARTS), K)
        self.diffusion = Diffusion(self.meta.diffusion_steps)

    @staticmethod
    def build_net(meta: dict) -> nn.Module:
        m = HypernetMeta(meta)
        k = m.num_classes
        return build_net(m.rank // m.chunk, m.chunk, k, num_prompts(m.variant, k), m.net_config)

    def start_index(self, start: str | None, cls: int) -> int:
        name = start or self.meta.default_start(cls)
        if name not in STARTS:
            raise UserError(f"--start {name!r}: choose {' or '.join(STARTS)}")
        return STARTS.index(name)

    def default_prompt(self, cls: int, start: int) -> Tensor:
        """The prompt a forget request gets unless told otherwise (see `train.default_prompts`)."""
        prompts = self.meta.default_prompts(cls)
        if STARTS[start] not in prompts:
            raise UserError(f"the hypernetwork has no trajectories of class {cls} that start from {STARTS[start]}: "
                            f"use --start {self.meta.default_start(cls)}")
        return torch.tensor(prompts[STARTS[start]])

    def denoiser(self, request: Tensor, prompts: Tensor, start: Tensor, net: nn.Module | None = None):
        """The network as a function of (x_t, t) for fixed conditions: requests (B,), raw loss prompts (B, P),
        start indices (B,)."""
        net = net or self.net
        tokens = (len(request), -1, self.meta.chunk)
        s = self.basis.encode(self.starts[start]).reshape(tokens)
        p = torch.log1p(prompts.float().clamp(min=0))
        return lambda x, t: net(x.reshape(tokens), t, s, request, p).reshape(x.shape)

    @torch.no_grad()
    def generate(self, request: Tensor, prompts: Tensor, start: Tensor, steps: int, gen: torch.Generator,
                 eta: float | None = None, temperature: float | None = None, batch: int = 256) -> Tensor:
        """Sample one head (K, D+1) per row of (request (B,), prompts (B, P), start (B,))."""
        eta = self.meta.eta if eta is None else eta
        temperature = self.meta.temperature if temperature is None else temperature
        out = [torch.zeros(0, *self.original.shape)]
        shape = (self.basis.rank,)
        for s in range(0, len(request), batch):
            r, p, st = request[s:s + batch], prompts[s:s + batch], start[s:s + batch]
            x0 = self.diffusion.sample(self.denoiser(r, p, st), (len(r), *shape), steps, gen, eta, temperature)
            out.append(self.basis.decode(x0))
        return torch.cat(out)

    def save(self, d: Path) -> None:
        from safetensors.torch import save_file

        tensors = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        tensors.update({"original_head": self.original, **self.basis.tensors()})
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(d / WEIGHTS_FILE))
        (d / META_FILE).write_text(json.dumps(self.meta, indent=2) + "\n")

    @classmethod
    def load(cls, d: str | Path) -> HyperForget:
        """Read a directory written by `unlearnkit hyperforget train` (safetensors only, never pickle)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        p = Path(d)
        fix = "pass a directory written by `unlearnkit hyperforget train`"
        if not (p / WEIGHTS_FILE).is_file() or not (p / META_FILE).is_file():
            raise UserError(f"{p} is not a trained hypernetwork (no {WEIGHTS_FILE} / {META_FILE}): {fix}")
        try:
            meta = json.loads((p / META_FILE).read_text())
            tensors = load_file(str(p / WEIGHTS_FILE))
            problem = meta_problem(meta)
            if problem:
                raise UserError(f"{p / META_FILE}: {problem}: {fix} (or train the hypernetwork again)")
            net = cls.build_net(meta)
            net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")}, strict=True)
            original, basis = tensors["original_head"], HeadBasis.from_tensors(tensors)
            return cls(net, meta, original, basis)
        except (json.JSONDecodeError, SafetensorError, OSError, AssertionError, KeyError, TypeError, ValueError,
                RuntimeError) as err:
            raise UserError(f"{p} is corrupt or not a hypernetwork ({type(err).__name__}): {fix}") from err
