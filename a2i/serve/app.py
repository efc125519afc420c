"""The page of ``a2i serve``: a gradio app over :mod:`a2i.serve.models`.

Two tabs. *Draw* takes one sound (file or microphone) through one model, with a widget for each
control the model supports (others are hidden) and shows the spectrogram of what it heard and one
image per seed. *Compare methods* runs one sound through several models side by side. Requests
are queued and run one at a time. A file a2i cannot read is reported on the page in one line,
the :mod:`a2i.errors` message ``a2i predict`` prints for it; unexpected failures show gradio's
generic error (the traceback stays in the server's console).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # never phone home, even once

import gradio as gr

from a2i.errors import A2IError, AudioDecodeError
from a2i.serve.models import (
    Controls,
    ModelShelf,
    describe_model,
    draw,
    spectrogram_image,
)

MAX_IMAGES = 8
QUEUE_SIZE = 64
"""Requests waiting beyond this are refused with gradio's "queue full" message."""
CACHE_SWEEP = (3600, 3600)
"""Every hour, delete the uploads and drawings older than an hour: a server that runs for weeks
does not fill its disk (all are deleted when it stops, see :func:`a2i.serve.server.serving`)."""
GAIN_RANGE_DB = (-30.0, 20.0)
OFFLINE_BUTTONS = ["download", "fullscreen"]
"""Image buttons, without gradio's "share" (it uploads to the Hugging Face Hub)."""
WIDGET_CONTROLS = ("gain", "mix", "image_blend", "prompt", "guidance_scale", "num_inference_steps")
"""The controls with a widget (group), shown only for models that support them; each is the
``elem_id`` of its widget in the page."""
INPUT_COLUMN_PX = 260
"""Narrowest input column: three columns fit side by side from a 1366 px wide window."""
SPECTROGRAM_PX = 200
PAGE_CSS = """
#compare_gallery .thumbnail-item { aspect-ratio: auto; height: auto; }
#compare_gallery .thumbnail-item img { height: auto; max-height: 180px; }
"""
"""Rows of the comparison as wide as their strips: gradio's gallery cells are square, so a
strip of seeds in a full-width cell was as tall as the column is wide (one row per screen)."""
DESCRIPTION = (
    "Upload a sound or record one: the model draws what it hears, one image per seed. "
    "Everything runs on this machine, through the same pipeline as `a2i predict`."
)


MARKUP = frozenset("\\`*_{}[]()#+-.!|<>~$&")
"""Characters Markdown, HTML or gradio's LaTeX delimiters may act on."""


def upload_error(error: A2IError, uploads: list[str | None]) -> str:
    """The error's one line, with gradio's temporary upload paths shortened to the file names."""
    message = str(error)
    for path in uploads:
        if path:
            message = message.replace(path, Path(path).name)
    return f"⚠️ {as_literal_markdown(message)}"


def as_literal_markdown(text: str) -> str:
    r"""``text`` shown as written by a Markdown status line: its markup characters as entities.

    File names are the user's: ``my_*take*.wav`` would show in italics, ``[x](y).wav`` as a link,
    and gradio reads ``$…$`` and ``\(…\)`` as LaTeX (so a backslash escape is no way out).
    """
    return "".join(f"&#{ord(char)};" if char in MARKUP else char for char in text)


def _controls(
    num_images: float,
    seed: float | None,
    crop: str,
    gain_db: float,
    mix_with: str | None,
    mix_gain_db: float,
    image: str | None,
    image_weight: float,
    prompt: str,
    guidance_scale: float | None,
    num_inference_steps: float | None,
) -> Controls:
    return Controls(
        num_images=int(num_images),
        seed=int(seed or 0),
        crop=crop,  # type: ignore[arg-type]  # a Radio of the three crops
        gain_db=float(gain_db),
        mix_with=mix_with,
        mix_gain_db=float(mix_gain_db),
        image=image,
        image_weight=float(image_weight),
        prompt=prompt or None,
        guidance_scale=guidance_scale or None,  # 0: the model's own
        num_inference_steps=int(num_inference_steps or 0) or None,
    )


