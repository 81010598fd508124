"""unlearnkit: make a trained image classifier forget, and measure how well it forgot.

The public Python API; each function equals one command of the `unlearnkit` CLI.
"""

from ._version import __version__  # noqa: E402,F401
from .api import describe  # noqa: E402
from .data import DataBundle, ForgetSpec, load_dataset  # noqa: E402
from .demo import demo  # noqa: E402
from .engine.rundir import Run, load_run  # noqa: E402
from .errors import NumericalError, UserError  # noqa: E402
from .methods import Method, Unlearned, UnlearnTask, register_method  # noqa: E402
from .models import build_model, register_model  # noqa: E402
from .pipeline import evaluate, forget, import_checkpoint, predict, train  # noqa: E402
from .report import report  # noqa: E402

__all__ = ["DataBundle", "ForgetSpec", "Method", "NumericalError", "Run", "Unlearned", "UnlearnTask", "UserError",
           "build_model", "demo", "describe", "evaluate", "forget", "import_checkpoint", "load_dataset", "load_run",
           "predict", "register_method", "register_model", "report", "train"]
