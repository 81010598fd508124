"""HyperForget: a diffusion hypernetwork that samples unlearned models on demand.

After Lara Rangel, Schoepf, Foster, Krueger and Anwar (2024), "Learning to Forget using Hypernetworks"
(Diffusion HyperForget Networks, DiHyFo-1 / DiHyFo-2), built like G.pt (Peebles et al. 2022, "Learning to
Learn with Generative Models of Neural Network Checkpoints"). Pay once to train; afterwards every request
"forget class c" is answered by sampling parameters in a fraction of a second instead of running an
unlearning method:

    train_hypernet(RUN, DIR)                      # unlearnkit hyperforget train RUN --out DIR
    sample(DIR, forget_class=3, out=OUT, n=10)    # unlearnkit hyperforget sample DIR --forget-class 3 --n 10 --out OUT

Scope: what is generated is the classifier head (the last nn.Linear) on the frozen features of the model,
not the whole network. Why: G.pt's and HyperForget's target nets have 5-8 thousand parameters, and a diffusion
model over parameters needs hundreds to thousands of example checkpoints per request. A resnet18 has 11
million parameters and costs minutes of both CPU cores per Fashion-MNIST epoch, so neither the checkpoints
nor a model of them fit in an hour on 2 cores. Its head has 5,130 (512 x 10 + 10) - G.pt's size - and on
cached features a head trains in under a second, so the whole collection costs one forward pass of the
model, and the hypernetwork trains in minutes. Class forgetting is decided mostly by the head (the
forgotten class's row and the decision boundaries); what head-only forgetting cannot do is change the
features, which still encode the class - the benchmark measures how far that is from retraining.

How it is built (each file says why): `heads` (the generated object, frozen features, evaluation from
features), `collect` (phase 1: per class, heads retrained without it from zero and unlearning trajectories
from the original head, with their per-class losses), `basis` (the coordinates the diffusion runs in: the
principal directions of the collected heads), `diffusion` (DDPM predicting the clean sample, EDM-style
preconditioning, ancestral/DDIM sampling with a temperature), `net` (the denoiser: a residual MLP over the
coordinate chunks by default, G.pt's transformer over chunk tokens as an option; conditioned on the starting
head, the forget request as a class embedding and sinusoidally embedded loss prompts), `hypernet` (the
DiHyFo-1 / DiHyFo-2 conditioning variants, save/load, generation), `train` (phase 2 and the command, resumable),
`sample` (the request command; ordinary run directories). `methods/hyperforget.py` makes it a method of
`unlearnkit forget`, and `bench/hyperforget.py` a bench suite.
"""

from .hypernet import VARIANTS, HyperForget
from .sample import sample
from .train import HyperForgetConfig, summary, train_hypernet

__all__ = ["VARIANTS", "HyperForget", "HyperForgetConfig", "sample", "summary", "train_hypernet"]