def sound_inputs(prefix: str) -> tuple[gr.File, gr.Audio, gr.State]:
    """A file upload, a microphone recorder and the sound last given through either.

    The upload is a file box rather than an audio player so that any file reaches a2i's reader
    (a video, or a file that is not audio at all, which is then refused with a2i's message).
    """
    upload = gr.File(
        label="Sound file (any audio or video format)", elem_id=f"{prefix}upload", height=120
    )
    record = gr.Audio(
        sources=["microphone"],
        type="filepath",
        label="… or record one",
        elem_id=f"{prefix}record",
        buttons=["download"],
    )
    return upload, record, gr.State(None)


def image_gallery(label: str, columns: int, elem_id: str) -> gr.Gallery:
    """A read-only gallery of whole PNG images, downloadable without the network."""
    return gr.Gallery(
        label=label,
        columns=columns,
        format="png",
        buttons=OFFLINE_BUTTONS,
        elem_id=elem_id,
        interactive=False,
        object_fit="contain",
    )


def build_app(shelf: ModelShelf, selected: list[str]) -> gr.Blocks:
    """The demo page over ``shelf``; ``selected`` are the models shown first (and compared).

    Launch it with ``css=PAGE_CSS``.
    """
    with gr.Blocks(title="a2i: sound to image", delete_cache=CACHE_SWEEP) as app:
        gr.Markdown(f"## a2i — images from sound\n{DESCRIPTION}")
        with gr.Tab("Draw", id="draw"):
            draw_tab(shelf, selected[0])
        with gr.Tab("Compare methods", id="compare"):
            compare_tab(shelf, selected)
    app.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return app


def draw_tab(shelf: ModelShelf, first: str) -> None:
    """One model, one sound, every control the model supports; spectrogram and images.

    Three columns, so that a 1366×768 screen shows the Draw button, the first controls and the
    images at once: the sound and Draw, the controls, what was drawn.
    """
    first_supports = shelf.pipeline(first).model.supports

    def visible(control: str) -> bool:
        return control in first_supports

    with gr.Row():
        with gr.Column(scale=4, min_width=INPUT_COLUMN_PX):
            model = gr.Dropdown(shelf.choices, value=first, label="Model", elem_id="model")
            upload, record, sound = sound_inputs("")
            run = gr.Button("Draw", variant="primary", elem_id="draw-button")
            model_info = gr.Markdown(
                describe_model(shelf.pipeline(first), shelf.entries[first].path)
            )
        with gr.Column(scale=3, min_width=INPUT_COLUMN_PX):
            num_images = gr.Slider(1, MAX_IMAGES, value=4, step=1, label="Images (one per seed)")
            seed = gr.Number(0, precision=0, label="First seed", minimum=0, elem_id="seed")
            gain = gr.Slider(
                *GAIN_RANGE_DB,
                value=0,
                step=1,
                label="Gain (dB): louder sounds draw bigger objects",
                visible=visible("gain"),
                elem_id="gain",
            )
            crop = gr.Radio(
                ["start", "center", "loudest"],
                value="start",
                label="Which part of a longer sound the model hears",
            )
            prompt = gr.Textbox(
                label="Prompt around the sound's token (empty: the model's)",
                visible=visible("prompt"),
                elem_id="prompt",
            )
            with gr.Row():
                guidance = gr.Number(
                    0,
                    label="Guidance scale (0: the model's)",
                    visible=visible("guidance_scale"),
                    elem_id="guidance_scale",
                    minimum=0,
                )
                steps = gr.Number(
                    0,
                    precision=0,
                    label="Sampling steps (0: the model's)",
                    visible=visible("num_inference_steps"),
                    elem_id="num_inference_steps",
                    minimum=0,
                )
            with gr.Group(visible=visible("mix"), elem_id="mix") as mix_group:
                mix_with = gr.File(label="A second sound mixed in", elem_id="mix_with", height=100)
                mix_gain = gr.Slider(*GAIN_RANGE_DB, value=0, step=1, label="Its gain (dB)")
            with gr.Group(visible=visible("image_blend"), elem_id="image_blend") as blend_group:
                image = gr.Image(
                    type="filepath", label="An image blended with the sound", height=160
                )
                image_weight = gr.Slider(
                    0, 1, value=0.5, step=0.05, label="λ: 0 = sound only, 1 = image only"
                )
        with gr.Column(scale=6):
            status = gr.Markdown(elem_id="status")
            spectrogram = gr.Image(
                label="Spectrogram of what the model hears (before gain and mixing)",
                interactive=False,
                elem_id="spectrogram",
                format="png",
                buttons=OFFLINE_BUTTONS,
                height=SPECTROGRAM_PX,
            )
            gallery = image_gallery("Generated images", columns=4, elem_id="gallery")

    def choose(label: str) -> tuple[Any, ...]:
        try:
            pipeline = shelf.pipeline(label)
        except A2IError as error:
            return (f"⚠️ {as_literal_markdown(str(error))}", *[gr.update()] * len(WIDGET_CONTROLS))
        supports = pipeline.model.supports
        shown = (gr.update(visible=control in supports) for control in WIDGET_CONTROLS)
        return (describe_model(pipeline, shelf.entries[label].path), *shown)

    widgets = [gain, mix_group, blend_group, prompt, guidance, steps]  # as WIDGET_CONTROLS
    model.change(choose, [model], [model_info, *widgets])

    def generate(sound: str | None, label: str, *values: Any) -> tuple[Any, ...]:
        if not sound:
            return sound, None, None, "Upload or record a sound first."
        controls = _controls(*values)
        try:
            drawing = draw(shelf.pipeline(label), sound, controls)
        except A2IError as error:
            return (
                sound,
                None,
                None,
                upload_error(error, [sound, controls.mix_with, controls.image]),
            )
        images = [
            (picture, f"seed {seed}")
            for picture, seed in zip(drawing.pil_images(), drawing.seeds, strict=True)
        ]
        spectrum = spectrogram_image(drawing.clip, drawing.sample_rate)
        return sound, spectrum, images, drawing.summary()

    controls = [num_images, seed, crop, gain, mix_with, mix_gain, image, image_weight]
    settings = [model, *controls, prompt, guidance, steps]
    outputs = [sound, spectrogram, gallery, status]
    upload.upload(generate, [upload, *settings], outputs)
    record.stop_recording(generate, [record, *settings], outputs)
    run.click(generate, [sound, *settings], outputs)


