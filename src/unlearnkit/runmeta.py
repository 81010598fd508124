"""A run directory's meta.json, typed: what a run is (its kind, data, model, recipe, forget request, method).

`RunMeta` is the dict that meta.json holds, so a run directory is written and read back exactly as before
(same keys, same JSON), with typed read access on top: `meta.classes`, `meta.data.spec`, `meta.forget_spec`,
`meta.method_name` ... instead of `meta["classes"]`, `meta["data"]["spec"]` and `meta.get("kind") == "forget"`
spread over the code with their defaults repeated at each read. Every default lives here, once (a meta.json
written by an older version lacks `kind`, `seed`, `split_seed`, ...).

Where it is built: `data_ref()` for the data part, `pipeline.train` / `pipeline.import_checkpoint` for a trained
or imported model, `forgetting.forget_meta` for an unlearned one. Where it is checked: `engine.rundir.load_run`
refuses a malformed file with a one-line error before anything here reads it, so the properties trust their
fields' types.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from .data import ForgetSpec

DEFAULT_VAL_FRACTION = 0.1


@dataclass(frozen=True)
class DataRef:
    """Which dataset a run used and how its split was drawn (meta.json's `data`)."""

    spec: str
    root: str | None = None
    image_size: int | None = None
    val_fraction: float = DEFAULT_VAL_FRACTION
    split_seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def data_ref(spec: str, data_root: str | Path | None, image_size: int | None, val_fraction: float,
             split_seed: int = 0) -> dict[str, Any]:
    """meta.json's `data` for a dataset loaded from `spec` (and `data_root`, `image_size`)."""
    return DataRef(spec, str(data_root) if data_root else None, image_size, val_fraction, split_seed).to_dict()


class RunMeta(dict):
    """meta.json as a dict, with typed reads. `RunMeta.of(d)` wraps a plain dict (the same object when it is one)."""

    @classmethod
    def of(cls, meta: dict) -> RunMeta:
        return meta if isinstance(meta, RunMeta) else cls(meta)

    @property
    def kind(self) -> str:
        """"train", "import" or "forget" (files written before `kind` existed are trained runs)."""
        return str(self.get("kind", "train"))

    @property
    def is_forget(self) -> bool:
        return self.kind == "forget"

    @property
    def arch_name(self) -> str:
        return str(self["arch"]["name"])

    @property
    def arch_kwargs(self) -> dict[str, Any]:
        return dict(self["arch"].get("kwargs") or {})

    @property
    def num_classes(self) -> int:
        return int(self["num_classes"])

    @property
    def classes(self) -> list[str]:
        return list(self["classes"])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self["input_shape"]
        return int(c), int(h), int(w)

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(self["normalization"]["mean"])

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(self["normalization"]["std"])

    def new_model(self) -> nn.Module:
        """A freshly initialised model of this run's architecture, classes, input shape and normalisation."""
        from .models import build_model

        return build_model(self.arch_name, self.num_classes, self.input_shape, self.mean, self.std, **self.arch_kwargs)

    @property
    def data(self) -> DataRef:
        d = self["data"]
        return DataRef(d["spec"], d.get("root"), d.get("image_size"),
                       float(d.get("val_fraction", DEFAULT_VAL_FRACTION)), int(d.get("split_seed", 0)))

    @property
    def recipe(self) -> dict[str, Any]:
        """The training recipe (`train`), which `retrain` repeats."""
        return dict(self.get("train") or {})

    @property
    def seed(self) -> int:
        return int(self.get("seed", 0))

    @property
    def poison(self) -> dict[str, Any] | None:
        """The poison spec of a backdoored run (None for a clean one)."""
        return self.get("poison") or None

    @property
    def forget_spec(self) -> ForgetSpec | None:
        from .data import ForgetSpec

        f = self.get("forget")
        return ForgetSpec.from_dict(f) if f else None

    @property
    def scenario(self) -> str | None:
        """A forget run's scenario ("class", "random", "indices", "backdoor"); None for any other run."""
        return self.get("scenario") if self.is_forget else None

    @property
    def method_name(self) -> str | None:
        """The method a forget run used (only forget runs name one)."""
        return (self.get("method") or {}).get("name")

    @property
    def method_config(self) -> dict[str, Any]:
        return dict((self.get("method") or {}).get("config") or {})

    @property
    def parent(self) -> str | None:
        """The run a forget run started from (its resolved path)."""
        return self.get("parent") if self.is_forget else None

    @property
    def seconds(self) -> float | None:
        s = self.get("seconds")
        return None if s is None else float(s)

    @property
    def recipe_known(self) -> bool:
        """Whether `recipe` is how the model at the root of this run's chain was trained: always for a trained
        run; for an imported one only when `import` was told its epochs (else the recipe is our default, and a
        method's default budget must not be capped by it)."""
        return bool(self.get("recipe_known", self.kind == "train"))

    @property
    def training_seconds(self) -> float | None:
        """How long training the model at the root of this run's chain took: what retraining costs, roughly (a
        trained run's own `seconds`; a forget run carries its input's; None for an imported model)."""
        s = self.seconds if self.kind == "train" else self.get("training_seconds") if self.is_forget else None
        return None if s is None else float(s)

    @property
    def training_machine(self) -> str | None:
        """The machine `training_seconds` was measured on (`engine.device.machine`; None for runs made before it
        was recorded, and for imported models)."""
        return self.get("machine") if self.kind == "train" else self.get("training_machine") if self.is_forget \
            else None

    @property
    def reference(self) -> str | None:
        """"reference" when the retrained model lives inside the run, else the path of the one it was compared with."""
        return self.get("reference")
