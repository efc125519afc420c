"""Rebuilding a trained method without LightningCLI: from a run, a checkpoint or an export.

A run folder holds ``config.yaml`` (the parsed config: every component as
``class_path``/``init_args``), ``checkpoints/*.ckpt`` (trainable weights; frozen components
are rebuilt from their config) and ``reports/``, the ``a2i test`` reports whose scores the model
card shows (:mod:`a2i.pipelines.run_reports`). An exported folder (:func:`save_exported`, diffusers'
``save_pretrained`` layout) holds ``config.yaml`` (the model section only), ``model.safetensors``
(trainable weights only) and a ``README.md`` model card. A config alone is enough when it names
the weights of every trained part (``pretrained``), as the shipped
``configs/tiny/sound2vision_gan_shipped.yaml`` does (:func:`load_config`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import ArgumentParser
from safetensors.torch import load_file

from a2i.config_files import read_config_file, resolve_config
from a2i.errors import ConfigError, WeightsFileError
from a2i.interfaces import AudioToImageModel, FreezableMixin
from a2i.io_utils import atomic_write_text
from a2i.pipelines.card import ModelCard
from a2i.pipelines.run_reports import TestedWeights, recorded_metrics
from a2i.pretrained import load_tensors, save_state_dict

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"


def build_method(model_config: dict[str, Any], seed: int | None = None) -> AudioToImageModel:
    """Instantiate a method from its ``class_path``/``init_args`` config (a run's ``model:``).

    The method records that config as its hyper-parameters, as under ``a2i fit``, so it can be
    exported again. ``seed`` (the run's ``seed_everything``) seeds the construction as ``a2i fit``
    did, so frozen components with random weights (tiny test presets) come out identical; the
    caller's random state is left untouched.
    """
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(AudioToImageModel, "model", required=True, fail_untyped=False)
    try:
        parsed = parser.parse_object({"model": model_config})
    except Exception as error:  # jsonargparse reports every config mistake as one message
        raise ConfigError(f"invalid model config: {_first_line(error)}") from error
    dumped = yaml.safe_load(parser.dump(parsed, skip_none=False))["model"]
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = parser.instantiate_classes(parsed).model
    record_config(model, dumped)
    return model


def record_config(model: object, model_config: dict[str, Any]) -> None:
    """Make ``model_config`` (``class_path``/``init_args``) a LightningModule's hyper-parameters.

    A method records its plain arguments itself but leaves its components out (they are built
    objects); whoever built it from a config records the whole config — components as
    ``class_path``/``init_args`` — as LightningCLI does, with the function Lightning's
    ``load_from_checkpoint`` rebuilds such a config with.
    """
    if hasattr(model, "save_hyperparameters"):  # a LightningModule
        model.save_hyperparameters(
            {
                "_class_path": model_config["class_path"],
                **(model_config.get("init_args") or {}),
                "_instantiator": "lightning.pytorch.cli.instantiate_module",
            }
        )


def frozen_prefixes(model: object) -> tuple[str, ...]:
    """State-dict prefixes of the model's frozen top-level components."""
    children = model.named_children() if isinstance(model, torch.nn.Module) else []
    return tuple(
        f"{name}." for name, child in children if isinstance(child, FreezableMixin) and child.frozen
    )


def trainable_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights a checkpoint or an export must hold: everything but frozen components."""
    prefixes = frozen_prefixes(model)
    return {k: v for k, v in model.state_dict().items() if not k.startswith(prefixes)}


def load_trainable_weights(
    model: torch.nn.Module, state: dict[str, torch.Tensor], source: str
) -> None:
    """Load ``state`` into ``model``; refuse any missing trainable, unknown or misshapen weight.

    Frozen components may be absent (they were rebuilt from the config) but, when present,
    must match too.
    """
    own = model.state_dict()
    prefixes = frozen_prefixes(model)
    missing = [k for k in own if k not in state and not k.startswith(prefixes)]
    unknown = [k for k in state if k not in own]
    misshapen = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in state
        if k in own and state[k].shape != own[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} weights missing (first: {', '.join(missing[:3])})")
    if unknown:
        problems.append(f"{len(unknown)} unknown weights (first: {', '.join(unknown[:3])})")
    if misshapen:
        problems.append(f"{len(misshapen)} of another shape (first: {misshapen[0]})")
    if problems:
        raise ConfigError(
            f"{source} does not fit {type(model).__name__} as configured: {'; '.join(problems)}. "
            "Was it written by another method or with other component sizes?"
        )
    model.load_state_dict(state, strict=False)


def read_checkpoint(path: str | Path, weights_only: bool = True) -> dict[str, Any]:
    """A Lightning checkpoint's contents (with ``weights_only``: :func:`load_tensors`).

    ``weights_only=False`` (the user's explicit ``--weights_only false``) unpickles the file.

    Raises:
        WeightsFileError: Not a tensors-only torch file, or not a checkpoint's dict.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint '{path}' does not exist (or is not a file)")
    if weights_only:
        contents = load_tensors(path)
    else:
        try:
            contents = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:  # pickle, zip and torch errors: not a usable checkpoint
            message = f"cannot read checkpoint '{path}': {_first_line(error)}"
            raise WeightsFileError(path, message) from error
    if not isinstance(contents, dict):
        raise WeightsFileError(
            path, f"'{path}' holds a {type(contents).__name__}, not a Lightning checkpoint"
        )
    return contents


def component_classes(config: Any, prefix: str = "") -> dict[str, str]:
    """``class_path`` of every component of a method's config, by argument name (``generator``)."""
    found: dict[str, str] = {}
    if isinstance(config, dict):
        if "class_path" in config:
            found[prefix] = config["class_path"]
            config = config.get("init_args") or {}
        for key, value in config.items():
            if not key.startswith("_"):
                found.update(component_classes(value, f"{prefix}.{key}" if prefix else key))
    return found


def check_checkpoint_method(checkpoint: dict[str, Any], model: object, source: str) -> None:
    """Refuse a checkpoint written by another method, or with other components, than ``model``'s.

    Inference settings (sampling steps, prompt, …) may differ: the config's apply. A frozen
    component of another class (a GAN config with an LDM checkpoint) is refused even though its
    weights are not in the checkpoint, since the trained part learned for that component.
    """
    stored = checkpoint.get("hyper_parameters") or {}
    expected = f"{type(model).__module__}.{type(model).__qualname__}"
    written_by = stored.get("_class_path")
    if written_by and written_by != expected:
        raise ConfigError(f"{source} was written by {written_by}, but the config builds {expected}")
    built = plain_config(dict(getattr(model, "hparams", {}) or {}))
    trained, configured = component_classes(plain_config(stored)), component_classes(built)
    differing = [
        f"{name} = {trained[name]} (config: {configured[name]})"
        for name in sorted(set(trained) & set(configured))
        if trained[name] != configured[name]
    ]
    if differing:
        raise ConfigError(
            f"{source} was trained with other components than the config builds: "
            f"{'; '.join(differing)}"
        )


def load_checkpoint_into(
    model: torch.nn.Module, path: str | Path, weights_only: bool = True
) -> dict[str, Any]:
    """Check that the checkpoint at ``path`` belongs to ``model``'s method and load its weights."""
    checkpoint = read_checkpoint(path, weights_only)
    check_checkpoint_method(checkpoint, model, f"checkpoint '{path}'")
    load_trainable_weights(model, checkpoint.get("state_dict", {}), f"checkpoint '{path}'")
    return checkpoint


def runs_inside(folder: Path) -> list[Path]:
    """The run folders (``config.yaml`` beside ``checkpoints/``) anywhere under ``folder``."""
    return sorted(
        config.parent
        for config in folder.rglob(CONFIG_FILE)
        if (config.parent / "checkpoints").is_dir()
    )


def find_run(run: str | Path) -> tuple[Path, Path, Path]:
    """``(run folder, config.yaml, checkpoint)`` of a run folder or of a checkpoint inside one.

    A folder uses ``checkpoints/last.ckpt``, or its only checkpoint. A folder that holds runs
    (``make demo``'s ``runs/demo/<time>``) uses the run inside when there is one; the error
    lists them when there are several.
    """
    run = Path(run)
    if run.is_dir() and not (run / CONFIG_FILE).is_file():
        inside = runs_inside(run)
        if len(inside) == 1:
            run = inside[0]
        elif inside:
            listed = "; ".join(str(folder) for folder in inside)
            raise ConfigError(f"{run} holds {len(inside)} runs, pass one of them: {listed}")
    if run.is_file():
        checkpoint = run
        folder = run.parent.parent if run.parent.name == "checkpoints" else run.parent
    elif run.is_dir():
        folder = run
        candidates = sorted((run / "checkpoints").glob("*.ckpt"))
        last = run / "checkpoints" / "last.ckpt"
        if last.exists():
            checkpoint = last
        elif len(candidates) == 1:
            checkpoint = candidates[0]
        else:
            found = ", ".join(p.name for p in candidates) or "none"
            raise ConfigError(
                f"{run}: cannot tell which checkpoint to use (checkpoints/*.ckpt: {found}); "
                "pass the .ckpt file itself"
            )
    else:
        raise ConfigError(f"run '{run}' does not exist (give a run folder or a .ckpt file)")
    config = folder / CONFIG_FILE
    if not config.is_file():
        raise ConfigError(f"{folder} has no {CONFIG_FILE}: is it a folder written by `a2i fit`?")
    return folder, config, checkpoint


def read_config(path: Path) -> dict[str, Any]:
    """A YAML config as a dict, with its ``model`` section checked.

    Raises:
        ConfigError: Not a YAML mapping (:func:`~a2i.config_files.read_config_file`), or no
            model section with a class_path.
    """
    config = read_config_file(path)
    if not isinstance(config.get("model"), dict) or "class_path" not in config["model"]:
        raise ConfigError(f"{path} has no model section with a class_path")
    return config


def load_run(run: str | Path) -> tuple[AudioToImageModel, ModelCard]:
    """The trained method of a run folder or checkpoint, and its model card."""
    folder, config_path, checkpoint = find_run(run)
    config = read_config(config_path)
    model = build_method(config["model"], _seed(config))
    contents = load_checkpoint_into(model, checkpoint)
    card = ModelCard.describe(
        model,
        data=config.get("data"),
        metrics=recorded_metrics(folder, TestedWeights.of(contents, settings_digest(model))),
        source=str(checkpoint),
        seed=_seed(config),
    )
    return model, card


def load_config(path: str | Path) -> tuple[AudioToImageModel, ModelCard]:
    """The method a config builds when it names the weights of every trained part.

    ``path`` is a file or a shipped config's name (:func:`~a2i.config_files.resolve_config`).
    Such a config (e.g. the shipped ``tiny/sound2vision_gan_shipped``) draws with
    no training and no checkpoint. A config that would leave a trainable part with random
    weights is refused, as ``a2i predict`` without ``--ckpt_path`` is.
    """
    path = Path(resolve_config(str(path)))
    if not path.is_file():
        raise ConfigError(f"config '{path}' does not exist (or is not a file)")
    config = read_config(path)
    model = build_method(config["model"], _seed(config))
    # A2IMethod (a layer above) knows which of its parts no `pretrained` value covers.
    untrained = getattr(model, "untrained_parts", list)()
    if untrained:
        raise ConfigError(
            f"{path} names no weights for {', '.join(untrained)}, which would draw from random "
            "weights: give their `pretrained` weights in the config, or load a training run"
        )
    card = ModelCard.describe(model, data=config.get("data"), source=str(path), seed=_seed(config))
    return model, card


def load_exported(directory: str | Path) -> tuple[AudioToImageModel, ModelCard]:
    """The method saved by :func:`save_exported` in ``directory``."""
    directory = Path(directory)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (directory / name).is_file():
            raise ConfigError(f"{directory} has no {name}: was it written by save_pretrained?")
    config = read_config(directory / CONFIG_FILE)
    model = build_method(config["model"], _seed(config))
    load_trainable_weights(model, load_file(str(directory / WEIGHTS_FILE)), str(directory))
    card = ModelCard.describe(model, source=str(directory), data=config.get("data"))
    card.seed = _seed(config)
    return model, card


def save_exported(
    model: AudioToImageModel, directory: str | Path, card: ModelCard, overwrite: bool = False
) -> Path:
    """Write ``config.yaml``, ``model.safetensors`` (trainable weights) and ``README.md``.

    Raises:
        ConfigError: The model was built from Python objects (its config is unknown), or the
            folder already holds an export and ``overwrite`` is False.
    """
    directory = Path(directory)
    hparams = dict(getattr(model, "hparams", {}) or {})
    class_path = hparams.pop("_class_path", None)
    hparams.pop("_instantiator", None)
    if class_path is None:
        raise ConfigError(
            f"{type(model).__name__} was built from Python objects, so its config is unknown; "
            "build it from a config (AudioToImagePipeline.from_run, or a2i.pipelines.loading."
            "build_method) to export it"
        )
    existing = [n for n in (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE) if (directory / n).exists()]
    if existing and not overwrite:
        raise ConfigError(
            f"{directory} already holds {', '.join(existing)}; pass overwrite=True to replace"
        )
    directory.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "model": {"class_path": class_path, "init_args": plain_config(hparams)}
    }
    if card.seed is not None:
        config["seed_everything"] = card.seed
    if card.data is not None:
        config["data"] = card.data
    save_state_dict(trainable_state_dict(model), directory / WEIGHTS_FILE)
    atomic_write_text(directory / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
    described = ModelCard.describe(
        model, data=card.data, metrics=card.metrics, source=card.source or str(directory)
    )
    atomic_write_text(directory / CARD_FILE, described.render())
    return directory


def _seed(config: dict[str, Any]) -> int | None:
    """The run's ``seed_everything`` (an int; ``true`` draws a random seed, not reproducible)."""
    seed = config.get("seed_everything")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def plain_config(value: Any) -> Any:
    """Hyper-parameters as YAML-safe containers (jsonargparse Namespaces become dicts)."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if isinstance(value, dict):
        return {str(k): plain_config(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_config(v) for v in value]
    return value


def settings_digest(model: object) -> str:
    """A digest of the config ``model`` was built from: equal digests draw the same way."""
    hparams = plain_config(dict(getattr(model, "hparams", {}) or {}))
    hparams.pop("_instantiator", None)
    text = json.dumps(hparams, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__