def compare_tab(shelf: ModelShelf, selected: list[str]) -> None:
    """One sound through several models, one row of seeds per model."""
    with gr.Row():
        with gr.Column(scale=1, min_width=INPUT_COLUMN_PX):
            upload, record, sound = sound_inputs("compare_")
            run = gr.Button("Compare", variant="primary", elem_id="compare-button")
            models = gr.CheckboxGroup(
                shelf.choices, value=selected, label="Models", elem_id="compare_models"
            )
            count = gr.Slider(1, 4, value=2, step=1, label="Images per model")
        with gr.Column(scale=2):
            status = gr.Markdown(elem_id="compare_status")
            gallery = image_gallery(
                "The same sound through every chosen model, one row of seeds each",
                columns=1,
                elem_id="compare_gallery",
            )

    def compare(sound: str | None, labels: list[str], images: float) -> tuple[Any, ...]:
        if not sound:
            return sound, None, "Upload or record a sound first."
        if not labels:
            return sound, None, "Choose at least one model."
        rows, failures = [], []
        for label in labels:
            try:
                drawing = draw(shelf.pipeline(label), sound, Controls(num_images=int(images)))
            except AudioDecodeError as error:  # the sound itself: the same for every model
                return sound, None, upload_error(error, [sound])
            except A2IError as error:
                failures.append(f"{shelf.names[label]}: {upload_error(error, [sound])}")
                continue
            name = shelf.names[label]
            rows.append((drawing.strip(), f"{name} — {drawing.seconds * 1000:.0f} ms"))
        seeds = "seed 0" if int(images) == 1 else f"seeds 0–{int(images) - 1}"
        summary = f"{len(rows)} model{'s' * (len(rows) != 1)} drew {seeds}."
        return sound, rows, "\n\n".join([summary, *failures])

    outputs = [sound, gallery, status]
    upload.upload(compare, [upload, models, count], outputs)
    record.stop_recording(compare, [record, models, count], outputs)
    run.click(compare, [sound, models, count], outputs)
